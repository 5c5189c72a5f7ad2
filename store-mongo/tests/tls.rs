//! TLS against a real TLS-only server: the MongoDB test server `cargo xtask
//! conformance --backend mongo-tls` starts (`MONGODB_TLS_URL`, with
//! `tls=true&tlsCAFile=CA`; its certificate names `IP:127.0.0.1` only;
//! `SESSION_TEST_OTHER_CA` is an unrelated CA), and the cleartext server of
//! the other tests (`MONGODB_URL`). Without those variables (a plain
//! `cargo test`) the tests say so and pass.

mod common;

use anyhow::{ensure, Result};
use sessionkit_core::{Error, Record, SessionId, Store};
use sessionkit_mongo::MongoStore;
use std::time::Duration;

struct Tls {
    url: String,
    ca: String,
    other_ca: String,
}

fn tls() -> Option<Tls> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match (
        var("MONGODB_TLS_URL"),
        var("SESSION_TEST_TLS_CA"),
        var("SESSION_TEST_OTHER_CA"),
    ) {
        (Some(url), Some(ca), Some(other_ca)) => Some(Tls { url, ca, other_ca }),
        _ => {
            eprintln!("no TLS server: run `cargo xtask conformance --backend mongo-tls`");
            None
        }
    }
}

/// `url` with its query replaced by `query`.
fn with_query(url: &str, query: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    format!("{base}?{query}")
}

async fn connect(url: &str) -> sessionkit_core::Result<MongoStore> {
    MongoStore::builder(url)
        .database(common::DATABASE)
        .collection(common::unique_collection())
        .create_indexes(false)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

#[tokio::test]
async fn a_verified_connection_works() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let store = connect(&t.url).await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
    store.collection().drop().await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_ca_or_a_wrong_host_name_is_refused() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let unknown_ca = with_query(&t.url, &format!("tls=true&tlsCAFile={}", t.other_ca));
    // The certificate names IP:127.0.0.1 only.
    let by_name = t.url.replace("127.0.0.1", "localhost");
    for url in [unknown_ca, by_name] {
        match connect(&url).await {
            Err(Error::Config(msg)) => {
                ensure!(
                    msg.contains("tls=true") && msg.contains("certificate"),
                    "{msg}"
                )
            }
            other => anyhow::bail!("expected a certificate error, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_tls_url_against_a_cleartext_server_is_refused() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let plain = with_query(&common::url(), &format!("tls=true&tlsCAFile={}", t.ca));
    let result = connect(&plain).await;
    ensure!(result.is_err(), "a tls=true URL reached a cleartext server");
    Ok(())
}

#[tokio::test]
async fn a_bad_ca_file_is_a_clear_error() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let missing = with_query(&t.url, "tls=true&tlsCAFile=/nonexistent/ca.pem");
    match connect(&missing).await {
        Err(Error::Config(msg)) => ensure!(msg.contains("tlsCAFile: cannot read"), "{msg}"),
        other => anyhow::bail!("expected a configuration error, got {other:?}"),
    }
    Ok(())
}

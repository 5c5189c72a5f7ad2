//! TLS against a real TLS-only server: the one `cargo xtask conformance
//! --backend redis-tls` starts (`REDIS_TLS_URL`, `rediss://127.0.0.1:PORT/`,
//! its certificate made for `IP:127.0.0.1` by the CA in
//! `SESSION_TEST_TLS_CA`; `SESSION_TEST_OTHER_CA` is an unrelated CA), and
//! the plain server of the other tests (`REDIS_URL`). Without those
//! variables (a plain `cargo test`) the tests say so and pass.

mod common;

use anyhow::{ensure, Context, Result};
use sessionkit_core::{Error, Record, SessionId, Store};
use sessionkit_redis::{RedisStore, RedisStoreBuilder};
use std::time::Duration;

struct Tls {
    url: String,
    ca: String,
    other_ca: String,
}

fn tls() -> Option<Tls> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match (
        var("REDIS_TLS_URL"),
        var("SESSION_TEST_TLS_CA"),
        var("SESSION_TEST_OTHER_CA"),
    ) {
        (Some(url), Some(ca), Some(other_ca)) => Some(Tls { url, ca, other_ca }),
        _ => {
            eprintln!("no TLS server: run `cargo xtask conformance --backend redis-tls`");
            None
        }
    }
}

fn builder(url: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .prefix(common::unique_prefix())
        .connect_timeout(Duration::from_secs(5))
}

/// Connecting must fail with a configuration error that says the
/// certificate was refused.
async fn expect_refused(b: RedisStoreBuilder) -> Result<()> {
    match b.connect().await {
        Err(Error::Config(msg)) => {
            ensure!(msg.contains("certificate"), "unclear error: {msg}");
            Ok(())
        }
        Err(other) => anyhow::bail!("expected a certificate error, got {other:?}"),
        Ok(_) => anyhow::bail!("connected although the certificate must be refused"),
    }
}

#[tokio::test]
async fn a_verified_connection_works() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let store = builder(&t.url).tls_ca_file(&t.ca).connect().await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
    store.clear().await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_ca_is_refused() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    expect_refused(builder(&t.url).tls_ca_file(&t.other_ca)).await?;
    // The platform's roots do not know a private CA either.
    expect_refused(builder(&t.url)).await
}

#[tokio::test]
async fn a_wrong_host_name_is_refused() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    // The certificate names IP:127.0.0.1 only.
    let url = t.url.replace("127.0.0.1", "localhost");
    expect_refused(builder(&url).tls_ca_file(&t.ca)).await
}

#[tokio::test]
async fn a_tls_url_against_a_cleartext_server_is_refused() -> Result<()> {
    let Some(_) = tls() else { return Ok(()) };
    let plain = common::host_port(&common::url(), 6379)?;
    let result = builder(&format!("rediss://{plain}/"))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    ensure!(
        result.is_err(),
        "a rediss:// URL reached a cleartext server"
    );
    Ok(())
}

#[tokio::test]
async fn insecure_is_an_explicit_opt_in() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    // Any certificate, any name: only when asked for.
    let url = t.url.replace("127.0.0.1", "localhost");
    let store = builder(&url).tls_insecure(true).connect().await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    store.clear().await?;
    // Insecure is refused on a cleartext URL: it would mean nothing there.
    let plain = builder(&common::url()).tls_insecure(true).connect().await;
    ensure!(matches!(plain, Err(Error::Config(_))), "{plain:?}");
    Ok(())
}

#[tokio::test]
async fn a_bad_ca_file_is_a_clear_configuration_error() -> Result<()> {
    let Some(t) = tls() else { return Ok(()) };
    let dir = std::env::temp_dir();
    let garbage = dir.join(format!("not-a-ca-{}.pem", SessionId::generate()));
    std::fs::write(&garbage, "hello")?;
    for (path, expected) in [
        ("/nonexistent/ca.pem".to_owned(), "cannot read"),
        (garbage.display().to_string(), "no PEM certificate"),
    ] {
        match builder(&t.url).tls_ca_file(&path).connect().await {
            Err(Error::Config(msg)) => ensure!(
                msg.contains("tls_ca") && msg.contains(expected),
                "unclear: {msg}"
            ),
            other => anyhow::bail!("{path}: expected a configuration error, got {other:?}"),
        }
    }
    std::fs::remove_file(&garbage).context("removing the test file")?;
    Ok(())
}

/// A TLS listener on a free loopback port whose certificate, for
/// `IP:127.0.0.1`, expired in 2020; signed by a CA made here, returned as
/// PEM. It needs no server from xtask.
async fn expired_certificate_server() -> Result<(tokio::task::JoinHandle<()>, u16, String)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    leaf.not_before = rcgen::date_time_ymd(2019, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            // The client must abort the handshake.
            tokio::spawn(async move { drop(acceptor.accept(conn).await) });
        }
    });
    Ok((task, port, ca_cert.pem()))
}

#[tokio::test]
async fn an_expired_certificate_is_refused() -> Result<()> {
    let (server, port, ca) = expired_certificate_server().await?;
    let result = builder(&format!("rediss://127.0.0.1:{port}/"))
        .tls_ca_pem(ca)
        .connect()
        .await;
    server.abort();
    match result {
        Err(Error::Config(msg)) => {
            ensure!(msg.contains("certificate"), "unclear error: {msg}");
            eprintln!("refused: {msg}");
            ensure!(
                msg.to_lowercase().contains("expired"),
                "does not say expired: {msg}"
            );
            Ok(())
        }
        Err(other) => anyhow::bail!("expected a certificate error, got {other:?}"),
        Ok(_) => anyhow::bail!("connected to a server whose certificate expired"),
    }
}

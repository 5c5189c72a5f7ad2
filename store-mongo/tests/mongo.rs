//! MongoDB-specific behaviour against a real server (`MONGODB_URL`): the
//! exact connect-mongo document shape and TTL index, documents written by
//! Node, expiry ahead of the TTL monitor, and servers that are down.

mod common;

use anyhow::{ensure, Context, Result};
use common::{
    builder, closed_port_url, host_port, silent_server, unique_collection, url, via, Namespaced,
    Proxy, DATABASE,
};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use sessionkit_conformance::net;
use sessionkit_core::time;
use sessionkit_core::{CasOutcome, Error, Record, SessionId, Store, WriteOutcome};
use sessionkit_mongo::MongoStore;
use std::time::Duration;

/// Guards against a hang: a call that never returns fails the test instead
/// of blocking the suite. Not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn live_record(secs: u64) -> Record {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(secs)), time::now());
    r
}

async fn ttl_indexes(store: &MongoStore) -> Result<Vec<Document>> {
    let indexes: Vec<mongodb::IndexModel> = store
        .collection()
        .list_indexes()
        .await?
        .try_collect()
        .await?;
    Ok(indexes
        .into_iter()
        .filter(|i| i.keys == doc! { "expires": 1 })
        .map(|i| {
            let o = i.options.unwrap_or_default();
            doc! {
                "name": o.name.unwrap_or_default(),
                "expireAfterSeconds": o.expire_after.map(|d| d.as_secs() as i64),
            }
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_shape_is_connect_mongo() -> Result<()> {
    let ns = Namespaced::new().await?;
    let mut r = live_record(3600);
    r.data.insert("user".into(), "bob".into());
    ns.store.create(&r).await?;
    let d = ns
        .store
        .collection()
        .find_one(doc! { "_id": r.id.as_str() })
        .await?
        .context("no document")?;
    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
    assert_eq!(keys, ["_id", "expires", "session"]);
    assert_eq!(d.get_str("_id")?, r.id.as_str());
    let expires = r.cookie.expires.context("expiry set")?;
    assert_eq!(
        d.get("expires"),
        Some(&Bson::DateTime(DateTime::from_millis(
            expires.timestamp_millis()
        )))
    );
    assert_eq!(
        d.get_str("session")?,
        r.to_json()?,
        "session is the JSON string"
    );

    // No cookie expiry: now + one day.
    let plain = Record::new(SessionId::generate());
    let before = time::now().timestamp_millis();
    ns.store.create(&plain).await?;
    let d = ns
        .store
        .collection()
        .find_one(doc! { "_id": plain.id.as_str() })
        .await?
        .context("no document")?;
    let at = d.get_datetime("expires")?.timestamp_millis();
    assert!((before + 86_400_000..before + 86_400_000 + 60_000).contains(&at));

    // touch sets `expires` only.
    let later = time::from_millis(time::now().timestamp_millis() + 7_200_000);
    assert_eq!(
        ns.store.touch(&r.id, Some(later)).await?,
        WriteOutcome::Written
    );
    let after = ns
        .store
        .collection()
        .find_one(doc! { "_id": r.id.as_str() })
        .await?
        .context("touch removed it")?;
    assert_eq!(after.get_str("session")?, r.to_json()?);
    assert_eq!(
        after.get_datetime("expires")?.timestamp_millis(),
        later.timestamp_millis()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_index_is_created_idempotently_and_concurrently() -> Result<()> {
    let ns = Namespaced::new().await?;
    assert_eq!(
        ttl_indexes(&ns.store).await?,
        vec![doc! { "name": "expires_1", "expireAfterSeconds": 0_i64 }]
    );
    ns.store.create_indexes().await?;
    // Two processes starting at once.
    let collection = ns.store.collection().name().to_owned();
    let (a, b) = tokio::try_join!(
        builder()
            .collection(&collection)
            .create_indexes(false)
            .connect(),
        builder()
            .collection(&collection)
            .create_indexes(false)
            .connect()
    )?;
    let (ra, rb) = tokio::join!(a.create_indexes(), b.create_indexes());
    ra?;
    rb?;
    assert_eq!(ttl_indexes(&ns.store).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_creation_can_be_turned_off() -> Result<()> {
    let store = builder()
        .collection(unique_collection())
        .create_indexes(false)
        .connect()
        .await?;
    let r = live_record(60);
    store.create(&r).await?;
    let found = ttl_indexes(&store).await;
    store.collection().drop().await?;
    ensure!(found?.is_empty(), "an index was created");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_written_documents_load() -> Result<()> {
    let ns = Namespaced::new().await?;
    let in_an_hour = DateTime::from_millis(time::now().timestamp_millis() + 3_600_000);
    // connect-mongo's default (stringify: true).
    let id = SessionId::generate();
    let json = r#"{"cookie":{"originalMaxAge":3600000,"expires":"2099-01-01T00:00:00.000Z","secure":false,"httpOnly":true,"path":"/"},"passport":{"user":"42"}}"#;
    ns.store
        .collection()
        .insert_one(doc! { "_id": id.as_str(), "expires": in_an_hour, "session": json })
        .await?;
    let r = ns.store.load(&id).await?.context("not loaded")?;
    assert_eq!(r.data["passport"]["user"], "42");
    assert_eq!(r.to_json()?, json, "re-encodes byte for byte");

    // connect-mongo with stringify: false: an embedded document, Date expiry.
    let id = SessionId::generate();
    let cookie_expiry = time::from_millis(time::now().timestamp_millis() + 3_600_000);
    let embedded = doc! {
        "cookie": {
            "originalMaxAge": 3_600_000_i64,
            "expires": DateTime::from_millis(cookie_expiry.timestamp_millis()),
            "httpOnly": true,
            "path": "/",
        },
        "views": 3_i32,
    };
    ns.store
        .collection()
        .insert_one(doc! { "_id": id.as_str(), "expires": in_an_hour, "session": embedded })
        .await?;
    let mut r = ns.store.load(&id).await?.context("embedded not loaded")?;
    assert_eq!(r.cookie.expires, Some(cookie_expiry));
    assert_eq!(r.data["views"], 3);
    // Compare-and-set works on it too; the write stores a string from then on.
    let (_, v) = ns.store.load_versioned(&id).await?.context("not loaded")?;
    r.data.insert("views".into(), 4.into());
    assert!(matches!(
        ns.store.save_if(&r, &v).await?,
        CasOutcome::Written(_)
    ));
    let d = ns
        .store
        .collection()
        .find_one(doc! { "_id": id.as_str() })
        .await?
        .context("gone")?;
    assert_eq!(d.get_str("session")?, r.to_json()?);
    Ok(())
}

/// connect-mongo with `stringify: false` reads `session` as the session
/// object itself: with `stringify(false)` every Rust write keeps that shape
/// (a string there would make every Node request for the session fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stringify_false_writes_embedded_documents_as_connect_mongo_does() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = ns.store.clone();
    let collection = store.collection().namespace().coll;
    let store = builder()
        .collection(collection)
        .stringify(false)
        .connect()
        .await?;
    let stored = |id: SessionId| {
        let c = store.collection().clone();
        async move {
            let d = c
                .find_one(doc! { "_id": id.as_str() })
                .await?
                .context("gone")?;
            anyhow::Ok(d.get_document("session")?.clone())
        }
    };
    let mut r = live_record(3600);
    r.data.insert("views".into(), 1.into());
    r.data.insert("big".into(), 10_000_000_000_i64.into());
    r.data.insert("ratio".into(), 0.5.into());
    r.data.insert(
        "user".into(),
        serde_json::json!({"name": "Zoë", "roles": ["a", "b"]}),
    );
    store.create(&r).await?;
    let session = stored(r.id.clone()).await?;
    let cookie = session.get_document("cookie")?;
    assert_eq!(
        cookie.get_datetime("expires")?.timestamp_millis(),
        r.cookie.expires.context("expires")?.timestamp_millis(),
        "cookie.expires is a BSON date"
    );
    assert_eq!(session.get_i32("views")?, 1);
    assert_eq!(session.get_f64("big")?, 1e10, "a JavaScript number");
    assert_eq!(session.get_document("user")?.get_str("name")?, "Zoë");
    // It reads back as it was, numbers included.
    assert_eq!(store.load(&r.id).await?.as_ref(), Some(&r));

    // save, touch and compare-and-set keep the shape.
    r.data.insert("views".into(), 2.into());
    assert_eq!(store.save(&r).await?, WriteOutcome::Written);
    assert_eq!(stored(r.id.clone()).await?.get_i32("views")?, 2);
    let (_, v) = store.load_versioned(&r.id).await?.context("not loaded")?;
    r.data.insert("views".into(), 3.into());
    let CasOutcome::Written(v2) = store.save_if(&r, &v).await? else {
        anyhow::bail!("compare-and-set refused");
    };
    assert_eq!(stored(r.id.clone()).await?.get_i32("views")?, 3);
    // The version it returned is the stored one: a second write on it works.
    r.data.insert("views".into(), 4.into());
    assert!(matches!(
        store.save_if(&r, &v2).await?,
        CasOutcome::Written(_)
    ));
    assert_eq!(store.touch(&r.id, None).await?, WriteOutcome::Written);
    assert_eq!(stored(r.id.clone()).await?.get_i32("views")?, 4);

    // A document Node wrote the same way is rewritten the same way.
    let id = SessionId::generate();
    let in_an_hour = DateTime::from_millis(time::now().timestamp_millis() + 3_600_000);
    let node = doc! {
        "cookie": { "originalMaxAge": 3_600_000_i32, "expires": in_an_hour, "httpOnly": true, "path": "/" },
        "views": 7_i32,
    };
    store
        .collection()
        .insert_one(doc! { "_id": id.as_str(), "expires": in_an_hour, "session": node })
        .await?;
    let mut loaded = store.load(&id).await?.context("not loaded")?;
    assert_eq!(loaded.data["views"], 7);
    loaded.data.insert("views".into(), 8.into());
    assert_eq!(store.save(&loaded).await?, WriteOutcome::Written);
    let session = stored(id).await?;
    assert_eq!(session.get_i32("views")?, 8);
    assert_eq!(
        session.get_document("cookie")?.get_i32("originalMaxAge")?,
        3_600_000
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_enforced_before_the_ttl_monitor_runs() -> Result<()> {
    let ns = Namespaced::new().await?;
    let r = live_record(3600);
    ns.store.create(&r).await?;
    let past = DateTime::from_millis(time::now().timestamp_millis() - 1);
    ns.store
        .collection()
        .update_one(
            doc! { "_id": r.id.as_str() },
            doc! { "$set": { "expires": past } },
        )
        .await?;
    // Still there (the monitor sweeps every 60 s), but never returned.
    assert!(ns
        .store
        .collection()
        .find_one(doc! { "_id": r.id.as_str() })
        .await?
        .is_some());
    assert!(ns.store.load(&r.id).await?.is_none());
    assert_eq!(ns.store.count().await?, 0);
    assert!(ns.store.ids().await?.is_empty());
    assert_eq!(ns.store.save(&r).await?, WriteOutcome::Gone);
    assert_eq!(ns.store.touch(&r.id, None).await?, WriteOutcome::Gone);
    // A new session may take the expired one's id.
    ns.store.create(&r).await?;
    assert!(ns.store.load(&r.id).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_comes_from_the_builder_then_the_url() -> Result<()> {
    let collection = unique_collection();
    let base = url();
    let (scheme_host, query) = match base.split_once('?') {
        Some((a, q)) => (a.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let scheme_host = scheme_host.trim_end_matches('/');
    let from_url = MongoStore::builder(format!("{scheme_host}/{DATABASE}{query}"))
        .collection(&collection)
        .create_indexes(false)
        .connect()
        .await?;
    assert_eq!(from_url.collection().namespace().db, DATABASE);
    let chosen = MongoStore::builder(format!("{scheme_host}/other_db{query}"))
        .database(DATABASE)
        .collection(&collection)
        .create_indexes(false)
        .connect()
        .await?;
    assert_eq!(chosen.collection().namespace().db, DATABASE);
    let default = MongoStore::builder(base)
        .create_indexes(false)
        .connect()
        .await?;
    assert_eq!(default.collection().namespace().db, "test");
    assert_eq!(default.collection().name(), "sessions");
    Ok(())
}

#[tokio::test]
async fn server_down_is_a_clear_transient_error() -> Result<()> {
    net::expect_unavailable(
        MongoStore::builder(closed_port_url()?)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn server_that_never_answers_times_out() -> Result<()> {
    let (_listener, url) = silent_server()?;
    net::expect_unavailable(
        MongoStore::builder(url)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    Ok(())
}

/// `url` with one more `?name=value` option.
fn with_option(url: &str, option: &str) -> String {
    if url.contains('?') {
        format!("{url}&{option}")
    } else if url.splitn(4, '/').count() == 4 {
        format!("{url}?{option}")
    } else {
        format!("{url}/?{option}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_and_coming_back() -> Result<()> {
    let mut proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 27017)?).await?;
    let addr = proxy.addr;
    // A direct connection: the proxy's address is not the one the server
    // advertises for itself.
    let proxied = with_option(&via(&url(), addr), "directConnection=true");
    let store = MongoStore::builder(proxied)
        .database(DATABASE)
        .collection(unique_collection())
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let r = live_record(600);
    store.create(&r).await?;

    // Down: every call is a transient error, never a hang or a panic.
    proxy.stop().await;
    let e = tokio::time::timeout(HANG_GUARD, store.load(&r.id))
        .await
        .context("load hung")?
        .err()
        .context("load succeeded with the server down")?;
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");

    // Back on the same address: the driver reconnects by itself.
    let mut back = Proxy::start(&addr.to_string(), host_port(&url(), 27017)?).await?;
    let mut loaded = None;
    for _ in 0..50 {
        match tokio::time::timeout(HANG_GUARD, store.load(&r.id)).await? {
            Ok(found) => {
                loaded = found;
                break;
            }
            Err(e) => assert!(e.is_transient(), "not transient: {e:?}"),
        }
    }
    let dropped = store.collection().drop().await;
    back.stop().await;
    assert_eq!(loaded.as_ref(), Some(&r), "session lost across the outage");
    dropped?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_within_the_operation_timeout() -> Result<()> {
    const BOUND: Duration = Duration::from_secs(1);
    let proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 27017)?).await?;
    let proxied = with_option(&via(&url(), proxy.addr), "directConnection=true");
    let store = MongoStore::builder(proxied)
        .database(DATABASE)
        .collection(unique_collection())
        .connect_timeout(BOUND)
        .operation_timeout(BOUND)
        .connect()
        .await?;
    let r = live_record(600);
    store.create(&r).await?;
    proxy.pause();
    let other = live_record(600);
    let took = [
        net::expect_bounded(store.load(&r.id)).await?,
        net::expect_bounded(store.create(&other)).await?,
        net::expect_bounded(store.save(&r)).await?,
        net::expect_bounded(store.touch(&r.id, None)).await?,
        net::expect_bounded(store.destroy(&r.id)).await?,
        net::expect_bounded(store.count()).await?,
    ];
    eprintln!("mongo, server not answering: Unavailable after {took:?} (bound {BOUND:?})");
    proxy.resume();
    let _ = store.collection().drop().await;
    Ok(())
}

//! Redis-specific behaviour against a real server (`REDIS_URL`): the exact
//! connect-redis layout, prefixes, reconnection and servers that are down.

mod common;

use anyhow::{ensure, Context, Result};
use common::{
    closed_port_url, host_port, silent_server, unique_prefix, url, via, Namespaced, Proxy,
};
use sessionkit_conformance::net;
use sessionkit_core::time;
use sessionkit_core::{Error, Record, SessionId, Store, WriteOutcome};
use sessionkit_redis::RedisStore;
use std::time::Duration;

/// Guards against a hang: a store call that never returns fails the test
/// instead of blocking the suite. Not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

async fn ttl(store: &RedisStore, id: &SessionId) -> Result<(Option<String>, i64)> {
    let mut conn = store.connection();
    let key = store.key(id);
    Ok(redis::pipe()
        .cmd("GET")
        .arg(&key)
        .cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_layout_is_connect_redis() -> Result<()> {
    // The default prefix, as a Node app would use it: ids are random, so this
    // cannot collide with anything else in the database.
    let store = RedisStore::connect(url()).await?;
    assert_eq!(store.prefix(), "sess:");
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(3600)), time::now());
    r.data.insert("user".into(), "bob".into());
    store.create(&r).await?;
    assert_eq!(store.key(&r.id), format!("sess:{}", r.id));

    let (value, secs) = ttl(&store, &r.id).await?;
    let value = value.context("no key sess:<id>")?;
    assert_eq!(value, r.to_json()?, "value is the express-session JSON");
    assert!(value.starts_with(r#"{"cookie":{"originalMaxAge":3600000,"expires":""#));
    assert!((3590..=3600).contains(&secs), "TTL {secs}");

    // No cookie expiry: the default TTL of one day.
    let plain = Record::new(SessionId::generate());
    store.create(&plain).await?;
    let (_, secs) = ttl(&store, &plain.id).await?;
    assert!((86_390..=86_400).contains(&secs), "TTL {secs}");

    // touch = EXPIRE: the TTL moves, the value does not.
    let later = time::from_millis(time::now().timestamp_millis() + 7_200_000);
    assert_eq!(
        store.touch(&r.id, Some(later)).await?,
        WriteOutcome::Written
    );
    let (after, secs) = ttl(&store, &r.id).await?;
    assert_eq!(after.as_deref(), Some(value.as_str()));
    assert!((7190..=7200).contains(&secs), "TTL {secs}");

    store.destroy(&r.id).await?;
    store.destroy(&plain.id).await?;
    assert_eq!(ttl(&store, &r.id).await?, (None, -2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ttl_option_and_rounding_up() -> Result<()> {
    let store = RedisStore::builder(url())
        .prefix(unique_prefix())
        .default_ttl(Duration::from_secs(120))
        .connect()
        .await?;
    let plain = Record::new(SessionId::generate());
    store.create(&plain).await?;
    let (_, secs) = ttl(&store, &plain.id).await?;
    assert!((110..=120).contains(&secs), "TTL {secs}");

    // 1.5 s left rounds up to 2 s, like connect-redis's Math.ceil.
    let mut short = Record::new(SessionId::generate());
    short.cookie.expires = Some(time::from_millis(time::now().timestamp_millis() + 1_500));
    store.create(&short).await?;
    let (_, secs) = ttl(&store, &short.id).await?;
    assert!((1..=2).contains(&secs), "TTL {secs}");
    store.clear().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_written_session_loads_and_saves() -> Result<()> {
    let ns = Namespaced::new().await?;
    let id = SessionId::generate();
    // What connect-redis 7 writes for express-session 1.18.
    let node = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2099-01-01T00:00:00.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42},"views":7}"#;
    let mut conn = ns.store.connection();
    let _: () = redis::cmd("SET")
        .arg(ns.store.key(&id))
        .arg(node)
        .arg("EX")
        .arg(600)
        .query_async(&mut conn)
        .await?;
    let mut r = ns
        .store
        .load(&id)
        .await?
        .context("node session not found")?;
    assert_eq!(r.data["passport"]["user"], 42);
    assert_eq!(r.to_json()?, node, "re-encodes byte for byte");
    r.data.insert("views".into(), 8.into());
    assert_eq!(ns.store.save(&r).await?, WriteOutcome::Written);
    let (value, _) = ttl(&ns.store, &id).await?;
    ensure!(value.as_deref() == Some(&*node.replace("\"views\":7", "\"views\":8")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_with_glob_characters_match_literally() -> Result<()> {
    let base = unique_prefix();
    let star = RedisStore::builder(url())
        .prefix(format!("{base}a*"))
        .connect()
        .await?;
    let other = RedisStore::builder(url())
        .prefix(format!("{base}ab:"))
        .connect()
        .await?;
    let mine = Record::new(SessionId::generate());
    let theirs = Record::new(SessionId::generate());
    star.create(&mine).await?;
    other.create(&theirs).await?;
    assert_eq!(star.ids().await?, vec![mine.id.clone()]);
    assert_eq!(star.count().await?, 1);
    star.clear().await?;
    assert!(star.load(&mine.id).await?.is_none());
    assert!(
        other.load(&theirs.id).await?.is_some(),
        "clear crossed prefixes"
    );
    other.clear().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_under_the_prefix_are_skipped_by_ids() -> Result<()> {
    let ns = Namespaced::new().await?;
    let r = Record::new(SessionId::generate());
    ns.store.create(&r).await?;
    let mut conn = ns.store.connection();
    let _: () = redis::cmd("SET")
        .arg(format!("{}not an id!", ns.store.prefix()))
        .arg("x")
        .arg("EX")
        .arg(600)
        .query_async(&mut conn)
        .await?;
    assert_eq!(ns.store.ids().await?, vec![r.id.clone()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_connection_is_killed() -> Result<()> {
    let ns = Namespaced::new().await?;
    let r = Record::new(SessionId::generate());
    ns.store.create(&r).await?;
    let mut conn = ns.store.connection();
    let my_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    // Kill exactly this store's connection, from another connection.
    let client = redis::Client::open(url())?;
    let mut killer = client.get_multiplexed_async_connection().await?;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(my_id)
        .query_async(&mut killer)
        .await?;
    assert_eq!(killed, 1);
    // The first call may see the broken connection (a transient error, never
    // a panic); the manager reconnects and later calls succeed.
    let mut loaded = None;
    for _ in 0..50 {
        match tokio::time::timeout(HANG_GUARD, ns.store.load(&r.id)).await? {
            Ok(found) => {
                loaded = found;
                break;
            }
            Err(e) => assert!(e.is_transient(), "not transient: {e:?}"),
        }
    }
    assert!(loaded.is_some(), "did not reconnect");
    Ok(())
}

#[tokio::test]
async fn server_down_is_a_clear_transient_error() -> Result<()> {
    net::expect_unavailable(
        RedisStore::builder(closed_port_url()?)
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
        RedisStore::builder(url)
            .connect_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_and_coming_back() -> Result<()> {
    let mut proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 6379)?).await?;
    let addr = proxy.addr;
    let store = RedisStore::builder(via(&url(), addr))
        .prefix(unique_prefix())
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;

    // Down: every call is a transient error, never a hang or a panic.
    proxy.stop().await;
    for _ in 0..3 {
        let e = tokio::time::timeout(HANG_GUARD, store.load(&r.id))
            .await
            .context("load hung")?
            .err()
            .context("load succeeded with the server down")?;
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    }

    // Back on the same address: the connection manager reconnects by itself
    // (the first calls may still see the old, broken connection).
    let mut back = Proxy::start(&addr.to_string(), host_port(&url(), 6379)?).await?;
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
    let cleared = store.clear().await;
    back.stop().await;
    assert_eq!(loaded.as_ref(), Some(&r), "session lost across the outage");
    cleared?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_within_the_operation_timeout() -> Result<()> {
    const BOUND: Duration = Duration::from_secs(1);
    let proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 6379)?).await?;
    let store = RedisStore::builder(via(&url(), proxy.addr))
        .prefix(unique_prefix())
        .connect_timeout(BOUND)
        .operation_timeout(BOUND)
        .connect()
        .await?;
    let mut r = Record::new(SessionId::generate());
    let mut meta = sessionkit_core::SessionMeta::default();
    meta.principal = Some("alice".to_owned());
    r.set_meta(Some(&meta))?;
    store.create(&r).await?;
    proxy.pause();
    let other = Record::new(SessionId::generate());
    let took = [
        net::expect_bounded(store.load(&r.id)).await?,
        net::expect_bounded(store.create(&other)).await?,
        net::expect_bounded(store.save(&r)).await?,
        net::expect_bounded(store.touch(&r.id, None)).await?,
        net::expect_bounded(store.destroy(&r.id)).await?,
        net::expect_bounded(store.principal_sessions("alice")).await?,
        net::expect_bounded(store.count()).await?,
    ];
    eprintln!("redis, server not answering: Unavailable after {took:?} (bound {BOUND:?})");
    proxy.resume();
    let _ = store.clear().await;
    Ok(())
}

//! Concurrent requests on one session: compare-and-set against lost
//! updates, the create/save split against undone logouts, and no session
//! flood from cookieless requests. Interleavings are forced with barriers
//! and notifications, never with sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod support;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use sessionkit_core::{SessionId, Store};
use sessionkit_memory::MemoryStore;
use sessionkit_tower::{Session, SessionError, SessionLayer};
use std::sync::Arc;
use support::{config, get_with_cookie, serve_plain};
use tokio::sync::{Barrier, Notify};

/// A counter route; `/race` makes two requests load before either saves.
fn counter_app(barrier: Arc<Barrier>) -> Router {
    async fn inc(session: Session) -> Result<String, SessionError> {
        let n: u64 = session.get("n").await?.unwrap_or(0);
        session.insert("n", n + 1).await?;
        Ok((n + 1).to_string())
    }
    async fn race(
        State(barrier): State<Arc<Barrier>>,
        session: Session,
    ) -> Result<String, SessionError> {
        let n: u64 = session.get("n").await?.unwrap_or(0);
        barrier.wait().await;
        session.insert("n", n + 1).await?;
        Ok((n + 1).to_string())
    }
    Router::new()
        .route("/inc", get(inc))
        .route("/race", get(race))
        .with_state(barrier)
}

async fn start(store: MemoryStore, cas: bool, barrier: Arc<Barrier>) -> String {
    let cfg = config().compare_and_set(cas).build().expect("config");
    serve_plain(counter_app(barrier).layer(SessionLayer::new(store, cfg))).await
}

async fn counter(store: &MemoryStore, id: &SessionId) -> u64 {
    let r = store.load(id).await.expect("load").expect("session");
    r.data["n"].as_u64().expect("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_increments_with_compare_and_set_and_retry_count_fifty() {
    let store = MemoryStore::new();
    let url = start(store.clone(), true, Arc::new(Barrier::new(1))).await;
    let first = support::get(&format!("{url}/inc"), &[]).await;
    let cookie = first.cookie();
    let id = first.sid();
    let mut tasks = Vec::new();
    for _ in 0..49 {
        let (url, cookie) = (url.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let r = get_with_cookie(&format!("{url}/inc"), &cookie).await;
                match r.status {
                    200 => return conflicts,
                    409 => conflicts += 1,
                    other => panic!("unexpected status {other}: {}", r.body),
                }
                assert!(conflicts < 10_000, "no progress");
            }
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("task");
    }
    assert_eq!(
        counter(&store, &id).await,
        50,
        "{conflicts} conflicts retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_race_loses_an_update_without_cas_and_conflicts_with_it() {
    for cas in [false, true] {
        let store = MemoryStore::new();
        let url = start(store.clone(), cas, Arc::new(Barrier::new(2))).await;
        let inc_url = format!("{url}/inc");
        let a = support::get(&inc_url, &[]).await;
        let cookie = a.cookie();
        let id = a.sid();
        let race_url = format!("{url}/race");
        let (r1, r2) = tokio::join!(
            get_with_cookie(&race_url, &cookie),
            get_with_cookie(&race_url, &cookie)
        );
        let mut statuses = [r1.status, r2.status];
        statuses.sort_unstable();
        if cas {
            // One wins, the other is told to retry; no update is lost.
            assert_eq!(statuses, [200, 409]);
            assert_eq!(counter(&store, &id).await, 2);
            let retry = get_with_cookie(&format!("{url}/inc"), &cookie).await;
            assert_eq!(retry.status, 200);
            assert_eq!(counter(&store, &id).await, 3);
        } else {
            // Documented last-writer-wins: both answered 200, one update lost.
            assert_eq!(statuses, [200, 200]);
            assert_eq!(counter(&store, &id).await, 2, "1 + one of two increments");
        }
    }
}

/// A slow request that loaded the session before a logout must not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_is_not_undone_by_a_slower_request() {
    #[derive(Clone)]
    struct Gates {
        loaded: Arc<Notify>,
        go: Arc<Notify>,
    }
    async fn slow(State(g): State<Gates>, session: Session) -> Result<String, SessionError> {
        let n: u64 = session.get("n").await?.unwrap_or(0);
        g.loaded.notify_one();
        g.go.notified().await;
        session.insert("n", n + 100).await?;
        Ok("slow done".into())
    }
    async fn login(session: Session) -> Result<String, SessionError> {
        session.insert("n", 1u64).await?;
        Ok("in".into())
    }
    async fn logout(session: Session) -> Result<String, SessionError> {
        session.destroy().await?;
        Ok("out".into())
    }
    for cas in [false, true] {
        let store = MemoryStore::new();
        let gates = Gates {
            loaded: Arc::new(Notify::new()),
            go: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/login", get(login))
            .route("/logout", get(logout))
            .route("/slow", get(slow))
            .with_state(gates.clone());
        let cfg = config().compare_and_set(cas).build().expect("config");
        let url = serve_plain(app.layer(SessionLayer::new(store.clone(), cfg))).await;
        let first = support::get(&format!("{url}/login"), &[]).await;
        let (cookie, id) = (first.cookie(), first.sid());

        let slow_req = tokio::spawn({
            let (url, cookie) = (url.clone(), cookie.clone());
            async move { get_with_cookie(&format!("{url}/slow"), &cookie).await }
        });
        gates.loaded.notified().await;
        let out = get_with_cookie(&format!("{url}/logout"), &cookie).await;
        assert_eq!(out.status, 200);
        assert!(store.load(&id).await.expect("load").is_none());
        gates.go.notify_one();
        let slow_res = slow_req.await.expect("slow request");
        assert_eq!(slow_res.status, 200, "{}", slow_res.body);
        assert!(
            store.load(&id).await.expect("load").is_none(),
            "logout undone (cas = {cas})"
        );
        assert_eq!(
            store.count().await.expect("count"),
            0,
            "a new session appeared"
        );
        assert!(
            slow_res.set_cookies.is_empty(),
            "{:?}",
            slow_res.set_cookies
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookieless_concurrent_requests_store_nothing() {
    async fn peek(session: Session) -> Result<String, SessionError> {
        let n: Option<u64> = session.get("n").await?;
        Ok(format!("{n:?}"))
    }
    let store = MemoryStore::new();
    let cfg = config().build().expect("config");
    let app = Router::new().route("/", get(peek));
    let url = serve_plain(app.layer(SessionLayer::new(store.clone(), cfg))).await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move { support::get(&url, &[]).await }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        assert!(r.set_cookies.is_empty());
    }
    assert_eq!(store.count().await.expect("count"), 0);
}

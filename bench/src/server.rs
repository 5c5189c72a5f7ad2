//! Serving an axum app on loopback, and the apps under test.

use crate::raw::SharedKv;
use anyhow::Result;
use axum::extract::State;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sessionkit_core::{Record, SessionId, Store};
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The secret every contender signs its cookies with.
pub const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
/// Every contender's session lifetime.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
pub const PATH: &str = "/counter";

pub struct Server {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn serve(app: Router) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}

impl Server {
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(3), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The HTTP floor: no sessions.
pub fn none() -> Router {
    Router::new().route(PATH, get(|| async { "1" }))
}

/// Ours: read the counter, increment it, store it (one load + one save).
pub fn ours(store: Arc<dyn Store>) -> Result<Router> {
    let config = SessionConfig::builder()
        .secret(SECRET)
        .max_age(MAX_AGE)
        .build()?;
    Ok(Router::new()
        .route(PATH, get(ours_counter))
        .layer(SessionLayer::from_arc(store, config)))
}

async fn ours_counter(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// The store floor: the driver's get + update per request (insert for a
/// new session), the JSON handled as a `serde_json::Value`, the id in a
/// plain cookie: no signing, no middleware.
pub fn raw(kv: SharedKv) -> Router {
    Router::new().route(PATH, get(raw_counter)).with_state(kv)
}

async fn raw_counter(State(kv): State<SharedKv>, headers: HeaderMap) -> Response {
    match raw_step(&kv, &headers).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
    }
}

async fn raw_step(kv: &SharedKv, headers: &HeaderMap) -> Result<Response> {
    let expires = chrono::Utc::now() + chrono::Duration::seconds(MAX_AGE.as_secs() as i64);
    let id = headers
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.strip_prefix("sid="));
    if let Some(id) = id {
        if let Some(json) = kv.get(id).await? {
            let mut v: serde_json::Value = serde_json::from_str(&json)?;
            let n = v["n"].as_u64().unwrap_or(0) + 1;
            v["n"] = n.into();
            v["cookie"]["expires"] = sessionkit_core::time::to_iso(&expires).into();
            if kv.update(id, &v.to_string(), expires).await? {
                return Ok(n.to_string().into_response());
            }
        }
    }
    let id = SessionId::generate();
    let mut r = Record::new(id.clone());
    r.cookie
        .set_max_age(Some(MAX_AGE), sessionkit_core::time::now());
    r.data.insert("n".into(), 1.into());
    kv.insert(id.as_str(), &r.to_json()?, expires).await?;
    Ok((
        [(SET_COOKIE, format!("sid={}; Path=/; HttpOnly", id.as_str()))],
        "1",
    )
        .into_response())
}

/// tower-sessions with `store`: the same handler, signed cookies like ours,
/// the same lifetime (on inactivity, as ours resets it on every save).
pub fn tower<S>(store: S) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    let key = tower_sessions::cookie::Key::from(&[7u8; 64]);
    let layer = tower_sessions::SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(tower_sessions::Expiry::OnInactivity(
            time::Duration::seconds(MAX_AGE.as_secs() as i64),
        ))
        .with_signed(key);
    Router::new().route(PATH, get(tower_counter)).layer(layer)
}

async fn tower_counter(session: tower_sessions::Session) -> Result<String, StatusCode> {
    let err = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let n: u64 = session.get("n").await.map_err(err)?.unwrap_or(0) + 1;
    session.insert("n", n).await.map_err(err)?;
    Ok(n.to_string())
}

//! The Rust twin of `interop/app.js`: the same routes and JSON answers, on
//! `session-tower` and the store crates, configured from the same
//! environment variables. `cargo xtask interop` runs both against one store
//! and checks that each reads and writes the other's sessions.
//!
//! Environment (as for the Node app):
//!
//! | variable | meaning |
//! |---|---|
//! | `STORE` | `redis`, `postgres`, `mongo` or `sqlite` (required) |
//! | `REDIS_URL`, `DATABASE_URL`, `MONGODB_URL` (+ `MONGODB_DB`), `SQLITE_PATH` | where the store is |
//! | `MONGODB_CREATE_INDEXES` | `false`: leave the TTL index to connect-mongo (default: create it) |
//! | `MONGO_STRINGIFY` | `false`: sessions as documents, as connect-mongo's `stringify: false` |
//! | `PG_TIME_ZONE` | the `TimeZone` of the Node app's PostgreSQL connections (default `UTC`) |
//! | `SECRETS` | comma-separated; the first signs, all verify (required) |
//! | `PORT` | port on 127.0.0.1 (`0`: any; the chosen port is printed) |
//! | `MAX_AGE_MS` | cookie max-age in ms (default 3600000; `none`: browser-session cookie) |
//! | `COOKIE_NAME` | default `connect.sid` |
//!
//! Routes: `GET /id`, `GET /check-id?id=`, `POST /login?user=&maxAge=`,
//! `GET /read`, `POST /set?key=&value=`, `POST /regenerate`,
//! `POST /destroy`, `GET /touch` (see `interop/README.md`).

use anyhow::{bail, Context, Result};
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sessionkit_core::{SessionId, Store, WriteOutcome};
use sessionkit_tower::{
    SameSitePolicy, SecurePolicy, Session, SessionConfig, SessionError, SessionLayer,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Params = Query<HashMap<String, String>>;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> Result<String> {
    env(name).with_context(|| format!("{name} is required"))
}

async fn make_store(kind: &str) -> Result<Arc<dyn Store>> {
    Ok(match kind {
        #[cfg(feature = "redis")]
        "redis" => {
            let url = env("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
            Arc::new(sessionkit_redis::RedisStore::connect(url).await?)
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let url = env("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
            // The zone of the Node app's connections (the server's or the
            // database's default TimeZone): `expire` is a wall-clock time.
            let zone = env("PG_TIME_ZONE").unwrap_or_else(|| "UTC".into());
            Arc::new(
                sessionkit_postgres::PostgresStore::builder(url)
                    .time_zone(zone)
                    .create_schema(true)
                    .connect()
                    .await?,
            )
        }
        #[cfg(feature = "mongo")]
        "mongo" => {
            let url = env("MONGODB_URL").unwrap_or_else(|| "mongodb://127.0.0.1:27017".into());
            let db = env("MONGODB_DB").unwrap_or_else(|| "interop".into());
            // `false` leaves the TTL index to the Node app (connect-mongo
            // creates it on start).
            let create_indexes = env("MONGODB_CREATE_INDEXES").as_deref() != Some("false");
            // `false`: sessions as documents (connect-mongo's stringify: false).
            let stringify = env("MONGO_STRINGIFY").as_deref() != Some("false");
            let mut builder = sessionkit_mongo::MongoStore::builder(url)
                .database(db)
                .create_indexes(create_indexes)
                .stringify(stringify);
            // The key connect-mongo's createWebCryptoAdapter({ secret }) derives.
            if let Some(secret) = env("MONGO_CRYPTO_SECRET") {
                use sessionkit_core::encryption::{Encryption, Format, Key};
                // Node reads connect-mongo's own format only (no id binding).
                builder = builder.encryption(
                    Encryption::new([Key::connect_mongo_webcrypto(&secret)?])?
                        .format(Format::WebCrypto),
                );
            }
            Arc::new(builder.connect().await?)
        }
        #[cfg(feature = "mysql")]
        "mysql" => {
            let url = env("MYSQL_URL").unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into());
            let table = env("MYSQL_TABLE").unwrap_or_else(|| "sessions".into());
            Arc::new(
                sessionkit_mysql::MySqlStore::builder(url)
                    .table(table)
                    .create_schema(true)
                    .connect()
                    .await?,
            )
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let path = required("SQLITE_PATH")?;
            Arc::new(
                sessionkit_sqlite::SqliteStore::builder(path)
                    .create_schema(true)
                    .connect()
                    .await?,
            )
        }
        other => bail!("unknown or disabled STORE {other:?}"),
    })
}

/// A handler's error: the session layer's own (opaque) answer, a 400, or a
/// 409 when the session was destroyed or expired meanwhile.
enum AppError {
    Session(SessionError),
    BadRequest(&'static str),
    Gone,
}

impl From<SessionError> for AppError {
    fn from(e: SessionError) -> Self {
        AppError::Session(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Session(e) => e.into_response(),
            AppError::BadRequest(msg) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response()
            }
            AppError::Gone => (
                StatusCode::CONFLICT,
                Json(json!({ "error": "session gone" })),
            )
                .into_response(),
        }
    }
}

type Answer = Result<Json<Value>, AppError>;

/// `{found, id, session: {cookie, ...data}}`, as the Node app answers.
async fn dump(session: &Session) -> Answer {
    let data = session.data().await?;
    let mut out = Map::new();
    if let Some(cookie) = session.cookie().await? {
        out.insert(
            "cookie".into(),
            serde_json::to_value(cookie).unwrap_or(Value::Null),
        );
    }
    let found = !data.is_empty();
    out.extend(data);
    let id = session.id().await?.map(|id| id.to_string());
    Ok(Json(json!({ "found": found, "id": id, "session": out })))
}

/// Saves now (like `req.session.save`); a session destroyed or expired
/// meanwhile is not brought back.
async fn save(session: &Session) -> Result<(), AppError> {
    match session.save().await? {
        WriteOutcome::Gone => Err(AppError::Gone),
        _ => Ok(()),
    }
}

/// Parses a query value as JSON, falling back to the raw text.
fn parse_value(raw: Option<&String>) -> Value {
    match raw {
        None => Value::Null,
        Some(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
    }
}

async fn id(session: Session) -> Answer {
    let id = session.id().await?.map(|id| id.to_string());
    Ok(Json(json!({ "id": id })))
}

async fn check_id(Query(q): Params) -> Json<Value> {
    let id = q.get("id").map(String::as_str).unwrap_or("");
    match SessionId::parse(id) {
        Ok(_) => Json(json!({ "valid": true })),
        Err(e) => Json(json!({ "valid": false, "error": e.to_string() })),
    }
}

async fn login(session: Session, Query(q): Params) -> Answer {
    session.regenerate().await?;
    let user = q.get("user").cloned().unwrap_or_else(|| "alice".into());
    session.insert("user", user).await?;
    session.insert("roles", ["admin", "ops"]).await?;
    session
        .insert(
            "profile",
            json!({ "name": "Zoë Ünïcode ✓", "age": 42, "ratio": 0.5, "active": true, "nothing": null }),
        )
        .await?;
    session.insert("visits", 1).await?;
    if let Some(ms) = q.get("maxAge") {
        let ms: u64 = ms.parse().map_err(|_| AppError::BadRequest("bad maxAge"))?;
        session.set_max_age(Some(Duration::from_millis(ms))).await?;
    }
    save(&session).await?;
    dump(&session).await
}

async fn read(session: Session) -> Answer {
    dump(&session).await
}

async fn set(session: Session, Query(q): Params) -> Answer {
    let key = q.get("key").map(String::as_str).unwrap_or("");
    if key.is_empty() || key == "cookie" {
        return Err(AppError::BadRequest("bad key"));
    }
    session.insert(key, parse_value(q.get("value"))).await?;
    save(&session).await?;
    dump(&session).await
}

async fn regenerate(session: Session) -> Answer {
    let data = session.data().await?;
    session.regenerate().await?;
    for (k, v) in data {
        session.insert(&k, v).await?;
    }
    save(&session).await?;
    dump(&session).await
}

async fn destroy(session: Session) -> Answer {
    session.destroy().await?;
    Ok(Json(json!({ "destroyed": true })))
}

/// Reads the session and changes nothing, like a request that checks the
/// login: the layer touches the stored expiry.
async fn touch(session: Session) -> Answer {
    session.id().await?;
    Ok(Json(json!({ "ok": true })))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let kind = required("STORE")?;
    let secrets: Vec<String> = required("SECRETS")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut config = SessionConfig::builder()
        .name(env("COOKIE_NAME").unwrap_or_else(|| "connect.sid".into()))
        .secrets(&secrets)
        .http_only(true)
        .same_site(SameSitePolicy::Lax)
        .secure(SecurePolicy::Never)
        .resave(false)
        .save_uninitialized(false)
        .rolling(false);
    match env("MAX_AGE_MS").as_deref() {
        Some("none") => {}
        Some(ms) => {
            config = config.max_age(Duration::from_millis(ms.parse().context("MAX_AGE_MS")?))
        }
        None => config = config.max_age(Duration::from_secs(3600)),
    }
    let config = config.build()?;
    let store = make_store(&kind).await?;

    let app = Router::new()
        .route("/id", get(id))
        .route("/check-id", get(check_id))
        .route("/login", post(login))
        .route("/read", get(read))
        .route("/set", post(set))
        .route("/regenerate", post(regenerate))
        .route("/destroy", post(destroy))
        .route("/touch", get(touch))
        .layer(SessionLayer::from_arc(store, config));

    let port: u16 = env("PORT")
        .as_deref()
        .unwrap_or("0")
        .parse()
        .context("PORT")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

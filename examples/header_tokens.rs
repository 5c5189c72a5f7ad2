//! Sessions for API and mobile clients that send a token in a header
//! instead of a cookie: `Authorization: Bearer <token>`. A new session's
//! token comes back in the `X-Session-Token` response header.
//!
//! ```text
//! cargo run -p sessionkit-examples --example header_tokens
//! curl -i -X POST http://127.0.0.1:3000/login        # X-Session-Token: s:…
//! curl -H 'Authorization: Bearer s:…' http://127.0.0.1:3000/me
//! ```

#[path = "common.rs"]
mod common;

use axum::{
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use sessionkit_memory::MemoryStore;
use sessionkit_tower::{
    Session, SessionConfig, SessionError, SessionLayer, TokenHeader, Transport,
};

async fn login(session: Session) -> Result<StatusCode, SessionError> {
    session.regenerate().await?;
    session.insert("user", "api-client").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(
        json!({ "user": session.get::<String>("user").await? }),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::builder()
        .secret(common::secret())
        .transport(Transport::Header)
        .token_header(TokenHeader::Bearer)
        .build()?;
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .layer(SessionLayer::new(MemoryStore::new(), config));
    common::serve(app).await
}

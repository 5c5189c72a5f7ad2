//! The store picked by configuration: `SESSION_STORE_URL` names any store
//! (`memory://`, `sqlite://sessions.db`, `redis://…`, `postgres://…`,
//! `mongodb://…`, `mysql://…`; the URL options are listed in
//! sessionkit-stores' documentation). Swapping stores changes no code.
//!
//! ```text
//! SESSION_STORE_URL=sqlite://sessions.db cargo run -p sessionkit-examples --example store_by_url
//! curl -c jar -b jar http://127.0.0.1:3000/
//! ```

#[path = "common.rs"]
mod common;

use axum::{routing::get, Router};
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(format!("{views} views\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("SESSION_STORE_URL").unwrap_or_else(|_| "memory://".to_owned());
    // Connects (and creates the table, index or collection where the URL
    // says so); a bad URL is an error naming the option, never a panic.
    let store = sessionkit_stores::connect(&url).await?;
    let config = SessionConfig::builder().secret(common::secret()).build()?;
    let app = Router::new()
        .route("/", get(counter))
        .layer(SessionLayer::new(store, config));
    common::serve(app).await
}

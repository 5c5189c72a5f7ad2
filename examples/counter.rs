//! A visit counter on the in-process store.
//!
//! ```text
//! cargo run -p sessionkit-examples --example counter
//! curl -c jar -b jar http://127.0.0.1:3000/   # 1 views, 2 views, ...
//! ```

#[path = "common.rs"]
mod common;

use axum::{routing::get, Router};
use sessionkit_memory::MemoryStore;
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(format!("{views} views\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::builder().secret(common::secret()).build()?;
    let app = Router::new()
        .route("/", get(counter))
        .layer(SessionLayer::new(MemoryStore::new(), config));
    common::serve(app).await
}

//! One session store shared with an Express app: a user logged in on the
//! Node side is logged in here, and the other way round.
//!
//! The two sides agree on three things: the secret that signs the cookie,
//! the cookie's name (`connect.sid`, express-session's default), and the
//! store's layout (here connect-redis's `sess:<id>` keys, which
//! sessionkit-redis reads and writes by default). The Node side:
//!
//! ```js
//! // npm install express express-session connect-redis redis
//! const { RedisStore } = require("connect-redis");
//! const client = require("redis").createClient({ url: "redis://127.0.0.1:6379" });
//! client.connect();
//! app.use(require("express-session")({
//!   store: new RedisStore({ client }),
//!   secret: process.env.SESSION_SECRET,
//!   resave: false,
//!   saveUninitialized: false,
//! }));
//! ```
//!
//! ```text
//! SESSION_SECRET='the same secret as Node, 32 bytes or more' \
//!   cargo run -p sessionkit-examples --example share_with_express
//! ```
//!
//! The other Node stores work the same way: connect-pg-simple with
//! `postgres://…`, connect-mongo with `mongodb://…`, express-mysql-session
//! with `mysql://…`, connect-session-sequelize with `sqlite://…`.

#[path = "common.rs"]
mod common;

use axum::{routing::get, Router};
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};

/// Reads what either side wrote: `req.session.views` in Node is `views` here.
async fn views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(format!(
        "{views} views (counted by Node and Rust together)\n"
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = sessionkit_stores::connect(&url).await?;
    // express-session's defaults: cookie `connect.sid`, signed with the
    // same secret (several secrets rotate, as in Node: `secrets([...])`).
    let config = SessionConfig::builder()
        .name("connect.sid")
        .secret(common::secret())
        .build()?;
    let app = Router::new()
        .route("/", get(views))
        .layer(SessionLayer::new(store, config));
    common::serve(app).await
}

//! Log in and out: a new session id at login (`regenerate`, against
//! session fixation), the user recorded as the session's principal, and
//! `destroy` at logout. Cross-site form posts are refused.
//!
//! ```text
//! cargo run -p sessionkit-examples --example login
//! curl -c jar -b jar -d user=alice -d password=wonderland http://127.0.0.1:3000/login
//! curl -c jar -b jar http://127.0.0.1:3000/          # hello alice
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/logout
//! ```

#[path = "common.rs"]
mod common;

use axum::{
    http::StatusCode,
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use sessionkit_memory::MemoryStore;
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

/// The one account of this example. A real application checks a password
/// hash (argon2, bcrypt) in its user database.
fn valid(login: &Login) -> bool {
    login.user == "alice" && login.password == "wonderland"
}

async fn home(session: Session) -> Result<String, SessionError> {
    Ok(match session.get::<String>("user").await? {
        Some(user) => format!("hello {user}\n"),
        None => "not logged in\n".to_owned(),
    })
}

async fn login(session: Session, Form(form): Form<Login>) -> Result<StatusCode, SessionError> {
    if !valid(&form) {
        return Ok(StatusCode::UNAUTHORIZED);
    }
    // A new id for the logged-in session: an id planted before login is
    // worth nothing after it.
    session.regenerate().await?;
    session.set_principal(Some(form.user.clone())).await?;
    session.insert("user", form.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout(session: Session) -> Result<StatusCode, SessionError> {
    // Deletes the stored session and clears the cookie.
    session.destroy().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::builder()
        .secret(common::secret())
        .reject_cross_site_requests(true)
        .build()?;
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(MemoryStore::new(), config));
    common::serve(app).await
}

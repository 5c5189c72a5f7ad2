//! The demo site: a visit counter, a login form (the id is regenerated on
//! login, "remember me" gives a 30-day cookie), a cart, logout (destroys the
//! session and expires the cookie) and a page showing the current session.
//!
//! Configuration, from the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SESSION_STORE_URL` | any URL `session_stores::connect` takes | `sqlite://sessions.db` (in the working directory) |
//! | `SESSION_ENCRYPTION_KEYS` | encrypt sessions at rest: comma-separated base64 32-byte keys, the first seals | unset (no encryption) |
//! | `SESSION_SECRET` | signing secret(s), comma-separated, ≥ 32 bytes each; the first signs | generated once into `.session-secret` (mode 0600) |
//! | `SESSION_SECRET_FILE` | where a generated secret is kept | `.session-secret` |
//! | `HOST`, `PORT` | where to listen | `127.0.0.1`, `3000` |
//! | `TRUST_PROXY` | trust `X-Forwarded-Proto` (`true`/`false`) | unset |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pages;

use anyhow::{bail, Context};
use axum::extract::Form;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use session_tower::{Session, SessionConfig, SessionError, SessionLayer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// "Remember me" keeps the cookie this long.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The demo's settings, read from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store URL.
    pub store_url: String,
    /// Secrets; the first signs.
    pub secrets: Vec<String>,
    /// Listen address.
    pub addr: SocketAddr,
    /// `TRUST_PROXY`.
    pub trust_proxy: Option<bool>,
}

impl Settings {
    /// Reads the environment (see the crate docs). A missing secret is
    /// generated and persisted; a short one is an error.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let store_url = var("SESSION_STORE_URL").unwrap_or_else(|| "sqlite://sessions.db".into());
        let secrets = match var("SESSION_SECRET") {
            Some(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
            None => {
                let file = PathBuf::from(
                    var("SESSION_SECRET_FILE").unwrap_or_else(|| ".session-secret".into()),
                );
                vec![load_or_create_secret(&file)?]
            }
        };
        let host: IpAddr = var("HOST")
            .unwrap_or_else(|| "127.0.0.1".into())
            .parse()
            .context("HOST is not an IP address")?;
        let port: u16 = var("PORT")
            .unwrap_or_else(|| "3000".into())
            .parse()
            .context("PORT is not a port number")?;
        let trust_proxy = match var("TRUST_PROXY").as_deref() {
            None => None,
            Some("true" | "1" | "yes") => Some(true),
            Some("false" | "0" | "no") => Some(false),
            Some(other) => bail!("TRUST_PROXY={other:?} is not true or false"),
        };
        Ok(Settings {
            store_url,
            secrets,
            addr: SocketAddr::new(host, port),
            trust_proxy,
        })
    }
}

/// Reads the secret in `file`, or generates one (32 random bytes, base64)
/// and writes it there readable by the owner only.
pub fn load_or_create_secret(file: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(file) {
        let s = existing.trim().to_owned();
        if !s.is_empty() {
            tracing::info!("using the session secret in {}", file.display());
            return Ok(s);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no OS randomness for a secret: {e}"))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(file, &secret)
        .with_context(|| format!("cannot write the generated secret to {}", file.display()))?;
    tracing::warn!(
        "SESSION_SECRET is not set: generated a new secret into {} (owner-only); set SESSION_SECRET to share one across instances",
        file.display()
    );
    Ok(secret)
}

#[cfg(unix)]
fn write_private(file: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_private(file: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(file, secret)
}

/// Connects the store and builds the router with the session layer.
pub async fn build(settings: &Settings) -> anyhow::Result<Router> {
    let at_rest = session_stores::AtRest::from_env()?;
    let store = session_stores::connect_with(&settings.store_url, &at_rest)
        .await
        .with_context(|| {
            format!(
                "cannot open the session store {}",
                redact(&settings.store_url)
            )
        })?;
    let mut config = SessionConfig::builder().secrets(settings.secrets.iter());
    if let Some(trust) = settings.trust_proxy {
        config = config.proxy(Some(trust));
    }
    let config = config.build().context("bad session configuration")?;
    tracing::info!("session store: {}", redact(&settings.store_url));
    Ok(router().layer(SessionLayer::from_arc(store, config)))
}

/// The routes (without the session layer).
pub fn router() -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart))
        .route("/cart/add", post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/session", get(inspect))
}

/// Hides the password in a URL for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    let user: Option<String> = session.get("user").await?;
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(Html(pages::home(user.as_deref(), views, cart.len())))
}

async fn login_form(session: Session) -> Result<Html<String>, SessionError> {
    let user: Option<String> = session.get("user").await?;
    Ok(Html(pages::login(user.as_deref(), None)))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    remember: Option<String>,
}

async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Response, SessionError> {
    let name = form.username.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Ok(Html(pages::login(
            None,
            Some("Enter a user name of 1 to 64 characters."),
        ))
        .into_response());
    }
    // A new id on login: a session id planted before login is worthless after it.
    session.regenerate().await?;
    session.insert("user", name).await?;
    session
        .insert(
            "loggedInAt",
            session_core::time::to_iso(&session_core::time::now()),
        )
        .await?;
    if form.remember.is_some() {
        session.set_max_age(Some(REMEMBER_FOR)).await?;
    }
    Ok(Redirect::to("/").into_response())
}

async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.destroy().await?;
    Ok(Redirect::to("/"))
}

async fn cart(session: Session) -> Result<Html<String>, SessionError> {
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    let user: Option<String> = session.get("user").await?;
    Ok(Html(pages::cart(user.as_deref(), &cart)))
}

#[derive(Debug, Deserialize)]
struct ItemForm {
    item: String,
}

async fn cart_add(session: Session, Form(form): Form<ItemForm>) -> Result<Redirect, SessionError> {
    let item = form.item.trim();
    if !item.is_empty() && item.chars().count() <= 100 {
        let mut cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
        if cart.len() < 50 {
            cart.push(item.to_owned());
            session.insert("cart", cart).await?;
        }
    }
    Ok(Redirect::to("/cart"))
}

async fn cart_remove(
    session: Session,
    Form(form): Form<ItemForm>,
) -> Result<Redirect, SessionError> {
    let mut cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    if let Some(i) = cart.iter().position(|c| c == &form.item) {
        cart.remove(i);
        session.insert("cart", cart).await?;
    }
    Ok(Redirect::to("/cart"))
}

async fn inspect(session: Session) -> Result<Html<String>, SessionError> {
    let data = session.data().await?;
    let cookie = session.cookie().await?;
    let id = session.id().await?;
    let user: Option<String> = session.get("user").await?;
    Ok(Html(pages::inspect(
        user.as_deref(),
        id.as_ref().map(|i| i.as_str()),
        &serde_json::Value::Object(data),
        cookie.as_ref(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://s.db"), "sqlite://s.db");
    }

    #[test]
    fn generated_secret_is_persisted_owner_only() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("secret");
        let first = load_or_create_secret(&file)?;
        assert!(first.len() >= 32);
        assert_eq!(load_or_create_secret(&file)?, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file)?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}

//! The demo site: a visit counter, a login form (the id is regenerated on
//! login, "remember me" gives a 30-day cookie), a cart, logout (destroys the
//! session and expires the cookie), a page showing the current session and
//! "Your active sessions": the user's sessions from the store's per-user
//! index (user agent, IP, created, last seen), each revocable, and "log out
//! everywhere else".
//!
//! On login the session is tagged with the user name as its principal
//! (`Session::set_principal`), and `track_client(true)` records the user
//! agent and client address of the request that creates it. Any name logs
//! in (there are no passwords): the principal stands for the user id a real
//! application would have after authentication. The index is a store
//! capability: Redis, MongoDB and the in-process store keep it always, the
//! SQL stores with `principal_index=true` in their URL (an existing table
//! gains the column on start; its sessions join the index when next
//! written). Without it the page says so.
//!
//! Configuration, from the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SESSION_STORE_URL` | any URL `sessionkit_stores::connect` takes; SQL stores keep the per-user index with `principal_index=true` | [`DEFAULT_STORE_URL`] (in the working directory) |
//! | `SESSION_ENCRYPTION_KEYS` | encrypt sessions at rest: comma-separated base64 32-byte keys, the first seals | unset (no encryption) |
//! | `SESSION_SECRET` | signing secret(s), comma-separated; the first signs (≥ 32 bytes), the others only verify (a Node service's shorter secret may follow) | generated once into `.session-secret` (mode 0600) |
//! | `SESSION_SECRET_FILE` | where a generated secret is kept | `.session-secret` |
//! | `HOST`, `PORT` | where to listen | `127.0.0.1`, `3000` |
//! | `TRUST_PROXY` | trust `X-Forwarded-Proto` (`true`/`false`) | unset |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod active;
mod pages;

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Form, Request};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use sessionkit_core::Store;
use sessionkit_tower::{ClientIp, Session, SessionConfig, SessionError, SessionLayer};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Sessions one user keeps: a login past it signs the oldest out.
pub const MAX_SESSIONS_PER_USER: usize = 20;

/// The store when `SESSION_STORE_URL` is unset: SQLite in the working
/// directory, with the per-user session index the "active sessions" page
/// reads.
pub const DEFAULT_STORE_URL: &str = "sqlite://sessions.db?principal_index=true";

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
        let store_url = var("SESSION_STORE_URL").unwrap_or_else(|| DEFAULT_STORE_URL.into());
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
///
/// An existing file that its group or others may read (or write) is
/// refused: a secret anyone on the machine can read, or plant, signs
/// anyone's cookies.
pub fn load_or_create_secret(file: &Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(file) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the session secret file {} is accessible to other users (mode {mode:03o}): run `chmod 600 {}`, or delete it to generate a new one",
                file.display(),
                file.display()
            );
        }
    }
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

/// Creates the file of a `sqlite://PATH` URL owner-only (0600) when it does
/// not exist yet, so the sessions in it (and SQLite's `-wal` and `-shm`
/// files, which take its permissions) are not readable by other users.
/// Other URLs, `:memory:` and existing files are left alone.
pub fn create_sqlite_file_private(url: &str) -> std::io::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.starts_with(':') || Path::new(path).exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    Ok(())
}

#[cfg(not(unix))]
fn write_private(file: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(file, secret)
}

/// Connects the store and builds the router with the session layer.
pub async fn build(settings: &Settings) -> anyhow::Result<Router> {
    let store = connect(&settings.store_url).await?;
    tracing::info!("session store: {}", redact(&settings.store_url));
    app(store, settings)
}

/// Connects to the store `url` names ([`sessionkit_stores::connect_with`]),
/// with encryption keys from `SESSION_ENCRYPTION_KEYS` (and hashed ids
/// when the URL says `hashed_ids=true`).
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    create_sqlite_file_private(url)
        .with_context(|| format!("cannot create the session database of {}", redact(url)))?;
    let at_rest = sessionkit_stores::AtRest::from_env()?;
    sessionkit_stores::connect_with(url, &at_rest)
        .await
        .with_context(|| format!("cannot open the session store {}", redact(url)))
}

/// The site on `store`: the routes, the session layer (recording user
/// agents and client addresses), and the client address from the
/// connection unless `TRUST_PROXY=true` (then the middleware takes the
/// first `X-Forwarded-For` value). Serve it with [`serve`], which provides
/// the connection's address.
pub fn app(store: Arc<dyn Store>, settings: &Settings) -> anyhow::Result<Router> {
    // Secure whenever the request is (TLS here, or `X-Forwarded-Proto:
    // https` from a trusted proxy with TRUST_PROXY=true); plain local HTTP
    // still works.
    let mut config = SessionConfig::builder()
        .secrets(settings.secrets.iter())
        .secure(sessionkit_tower::SecurePolicy::Auto)
        .max_sessions_per_principal(MAX_SESSIONS_PER_USER)
        .track_client(true);
    if let Some(trust) = settings.trust_proxy {
        config = config.proxy(Some(trust));
    }
    let config = config
        .reject_cross_site_requests(true)
        .build()
        .context("bad session configuration")?;
    let app = router(store.clone())
        .layer(middleware::from_fn(csrf))
        .layer(SessionLayer::from_arc(store, config));
    Ok(if settings.trust_proxy == Some(true) {
        app
    } else {
        app.layer(middleware::from_fn(client_ip))
    })
}

/// Most bytes of a form the demo reads (axum's default body limit).
const MAX_FORM: usize = 2 * 1024 * 1024;

/// CSRF protection for every form (the layer already refuses cross-site
/// POSTs by `Origin` / `Sec-Fetch-Site`): a POST must carry the session's
/// token in the `_csrf` field (or the `X-CSRF-Token` header), else 403
/// before the handler runs; every HTML page with a POST form gets the
/// token as a hidden field.
async fn csrf(session: Session, req: Request, next: Next) -> Response {
    let req = if req.method() == axum::http::Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        let field = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(k, _)| k == "_csrf")
                    .map(|(_, v)| v)
            });
        let token = field.or_else(|| {
            parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        if let Err(e) = session
            .verify_csrf_token(token.as_deref().unwrap_or(""))
            .await
        {
            return e.into_response();
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        req
    };
    let res = next.run(req).await;
    let html = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !html {
        return res;
    }
    let (parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let page = String::from_utf8_lossy(&bytes);
    if !page.contains(FORM_TAG) {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let token = match session.csrf_token().await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(with_token(&page, &token)))
}

/// How every form that changes something starts in `pages`.
const FORM_TAG: &str = "<form method=\"post\"";

/// `page` with a hidden `_csrf` field holding `token` at the start of every
/// POST form (the token is base64url: nothing to escape).
fn with_token(page: &str, token: &str) -> String {
    let field = format!(r#"<input type="hidden" name="_csrf" value="{token}">"#);
    let mut out = String::with_capacity(page.len() + 64);
    let mut rest = page;
    while let Some(at) = rest.find(FORM_TAG) {
        let Some(end) = rest[at..].find('>') else {
            break;
        };
        let end = at + end + 1;
        out.push_str(&rest[..end]);
        out.push_str(&field);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Serves `app` on `listener` until `shutdown` completes, telling handlers
/// each connection's address (for the sessions' IP).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Passes the peer address to the session layer as [`ClientIp`].
async fn client_ip(mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(ClientIp(addr.ip()));
    }
    next.run(req).await
}

/// The routes (without the session layer); `store` serves the "active
/// sessions" pages.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart))
        .route("/cart/add", post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/session", get(inspect))
        .route("/sessions", get(active::page))
        .route("/sessions/revoke", post(active::revoke))
        .route("/sessions/revoke-others", post(active::revoke_others))
        .with_state(store)
}

/// Hides passwords in a store URL for logs and errors.
pub use sessionkit_stores::redact;

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
    // The principal: what the store's per-user index lists the session under.
    session.set_principal(Some(name.to_owned())).await?;
    session
        .insert(
            "loggedInAt",
            sessionkit_core::time::to_iso(&sessionkit_core::time::now()),
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

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_can_read_is_refused() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("secret");
        std::fs::write(&file, "planted-secret-planted-secret-planted-secret\n")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
        let err = load_or_create_secret(&file).expect_err("a 0666 secret file was trusted");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("planted"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640))?;
        assert!(load_or_create_secret(&file).is_err(), "group-readable");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        assert!(load_or_create_secret(&file)?.starts_with("planted"));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn the_sqlite_database_is_created_owner_only() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("sessions.db");
        create_sqlite_file_private(&format!("sqlite://{}?principal_index=true", db.display()))?;
        assert_eq!(std::fs::metadata(&db)?.permissions().mode() & 0o777, 0o600);
        // Other URLs and in-memory databases create nothing.
        create_sqlite_file_private("sqlite::memory:")?;
        create_sqlite_file_private("redis://127.0.0.1:6379")?;
        Ok(())
    }
}

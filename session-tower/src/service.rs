//! The tower `Layer` and `Service`, and the axum extractor.

use crate::config::{RequestHead, SessionConfig};
use crate::cookie::{self, SessionCookie};
use crate::error::{decorate, opaque_parts, MissingSession};
use crate::session::{Client, Handle, Session, Source, State, Via};
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::header::SET_COOKIE;
use http::uri::Scheme;
use http::{request::Parts, Request, Response};
use sessionkit_core::{time, SessionId, Store, Verified};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

/// Insert this into a request's extensions when the connection itself is
/// TLS (a server that terminates HTTPS in-process, where HTTP/1.1 request
/// URIs carry no scheme), e.g. with `axum::Extension(SecureConnection)` on
/// the HTTPS listener's router. Such requests count as secure for `Secure`
/// cookies and the `Auto` policies.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecureConnection;

/// Insert this into a request's extensions to tell the middleware the
/// client's address, for [`track_client`](crate::SessionConfigBuilder::track_client)
/// (tower itself does not know the peer). With axum, from `ConnectInfo`:
///
/// ```ignore
/// async fn client_ip(ConnectInfo(addr): ConnectInfo<SocketAddr>, mut req: Request, next: Next) -> Response {
///     req.extensions_mut().insert(ClientIp(addr.ip()));
///     next.run(req).await
/// }
/// // router.layer(session_layer).layer(middleware::from_fn(client_ip))
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

/// Most bytes of a `User-Agent` kept by `track_client`.
const MAX_USER_AGENT: usize = 256;

/// The `User-Agent` and address of a request, for `track_client`.
fn client_of<B>(req: &Request<B>, proxy: Option<bool>) -> Client {
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_owned()
        });
    let ip = match req.extensions().get::<ClientIp>() {
        Some(ClientIp(ip)) => Some(ip.to_string()),
        None if proxy == Some(true) => req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| ip.to_string()),
        None => None,
    };
    Client { user_agent, ip }
}

/// Most ids remembered for `touch_after`; past it the oldest half is dropped
/// (which only costs extra touches).
const THROTTLE_CAPACITY: usize = 100_000;

/// When this process last wrote or touched each session (for `touch_after`).
#[derive(Default)]
pub(crate) struct Throttle {
    enabled: bool,
    last: Mutex<HashMap<SessionId, Instant>>,
}

impl Throttle {
    fn map(&self) -> MutexGuard<'_, HashMap<SessionId, Instant>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn recent(&self, id: &SessionId, after: Duration) -> bool {
        self.map().get(id).is_some_and(|t| t.elapsed() < after)
    }

    pub(crate) fn record(&self, id: &SessionId) {
        if !self.enabled {
            return;
        }
        let mut map = self.map();
        if map.len() >= THROTTLE_CAPACITY {
            let mut times: Vec<Instant> = map.values().copied().collect();
            times.sort_unstable();
            if let Some(cut) = times.get(times.len() / 2).copied() {
                map.retain(|_, t| *t > cut);
            }
        }
        map.insert(id.clone(), Instant::now());
    }

    pub(crate) fn forget(&self, id: &SessionId) {
        if self.enabled {
            self.map().remove(id);
        }
    }
}

/// Seconds between two warnings about refused credentials.
const REFUSED_WARN_INTERVAL: u64 = 60;

/// Refused cookies and tokens (forged, unsigned, malformed): all counted,
/// logged at `debug`, and at `warn` at most once a minute with the count
/// since the last warning, so a flood of forged cookies cannot flood the
/// log.
#[derive(Default)]
pub(crate) struct Refused {
    total: std::sync::atomic::AtomicU64,
    since_warning: std::sync::atomic::AtomicU64,
    /// Seconds since `start` of the last warning, plus one (0: never).
    last_warning: std::sync::atomic::AtomicU64,
    start: std::sync::OnceLock<Instant>,
}

impl Refused {
    /// Counts one; `Some(n)` when a warning is due, `n` refused since the
    /// previous one.
    fn record(&self, now: Instant) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        self.total.fetch_add(1, Relaxed);
        self.since_warning.fetch_add(1, Relaxed);
        let start = *self.start.get_or_init(|| now);
        let secs = now.saturating_duration_since(start).as_secs() + 1;
        let last = self.last_warning.load(Relaxed);
        let due = last == 0 || secs >= last + REFUSED_WARN_INTERVAL;
        if due
            && self
                .last_warning
                .compare_exchange(last, secs, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.since_warning.swap(0, Relaxed));
        }
        None
    }

    fn log(&self, what: &'static str, name: &str) {
        tracing::debug!(credential = %name, "{what}");
        if let Some(n) = self.record(Instant::now()) {
            tracing::warn!(
                credential = %name,
                refused = n,
                "{what} ({n} refused credentials since the last warning; one warning a minute at most)"
            );
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) throttle: Throttle,
    pub(crate) refused: Refused,
}

/// The session middleware: a tower [`Layer`] for http 1.x services
/// (axum's `Router::layer`, or any `Service<Request<B>>`).
///
/// ```no_run
/// # fn main() -> Result<(), sessionkit_core::Error> {
/// use sessionkit_tower::{SessionConfig, SessionLayer};
/// let config = SessionConfig::builder()
///     .secret("a secret of at least thirty-two bytes!!")
///     .build()?;
/// let layer = SessionLayer::new(sessionkit_memory::MemoryStore::new(), config);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// Sessions kept in `store`, configured by `config`.
    pub fn new(store: impl Store + 'static, config: SessionConfig) -> Self {
        Self::from_arc(Arc::new(store), config)
    }

    /// Like [`new`](Self::new), with a shared store (e.g. from a "store by URL" factory).
    pub fn from_arc(store: Arc<dyn Store>, config: SessionConfig) -> Self {
        // The store owns its TTL: a `touch_after` at least as long would
        // let browser-session records expire untouched, so it is not used.
        let outlives = config.touch_after_outlives(store.default_ttl());
        if outlives {
            tracing::warn!(
                store_ttl = ?store.default_ttl(),
                touch_after = ?config.touch_after,
                "touch_after is not shorter than the store's default TTL: every request touches its session"
            );
        }
        let throttle = Throttle {
            enabled: config.touch_after.is_some() && !outlives,
            ..Throttle::default()
        };
        SessionLayer {
            shared: Arc::new(Shared {
                config,
                store,
                throttle,
                refused: Refused::default(),
            }),
        }
    }
}

impl SessionLayer {
    /// How many session cookies and tokens this layer refused so far
    /// (unsigned, forged, malformed, too long): a metric for forged-cookie
    /// floods, which are logged at `warn` only once a minute.
    pub fn refused_credentials(&self) -> u64 {
        self.shared
            .refused
            .total
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The [`Service`] made by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

/// The URI the client asked for: axum's `OriginalUri` when a router
/// nested this service (its own URI lost the prefix), else the request's.
fn original_uri<B>(req: &Request<B>) -> &http::Uri {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(uri)) = req.extensions().get() {
        return uri;
    }
    req.uri()
}

/// Which browser signal says an unsafe request comes from another site:
/// `Sec-Fetch-Site` (anything but `same-origin` or `none`), else an `Origin`
/// whose host and port differ from the `Host` the request was sent to.
/// `None` for safe methods, same-origin requests and requests with neither
/// header.
fn cross_site<B>(req: &Request<B>) -> Option<&'static str> {
    use http::Method;
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return None;
    }
    if let Some(site) = req.headers().get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some("Sec-Fetch-Site"),
        };
    }
    let origin = req.headers().get(http::header::ORIGIN)?;
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, o)| Some(o.trim_end_matches('/')) == host);
    (!same).then_some("Origin")
}

/// express-session's `issecure`: TLS, else (with `proxy = Some(true)`) the
/// first `X-Forwarded-Proto` value.
fn is_secure<B>(req: &Request<B>, proxy: Option<bool>) -> bool {
    if req.extensions().get::<SecureConnection>().is_some()
        || req.uri().scheme() == Some(&Scheme::HTTPS)
    {
        return true;
    }
    if proxy != Some(true) {
        return false;
    }
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

impl Shared {
    /// The id named by the request (a verified header token first, then the
    /// cookie), before any store is asked. Forged, unsigned and malformed
    /// values are logged (without their value) and mean "no session".
    /// A cookie that the current secret verified comes with its decoded
    /// signed value, to be sent back as it is.
    fn credential<B>(
        &self,
        req: &Request<B>,
        via: Via,
    ) -> (Option<Verified>, Option<Source>, Option<String>) {
        let config = &self.config;
        if via.header {
            match cookie::read_session_header(
                req.headers(),
                config.header.request.as_ref(),
                &config.signer,
            ) {
                SessionCookie::Valid(v) => return (Some(v), Some(Source::Header), None),
                SessionCookie::Absent => {}
                SessionCookie::Unsigned | SessionCookie::Invalid => {
                    self.refused.log(
                        "session token with an invalid signature or malformed id ignored",
                        config
                            .header
                            .request
                            .as_ref()
                            .map_or("authorization", |h| h.as_str()),
                    );
                }
            }
        }
        if via.cookie {
            match cookie::read_cookie(req.headers(), &config.name, &config.signer) {
                (SessionCookie::Absent, _) => {}
                (SessionCookie::Valid(v), signed) => {
                    return (Some(v), Some(Source::Cookie), signed)
                }
                (SessionCookie::Unsigned, _) => {
                    self.refused
                        .log("unsigned session cookie ignored", &config.name);
                }
                (SessionCookie::Invalid, _) => {
                    self.refused.log(
                        "session cookie with an invalid signature or malformed id ignored",
                        &config.name,
                    );
                }
            }
        }
        (None, None, None)
    }

    fn handle<B>(
        self: &Arc<Self>,
        req: &Request<B>,
        via: Via,
        head: Option<Arc<RequestHead>>,
        cookie_template: Option<sessionkit_core::CookieMeta>,
    ) -> Handle {
        let (verified, source, signed_cookie) = self.credential(req, via);
        let (cookie_id, secret_index) = match verified {
            Some(v) => (Some(v.id), v.secret_index),
            None => (None, 0),
        };
        let state = State::new(cookie_id.is_some());
        Handle {
            shared: self.clone(),
            cookie_id,
            secret_index,
            signed_cookie,
            source,
            via,
            request_secure: is_secure(req, self.config.proxy),
            head,
            cookie_template,
            client: self
                .config
                .track_client
                .then(|| client_of(req, self.config.proxy)),
            state: tokio::sync::Mutex::new(state),
        }
    }
}

fn error_response<B: From<&'static str>>(status: http::StatusCode) -> Response<B> {
    let (status, body) = opaque_parts(status);
    let mut res = Response::new(B::from(body));
    *res.status_mut() = status;
    decorate(res.headers_mut());
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is ready only if polled; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = &self.shared.config;
        if config.reject_cross_site {
            if let Some(signal) = cross_site(&req) {
                tracing::debug!(signal, method = %req.method(), "cross-site request refused");
                let mut res = Response::new(ResBody::from(
                    "Forbidden: cross-site request (Origin / Sec-Fetch-Site)",
                ));
                *res.status_mut() = http::StatusCode::FORBIDDEN;
                decorate(res.headers_mut());
                return Box::pin(async move { Ok(res) });
            }
        }
        // express-session steps aside when `req.session` already exists: a
        // second layer with the same cookie (two merged routers that each
        // carry it, a layer on a router and on a route) leaves the request
        // to the outer one, so one session is loaded, saved and sent.
        if req
            .extensions()
            .get::<Session>()
            .is_some_and(|outer| outer.inner.shared.config.name == config.name)
        {
            return Box::pin(inner.call(req));
        }
        // The request as the closures over it see it, and the cookie of a
        // session it would create, only when such closures are configured.
        let head = config.per_request.then(|| {
            Arc::new(RequestHead {
                method: req.method().clone(),
                uri: original_uri(&req).clone(),
                headers: req.headers().clone(),
                secure: is_secure(&req, config.proxy),
            })
        });
        let template = match (&head, &config.cookie_fn) {
            (Some(h), Some(_)) => Some(config.request_cookie(time::now(), h)),
            _ => None,
        };
        let cookie_path = template
            .as_ref()
            .and_then(|c| c.path.as_deref())
            .unwrap_or(config.path.as_str());
        let via = Via {
            // express-session's "pathname mismatch": no cookie session outside
            // the cookie path, matched against the path the client asked for
            // (`originalUrl`), not what a nesting router left of it. The
            // path does not gate header tokens.
            cookie: config.transport.cookie() && original_uri(&req).path().starts_with(cookie_path),
            header: config.transport.header(),
        };
        if !via.cookie && !via.header {
            return Box::pin(inner.call(req));
        }
        let handle = Arc::new(self.shared.handle(&req, via, head, template));
        req.extensions_mut().insert(Session {
            inner: handle.clone(),
        });
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            match handle.finish().await {
                Ok(delivery) => {
                    if let Some(set_cookie) = delivery.set_cookie {
                        res.headers_mut().append(SET_COOKIE, set_cookie);
                    }
                    if let Some(token) = delivery.token {
                        let name = handle.shared.config.header.response.clone();
                        res.headers_mut().insert(name, token);
                        // A token is a credential: never cache the response.
                        res.headers_mut().insert(
                            http::header::CACHE_CONTROL,
                            http::HeaderValue::from_static("no-store"),
                        );
                    }
                    Ok(res)
                }
                // The configured status for store failures, 413 for a
                // session over the size limit.
                Err(e) => Ok(error_response(e.status())),
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSession;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSession)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_warn_once_a_minute_and_are_all_counted() {
        let r = Refused::default();
        let t0 = Instant::now();
        assert_eq!(r.record(t0), Some(1), "the first one warns");
        for i in 1..1000 {
            assert_eq!(r.record(t0 + Duration::from_millis(i)), None);
        }
        let later = t0 + Duration::from_secs(REFUSED_WARN_INTERVAL + 1);
        assert_eq!(
            r.record(later),
            Some(1000),
            "then one warning with the count"
        );
        assert_eq!(r.record(later), None);
        assert_eq!(r.total.load(std::sync::atomic::Ordering::Relaxed), 1002);
    }
}

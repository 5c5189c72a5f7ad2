//! The middleware's configuration: express-session's options with the
//! recommended values as defaults.

use crate::cookie;
use crate::events::{EventHook, SessionEvent};
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderName, StatusCode};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{CookieMeta, Error, Priority, SameSite, Secret, SessionId, Signer};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The `Secure` cookie attribute policy (express-session's `cookie.secure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurePolicy {
    /// No `Secure` attribute (express-session's `false`, the default).
    #[default]
    Never,
    /// Always `Secure`: the cookie is only sent (and only set) over HTTPS.
    Always,
    /// `Secure` when the request that creates the session is secure
    /// (express-session's `"auto"`): see [`SessionConfigBuilder::proxy`].
    Auto,
}

/// The `SameSite` cookie attribute policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSitePolicy {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default here; express-session sets none by default).
    #[default]
    Lax,
    /// `SameSite=None`: the cookie is sent on cross-site requests. Needs `Secure`.
    None,
    /// `None` when the request that creates the session is secure, `Lax` otherwise
    /// (browsers refuse `SameSite=None` without `Secure`).
    Auto,
    /// No `SameSite` attribute (express-session's default; browsers then apply their own).
    Omit,
}

/// What happens to the stored session when a handler calls
/// [`Session::unset`](crate::Session::unset) (express-session's `unset`, for
/// `delete req.session` / `req.session = null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnsetPolicy {
    /// Keep the stored session; this request's changes are discarded (the default).
    #[default]
    Keep,
    /// Delete the stored session at the end of the request.
    Destroy,
}

/// Where the signed session id travels between client and server.
///
/// Whatever the transport, the value is the one express-session puts in its
/// cookie: `s:<id>.<mac>` signed like `cookie-signature`, with the same
/// secrets and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// The session cookie only (the default; express-session's behaviour).
    #[default]
    Cookie,
    /// A request header only ([`TokenHeader`]), for API and mobile clients:
    /// no cookie is read or set, and the cookie-only options (`path`,
    /// `domain`, `secure`, `same_site`, …) do not apply.
    Header,
    /// Both. A request that carries a valid header token uses it and its
    /// cookie is ignored; otherwise the cookie is read as usual (an invalid
    /// header token is ignored, like a forged cookie). A response answers in
    /// the transport the request used; a new session that no credential
    /// named gets both a `Set-Cookie` and the token header.
    Both,
}

impl Transport {
    pub(crate) fn cookie(self) -> bool {
        matches!(self, Transport::Cookie | Transport::Both)
    }

    pub(crate) fn header(self) -> bool {
        matches!(self, Transport::Header | Transport::Both)
    }
}

/// The request header that carries the signed session id with
/// [`Transport::Header`] or [`Transport::Both`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenHeader {
    /// `Authorization: Bearer s:<id>.<mac>` (the default). New and
    /// regenerated sessions send their token in the response header set by
    /// [`SessionConfigBuilder::token_response_header`] (default
    /// `X-Session-Token`), since `Authorization` is a request header.
    #[default]
    Bearer,
    /// A header of this name (e.g. `X-Session-Id`) on requests, and the same
    /// header on responses that hand out a new token.
    Named(String),
}

/// An idle timeout and an absolute lifetime for sessions (OWASP's session
/// timeouts), configured on the layer with
/// [`SessionConfigBuilder::expiry_policy`] and overridable per session with
/// [`Session::set_expiry_policy`](crate::Session::set_expiry_policy)
/// (e.g. "remember me").
///
/// A session with a policy expires at the earlier of `last request + idle`
/// and `created + absolute`: that instant is its cookie's `Expires` and its
/// store expiry, so every store enforces it with its own TTL. The policy is
/// stored with the session (its [`SessionMeta`](sessionkit_core::SessionMeta)),
/// so later requests do not reset it, and a session found past its absolute
/// deadline is destroyed and replaced by a new one even if the store still
/// has it.
///
/// ```
/// use sessionkit_tower::ExpiryPolicy;
/// use std::time::Duration;
/// let policy = ExpiryPolicy::new()
///     .idle(Duration::from_secs(30 * 60))
///     .absolute(Duration::from_secs(12 * 3600));
/// assert_eq!(policy.idle_timeout(), Some(Duration::from_secs(1800)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpiryPolicy {
    idle: Option<Duration>,
    absolute: Option<Duration>,
}

impl ExpiryPolicy {
    /// No timeout yet; add [`idle`](Self::idle) and/or [`absolute`](Self::absolute).
    pub fn new() -> Self {
        ExpiryPolicy::default()
    }

    /// The session expires this long after its last request (rounded down
    /// to whole seconds, at least one). As with `max_age`, the browser's
    /// cookie slides only when it is re-sent: use
    /// [`rolling`](SessionConfigBuilder::rolling) for that.
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The session expires this long after it was created, however active.
    pub fn absolute(mut self, absolute: Duration) -> Self {
        self.absolute = Some(absolute);
        self
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }

    /// The absolute lifetime, if any.
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.idle.is_some_and(|d| d.as_secs() == 0) {
            return Err(config_error("the idle timeout must be at least one second"));
        }
        if self.absolute.is_some_and(|d| d.is_zero()) {
            return Err(config_error("the absolute lifetime must not be zero"));
        }
        Ok(())
    }
}

/// The header names resolved from [`Transport`] and [`TokenHeader`].
#[derive(Debug, Clone)]
pub(crate) struct HeaderSpec {
    /// `None`: `Authorization: Bearer`.
    pub(crate) request: Option<HeaderName>,
    /// Where new tokens are sent.
    pub(crate) response: HeaderName,
}

/// The default response header for Bearer tokens.
pub const DEFAULT_TOKEN_RESPONSE_HEADER: &str = "x-session-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Browser,
    MaxAge(Duration),
    At(Timestamp),
}

/// An id generator; it is given the request when one of the closures over
/// the request is configured.
type GenId = Arc<dyn Fn(Option<&RequestHead>) -> SessionId + Send + Sync>;
/// [`SessionConfigBuilder::cookie_with`]'s closure.
type CookieFn = Arc<dyn Fn(&RequestHead, &mut CookieMeta) + Send + Sync>;

/// What the closures over the request ([`SessionConfigBuilder::genid_with`],
/// [`SessionConfigBuilder::cookie_with`]) see of it: express-session's `req`
/// for its `genid(req)` and `cookie(req)` options. Built only when one of
/// them is configured.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) headers: http::HeaderMap,
    pub(crate) secure: bool,
}

impl RequestHead {
    /// The request method.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The URI the client asked for (under axum's `Router::nest`, the
    /// original one, with the prefix).
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// The host the client asked for: the `Host` header, else the URI's
    /// authority (HTTP/2), without the port.
    pub fn host(&self) -> Option<&str> {
        let host = self
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.uri.authority().map(|a| a.as_str()))?;
        // `[::1]:8080` keeps its brackets; `example.com:8080` loses the port.
        Some(match host.rsplit_once(':') {
            Some((h, port))
                if !h.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && !port.is_empty()
                    && (!h.contains(':') || h.ends_with(']')) =>
            {
                h
            }
            _ => host,
        })
    }

    /// Whether the request is secure (TLS, or a trusted `X-Forwarded-Proto`
    /// with [`proxy`](SessionConfigBuilder::proxy)).
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}

/// The session middleware's configuration. Build it with
/// [`SessionConfig::builder`]; every value is checked once, in
/// [`SessionConfigBuilder::build`].
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) name: String,
    pub(crate) signer: Signer,
    expiry: Expiry,
    pub(crate) domain: Option<String>,
    pub(crate) path: String,
    http_only: bool,
    pub(crate) secure: SecurePolicy,
    same_site: SameSitePolicy,
    partitioned: bool,
    priority: Option<Priority>,
    pub(crate) resave: bool,
    pub(crate) save_uninitialized: bool,
    pub(crate) rolling: bool,
    pub(crate) unset: UnsetPolicy,
    pub(crate) proxy: Option<bool>,
    genid: GenId,
    /// Re-sign old-secret cookies on every response that finds the session.
    pub(crate) resign_old_cookies: bool,
    /// Most live sessions one principal keeps; a login past it revokes the
    /// oldest.
    pub(crate) max_sessions_per_principal: Option<usize>,
    /// Refuse unsafe methods from other sites (403).
    pub(crate) reject_cross_site: bool,
    /// Per-request cookie settings for new sessions.
    pub(crate) cookie_fn: Option<CookieFn>,
    /// A closure needs the request ([`RequestHead`]).
    pub(crate) per_request: bool,
    pub(crate) touch_after: Option<Duration>,
    pub(crate) error_status: StatusCode,
    pub(crate) max_session_size: Option<usize>,
    pub(crate) compare_and_set: bool,
    pub(crate) conflict_status: StatusCode,
    pub(crate) transport: Transport,
    pub(crate) header: HeaderSpec,
    pub(crate) expiry_policy: Option<ExpiryPolicy>,
    pub(crate) track_client: bool,
    pub(crate) on_event: Option<EventHook>,
}

/// The default [`SessionConfigBuilder::max_session_size`]: 1 MiB of encoded JSON.
pub const DEFAULT_MAX_SESSION_SIZE: usize = 1024 * 1024;

/// The smallest accepted [`SessionConfigBuilder::max_session_size`]: below
/// it not even an empty session with long cookie attributes fits.
pub const MIN_MAX_SESSION_SIZE: usize = 1024;

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("name", &self.name)
            .field("secrets", &"<redacted>")
            .field("expiry", &self.expiry)
            .field("domain", &self.domain)
            .field("path", &self.path)
            .field("http_only", &self.http_only)
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .field("partitioned", &self.partitioned)
            .field("priority", &self.priority)
            .field("resave", &self.resave)
            .field("save_uninitialized", &self.save_uninitialized)
            .field("rolling", &self.rolling)
            .field("resign_old_cookies", &self.resign_old_cookies)
            .field(
                "max_sessions_per_principal",
                &self.max_sessions_per_principal,
            )
            .field("reject_cross_site", &self.reject_cross_site)
            .field("unset", &self.unset)
            .field("proxy", &self.proxy)
            .field("touch_after", &self.touch_after)
            .field("error_status", &self.error_status)
            .field("max_session_size", &self.max_session_size)
            .field("transport", &self.transport)
            .field("header", &self.header)
            .field("expiry_policy", &self.expiry_policy)
            .field("track_client", &self.track_client)
            .field("on_event", &self.on_event.as_ref().map(|_| "set"))
            .field("cookie_with", &self.cookie_fn.as_ref().map(|_| "set"))
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// Whether `touch_after` could let a browser-session cookie's record
    /// expire in a store whose default TTL is `store_ttl` before it is
    /// touched again.
    pub(crate) fn touch_after_outlives(&self, store_ttl: Duration) -> bool {
        matches!(self.expiry, Expiry::Browser) && self.touch_after.is_some_and(|t| t >= store_ttl)
    }

    /// Starts a configuration with the defaults: cookie `connect.sid`, `Path=/`,
    /// `HttpOnly`, `SameSite=Lax`, not `Secure`, a browser-session cookie (no
    /// `Expires`), `resave = false`, `save_uninitialized = false`,
    /// `rolling = false`, `unset = Keep`, `proxy = None`, no `touch_after`,
    /// store errors answered with 503, sessions of at most
    /// [`DEFAULT_MAX_SESSION_SIZE`] (1 MiB) of JSON. A secret is required.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder {
            name: "connect.sid".to_owned(),
            secrets: Vec::new(),
            error: None,
            expiry: Expiry::Browser,
            domain: None,
            path: "/".to_owned(),
            http_only: true,
            secure: SecurePolicy::Never,
            same_site: SameSitePolicy::Lax,
            partitioned: false,
            priority: None,
            resave: false,
            save_uninitialized: false,
            rolling: false,
            unset: UnsetPolicy::Keep,
            proxy: None,
            genid: None,
            resign_old_cookies: false,
            max_sessions_per_principal: None,
            reject_cross_site: false,
            genid_per_request: false,
            cookie_fn: None,
            touch_after: None,
            error_status: StatusCode::SERVICE_UNAVAILABLE,
            max_session_size: Some(DEFAULT_MAX_SESSION_SIZE),
            compare_and_set: false,
            conflict_status: StatusCode::CONFLICT,
            transport: Transport::Cookie,
            token_header: TokenHeader::Bearer,
            token_response_header: DEFAULT_TOKEN_RESPONSE_HEADER.to_owned(),
            expiry_policy: None,
            track_client: false,
            on_event: None,
        }
    }

    /// Where the signed session id travels (default [`Transport::Cookie`]).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie path; requests outside it get no session.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn generate_id(&self, head: Option<&RequestHead>) -> SessionId {
        (self.genid)(head)
    }

    /// The cookie of a session created by this request: the configured one,
    /// changed by [`cookie_with`](SessionConfigBuilder::cookie_with)'s
    /// closure. A domain or path from the closure that could inject cookie
    /// attributes is logged and the configured value kept.
    pub(crate) fn request_cookie(&self, now: Timestamp, head: &RequestHead) -> CookieMeta {
        let mut c = self.new_cookie(now, head.secure);
        if let Some(f) = &self.cookie_fn {
            let configured = c.clone();
            f(head, &mut c);
            if c.domain
                .as_deref()
                .is_some_and(|d| !cookie::valid_domain(d))
            {
                tracing::error!("cookie_with: invalid cookie domain ignored");
                c.domain = configured.domain;
            }
            if c.path.as_deref().is_some_and(|p| !cookie::valid_path(p)) {
                tracing::error!("cookie_with: invalid cookie path ignored");
                c.path = configured.path;
            }
        }
        c
    }

    /// The cookie metadata of a new session (express-session's `new Cookie(options)`).
    pub(crate) fn new_cookie(&self, now: Timestamp, request_secure: bool) -> CookieMeta {
        let mut c = CookieMeta::new();
        match self.expiry {
            Expiry::Browser => {}
            Expiry::MaxAge(d) => c.set_max_age(Some(d), now),
            Expiry::At(t) => {
                c.expires = Some(t);
                c.original_max_age =
                    Some(t.timestamp_millis().saturating_sub(now.timestamp_millis()));
            }
        }
        c.http_only = Some(self.http_only);
        c.path = Some(self.path.clone());
        c.domain = self.domain.clone();
        c.secure = match self.secure {
            SecurePolicy::Never => None,
            SecurePolicy::Always => Some(true),
            SecurePolicy::Auto => Some(request_secure),
        };
        c.same_site = match self.same_site {
            SameSitePolicy::Strict => Some(SameSite::Strict),
            SameSitePolicy::Lax => Some(SameSite::Lax),
            SameSitePolicy::None => Some(SameSite::None),
            SameSitePolicy::Auto if request_secure => Some(SameSite::None),
            SameSitePolicy::Auto => Some(SameSite::Lax),
            SameSitePolicy::Omit => None,
        };
        c.partitioned = self.partitioned.then_some(true);
        c.priority = self.priority;
        c
    }
}

/// Builds a [`SessionConfig`]. Setters never fail; [`build`](Self::build)
/// reports the first refused value.
pub struct SessionConfigBuilder {
    name: String,
    secrets: Vec<Secret>,
    error: Option<Error>,
    expiry: Expiry,
    domain: Option<String>,
    path: String,
    http_only: bool,
    secure: SecurePolicy,
    same_site: SameSitePolicy,
    partitioned: bool,
    priority: Option<Priority>,
    resave: bool,
    save_uninitialized: bool,
    rolling: bool,
    unset: UnsetPolicy,
    proxy: Option<bool>,
    genid: Option<GenId>,
    resign_old_cookies: bool,
    max_sessions_per_principal: Option<usize>,
    reject_cross_site: bool,
    genid_per_request: bool,
    cookie_fn: Option<CookieFn>,
    touch_after: Option<Duration>,
    error_status: StatusCode,
    max_session_size: Option<usize>,
    compare_and_set: bool,
    conflict_status: StatusCode,
    transport: Transport,
    token_header: TokenHeader,
    token_response_header: String,
    expiry_policy: Option<ExpiryPolicy>,
    track_client: bool,
    on_event: Option<EventHook>,
}

impl fmt::Debug for SessionConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfigBuilder")
            .field("name", &self.name)
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

fn config_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::Config(msg.into())
}

impl SessionConfigBuilder {
    fn fail(&mut self, err: Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    /// The cookie name (default `connect.sid`). Must be an RFC 7230 token:
    /// no spaces, `;`, `=`, `,`, quotes or control characters.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The one secret that signs and verifies cookies (at least 32 bytes).
    /// Replaces any secret set before.
    ///
    /// Use the same secret as a Node service to share its sessions.
    pub fn secret(self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets([secret])
    }

    /// Several secrets for rotation: the first signs, every one verifies.
    /// Replaces any secret set before.
    ///
    /// The first must be at least 32 bytes. The others may be shorter (a
    /// Node service's `keyboard cat`): they only verify, with a warning in
    /// the log at start-up. Give Rust `[long, short]` and Node
    /// `[long, short]`; once every cookie signed with the short one has been
    /// re-sent or has expired (the cookie lifetime after the switch), drop it.
    ///
    /// A cookie signed with an older secret is re-signed with the first one
    /// when its cookie is sent anyway (`rolling`, a changed expiry or
    /// cookie), as express-session does; see
    /// [`resign_old_cookies`](Self::resign_old_cookies) to re-sign on every
    /// response instead.
    pub fn secrets<I>(mut self, secrets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.secrets.clear();
        for (i, s) in secrets.into_iter().enumerate() {
            let secret = if i == 0 {
                Secret::new(s)
            } else {
                Secret::verify_only(s)
            };
            match secret {
                Ok(s) => {
                    if s.is_verify_only() {
                        tracing::warn!(
                            position = i,
                            "a session secret shorter than 32 bytes only verifies cookies; retire it once the cookies it signed have expired"
                        );
                    }
                    self.secrets.push(s)
                }
                Err(e) => self.fail(e),
            }
        }
        self
    }

    /// Cross-site request forgery protection at the layer (default off):
    /// a request with an unsafe method (anything but GET, HEAD, OPTIONS,
    /// TRACE) that the browser says comes from another site is answered
    /// **403** before the handler runs: `Sec-Fetch-Site` other than
    /// `same-origin` or `none`, or else an `Origin` whose host is not the
    /// request's `Host`. Requests without either header (non-browser
    /// clients, very old browsers) pass: pair it with
    /// [`Session::csrf_token`](crate::Session::csrf_token) /
    /// [`verify_csrf_token`](crate::Session::verify_csrf_token) in forms
    /// for those. Cross-origin APIs that take credentials on purpose need
    /// their own layer without it.
    pub fn reject_cross_site_requests(mut self, on: bool) -> Self {
        self.reject_cross_site = on;
        self
    }

    /// At most `max` live sessions per principal: when a request gives a
    /// session its principal ([`Session::set_principal`](crate::Session::set_principal),
    /// a login), the principal's oldest other sessions (by creation) are
    /// revoked after the save until it has `max`. Needs a store with the
    /// per-user index (`Capabilities::principal_index`); without one it is
    /// logged and nothing is revoked. Default: no limit. `0` counts as 1.
    pub fn max_sessions_per_principal(mut self, max: usize) -> Self {
        self.max_sessions_per_principal = Some(max.max(1));
        self
    }

    /// Re-sign a cookie that an older secret verified on every response
    /// that finds its session, even one that would send no cookie (default
    /// `false`, as express-session). Off, a rotation rolled out to Rust
    /// before Node (Rust `[new, old]`, Node still `[old]`) does not hand
    /// Node cookies it cannot verify on read-only requests; on, the old
    /// secret can be retired sooner. Header tokens are always re-issued.
    pub fn resign_old_cookies(mut self, on: bool) -> Self {
        self.resign_old_cookies = on;
        self
    }

    /// Sessions expire this long after their last request (express-session's
    /// `cookie.maxAge`): the cookie gets `Expires = now + max_age` and the
    /// store record the same expiry. Default: a browser-session cookie, and
    /// the store's default TTL for the record.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.expiry = Expiry::MaxAge(max_age);
        self
    }

    /// A fixed expiry instant for new sessions (express-session's
    /// `cookie.expires`). As in express-session, the time left at creation
    /// becomes the session's `originalMaxAge`; prefer [`max_age`](Self::max_age).
    pub fn expires(mut self, at: Timestamp) -> Self {
        self.expiry = Expiry::At(at);
        self
    }

    /// The `Domain` attribute (default none: host-only cookie).
    ///
    /// Security: a domain makes the cookie visible to every subdomain.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Path` attribute (default `/`). Requests whose path does not start
    /// with it get no session at all, as in express-session.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `HttpOnly` attribute (default `true`).
    ///
    /// Security: `false` lets page scripts read the session cookie, so any
    /// cross-site-scripting bug can steal sessions. Keep it `true`.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `Secure` attribute (default [`SecurePolicy::Never`]).
    ///
    /// Security: use [`SecurePolicy::Always`] in production behind HTTPS.
    /// A secure cookie is never set on a response to an insecure request.
    pub fn secure(mut self, secure: SecurePolicy) -> Self {
        self.secure = secure;
        self
    }

    /// The `SameSite` attribute (default [`SameSitePolicy::Lax`]).
    ///
    /// Security: `Lax` or `Strict` stop most cross-site request forgery;
    /// `None` sends the cookie on every cross-site request and requires `Secure`.
    pub fn same_site(mut self, same_site: SameSitePolicy) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Partitioned` attribute (CHIPS; default off). Requires `Secure`.
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// The `Priority` attribute (default none).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Save every loaded session at the end of each request even when it was
    /// not modified (default `false`). Only for stores without a cheap touch;
    /// it widens the lost-update window between concurrent requests.
    pub fn resave(mut self, resave: bool) -> Self {
        self.resave = resave;
        self
    }

    /// Save new sessions (and send their cookie) even when nothing was
    /// stored in them (default `false`).
    ///
    /// Privacy: `true` sets a cookie for every visitor before any consent.
    pub fn save_uninitialized(mut self, save: bool) -> Self {
        self.save_uninitialized = save;
        self
    }

    /// Send the cookie on every response, moving its expiry forward
    /// (default `false`). Each request then reads the session from the store.
    pub fn rolling(mut self, rolling: bool) -> Self {
        self.rolling = rolling;
        self
    }

    /// What [`Session::unset`](crate::Session::unset) does to the stored
    /// session (default [`UnsetPolicy::Keep`]).
    pub fn unset(mut self, unset: UnsetPolicy) -> Self {
        self.unset = unset;
        self
    }

    /// Whether to trust `X-Forwarded-Proto` to decide if a request is secure
    /// (for `Secure` cookies and the `Auto` policies).
    ///
    /// `Some(true)`: the first value of the header decides. `Some(false)` and
    /// `None` (the default): only the request itself counts: an `https` URI
    /// scheme or a [`SecureConnection`](crate::SecureConnection) extension.
    /// (express-session's unset value defers to express's `trust proxy`,
    /// which tower has no equivalent of.)
    ///
    /// Security: trust the header only behind a proxy that sets it, or
    /// clients can claim to be on HTTPS.
    pub fn proxy(mut self, proxy: Option<bool>) -> Self {
        self.proxy = proxy;
        self
    }

    /// A custom session id generator (express-session's `genid`). The ids it
    /// returns are [`SessionId`]s, so they are validated; a generated id that
    /// already exists in the store is never reused: the middleware asks for
    /// another one (at most three times).
    ///
    /// Security: ids are bearer credentials; keep at least 128 random bits.
    pub fn genid(mut self, genid: impl Fn() -> SessionId + Send + Sync + 'static) -> Self {
        self.genid = Some(Arc::new(move |_| genid()));
        self.genid_per_request = false;
        self
    }

    /// Like [`genid`](Self::genid), given the request (express-session's
    /// `genid(req)`): e.g. an id that carries the tenant of the host.
    ///
    /// ```
    /// # use sessionkit_tower::{SessionConfig, SessionId};
    /// let config = SessionConfig::builder()
    ///     .secret("a secret of at least thirty-two bytes!!")
    ///     .genid_with(|req| {
    ///         let tenant = req.host().and_then(|h| h.split('.').next()).unwrap_or("www");
    ///         let id = format!("{tenant}-{}", SessionId::generate().as_str());
    ///         SessionId::parse(&id).unwrap_or_else(|_| SessionId::generate())
    ///     })
    ///     .build();
    /// # assert!(config.is_ok());
    /// ```
    pub fn genid_with(
        mut self,
        genid: impl Fn(&RequestHead) -> SessionId + Send + Sync + 'static,
    ) -> Self {
        self.genid = Some(Arc::new(move |head| match head {
            Some(head) => genid(head),
            None => SessionId::generate(),
        }));
        self.genid_per_request = true;
        self
    }

    /// Cookie settings that depend on the request (express-session's
    /// `cookie` given as a function of `req`): the closure gets the
    /// configured cookie of a new session and changes what it needs, e.g.
    /// the domain of the host asked for, a tenant's path, `secure` on some
    /// routes. It runs once per request, before the session is read: a
    /// request outside the resulting path gets no session, as outside the
    /// configured one. Sessions loaded from the store keep the cookie they
    /// were created with (as with express). A domain or path that could
    /// inject attributes is logged and the configured one kept.
    ///
    /// ```
    /// # use sessionkit_tower::SessionConfig;
    /// let config = SessionConfig::builder()
    ///     .secret("a secret of at least thirty-two bytes!!")
    ///     .cookie_with(|req, cookie| {
    ///         if let Some(host) = req.host() {
    ///             cookie.domain = Some(host.to_owned());
    ///         }
    ///         if req.uri().path().starts_with("/admin") {
    ///             cookie.path = Some("/admin".to_owned());
    ///             cookie.secure = Some(true);
    ///         }
    ///     })
    ///     .build();
    /// # assert!(config.is_ok());
    /// ```
    pub fn cookie_with(
        mut self,
        cookie: impl Fn(&RequestHead, &mut CookieMeta) + Send + Sync + 'static,
    ) -> Self {
        self.cookie_fn = Some(Arc::new(cookie));
        self
    }

    /// Skip the store touch of an unmodified session when this process wrote
    /// or touched it less than `interval` ago (like connect-mongo's
    /// `touchAfter`). Default: touch on every request, as express-session does.
    ///
    /// Must be shorter than `max_age` (and the store's default TTL), or idle
    /// sessions could expire between two touches.
    pub fn touch_after(mut self, interval: Duration) -> Self {
        self.touch_after = Some(interval);
        self
    }

    /// The status answered when the store fails (default 503). The body is
    /// always the status' reason phrase: no internal detail reaches the client.
    pub fn error_status(mut self, status: StatusCode) -> Self {
        self.error_status = status;
        self
    }

    /// The largest session the middleware writes to the store, in bytes of
    /// the stored JSON (data and cookie metadata, as
    /// [`Record::to_json`](sessionkit_core::Record::to_json) writes it).
    /// Default: [`DEFAULT_MAX_SESSION_SIZE`] (1 MiB); `None` for no limit;
    /// at least [`MIN_MAX_SESSION_SIZE`].
    ///
    /// Checked twice, never after a store write has started:
    /// [`Session::insert`](crate::Session::insert) refuses a value that
    /// would make the session larger (the session keeps its previous value),
    /// and every create or save (at the end of the request or through
    /// [`Session::save`](crate::Session::save)) refuses a larger session, so
    /// the stored record stays as it was. Either way the error is a
    /// [`SessionError`](crate::SessionError) answering **413 Payload Too
    /// Large** ([`is_too_large`](crate::SessionError::is_too_large)): the
    /// request asked for more than the server keeps, retrying will not help,
    /// and it is not a store outage. A loaded session that is already over
    /// the limit is still read and touched; only writing it is refused.
    ///
    /// Security: without a limit a client that can grow its session (a cart,
    /// a history) makes every later request move that much data to and
    /// from the store.
    pub fn max_session_size(mut self, bytes: Option<usize>) -> Self {
        self.max_session_size = bytes;
        self
    }

    /// Compare-and-set saves (default off: last writer wins, as in
    /// express-session and every peer). When on, a session is loaded with
    /// its stored version and written only if no other request changed it
    /// meanwhile ([`Store::save_if`](sessionkit_core::Store::save_if)); a
    /// request that lost the race answers
    /// [`conflict_status`](Self::conflict_status) (409) without writing,
    /// so the client can retry it. The store must support it (every store
    /// in this workspace does); otherwise saves fail with the error status.
    pub fn compare_and_set(mut self, on: bool) -> Self {
        self.compare_and_set = on;
        self
    }

    /// The status of a request whose save lost a compare-and-set race
    /// (default 409 Conflict). Must be a 4xx or 5xx status.
    pub fn conflict_status(mut self, status: StatusCode) -> Self {
        self.conflict_status = status;
        self
    }

    /// Where the signed session id travels (default [`Transport::Cookie`]).
    /// [`Transport::Header`] reads it from [`token_header`](Self::token_header)
    /// instead, for API and mobile clients; [`Transport::Both`] accepts
    /// either (a valid header token wins over the cookie).
    ///
    /// Security: a header token is not sent by the browser on its own, so
    /// it is not exposed to cross-site request forgery the way a cookie is,
    /// but the client must store it; keep it out of `localStorage` where
    /// page scripts (and any cross-site-scripting bug) can read it.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The request header of the header transport (default
    /// [`TokenHeader::Bearer`]). A named header must be a valid header
    /// name other than `Authorization`, `Cookie` and `Set-Cookie`.
    pub fn token_header(mut self, header: TokenHeader) -> Self {
        self.token_header = header;
        self
    }

    /// The idle timeout and absolute lifetime of new sessions (default none:
    /// sessions expire as `max_age` says, as in express-session). See
    /// [`ExpiryPolicy`]. On a session with a policy the policy decides the
    /// expiry, so `max_age`/`expires` cannot be combined with it.
    ///
    /// Sessions stored before the policy was configured get it (counted
    /// from then, their creation time being unknown) the next time they are
    /// saved; a session without any metadata is never rewritten just to add it.
    ///
    /// Node services sharing the store do not know the policy: a request they
    /// serve resets the cookie expiry to `now + idle` (the policy's idle
    /// timeout is stored as `originalMaxAge`), and this middleware still
    /// destroys the session at its absolute deadline.
    pub fn expiry_policy(mut self, policy: ExpiryPolicy) -> Self {
        self.expiry_policy = Some(policy);
        self
    }

    /// Record the `User-Agent` and client address of the request that
    /// creates a session in its [`SessionMeta`](sessionkit_core::SessionMeta)
    /// (default off), for an "your active sessions" page. The address is
    /// the [`ClientIp`](crate::ClientIp) request extension when the app
    /// inserts one, else (with [`proxy`](Self::proxy) `Some(true)`) the
    /// first `X-Forwarded-For` value, else none. The user agent is cut to
    /// 256 bytes.
    ///
    /// Privacy: both are personal data; store them only when you show them
    /// to their owner, and say so in your privacy notice.
    pub fn track_client(mut self, on: bool) -> Self {
        self.track_client = on;
        self
    }

    /// A callback for session lifecycle events: created, regenerated,
    /// destroyed and expired ([`SessionEvent`](crate::SessionEvent)), e.g.
    /// for an audit log. Default: none. Setting it again replaces it.
    ///
    /// It runs on the request's task after the store operation succeeded,
    /// so it must be quick and must not block or panic: hand the event to a
    /// channel and do the work elsewhere. Expiries are reported as far as
    /// the middleware can tell (see [`SessionEvent`](crate::SessionEvent)).
    ///
    /// ```
    /// # fn main() -> Result<(), sessionkit_tower::Error> {
    /// use sessionkit_tower::{SessionConfig, SessionEvent};
    /// let (events, mut audit) = tokio::sync::broadcast::channel::<SessionEvent>(1024);
    /// let config = SessionConfig::builder()
    ///     .secret("a secret of at least thirty-two bytes!!")
    ///     .on_event(move |event| {
    ///         // No receiver, or a full channel: the event is dropped, never waited for.
    ///         let _ = events.send(event.clone());
    ///     })
    ///     .build()?;
    /// # let _ = (config, audit.try_recv());
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_event(mut self, hook: impl Fn(&SessionEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    /// The response header that hands out new tokens with
    /// [`TokenHeader::Bearer`] (default `X-Session-Token`). A
    /// [`TokenHeader::Named`] header answers in its own name.
    pub fn token_response_header(mut self, name: impl Into<String>) -> Self {
        self.token_response_header = name.into();
        self
    }
}

fn header_spec(token_header: &TokenHeader, response: &str) -> Result<HeaderSpec, Error> {
    {
        let usable = |name: &str, what: &'static str| -> Result<HeaderName, Error> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| config_error(format!("{what} is not a valid header name")))?;
            if [AUTHORIZATION, COOKIE, SET_COOKIE].contains(&name) {
                return Err(config_error(format!(
                    "{what} must not be Authorization, Cookie or Set-Cookie"
                )));
            }
            Ok(name)
        };
        Ok(match token_header {
            TokenHeader::Bearer => HeaderSpec {
                request: None,
                response: usable(response, "token_response_header")?,
            },
            TokenHeader::Named(name) => {
                let name = usable(name, "token_header")?;
                HeaderSpec {
                    request: Some(name.clone()),
                    response: name,
                }
            }
        })
    }
}

impl SessionConfigBuilder {
    /// Checks every value and builds the configuration.
    pub fn build(self) -> Result<SessionConfig, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !cookie::valid_name(&self.name) {
            return Err(config_error(
                "cookie name must be a non-empty token (no spaces, separators or control characters)",
            ));
        }
        let header = header_spec(&self.token_header, &self.token_response_header)?;
        let signer = Signer::new(self.secrets)?;
        if let Some(domain) = &self.domain {
            if !cookie::valid_domain(domain) {
                return Err(config_error("cookie domain is not a valid domain name"));
            }
        }
        if !cookie::valid_path(&self.path) {
            return Err(config_error(
                "cookie path must start with '/' and contain only printable ASCII without ';'",
            ));
        }
        // Browsers drop a `SameSite=None` cookie without `Secure`: refuse
        // every setting that could send one.
        match (self.secure, self.same_site) {
            (SecurePolicy::Never | SecurePolicy::Auto, SameSitePolicy::None) => {
                return Err(config_error(
                    "SameSite=None requires Secure on every response: use SecurePolicy::Always, or SameSitePolicy::Auto with SecurePolicy::Auto",
                ));
            }
            (SecurePolicy::Never, SameSitePolicy::Auto) => {
                return Err(config_error(
                    "SameSitePolicy::Auto sends SameSite=None on secure requests, which requires Secure: use SecurePolicy::Auto or Always with it",
                ));
            }
            _ => {}
        }
        if self.secure == SecurePolicy::Never && self.partitioned {
            return Err(config_error("Partitioned requires Secure"));
        }
        if !(self.conflict_status.is_client_error() || self.conflict_status.is_server_error()) {
            return Err(config_error("conflict_status must be a 4xx or 5xx status"));
        }
        if !(self.error_status.is_client_error() || self.error_status.is_server_error()) {
            return Err(config_error("error_status must be a 4xx or 5xx status"));
        }
        if self
            .max_session_size
            .is_some_and(|n| n < MIN_MAX_SESSION_SIZE)
        {
            return Err(config_error(
                "max_session_size must be at least 1024 bytes (or None for no limit)",
            ));
        }
        if let Some(t) = self.touch_after {
            let lifetime = match self.expiry {
                Expiry::MaxAge(d) => Some(d),
                // Checked against the store's own TTL by the layer.
                Expiry::Browser => None,
                Expiry::At(_) => None,
            };
            if lifetime.is_some_and(|l| t >= l) {
                return Err(config_error("touch_after must be shorter than max_age"));
            }
        }
        if let Some(policy) = &self.expiry_policy {
            policy.check()?;
            if self.expiry != Expiry::Browser {
                return Err(config_error(
                    "expiry_policy decides the session lifetime: do not combine it with max_age or expires",
                ));
            }
            if let (Some(t), Some(idle)) = (self.touch_after, policy.idle) {
                if t >= idle {
                    return Err(config_error(
                        "touch_after must be shorter than the idle timeout",
                    ));
                }
            }
        }
        if let Expiry::At(t) = self.expiry {
            if t <= time::now() {
                return Err(config_error("cookie expires is in the past"));
            }
        }
        Ok(SessionConfig {
            name: self.name,
            signer,
            expiry: self.expiry,
            domain: self.domain,
            path: self.path,
            http_only: self.http_only,
            secure: self.secure,
            same_site: self.same_site,
            partitioned: self.partitioned,
            priority: self.priority,
            resave: self.resave,
            save_uninitialized: self.save_uninitialized,
            rolling: self.rolling,
            unset: self.unset,
            proxy: self.proxy,
            per_request: self.genid_per_request || self.cookie_fn.is_some(),
            resign_old_cookies: self.resign_old_cookies,
            max_sessions_per_principal: self.max_sessions_per_principal,
            reject_cross_site: self.reject_cross_site,
            cookie_fn: self.cookie_fn,
            genid: self
                .genid
                .unwrap_or_else(|| Arc::new(|_| SessionId::generate())),
            touch_after: self.touch_after,
            error_status: self.error_status,
            max_session_size: self.max_session_size,
            compare_and_set: self.compare_and_set,
            conflict_status: self.conflict_status,
            transport: self.transport,
            header,
            expiry_policy: self
                .expiry_policy
                .filter(|p| p.idle.is_some() || p.absolute.is_some()),
            track_client: self.track_client,
            on_event: self.on_event,
        })
    }
}

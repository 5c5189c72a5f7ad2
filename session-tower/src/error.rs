use axum_core::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use std::error::Error as StdError;
use std::fmt;

/// Why a [`Session`](crate::Session) call failed.
///
/// As an axum response it is the configured status (503 by default) for
/// store failures, 413 for a session over the size limit and 500 otherwise, with the status' reason phrase as the
/// only body: the cause is logged with `tracing`, never sent to the client.
#[derive(Debug)]
pub struct SessionError {
    kind: Kind,
    status: StatusCode,
}

#[derive(Debug)]
enum Kind {
    Store(sessionkit_core::Error),
    Value(serde_json::Error),
    ReservedKey(&'static str),
    ReservedByNode(&'static str),
    Csrf,
    InvalidCookie(&'static str),
    TooLarge { size: usize, limit: usize },
    Conflict,
    Unset,
    Closed,
}

impl SessionError {
    pub(crate) fn store(err: sessionkit_core::Error, status: StatusCode) -> Self {
        SessionError {
            kind: Kind::Store(err),
            status,
        }
    }

    fn internal(kind: Kind) -> Self {
        SessionError {
            kind,
            status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn value(err: serde_json::Error) -> Self {
        Self::internal(Kind::Value(err))
    }

    pub(crate) fn reserved_key(key: &str) -> Self {
        Self::internal(Kind::ReservedKey(if key == "cookie" {
            "cookie"
        } else {
            sessionkit_core::META_KEY
        }))
    }

    pub(crate) fn reserved_by_node(key: &'static str) -> Self {
        Self::internal(Kind::ReservedByNode(key))
    }

    pub(crate) fn csrf() -> Self {
        SessionError {
            kind: Kind::Csrf,
            status: StatusCode::FORBIDDEN,
        }
    }

    pub(crate) fn invalid_cookie(what: &'static str) -> Self {
        Self::internal(Kind::InvalidCookie(what))
    }

    pub(crate) fn too_large(size: usize, limit: usize) -> Self {
        SessionError {
            kind: Kind::TooLarge { size, limit },
            status: StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub(crate) fn conflict(status: StatusCode) -> Self {
        SessionError {
            kind: Kind::Conflict,
            status,
        }
    }

    pub(crate) fn unset() -> Self {
        Self::internal(Kind::Unset)
    }

    pub(crate) fn closed() -> Self {
        Self::internal(Kind::Closed)
    }

    /// The store failed (it may be down: see [`sessionkit_core::Error::is_transient`]).
    pub fn store_error(&self) -> Option<&sessionkit_core::Error> {
        match &self.kind {
            Kind::Store(e) => Some(e),
            _ => None,
        }
    }

    /// The session would exceed the configured
    /// [`max_session_size`](crate::SessionConfigBuilder::max_session_size)
    /// (answers 413); nothing was written.
    pub fn is_too_large(&self) -> bool {
        matches!(self.kind, Kind::TooLarge { .. })
    }

    /// Another request changed the session after this one loaded it, and
    /// compare-and-set saves are on; nothing was written.
    pub fn is_conflict(&self) -> bool {
        matches!(self.kind, Kind::Conflict)
    }

    /// A CSRF token was missing or did not match the session's (answers
    /// 403).
    pub fn is_csrf(&self) -> bool {
        matches!(self.kind, Kind::Csrf)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Store(_) => f.write_str("session store failed"),
            Kind::Value(_) => f.write_str("session value could not be converted from or to JSON"),
            Kind::ReservedKey(key) => write!(f, "the session key {key:?} is reserved"),
            Kind::Csrf => f.write_str("the CSRF token is missing or does not match the session's"),
            Kind::ReservedByNode(key) => write!(
                f,
                "the session key {key:?} is reserved by express-session (a Node service sharing the store would drop it)"
            ),
            Kind::InvalidCookie(what) => write!(f, "invalid session cookie setting: {what}"),
            Kind::TooLarge { size, limit } => write!(
                f,
                "the session would be {size} bytes, over the {limit}-byte limit"
            ),
            Kind::Conflict => f.write_str("the session was changed by another request"),
            Kind::Unset => f.write_str("the session was unset for this request"),
            Kind::Closed => f.write_str("the session was used after its response was sent"),
        }
    }
}

impl StdError for SessionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Store(e) => Some(e),
            Kind::Value(e) => Some(e),
            _ => None,
        }
    }
}

/// The opaque error response: the status and its reason phrase, nothing else.
pub(crate) fn opaque_parts(status: StatusCode) -> (StatusCode, &'static str) {
    (status, status.canonical_reason().unwrap_or("Error"))
}

pub(crate) fn decorate(headers: &mut http::HeaderMap) {
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let (status, body) = match self.kind {
            // Nothing to hide: say what was refused.
            Kind::Csrf => (self.status, "Forbidden: missing or invalid CSRF token"),
            _ => opaque_parts(self.status),
        };
        let mut res = body.into_response();
        *res.status_mut() = status;
        decorate(res.headers_mut());
        res
    }
}

/// Logs a store failure with its whole cause chain (no session data, no id).
pub(crate) fn log_store_error(op: &'static str, err: &sessionkit_core::Error) {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(
        operation = op,
        transient = err.is_transient(),
        error = %chain,
        "session store operation failed"
    );
}

/// The rejection of the [`Session`](crate::Session) extractor when no
/// [`SessionLayer`](crate::SessionLayer) handled the request (the layer is
/// missing, or the path is outside the cookie path). Answers 500.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MissingSession;

impl fmt::Display for MissingSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no session for this request: SessionLayer is missing or the path is outside the cookie path",
        )
    }
}

impl StdError for MissingSession {}

impl IntoResponse for MissingSession {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        let (status, body) = opaque_parts(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = body.into_response();
        *res.status_mut() = status;
        decorate(res.headers_mut());
        res
    }
}

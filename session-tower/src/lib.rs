#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod cookie;
mod error;
mod events;
mod service;
mod session;

pub use config::{
    ExpiryPolicy, RequestHead, SameSitePolicy, SecurePolicy, SessionConfig, SessionConfigBuilder,
    TokenHeader, Transport, UnsetPolicy, DEFAULT_MAX_SESSION_SIZE, DEFAULT_TOKEN_RESPONSE_HEADER,
    MIN_MAX_SESSION_SIZE,
};
pub use error::{MissingSession, SessionError};
pub use events::{ExpiredReason, SessionEvent};
pub use service::{ClientIp, SecureConnection, SessionLayer, SessionService};
pub use session::{Session, CSRF_SESSION_KEY, NODE_RESERVED_KEYS};

/// Internals exposed for the fuzz targets and their corpus-replay tests, so
/// they run the very code the middleware runs. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::cookie::{read_session_cookie, read_session_header, SessionCookie};
}

#[doc(inline)]
pub use sessionkit_core::{
    time, CookieMeta, Error, Priority, Record, SameSite, SessionId, SessionMeta, Store,
    WriteOutcome, META_KEY,
};

/// The code blocks of the workspace README, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RootReadmeDoctests;

//! JWTs backed by a session store: short-lived signed tokens that carry a
//! session id (`sid`) and custom claims, verified without a store round trip
//! for the signature, with revocation checked against any
//! [`Store`].
//!
//! Revoking a token writes a denylist entry: a record under an id derived
//! from the token's `jti` (`jwt-revoked-<jti>`), whose expiry is the token's
//! `exp`, so the store's own expiry cleans the denylist up. Any store works,
//! through the ordinary [`Store`] operations; give the
//! denylist its own namespace (a key prefix, table or collection) if you do
//! not want its entries among your sessions.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sessionkit_core::SessionId;
//! use sessionkit_jwt::Jwt;
//! use std::sync::Arc;
//!
//! let jwt = Jwt::builder()
//!     .key("a jwt signing key of at least 32 bytes")
//!     .denylist(Arc::new(sessionkit_memory::MemoryStore::new()))
//!     .build()?;
//! let sid = SessionId::generate();
//! let token = jwt.issue(&sid, &serde_json::json!({ "role": "admin" }))?;
//! let verified = jwt.verify::<serde_json::Value>(&token).await?;
//! assert_eq!(verified.sid, sid);
//! assert_eq!(verified.claims["role"], "admin");
//! jwt.revoke(&token).await?;
//! assert!(jwt.verify::<serde_json::Value>(&token).await.is_err());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{Error, Record, SessionId, Store};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The default lifetime of issued tokens: 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// The most clock-skew leeway accepted: one hour.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// Shortest accepted key, as for cookie secrets.
const MIN_KEY_LEN: usize = sessionkit_core::signing::MIN_SECRET_LEN;

/// The claims this module writes itself; custom claims may not use them.
const RESERVED: [&str; 7] = ["sid", "jti", "iat", "exp", "iss", "aud", "nbf"];

/// The prefix of denylist ids.
const DENY_PREFIX: &str = "jwt-revoked-";

/// The HMAC algorithm that signs tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 (the default).
    #[default]
    Hs256,
    /// HMAC-SHA384.
    Hs384,
    /// HMAC-SHA512.
    Hs512,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Hs384 => Algorithm::HS384,
            JwtAlgorithm::Hs512 => Algorithm::HS512,
        }
    }
}

/// Why a token was not issued, verified or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a token this issuer signed: malformed, tampered with, signed with
    /// an unknown key or another algorithm, a wrong `iss`/`aud`, or a
    /// malformed `sid`/`jti`.
    #[error("invalid token")]
    Invalid,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token was revoked.
    #[error("token revoked")]
    Revoked,
    /// With [`JwtBuilder::require_session`]: the token's session no longer
    /// exists (destroyed or expired).
    #[error("the token's session no longer exists")]
    SessionGone,
    /// The custom claims could not be converted (they must serialise to a
    /// JSON object without the reserved names `sid`, `jti`, `iat`, `exp`,
    /// `iss`, `aud`, `nbf`).
    #[error("token claims could not be converted: {0}")]
    Claims(Cow<'static, str>),
    /// The store failed (see [`Error::is_transient`]).
    #[error("token store failed")]
    Store(#[source] Error),
    /// Signing failed.
    #[error("token could not be signed")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl JwtError {
    fn claims(e: impl fmt::Display) -> Self {
        JwtError::Claims(e.to_string().into())
    }
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedToken<C> {
    /// The session the token was issued for.
    pub sid: SessionId,
    /// The token's unique id.
    pub jti: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The custom claims.
    pub claims: C,
}

/// Issues, verifies and revokes tokens. Cheap to clone.
#[derive(Clone)]
pub struct Jwt {
    inner: Arc<Inner>,
}

struct Inner {
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
    algorithm: JwtAlgorithm,
    ttl: Duration,
    leeway_secs: i64,
    issuer: Option<String>,
    audience: Option<String>,
    denylist: Arc<dyn Store>,
    sessions: Option<Arc<dyn Store>>,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("keys", &"<redacted>")
            .field("algorithm", &self.inner.algorithm)
            .field("ttl", &self.inner.ttl)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Jwt`]; [`build`](Self::build) reports the first refused value.
pub struct JwtBuilder {
    keys: Vec<Vec<u8>>,
    algorithm: JwtAlgorithm,
    ttl: Duration,
    leeway: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    denylist: Option<Arc<dyn Store>>,
    sessions: Option<Arc<dyn Store>>,
}

impl fmt::Debug for JwtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBuilder")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn config_error(msg: &'static str) -> Error {
    Error::Config(msg.into())
}

impl JwtBuilder {
    /// The one key that signs and verifies (at least 32 bytes). Replaces
    /// any key set before.
    pub fn key(self, key: impl AsRef<[u8]>) -> Self {
        self.keys([key])
    }

    /// Several keys for rotation: the first signs, every one verifies, in
    /// order. Replaces any key set before.
    ///
    /// Security: use keys of their own, not the cookie secrets.
    pub fn keys<I>(mut self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.keys = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self
    }

    /// The signing algorithm (default [`JwtAlgorithm::Hs256`]). Only this
    /// algorithm is accepted when verifying.
    pub fn algorithm(mut self, algorithm: JwtAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// How long issued tokens live (default [`DEFAULT_TTL`], 15 minutes;
    /// whole seconds, at least one).
    ///
    /// Security: a token cannot be recalled from a client, only denied on
    /// verification: keep it short and re-issue from the session.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long after `exp` a token is still accepted, for clock skew
    /// between servers (default none; at most [`MAX_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// An `iss` written into tokens and required when verifying.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An `aud` written into tokens and required when verifying.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The store that holds revoked tokens (required).
    pub fn denylist(mut self, store: Arc<dyn Store>) -> Self {
        self.denylist = Some(store);
        self
    }

    /// Also require the token's session to be live in this store when
    /// verifying (one more store read): destroying the session revokes
    /// every token issued for it at once.
    pub fn require_session(mut self, store: Arc<dyn Store>) -> Self {
        self.sessions = Some(store);
        self
    }

    /// Checks every value and builds the [`Jwt`].
    pub fn build(self) -> Result<Jwt, Error> {
        if self.keys.is_empty() {
            return Err(config_error("at least one JWT key is required"));
        }
        if self.keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return Err(config_error("JWT keys must be at least 32 bytes"));
        }
        let denylist = self
            .denylist
            .ok_or_else(|| config_error("a denylist store is required"))?;
        if self.ttl.as_secs() == 0 {
            return Err(config_error("the JWT ttl must be at least one second"));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(config_error("the JWT leeway must be at most one hour"));
        }
        let signing = match self.keys.first() {
            Some(k) => EncodingKey::from_secret(k),
            None => return Err(config_error("at least one JWT key is required")),
        };
        let verifying = self
            .keys
            .iter()
            .map(|k| DecodingKey::from_secret(k))
            .collect();
        Ok(Jwt {
            inner: Arc::new(Inner {
                signing,
                verifying,
                algorithm: self.algorithm,
                ttl: self.ttl,
                leeway_secs: i64::try_from(self.leeway.as_secs()).unwrap_or(0),
                issuer: self.issuer,
                audience: self.audience,
                denylist,
                sessions: self.sessions,
            }),
        })
    }
}

/// The denylist id of a token id.
fn deny_id(jti: &str) -> Option<SessionId> {
    SessionId::parse(&format!("{DENY_PREFIX}{jti}")).ok()
}

/// The reserved claims of a token whose signature verified.
struct Checked {
    sid: SessionId,
    jti: String,
    iat: i64,
    exp: i64,
    rest: Map<String, Value>,
}

fn take_i64(map: &mut Map<String, Value>, key: &str) -> Option<i64> {
    map.shift_remove(key).and_then(|v| v.as_i64())
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.shift_remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

impl Jwt {
    /// Starts a configuration: HS256, 15-minute tokens, no leeway. A key
    /// and a denylist store are required.
    pub fn builder() -> JwtBuilder {
        JwtBuilder {
            keys: Vec::new(),
            algorithm: JwtAlgorithm::Hs256,
            ttl: DEFAULT_TTL,
            leeway: Duration::ZERO,
            issuer: None,
            audience: None,
            denylist: None,
            sessions: None,
        }
    }

    /// A token for session `sid` with the configured lifetime. `claims`
    /// must serialise to a JSON object (or `()` for none) without the
    /// reserved names.
    pub fn issue<C: Serialize + ?Sized>(
        &self,
        sid: &SessionId,
        claims: &C,
    ) -> Result<String, JwtError> {
        self.issue_with_ttl(sid, claims, self.inner.ttl)
    }

    /// Like [`issue`](Self::issue) with its own lifetime (whole seconds;
    /// zero gives a token that is already expired).
    pub fn issue_with_ttl<C: Serialize + ?Sized>(
        &self,
        sid: &SessionId,
        claims: &C,
        ttl: Duration,
    ) -> Result<String, JwtError> {
        let mut payload = match serde_json::to_value(claims).map_err(JwtError::claims)? {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err(JwtError::claims("custom claims must be a JSON object")),
        };
        if let Some(name) = RESERVED.iter().find(|n| payload.contains_key(**n)) {
            return Err(JwtError::claims(format!(
                "the claim name {name:?} is reserved"
            )));
        }
        let now = time::now().timestamp_millis().div_euclid(1000);
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        payload.insert("sid".into(), sid.as_str().into());
        payload.insert("jti".into(), SessionId::generate().as_str().into());
        payload.insert("iat".into(), now.into());
        payload.insert("exp".into(), now.saturating_add(ttl).into());
        if let Some(iss) = &self.inner.issuer {
            payload.insert("iss".into(), iss.as_str().into());
        }
        if let Some(aud) = &self.inner.audience {
            payload.insert("aud".into(), aud.as_str().into());
        }
        let header = Header::new(self.inner.algorithm.jwt());
        jsonwebtoken::encode(&header, &payload, &self.inner.signing)
            .map_err(|e| JwtError::Sign(Box::new(e)))
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(self.inner.algorithm.jwt());
        // `exp` is checked below with signed arithmetic; required here.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        let mut required = vec!["exp"];
        if self.inner.issuer.is_some() {
            required.push("iss");
        }
        if self.inner.audience.is_some() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        match &self.inner.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        match &self.inner.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    /// Signature (with each key in turn), algorithm, `iss`/`aud`, `exp`,
    /// and the shape of `sid`/`jti`. No I/O.
    fn check(&self, token: &str) -> Result<Checked, JwtError> {
        let validation = self.validation();
        let mut decoded = None;
        for key in &self.inner.verifying {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    decoded = Some(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(_) => return Err(JwtError::Invalid),
            }
        }
        let mut claims = decoded.ok_or(JwtError::Invalid)?;
        let exp = take_i64(&mut claims, "exp").ok_or(JwtError::Invalid)?;
        let iat = take_i64(&mut claims, "iat").ok_or(JwtError::Invalid)?;
        let sid = take_string(&mut claims, "sid")
            .and_then(|s| SessionId::parse(&s).ok())
            .ok_or(JwtError::Invalid)?;
        let jti = take_string(&mut claims, "jti")
            .filter(|j| deny_id(j).is_some())
            .ok_or(JwtError::Invalid)?;
        // Time claims are checked here, each parsed strictly: a `nbf` that
        // is not an integer is invalid, never skipped (jsonwebtoken 9's own
        // checks treat a mistyped claim as absent, GHSA-h395-gr6q-cpjc;
        // they are all off here).
        let nbf = match claims.shift_remove("nbf") {
            None => None,
            Some(v) => Some(v.as_i64().ok_or(JwtError::Invalid)?),
        };
        for name in ["iss", "aud"] {
            claims.shift_remove(name);
        }
        let now = time::now().timestamp_millis().div_euclid(1000);
        let leeway = self.inner.leeway_secs;
        if exp.saturating_add(leeway) <= now {
            return Err(JwtError::Expired);
        }
        // Not valid yet, or issued in the future (beyond the clock leeway).
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway))
            || iat > now.saturating_add(leeway)
        {
            return Err(JwtError::Invalid);
        }
        Ok(Checked {
            sid,
            jti,
            iat,
            exp,
            rest: claims,
        })
    }

    /// Verifies a token: signature (each key in turn), algorithm, `exp`,
    /// `iss`/`aud` when configured, then the denylist (one store read), and
    /// with [`JwtBuilder::require_session`] the session (another).
    pub async fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<VerifiedToken<C>, JwtError> {
        let checked = self.check(token)?;
        let deny = deny_id(&checked.jti).ok_or(JwtError::Invalid)?;
        let revoked = self
            .inner
            .denylist
            .load(&deny)
            .instrument(tracing::debug_span!("jwt_denylist", op = "load"))
            .await
            .map_err(JwtError::Store)?;
        if revoked.is_some() {
            return Err(JwtError::Revoked);
        }
        if let Some(sessions) = &self.inner.sessions {
            let live = sessions
                .load(&checked.sid)
                .instrument(tracing::debug_span!("session_store", op = "load"))
                .await
                .map_err(JwtError::Store)?;
            if live.is_none() {
                return Err(JwtError::SessionGone);
            }
        }
        let rest = Value::Object(checked.rest);
        let claims = match serde_json::from_value::<C>(rest.clone()) {
            Ok(c) => c,
            // `()` and other unit-like claim types from an empty object.
            Err(e) => match &rest {
                Value::Object(m) if m.is_empty() => {
                    serde_json::from_value(Value::Null).map_err(|_| JwtError::claims(e))?
                }
                _ => return Err(JwtError::claims(e)),
            },
        };
        Ok(VerifiedToken {
            sid: checked.sid,
            jti: checked.jti,
            issued_at: time::from_millis(checked.iat.saturating_mul(1000)),
            expires_at: time::from_millis(checked.exp.saturating_mul(1000)),
            claims,
        })
    }

    /// Revokes a token until it expires: a denylist entry under an id
    /// derived from its `jti`, expiring at its `exp`. Only a token this
    /// issuer signed can be revoked ([`JwtError::Invalid`] otherwise);
    /// an expired one needs nothing and succeeds; revoking twice succeeds.
    pub async fn revoke(&self, token: &str) -> Result<(), JwtError> {
        let checked = match self.check(token) {
            Ok(c) => c,
            Err(JwtError::Expired) => return Ok(()),
            Err(e) => return Err(e),
        };
        let id = deny_id(&checked.jti).ok_or(JwtError::Invalid)?;
        let mut record = Record::new(id);
        // Until the token stops verifying: its `exp` (plus any leeway).
        let until = checked.exp.saturating_add(self.inner.leeway_secs);
        record.cookie.expires = Some(time::from_millis(until.saturating_mul(1000)));
        record.data.insert("revoked".into(), true.into());
        match self
            .inner
            .denylist
            .create(&record)
            .instrument(tracing::debug_span!("jwt_denylist", op = "create"))
            .await
        {
            Ok(()) | Err(Error::Collision) => Ok(()),
            Err(e) => Err(JwtError::Store(e)),
        }
    }
}

//! The per-request session handle and the end-of-request decisions.

use crate::config::UnsetPolicy;
use crate::cookie;
use crate::error::{log_store_error, SessionError};
use crate::events::{ExpiredReason, SessionEvent};
use crate::service::Shared;
use http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    CasOutcome, CookieMeta, Error, Record, SessionId, SessionMeta, Version, WriteOutcome, META_KEY,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

/// A span around one store call (the id is a credential: not recorded).
fn span(op: &'static str) -> tracing::Span {
    tracing::debug_span!("session_store", op)
}

/// How often a colliding generated id is replaced before giving up.
const CREATE_ATTEMPTS: usize = 3;

/// The session of one request: an axum extractor, cheap to clone, `Send + Sync`.
///
/// Nothing is read from the store until a method needs the data (the cookie
/// was verified without I/O when the request arrived). Every method that may
/// read the store is `async` and returns a [`SessionError`] on failure; a
/// store failure never turns into a new, empty session.
///
/// Changes are written when the response leaves the [`SessionLayer`](crate::SessionLayer),
/// following express-session's rules (see the crate documentation).
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Handle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cookie_id", &self.inner.cookie_id)
            .finish_non_exhaustive()
    }
}

/// Which transport named the request's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cookie,
    Header,
}

/// Which transports this request may use (the configured ones; the cookie
/// only inside the cookie path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Via {
    pub(crate) cookie: bool,
    pub(crate) header: bool,
}

/// What the end of a request sends back.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    pub(crate) set_cookie: Option<HeaderValue>,
    /// A new signed token for the header transport.
    pub(crate) token: Option<HeaderValue>,
}

impl Delivery {
    fn cookie(set_cookie: Option<HeaderValue>) -> Self {
        Delivery {
            set_cookie,
            token: None,
        }
    }
}

/// What `track_client` records about the request that creates a session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<String>,
}

pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    /// The id from a correctly signed cookie or header token, if any.
    pub(crate) cookie_id: Option<SessionId>,
    /// Which secret verified it (0 = the current one).
    pub(crate) secret_index: usize,
    /// The cookie's decoded signed value (`s:<id>.<mac>`) when the current
    /// secret verified it: what signing `cookie_id` again would give.
    pub(crate) signed_cookie: Option<String>,
    /// Which transport carried `cookie_id`.
    pub(crate) source: Option<Source>,
    /// The transports this request may answer in.
    pub(crate) via: Via,
    /// The request's user agent and address, with `track_client`.
    pub(crate) client: Option<Client>,
    /// Whether the request is secure (TLS, or a trusted X-Forwarded-Proto).
    pub(crate) request_secure: bool,
    /// The request, for `genid_with` and `cookie_with`.
    pub(crate) head: Option<Arc<crate::config::RequestHead>>,
    /// The cookie of a session this request creates, from `cookie_with`.
    pub(crate) cookie_template: Option<CookieMeta>,
    pub(crate) state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    phase: Phase,
    /// Old ids to delete once the current session is safely stored (regenerate).
    doomed: Vec<SessionId>,
    /// destroy() was called: expire the browser cookie unless a new session replaces it.
    expire_cookie: bool,
    /// The destroyed session's cookie attributes (path, domain) for expiring it.
    expire_meta: Option<CookieMeta>,
    /// touch() was called: touch even when `touch_after` would skip it.
    force_touch: bool,
    /// The response was sent.
    closed: bool,
    /// Loading the record failed during the request: the handler got the
    /// error; the end of the request must not try (and wait) again.
    load_failed: bool,
}

impl State {
    pub(crate) fn new(has_cookie: bool) -> Self {
        State {
            phase: if has_cookie {
                Phase::Unloaded
            } else {
                Phase::Absent
            },
            ..State::default()
        }
    }
}

#[derive(Default)]
enum Phase {
    /// No valid cookie, session not used yet.
    #[default]
    Absent,
    /// A valid cookie, record not read yet.
    Unloaded,
    /// A session object exists (loaded or new).
    Active(Box<Active>),
    /// destroy() was called and nothing was written since.
    Destroyed,
    /// unset() was called: ids to destroy when the policy is `Destroy`.
    Unset(Vec<SessionId>),
}

struct Active {
    record: Record,
    /// The data as loaded or generated (express-session's `originalHash`).
    original_data: Map<String, Value>,
    /// The data known to be in the store (express-session's `savedHash`).
    saved_data: Saved,
    /// regenerate() gave this session a new id (express-session's `originalId !== id`).
    regenerated: bool,
    /// The stored id this session replaces (regenerate), for the event.
    regenerated_from: Option<SessionId>,
    /// A record with this id exists in the store (loaded, or created this request).
    in_store: bool,
    /// A save or touch found the record gone: it was destroyed meanwhile.
    gone: bool,
    /// Per-session cookie settings changed.
    cookie_changed: bool,
    /// The handler set the cookie's expiry itself (`set_expires`, or
    /// `expires` changed in `update_cookie`): it is sent as set, not
    /// recomputed from `originalMaxAge` at the end of the request.
    expires_pinned: bool,
    /// `set_principal` gave the session a principal during this request
    /// (a login): `max_sessions_per_principal` is enforced after the save.
    principal_set: bool,
    /// Written to the store during this request already.
    written: bool,
    /// The stored version, with compare-and-set saves.
    version: Option<Version>,
}

/// What `Active::saved_data` holds: loaded data is both the original and
/// the saved data, kept once (a load costs one copy of the data, not two).
enum Saved {
    /// Nothing known to be stored (a new session, or `resave`).
    Nothing,
    /// The same as `original_data`.
    Original,
    /// Written during this request.
    Data(Map<String, Value>),
}

impl Active {
    fn modified(&self) -> bool {
        self.regenerated || self.record.data != self.original_data
    }

    fn saved(&self) -> Option<&Map<String, Value>> {
        match &self.saved_data {
            Saved::Nothing => None,
            Saved::Original => Some(&self.original_data),
            Saved::Data(data) => Some(data),
        }
    }
}

/// The session data key of the CSRF token ([`Session::csrf_token`]).
pub const CSRF_SESSION_KEY: &str = "_csrfToken";

/// Keys a Node service sharing the store can never keep: express-session's
/// `Session` has them already (`id`, `req` and its methods) or inherits them
/// from `Object.prototype`, so loading skips them and its next save drops
/// them. [`Session::insert`] refuses them.
pub const NODE_RESERVED_KEYS: [&str; 20] = [
    "id",
    "req",
    "touch",
    "resetMaxAge",
    "save",
    "reload",
    "regenerate",
    "destroy",
    "constructor",
    "__proto__",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

fn reserved(key: &str) -> Result<(), SessionError> {
    if key == "cookie" || key == META_KEY {
        Err(SessionError::reserved_key(key))
    } else if let Some(k) = NODE_RESERVED_KEYS.iter().find(|k| **k == key) {
        Err(SessionError::reserved_by_node(k))
    } else {
        Ok(())
    }
}

/// `get` and `remove` of the metadata key (`"cookie"` is never in the data).
fn reserved_meta(key: &str) -> Result<(), SessionError> {
    if key == META_KEY {
        Err(SessionError::reserved_key(key))
    } else {
        Ok(())
    }
}

/// The record's metadata; a `__meta` that does not decode (written by
/// another program) is ignored with a warning, and replaced if a feature
/// writes metadata.
fn read_meta(record: &Record) -> Option<SessionMeta> {
    match record.meta() {
        Ok(meta) => meta,
        Err(_) => {
            tracing::warn!("session metadata ({META_KEY}) could not be decoded; ignored");
            None
        }
    }
}

fn write_meta(record: &mut Record, meta: &SessionMeta) {
    if let Err(e) = record.set_meta(Some(meta)) {
        // Encoding a struct of strings and numbers does not fail.
        tracing::error!(error = %e, "session metadata could not be encoded");
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    time::from_millis(t.timestamp_millis().saturating_add(ms))
}

/// Moves the session's expiry forward for a request at `now`: the earlier
/// of `now + idle` and the absolute deadline for a session with an expiry
/// policy (its idle timeout becomes `originalMaxAge`, so Node agrees), else
/// `now + originalMaxAge` (express-session's `resetMaxAge`).
fn apply_expiry(record: &mut Record, now: Timestamp) {
    match read_meta(record) {
        Some(meta) if meta.has_expiry_policy() => {
            record.cookie.original_max_age = meta
                .idle_timeout_secs
                .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX));
            record.cookie.expires = meta.expiry_after(now);
        }
        _ => record.cookie.reset_expiry(now),
    }
}

impl Handle {
    fn emit(&self, event: SessionEvent) {
        if let Some(hook) = &self.shared.config.on_event {
            hook(&event);
        }
    }

    fn store_err(&self, op: &'static str, err: Error) -> SessionError {
        log_store_error(op, &err);
        SessionError::store(err, self.shared.config.error_status)
    }

    async fn lock(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let st = self.state.lock().await;
        if st.closed {
            return Err(SessionError::closed());
        }
        Ok(st)
    }

    /// The metadata of a session created now, when a feature needs it.
    fn new_meta(&self, now: Timestamp) -> Option<SessionMeta> {
        let config = &self.shared.config;
        if config.expiry_policy.is_none() && self.client.is_none() {
            return None;
        }
        let mut meta = SessionMeta::default();
        meta.created = Some(now);
        meta.last_seen = Some(now);
        if let Some(policy) = &config.expiry_policy {
            meta.idle_timeout_secs = policy.idle_timeout().map(|d| d.as_secs());
            meta.absolute_deadline = policy.absolute_lifetime().map(|d| after(now, d));
        }
        if let Some(client) = &self.client {
            meta.user_agent = client.user_agent.clone();
            meta.ip = client.ip.clone();
        }
        Some(meta)
    }

    /// Metadata for a write at `now`: `last_seen` moves forward; a session
    /// stored before the layer's expiry policy (or client tracking) was
    /// configured gets it now, counted from now.
    fn stamp(&self, record: &mut Record, now: Timestamp) {
        let meta = match read_meta(record) {
            Some(mut meta) => {
                meta.last_seen = Some(now);
                meta
            }
            None => match self.new_meta(now) {
                Some(mut meta) => {
                    meta.created = None; // unknown
                    meta
                }
                None => return,
            },
        };
        write_meta(record, &meta);
        apply_expiry(record, now);
    }

    fn generate(&self, now: Timestamp) -> Active {
        let id = self.shared.config.generate_id(self.head.as_deref());
        let mut record = Record::new(id);
        record.cookie = self.new_cookie(now);
        if let Some(meta) = self.new_meta(now) {
            write_meta(&mut record, &meta);
            apply_expiry(&mut record, now);
        }
        Active {
            // Metadata alone does not make a new session "modified".
            original_data: record.data.clone(),
            record,
            saved_data: Saved::Nothing,
            regenerated: false,
            regenerated_from: None,
            in_store: false,
            gone: false,
            cookie_changed: false,
            expires_pinned: false,
            principal_set: false,
            written: false,
            version: None,
        }
    }

    fn inflate(&self, (mut record, version): (Record, Option<Version>)) -> Active {
        let data = record.data.clone();
        let given_deadline = self.give_deadline(&mut record);
        let mut active = Active {
            saved_data: if self.shared.config.resave {
                Saved::Nothing
            } else {
                Saved::Original
            },
            original_data: data,
            record,
            regenerated: false,
            regenerated_from: None,
            in_store: true,
            gone: false,
            cookie_changed: false,
            expires_pinned: false,
            principal_set: false,
            written: false,
            version,
        };
        // Saved, with its capped cookie, on this response.
        active.cookie_changed = given_deadline;
        active
    }

    /// `max_sessions_per_principal`: after a login stored `record`, the
    /// principal's oldest other sessions (by creation, then last use) are
    /// revoked until it has at most `max`. Best effort: a store without the
    /// per-user index, or a failure, is logged and the login stands.
    async fn cap_principal_sessions(&self, record: &Record, max: usize) {
        let Some(principal) = record.principal() else {
            return;
        };
        let store = &self.shared.store;
        if !store.capabilities().principal_index {
            tracing::warn!("max_sessions_per_principal needs a store with the per-user index");
            return;
        }
        let current = store.listed_id(&record.id);
        let mut others: Vec<(Option<Timestamp>, Option<Timestamp>, SessionId)> =
            match store.principal_sessions(principal).await {
                Ok(list) => list
                    .into_iter()
                    .filter(|r| r.id != current)
                    .map(|r| {
                        let meta = read_meta(&r).unwrap_or_default();
                        (meta.created, meta.last_seen, r.id)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "max_sessions_per_principal: listing failed");
                    return;
                }
            };
        let keep = max.saturating_sub(1);
        if others.len() <= keep {
            return;
        }
        // Oldest first (an unknown time counts as oldest).
        others.sort();
        let excess = others.len() - keep;
        for (_, _, listed) in others.into_iter().take(excess) {
            match store.destroy_listed(&listed).await {
                Ok(()) => {
                    self.shared.throttle.forget(&listed);
                    tracing::debug!("max_sessions_per_principal: oldest session revoked");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "max_sessions_per_principal: revoking failed");
                    return;
                }
            }
        }
    }

    /// A loaded session with no expiry policy of its own, under a layer
    /// whose policy has an absolute lifetime (configured after the session
    /// was created): it gets its deadline now, counted from this first load,
    /// instead of living forever while only read. `true` when it did.
    fn give_deadline(&self, record: &mut Record) -> bool {
        let Some(policy) = &self.shared.config.expiry_policy else {
            return false;
        };
        let Some(absolute) = policy.absolute_lifetime() else {
            return false;
        };
        let meta = read_meta(record);
        if meta.as_ref().is_some_and(SessionMeta::has_expiry_policy) {
            return false;
        }
        let now = time::now();
        let mut meta = meta.unwrap_or_default();
        meta.last_seen.get_or_insert(now);
        meta.idle_timeout_secs = policy.idle_timeout().map(|d| d.as_secs());
        meta.absolute_deadline = Some(after(now, absolute));
        write_meta(record, &meta);
        apply_expiry(record, now);
        tracing::debug!("session older than the absolute lifetime policy: deadline set");
        true
    }

    /// Loads a live session. One past its absolute deadline (which a store
    /// may still hold, e.g. after a Node service touched it) is destroyed
    /// and reported as absent.
    async fn load(
        &self,
        id: &SessionId,
    ) -> Result<Option<(Record, Option<Version>)>, SessionError> {
        let found = self.load_stored(id).await?;
        if let Some((record, _)) = &found {
            if read_meta(record).is_some_and(|m| m.past_deadline(time::now())) {
                tracing::debug!("session past its absolute deadline: destroyed");
                self.destroy_ids(std::slice::from_ref(id)).await?;
                self.emit(SessionEvent::Expired {
                    id: id.clone(),
                    reason: ExpiredReason::AbsoluteDeadline,
                });
                return Ok(None);
            }
        }
        if found.is_none() {
            self.emit(SessionEvent::Expired {
                id: id.clone(),
                reason: ExpiredReason::Missing,
            });
        }
        Ok(found)
    }

    async fn load_stored(
        &self,
        id: &SessionId,
    ) -> Result<Option<(Record, Option<Version>)>, SessionError> {
        tracing::trace!("loading session");
        let store = &self.shared.store;
        if self.shared.config.compare_and_set {
            return store
                .load_versioned(id)
                .instrument(span("load"))
                .await
                .map(|found| found.map(|(r, v)| (r, Some(v))))
                .map_err(|e| self.store_err("load", e));
        }
        store
            .load(id)
            .instrument(span("load"))
            .await
            .map(|found| found.map(|r| (r, None)))
            .map_err(|e| self.store_err("load", e))
    }

    /// Makes sure a session object exists: loads it, or starts a new one.
    async fn active<'a>(&self, st: &'a mut State) -> Result<&'a mut Active, SessionError> {
        match &st.phase {
            Phase::Active(_) => {}
            Phase::Unset(_) => return Err(SessionError::unset()),
            Phase::Unloaded => {
                let loaded = match &self.cookie_id {
                    Some(id) => Some(self.load(id).await),
                    None => None,
                };
                if let Some(Err(_)) = &loaded {
                    st.load_failed = true;
                }
                let active = match loaded.transpose()? {
                    Some(Some(record)) => self.inflate(record),
                    Some(None) | None => self.generate(time::now()),
                };
                st.phase = Phase::Active(Box::new(active));
            }
            Phase::Absent | Phase::Destroyed => {
                st.phase = Phase::Active(Box::new(self.generate(time::now())));
            }
        }
        match &mut st.phase {
            Phase::Active(a) => Ok(a),
            _ => Err(SessionError::closed()),
        }
    }

    /// The active session for reading; `None` after destroy() or unset().
    async fn readable<'a>(
        &self,
        st: &'a mut State,
    ) -> Result<Option<&'a mut Active>, SessionError> {
        if matches!(st.phase, Phase::Destroyed | Phase::Unset(_)) {
            return Ok(None);
        }
        self.active(st).await.map(Some)
    }

    fn throttled(&self, id: &SessionId) -> bool {
        self.shared
            .config
            .touch_after
            .is_some_and(|after| self.shared.throttle.recent(id, after))
    }

    /// Inserts a new record, replacing a colliding generated id.
    async fn create(&self, a: &mut Active) -> Result<(), SessionError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .shared
                .store
                .create(&a.record)
                .instrument(span("create"))
                .await
            {
                Ok(()) => {
                    a.in_store = true;
                    a.written = true;
                    let id = a.record.id.clone();
                    self.emit(match a.regenerated_from.take() {
                        Some(old) => SessionEvent::Regenerated { old, new: id },
                        None => SessionEvent::Created { id },
                    });
                    if self.shared.config.compare_and_set {
                        // Stores keep exactly this text: it is the version.
                        a.version = a.record.to_json().ok().map(Version::new);
                    }
                    self.shared.throttle.record(&a.record.id);
                    return Ok(());
                }
                Err(Error::Collision) if attempt < CREATE_ATTEMPTS => {
                    tracing::warn!(
                        "generated session id already exists in the store; generating another"
                    );
                    a.record.id = self.shared.config.generate_id(self.head.as_deref());
                }
                Err(e) => return Err(self.store_err("create", e)),
            }
        }
    }

    /// Refuses a record over `max_session_size`; called before any store write.
    fn check_size(&self, record: &Record) -> Result<(), SessionError> {
        let Some(limit) = self.shared.config.max_session_size else {
            return Ok(());
        };
        // Exact, but without serialising a record that is clearly within.
        let over = record
            .size_over(limit)
            .map_err(|e| self.store_err("encode", e))?;
        if let Some(size) = over {
            tracing::warn!(size, limit, "session over max_session_size refused");
            return Err(SessionError::too_large(size, limit));
        }
        Ok(())
    }

    async fn save_record(&self, a: &mut Active) -> Result<WriteOutcome, SessionError> {
        self.stamp(&mut a.record, time::now());
        self.check_size(&a.record)?;
        if !a.in_store {
            self.create(a).await?;
            return Ok(WriteOutcome::Written);
        }
        let outcome = match (&a.version, self.shared.config.compare_and_set) {
            (Some(expected), true) => {
                let cas = self
                    .shared
                    .store
                    .save_if(&a.record, expected)
                    .instrument(span("save"))
                    .await
                    .map_err(|e| self.store_err("save", e))?;
                match cas {
                    CasOutcome::Written(v) => {
                        a.version = Some(v);
                        WriteOutcome::Written
                    }
                    CasOutcome::Gone => WriteOutcome::Gone,
                    CasOutcome::Conflict => {
                        tracing::debug!("session changed by another request; not saved");
                        return Err(SessionError::conflict(self.shared.config.conflict_status));
                    }
                }
            }
            _ => self
                .shared
                .store
                .save(&a.record)
                .instrument(span("save"))
                .await
                .map_err(|e| self.store_err("save", e))?,
        };
        match outcome {
            WriteOutcome::Written => {
                a.written = true;
                self.shared.throttle.record(&a.record.id);
            }
            WriteOutcome::Gone => {
                tracing::debug!("session was destroyed or expired meanwhile; not recreated");
                a.gone = true;
                self.shared.throttle.forget(&a.record.id);
            }
        }
        Ok(outcome)
    }

    async fn destroy_ids(&self, ids: &[SessionId]) -> Result<(), SessionError> {
        for id in ids {
            self.shared
                .store
                .destroy(id)
                .instrument(span("destroy"))
                .await
                .map_err(|e| self.store_err("destroy", e))?;
            self.shared.throttle.forget(id);
        }
        Ok(())
    }

    /// Ids of records this request may have in the store for its session.
    fn stored_ids(&self, st: &State) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = match &st.phase {
            Phase::Active(a) if a.in_store || Some(&a.record.id) == self.cookie_id.as_ref() => {
                vec![a.record.id.clone()]
            }
            Phase::Unloaded => self.cookie_id.iter().cloned().collect(),
            Phase::Unset(ids) => ids.clone(),
            _ => Vec::new(),
        };
        for id in &st.doomed {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Whether this request's session answers with a cookie: the cookie
    /// transport is on (inside the cookie path) and no header token named it.
    fn answers_cookie(&self) -> bool {
        self.via.cookie && self.source != Some(Source::Header)
    }

    /// Whether this request's session answers with a header token: the
    /// header transport is on and no cookie named it.
    fn answers_header(&self) -> bool {
        self.via.header && self.source != Some(Source::Cookie)
    }

    /// This response re-signs what an older secret verified: header
    /// tokens always, cookies with `resign_old_cookies`.
    fn resigns(&self) -> bool {
        self.secret_index > 0
            && (self.shared.config.resign_old_cookies || self.source == Some(Source::Header))
    }

    /// The cookie of a session created by this request.
    fn new_cookie(&self, now: Timestamp) -> CookieMeta {
        match &self.cookie_template {
            Some(c) => c.clone(),
            None => self.shared.config.new_cookie(now, self.request_secure),
        }
    }

    fn cookie_allowed(&self, meta: &CookieMeta) -> bool {
        let allowed = meta.secure != Some(true) || self.request_secure;
        if !allowed {
            tracing::debug!("secure session cookie not set on an insecure request");
        }
        allowed
    }

    fn expired_cookie(&self, meta: Option<&CookieMeta>) -> Option<HeaderValue> {
        if !self.answers_cookie() {
            return None;
        }
        let configured;
        let meta = match meta {
            Some(m) => m,
            None => {
                configured = self.new_cookie(time::now());
                &configured
            }
        };
        if !self.cookie_allowed(meta) {
            return None;
        }
        cookie::expired(&self.shared.config, meta)
    }

    /// The end of the request: express-session's `shouldDestroy`, `shouldSave`,
    /// `shouldTouch` and `shouldSetCookie`. Returns the `Set-Cookie` and token to send.
    pub(crate) async fn finish(&self) -> Result<Delivery, SessionError> {
        let mut guard = self.state.lock().await;
        if guard.closed {
            return Ok(Delivery::default());
        }
        guard.closed = true;
        let config = &self.shared.config;
        let now = time::now();

        if let Phase::Unset(_) = &guard.phase {
            if config.unset == UnsetPolicy::Destroy {
                let ids = self.stored_ids(&guard);
                self.destroy_ids(&ids).await?;
                for id in ids {
                    self.emit(SessionEvent::Destroyed { id });
                }
                if self.source == Some(Source::Cookie) {
                    return Ok(Delivery::cookie(
                        self.expired_cookie(guard.expire_meta.as_ref()),
                    ));
                }
            }
            return Ok(Delivery::default());
        }
        if let Phase::Destroyed = &guard.phase {
            return Ok(Delivery::cookie(if guard.expire_cookie {
                self.expired_cookie(guard.expire_meta.as_ref())
            } else {
                None
            }));
        }
        if let Phase::Absent = &guard.phase {
            if !config.save_uninitialized {
                return Ok(Delivery::default());
            }
            guard.phase = Phase::Active(Box::new(self.generate(now)));
        }
        if guard.load_failed {
            // The handler already got (and answered with) the load error.
            return Ok(Delivery::default());
        }
        if let Phase::Unloaded = &guard.phase {
            // Never accessed: read it only when a decision needs the record.
            let id = match &self.cookie_id {
                Some(id) => id.clone(),
                None => return Ok(Delivery::default()),
            };
            let needs_record = config.rolling
                || config.resave
                || self.resigns()
                || guard.force_touch
                || !self.throttled(&id);
            if !needs_record {
                tracing::trace!("session not used and touch throttled: no store I/O");
                return Ok(Delivery::default());
            }
            let active = match self.load(&id).await? {
                Some(record) => self.inflate(record),
                None => self.generate(now),
            };
            guard.phase = Phase::Active(Box::new(active));
        }

        let st = &mut *guard;
        let Phase::Active(a) = &mut st.phase else {
            return Ok(Delivery::default());
        };
        if a.gone {
            return Ok(Delivery::default());
        }
        let is_new = Some(&a.record.id) != self.cookie_id.as_ref();
        let modified = a.modified();
        let is_saved = !a.regenerated && a.saved() == Some(&a.record.data);
        let should_save = a.cookie_changed
            || if !config.save_uninitialized && a.saved().is_none() && is_new {
                modified
            } else {
                !is_saved
            };
        let should_touch = !is_new
            && !should_save
            && !a.written
            && (st.force_touch || !self.throttled(&a.record.id));
        let mut set_cookie = if is_new {
            config.save_uninitialized || modified
        } else {
            config.rolling || (a.record.cookie.expires.is_some() && modified)
        };
        set_cookie |=
            a.cookie_changed || (!is_new && self.secret_index > 0 && config.resign_old_cookies);
        let allowed = self.answers_cookie() && self.cookie_allowed(&a.record.cookie);

        if !a.expires_pinned {
            apply_expiry(&mut a.record, now);
        }
        if should_save {
            if !a.in_store && !allowed && !self.answers_header() {
                tracing::debug!("new session not stored: its secure cookie cannot be set");
            } else {
                let _ = self.save_record(a).await?;
            }
        } else if should_touch {
            let outcome = self
                .shared
                .store
                .touch(&a.record.id, a.record.cookie.expires)
                .instrument(span("touch"))
                .await
                .map_err(|e| self.store_err("touch", e))?;
            match outcome {
                WriteOutcome::Written => self.shared.throttle.record(&a.record.id),
                WriteOutcome::Gone => {
                    a.gone = true;
                    self.shared.throttle.forget(&a.record.id);
                }
            }
        }
        if a.gone {
            return Ok(Delivery::default());
        }
        if a.principal_set && a.in_store {
            if let Some(max) = config.max_sessions_per_principal {
                self.cap_principal_sessions(&a.record, max).await;
            }
        }
        // A record created during this request must be reachable by the browser.
        set_cookie |= is_new && a.in_store;
        if a.in_store && !st.doomed.is_empty() {
            // The replacement is stored: only now delete the old records.
            let doomed: Vec<SessionId> = std::mem::take(&mut st.doomed)
                .into_iter()
                .filter(|id| id != &a.record.id)
                .collect();
            self.destroy_ids(&doomed).await?;
        }
        let mut out = Delivery::default();
        // A header client learns its token only from a response: send it for
        // a new (or regenerated) stored session, and to re-sign a token
        // that an older secret verified.
        if self.answers_header() && a.in_store && (is_new || self.secret_index > 0) {
            out.token = HeaderValue::from_str(&config.signer.sign(a.record.id.as_str())).ok();
        }
        if set_cookie && allowed && (a.in_store || !is_new) {
            let signed = match &self.signed_cookie {
                // The same id, verified by the signing secret: the same MAC.
                Some(s) if self.cookie_id.as_ref() == Some(&a.record.id) => {
                    Cow::Borrowed(s.as_str())
                }
                _ => Cow::Owned(config.signer.sign(a.record.id.as_str())),
            };
            out.set_cookie = cookie::serialize(config, &signed, &a.record.cookie, None);
        } else if st.expire_cookie {
            out.set_cookie = self.expired_cookie(st.expire_meta.as_ref());
        }
        Ok(out)
    }
}

impl Session {
    /// The value stored under `key`, deserialized; `None` when absent (as
    /// for `"cookie"`, which is never data). The reserved key `"__meta"` is
    /// refused: read it with [`meta`](Self::meta).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        reserved_meta(key)?;
        let mut st = self.inner.lock().await?;
        let Some(a) = self.inner.readable(&mut st).await? else {
            return Ok(None);
        };
        a.record
            .data
            .get(key)
            .map(|v| serde_json::from_value(v.clone()).map_err(SessionError::value))
            .transpose()
    }

    /// Stores `value` under `key` (any serde-serialisable value, stored as JSON).
    /// The keys `"cookie"` (the cookie metadata) and `"__meta"` (the session
    /// metadata: [`meta`](Self::meta)) are reserved: `insert` refuses both,
    /// `get` and `remove` refuse `"__meta"`. `insert` also refuses the keys
    /// express-session can never keep ([`NODE_RESERVED_KEYS`](crate::NODE_RESERVED_KEYS):
    /// `id`, `req`, `save`, `constructor`, …), which a Node service sharing
    /// the store would drop on its next save.
    ///
    /// A value that would make the session larger than
    /// [`max_session_size`](crate::SessionConfigBuilder::max_session_size)
    /// is refused ([`SessionError::is_too_large`], 413) and the session
    /// keeps its previous value for `key`.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        reserved(key)?;
        let value = serde_json::to_value(value).map_err(SessionError::value)?;
        let mut st = self.inner.lock().await?;
        let a = self.inner.active(&mut st).await?;
        let previous = a.record.data.insert(key.to_owned(), value);
        if let Err(e) = self.inner.check_size(&a.record) {
            match previous {
                // Same key, same position: the map is as it was.
                Some(old) => a.record.data.insert(key.to_owned(), old),
                None => a.record.data.shift_remove(key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// This session's CSRF token (a synchronizer token): put it in every
    /// form that changes something (a hidden field) or in a request header
    /// of your scripts, and check it with
    /// [`verify_csrf_token`](Self::verify_csrf_token). Made on first use (24
    /// random bytes, base64url) and kept in the session under
    /// [`CSRF_SESSION_KEY`]; the session is then saved, so a login form can
    /// carry one before anyone signs in. `regenerate` starts a new one.
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        if let Some(token) = self.get::<String>(CSRF_SESSION_KEY).await? {
            if SessionId::parse(&token).is_ok() {
                return Ok(token);
            }
        }
        let token = SessionId::generate().as_str().to_owned();
        self.insert(CSRF_SESSION_KEY, &token).await?;
        Ok(token)
    }

    /// Checks a CSRF token from a form field or a header against this
    /// session's, in constant time: a missing, wrong or absent-from-session
    /// token is an error answering **403**
    /// ([`SessionError::is_csrf`]). Nothing is created or written.
    pub async fn verify_csrf_token(&self, presented: &str) -> Result<(), SessionError> {
        let expected: Option<String> = self.get(CSRF_SESSION_KEY).await?;
        match expected {
            Some(e)
                if !presented.is_empty()
                    && bool::from(e.as_bytes().ct_eq(presented.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(SessionError::csrf()),
        }
    }

    /// Removes `key` and returns its value, deserialized.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        reserved_meta(key)?;
        let mut st = self.inner.lock().await?;
        let Some(a) = self.inner.readable(&mut st).await? else {
            return Ok(None);
        };
        a.record
            .data
            .shift_remove(key)
            .map(|v| serde_json::from_value(v).map_err(SessionError::value))
            .transpose()
    }

    /// Removes every key (the session itself stays, with its id and cookie).
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        if let Some(a) = self.inner.readable(&mut st).await? {
            a.record.data.retain(|k, _| k == META_KEY);
        }
        Ok(())
    }

    /// A copy of all the data (`req.session` without `cookie` and without
    /// the metadata kept under `__meta`).
    pub async fn data(&self) -> Result<Map<String, Value>, SessionError> {
        let mut st = self.inner.lock().await?;
        Ok(match self.inner.readable(&mut st).await? {
            Some(a) => {
                let mut data = a.record.data.clone();
                data.shift_remove(META_KEY);
                data
            }
            None => Map::new(),
        })
    }

    /// A copy of the session's metadata (creation time, last write,
    /// expiry policy, principal, client), or `None` when it has none.
    pub async fn meta(&self) -> Result<Option<SessionMeta>, SessionError> {
        let mut st = self.inner.lock().await?;
        Ok(self
            .inner
            .readable(&mut st)
            .await?
            .and_then(|a| read_meta(&a.record)))
    }

    /// Who this session belongs to, as set by [`set_principal`](Self::set_principal).
    pub async fn principal(&self) -> Result<Option<String>, SessionError> {
        Ok(self.meta().await?.and_then(|m| m.principal))
    }

    /// Tags the session with its principal (a user id), kept in its
    /// metadata; `None` removes the tag. Call it after
    /// [`regenerate`](Self::regenerate) on login. The session is saved at
    /// the end of the request.
    pub async fn set_principal(&self, principal: Option<String>) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        let a = self.inner.active(&mut st).await?;
        let mut meta = read_meta(&a.record).unwrap_or_default();
        if meta.principal == principal {
            return Ok(());
        }
        a.principal_set = principal.is_some();
        meta.principal = principal;
        meta.last_seen.get_or_insert_with(time::now);
        write_meta(&mut a.record, &meta);
        Ok(())
    }

    /// Gives this session its own idle timeout and absolute lifetime,
    /// replacing the layer's (e.g. "remember me": a 30-day idle timeout).
    /// The absolute lifetime counts from the session's creation (from now
    /// when that is unknown). The policy is stored with the session, which is
    /// then saved and its cookie sent on this response. An
    /// [`ExpiryPolicy::new()`](crate::ExpiryPolicy::new) with neither removes
    /// the session's policy.
    ///
    /// On a session with a policy, the policy decides the expiry:
    /// [`set_max_age`](Self::set_max_age) is overridden by it.
    pub async fn set_expiry_policy(&self, policy: crate::ExpiryPolicy) -> Result<(), SessionError> {
        policy
            .check()
            .map_err(|_| SessionError::invalid_cookie("expiry policy"))?;
        let mut st = self.inner.lock().await?;
        let a = self.inner.active(&mut st).await?;
        let now = time::now();
        let mut meta = read_meta(&a.record).unwrap_or_default();
        meta.last_seen.get_or_insert(now);
        meta.idle_timeout_secs = policy.idle_timeout().map(|d| d.as_secs());
        let start = meta.created.unwrap_or(now);
        meta.absolute_deadline = policy.absolute_lifetime().map(|d| after(start, d));
        write_meta(&mut a.record, &meta);
        apply_expiry(&mut a.record, now);
        a.cookie_changed = true;
        Ok(())
    }

    /// The session id (`req.sessionID`); `None` after [`destroy`](Self::destroy)
    /// or [`unset`](Self::unset).
    ///
    /// The id of a session that is not stored yet is provisional: if the
    /// store reports that a generated id already exists, another one is used.
    pub async fn id(&self) -> Result<Option<SessionId>, SessionError> {
        let mut st = self.inner.lock().await?;
        Ok(self
            .inner
            .readable(&mut st)
            .await?
            .map(|a| a.record.id.clone()))
    }

    /// A copy of the session's cookie metadata (`req.session.cookie`).
    pub async fn cookie(&self) -> Result<Option<CookieMeta>, SessionError> {
        let mut st = self.inner.lock().await?;
        Ok(self
            .inner
            .readable(&mut st)
            .await?
            .map(|a| a.record.cookie.clone()))
    }

    /// Sets this session's cookie lifetime, e.g. 30 days for "remember me"
    /// (`req.session.cookie.maxAge = ...`); `None` makes it a browser-session
    /// cookie. The session is then saved and its cookie sent on this response.
    pub async fn set_max_age(&self, max_age: Option<Duration>) -> Result<(), SessionError> {
        self.update_cookie(|c| c.set_max_age(max_age, time::now()))
            .await
    }

    /// Changes this session's cookie settings (`req.session.cookie.*`). The
    /// session is then saved and its cookie sent on this response. A domain or
    /// path that could inject cookie attributes is refused and nothing changes.
    ///
    /// Security: the same notes as on [`SessionConfigBuilder`](crate::SessionConfigBuilder)'s
    /// setters apply (`http_only`, `secure`, `same_site`).
    pub async fn update_cookie(
        &self,
        change: impl FnOnce(&mut CookieMeta),
    ) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        let a = self.inner.active(&mut st).await?;
        let mut meta = a.record.cookie.clone();
        change(&mut meta);
        let expires_changed = meta.expires != a.record.cookie.expires;
        if expires_changed && meta.original_max_age == a.record.cookie.original_max_age {
            // express's `cookie.expires = date` setter: the lifetime left
            // becomes `originalMaxAge` (null for a browser-session cookie).
            let now = time::now().timestamp_millis();
            meta.original_max_age = meta
                .expires
                .map(|at| at.timestamp_millis().saturating_sub(now));
        }
        if meta
            .domain
            .as_deref()
            .is_some_and(|d| !cookie::valid_domain(d))
        {
            return Err(SessionError::invalid_cookie("domain"));
        }
        if meta.path.as_deref().is_some_and(|p| !cookie::valid_path(p)) {
            return Err(SessionError::invalid_cookie("path"));
        }
        a.record.cookie = meta;
        a.cookie_changed = true;
        a.expires_pinned |= expires_changed;
        Ok(())
    }

    /// Sets when this session's cookie expires, exactly
    /// (`req.session.cookie.expires = date`); `None` makes it a
    /// browser-session cookie. A date in the past makes the browser drop
    /// the cookie. The session is saved and its cookie sent, with this
    /// `Expires`, on this response.
    ///
    /// As with express, the time left becomes the session's
    /// `originalMaxAge`: a later request that resets the expiry (`rolling`,
    /// or a save) moves it to that request's time plus the same amount, and
    /// so does Node sharing the store. For a deadline that never moves, use
    /// [`set_expiry_policy`](Self::set_expiry_policy) with an absolute
    /// lifetime.
    pub async fn set_expires(&self, at: Option<Timestamp>) -> Result<(), SessionError> {
        self.update_cookie(|c| c.expires = at).await
    }

    /// Replaces the session with a new one: a new id, empty data and the
    /// configured cookie (express-session's `regenerate`). Call it on login to
    /// prevent session fixation.
    ///
    /// The new record is stored when the response leaves, and only then is the
    /// old one deleted: an error response after `regenerate` leaves the user
    /// with the old session instead of logging them out.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        if let Phase::Unset(_) = st.phase {
            return Err(SessionError::unset());
        }
        let stored = self.inner.stored_ids(&st);
        let from = match &st.phase {
            // Regenerated twice before being stored: still replaces the first.
            Phase::Active(a) if a.regenerated_from.is_some() => a.regenerated_from.clone(),
            _ => stored.first().cloned(),
        };
        for id in stored {
            if !st.doomed.contains(&id) {
                st.doomed.push(id);
            }
        }
        let mut fresh = self.inner.generate(time::now());
        fresh.regenerated = true;
        fresh.regenerated_from = from;
        st.phase = Phase::Active(Box::new(fresh));
        st.expire_cookie = false;
        Ok(())
    }

    /// Deletes the session from the store now and expires the browser cookie
    /// on this response (express-session's `destroy`, plus the cookie). Data
    /// inserted afterwards starts a new session.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        if let Phase::Unset(_) = st.phase {
            return Err(SessionError::unset());
        }
        let ids = self.inner.stored_ids(&st);
        self.inner.destroy_ids(&ids).await?;
        for id in ids {
            self.inner.emit(SessionEvent::Destroyed { id });
        }
        st.doomed.clear();
        if let Phase::Active(a) = &st.phase {
            st.expire_meta = Some(a.record.cookie.clone());
        }
        st.phase = Phase::Destroyed;
        st.expire_cookie = self.inner.source == Some(Source::Cookie);
        Ok(())
    }

    /// Re-reads the session from the store, dropping this request's unsaved
    /// changes (express-session's `reload`). Returns `false` when the stored
    /// session no longer exists (destroyed elsewhere or expired, or never
    /// saved); the handle then holds a new, empty session.
    pub async fn reload(&self) -> Result<bool, SessionError> {
        let mut st = self.inner.lock().await?;
        let id = match &st.phase {
            Phase::Active(a) if a.in_store => a.record.id.clone(),
            Phase::Unloaded => match &self.inner.cookie_id {
                Some(id) => id.clone(),
                None => return Ok(false),
            },
            Phase::Unset(_) => return Err(SessionError::unset()),
            _ => return Ok(false),
        };
        let loaded = self.inner.load(&id).await?;
        match (&mut st.phase, loaded) {
            (Phase::Active(a), Some((record, version))) => {
                a.record = record;
                a.version = version;
                a.cookie_changed = false;
                a.gone = false;
            }
            (phase, Some(record)) => *phase = Phase::Active(Box::new(self.inner.inflate(record))),
            (phase, None) => {
                self.inner.shared.throttle.forget(&id);
                *phase = Phase::Active(Box::new(self.inner.generate(time::now())));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the session to the store now, e.g. before a redirect
    /// (express-session's `save`). A new session is created; an existing one
    /// is updated only if it still exists: [`WriteOutcome::Gone`] means it was
    /// destroyed or expired meanwhile, and it is not brought back.
    pub async fn save(&self) -> Result<WriteOutcome, SessionError> {
        let mut st = self.inner.lock().await?;
        let a = self.inner.active(&mut st).await?;
        if a.gone {
            return Ok(WriteOutcome::Gone);
        }
        apply_expiry(&mut a.record, time::now());
        let outcome = self.inner.save_record(a).await?;
        if outcome == WriteOutcome::Written {
            a.saved_data = Saved::Data(a.record.data.clone());
        }
        Ok(outcome)
    }

    /// Makes sure the stored expiry moves forward at the end of this request,
    /// even when `touch_after` would skip it (express-session's `touch`).
    pub async fn touch(&self) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        st.force_touch = true;
        if let Phase::Active(a) = &mut st.phase {
            apply_expiry(&mut a.record, time::now());
        }
        Ok(())
    }

    /// Drops the session from this request, like `req.session = null` in
    /// express-session: nothing is saved, touched or sent, and with
    /// [`UnsetPolicy::Destroy`](crate::UnsetPolicy::Destroy) the stored session
    /// is deleted (and the cookie expired) at the end of the request. Later
    /// writes on this handle fail.
    pub async fn unset(&self) -> Result<(), SessionError> {
        let mut st = self.inner.lock().await?;
        let ids = self.inner.stored_ids(&st);
        st.doomed.clear();
        if let Phase::Active(a) = &st.phase {
            st.expire_meta = Some(a.record.cookie.clone());
        }
        st.phase = Phase::Unset(ids);
        Ok(())
    }
}

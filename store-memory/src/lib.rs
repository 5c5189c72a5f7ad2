//! An in-process session store: for development, tests and single-process
//! apps.
//!
//! Unlike express's `MemoryStore` and tower-sessions' `MemoryStore`, it does
//! not leak: expired sessions are evicted when touched by any operation and
//! by [`MemoryStore::spawn_sweeper`], and an optional capacity bound evicts
//! anonymous sessions (no principal, see `Record::principal`) before
//! signed-in ones, each the closest to expiry first: a flood of anonymous
//! sessions cannot push signed-in users out. Records are kept as express-session
//! JSON, so what you load is always a copy.
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! let store = MemoryStore::builder().capacity(100_000).build();
//! let record = Record::new(SessionId::generate());
//! store.create(&record).await?;
//! assert!(store.load(&record.id).await?.is_some());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    pruner, Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version,
    WriteOutcome, DEFAULT_TTL,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug)]
struct Entry {
    json: Box<str>,
    expires_ms: i64,
    /// The record's principal, when tagged (see `Record::principal`).
    principal: Option<Box<str>>,
}

impl Entry {
    fn new(json: Box<str>, expires_ms: i64, record: &Record) -> Self {
        Entry {
            json,
            expires_ms,
            principal: record.principal().map(Into::into),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    map: HashMap<SessionId, Entry>,
    /// (expiry, id), for sweeping and capacity eviction in O(log n).
    by_expiry: BTreeSet<(i64, SessionId)>,
    /// The same for anonymous records (no principal) only: capacity
    /// eviction takes them first, so a flood of anonymous sessions cannot
    /// push signed-in users out.
    anonymous_by_expiry: BTreeSet<(i64, SessionId)>,
    /// principal → ids of its records, kept in step with `map`.
    by_principal: HashMap<Box<str>, HashSet<SessionId>>,
}

impl State {
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.map.remove(id)?;
        let key = (entry.expires_ms, id.clone());
        if entry.principal.is_none() {
            self.anonymous_by_expiry.remove(&key);
        }
        self.by_expiry.remove(&key);
        self.unindex(entry.principal.as_deref(), id);
        Some(entry)
    }

    fn insert(&mut self, id: SessionId, entry: Entry) {
        if entry.principal.is_none() {
            self.anonymous_by_expiry
                .insert((entry.expires_ms, id.clone()));
        }
        self.by_expiry.insert((entry.expires_ms, id.clone()));
        if let Some(p) = &entry.principal {
            self.by_principal
                .entry(p.clone())
                .or_default()
                .insert(id.clone());
        }
        let principal = entry.principal.clone();
        if let Some(old) = self.map.insert(id.clone(), entry) {
            if old.principal.is_none() {
                self.anonymous_by_expiry
                    .remove(&(old.expires_ms, id.clone()));
            }
            self.by_expiry.remove(&(old.expires_ms, id.clone()));
            if old.principal != principal {
                self.unindex(old.principal.as_deref(), &id);
            }
        }
    }

    /// Replaces the entry of `id` (inserting it if absent), cloning the id
    /// only where an index needs a new key of its own: once when the expiry
    /// moved (the hot path: a save), not at all otherwise.
    fn replace(&mut self, id: &SessionId, entry: Entry) {
        let Some(slot) = self.map.get_mut(id) else {
            self.insert(id.clone(), entry);
            return;
        };
        let old = std::mem::replace(slot, entry);
        let expires_ms = slot.expires_ms;
        let moved_principal = (old.principal != slot.principal).then(|| slot.principal.clone());
        let anonymous = slot.principal.is_none();
        if old.expires_ms != expires_ms || old.principal.is_none() != anonymous {
            let mut key = (old.expires_ms, id.clone());
            if old.principal.is_none() {
                self.anonymous_by_expiry.remove(&key);
            }
            self.by_expiry.remove(&key);
            key.0 = expires_ms;
            if anonymous {
                self.anonymous_by_expiry.insert(key.clone());
            }
            self.by_expiry.insert(key);
        }
        if let Some(principal) = moved_principal {
            self.unindex(old.principal.as_deref(), id);
            if let Some(p) = principal {
                self.by_principal.entry(p).or_default().insert(id.clone());
            }
        }
    }

    fn unindex(&mut self, principal: Option<&str>, id: &SessionId) {
        let Some(p) = principal else { return };
        if let Some(ids) = self.by_principal.get_mut(p) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_principal.remove(p);
            }
        }
    }

    /// Ids of the live records of `principal`.
    fn principal_ids(&self, principal: &str, now_ms: i64) -> Vec<SessionId> {
        self.by_principal
            .get(principal)
            .into_iter()
            .flatten()
            .filter(|id| self.map.get(*id).is_some_and(|e| e.expires_ms > now_ms))
            .cloned()
            .collect()
    }

    fn live(&mut self, id: &SessionId, now_ms: i64) -> Option<&mut Entry> {
        if self.map.get(id).is_some_and(|e| e.expires_ms <= now_ms) {
            self.remove(id);
        }
        self.map.get_mut(id)
    }

    fn set_expiry(&mut self, id: &SessionId, expires_ms: i64) {
        if let Some(e) = self.map.get_mut(id) {
            let anonymous = e.principal.is_none();
            let old = (e.expires_ms, id.clone());
            e.expires_ms = expires_ms;
            if anonymous {
                self.anonymous_by_expiry.remove(&old);
                self.anonymous_by_expiry.insert((expires_ms, id.clone()));
            }
            self.by_expiry.remove(&old);
            self.by_expiry.insert((expires_ms, id.clone()));
        }
    }

    fn sweep(&mut self, now_ms: i64) -> u64 {
        let mut n = 0;
        while let Some((exp, id)) = self.by_expiry.first().cloned() {
            if exp > now_ms {
                break;
            }
            self.remove(&id);
            n += 1;
        }
        n
    }

    fn enforce(&mut self, capacity: Option<usize>, now_ms: i64) {
        let Some(cap) = capacity else { return };
        if self.map.len() <= cap {
            return;
        }
        self.sweep(now_ms);
        while self.map.len() > cap {
            // Anonymous sessions first, then signed-in ones; within each,
            // the closest to expiry.
            let next = self
                .anonymous_by_expiry
                .first()
                .or_else(|| self.by_expiry.first())
                .cloned();
            let Some((_, id)) = next else {
                break;
            };
            self.remove(&id);
        }
    }
}

/// Configures a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    default_ttl: Duration,
    capacity: Option<usize>,
}

impl MemoryStoreBuilder {
    /// TTL for sessions whose cookie has no expiry (default one day).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// At most this many sessions; past it, expired sessions go first, then
    /// anonymous ones (no principal), then signed-in ones, each the closest
    /// to expiry first. Unbounded by default.
    pub fn capacity(mut self, max_sessions: usize) -> Self {
        self.capacity = Some(max_sessions);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                default_ttl: self.default_ttl,
                capacity: self.capacity,
            }),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    default_ttl: Duration,
    capacity: Option<usize>,
}

/// The in-process store. Cloning shares the same sessions.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::builder().build()
    }
}

impl MemoryStore {
    /// A store with the default TTL (one day) and no capacity bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Configures a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            default_ttl: DEFAULT_TTL,
            capacity: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated in
        // a way that matters more than losing every session: keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the live entry's JSON (evicting it if it expired).
    fn live_json(&self, id: &SessionId) -> Option<String> {
        let now = time::now().timestamp_millis();
        self.state().live(id, now).map(|e| e.json.to_string())
    }

    fn expiry_ms(&self, expires: Option<Timestamp>, now: Timestamp) -> i64 {
        time::store_expiry(expires, self.inner.default_ttl, now).timestamp_millis()
    }

    /// Stores raw express-session JSON under `id` until `expires`, replacing
    /// what is there (to import sessions, e.g. from a Node dump). The text is
    /// not validated: a later `load` reports garbage as a decode error.
    pub fn insert_raw(&self, id: SessionId, json: impl Into<Box<str>>, expires: Timestamp) {
        let json: Box<str> = json.into();
        // Raw text is not trusted to be a record: index it only if it is one.
        let principal = Record::from_json(id.clone(), &json)
            .ok()
            .and_then(|r| r.principal().map(Into::into));
        let mut st = self.state();
        st.insert(
            id,
            Entry {
                json,
                expires_ms: expires.timestamp_millis(),
                principal,
            },
        );
    }

    /// The raw stored JSON and expiry of `id`, expired or not (for export and
    /// inspection).
    pub fn get_raw(&self, id: &SessionId) -> Option<(String, Timestamp)> {
        let st = self.state();
        st.map
            .get(id)
            .map(|e| (e.json.to_string(), time::from_millis(e.expires_ms)))
    }

    /// Starts a task that evicts expired sessions every `interval`. Dropping
    /// the returned handle (or awaiting its `shutdown`) stops it.
    pub fn spawn_sweeper(&self, interval: Duration) -> pruner::Pruner {
        pruner::spawn(Arc::new(self.clone()), interval)
    }

    /// Number of entries held, expired ones not yet evicted included.
    pub fn len_including_expired(&self) -> usize {
        self.state().map.len()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let Some(json) = self.live_json(id) else {
            return Ok(None);
        };
        Record::from_json(id.clone(), &json).map(Some)
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let now = time::now();
        let json = record.to_json()?.into_boxed_str();
        let expires_ms = self.expiry_ms(record.cookie.expires, now);
        let now_ms = now.timestamp_millis();
        let mut st = self.state();
        if st.live(&record.id, now_ms).is_some() {
            return Err(Error::Collision);
        }
        if expires_ms <= now_ms {
            return Ok(());
        }
        st.insert(record.id.clone(), Entry::new(json, expires_ms, record));
        st.enforce(self.inner.capacity, now_ms);
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let now = time::now();
        let json = record.to_json()?.into_boxed_str();
        let expires_ms = self.expiry_ms(record.cookie.expires, now);
        let now_ms = now.timestamp_millis();
        let mut st = self.state();
        if st.live(&record.id, now_ms).is_none() {
            return Ok(WriteOutcome::Gone);
        }
        if expires_ms <= now_ms {
            st.remove(&record.id);
        } else {
            st.replace(&record.id, Entry::new(json, expires_ms, record));
        }
        Ok(WriteOutcome::Written)
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let now = time::now();
        let expires_ms = self.expiry_ms(expires, now);
        let now_ms = now.timestamp_millis();
        let mut st = self.state();
        if st.live(id, now_ms).is_none() {
            return Ok(WriteOutcome::Gone);
        }
        if expires_ms <= now_ms {
            st.remove(id);
        } else {
            st.set_expiry(id, expires_ms);
        }
        Ok(WriteOutcome::Written)
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.state().remove(id);
        Ok(())
    }

    fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let mut st = self.state();
        st.sweep(time::now().timestamp_millis());
        Ok(st.map.keys().cloned().collect())
    }

    async fn count(&self) -> Result<u64> {
        let mut st = self.state();
        st.sweep(time::now().timestamp_millis());
        Ok(st.map.len() as u64)
    }

    async fn clear(&self) -> Result<()> {
        let mut st = self.state();
        st.map.clear();
        st.by_expiry.clear();
        st.by_principal.clear();
        Ok(())
    }

    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        let now_ms = time::now().timestamp_millis();
        let found: Vec<(SessionId, Box<str>)> = {
            let st = self.state();
            st.principal_ids(principal, now_ms)
                .into_iter()
                .filter_map(|id| st.map.get(&id).map(|e| (id, e.json.clone())))
                .collect()
        };
        found
            .into_iter()
            .map(|(id, json)| Record::from_json(id, &json))
            .collect()
    }

    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        let now_ms = time::now().timestamp_millis();
        let mut st = self.state();
        let mut n = 0;
        for id in st.principal_ids(principal, now_ms) {
            if Some(&id) != keep && st.remove(&id).is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_expired(&self) -> Result<u64> {
        Ok(self.state().sweep(time::now().timestamp_millis()))
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let Some(json) = self.live_json(id) else {
            return Ok(None);
        };
        let record = Record::from_json(id.clone(), &json)?;
        Ok(Some((record, Version::new(json))))
    }

    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let now = time::now();
        let json = record.to_json()?;
        let expires_ms = self.expiry_ms(record.cookie.expires, now);
        let now_ms = now.timestamp_millis();
        let mut st = self.state();
        match st.live(&record.id, now_ms) {
            None => return Ok(CasOutcome::Gone),
            Some(e) if *e.json != *expected.as_str() => return Ok(CasOutcome::Conflict),
            Some(_) => {}
        }
        if expires_ms <= now_ms {
            st.remove(&record.id);
        } else {
            st.replace(
                &record.id,
                Entry::new(json.clone().into_boxed_str(), expires_ms, record),
            );
        }
        Ok(CasOutcome::Written(Version::new(json)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_expiring_in(ms: i64) -> Record {
        let mut r = Record::new(SessionId::generate());
        r.cookie.expires = Some(time::from_millis(time::now().timestamp_millis() + ms));
        r
    }

    #[tokio::test]
    async fn a_flood_of_anonymous_sessions_does_not_evict_signed_in_users() -> Result<()> {
        let store = MemoryStore::builder().capacity(3).build();
        let mut alice = record_expiring_in(60_000);
        let mut meta = sessionkit_core::SessionMeta::default();
        meta.principal = Some("alice".into());
        alice.set_meta(Some(&meta))?;
        store.create(&alice).await?;
        let flood: Vec<Record> = (0..10).map(|i| record_expiring_in(600_000 + i)).collect();
        for r in &flood {
            store.create(r).await?;
        }
        assert_eq!(store.len_including_expired(), 3);
        assert!(
            store.load(&alice.id).await?.is_some(),
            "the signed-in user was evicted"
        );
        // The newest anonymous sessions stayed; the oldest went first.
        assert!(store.load(&flood[9].id).await?.is_some());
        assert!(store.load(&flood[8].id).await?.is_some());
        assert!(store.load(&flood[0].id).await?.is_none());
        // A signed-in session is evicted only when no anonymous one is left.
        let mut bob = record_expiring_in(700_000);
        bob.set_meta(Some(&meta))?;
        let carol = {
            let mut r = record_expiring_in(800_000);
            r.set_meta(Some(&meta))?;
            r
        };
        store.create(&bob).await?;
        store.create(&carol).await?;
        assert!(store.load(&flood[9].id).await?.is_none());
        assert!(store.load(&alice.id).await?.is_some());
        store
            .create(&{
                let mut r = record_expiring_in(900_000);
                r.set_meta(Some(&meta))?;
                r
            })
            .await?;
        assert!(
            store.load(&alice.id).await?.is_none(),
            "then the soonest signed-in one"
        );
        Ok(())
    }

    #[tokio::test]
    async fn capacity_evicts_expired_first_then_soonest() -> Result<()> {
        let store = MemoryStore::builder().capacity(3).build();
        let expired = Record::new(SessionId::generate());
        store.insert_raw(expired.id.clone(), expired.to_json()?, time::from_millis(0));
        let soon = record_expiring_in(60_000);
        let later: Vec<Record> = (0..3).map(|i| record_expiring_in(600_000 + i)).collect();
        store.create(&soon).await?;
        for r in &later[..2] {
            store.create(r).await?;
        }
        // expired + soon + 2 later = 4 > 3: the expired one went.
        assert_eq!(store.len_including_expired(), 3);
        assert!(store.get_raw(&expired.id).is_none());
        store.create(&later[2]).await?;
        assert_eq!(store.len_including_expired(), 3);
        assert!(store.load(&soon.id).await?.is_none(), "soonest kept");
        for r in &later {
            assert!(store.load(&r.id).await?.is_some());
        }
        Ok(())
    }

    #[tokio::test]
    async fn saves_keep_the_indexes_in_step() -> Result<()> {
        let store = MemoryStore::new();
        let mut r = record_expiring_in(600_000);
        store.create(&r).await?;
        let mut meta = sessionkit_core::SessionMeta::default();
        for (i, principal) in [None, Some("ann"), Some("ann"), Some("bob"), None]
            .into_iter()
            .enumerate()
        {
            r.cookie.expires = Some(time::from_millis(
                time::now().timestamp_millis() + 600_000 + i as i64,
            ));
            meta.principal = principal.map(str::to_owned);
            r.set_meta(Some(&meta))?;
            assert_eq!(store.save(&r).await?, WriteOutcome::Written);
            let st = store.state();
            assert_eq!(st.by_expiry.len(), 1);
            let (exp, id) = st.by_expiry.first().cloned().expect("indexed");
            assert_eq!(
                (Some(exp), &id),
                (r.cookie.expires.map(|t| t.timestamp_millis()), &r.id)
            );
            let indexed: Vec<&str> = st.by_principal.keys().map(|k| &**k).collect();
            assert_eq!(indexed, principal.into_iter().collect::<Vec<_>>());
        }
        // Expiry unchanged: nothing to move.
        assert_eq!(store.save(&r).await?, WriteOutcome::Written);
        assert_eq!(store.state().by_expiry.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn expired_entries_do_not_accumulate() -> Result<()> {
        let store = MemoryStore::new();
        for _ in 0..1000 {
            let r = Record::new(SessionId::generate());
            store.insert_raw(r.id.clone(), r.to_json()?, time::from_millis(1));
        }
        let live = record_expiring_in(600_000);
        store.create(&live).await?;
        assert_eq!(store.delete_expired().await?, 1000);
        assert_eq!(store.len_including_expired(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn sweeper_evicts_in_background() -> Result<()> {
        let store = MemoryStore::new();
        let r = Record::new(SessionId::generate());
        store.insert_raw(r.id.clone(), r.to_json()?, time::from_millis(1));
        let sweeper = store.spawn_sweeper(Duration::from_millis(1));
        while store.len_including_expired() != 0 {
            tokio::task::yield_now().await;
        }
        sweeper.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn load_evicts_expired_entry() -> Result<()> {
        let store = MemoryStore::new();
        let r = Record::new(SessionId::generate());
        store.insert_raw(r.id.clone(), r.to_json()?, time::from_millis(1));
        assert!(store.load(&r.id).await?.is_none());
        assert_eq!(store.len_including_expired(), 0);
        Ok(())
    }
}

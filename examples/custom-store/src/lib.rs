//! A tiny session store, as a third party would write one: sessions in a
//! `HashMap` behind a mutex, stored as express-session JSON with an
//! expiry. It implements the five required methods of
//! [`Store`] and nothing optional, and passes the
//! whole conformance suite (`tests/conformance.rs`): the optional cases
//! (listing, compare-and-set, per-user index) pass without running when a
//! store does not claim them in its capabilities.

use async_trait::async_trait;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{Error, Record, Result, SessionId, Store, WriteOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The expiry of a record whose cookie has none (connect-redis's one day).
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Sessions in memory: id → (express-session JSON, expiry).
#[derive(Clone, Default)]
pub struct TinyStore {
    map: Arc<Mutex<HashMap<SessionId, (String, Timestamp)>>>,
}

impl TinyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<SessionId, (String, Timestamp)>> {
        // A panic elsewhere while holding the lock leaves the map whole.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes raw stored text (for the suite's Node-written records and
    /// garbage).
    pub fn put_raw(&self, id: SessionId, json: &str, expires: Timestamp) {
        self.map().insert(id, (json.to_owned(), expires));
    }

    /// The raw stored text and expiry, ignoring expiry.
    pub fn raw(&self, id: &SessionId) -> Option<(String, Timestamp)> {
        self.map().get(id).cloned()
    }

    /// Whether `id` holds a record that has not expired.
    fn live(map: &HashMap<SessionId, (String, Timestamp)>, id: &SessionId, now: Timestamp) -> bool {
        map.get(id).is_some_and(|(_, expires)| *expires > now)
    }
}

#[async_trait]
impl Store for TinyStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let json = {
            let map = self.map();
            match map.get(id) {
                Some((json, expires)) if *expires > time::now() => json.clone(),
                _ => return Ok(None),
            }
        };
        // Garbage in the store is a decode error, never a panic.
        Record::from_json(id.clone(), &json).map(Some)
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let now = time::now();
        let json = record.to_json()?;
        let expires = record.store_expiry(DEFAULT_TTL, now);
        let mut map = self.map();
        if Self::live(&map, &record.id, now) {
            return Err(Error::Collision);
        }
        if expires > now {
            map.insert(record.id.clone(), (json, expires));
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let now = time::now();
        let json = record.to_json()?;
        let expires = record.store_expiry(DEFAULT_TTL, now);
        let mut map = self.map();
        if !Self::live(&map, &record.id, now) {
            // Destroyed or expired meanwhile: a save never resurrects it.
            return Ok(WriteOutcome::Gone);
        }
        if expires > now {
            map.insert(record.id.clone(), (json, expires));
        } else {
            map.remove(&record.id);
        }
        Ok(WriteOutcome::Written)
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let now = time::now();
        let expires = time::store_expiry(expires, DEFAULT_TTL, now);
        let mut map = self.map();
        if !Self::live(&map, id, now) {
            return Ok(WriteOutcome::Gone);
        }
        if expires > now {
            if let Some(entry) = map.get_mut(id) {
                entry.1 = expires;
            }
        } else {
            map.remove(id);
        }
        Ok(WriteOutcome::Written)
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.map().remove(id);
        Ok(())
    }
}

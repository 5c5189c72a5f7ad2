//! Hashed ids at rest: the store keeps SHA-256 of each session id, never
//! the id itself.

use crate::store::{Capabilities, CasOutcome, Store, Version, WriteOutcome};
use crate::time::Timestamp;
use crate::{Error, Record, Result, SessionId};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A store wrapper that keys every record by `base64url(SHA-256(id))`
/// (43 characters, no padding) instead of the session id.
///
/// A leaked database dump or key listing then holds no id that could be
/// replayed as a cookie: the fix Rails made its default after
/// CVE-2019-25025. Works over any [`Store`].
///
/// Off by default because Node stores look records up by the id itself: a
/// Node service sharing the store would not find these records (connect-mongo
/// can, with `transformId: sid => createHash('sha256').update(sid).digest('base64url')`).
/// [`Store::ids`] is unsupported through the wrapper: the stored keys cannot
/// be turned back into ids, and a listed key could not be used as one.
///
/// ```
/// use sessionkit_core::{HashedIds, SessionId};
///
/// let id = SessionId::parse("abcdefgh").unwrap();
/// assert_eq!(HashedIds::<()>::key(&id).as_str().len(), 43);
/// ```
#[derive(Debug, Clone)]
pub struct HashedIds<S> {
    inner: S,
}

impl<S> HashedIds<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        HashedIds { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The key the record of `id` is stored under.
    pub fn key(id: &SessionId) -> SessionId {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let encoded = URL_SAFE_NO_PAD.encode(digest);
        // 43 characters of the base64url alphabet always form a valid id.
        SessionId::parse(&encoded).unwrap_or_else(|_| id.clone())
    }

    fn stored(record: &Record) -> Record {
        Record {
            id: Self::key(&record.id),
            cookie: record.cookie.clone(),
            data: record.data.clone(),
        }
    }
}

fn restore(mut record: Record, id: &SessionId) -> Record {
    record.id = id.clone();
    record
}

#[async_trait]
impl<S: Store> Store for HashedIds<S> {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let found = self.inner.load(&Self::key(id)).await?;
        Ok(found.map(|r| restore(r, id)))
    }

    async fn create(&self, record: &Record) -> Result<()> {
        self.inner.create(&Self::stored(record)).await
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        self.inner.save(&Self::stored(record)).await
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        self.inner.touch(&Self::key(id), expires).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.inner.destroy(&Self::key(id)).await
    }

    fn default_ttl(&self) -> std::time::Duration {
        self.inner.default_ttl()
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        caps.ids = false;
        caps
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        Err(Error::Unsupported(
            "ids: a store with hashed ids cannot list the ids themselves",
        ))
    }

    async fn count(&self) -> Result<u64> {
        self.inner.count().await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }

    async fn delete_expired(&self) -> Result<u64> {
        self.inner.delete_expired().await
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let found = self.inner.load_versioned(&Self::key(id)).await?;
        Ok(found.map(|(r, v)| (restore(r, id), v)))
    }

    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        self.inner.save_if(&Self::stored(record), expected).await
    }

    /// The records carry their storage keys as ids (the ids themselves
    /// are not stored): find one with [`Store::listed_id`], revoke one with
    /// [`Store::destroy_listed`].
    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        self.inner.principal_sessions(principal).await
    }

    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        let keep = keep.map(Self::key);
        self.inner.destroy_principal(principal, keep.as_ref()).await
    }

    /// The storage key: what [`Store::principal_sessions`] lists.
    fn listed_id(&self, id: &SessionId) -> SessionId {
        self.inner.listed_id(&Self::key(id))
    }

    /// `listed` is a storage key, destroyed as it is (not hashed again).
    async fn destroy_listed(&self, listed: &SessionId) -> Result<()> {
        self.inner.destroy_listed(listed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_base64url_of_the_id() -> Result<()> {
        let id = SessionId::parse("abcdefgh").map_err(|e| Error::Config(e.to_string().into()))?;
        // printf abcdefgh | sha256sum → 9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab
        let key = HashedIds::<()>::key(&id);
        assert_eq!(key.as_str(), "nFbMUbN0w7oYkhDVttS_V3kNNRyWxHwCGQ7PHkMGNas");
        assert_ne!(HashedIds::<()>::key(&SessionId::generate()), key);
        Ok(())
    }
}

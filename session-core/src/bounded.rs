//! [`Bounded`]: every operation of a store under one time limit.
//!
//! A server store that is connected can still hang: a server that stopped
//! answering, a lock held on the session table by another client, a
//! network path that drops packets. Wrapping the store in [`Bounded`] turns
//! each such wait into [`Error::Unavailable`] once the limit has passed, so
//! the middleware answers 503 instead of holding the request forever.
//!
//! The server stores wrap themselves (their `operation_timeout` option);
//! stores of your own can too.

use crate::time::Timestamp;
use crate::WriteOutcome;
use crate::{Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version};
use async_trait::async_trait;
use std::future::Future;
use std::time::Duration;

/// The error inside [`Error::Unavailable`] when an operation ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within the operation timeout of {0:?}")]
pub struct TimedOut(pub Duration);

/// A store whose every operation (the optional ones included) returns
/// [`Error::Unavailable`] with a [`TimedOut`] source when it takes longer
/// than the limit. The operation is abandoned (its future dropped).
#[derive(Debug, Clone)]
pub struct Bounded<S> {
    inner: S,
    limit: Duration,
}

impl<S: Store> Bounded<S> {
    /// Wraps `inner`; a zero `limit` is an [`Error::Config`].
    pub fn new(inner: S, limit: Duration) -> Result<Self> {
        if limit.is_zero() {
            return Err(Error::Config(
                "operation timeout must be greater than zero".into(),
            ));
        }
        Ok(Bounded { inner, limit })
    }

    /// Another store under the same limit.
    pub fn with_inner<T: Store>(&self, inner: T) -> Bounded<T> {
        Bounded {
            inner,
            limit: self.limit,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    async fn run<T>(&self, what: &'static str, op: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.limit, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::unavailable(what, TimedOut(self.limit))),
        }
    }
}

#[async_trait]
impl<S: Store> Store for Bounded<S> {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.run("loading a session", self.inner.load(id)).await
    }
    async fn create(&self, record: &Record) -> Result<()> {
        self.run("creating a session", self.inner.create(record))
            .await
    }
    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        self.run("saving a session", self.inner.save(record)).await
    }
    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        self.run("touching a session", self.inner.touch(id, expires))
            .await
    }
    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.run("destroying a session", self.inner.destroy(id))
            .await
    }
    fn default_ttl(&self) -> Duration {
        self.inner.default_ttl()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ids(&self) -> Result<Vec<SessionId>> {
        self.run("listing session ids", self.inner.ids()).await
    }
    async fn count(&self) -> Result<u64> {
        self.run("counting sessions", self.inner.count()).await
    }
    async fn clear(&self) -> Result<()> {
        self.run("clearing the store", self.inner.clear()).await
    }
    async fn delete_expired(&self) -> Result<u64> {
        self.run("deleting expired sessions", self.inner.delete_expired())
            .await
    }
    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        self.run("loading a session", self.inner.load_versioned(id))
            .await
    }
    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        self.run("saving a session", self.inner.save_if(record, expected))
            .await
    }
    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        self.run(
            "listing a user's sessions",
            self.inner.principal_sessions(principal),
        )
        .await
    }
    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        self.run(
            "destroying a user's sessions",
            self.inner.destroy_principal(principal, keep),
        )
        .await
    }
    fn listed_id(&self, id: &SessionId) -> SessionId {
        self.inner.listed_id(id)
    }
    async fn destroy_listed(&self, listed: &SessionId) -> Result<()> {
        self.run("destroying a session", self.inner.destroy_listed(listed))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `load` after `delay`; everything else at once.
    struct Slow(Duration);

    #[async_trait]
    impl Store for Slow {
        async fn load(&self, _: &SessionId) -> Result<Option<Record>> {
            tokio::time::sleep(self.0).await;
            Ok(None)
        }
        async fn create(&self, _: &Record) -> Result<()> {
            Ok(())
        }
        async fn save(&self, _: &Record) -> Result<WriteOutcome> {
            Ok(WriteOutcome::Gone)
        }
        async fn touch(&self, _: &SessionId, _: Option<Timestamp>) -> Result<WriteOutcome> {
            Ok(WriteOutcome::Gone)
        }
        async fn destroy(&self, _: &SessionId) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_hung_operation_is_unavailable_at_the_limit() -> Result<()> {
        let store = Bounded::new(Slow(Duration::from_secs(3600)), Duration::from_millis(50))?;
        let err = store.load(&SessionId::generate()).await;
        match err {
            Err(Error::Unavailable { source, .. }) => {
                assert_eq!(
                    source.downcast_ref::<TimedOut>(),
                    Some(&TimedOut(Duration::from_millis(50)))
                );
            }
            other => unreachable!("expected Unavailable, got {other:?}"),
        }
        // A quick operation is untouched, optional ones keep their defaults.
        let quick = Bounded::new(Slow(Duration::from_millis(10)), Duration::from_secs(2))?;
        assert_eq!(quick.load(&SessionId::generate()).await?, None);
        assert!(matches!(quick.ids().await, Err(Error::Unsupported("ids"))));
        Ok(())
    }

    #[test]
    fn a_zero_limit_is_refused() {
        assert!(matches!(
            Bounded::new(Slow(Duration::ZERO), Duration::ZERO),
            Err(Error::Config(_))
        ));
    }
}

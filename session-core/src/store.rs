use crate::time::Timestamp;
use crate::{Error, Record, Result, SessionId};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// The store TTL for sessions whose cookie has no expiry: one day, like
/// connect-redis, connect-pg-simple and connect-mongo.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// What a `save` or `touch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a Gone outcome means the session was destroyed or expired meanwhile"]
pub enum WriteOutcome {
    /// The live record was updated (or deleted, when its new expiry was already past).
    Written,
    /// There was no live record: it was destroyed or had expired. Nothing was written.
    Gone,
}

/// The stored text a record was loaded from. A compare-and-set save
/// ([`Store::save_if`]) writes only if the store still holds exactly this.
///
/// Comparing the stored text itself (not a hash or a counter) keeps the
/// layout unchanged, so Node services sharing the store need nothing new.
#[derive(Clone, PartialEq, Eq)]
pub struct Version(Arc<str>);

impl Version {
    /// The version of a record stored as `text`.
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        Version(text.into())
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Debug output does not show session data.
impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Version({} bytes)", self.0.len())
    }
}

/// What a compare-and-set save did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Conflict means another request changed the session first"]
pub enum CasOutcome {
    /// The record still matched and was replaced; this is its new version.
    Written(Version),
    /// The record is live but changed since it was loaded. Nothing was written.
    Conflict,
    /// There was no live record (destroyed or expired). Nothing was written.
    Gone,
}

/// Which optional operations a store implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Store::ids`] is implemented.
    pub ids: bool,
    /// [`Store::count`] is implemented.
    pub count: bool,
    /// [`Store::clear`] is implemented.
    pub clear: bool,
    /// [`Store::delete_expired`] is implemented (stores whose backend expires
    /// records by itself, like Redis, do not need it).
    pub delete_expired: bool,
    /// [`Store::load_versioned`] and [`Store::save_if`] are implemented.
    pub compare_and_set: bool,
    /// [`Store::principal_sessions`] and [`Store::destroy_principal`] are
    /// implemented (the per-user session index; SQL stores enable it with
    /// their `principal_index` option, since it needs a column of its own).
    pub principal_index: bool,
}

impl Capabilities {
    /// No optional operation.
    pub const NONE: Capabilities = Capabilities {
        ids: false,
        count: false,
        clear: false,
        delete_expired: false,
        compare_and_set: false,
        principal_index: false,
    };
    /// Every optional operation.
    pub const ALL: Capabilities = Capabilities {
        ids: true,
        count: true,
        clear: true,
        delete_expired: true,
        compare_and_set: true,
        principal_index: true,
    };

    /// The same set without `delete_expired`.
    pub const fn without_delete_expired(mut self) -> Self {
        self.delete_expired = false;
        self
    }

    /// The same set, with `principal_index` as given.
    pub const fn with_principal_index(mut self, on: bool) -> Self {
        self.principal_index = on;
        self
    }
}

/// A session store. Object safe: the middleware holds an `Arc<dyn Store>`.
///
/// Expiry: every write computes the record's store expiry with
/// [`crate::time::store_expiry`] — `cookie.expires` when set, otherwise
/// `now + default_ttl` of the store (one day unless configured). A write
/// whose expiry is already past deletes the record instead (like
/// connect-redis with a TTL ≤ 0).
///
/// Ids reaching a store have been validated by [`SessionId::parse`]: they
/// can be used in keys and file names without escaping.
#[async_trait]
pub trait Store: Send + Sync {
    /// The live record for `id`, or `None` when there is none.
    ///
    /// Never returns an expired record, whatever the backend's own TTL
    /// machinery has or has not done yet (a PostgreSQL row not yet pruned,
    /// a MongoDB document the TTL monitor has not reached). A record that
    /// cannot be decoded is an [`Error::Decode`], not `None`: the caller
    /// must not silently replace a user's session.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>>;

    /// Inserts a new record, only if no live record has this id.
    ///
    /// A live record with the same id is [`Error::Collision`], never an
    /// overwrite: otherwise a client (or a bad `genid`) could take over
    /// someone else's session. An expired record with that id may be replaced.
    async fn create(&self, record: &Record) -> Result<()>;

    /// Replaces the data and expiry of an existing, live record.
    ///
    /// A missing or expired record is [`WriteOutcome::Gone`] and nothing is
    /// written: a slow request must not bring back a session that another
    /// request destroyed (a logout undone; connect-redis issue 328).
    async fn save(&self, record: &Record) -> Result<WriteOutcome>;

    /// Moves the expiry of a live record to `expires` (or `now + default_ttl`
    /// when `None`) without rewriting its data. Never creates a record: a
    /// missing or expired one is [`WriteOutcome::Gone`].
    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome>;

    /// Deletes the record. Deleting a missing id succeeds.
    async fn destroy(&self, id: &SessionId) -> Result<()>;

    /// Which optional operations this store implements.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// How long a record lives when its cookie has no expiry (a browser-
    /// session cookie): the store's configured TTL, [`DEFAULT_TTL`] (one
    /// day, connect-redis's) unless configured. The middleware reads it
    /// here, so nothing has to be kept equal to it by hand.
    fn default_ttl(&self) -> Duration {
        DEFAULT_TTL
    }

    /// Ids of the live records. Optional: [`Error::Unsupported`] by default.
    async fn ids(&self) -> Result<Vec<SessionId>> {
        Err(Error::Unsupported("ids"))
    }

    /// Number of live records. Optional: [`Error::Unsupported`] by default.
    async fn count(&self) -> Result<u64> {
        Err(Error::Unsupported("count"))
    }

    /// Deletes every record of this store (its prefix, table or collection
    /// only). Optional: [`Error::Unsupported`] by default.
    async fn clear(&self) -> Result<()> {
        Err(Error::Unsupported("clear"))
    }

    /// Deletes expired records and returns how many. Optional:
    /// [`Error::Unsupported`] by default.
    async fn delete_expired(&self) -> Result<u64> {
        Err(Error::Unsupported("delete_expired"))
    }

    /// Like [`Store::load`], with the [`Version`] a later
    /// [`Store::save_if`] compares against. Optional (capability
    /// `compare_and_set`): [`Error::Unsupported`] by default.
    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let _ = id;
        Err(Error::Unsupported("compare_and_set"))
    }

    /// Compare-and-set save: replaces the record only if the store still
    /// holds exactly `expected` for it, atomically. A live record that
    /// changed meanwhile is [`CasOutcome::Conflict`]; a missing or expired
    /// one is [`CasOutcome::Gone`] (never recreated, as with [`Store::save`]).
    /// A new expiry already past deletes the record. This is what stops lost
    /// updates between concurrent requests of one session. Optional
    /// (capability `compare_and_set`): [`Error::Unsupported`] by default.
    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let _ = (record, expected);
        Err(Error::Unsupported("compare_and_set"))
    }

    /// The live records tagged with `principal` (their
    /// [`SessionMeta::principal`](crate::SessionMeta::principal), see
    /// [`Record::principal`]), in no particular order: the "your active
    /// sessions" list. Never an expired or destroyed record, whatever the
    /// index still holds. Optional (capability `principal_index`):
    /// [`Error::Unsupported`] by default.
    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        let _ = principal;
        Err(Error::Unsupported("principal_index"))
    }

    /// Destroys every live record of `principal` except the one with id
    /// `keep` ("log out everywhere else"; `None`: everywhere) and returns
    /// how many were destroyed. To revoke one session, check that
    /// [`Store::principal_sessions`] lists it and [`Store::destroy_listed`]
    /// it. Optional (capability `principal_index`): [`Error::Unsupported`]
    /// by default.
    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        let _ = (principal, keep);
        Err(Error::Unsupported("principal_index"))
    }

    /// The id under which [`Store::principal_sessions`] lists the session
    /// `id`: `id` itself, except through a wrapper that stores something
    /// else in its place ([`HashedIds`](crate::HashedIds): the storage key,
    /// since the id is not stored). Compare it with the listed ids to find
    /// "this session" in a listing.
    fn listed_id(&self, id: &SessionId) -> SessionId {
        id.clone()
    }

    /// Destroys a session by the id [`Store::principal_sessions`] listed it
    /// under ("revoke this device"). The same as [`Store::destroy`] except
    /// through a wrapper like [`HashedIds`](crate::HashedIds), whose
    /// listings carry storage keys that `destroy` would hash again. A store
    /// that wraps another must forward this and [`Store::listed_id`] (as
    /// [`delegate_store!`](crate::delegate_store) does).
    async fn destroy_listed(&self, listed: &SessionId) -> Result<()> {
        self.destroy(listed).await
    }
}

/// Implements [`Store`] for a type by forwarding every method, optional
/// ones included, to one of its fields (a store, or an `Arc` of one): for
/// a public store type that wraps a shared inner store next to handles of
/// its own (a prune task, say). Prefer it to forwarding by hand: a wrapper
/// that forwards some methods and leaves others to their defaults (say
/// [`Store::listed_id`] and [`Store::destroy_listed`] over a
/// [`HashedIds`](crate::HashedIds)) silently changes what they do.
///
/// ```
/// use std::sync::Arc;
/// use sessionkit_core::delegate_store;
///
/// struct Outer {
///     inner: Arc<dyn sessionkit_core::Store>,
/// }
/// delegate_store!(Outer => inner);
/// ```
#[macro_export]
macro_rules! delegate_store {
    ($ty:ty => $field:ident) => {
        $crate::delegate_store!(@impl [] $ty, |self| &self.$field);
    };
    // The one forwarding impl (also behind `Arc<S>` and `Box<S>`): `$this`
    // is the receiver, `$target` the store every method is forwarded to.
    (@impl [$($gen:tt)*] $ty:ty, |$this:ident| $target:expr) => {
        #[$crate::__private::async_trait]
        impl<$($gen)*> $crate::Store for $ty {
            async fn load(
                &$this,
                id: &$crate::SessionId,
            ) -> $crate::Result<::core::option::Option<$crate::Record>> {
                $crate::Store::load($target, id).await
            }
            async fn create(&$this, record: &$crate::Record) -> $crate::Result<()> {
                $crate::Store::create($target, record).await
            }
            async fn save(&$this, record: &$crate::Record) -> $crate::Result<$crate::WriteOutcome> {
                $crate::Store::save($target, record).await
            }
            async fn touch(
                &$this,
                id: &$crate::SessionId,
                expires: ::core::option::Option<$crate::time::Timestamp>,
            ) -> $crate::Result<$crate::WriteOutcome> {
                $crate::Store::touch($target, id, expires).await
            }
            async fn destroy(&$this, id: &$crate::SessionId) -> $crate::Result<()> {
                $crate::Store::destroy($target, id).await
            }
            fn capabilities(&$this) -> $crate::Capabilities {
                $crate::Store::capabilities($target)
            }
            fn default_ttl(&$this) -> ::std::time::Duration {
                $crate::Store::default_ttl($target)
            }
            async fn ids(&$this) -> $crate::Result<::std::vec::Vec<$crate::SessionId>> {
                $crate::Store::ids($target).await
            }
            async fn count(&$this) -> $crate::Result<u64> {
                $crate::Store::count($target).await
            }
            async fn clear(&$this) -> $crate::Result<()> {
                $crate::Store::clear($target).await
            }
            async fn delete_expired(&$this) -> $crate::Result<u64> {
                $crate::Store::delete_expired($target).await
            }
            async fn load_versioned(
                &$this,
                id: &$crate::SessionId,
            ) -> $crate::Result<::core::option::Option<($crate::Record, $crate::Version)>> {
                $crate::Store::load_versioned($target, id).await
            }
            async fn save_if(
                &$this,
                record: &$crate::Record,
                expected: &$crate::Version,
            ) -> $crate::Result<$crate::CasOutcome> {
                $crate::Store::save_if($target, record, expected).await
            }
            async fn principal_sessions(
                &$this,
                principal: &str,
            ) -> $crate::Result<::std::vec::Vec<$crate::Record>> {
                $crate::Store::principal_sessions($target, principal).await
            }
            async fn destroy_principal(
                &$this,
                principal: &str,
                keep: ::core::option::Option<&$crate::SessionId>,
            ) -> $crate::Result<u64> {
                $crate::Store::destroy_principal($target, principal, keep).await
            }
            fn listed_id(&$this, id: &$crate::SessionId) -> $crate::SessionId {
                $crate::Store::listed_id($target, id)
            }
            async fn destroy_listed(&$this, listed: &$crate::SessionId) -> $crate::Result<()> {
                $crate::Store::destroy_listed($target, listed).await
            }
        }
    };
}

delegate_store!(@impl [S: Store + ?Sized] Arc<S>, |self| &**self);
delegate_store!(@impl [S: Store + ?Sized] Box<S>, |self| &**self);

#[cfg(test)]
mod tests {
    use super::*;

    struct Minimal;

    #[async_trait]
    impl Store for Minimal {
        async fn load(&self, _: &SessionId) -> Result<Option<Record>> {
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
    async fn optional_operations_default_to_unsupported() {
        let store: Arc<dyn Store> = Arc::new(Minimal);
        assert_eq!(store.capabilities(), Capabilities::NONE);
        assert!(matches!(store.ids().await, Err(Error::Unsupported("ids"))));
        assert!(matches!(store.count().await, Err(Error::Unsupported(_))));
        assert!(matches!(store.clear().await, Err(Error::Unsupported(_))));
        assert!(matches!(
            store.delete_expired().await,
            Err(Error::Unsupported(_))
        ));
        let boxed: Box<dyn Store> = Box::new(store);
        assert_eq!(boxed.load(&SessionId::generate()).await.ok(), Some(None));
    }
}

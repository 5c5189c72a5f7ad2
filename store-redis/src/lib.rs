//! A Redis session store with [connect-redis]'s layout, so a Node service
//! using `express-session` + `connect-redis` and a Rust service using this
//! crate read and write the same sessions.
//!
//! | what | layout |
//! |---|---|
//! | key | `sess:<id>` (prefix configurable with [`RedisStoreBuilder::prefix`]) |
//! | value | the session as express-session JSON, `{"cookie":{…},…data}` |
//! | TTL | `ceil((cookie.expires − now) / 1 s)`, or the default TTL (one day) when the cookie has no expiry; a TTL ≤ 0 deletes the key |
//!
//! The contract of [`Store`] maps onto single atomic commands:
//!
//! | operation | command | meaning of the reply |
//! |---|---|---|
//! | `load` | `GET` | nil: no live session (Redis expires keys itself) |
//! | `create` | `SET key json NX EX ttl` | nil: a live session has this id, [`Error::Collision`] |
//! | `save` | `SET key json XX EX ttl` | nil: destroyed or expired meanwhile, [`WriteOutcome::Gone`]: never resurrected |
//! | `touch` | `EXPIRE key ttl` (in a script with `GET` with the per-user index) | 0: [`WriteOutcome::Gone`]; the JSON is never rewritten |
//! | `destroy` | `DEL` | |
//! | `load_versioned` / `save_if` | `GET`; a Lua script that compares the stored text and `SET … EX`s only if it is unchanged | compare-and-set: a changed value is a conflict |
//! | `ids` / `count` / `clear` | `SCAN MATCH prefix* COUNT n` (never `KEYS`), then `DEL` in batches for `clear` (which also deletes the index sets) | |
//! | `principal_sessions` / `destroy_principal` | the principal's index set (below) | |
//!
//! `delete_expired` is not implemented (Redis deletes expired keys itself):
//! [`Store::capabilities`] says so.
//!
//! The connection is a [`redis::aio::ConnectionManager`]: one multiplexed
//! connection that reconnects by itself. Connecting is bounded by
//! [`RedisStoreBuilder::connect_timeout`] and every command by
//! [`RedisStoreBuilder::response_timeout`], so a server that is down gives a
//! transient [`Error::Unavailable`], never a hang.
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_redis::RedisStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! # let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
//! let store = RedisStore::builder(url) // e.g. "redis://127.0.0.1:6379"
//!     .prefix("myapp:sess:")
//!     .connect_timeout(Duration::from_secs(2))
//!     .connect()
//!     .await?;
//! let record = Record::new(SessionId::generate());
//! store.create(&record).await?;
//! assert!(store.load(&record.id).await?.is_some());
//! store.destroy(&record.id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Deployments
//!
//! The same layout and contract hold on the three deployments; only the
//! constructor differs. The connection is one internal enum
//! ([`RedisConnection`]), so each command is written once.
//!
//! | deployment | constructor | connection |
//! |---|---|---|
//! | one node | [`RedisStore::builder`]`("redis://host:6379")` | a [`ConnectionManager`] |
//! | Redis Cluster | [`RedisStore::cluster_builder`]`(["redis://host:7000", …])` | the `redis` crate's cluster connection: commands go to the master of their key's slot, `MOVED`/`ASK` and failovers are followed |
//! | Sentinel | [`RedisStore::sentinel_builder`]`(["redis://host:26379", …], "mymaster")` | a connection to the master the Sentinels name, asked again after a connection error or a `READONLY` reply (failover) |
//!
//! In a cluster every command and the compare-and-set script touch one key
//! (one slot); `ids`, `count` and `clear` `SCAN` every master in turn (the
//! masters are read from `CLUSTER SLOTS`) and `clear` deletes per slot.
//!
//! Replication in Redis is asynchronous: when a master dies, writes it
//! acknowledged but had not yet sent to the replica that is promoted are
//! lost (`WAIT` would narrow, not close, that window). During the failover
//! the store returns [`Error::Unavailable`] (bounded by the timeouts); it
//! recovers by itself, without a new store.
//!
//! # Per-user index
//!
//! [`Store::principal_sessions`] and [`Store::destroy_principal`] ("your
//! active sessions", "log out everywhere else") read one Redis SET per
//! principal (the [`Record::principal`] of the session) holding the ids of
//! its sessions:
//!
//! - key: [`RedisStore::principal_key`], `principal_prefix + principal`,
//!   the prefix derived from the session prefix by replacing its final `:`
//!   with `-principal:` (with the default prefix, principal `alice`'s
//!   sessions are listed in `sess-principal:alice`); never matched by `SCAN sess:*`, so `ids` and
//!   `count` do not see it; `clear` deletes it
//!   ([`RedisStoreBuilder::principal_prefix`] to choose another;
//!   [`RedisStoreBuilder::principal_index`]`(false)` to go without);
//! - writes: `create`/`save`/`save_if` of a session with a principal
//!   `SADD` its id after the write and extend the set's expiry to the
//!   session's (`PEXPIRE … NX`, then `PEXPIRE … GT`, plus a minute), so the
//!   set outlives its longest-lived member; `touch` is a script that
//!   `EXPIRE`s and returns the value only when it carries metadata (any
//!   sealed value, when encrypted), so the set is extended too; a session
//!   whose principal changed stays in the old principal's set until that
//!   set is next read (it no longer matches there, so it is neither listed
//!   nor destroyed by it);
//! - reads: the members are read with `MGET`, decoded with the store's
//!   codec (encrypted values too) and kept only when live and still that
//!   principal's; the others are `SREM`ed there and then. `destroy` and
//!   expiry leave the id in the set until that read or the set's own
//!   expiry: no dead id outlives the set.
//!   `destroy_principal` deletes each listed session with a script that
//!   deletes it only if it still holds the value read (read again and
//!   retried when it changed but kept the principal).
//!
//! In a cluster the set and the session are in different slots, so no
//! step spans both atomically (on one node neither: the same commands run
//! everywhere). Instead, a session write is `SET` then `SADD`, and a
//! removal is `SREM` then a fresh read of the session that `SADD`s the id
//! back if the session has that principal after all; so a racing write is
//! never left out of its set. The window that remains: between a write's
//! `SET` and its `SADD`, a listing or `destroy_principal` does not see that
//! session yet (as if the write came just after it). If the `SADD` itself
//! fails, the write returns the error and the session is indexed again by
//! its next write or touch.
//!
//! Only this store maintains the index: a connect-redis service writing a
//! session keeps its `__meta` (so its principal) but does not update the
//! set, so a session kept alive by Node alone can outlive its set.
//!
//! The index needs Redis 7.0 or later (`SET … GET` with `NX`/`XX`,
//! `PEXPIRE … NX|GT`).
//!
//! [connect-redis]: https://github.com/tj/connect-redis
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod conn;
mod tls;

pub use conn::RedisConnection;

use async_trait::async_trait;
use conn::{Conn, SentinelConn};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ErrorKind, RedisConnectionInfo, RedisError, Value};
use sessionkit_core::encryption::{Codec, Encryption};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version, WriteOutcome,
    DEFAULT_TTL,
};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;
use tracing::{debug, warn, Instrument};

/// connect-redis's default key prefix.
pub const DEFAULT_PREFIX: &str = "sess:";

/// How long connecting may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one command may take by default (see
/// [`RedisStoreBuilder::operation_timeout`]).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `SCAN … COUNT` hint by default (connect-redis's `scanCount`).
pub const DEFAULT_SCAN_COUNT: u32 = 100;

/// Where the sessions live: the three deployments.
#[derive(Clone)]
enum Deployment {
    Single(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

/// Configures a [`RedisStore`]. Start with [`RedisStore::builder`] (one
/// node), [`RedisStore::cluster_builder`] or [`RedisStore::sentinel_builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    deployment: Deployment,
    master_db: Option<i64>,
    master_auth: Option<(Option<String>, String)>,
    prefix: String,
    default_ttl: Duration,
    connect_timeout: Duration,
    response_timeout: Duration,
    scan_count: u32,
    codec: Codec,
    principal_index: bool,
    principal_prefix: Option<String>,
    tls: tls::Tls,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may hold a password: never print them.
        let deployment = match &self.deployment {
            Deployment::Single(_) => "single node".to_owned(),
            Deployment::Cluster(nodes) => format!("cluster ({} seed nodes)", nodes.len()),
            Deployment::Sentinel { sentinels, master } => {
                format!(
                    "sentinel ({} sentinels, master {master:?})",
                    sentinels.len()
                )
            }
        };
        f.debug_struct("RedisStoreBuilder")
            .field("deployment", &deployment)
            .field("prefix", &self.prefix)
            .field("default_ttl", &self.default_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("scan_count", &self.scan_count)
            .field("principal_index", &self.principal_index)
            .field("principal_prefix", &self.principal_prefix)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Key prefix (default `"sess:"`, like connect-redis). Keys are
    /// `prefix + id`. Give each application its own prefix when they share a
    /// Redis database; `clear` deletes only keys under this prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// TTL for sessions whose cookie has no expiry (default one day, like
    /// connect-redis's `ttl`).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Upper bound on [`RedisStoreBuilder::connect`] (all attempts together)
    /// and on each later reconnection attempt (default 10 s). A server that is
    /// down yields [`Error::Unavailable`] after at most this long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Upper bound on one command's round trip (default 5 s): a server that
    /// accepts connections but does not answer yields [`Error::Unavailable`].
    /// Every store operation is one command, or a few when the per-user
    /// index is on, and the first that gets no answer ends it.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The same as [`operation_timeout`](Self::operation_timeout) (its
    /// name in the `redis` crate).
    pub fn response_timeout(self, timeout: Duration) -> Self {
        self.operation_timeout(timeout)
    }

    /// Trust the CA certificates in this PEM file (read at `connect`)
    /// instead of the platform's roots, for `rediss://` URLs: a private CA,
    /// or a managed service's own. Single node and Cluster; for Sentinel put
    /// the CA in the platform's trust store (or `SSL_CERT_FILE`).
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca = Some(tls::Ca::File(path.into()));
        self
    }

    /// Like [`tls_ca_file`](Self::tls_ca_file), with the PEM text itself.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca = Some(tls::Ca::Pem(pem.into()));
        self
    }

    /// Connect over TLS without checking the server's certificate or host
    /// name (default `false`). Only for tests against a server with a
    /// self-signed certificate: anyone on the network path can read and
    /// change the sessions. A warning is logged at every `connect`.
    pub fn tls_insecure(mut self, yes: bool) -> Self {
        self.tls.insecure = yes;
        self
    }

    /// The `COUNT` hint of the `SCAN` calls behind `ids`, `count` and
    /// `clear` (default 100). Larger means fewer round trips, each blocking
    /// Redis a little longer.
    pub fn scan_count(mut self, count: u32) -> Self {
        self.scan_count = count.max(1);
        self
    }

    /// Sentinel only: the database number on the master (default 0).
    pub fn master_db(mut self, db: i64) -> Self {
        self.master_db = Some(db);
        self
    }

    /// Sentinel only: credentials for the master (`AUTH [username] password`).
    /// Credentials for the Sentinels themselves go in their URLs.
    pub fn master_auth(mut self, username: Option<String>, password: impl Into<String>) -> Self {
        self.master_auth = Some((username, password.into()));
        self
    }

    /// Whether to keep the per-user index ([`Store::principal_sessions`],
    /// [`Store::destroy_principal`]; default `true`). It costs writes of
    /// sessions that carry a principal one more round trip (the set
    /// update), and `touch` becomes a script (`EXPIRE`, then the value back
    /// when it carries metadata). Turn it off to get
    /// connect-redis's plain commands, or on servers older than Redis 7.0
    /// (`SET … NX GET`, `PEXPIRE … NX|GT`).
    pub fn principal_index(mut self, on: bool) -> Self {
        self.principal_index = on;
        self
    }

    /// Key prefix of the per-user index sets: principal `p`'s set is
    /// `principal_prefix + p`. Default: the session prefix with its final
    /// `:` replaced by `-principal:` (`sess:` → `sess-principal:`,
    /// `myapp:sess:` → `myapp:sess-principal:`), so the sets stay in the
    /// application's key space (ACL patterns like `~myapp:*`) but are never
    /// matched by the sessions' own `SCAN prefix*`. A session prefix that
    /// does not end with `:` (or is empty) gives no default: the index is
    /// then off (with a warning) unless this is set.
    ///
    /// Neither prefix may start with the other ([`Error::Config`]
    /// otherwise): `ids`/`count`/`clear` would see the sets, or a principal's
    /// set could have a session's key.
    pub fn principal_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.principal_prefix = Some(prefix.into());
        self
    }

    fn check(&self) -> Result<()> {
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config(
                "redis timeouts must be greater than zero".into(),
            ));
        }
        if let Some(explicit) = &self.principal_prefix {
            if self.principal_index && !disjoint(&self.prefix, explicit) {
                return Err(Error::Config(
                    "the principal prefix and the session prefix must be non-empty and neither may start with the other".into(),
                ));
            }
        }
        match &self.deployment {
            Deployment::Cluster(nodes) if nodes.is_empty() => Err(Error::Config(
                "a Redis Cluster needs at least one node URL".into(),
            )),
            Deployment::Sentinel { sentinels, .. } if sentinels.is_empty() => Err(Error::Config(
                "Sentinel needs at least one sentinel URL".into(),
            )),
            Deployment::Sentinel { master, .. } if master.is_empty() => {
                Err(Error::Config("Sentinel needs the master's name".into()))
            }
            Deployment::Single(_) | Deployment::Cluster(_)
                if self.master_db.is_some() || self.master_auth.is_some() =>
            {
                Err(Error::Config(
                    "master_db / master_auth apply to Sentinel only (put them in the URL)".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Connects (waiting for the first connection, bounded by the connect
    /// timeout) and returns the store.
    ///
    /// A malformed URL is [`Error::Config`]; a server that cannot be
    /// reached is [`Error::Unavailable`].
    pub async fn connect(self) -> Result<RedisStore> {
        self.check()?;
        let url = match self.deployment.clone() {
            Deployment::Single(url) => url,
            Deployment::Cluster(nodes) => return self.connect_cluster(nodes).await,
            Deployment::Sentinel { sentinels, master } => {
                return self.connect_sentinel(sentinels, master).await
            }
        };
        let tls = self.tls.check([url.as_str()])?;
        let client = self.single_client(&url, tls)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(2)
            .set_max_delay(500);
        // One bound for everything: the attempts, their back-off and a PING
        // proving that the server answers.
        let manager = tokio::time::timeout(self.connect_timeout, async {
            let mut manager = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<()>(&mut manager).await?;
            Ok::<_, RedisError>(manager)
        })
        .await
        .map_err(|elapsed| Error::unavailable("connecting to Redis", elapsed))?
        .map_err(|e| connect_error(tls, "connecting to Redis", e))?;
        debug!(prefix = %self.prefix, "connected to Redis");
        Ok(self.with_connection(manager))
    }

    async fn connect_cluster(self, nodes: Vec<String>) -> Result<RedisStore> {
        let tls = self.tls.check(nodes.iter().map(String::as_str))?;
        #[allow(unused_mut)]
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout);
        #[cfg(feature = "tls-rustls")]
        if tls {
            tls::install_crypto_provider();
            builder = builder.tls(self.tls.mode());
            if let Some(certs) = self.tls.certificates()? {
                builder = builder.certs(certs);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster node URLs: {e}").into()))?;
        let conn = tokio::time::timeout(self.connect_timeout, async {
            let mut conn = client.get_async_connection().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        })
        .await
        .map_err(|elapsed| Error::unavailable("connecting to the Redis Cluster", elapsed))?
        .map_err(|e| connect_error(tls, "connecting to the Redis Cluster", e))?;
        debug!(prefix = %self.prefix, "connected to the Redis Cluster");
        Ok(self.build(Conn::Cluster(conn)))
    }

    async fn connect_sentinel(self, sentinels: Vec<String>, master: String) -> Result<RedisStore> {
        let (username, password) = match self.master_auth.clone() {
            Some((user, pass)) => (user, Some(pass)),
            None => (None, None),
        };
        let db = self.master_db.unwrap_or(0);
        let tls = self.tls.check(sentinels.iter().map(String::as_str))?;
        if tls && self.tls.ca.is_some() {
            return Err(Error::Config(
                "tls_ca is not supported with Sentinel: put the CA in the platform's trust store or SSL_CERT_FILE".into(),
            ));
        }
        #[cfg(feature = "tls-rustls")]
        let tls_mode = tls.then(|| {
            tls::install_crypto_provider();
            self.tls.mode()
        });
        #[cfg(not(feature = "tls-rustls"))]
        let tls_mode = None;
        let node = SentinelNodeConnectionInfo {
            tls_mode,
            redis_connection_info: Some(RedisConnectionInfo {
                db,
                username,
                password,
                ..RedisConnectionInfo::default()
            }),
        };
        let client =
            SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
                .map_err(|e| Error::Config(format!("invalid Sentinel URLs: {e}").into()))?;
        let conn = tokio::time::timeout(self.connect_timeout, async {
            let conn =
                SentinelConn::connect(client, self.connect_timeout, self.response_timeout, db)
                    .await?;
            let mut probe = RedisConnection(Conn::Sentinel(conn.clone()));
            redis::cmd("PING").query_async::<()>(&mut probe).await?;
            Ok::<_, RedisError>(conn)
        })
        .await
        .map_err(|elapsed| Error::unavailable("connecting to Redis through Sentinel", elapsed))?
        .map_err(|e| connect_error(tls, "connecting to Redis through Sentinel", e))?;
        debug!(prefix = %self.prefix, "connected to the master named by Sentinel");
        Ok(self.build(Conn::Sentinel(conn)))
    }

    /// The driver's client for one node, with the TLS options applied.
    fn single_client(&self, url: &str, tls: bool) -> Result<redis::Client> {
        let invalid = |e: RedisError| Error::Config(format!("invalid Redis URL: {e}").into());
        if !tls {
            return redis::Client::open(url).map_err(invalid);
        }
        #[cfg(feature = "tls-rustls")]
        {
            tls::install_crypto_provider();
            let url = if self.tls.insecure && !url.contains('#') {
                format!("{url}#insecure")
            } else {
                url.to_owned()
            };
            match self.tls.certificates()? {
                Some(certs) => redis::Client::build_with_tls(url.as_str(), certs).map_err(|e| {
                    Error::Config(format!("tls_ca: the CA certificates were refused: {e}").into())
                }),
                None => redis::Client::open(url.as_str()).map_err(invalid),
            }
        }
        #[cfg(not(feature = "tls-rustls"))]
        unreachable!("Tls::check refuses TLS URLs without the feature")
    }

    /// Builds the store on a connection you already have (to share one
    /// [`ConnectionManager`] with the rest of the application). The URL and
    /// timeouts given to this builder are not used: the manager's own apply.
    pub fn with_connection(self, manager: ConnectionManager) -> RedisStore {
        self.build(Conn::Single(manager))
    }

    fn build(self, conn: Conn) -> RedisStore {
        let principal_prefix = if self.principal_index {
            let found = index_prefix(&self.prefix, self.principal_prefix.as_deref());
            if found.is_none() {
                warn!(
                    prefix = %self.prefix,
                    "per-user session index off: no principal prefix is derived from a session prefix that does not end with ':' (set principal_prefix)"
                );
            }
            found.map(Into::into)
        } else {
            None
        };
        RedisStore {
            conn: RedisConnection(conn),
            prefix: self.prefix.into(),
            principal_prefix,
            default_ttl: self.default_ttl,
            scan_count: self.scan_count,
            codec: self.codec,
        }
    }

    /// Encrypt session data at rest (see [`sessionkit_core::encryption`]).
    /// connect-redis cannot read encrypted values.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.codec = Codec::encrypted(encryption);
        self
    }
}

/// The Redis store. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    prefix: Box<str>,
    /// Key prefix of the per-user index sets; `None`: the index is off.
    principal_prefix: Option<Box<str>>,
    default_ttl: Duration,
    scan_count: u32,
    codec: Codec,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("principal_prefix", &self.principal_prefix)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

/// Maps an error of `connect`: over TLS, a refused certificate is a
/// configuration error naming the option (retrying will not help); the
/// rest as [`classify`].
fn connect_error(tls: bool, context: &'static str, e: RedisError) -> Error {
    if tls && sessionkit_core::driver::is_certificate_error(&e) {
        Error::Config(
            format!("{context} over TLS (rediss://): the server's certificate was refused: {e}")
                .into(),
        )
    } else {
        classify(context, e)
    }
}

/// Maps a driver error: connection trouble and timeouts are transient.
fn classify(context: &'static str, e: RedisError) -> Error {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::ReadOnly
                | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::NoValidReplicasFoundBySentinel
        );
    if transient {
        Error::unavailable(context, e)
    } else {
        Error::backend(context, e)
    }
}

/// Compare-and-set in one round trip: replaces (or, with a TTL ≤ 0, deletes)
/// the key only if it still holds exactly the expected text.
/// Returns 0 = gone, 1 = conflict, 2 = written.
const SAVE_IF: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur ~= ARGV[1] then return 1 end
local ttl = tonumber(ARGV[3])
if ttl <= 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl) end
return 2
";

/// Per-user index: adds the id ARGV[1] to the set KEYS[1] and makes the set
/// live at least ARGV[2] ms more. `NX` gives a new set (no expiry yet) its
/// expiry, `GT` only ever lengthens an existing one, so the set outlives its
/// longest-lived member. Relative (`PEXPIRE`), so the set's and the
/// session's expiry are both on the server's clock. One key: runs in a
/// cluster too.
const INDEX_ADD: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
return 1
";

/// `touch` with the index on: `EXPIRE`, and the value when the key exists
/// (so the store can read its principal and lengthen the principal's set).
const TOUCH_GET_ALL: &str = r"
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then return redis.call('GET', KEYS[1]) end
return false
";

/// Like `TOUCH_GET_ALL`, but a value without `__meta` (no principal
/// possible) comes back as 1 instead of its bytes: for records in clear.
const TOUCH_GET: &str = r"
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then
  local v = redis.call('GET', KEYS[1])
  if v and string.find(v, '__meta', 1, true) then return v end
  return 1
end
return false
";

/// Deletes the key only if it still holds exactly ARGV[1]; returns 1 if it did.
const DEL_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

static INDEX_ADD_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
static DEL_IF_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
static TOUCH_GET_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
static TOUCH_GET_ALL_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
static SAVE_IF_SCRIPT: OnceLock<redis::Script> = OnceLock::new();

/// A script, its SHA-1 computed once per process rather than per call.
fn script(cell: &'static OnceLock<redis::Script>, code: &str) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(code))
}

/// How much longer than the session an index set is kept: covers the round
/// trip between the session's `SET … EX` and the set's `PEXPIRE`.
const INDEX_SLACK_MS: i64 = 60_000;

/// Keys per `MGET` / `SREM` when the index reads members.
const INDEX_BATCH: usize = 100;

/// How often `destroy_principal` retries a conditional delete of a session
/// that changed (and still has the principal) before deleting it outright.
const DESTROY_ATTEMPTS: usize = 4;

/// Whether two key prefixes can never name the same key nor match each
/// other's `SCAN prefix*`.
fn disjoint(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && !a.starts_with(b) && !b.starts_with(a)
}

/// The index sets' prefix: `explicit`, else derived from the session prefix
/// (`sess:` → `sess-principal:`); `None` when none fits.
fn index_prefix(prefix: &str, explicit: Option<&str>) -> Option<String> {
    let derived = match explicit {
        Some(p) => p.to_owned(),
        None => format!("{}-principal:", prefix.strip_suffix(':')?),
    };
    disjoint(prefix, &derived).then_some(derived)
}

/// Escapes the glob characters of `SCAN MATCH` so a prefix matches literally.
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

impl RedisStore {
    /// Configures a store for the server at `url` (`redis://[user:pass@]host:port[/db]`,
    /// `rediss://` for TLS when the `redis` crate is built with TLS).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Deployment::Single(url.into()))
    }

    /// Configures a store for a Redis Cluster, given one or more of its
    /// nodes (`redis://[user:pass@]host:port`; the rest are discovered).
    /// Every node uses the same credentials.
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Deployment::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// Configures a store for the master that the Sentinels at `sentinels`
    /// (`redis://[:pass@]host:port`) know as `master_name`. The master is
    /// asked for again after a failover. Its database and credentials are
    /// [`RedisStoreBuilder::master_db`] and [`RedisStoreBuilder::master_auth`].
    pub fn sentinel_builder<I, S>(sentinels: I, master_name: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Deployment::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master_name.into(),
        })
    }
}

impl RedisStoreBuilder {
    fn new(deployment: Deployment) -> RedisStoreBuilder {
        RedisStoreBuilder {
            deployment,
            master_db: None,
            master_auth: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            default_ttl: DEFAULT_TTL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            scan_count: DEFAULT_SCAN_COUNT,
            codec: Codec::plain(),
            principal_index: true,
            principal_prefix: None,
            tls: tls::Tls::default(),
        }
    }
}

impl RedisStore {
    /// The same store (same connection and prefix) reading and writing
    /// through `codec`: for example with encryption turned on, or off.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Connects to `url` with the default options.
    pub async fn connect(url: impl Into<String>) -> Result<RedisStore> {
        RedisStore::builder(url).connect().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a session: `prefix + id`.
    pub fn key(&self, id: &SessionId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.as_str().len());
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    /// The key prefix of the per-user index sets; `None` when the index is
    /// off (see [`RedisStoreBuilder::principal_prefix`]).
    pub fn principal_prefix(&self) -> Option<&str> {
        self.principal_prefix.as_deref()
    }

    /// The Redis key of `principal`'s index set (`principal_prefix +
    /// principal`): a SET of the ids of the sessions written with that
    /// principal. `None` when the index is off.
    pub fn principal_key(&self, principal: &str) -> Option<String> {
        self.principal_prefix.as_deref().map(|p| {
            let mut key = String::with_capacity(p.len() + principal.len());
            key.push_str(p);
            key.push_str(principal);
            key
        })
    }

    /// The connection, for commands of your own (and for tests): whatever
    /// the deployment, it implements [`redis::aio::ConnectionLike`].
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Seconds to keep a record expiring at `expires` (the default TTL when
    /// `None`), rounded up like connect-redis; ≤ 0 means already expired.
    fn ttl(&self, expires: Option<Timestamp>) -> i64 {
        let now = time::now();
        let at = time::store_expiry(expires, self.default_ttl, now);
        time::ttl_secs(&at, &now)
    }

    /// Every key under `prefix`, one `SCAN` page at a time; in a cluster,
    /// on every master in turn.
    async fn scan_keys(&self, prefix: &str, context: &'static str) -> Result<Vec<String>> {
        let pattern = escape_glob(prefix);
        let scan = |cursor: u64| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(self.scan_count);
            cmd
        };
        let mut keys = Vec::new();
        match &self.conn.0 {
            Conn::Cluster(cluster) => {
                let mut cluster = cluster.clone();
                let masters = conn::cluster_masters(&mut cluster)
                    .await
                    .map_err(|e| classify(context, e))?;
                debug!(masters = masters.len(), "scanning every cluster master");
                for (host, port) in masters {
                    let mut cursor: u64 = 0;
                    loop {
                        let reply = cluster
                            .route_command(&scan(cursor), conn::to_node(&host, port))
                            .await
                            .map_err(|e| classify(context, e))?;
                        let (next, page): (u64, Vec<String>) = redis::from_owned_redis_value(reply)
                            .map_err(|e| classify(context, e))?;
                        keys.extend(page);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
            Conn::Single(_) | Conn::Sentinel(_) => {
                let mut conn = self.conn.clone();
                let mut cursor: u64 = 0;
                loop {
                    let (next, page): (u64, Vec<String>) = scan(cursor)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| classify(context, e))?;
                    keys.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// `GET` of the session key: what `load` and `load_versioned` decode.
    async fn get(&self, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| classify("loading a session", e))
    }

    async fn del(&self, key: &str, context: &'static str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(context, e))?;
        Ok(n > 0)
    }
}

/// The per-user index: one SET of session ids per principal.
///
/// Writers do the session write first and the set update after it (`SET`,
/// then `SADD`). Taking an id out of a set ([`RedisStore::unindex`]) is
/// `SREM`, then a fresh read of the session that puts the id back if the
/// session has (again) that principal: a writer whose `SET` came before that
/// read is seen by it, one whose `SET` came after it does its `SADD` after
/// the `SREM`. So a live session is never left out of its principal's set,
/// on every deployment, without multi-key scripts (the set and the session
/// key are in different slots of a cluster). Members may be stale (the
/// session died or changed principal): readers check each one and prune it.
impl RedisStore {
    /// Adds `id` to `principal`'s set, kept at least `ttl_ms` more.
    async fn index_add(
        &self,
        principal: &str,
        id: &SessionId,
        ttl_ms: i64,
        context: &'static str,
    ) -> Result<()> {
        let Some(set) = self.principal_key(principal) else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        let _: i64 = script(&INDEX_ADD_SCRIPT, INDEX_ADD)
            .key(set)
            .arg(id.as_str())
            .arg(ttl_ms.saturating_add(INDEX_SLACK_MS))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(context, e))?;
        Ok(())
    }

    /// The principal of a stored value, `None` when it has none or cannot
    /// be decoded (logged: the id may then stay in a set it left, until a
    /// reader prunes it).
    fn stored_principal(&self, id: &SessionId, stored: &[u8]) -> Option<String> {
        // Fast path: a record in clear without metadata has no principal,
        // and most sessions are such (no need to parse them on every save).
        if !self.codec.is_encrypted() && !contains(stored, b"\"__meta\"") {
            return None;
        }
        match self.codec.decode_slice(id.clone(), stored) {
            Ok(record) => record.principal().map(str::to_owned),
            Err(e) => {
                warn!(error = %e, "previous session value does not decode; its principal is unknown");
                None
            }
        }
    }

    /// After `record` was written (`ttl` seconds) over `old` (the value it
    /// replaced, if known): its id joins its principal's set, and leaves
    /// the set of the principal `old` had, when that differs.
    async fn reindex(
        &self,
        record: &Record,
        old: Option<&[u8]>,
        ttl: i64,
        context: &'static str,
    ) -> Result<()> {
        if self.principal_prefix.is_none() {
            return Ok(());
        }
        let new = record.principal();
        if let Some(p) = new {
            self.index_add(p, &record.id, ttl.saturating_mul(1000), context)
                .await?;
        }
        let old = old.and_then(|o| self.stored_principal(&record.id, o));
        if let Some(old) = old.filter(|o| Some(o.as_str()) != new) {
            debug!("principal changed");
            self.unindex(&old, std::slice::from_ref(&record.id), context)
                .await?;
        }
        Ok(())
    }

    /// The stored values of `ids`, in order (`MGET` in batches; in a
    /// cluster the driver splits each by slot).
    async fn get_many(
        &self,
        ids: &[SessionId],
        context: &'static str,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(ids.len());
        let mut conn = self.conn.clone();
        for batch in ids.chunks(INDEX_BATCH) {
            let keys: Vec<String> = batch.iter().map(|id| self.key(id)).collect();
            let page: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(context, e))?;
            values.extend(page);
        }
        Ok(values)
    }

    /// Takes `ids` out of `principal`'s set, then puts back those whose
    /// session has that principal after all (see the `impl` doc: a write
    /// racing with the removal is never lost).
    async fn unindex(
        &self,
        principal: &str,
        ids: &[SessionId],
        context: &'static str,
    ) -> Result<()> {
        let Some(set) = self.principal_key(principal) else {
            return Ok(());
        };
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        for batch in ids.chunks(INDEX_BATCH) {
            let members: Vec<&str> = batch.iter().map(SessionId::as_str).collect();
            let _: i64 = redis::cmd("SREM")
                .arg(&set)
                .arg(&members)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(context, e))?;
        }
        let values = self.get_many(ids, context).await?;
        for (id, value) in ids.iter().zip(values) {
            let Some(value) = value else { continue };
            let owner = self.codec.decode_slice(id.clone(), &value);
            // Undecodable: its principal is unknown; keep it indexed.
            let back = owner.map_or(true, |r| r.principal() == Some(principal));
            if !back {
                continue;
            }
            let pttl: i64 = redis::cmd("PTTL")
                .arg(self.key(id))
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(context, e))?;
            if pttl > 0 {
                debug!("session written meanwhile; put back in its principal's set");
                self.index_add(principal, id, pttl, context).await?;
            }
        }
        Ok(())
    }

    /// The members of `principal`'s set whose session is live and has that
    /// principal, with their stored bytes; the other members are taken out
    /// of the set. Members that do not decode are skipped (logged) and kept.
    async fn indexed(
        &self,
        principal: &str,
        context: &'static str,
    ) -> Result<Vec<(Record, Vec<u8>)>> {
        let set = self
            .principal_key(principal)
            .ok_or(Error::Unsupported("principal_index"))?;
        let mut conn = self.conn.clone();
        let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(context, e))?;
        let mut ids = Vec::with_capacity(members.len());
        let mut junk = Vec::new();
        for member in members {
            match std::str::from_utf8(&member).map(SessionId::parse) {
                Ok(Ok(id)) => ids.push(id),
                _ => junk.push(member),
            }
        }
        if !junk.is_empty() {
            warn!(
                count = junk.len(),
                "members of a principal's set that are not session ids were removed"
            );
            let _: i64 = redis::cmd("SREM")
                .arg(&set)
                .arg(&junk)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(context, e))?;
        }
        let values = self.get_many(&ids, context).await?;
        let mut live = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        let mut undecodable = 0usize;
        for (id, value) in ids.into_iter().zip(values) {
            let Some(bytes) = value else {
                stale.push(id);
                continue;
            };
            match self.codec.decode_slice(id.clone(), &bytes) {
                Ok(record) if record.principal() == Some(principal) => live.push((record, bytes)),
                Ok(_) => stale.push(id),
                Err(_) => undecodable += 1,
            }
        }
        if undecodable > 0 {
            warn!(
                undecodable,
                "sessions in a principal's set that do not decode were skipped"
            );
        }
        debug!(live = live.len(), stale = stale.len());
        self.unindex(principal, &stale, context).await?;
        Ok(live)
    }

    /// Deletes the session of `id` if it still has `principal`: a delete
    /// conditional on the value read (`stored`); when the session changed
    /// meanwhile, it is read again and, still the principal's, deleted
    /// again, outright after a few changes. Whether it was deleted.
    async fn delete_principal_session(
        &self,
        principal: &str,
        id: &SessionId,
        mut stored: Vec<u8>,
        context: &'static str,
    ) -> Result<bool> {
        let key = self.key(id);
        let mut conn = self.conn.clone();
        for _ in 0..DESTROY_ATTEMPTS {
            let deleted: i64 = script(&DEL_IF_SCRIPT, DEL_IF)
                .key(&key)
                .arg(&stored)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| classify(context, e))?;
            if deleted > 0 {
                return Ok(true);
            }
            let Some(now) = self.get(id).await? else {
                return Ok(false);
            };
            match self.codec.decode_slice(id.clone(), &now) {
                Ok(record) if record.principal() == Some(principal) => stored = now,
                _ => return Ok(false),
            }
        }
        debug!("session kept changing; deleted outright");
        self.del(&key, context).await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let span = tracing::debug_span!("redis.load", id = ?id);
        async {
            let raw = self.get(id).await?;
            debug!(found = raw.is_some());
            match raw {
                None => Ok(None),
                Some(bytes) => self.codec.decode_slice(id.clone(), &bytes).map(Some),
            }
        }
        .instrument(span)
        .await
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let span = tracing::debug_span!("redis.create", id = ?record.id);
        async {
            let json = self.codec.encode_vec(record)?;
            let key = self.key(&record.id);
            let mut conn = self.conn.clone();
            let ttl = self.ttl(record.cookie.expires);
            if ttl <= 0 {
                // Nothing to store, but a live record with this id is still a collision.
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| classify("creating a session", e))?;
                debug!(ttl, exists, "create with past expiry stores nothing");
                return if exists > 0 {
                    Err(Error::Collision)
                } else {
                    Ok(())
                };
            }
            let reply: Value = redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify("creating a session", e))?;
            let created = reply != Value::Nil;
            debug!(ttl, created);
            if !created {
                return Err(Error::Collision);
            }
            // A new key: no earlier principal to leave.
            self.reindex(record, None, ttl, "creating a session").await
        }
        .instrument(span)
        .await
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("redis.save", id = ?record.id);
        async {
            let json = self.codec.encode_vec(record)?;
            let key = self.key(&record.id);
            let ttl = self.ttl(record.cookie.expires);
            if ttl <= 0 {
                let deleted = self.del(&key, "saving a session").await?;
                debug!(ttl, deleted, "save with past expiry deletes");
                return Ok(if deleted {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                });
            }
            let mut conn = self.conn.clone();
            let reply: Value = redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("XX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify("saving a session", e))?;
            if reply == Value::Nil {
                debug!(ttl, "gone");
                return Ok(WriteOutcome::Gone);
            }
            debug!(ttl, "written");
            // With the index: join the principal's set. The set of a
            // principal the session had before (a change of user on one
            // session, rare) is not read here: listing that principal
            // drops the member, since the session no longer matches, and
            // destroy_principal checks each session's own principal.
            self.reindex(record, None, ttl, "saving a session").await?;
            Ok(WriteOutcome::Written)
        }
        .instrument(span)
        .await
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("redis.touch", id = ?id);
        async {
            let key = self.key(id);
            let ttl = self.ttl(expires);
            if ttl <= 0 {
                let deleted = self.del(&key, "touching a session").await?;
                debug!(ttl, deleted, "touch with past expiry deletes");
                return Ok(if deleted {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                });
            }
            let mut conn = self.conn.clone();
            if self.principal_prefix.is_some() {
                // With the index: the principal's set must outlive the session.
                // The value comes back only when it carries metadata (it may
                // have a principal); otherwise 1, and nothing is parsed.
                let touch = if self.codec.is_encrypted() {
                    // Sealed values cannot be searched for metadata.
                    script(&TOUCH_GET_ALL_SCRIPT, TOUCH_GET_ALL)
                } else {
                    script(&TOUCH_GET_SCRIPT, TOUCH_GET)
                };
                let reply: Value = touch
                    .key(&key)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| classify("touching a session", e))?;
                let written = reply != Value::Nil;
                debug!(ttl, written);
                let value = match reply {
                    Value::Nil => return Ok(WriteOutcome::Gone),
                    Value::BulkString(bytes) => bytes,
                    _ => return Ok(WriteOutcome::Written),
                };
                if let Some(p) = self.stored_principal(id, &value) {
                    self.index_add(&p, id, ttl.saturating_mul(1000), "touching a session")
                        .await?;
                }
                return Ok(WriteOutcome::Written);
            }
            let set: i64 = redis::cmd("EXPIRE")
                .arg(&key)
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify("touching a session", e))?;
            let outcome = if set == 1 {
                WriteOutcome::Written
            } else {
                WriteOutcome::Gone
            };
            debug!(ttl, ?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        let span = tracing::debug_span!("redis.destroy", id = ?id);
        async {
            let deleted = self.del(&self.key(id), "destroying a session").await?;
            debug!(deleted);
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
            .without_delete_expired()
            .with_principal_index(self.principal_prefix.is_some())
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let span = tracing::debug_span!("redis.load_versioned", id = ?id);
        async {
            let raw = self.get(id).await?;
            let Some(bytes) = raw else { return Ok(None) };
            let text = String::from_utf8(bytes).map_err(Error::decode)?;
            let record = self.codec.decode(id.clone(), &text)?;
            Ok(Some((record, Version::new(text))))
        }
        .instrument(span)
        .await
    }

    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let span = tracing::debug_span!("redis.save_if", id = ?record.id);
        async {
            let json = self.codec.encode(record)?;
            let ttl = self.ttl(record.cookie.expires);
            let mut conn = self.conn.clone();
            let code: i64 = script(&SAVE_IF_SCRIPT, SAVE_IF)
                .key(self.key(&record.id))
                .arg(expected.as_str())
                .arg(&json)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| classify("saving a session", e))?;
            let outcome = match code {
                2 => CasOutcome::Written(Version::new(json)),
                1 => CasOutcome::Conflict,
                _ => CasOutcome::Gone,
            };
            debug!(?outcome, ttl);
            if matches!(outcome, CasOutcome::Written(_)) && ttl > 0 {
                // The value replaced is `expected` itself.
                self.reindex(
                    record,
                    Some(expected.as_str().as_bytes()),
                    ttl,
                    "saving a session",
                )
                .await?;
            }
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let span = tracing::debug_span!("redis.ids");
        async {
            let keys = self.scan_keys(&self.prefix, "listing sessions").await?;
            let mut ids = Vec::with_capacity(keys.len());
            let mut skipped = 0usize;
            for key in &keys {
                match key.strip_prefix(&*self.prefix).map(SessionId::parse) {
                    Some(Ok(id)) => ids.push(id),
                    _ => skipped += 1,
                }
            }
            if skipped > 0 {
                warn!(
                    skipped,
                    "keys under the session prefix that are not session ids were skipped"
                );
            }
            debug!(count = ids.len());
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    async fn count(&self) -> Result<u64> {
        let span = tracing::debug_span!("redis.count");
        async {
            let n = self
                .scan_keys(&self.prefix, "counting sessions")
                .await?
                .len() as u64;
            debug!(count = n);
            Ok(n)
        }
        .instrument(span)
        .await
    }

    async fn clear(&self) -> Result<()> {
        let span = tracing::debug_span!("redis.clear");
        async {
            let mut keys = self.scan_keys(&self.prefix, "clearing sessions").await?;
            if let Some(index) = &self.principal_prefix {
                keys.extend(self.scan_keys(index, "clearing sessions").await?);
            }
            let mut conn = self.conn.clone();
            for batch in keys.chunks(500) {
                let _: i64 = redis::cmd("DEL")
                    .arg(batch)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| classify("clearing sessions", e))?;
            }
            debug!(deleted = keys.len());
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        let span = tracing::debug_span!("redis.principal_sessions");
        async {
            let live = self
                .indexed(principal, "listing a principal's sessions")
                .await?;
            Ok(live.into_iter().map(|(record, _)| record).collect())
        }
        .instrument(span)
        .await
    }

    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        let span = tracing::debug_span!("redis.destroy_principal", keep = ?keep);
        async {
            const CONTEXT: &str = "destroying a principal's sessions";
            let live = self.indexed(principal, CONTEXT).await?;
            let mut destroyed = Vec::with_capacity(live.len());
            for (record, stored) in live {
                if Some(&record.id) == keep {
                    continue;
                }
                if self
                    .delete_principal_session(principal, &record.id, stored, CONTEXT)
                    .await?
                {
                    destroyed.push(record.id);
                }
            }
            self.unindex(principal, &destroyed, CONTEXT).await?;
            debug!(destroyed = destroyed.len());
            Ok(destroyed.len() as u64)
        }
        .instrument(span)
        .await
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_the_metadata_key() {
        assert!(contains(
            br#"{"cookie":{},"__meta":{"principal":"a"}}"#,
            b"\"__meta\""
        ));
        assert!(!contains(br#"{"cookie":{},"n":1}"#, b"\"__meta\""));
        assert!(!contains(b"", b"\"__meta\""));
    }

    #[test]
    fn glob_characters_in_prefix_are_escaped() {
        assert_eq!(escape_glob("sess:"), "sess:*");
        assert_eq!(escape_glob("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d*");
    }

    #[test]
    fn debug_never_prints_the_url() {
        let b = RedisStore::builder("redis://:hunter2@127.0.0.1:6379");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn zero_timeout_is_a_config_error() {
        let err = RedisStore::builder("redis://127.0.0.1:1")
            .connect_timeout(Duration::ZERO)
            .connect()
            .await;
        assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_url_is_a_config_error() {
        let err = RedisStore::builder("not a url").connect().await;
        assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
    }
}

//! A MySQL / MariaDB session store with [express-mysql-session]'s table, so a
//! Node service using `express-session` + `express-mysql-session` and a Rust
//! service using this crate read and write the same sessions.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `sessions` (
//!   `session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL,
//!   `expires` int(11) unsigned NOT NULL,
//!   `data` mediumtext COLLATE utf8mb4_bin,
//!   PRIMARY KEY (`session_id`),
//!   KEY `expires` (`expires`)
//! ) ENGINE=InnoDB
//! ```
//!
//! That is express-mysql-session's `schema.sql` plus an index on `expires`
//! (Node never reads it; it keeps [`Store::delete_expired`] from scanning
//! and locking the whole table). `expires` is in UNIX seconds, `data` the
//! express-session JSON text exactly as written. The table name and the
//! three column names are options, like express-mysql-session's
//! `schema.tableName` / `schema.columnNames`, always quoted as identifiers.
//! The table is created by [`MySqlStore::create_schema`] (or on connect with
//! [`MySqlStoreBuilder::create_schema`]): `CREATE TABLE IF NOT EXISTS`,
//! idempotent and safe when several processes run it at once. A table that
//! already exists, for example one made by express-mysql-session, is left
//! exactly as it is (add the index with
//! ``ALTER TABLE `sessions` ADD INDEX `expires` (`expires`)`` if you prune a
//! large table made by Node).
//!
//! | operation | SQL |
//! |---|---|
//! | `load` | `SELECT data … WHERE session_id = ? AND expires >= now` |
//! | `create` | `INSERT`; on a duplicate key, an expired row with that id is deleted and the `INSERT` retried once, a live one is [`Error::Collision`] |
//! | `save` | `UPDATE … WHERE session_id = ? AND expires >= now`: no row is [`WriteOutcome::Gone`], never an insert |
//! | `touch` | `UPDATE … SET expires = … WHERE session_id = ? AND expires >= now` (data untouched) |
//! | `destroy` | `DELETE … WHERE session_id = ?` |
//! | `save_if` | `UPDATE … WHERE session_id = ? AND expires >= now AND data = <loaded text>` (byte comparison) |
//! | `delete_expired` | `DELETE … WHERE expires < now LIMIT 5000`, repeated (the prune task calls it every 15 minutes by default) |
//!
//! # Expiry, in whole seconds like Node
//!
//! Expiry is the cookie's `expires`, or now + the default TTL (one day) for
//! a cookie without one, like express-mysql-session's `expiration`. It is
//! stored as express-mysql-session stores it: `Math.round(ms / 1000)`. "Now"
//! is this process's clock rounded the same way, and a row is live while
//! `expires >= now` — express-mysql-session's rule in `get`, `length` and
//! `all` (its `clearExpiredSessions` deletes `expires < now`). Both sides
//! therefore agree on every row, and a session can outlive its cookie's
//! expiry by up to about a second. `expires` is an unsigned 32-bit column:
//! a cookie expiring after 2106 is stored as 2106-02-07.
//!
//! # Per-user session index (opt-in)
//!
//! With [`MySqlStoreBuilder::principal_index`] on, the table gets one more
//! column, `` `principal` varchar(255) COLLATE utf8mb4_bin `` (nullable),
//! with an index `` `principal` ``, holding each record's
//! [`Record::principal`]. [`MySqlStore::create_schema`] adds both to an
//! existing table as well: it looks them up in `information_schema` and
//! runs `ALTER TABLE … ADD COLUMN` / `ADD INDEX` only when missing (MySQL,
//! unlike MariaDB, has no `ADD COLUMN IF NOT EXISTS`; a concurrent process
//! adding them first is fine). `create`, `save` and `save_if` set it (NULL
//! for a record without a principal), `touch` leaves it, and
//! [`Store::principal_sessions`] / [`Store::destroy_principal`] use it,
//! comparing bytes (`utf8mb4_bin` pads spaces). A principal longer than
//! 255 characters is an [`Error::Encode`] on write. Off by default, so the
//! table stays exactly express-mysql-session's. The column is plain text
//! even when `data` is encrypted.
//!
//! express-mysql-session's upsert leaves the column alone (and its
//! `REPLACE`-style writes of a new row leave it NULL): rows it inserts are
//! not listed, and a row whose data a Node service rewrote keeps the column
//! Rust last wrote. `principal_sessions` decodes each row and drops those
//! whose record names another principal; `destroy_principal` goes by the
//! column alone.
//!
//! What differs from the Node store, deliberately: its `set` is an upsert
//! and its `touch` updates unconditionally, so a slow Node request can bring
//! back a session that was destroyed or expired; this crate's `save` and
//! `touch` only ever update a live row (see [`Store::save`]).
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_mysql::MySqlStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! # let url = std::env::var("MYSQL_URL")
//! #     .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
//! let store = MySqlStore::builder(url) // e.g. "mysql://app:secret@127.0.0.1/app"
//!     .table("doctest_sessions")
//!     .create_schema(true)
//!     .prune_interval(Some(Duration::from_secs(15 * 60)))
//!     .connect()
//!     .await?;
//! let record = Record::new(SessionId::generate());
//! store.create(&record).await?;
//! assert!(store.load(&record.id).await?.is_some());
//! store.destroy(&record.id).await?;
//! store.stop_pruning().await;
//! # Ok(())
//! # }
//! ```
//!
//! [express-mysql-session]: https://github.com/chill117/express-mysql-session
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use sessionkit_core::bounded::Bounded;
use sessionkit_core::encryption::{Codec, Encryption};
use sessionkit_core::meta;
use sessionkit_core::pruner::SharedPruner;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::url_query;
use sessionkit_core::{
    Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version, WriteOutcome,
    DEFAULT_TTL,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn, Instrument};

/// express-mysql-session's default table name.
pub const DEFAULT_TABLE: &str = "sessions";

/// express-mysql-session's default column names: session id, expiry, data.
pub const DEFAULT_COLUMNS: [&str; 3] = ["session_id", "expires", "data"];

/// How often expired rows are deleted by default (express-mysql-session's
/// `checkExpirationInterval`).
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How long connecting (and waiting for a pooled connection) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a `mediumtext` column holds, in bytes. Longer session JSON is
/// refused with [`Error::Encode`] before it is sent (a server without strict
/// mode would otherwise truncate it silently into broken JSON).
pub const MAX_DATA_BYTES: usize = 16_777_215;

/// How long one store operation may take by default (see
/// [`MySqlStoreBuilder::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows deleted per statement by [`Store::delete_expired`].
pub const PRUNE_BATCH: u64 = 5000;

/// The longest principal (in characters) the per-user index column holds;
/// see [`MySqlStoreBuilder::principal_index`].
pub const MAX_PRINCIPAL_CHARS: usize = 255;

/// MySQL and MariaDB refuse identifiers longer than this many characters.
const MAX_IDENTIFIER: usize = 64;

/// An instant as express-mysql-session stores it: `Math.round(ms / 1000)`,
/// clamped to the range of the `int(11) unsigned` column.
pub fn to_expires(t: &Timestamp) -> u32 {
    let secs = t.timestamp_millis().saturating_add(500).div_euclid(1000);
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

/// The instant an `expires` value stands for.
pub fn from_expires(secs: u32) -> Timestamp {
    time::from_millis(i64::from(secs) * 1000)
}

/// Configures a [`MySqlStore`]. Start with [`MySqlStore::builder`].
#[derive(Clone)]
pub struct MySqlStoreBuilder {
    url: String,
    table: String,
    columns: [String; 3],
    default_ttl: Duration,
    connect_timeout: Duration,
    operation_timeout: Duration,
    max_connections: u32,
    create_schema: bool,
    prune_interval: Option<Duration>,
    codec: Codec,
    principal_index: bool,
}

impl fmt::Debug for MySqlStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("MySqlStoreBuilder")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("default_ttl", &self.default_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_connections", &self.max_connections)
            .field("create_schema", &self.create_schema)
            .field("prune_interval", &self.prune_interval)
            .field("principal_index", &self.principal_index)
            .finish_non_exhaustive()
    }
}

impl MySqlStoreBuilder {
    /// The table name (express-mysql-session's `schema.tableName`, default
    /// `"sessions"`). Any name MySQL accepts: it is always quoted, so
    /// `"my.sessions"` is one name, not a database and a table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The column names (express-mysql-session's `schema.columnNames`:
    /// `session_id`, `expires`, `data`; these are the defaults).
    pub fn columns(
        mut self,
        session_id: impl Into<String>,
        expires: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        self.columns = [session_id.into(), expires.into(), data.into()];
        self
    }

    /// TTL for sessions whose cookie has no expiry (default one day, like
    /// express-mysql-session's `expiration`).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Upper bound on establishing a connection and on waiting for a pooled
    /// one (default 10 s). A server that is down gives [`Error::Unavailable`]
    /// after at most about this long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Upper bound on every store operation once connected (default 5 s):
    /// `load`, `create`, `save`, `touch`, `destroy`, the listings and
    /// compare-and-set. Past it the operation is abandoned with
    /// [`Error::Unavailable`] (the middleware answers 503). Connections made
    /// by [`connect`](Self::connect) also set the server's
    /// `lock_wait_timeout` (table locks) and `innodb_lock_wait_timeout` (row
    /// locks) to it, rounded up to whole seconds, so a statement waiting on
    /// a lock held by another client is given up by the server too.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Size of the connection pool (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Whether [`connect`](Self::connect) runs [`MySqlStore::create_schema`]
    /// (default `false`: creating tables needs privileges an application
    /// account often lacks. express-mysql-session's `createDatabaseTable`
    /// defaults to `true`; `session-stores` URLs do too).
    pub fn create_schema(mut self, yes: bool) -> Self {
        self.create_schema = yes;
        self
    }

    /// How often a background task deletes expired rows (default every 15
    /// minutes, like express-mysql-session's `checkExpirationInterval`);
    /// `None` disables it (its `clearExpired: false`), e.g. when the Node
    /// app or a cron job prunes. The task logs failures with `tracing` and
    /// keeps going; it stops when the last clone of the store is dropped or
    /// on [`MySqlStore::stop_pruning`].
    pub fn prune_interval(mut self, interval: Option<Duration>) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Keep the per-user session index (default `false`; see the crate
    /// docs): a `principal` column, filled on every write, that
    /// [`Store::principal_sessions`] and [`Store::destroy_principal`] query.
    /// Off, both are [`Error::Unsupported`] and the table is
    /// express-mysql-session's unchanged. On, [`MySqlStore::create_schema`]
    /// (or [`create_schema(true)`](Self::create_schema)) must have run once
    /// against the table, since every write names the column; a record
    /// whose principal is longer than [`MAX_PRINCIPAL_CHARS`] is then
    /// refused with [`Error::Encode`].
    pub fn principal_index(mut self, on: bool) -> Self {
        self.principal_index = on;
        self
    }

    /// The quoted table and column names.
    fn names(&self) -> Result<Names> {
        let [sid, expires, data] = &self.columns;
        Ok(Names {
            table: quote_ident(&self.table, "table")?,
            sid: quote_ident(sid, "session id column")?,
            expires: quote_ident(expires, "expires column")?,
            data: quote_ident(data, "data column")?,
        })
    }

    /// Connects and returns the store: checks the server answers (bounded by
    /// the connect timeout), creates the table if asked to and starts the
    /// prune task if configured.
    ///
    /// A malformed URL or an invalid name is [`Error::Config`]; a server
    /// that cannot be reached is [`Error::Unavailable`].
    pub async fn connect(self) -> Result<MySqlStore> {
        if self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "connect timeout must be greater than zero".into(),
            ));
        }
        self.names()?;
        let tls = tls_request(&self.url)?;
        if !(self.url.starts_with("mysql://") || self.url.starts_with("mariadb://")) {
            return Err(Error::Config(
                "MySQL URL must start with mysql:// or mariadb://".into(),
            ));
        }
        let options: MySqlConnectOptions = self
            .url
            .parse()
            .map_err(|e| Error::Config(format!("invalid MySQL URL: {e}").into()))?;
        // One direct connection first: its error says what is wrong
        // ("connection refused", "access denied"), where the pool would only
        // say it timed out.
        let conn = tokio::time::timeout(self.connect_timeout, options.connect())
            .await
            .map_err(|elapsed| Error::unavailable("connecting to MySQL", elapsed))?
            .map_err(|e| match (&tls, e) {
                (Some(option), e)
                    if matches!(e, sqlx::Error::Tls(_) | sqlx::Error::Configuration(_))
                        || sessionkit_core::driver::is_certificate_error(&e) =>
                {
                    Error::Config(format!("connecting to MySQL over TLS ({option}): {e}").into())
                }
                (_, e) => classify("connecting to MySQL", e),
            })?;
        let _ = conn.close().await;
        let lock_secs = self.operation_timeout.as_secs_f64().ceil().max(1.0) as u64;
        let set_lock_waits = format!(
            "SET SESSION lock_wait_timeout = {lock_secs}, innodb_lock_wait_timeout = {lock_secs}"
        );
        let pool = MySqlPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .after_connect(move |conn, _| {
                let sql = set_lock_waits.clone();
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        self.with_pool(pool).await
    }

    /// Encrypt session data at rest (see [`sessionkit_core::encryption`]).
    /// express-mysql-session cannot read encrypted rows.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.codec = Codec::encrypted(encryption);
        self
    }

    /// Builds the store on a pool you already have (to share it with the
    /// rest of the application). The URL, connect timeout and pool size
    /// given to this builder are not used.
    pub async fn with_pool(self, pool: MySqlPool) -> Result<MySqlStore> {
        let names = self.names()?;
        if self.operation_timeout.is_zero() {
            return Err(Error::Config(
                "operation timeout must be greater than zero".into(),
            ));
        }
        let shared = Arc::new(Shared {
            sql: Sql::new(&names, self.principal_index),
            pool,
            table: names.table,
            table_name: self.table.clone(),
            default_ttl: self.default_ttl,
            codec: self.codec.clone(),
            principal_index: self.principal_index,
        });
        let mut store = MySqlStore {
            ops: Bounded::new(shared.clone(), self.operation_timeout)?,
            shared,
            pruner: SharedPruner::default(),
        };
        if self.create_schema {
            store.create_schema().await?;
        }
        store.pruner = SharedPruner::start(store.shared.clone(), self.prune_interval);
        debug!(table = %store.shared.table, "MySQL session store ready");
        Ok(store)
    }
}

/// Quotes an identifier: backticks around it, inner backticks doubled.
/// Refuses what MySQL would reject: empty, too long, NUL, a trailing space,
/// characters outside the Basic Multilingual Plane.
fn quote_ident(name: &str, what: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_IDENTIFIER
        && !name.ends_with(' ')
        && name.chars().all(|c| c != '\0' && u32::from(c) <= 0xFFFF);
    if !ok {
        return Err(Error::Config(
            format!(
                "{what} name must be 1 to {MAX_IDENTIFIER} characters, without NUL, \
                 a trailing space or characters beyond U+FFFF"
            )
            .into(),
        ));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// Maps a driver error: connection trouble, pool timeouts and the server
/// errors that mean "try again" are transient; the rest are backend errors.
fn classify(context: &'static str, e: sqlx::Error) -> Error {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            let state = db.code();
            // 1040 too many connections; 1053 server shutdown; 1158-1161
            // network read/write errors; 1205 lock wait timeout; 1213
            // deadlock; 1927 connection killed (MariaDB); 4031 idle
            // disconnect (MySQL). SQLSTATE 08: connection exception.
            matches!(
                number,
                Some(1040 | 1053 | 1158..=1161 | 1205 | 1213 | 1927 | 4031)
            ) || state
                .as_deref()
                .is_some_and(|s| s.starts_with("08") || s == "40001")
        }
        _ => false,
    };
    if transient {
        Error::unavailable(context, e)
    } else {
        Error::backend(context, e)
    }
}

/// Whether the error is a duplicate primary key.
fn is_duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn check_size(json: &str) -> Result<()> {
    if json.len() > MAX_DATA_BYTES {
        return Err(Error::Encode(
            format!(
                "session JSON is {} bytes; a mediumtext column holds at most {MAX_DATA_BYTES}",
                json.len()
            )
            .into(),
        ));
    }
    Ok(())
}

/// Whether the error is a duplicate column (1060) or index name (1061):
/// another process added the principal column or index first.
fn is_duplicate_name(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1060 | 1061)))
}

/// A conditional write that matched no live row found the session gone.
/// (sqlx connects with `CLIENT_FOUND_ROWS`: an `UPDATE` reports the rows it
/// matched, also when the new values equal the old ones.)
fn outcome(rows_affected: u64) -> WriteOutcome {
    if rows_affected == 0 {
        WriteOutcome::Gone
    } else {
        WriteOutcome::Written
    }
}

/// The quoted identifiers.
struct Names {
    table: String,
    sid: String,
    expires: String,
    data: String,
}

/// Every statement, built once from the quoted names.
#[derive(Clone)]
struct Sql {
    create_table: String,
    load: String,
    insert: String,
    delete_expired_id: String,
    exists_live: String,
    save: String,
    delete_live: String,
    save_if: String,
    delete_if: String,
    touch: String,
    destroy: String,
    ids: String,
    count: String,
    clear: String,
    delete_expired: String,
    principal_sessions: String,
    destroy_principal: String,
    has_principal_column: String,
    add_principal_column: String,
    has_principal_index: String,
    add_principal_index: String,
}

/// The per-user index column, as `CREATE TABLE` and `ALTER TABLE` add it.
const PRINCIPAL_COLUMN: &str = "`principal` varchar(255) COLLATE utf8mb4_bin NULL";

impl Sql {
    /// With `principal`, the table and the writes have the `principal`
    /// column (each write binds it right after the data).
    fn new(n: &Names, principal: bool) -> Self {
        let Names {
            table: t,
            sid,
            expires: exp,
            data,
        } = n;
        // `data` is compared as bytes: utf8mb4_bin is a PAD SPACE collation,
        // which would ignore trailing spaces.
        let same = format!("CAST({data} AS BINARY) = CAST(? AS BINARY)");
        // The index finds the rows, the byte comparison drops `'alice '`'s
        // padded matches for `'alice'`.
        let of_principal = "`principal` = ? AND CAST(`principal` AS BINARY) = CAST(? AS BINARY)";
        let (p_def, p_col, p_val, p_set) = if principal {
            (
                format!("{PRINCIPAL_COLUMN}, KEY `principal` (`principal`), "),
                ", `principal`",
                ", ?",
                ", `principal` = ?",
            )
        } else {
            (String::new(), "", "", "")
        };
        Sql {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 {sid} varchar(128) COLLATE utf8mb4_bin NOT NULL, \
                 {exp} int(11) unsigned NOT NULL, \
                 {data} mediumtext COLLATE utf8mb4_bin, {p_def}\
                 PRIMARY KEY ({sid}), \
                 KEY `expires` ({exp})\
                 ) ENGINE=InnoDB"
            ),
            load: format!("SELECT {data} FROM {t} WHERE {sid} = ? AND {exp} >= ?"),
            insert: format!(
                "INSERT INTO {t} ({sid}, {exp}, {data}{p_col}) VALUES (?, ?, ?{p_val})"
            ),
            delete_expired_id: format!("DELETE FROM {t} WHERE {sid} = ? AND {exp} < ?"),
            exists_live: format!(
                "SELECT EXISTS (SELECT 1 FROM {t} WHERE {sid} = ? AND {exp} >= ?)"
            ),
            save: format!(
                "UPDATE {t} SET {data} = ?{p_set}, {exp} = ? WHERE {sid} = ? AND {exp} >= ?"
            ),
            delete_live: format!("DELETE FROM {t} WHERE {sid} = ? AND {exp} >= ?"),
            save_if: format!(
                "UPDATE {t} SET {data} = ?{p_set}, {exp} = ? \
                 WHERE {sid} = ? AND {exp} >= ? AND {same}"
            ),
            delete_if: format!("DELETE FROM {t} WHERE {sid} = ? AND {exp} >= ? AND {same}"),
            touch: format!("UPDATE {t} SET {exp} = ? WHERE {sid} = ? AND {exp} >= ?"),
            destroy: format!("DELETE FROM {t} WHERE {sid} = ?"),
            ids: format!("SELECT {sid} FROM {t} WHERE {exp} >= ?"),
            count: format!("SELECT COUNT(*) FROM {t} WHERE {exp} >= ?"),
            clear: format!("DELETE FROM {t}"),
            delete_expired: format!("DELETE FROM {t} WHERE {exp} < ? LIMIT {PRUNE_BATCH}"),
            principal_sessions: format!(
                "SELECT {sid}, {data} FROM {t} WHERE {of_principal} AND {exp} >= ?"
            ),
            destroy_principal: format!(
                "DELETE FROM {t} WHERE {of_principal} AND NOT ({sid} <=> ?) AND {exp} >= ?"
            ),
            has_principal_column: "SELECT EXISTS (SELECT 1 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'principal')"
                .to_owned(),
            add_principal_column: format!("ALTER TABLE {t} ADD COLUMN {PRINCIPAL_COLUMN}"),
            has_principal_index: "SELECT EXISTS (SELECT 1 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                 AND COLUMN_NAME = 'principal' AND SEQ_IN_INDEX = 1)"
                .to_owned(),
            add_principal_index: format!("ALTER TABLE {t} ADD INDEX `principal` (`principal`)"),
        }
    }
}

/// What the store and its prune task share. The prune task holds only this,
/// so dropping the last [`MySqlStore`] stops it.
#[derive(Clone)]
struct Shared {
    pool: MySqlPool,
    sql: Sql,
    /// Quoted.
    table: String,
    /// As configured (for `information_schema`).
    table_name: String,
    default_ttl: Duration,
    codec: Codec,
    principal_index: bool,
}

impl Shared {
    fn expiry(&self, expires: Option<Timestamp>, now: Timestamp) -> Timestamp {
        time::store_expiry(expires, self.default_ttl, now)
    }

    /// The `principal` column's value for `record`, when the index is kept
    /// (the write statements then have the extra parameter).
    fn principal_of<'r>(&self, record: &'r Record) -> Result<Option<Option<&'r str>>> {
        if !self.principal_index {
            return Ok(None);
        }
        match record.principal() {
            Some(p) if p.chars().count() > MAX_PRINCIPAL_CHARS => Err(Error::Encode(
                format!(
                    "a principal longer than {MAX_PRINCIPAL_CHARS} characters cannot be indexed"
                )
                .into(),
            )),
            p => Ok(Some(p)),
        }
    }

    /// Adds the `principal` column and its index when `information_schema`
    /// shows them missing; a process that adds them first is no error.
    async fn add_principal_column(&self) -> sqlx::Result<()> {
        for (check, add) in [
            (
                &self.sql.has_principal_column,
                &self.sql.add_principal_column,
            ),
            (&self.sql.has_principal_index, &self.sql.add_principal_index),
        ] {
            let present: bool = sqlx::query_scalar(check)
                .bind(&self.table_name)
                .fetch_one(&self.pool)
                .await?;
            if present {
                continue;
            }
            match sqlx::query(add).execute(&self.pool).await {
                Ok(_) => debug!(statement = %add, "per-user index added"),
                Err(e) if is_duplicate_name(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The stored text of the live row of `id`: what `load` and
    /// `load_versioned` decode. A live row whose data is NULL is a decode
    /// error (there is no session to return, and `None` would let the
    /// caller overwrite the row).
    async fn live_text(&self, id: &SessionId) -> Result<Option<String>> {
        // Read as bytes: sqlx reports `utf8mb4_bin` columns as binary and
        // refuses to decode them as text.
        let row: Option<Option<Vec<u8>>> = sqlx::query_scalar(&self.sql.load)
            .bind(id.as_str())
            .bind(to_expires(&time::now()))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify("loading a session", e))?;
        debug!(found = row.is_some());
        match row {
            None => Ok(None),
            Some(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(Error::decode),
            Some(None) => Err(Error::decode("the session's data is NULL")),
        }
    }

    async fn exists_live(
        &self,
        id: &SessionId,
        now: Timestamp,
        context: &'static str,
    ) -> Result<bool> {
        sqlx::query_scalar::<_, bool>(&self.sql.exists_live)
            .bind(id.as_str())
            .bind(to_expires(&now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(context, e))
    }

    async fn delete_live(
        &self,
        id: &SessionId,
        now: Timestamp,
        context: &'static str,
    ) -> Result<WriteOutcome> {
        let done = sqlx::query(&self.sql.delete_live)
            .bind(id.as_str())
            .bind(to_expires(&now))
            .execute(&self.pool)
            .await
            .map_err(|e| classify(context, e))?;
        Ok(outcome(done.rows_affected()))
    }

    async fn insert(
        &self,
        id: &SessionId,
        expires: u32,
        json: &str,
        principal: Option<Option<&str>>,
    ) -> sqlx::Result<()> {
        let mut query = sqlx::query(&self.sql.insert)
            .bind(id.as_str())
            .bind(expires)
            .bind(json);
        if let Some(p) = principal {
            query = query.bind(p);
        }
        query.execute(&self.pool).await.map(|_| ())
    }
}

#[async_trait]
impl Store for Shared {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let span = tracing::debug_span!("mysql.load", id = ?id);
        async {
            let json = self.live_text(id).await?;
            json.map(|j| self.codec.decode(id.clone(), &j)).transpose()
        }
        .instrument(span)
        .await
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let span = tracing::debug_span!("mysql.create", id = ?record.id);
        async {
            let json = self.codec.encode(record)?;
            check_size(&json)?;
            let principal = self.principal_of(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            if expires <= now {
                // Nothing to store, but a live record with this id is still a collision.
                let live = self
                    .exists_live(&record.id, now, "creating a session")
                    .await?;
                debug!(live, "create with past expiry stores nothing");
                return if live { Err(Error::Collision) } else { Ok(()) };
            }
            let err = |e| classify("creating a session", e);
            let first = self
                .insert(&record.id, to_expires(&expires), &json, principal)
                .await;
            match first {
                Ok(()) => {
                    debug!(created = true);
                    return Ok(());
                }
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(err(e)),
            }
            // The id is taken. An expired row (not pruned yet) may be
            // replaced; a live one may not. Whoever deletes the expired row
            // and inserts first wins; the other sees a collision.
            let freed = sqlx::query(&self.sql.delete_expired_id)
                .bind(record.id.as_str())
                .bind(to_expires(&now))
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected()
                > 0;
            if !freed {
                debug!(created = false, "live record with this id");
                return Err(Error::Collision);
            }
            match self
                .insert(&record.id, to_expires(&expires), &json, principal)
                .await
            {
                Ok(()) => {
                    debug!(created = true, "replaced an expired record");
                    Ok(())
                }
                Err(e) if is_duplicate(&e) => Err(Error::Collision),
                Err(e) => Err(err(e)),
            }
        }
        .instrument(span)
        .await
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("mysql.save", id = ?record.id);
        async {
            let json = self.codec.encode(record)?;
            check_size(&json)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            let outcome = if expires <= now {
                self.delete_live(&record.id, now, "saving a session")
                    .await?
            } else {
                let mut query = sqlx::query(&self.sql.save).bind(&json);
                if let Some(p) = self.principal_of(record)? {
                    query = query.bind(p);
                }
                let done = query
                    .bind(to_expires(&expires))
                    .bind(record.id.as_str())
                    .bind(to_expires(&now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify("saving a session", e))?;
                outcome(done.rows_affected())
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("mysql.touch", id = ?id);
        async {
            let now = time::now();
            let expires = self.expiry(expires, now);
            let outcome = if expires <= now {
                self.delete_live(id, now, "touching a session").await?
            } else {
                let done = sqlx::query(&self.sql.touch)
                    .bind(to_expires(&expires))
                    .bind(id.as_str())
                    .bind(to_expires(&now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify("touching a session", e))?;
                outcome(done.rows_affected())
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        let span = tracing::debug_span!("mysql.destroy", id = ?id);
        async {
            let done = sqlx::query(&self.sql.destroy)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(|e| classify("destroying a session", e))?;
            debug!(deleted = done.rows_affected());
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL.with_principal_index(self.principal_index)
    }

    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        if !self.principal_index {
            return Err(Error::Unsupported("principal_index"));
        }
        let span = tracing::debug_span!("mysql.principal_sessions");
        async {
            // Bytes, as in `live_text`.
            let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                sqlx::query_as(&self.sql.principal_sessions)
                    .bind(principal)
                    .bind(principal)
                    .bind(to_expires(&time::now()))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| classify("listing a principal's sessions", e))?;
            // A Node service may have rewritten the data, not the column.
            let (records, skipped) = meta::of_principal(
                principal,
                rows.into_iter().map(|(sid, data)| {
                    std::str::from_utf8(&sid)
                        .ok()
                        .and_then(|sid| SessionId::parse(sid).ok())
                        .zip(data.and_then(|d| String::from_utf8(d).ok()))
                        .and_then(|(id, json)| self.codec.decode(id, &json).ok())
                }),
            );
            if skipped > 0 {
                warn!(
                    skipped,
                    "indexed rows that are not readable sessions were skipped"
                );
            }
            debug!(count = records.len());
            Ok(records)
        }
        .instrument(span)
        .await
    }

    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        if !self.principal_index {
            return Err(Error::Unsupported("principal_index"));
        }
        let span = tracing::debug_span!("mysql.destroy_principal", keep = ?keep);
        async {
            let done = sqlx::query(&self.sql.destroy_principal)
                .bind(principal)
                .bind(principal)
                .bind(keep.map(SessionId::as_str))
                .bind(to_expires(&time::now()))
                .execute(&self.pool)
                .await
                .map_err(|e| classify("destroying a principal's sessions", e))?;
            debug!(deleted = done.rows_affected());
            Ok(done.rows_affected())
        }
        .instrument(span)
        .await
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let span = tracing::debug_span!("mysql.ids");
        async {
            // Bytes, as in `live_text`; ids that are not UTF-8 are skipped below.
            let sids: Vec<Vec<u8>> = sqlx::query_scalar(&self.sql.ids)
                .bind(to_expires(&time::now()))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| classify("listing sessions", e))?;
            let total = sids.len();
            let ids: Vec<SessionId> = sids
                .iter()
                .filter_map(|s| SessionId::parse(std::str::from_utf8(s).ok()?).ok())
                .collect();
            if ids.len() < total {
                warn!(
                    skipped = total - ids.len(),
                    "rows whose session id is not a valid session id were skipped"
                );
            }
            debug!(count = ids.len());
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    async fn count(&self) -> Result<u64> {
        let span = tracing::debug_span!("mysql.count");
        async {
            let n: i64 = sqlx::query_scalar(&self.sql.count)
                .bind(to_expires(&time::now()))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| classify("counting sessions", e))?;
            debug!(count = n);
            Ok(u64::try_from(n).unwrap_or(0))
        }
        .instrument(span)
        .await
    }

    async fn clear(&self) -> Result<()> {
        let span = tracing::debug_span!("mysql.clear");
        async {
            let done = sqlx::query(&self.sql.clear)
                .execute(&self.pool)
                .await
                .map_err(|e| classify("clearing sessions", e))?;
            debug!(deleted = done.rows_affected());
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Deletes in batches of [`PRUNE_BATCH`] rows, so one prune of a large
    /// backlog neither holds row locks for long nor builds a huge undo log.
    async fn delete_expired(&self) -> Result<u64> {
        let span = tracing::debug_span!("mysql.delete_expired");
        async {
            let now = to_expires(&time::now());
            let mut total = 0;
            loop {
                let done = sqlx::query(&self.sql.delete_expired)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify("deleting expired sessions", e))?;
                total += done.rows_affected();
                if done.rows_affected() < PRUNE_BATCH {
                    debug!(deleted = total);
                    return Ok(total);
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let span = tracing::debug_span!("mysql.load_versioned", id = ?id);
        async {
            match self.live_text(id).await? {
                None => Ok(None),
                Some(j) => {
                    let record = self.codec.decode(id.clone(), &j)?;
                    Ok(Some((record, Version::new(j))))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let span = tracing::debug_span!("mysql.save_if", id = ?record.id);
        async {
            let json = self.codec.encode(record)?;
            check_size(&json)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            let done = if expires <= now {
                sqlx::query(&self.sql.delete_if)
                    .bind(record.id.as_str())
                    .bind(to_expires(&now))
                    .bind(expected.as_str())
                    .execute(&self.pool)
                    .await
            } else {
                let mut query = sqlx::query(&self.sql.save_if).bind(&json);
                if let Some(p) = self.principal_of(record)? {
                    query = query.bind(p);
                }
                query
                    .bind(to_expires(&expires))
                    .bind(record.id.as_str())
                    .bind(to_expires(&now))
                    .bind(expected.as_str())
                    .execute(&self.pool)
                    .await
            }
            .map_err(|e| classify("saving a session", e))?;
            let outcome = if done.rows_affected() > 0 {
                CasOutcome::Written(Version::new(json))
            } else if self
                .exists_live(&record.id, now, "saving a session")
                .await?
            {
                CasOutcome::Conflict
            } else {
                CasOutcome::Gone
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }
}

/// The MySQL / MariaDB store. Cloning is cheap and shares the pool and the
/// prune task; the task stops when the last clone is dropped.
#[derive(Clone)]
pub struct MySqlStore {
    shared: Arc<Shared>,
    /// `shared` under the operation timeout: what the `Store` impl calls.
    ops: Bounded<Arc<Shared>>,
    pruner: SharedPruner,
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("table", &self.shared.table)
            .field("default_ttl", &self.shared.default_ttl)
            .finish_non_exhaustive()
    }
}

impl MySqlStore {
    /// Configures a store for the database at `url`
    /// (`mysql://user[:password]@host[:port]/database[?ssl-mode=…]`;
    /// `mariadb://` is accepted as well).
    pub fn builder(url: impl Into<String>) -> MySqlStoreBuilder {
        MySqlStoreBuilder {
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            columns: DEFAULT_COLUMNS.map(str::to_owned),
            default_ttl: DEFAULT_TTL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_connections: 10,
            create_schema: false,
            prune_interval: Some(DEFAULT_PRUNE_INTERVAL),
            codec: Codec::plain(),
            principal_index: false,
        }
    }

    /// The same store (same pool and table) reading and writing through
    /// `codec`: for example with encryption turned on, or off.
    pub fn with_codec(self, codec: Codec) -> Self {
        let shared = Shared {
            codec,
            ..(*self.shared).clone()
        };
        let shared = Arc::new(shared);
        MySqlStore {
            ops: self.ops.with_inner(shared.clone()),
            shared,
            pruner: self.pruner,
        }
    }

    /// The connection pool, for queries of your own (and for tests).
    pub fn pool(&self) -> &MySqlPool {
        &self.shared.pool
    }

    /// The quoted table name, ready to paste into SQL (`` `sessions` ``).
    pub fn quoted_table(&self) -> &str {
        &self.shared.table
    }

    /// Creates the table (express-mysql-session's `schema.sql`, plus an
    /// index on `expires`) if it does not exist. Idempotent, and safe when
    /// several processes call it at once (`CREATE TABLE IF NOT EXISTS` is
    /// atomic in MySQL and MariaDB). A table that exists is not altered,
    /// except that with [`MySqlStoreBuilder::principal_index`] on, the
    /// `principal` column and its index are added when missing.
    pub async fn create_schema(&self) -> Result<()> {
        let span = tracing::debug_span!("mysql.create_schema", table = %self.shared.table);
        async {
            sqlx::query(&self.shared.sql.create_table)
                .execute(&self.shared.pool)
                .await
                .map_err(|e| classify("creating the session table", e))?;
            if self.shared.principal_index {
                self.shared
                    .add_principal_column()
                    .await
                    .map_err(|e| classify("adding the principal column", e))?;
            }
            debug!("table ready");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Stops the prune task, waiting for a prune in progress to finish.
    /// The store keeps working; expired rows are then only hidden, not
    /// deleted, until [`Store::delete_expired`] is called. Does nothing when
    /// no task runs.
    pub async fn stop_pruning(&self) {
        self.pruner.stop().await;
    }

    /// Whether the prune task is running.
    pub fn is_pruning(&self) -> bool {
        self.pruner.is_running()
    }
}

sessionkit_core::delegate_store!(MySqlStore => ops);

/// The TLS the URL asks for, as the option that asks (`ssl-mode=REQUIRED`),
/// or `None` for cleartext or `PREFERRED`. A build without TLS refuses a
/// URL that requires it, naming the cargo feature.
fn tls_request(url: &str) -> Result<Option<String>> {
    let mode = url_query::find(url, &["sslmode", "ssl-mode"]).map(|m| m.to_ascii_uppercase());
    let files = [
        "sslca", "ssl-ca", "sslcert", "ssl-cert", "sslkey", "ssl-key",
    ]
    .into_iter()
    .find(|name| url_query::find(url, &[name]).is_some());
    let asked = match (mode.as_deref(), files) {
        (None | Some("DISABLED" | "PREFERRED"), None) => return Ok(None),
        (Some(m @ ("DISABLED" | "PREFERRED" | "REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY")), _) => {
            format!("ssl-mode={m}")
        }
        (None, Some(file)) => file.to_owned(),
        (Some(other), _) => {
            return Err(Error::Config(
                format!(
                    "ssl-mode={other:?} is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                )
                .into(),
            ))
        }
    };
    // A file the driver would only fail to open mid-handshake, with an
    // error that names no option: check it here.
    for name in [
        "sslca", "ssl-ca", "sslcert", "ssl-cert", "sslkey", "ssl-key",
    ] {
        if let Some(path) = url_query::find(url, &[name]) {
            std::fs::File::open(&path)
                .map_err(|e| Error::Config(format!("{name}: cannot read {path}: {e}").into()))?;
        }
    }
    if cfg!(any(feature = "tls-rustls", feature = "tls-native-tls")) {
        Ok(Some(asked))
    } else {
        Err(Error::Config(
            format!("the URL asks for TLS ({asked}), but sessionkit-mysql was built without its `tls-rustls` cargo feature").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_checked() {
        assert_eq!(
            quote_ident("sessions", "t").ok().as_deref(),
            Some("`sessions`")
        );
        assert_eq!(
            quote_ident("my `odd` table", "t").ok().as_deref(),
            Some("`my ``odd`` table`")
        );
        assert!(quote_ident(&"é".repeat(64), "t").is_ok());
        for bad in ["", "a\0b", "trailing ", "emoji🔑"] {
            assert!(
                matches!(quote_ident(bad, "t"), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            quote_ident(&"x".repeat(65), "t"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn expires_is_rounded_like_math_round_and_clamped() {
        assert_eq!(
            to_expires(&time::from_millis(1_795_744_481_499)),
            1_795_744_481
        );
        assert_eq!(
            to_expires(&time::from_millis(1_795_744_481_500)),
            1_795_744_482
        );
        assert_eq!(to_expires(&time::from_millis(-5_000)), 0);
        assert_eq!(to_expires(&time::from_millis(i64::MAX)), u32::MAX);
        assert_eq!(
            from_expires(1_795_744_482),
            time::from_millis(1_795_744_482_000)
        );
    }

    #[test]
    fn statements_use_the_configured_names() -> Result<()> {
        let b = MySqlStore::builder("mysql://x")
            .table("app`s")
            .columns("sid", "exp", "sess");
        let sql = Sql::new(&b.names()?, false);
        assert_eq!(
            sql.load,
            "SELECT `sess` FROM `app``s` WHERE `sid` = ? AND `exp` >= ?"
        );
        assert!(sql.create_table.contains("`exp` int(11) unsigned NOT NULL"));
        assert!(!sql.create_table.contains("principal") && !sql.save.contains("principal"));
        let indexed = Sql::new(&b.names()?, true);
        assert_eq!(
            indexed.save,
            "UPDATE `app``s` SET `sess` = ?, `principal` = ?, `exp` = ? WHERE `sid` = ? AND `exp` >= ?"
        );
        assert!(indexed.create_table.contains(PRINCIPAL_COLUMN));
        Ok(())
    }

    #[test]
    fn oversized_json_is_an_encode_error() {
        assert!(check_size(&"x".repeat(MAX_DATA_BYTES)).is_ok());
        assert!(matches!(
            check_size(&"x".repeat(MAX_DATA_BYTES + 1)),
            Err(Error::Encode(_))
        ));
    }

    #[test]
    fn debug_never_prints_the_url() {
        let b = MySqlStore::builder("mysql://u:hunter2@127.0.0.1/db");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_configuration_is_refused_before_connecting() {
        let bad_url = MySqlStore::builder("postgres://127.0.0.1:1/x")
            .connect()
            .await;
        assert!(matches!(bad_url, Err(Error::Config(_))), "{bad_url:?}");
        let bad_table = MySqlStore::builder("mysql://127.0.0.1:1/x")
            .table("")
            .connect()
            .await;
        assert!(matches!(bad_table, Err(Error::Config(_))), "{bad_table:?}");
        let bad_column = MySqlStore::builder("mysql://127.0.0.1:1/x")
            .columns("sid", "exp\0", "data")
            .connect()
            .await;
        assert!(
            matches!(bad_column, Err(Error::Config(_))),
            "{bad_column:?}"
        );
    }
}

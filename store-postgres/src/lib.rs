//! A PostgreSQL session store with [connect-pg-simple]'s table, so a Node
//! service using `express-session` + `connect-pg-simple` and a Rust service
//! using this crate read and write the same sessions.
//!
//! ```sql
//! CREATE TABLE "session" (
//!   "sid" varchar NOT NULL COLLATE "default",
//!   "sess" json NOT NULL,
//!   "expire" timestamp(6) NOT NULL,
//!   CONSTRAINT "session_pkey" PRIMARY KEY ("sid")
//! );
//! CREATE INDEX "IDX_session_expire" ON "session" ("expire");
//! ```
//!
//! `sess` holds the express-session JSON text exactly as written (a `json`
//! column keeps the text, unlike `jsonb`). `expire` holds whole seconds
//! rounded up, as connect-pg-simple writes it, so Node (which compares with
//! the current second rounded up) keeps a row Rust wrote as long as its own. Schema and table names are
//! options, always quoted as identifiers. The table is created by
//! [`PostgresStore::create_schema`] (or on connect with
//! [`PostgresStoreBuilder::create_schema`]): idempotent, and safe when
//! several processes run it at the same moment (they take a transaction
//! advisory lock). A table that already exists, for example one made by
//! connect-pg-simple, is left exactly as it is.
//!
//! | operation | SQL |
//! |---|---|
//! | `load` | `SELECT … WHERE sid = $1 AND expire >= now` |
//! | `create` | `INSERT … ON CONFLICT (sid) DO UPDATE … WHERE expire < now`: a live row is [`Error::Collision`], an expired one is replaced |
//! | `save` | `UPDATE … WHERE sid = $1 AND expire >= now`: no row is [`WriteOutcome::Gone`], never an insert |
//! | `touch` | `UPDATE … SET expire = … WHERE sid = $1 AND expire >= now` (data untouched) |
//! | `destroy` | `DELETE … WHERE sid = $1` |
//! | `save_if` | `UPDATE … WHERE sid = $1 AND expire >= now AND sess::text = $loaded` (compare-and-set on the stored text) |
//! | `delete_expired` | `DELETE … WHERE expire < now` (the prune task calls it every 15 minutes by default) |
//!
//! Expiry is the cookie's `expires`, or now + the default TTL (one day) for
//! a cookie without one, like connect-pg-simple.
//!
//! # Per-user session index (opt-in)
//!
//! With [`PostgresStoreBuilder::principal_index`] on, the table gets one
//! more column, `"principal" text` (nullable), with an index
//! `IDX_<table>_principal`, holding each record's [`Record::principal`].
//! [`PostgresStore::create_schema`] adds both to an existing table as well
//! (`ADD COLUMN IF NOT EXISTS`, under the same advisory lock). `create`,
//! `save` and `save_if` set it (NULL for a record without a principal),
//! `touch` leaves it, and [`Store::principal_sessions`] (`SELECT … WHERE
//! principal = $1 AND expire >= now`) and [`Store::destroy_principal`] use
//! it. Off by default, so the table stays exactly connect-pg-simple's. The
//! column is plain text even when `sess` is encrypted.
//!
//! connect-pg-simple leaves the column alone: rows it inserts have no
//! principal and are not listed, and a row whose `sess` a Node service
//! rewrote keeps the column Rust last wrote. `principal_sessions` decodes
//! each row and drops those whose record names another principal;
//! `destroy_principal` goes by the column alone.
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_postgres::PostgresStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! # let url = std::env::var("DATABASE_URL")
//! #     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
//! let store = PostgresStore::builder(url) // e.g. "postgres://user@127.0.0.1/app"
//!     .schema("doctest_sessions")
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
//! # Time zones: how `expire` is written and compared
//!
//! `expire` is a `timestamp without time zone`: it holds a wall-clock time
//! and no zone. connect-pg-simple writes it as `to_timestamp(<epoch
//! seconds>)`, a `timestamptz`, which PostgreSQL converts to the wall clock
//! of the *connection's* `TimeZone` setting; it compares with
//! `expire >= to_timestamp(<now>)` the same way. node-postgres does not set
//! `TimeZone`, so a Node app uses the server's default (`timezone` in
//! `postgresql.conf`, or `ALTER DATABASE/ROLE … SET timezone`). sqlx, on the
//! other hand, always connects with `TimeZone=UTC`. Had this crate relied on
//! its connection's zone, a server whose default is `America/New_York`
//! would make Node and Rust disagree about every expiry by four or five
//! hours.
//!
//! So this crate never relies on the connection's `TimeZone`. Every
//! statement converts explicitly, in one zone chosen by
//! [`PostgresStoreBuilder::time_zone`] (default `UTC`):
//!
//! * writing: `expire = $instant AT TIME ZONE $zone`, where `$instant` is a
//!   `timestamptz` bound from Rust (the cookie's expiry, or now + TTL);
//! * comparing: `expire >= $now AT TIME ZONE $zone`, `$now` being this
//!   process's clock, like connect-pg-simple's `Date.now()`;
//! * reading an expiry back: `expire AT TIME ZONE $zone`.
//!
//! The rule for sharing a table with Node: **set `time_zone` to the
//! `TimeZone` the Node app's connections use**, which is the server's
//! default unless the Node app sets one (run `SHOW TimeZone` from the Node
//! app's connection, or from `psql` without `PGTZ`). The default, `UTC`, is
//! right for servers whose default zone is UTC — the official Docker image
//! and the managed services — and for tables only this crate uses. The
//! result does not depend on the `TimeZone` of this crate's own
//! connections, so a pool configured elsewhere ([`PostgresStoreBuilder::with_pool`])
//! is safe too.
//!
//! [connect-pg-simple]: https://github.com/voxpelli/node-connect-pg-simple
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn, Instrument};

/// connect-pg-simple's default table name.
pub const DEFAULT_TABLE: &str = "session";

/// The zone `expire` is written in by default (see the crate docs on time zones).
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// How often expired rows are deleted by default (connect-pg-simple's `pruneSessionInterval`).
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How long connecting (and waiting for a pooled connection) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one store operation may take by default (see
/// [`PostgresStoreBuilder::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL truncates identifiers longer than this many bytes.
const MAX_IDENTIFIER: usize = 63;

/// First key of the advisory lock taken by [`PostgresStore::create_schema`]
/// ("sess" in ASCII); the second is a hash of the qualified table name.
const SCHEMA_LOCK_CLASS: i32 = 0x7365_7373;

/// Configures a [`PostgresStore`]. Start with [`PostgresStore::builder`].
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: Option<String>,
    table: String,
    time_zone: String,
    default_ttl: Duration,
    connect_timeout: Duration,
    operation_timeout: Duration,
    max_connections: u32,
    create_schema: bool,
    prune_interval: Option<Duration>,
    codec: Codec,
    principal_index: bool,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("time_zone", &self.time_zone)
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

impl PostgresStoreBuilder {
    /// The schema of the table (connect-pg-simple's `schemaName`). Default:
    /// none, the table name is unqualified and found through `search_path`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The table name (connect-pg-simple's `tableName`, default `"session"`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The zone in which `expire` wall-clock values are written and compared
    /// (default `"UTC"`). To share the table with a Node app, use the
    /// `TimeZone` of its connections: see the crate docs on time zones. Any
    /// name PostgreSQL accepts (`"Europe/Paris"`, `"UTC"`); checked on connect.
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = zone.into();
        self
    }

    /// TTL for sessions whose cookie has no expiry (default one day, like
    /// connect-pg-simple's `ttl`).
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
    /// by [`connect`](Self::connect) also set the server's `lock_timeout` to
    /// it, so a statement waiting on a lock held by another client is
    /// cancelled by the server and the connection stays usable.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Size of the connection pool (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Whether [`connect`](Self::connect) runs [`PostgresStore::create_schema`]
    /// (default `false`, like connect-pg-simple's `createTableIfMissing`:
    /// creating tables needs privileges an application role often lacks).
    pub fn create_schema(mut self, yes: bool) -> Self {
        self.create_schema = yes;
        self
    }

    /// How often a background task deletes expired rows (default every 15
    /// minutes); `None` disables it, e.g. when a cron job or another process
    /// prunes. The task logs failures with `tracing` and keeps going; it
    /// stops when the last clone of the store is dropped or on
    /// [`PostgresStore::stop_pruning`].
    pub fn prune_interval(mut self, interval: Option<Duration>) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Keep the per-user session index (default `false`; see the crate
    /// docs): a `principal` column, filled on every write, that
    /// [`Store::principal_sessions`] and [`Store::destroy_principal`] query.
    /// Off, both are [`Error::Unsupported`] and the table is connect-pg-simple's
    /// unchanged. On, [`PostgresStore::create_schema`] (or
    /// [`create_schema(true)`](Self::create_schema)) must have run once
    /// against the table, since every write names the column.
    pub fn principal_index(mut self, on: bool) -> Self {
        self.principal_index = on;
        self
    }

    fn names(&self) -> Result<(String, Option<String>)> {
        let table = quote_ident(&self.table, "table")?;
        let schema = self
            .schema
            .as_deref()
            .map(|s| quote_ident(s, "schema"))
            .transpose()?;
        let qualified = match &schema {
            Some(s) => format!("{s}.{table}"),
            None => table,
        };
        Ok((qualified, schema))
    }

    /// Encrypt session data at rest (see [`sessionkit_core::encryption`]).
    /// The `sess` column then holds a JSON string; connect-pg-simple cannot
    /// read encrypted rows.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.codec = Codec::encrypted(encryption);
        self
    }

    /// Connects and returns the store: checks the server answers (bounded by
    /// the connect timeout), checks the time zone, creates the table if asked
    /// to and starts the prune task if configured.
    ///
    /// A malformed URL, an invalid name or an unknown time zone is
    /// [`Error::Config`]; a server that cannot be reached is [`Error::Unavailable`].
    pub async fn connect(self) -> Result<PostgresStore> {
        if self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "connect timeout must be greater than zero".into(),
            ));
        }
        self.names()?;
        let tls = tls_request(&self.url)?;
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(Error::Config(
                "PostgreSQL URL must start with postgres:// or postgresql://".into(),
            ));
        }
        let options: PgConnectOptions = self
            .url
            .parse()
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}").into()))?;
        let lock_timeout = format!("{}ms", self.operation_timeout.as_millis().max(1));
        let options = options
            .application_name("sessionkit-postgres")
            .options([("lock_timeout", lock_timeout.as_str())]);
        // One direct connection first: its error says what is wrong
        // ("connection refused"), where the pool would only say it timed out.
        let conn = tokio::time::timeout(self.connect_timeout, options.connect())
            .await
            .map_err(|elapsed| Error::unavailable("connecting to PostgreSQL", elapsed))?
            .map_err(|e| match (&tls, e) {
                (Some(option), e)
                    if matches!(e, sqlx::Error::Tls(_) | sqlx::Error::Configuration(_))
                        || sessionkit_core::driver::is_certificate_error(&e) =>
                {
                    Error::Config(
                        format!("connecting to PostgreSQL over TLS ({option}): {e}").into(),
                    )
                }
                (_, e) => classify("connecting to PostgreSQL", e),
            })?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(options);
        self.with_pool(pool).await
    }

    /// Builds the store on a pool you already have (to share it with the
    /// rest of the application). The URL, connect timeout and pool size
    /// given to this builder are not used. The pool's connections may use
    /// any `TimeZone`: expiry does not depend on it.
    pub async fn with_pool(self, pool: PgPool) -> Result<PostgresStore> {
        let (qualified, schema) = self.names()?;
        if self.operation_timeout.is_zero() {
            return Err(Error::Config(
                "operation timeout must be greater than zero".into(),
            ));
        }
        let shared = Arc::new(Shared {
            sql: Sql::new(&qualified, self.principal_index),
            pool,
            qualified,
            schema,
            table: self.table.clone(),
            time_zone: self.time_zone.clone(),
            default_ttl: self.default_ttl,
            codec: self.codec.clone(),
            principal_index: self.principal_index,
        });
        shared.check_time_zone().await?;
        let mut store = PostgresStore {
            ops: Bounded::new(shared.clone(), self.operation_timeout)?,
            shared,
            pruner: SharedPruner::default(),
        };
        if self.create_schema {
            store.create_schema().await?;
        }
        store.pruner = SharedPruner::start(store.shared.clone(), self.prune_interval);
        debug!(table = %store.shared.qualified, "PostgreSQL session store ready");
        Ok(store)
    }
}

/// Quotes an identifier: `"` around it, inner `"` doubled. Refuses what
/// PostgreSQL would reject or silently truncate.
fn quote_ident(name: &str, what: &str) -> Result<String> {
    if name.is_empty() || name.len() > MAX_IDENTIFIER || name.contains('\0') {
        return Err(Error::Config(
            format!("{what} name must be 1 to {MAX_IDENTIFIER} bytes without NUL").into(),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Maps a driver error: connection trouble, pool timeouts and the SQLSTATEs
/// that mean "try again" are transient; the rest are backend errors.
fn classify(context: &'static str, e: sqlx::Error) -> Error {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources;
            // 57P0x: shutdown / cannot connect now; 40001/40P01: retry;
            // 55P03: lock_timeout passed; 57014: statement cancelled.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                || code == "55P03"
                || code == "57014"
        }),
        _ => false,
    };
    if transient {
        Error::unavailable(context, e)
    } else {
        Error::backend(context, e)
    }
}

/// The statements, built once per store from the quoted table name.
#[derive(Debug, Clone)]
struct Sql {
    load: String,
    create: String,
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
}

impl Sql {
    /// With `principal`, the writes also set the `principal` column from
    /// their last parameter.
    fn new(t: &str, principal: bool) -> Self {
        // Bound after the others: `$6` in create and save, `$7` in save_if.
        let (p_col, p_val, p_set, p_set_if) = if principal {
            (
                ", principal",
                ", $6",
                ", principal = EXCLUDED.principal",
                (", principal = $6", ", principal = $7"),
            )
        } else {
            ("", "", "", ("", ""))
        };
        let (p_save, p_save_if) = p_set_if;
        Sql {
            load: format!(
                "SELECT sess::text FROM {t} WHERE sid = $1 AND expire >= ($2 AT TIME ZONE $3)"
            ),
            create: format!(
                "INSERT INTO {t} AS s (sid, sess, expire{p_col}) \
                 VALUES ($1, $2::json, $3 AT TIME ZONE $5{p_val}) \
                 ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire{p_set} \
                 WHERE s.expire < ($4 AT TIME ZONE $5)"
            ),
            exists_live: format!(
                "SELECT EXISTS (SELECT 1 FROM {t} WHERE sid = $1 AND expire >= ($2 AT TIME ZONE $3))"
            ),
            save: format!(
                "UPDATE {t} SET sess = $2::json, expire = ($3 AT TIME ZONE $5){p_save} \
                 WHERE sid = $1 AND expire >= ($4 AT TIME ZONE $5)"
            ),
            delete_live: format!(
                "DELETE FROM {t} WHERE sid = $1 AND expire >= ($2 AT TIME ZONE $3)"
            ),
            // `json` keeps the text as written, so the stored text is the version.
            save_if: format!(
                "UPDATE {t} SET sess = $2::json, expire = ($3 AT TIME ZONE $5){p_save_if} \
                 WHERE sid = $1 AND expire >= ($4 AT TIME ZONE $5) AND sess::text = $6"
            ),
            delete_if: format!(
                "DELETE FROM {t} WHERE sid = $1 AND expire >= ($2 AT TIME ZONE $3) AND sess::text = $4"
            ),
            touch: format!(
                "UPDATE {t} SET expire = ($2 AT TIME ZONE $4) \
                 WHERE sid = $1 AND expire >= ($3 AT TIME ZONE $4)"
            ),
            destroy: format!("DELETE FROM {t} WHERE sid = $1"),
            ids: format!("SELECT sid FROM {t} WHERE expire >= ($1 AT TIME ZONE $2)"),
            count: format!("SELECT count(*) FROM {t} WHERE expire >= ($1 AT TIME ZONE $2)"),
            clear: format!("DELETE FROM {t}"),
            delete_expired: format!("DELETE FROM {t} WHERE expire < ($1 AT TIME ZONE $2)"),
            principal_sessions: format!(
                "SELECT sid, sess::text FROM {t} \
                 WHERE principal = $1 AND expire >= ($2 AT TIME ZONE $3)"
            ),
            destroy_principal: format!(
                "DELETE FROM {t} WHERE principal = $1 AND sid IS DISTINCT FROM $2 \
                 AND expire >= ($3 AT TIME ZONE $4)"
            ),
        }
    }
}

/// What the store and its prune task share. The prune task holds only this,
/// so dropping the last [`PostgresStore`] stops it.
#[derive(Clone)]
struct Shared {
    pool: PgPool,
    sql: Sql,
    qualified: String,
    schema: Option<String>,
    table: String,
    time_zone: String,
    default_ttl: Duration,
    codec: Codec,
    principal_index: bool,
}

impl Shared {
    async fn check_time_zone(&self) -> Result<()> {
        let checked = sqlx::query("SELECT now() AT TIME ZONE $1")
            .bind(&self.time_zone)
            .execute(&self.pool)
            .await;
        match checked {
            Ok(_) => Ok(()),
            // 22023 invalid_parameter_value: "time zone … not recognized".
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22023") => Err(
                Error::Config(format!("unknown PostgreSQL time zone {:?}", self.time_zone).into()),
            ),
            Err(e) => Err(classify("checking the time zone", e)),
        }
    }

    /// The `expire` column's value: as connect-pg-simple writes it, whole
    /// seconds rounded up (`to_timestamp(Math.ceil(ms / 1000))`), so Node,
    /// which compares with the current second rounded up, keeps a row Rust
    /// wrote exactly as long as one it wrote itself.
    fn expiry(&self, expires: Option<Timestamp>, now: Timestamp) -> Timestamp {
        let ms = time::store_expiry(expires, self.default_ttl, now).timestamp_millis();
        time::from_millis(
            ms.div_euclid(1000)
                .saturating_add(i64::from(ms.rem_euclid(1000) != 0))
                .saturating_mul(1000),
        )
    }

    /// The `principal` column's value for `record`, when the index is kept
    /// (the statements then have the extra parameter). PostgreSQL text
    /// cannot hold NUL, so such a principal is an [`Error::Encode`].
    fn principal_of<'r>(&self, record: &'r Record) -> Result<Option<Option<&'r str>>> {
        if !self.principal_index {
            return Ok(None);
        }
        match record.principal() {
            Some(p) if p.contains('\0') => Err(Error::Encode(
                "a principal containing NUL cannot be indexed in PostgreSQL".into(),
            )),
            p => Ok(Some(p)),
        }
    }

    /// Adds the `principal` column and its index when missing. Runs inside
    /// `create_schema`'s transaction, under its advisory lock; checks the
    /// catalog first so an indexed table takes no `ALTER TABLE` lock.
    async fn add_principal_column(&self, tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
        let t = &self.qualified;
        let has_column: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass \
             AND attname = 'principal' AND NOT attisdropped)",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        if !has_column {
            sqlx::query(&format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS \"principal\" text"
            ))
            .execute(&mut *tx)
            .await?;
            debug!("principal column added");
        }
        let has_index: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = $1::regclass AND a.attname = 'principal')",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        if !has_index {
            // A name too long for PostgreSQL: let it pick one.
            let index =
                quote_ident(&format!("IDX_{}_principal", self.table), "index").unwrap_or_default();
            sqlx::query(&format!("CREATE INDEX {index} ON {t} (\"principal\")"))
                .execute(&mut *tx)
                .await?;
            debug!("principal index created");
        }
        Ok(())
    }

    /// The stored text of the live row of `id`: what `load` and
    /// `load_versioned` decode.
    async fn live_text(&self, id: &SessionId) -> Result<Option<String>> {
        let json: Option<String> = sqlx::query_scalar(&self.sql.load)
            .bind(id.as_str())
            .bind(time::now())
            .bind(&self.time_zone)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify("loading a session", e))?;
        debug!(found = json.is_some());
        Ok(json)
    }

    async fn exists_live(
        &self,
        id: &SessionId,
        now: Timestamp,
        context: &'static str,
    ) -> Result<bool> {
        sqlx::query_scalar::<_, bool>(&self.sql.exists_live)
            .bind(id.as_str())
            .bind(now)
            .bind(&self.time_zone)
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
            .bind(now)
            .bind(&self.time_zone)
            .execute(&self.pool)
            .await
            .map_err(|e| classify(context, e))?;
        Ok(if done.rows_affected() > 0 {
            WriteOutcome::Written
        } else {
            WriteOutcome::Gone
        })
    }
}

#[async_trait]
impl Store for Shared {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let span = tracing::debug_span!("postgres.load", id = ?id);
        async {
            let json = self.live_text(id).await?;
            json.map(|j| self.codec.decode(id.clone(), &j)).transpose()
        }
        .instrument(span)
        .await
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let span = tracing::debug_span!("postgres.create", id = ?record.id);
        async {
            let json = self.codec.encode_json(record)?;
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
            let mut query = sqlx::query(&self.sql.create)
                .bind(record.id.as_str())
                .bind(json)
                .bind(expires)
                .bind(now)
                .bind(&self.time_zone);
            if let Some(p) = self.principal_of(record)? {
                query = query.bind(p);
            }
            let done = query
                .execute(&self.pool)
                .await
                .map_err(|e| classify("creating a session", e))?;
            let created = done.rows_affected() > 0;
            debug!(created);
            if created {
                Ok(())
            } else {
                Err(Error::Collision)
            }
        }
        .instrument(span)
        .await
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("postgres.save", id = ?record.id);
        async {
            let json = self.codec.encode_json(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            let outcome = if expires <= now {
                self.delete_live(&record.id, now, "saving a session")
                    .await?
            } else {
                let mut query = sqlx::query(&self.sql.save)
                    .bind(record.id.as_str())
                    .bind(json)
                    .bind(expires)
                    .bind(now)
                    .bind(&self.time_zone);
                if let Some(p) = self.principal_of(record)? {
                    query = query.bind(p);
                }
                let done = query
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify("saving a session", e))?;
                if done.rows_affected() > 0 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                }
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("postgres.touch", id = ?id);
        async {
            let now = time::now();
            let expires = self.expiry(expires, now);
            let outcome = if expires <= now {
                self.delete_live(id, now, "touching a session").await?
            } else {
                let done = sqlx::query(&self.sql.touch)
                    .bind(id.as_str())
                    .bind(expires)
                    .bind(now)
                    .bind(&self.time_zone)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify("touching a session", e))?;
                if done.rows_affected() > 0 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                }
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        let span = tracing::debug_span!("postgres.destroy", id = ?id);
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
        let span = tracing::debug_span!("postgres.principal_sessions");
        async {
            let rows: Vec<(String, String)> = sqlx::query_as(&self.sql.principal_sessions)
                .bind(principal)
                .bind(time::now())
                .bind(&self.time_zone)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| classify("listing a principal's sessions", e))?;
            // A Node service may have rewritten `sess`, not the column.
            let (records, skipped) = meta::of_principal(
                principal,
                rows.into_iter().map(|(sid, json)| {
                    SessionId::parse(&sid)
                        .ok()
                        .and_then(|id| self.codec.decode(id, &json).ok())
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
        let span = tracing::debug_span!("postgres.destroy_principal", keep = ?keep);
        async {
            let done = sqlx::query(&self.sql.destroy_principal)
                .bind(principal)
                .bind(keep.map(SessionId::as_str))
                .bind(time::now())
                .bind(&self.time_zone)
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
        let span = tracing::debug_span!("postgres.ids");
        async {
            let sids: Vec<String> = sqlx::query_scalar(&self.sql.ids)
                .bind(time::now())
                .bind(&self.time_zone)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| classify("listing sessions", e))?;
            let total = sids.len();
            let ids: Vec<SessionId> = sids
                .iter()
                .filter_map(|s| SessionId::parse(s).ok())
                .collect();
            if ids.len() < total {
                warn!(
                    skipped = total - ids.len(),
                    "rows whose sid is not a valid session id were skipped"
                );
            }
            debug!(count = ids.len());
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    async fn count(&self) -> Result<u64> {
        let span = tracing::debug_span!("postgres.count");
        async {
            let n: i64 = sqlx::query_scalar(&self.sql.count)
                .bind(time::now())
                .bind(&self.time_zone)
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
        let span = tracing::debug_span!("postgres.clear");
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

    async fn delete_expired(&self) -> Result<u64> {
        let span = tracing::debug_span!("postgres.delete_expired");
        async {
            let done = sqlx::query(&self.sql.delete_expired)
                .bind(time::now())
                .bind(&self.time_zone)
                .execute(&self.pool)
                .await
                .map_err(|e| classify("deleting expired sessions", e))?;
            debug!(deleted = done.rows_affected());
            Ok(done.rows_affected())
        }
        .instrument(span)
        .await
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let span = tracing::debug_span!("postgres.load_versioned", id = ?id);
        async {
            let json = self.live_text(id).await?;
            match json {
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
        let span = tracing::debug_span!("postgres.save_if", id = ?record.id);
        async {
            let json = self.codec.encode_json(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            let done = if expires <= now {
                sqlx::query(&self.sql.delete_if)
                    .bind(record.id.as_str())
                    .bind(now)
                    .bind(&self.time_zone)
                    .bind(expected.as_str())
                    .execute(&self.pool)
                    .await
            } else {
                let mut query = sqlx::query(&self.sql.save_if)
                    .bind(record.id.as_str())
                    .bind(&json)
                    .bind(expires)
                    .bind(now)
                    .bind(&self.time_zone)
                    .bind(expected.as_str());
                if let Some(p) = self.principal_of(record)? {
                    query = query.bind(p);
                }
                query.execute(&self.pool).await
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

/// The PostgreSQL store. Cloning is cheap and shares the pool and the prune
/// task; the task stops when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    /// `shared` under the operation timeout: what the `Store` impl calls.
    ops: Bounded<Arc<Shared>>,
    pruner: SharedPruner,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.shared.qualified)
            .field("time_zone", &self.shared.time_zone)
            .field("default_ttl", &self.shared.default_ttl)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Configures a store for the database at `url`
    /// (`postgres://user[:password]@host[:port]/database[?sslmode=…]`).
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
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
        PostgresStore {
            ops: self.ops.with_inner(shared.clone()),
            shared,
            pruner: self.pruner,
        }
    }

    /// The connection pool, for queries of your own (and for tests).
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// The quoted, schema-qualified table name, ready to paste into SQL
    /// (`"session"` or `"myschema"."session"`).
    pub fn qualified_table(&self) -> &str {
        &self.shared.qualified
    }

    /// The zone `expire` is written and compared in.
    pub fn time_zone(&self) -> &str {
        &self.shared.time_zone
    }

    /// Creates the schema (when one is configured), the table and its
    /// `expire` index, if the table does not exist yet. Idempotent, and safe
    /// when several processes call it at once: they serialise on a
    /// transaction-scoped advisory lock, since `CREATE … IF NOT EXISTS`
    /// alone can fail when two sessions race. A table that exists is not
    /// altered, except that with [`PostgresStoreBuilder::principal_index`]
    /// on, the `principal` column and its index are added when missing.
    ///
    /// The DDL is connect-pg-simple's `table.sql`; the index is named
    /// `IDX_session_expire` for the default table and `IDX_<table>_expire`
    /// otherwise (connect-pg-simple always says `IDX_session_expire`, so a
    /// second session table in the same schema would clash).
    pub async fn create_schema(&self) -> Result<()> {
        let span = tracing::debug_span!("postgres.create_schema", table = %self.shared.qualified);
        async {
            let s = &self.shared;
            let err = |e: sqlx::Error| classify("creating the session table", e);
            let mut tx = s.pool.begin().await.map_err(err)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(SCHEMA_LOCK_CLASS)
                .bind(&s.qualified)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&s.qualified)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            if exists {
                if s.principal_index {
                    s.add_principal_column(&mut tx).await.map_err(err)?;
                } else {
                    debug!("table exists; left as it is");
                }
                return tx.commit().await.map_err(err);
            }
            if let Some(schema) = &s.schema {
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            // Only reached for a table that does not exist (under the lock),
            // so plain CREATE statements. The primary key takes PostgreSQL's
            // automatic name, `<table>_pkey` ("session_pkey" by default).
            let t = &s.qualified;
            sqlx::query(&format!(
                "CREATE TABLE {t} (\
                 \"sid\" varchar NOT NULL COLLATE \"default\", \
                 \"sess\" json NOT NULL, \
                 \"expire\" timestamp(6) NOT NULL, \
                 PRIMARY KEY (\"sid\"))"
            ))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            let index_name = if s.table == DEFAULT_TABLE {
                "IDX_session_expire".to_owned()
            } else {
                format!("IDX_{}_expire", s.table)
            };
            // A name too long for PostgreSQL: let it pick one.
            let index = quote_ident(&index_name, "index").unwrap_or_default();
            sqlx::query(&format!("CREATE INDEX {index} ON {t} (\"expire\")"))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            if s.principal_index {
                s.add_principal_column(&mut tx).await.map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            debug!("table created");
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

sessionkit_core::delegate_store!(PostgresStore => ops);

/// The TLS the URL asks for, as the option that asks (`sslmode=require`),
/// or `None` for cleartext or `prefer`. A build without TLS refuses a URL
/// that requires it, naming the cargo feature.
fn tls_request(url: &str) -> Result<Option<String>> {
    let mode = url_query::find(url, &["sslmode", "ssl-mode"]).map(|m| m.to_ascii_lowercase());
    let files = [
        "sslrootcert",
        "ssl-root-cert",
        "ssl-ca",
        "sslcert",
        "ssl-cert",
        "sslkey",
        "ssl-key",
    ]
    .into_iter()
    .find(|name| url_query::find(url, &[name]).is_some());
    let asked = match (mode.as_deref(), files) {
        (None | Some("disable" | "allow" | "prefer"), None) => return Ok(None),
        (Some(m @ ("disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full")), _) => {
            format!("sslmode={m}")
        }
        (None, Some(file)) => file.to_owned(),
        (Some(other), _) => {
            return Err(Error::Config(
                format!(
                    "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )
                .into(),
            ))
        }
    };
    // A file the driver would only fail to open mid-handshake, with an
    // error that names no option: check it here.
    for name in [
        "sslrootcert",
        "ssl-root-cert",
        "ssl-ca",
        "sslcert",
        "ssl-cert",
        "sslkey",
        "ssl-key",
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
            format!("the URL asks for TLS ({asked}), but sessionkit-postgres was built without its `tls-rustls` cargo feature").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_checked() {
        assert_eq!(
            quote_ident("session", "t").ok().as_deref(),
            Some("\"session\"")
        );
        assert_eq!(
            quote_ident("my \"odd\" table", "t").ok().as_deref(),
            Some("\"my \"\"odd\"\" table\"")
        );
        assert!(matches!(quote_ident("", "t"), Err(Error::Config(_))));
        assert!(matches!(
            quote_ident(&"x".repeat(64), "t"),
            Err(Error::Config(_))
        ));
        assert!(matches!(quote_ident("a\0b", "t"), Err(Error::Config(_))));
    }

    #[test]
    fn qualified_names() -> Result<()> {
        let b = PostgresStore::builder("postgres://x");
        assert_eq!(b.names()?.0, "\"session\"");
        let b = b.schema("app").table("sess");
        assert_eq!(b.names()?.0, "\"app\".\"sess\"");
        Ok(())
    }

    #[test]
    fn debug_never_prints_the_url() {
        let b = PostgresStore::builder("postgres://u:hunter2@127.0.0.1/db");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_configuration_is_refused_before_connecting() {
        let bad_url = PostgresStore::builder("mysql://127.0.0.1:1/x")
            .connect()
            .await;
        assert!(matches!(bad_url, Err(Error::Config(_))), "{bad_url:?}");
        let bad_table = PostgresStore::builder("postgres://127.0.0.1:1/x")
            .table("")
            .connect()
            .await;
        assert!(matches!(bad_table, Err(Error::Config(_))), "{bad_table:?}");
    }
}

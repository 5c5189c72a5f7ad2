//! An embedded SQLite session store with the table layout of Node's
//! `connect-session-sequelize` on SQLite, so a Node service using Sequelize
//! and a Rust service can share one database file.
//!
//! ```sql
//! CREATE TABLE "Sessions" (sid VARCHAR(36) PRIMARY KEY, expires DATETIME,
//!   data TEXT, createdAt DATETIME NOT NULL, updatedAt DATETIME NOT NULL)
//! ```
//!
//! Dates are written the way Sequelize writes them on SQLite,
//! `YYYY-MM-DD HH:MM:SS.SSS +00:00` (always UTC), so they compare correctly
//! as text. `data` is express-session's JSON. The database runs in WAL mode;
//! a committed write survives the process being killed.
//!
//! # Per-user session index (opt-in)
//!
//! With [`SqliteStoreBuilder::principal_index`] on, the table gets one more
//! column, `principal TEXT` (nullable) with an index `"<table>_principal"`,
//! holding each record's [`Record::principal`]. [`SqliteStore::create_schema`]
//! adds both to an existing table as well. `create`, `save` and `save_if`
//! set it (NULL for a record without a principal), `touch` leaves it, and
//! [`Store::principal_sessions`] / [`Store::destroy_principal`] use it. Off
//! by default, so the table stays exactly connect-session-sequelize's. The
//! column is plain text even when the data is encrypted. Rows written by
//! Node (which never sets the column) are not in the index; a row whose
//! data a Node service rewrote for another principal is not listed by
//! `principal_sessions` (the decoded record is checked), but
//! `destroy_principal` goes by the column alone.
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! let store = SqliteStore::builder("sqlite::memory:").create_schema(true).connect().await?;
//! let record = Record::new(SessionId::generate());
//! store.create(&record).await?;
//! assert!(store.load(&record.id).await?.is_some());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sessionkit_core::encryption::{Codec, Encryption};
use sessionkit_core::meta;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    pruner, Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version,
    WriteOutcome, DEFAULT_TTL,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing::instrument;

/// Formats an instant as Sequelize writes `DATE` columns on SQLite.
pub fn format_date(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f +00:00").to_string()
}

/// Parses a Sequelize `DATE` column (`YYYY-MM-DD HH:MM:SS[.SSS] +00:00`, or
/// without the offset, read as UTC).
pub fn parse_date(s: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %:z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Refuses table names that would need escaping: `[A-Za-z_][A-Za-z0-9_]{0,62}`.
fn check_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(
            format!("table name {name:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 63)").into(),
        ))
    }
}

/// How often opening is tried while the file is locked by another opener.
const OPEN_ATTEMPTS: u32 = 50;

fn is_locked(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("locked") || db.message().contains("busy"))
}

fn db_err(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            Error::unavailable(context, e)
        }
        ref locked if is_locked(locked) => Error::unavailable(context, e),
        other => Error::backend(context, other),
    }
}

/// Configures a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    url: String,
    table: String,
    default_ttl: Duration,
    create_schema: bool,
    prune_interval: Option<Duration>,
    max_connections: u32,
    codec: Codec,
    principal_index: bool,
}

impl SqliteStoreBuilder {
    /// Table name (default `Sessions`, as connect-session-sequelize).
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// TTL for sessions whose cookie has no expiry (default one day).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Create the table and index on connect (default false; see
    /// [`SqliteStore::create_schema`]).
    pub fn create_schema(mut self, yes: bool) -> Self {
        self.create_schema = yes;
        self
    }

    /// Delete expired rows every `interval` in a background task (default:
    /// every 15 minutes; `None` disables it). The task logs errors and keeps
    /// going; it stops when the last clone of the store is dropped.
    pub fn prune_interval(mut self, interval: Option<Duration>) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Pool size for file databases (default 4). In-memory databases use one
    /// connection, since each SQLite connection would get its own database.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Encrypt session data at rest (see [`sessionkit_core::encryption`]).
    /// Node's store cannot read encrypted rows.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.codec = Codec::encrypted(encryption);
        self
    }

    /// Keep the per-user session index (default false; see the crate docs):
    /// a `principal` column, filled on every write, that
    /// [`Store::principal_sessions`] and [`Store::destroy_principal`] query.
    /// Off, both are [`Error::Unsupported`] and the table is
    /// connect-session-sequelize's unchanged. On, [`SqliteStore::create_schema`]
    /// (or [`create_schema(true)`](Self::create_schema)) must have run once
    /// against the table, since every write names the column.
    pub fn principal_index(mut self, on: bool) -> Self {
        self.principal_index = on;
        self
    }

    /// Opens (creating the file if needed) and returns the store.
    pub async fn connect(self) -> Result<SqliteStore> {
        check_identifier(&self.table)?;
        let in_memory = self.url.contains(":memory:") || self.url.contains("mode=memory");
        let url = if self.url.starts_with("sqlite:") {
            self.url.clone()
        } else {
            format!("sqlite://{}", self.url)
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| Error::Config(format!("bad SQLite URL {:?}: {e}", self.url).into()))?
            .create_if_missing(true)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let mut pool = SqlitePoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool = if in_memory {
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool.max_connections(self.max_connections)
        };
        // Switching a new file to WAL needs a moment alone with it: two
        // processes opening the same new file at once can get "database is
        // locked" from that switch (the busy timeout does not cover it). The
        // mode is stored in the file, so a retry finds it done.
        let mut attempt = 0;
        let pool = loop {
            attempt += 1;
            match pool.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if attempt < OPEN_ATTEMPTS && is_locked(&e) => {
                    tracing::debug!(attempt, "SQLite file busy while opening; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(db_err("open SQLite database")(e)),
            }
        };
        let inner = Arc::new(Inner {
            pool,
            table: self.table,
            default_ttl: self.default_ttl,
            principal_index: self.principal_index,
        });
        let store = SqliteStore {
            inner: inner.clone(),
            codec: self.codec.clone(),
            _pruner: None,
        };
        if self.create_schema {
            store.create_schema().await?;
        }
        let pruner = self.prune_interval.map(|every| {
            let plain: Arc<dyn Store> = Arc::new(SqliteStore {
                inner,
                codec: Codec::plain(),
                _pruner: None,
            });
            Arc::new(pruner::spawn(plain, every))
        });
        Ok(SqliteStore {
            _pruner: pruner,
            ..store
        })
    }
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    table: String,
    default_ttl: Duration,
    principal_index: bool,
}

/// The SQLite store. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    codec: Codec,
    _pruner: Option<Arc<pruner::Pruner>>,
}

impl SqliteStore {
    /// Configures a store for a URL (`sqlite://path/to/file.db`,
    /// `sqlite::memory:`) or a plain file path.
    pub fn builder(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            url: url.into(),
            table: "Sessions".into(),
            default_ttl: DEFAULT_TTL,
            create_schema: false,
            prune_interval: Some(Duration::from_secs(15 * 60)),
            max_connections: 4,
            codec: Codec::plain(),
            principal_index: false,
        }
    }

    /// The same store (same pool and table) reading and writing through
    /// `codec`: for example with encryption turned on, or off.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The connection pool (for inspection and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Creates the table and an index on `expires` if they do not exist.
    /// With [`SqliteStoreBuilder::principal_index`] on, also the `principal`
    /// column (added to an existing table that lacks it) and its index.
    /// Idempotent, and safe to run from several processes at once.
    pub async fn create_schema(&self) -> Result<()> {
        let t = &self.inner.table;
        let ddl = format!(
            r#"CREATE TABLE IF NOT EXISTS "{t}" (sid VARCHAR(36) PRIMARY KEY, expires DATETIME, data TEXT, "createdAt" DATETIME NOT NULL, "updatedAt" DATETIME NOT NULL);
CREATE INDEX IF NOT EXISTS "{t}_expires" ON "{t}" (expires);"#
        );
        sqlx::raw_sql(&ddl)
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("create schema"))?;
        if self.inner.principal_index {
            self.add_principal_column().await?;
        }
        Ok(())
    }

    /// Adds the `principal` column when the table lacks it, and its index.
    async fn add_principal_column(&self) -> Result<()> {
        let t = &self.inner.table;
        let pool = &self.inner.pool;
        let (has,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?) WHERE name = 'principal')",
        )
        .bind(t)
        .fetch_one(pool)
        .await
        .map_err(db_err("create schema"))?;
        if !has {
            let added = sqlx::query(&format!(r#"ALTER TABLE "{t}" ADD COLUMN principal TEXT"#))
                .execute(pool)
                .await;
            match added {
                Ok(_) => tracing::debug!(table = %t, "principal column added"),
                // Another process added it between the check and the ALTER.
                Err(sqlx::Error::Database(db)) if db.message().contains("duplicate column") => {}
                Err(e) => return Err(db_err("create schema")(e)),
            }
        }
        sqlx::query(&format!(
            r#"CREATE INDEX IF NOT EXISTS "{t}_principal" ON "{t}" (principal)"#
        ))
        .execute(pool)
        .await
        .map_err(db_err("create schema"))?;
        Ok(())
    }

    /// The principal column's value for `record`, when the index is kept.
    fn principal_of<'r>(&self, record: &'r Record) -> Option<Option<&'r str>> {
        self.inner.principal_index.then(|| record.principal())
    }

    /// The stored text of the live row of `id`: what `load` and
    /// `load_versioned` decode.
    async fn live_text(&self, id: &SessionId) -> Result<Option<String>> {
        let sql = format!(
            r#"SELECT data FROM "{}" WHERE sid = ? AND {LIVE}"#,
            self.inner.table
        );
        let row: Option<(Option<String>,)> = sqlx::query_as(&sql)
            .bind(id.as_str())
            .bind(format_date(&time::now()))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db_err("load"))?;
        let Some((data,)) = row else { return Ok(None) };
        data.map(Some).ok_or_else(|| Error::decode("data is NULL"))
    }

    /// Deletes the live row of `id` (a write whose expiry is already past).
    async fn delete_live(
        &self,
        id: &SessionId,
        now: &str,
        context: &'static str,
    ) -> Result<WriteOutcome> {
        let sql = format!(
            r#"DELETE FROM "{}" WHERE sid = ? AND {LIVE}"#,
            self.inner.table
        );
        let done = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(now)
            .execute(&self.inner.pool)
            .await
            .map_err(db_err(context))?;
        Ok(outcome(done.rows_affected()))
    }

    fn expiry(&self, expires: Option<Timestamp>, now: Timestamp) -> Timestamp {
        time::store_expiry(expires, self.inner.default_ttl, now)
    }
}

/// Rows deleted per statement by [`Store::delete_expired`].
pub const PRUNE_BATCH: u64 = 2000;
/// Pause between two prune batches, so waiting writers get the lock.
const PRUNE_PAUSE: Duration = Duration::from_millis(10);

/// A conditional write that matched no live row found the session gone.
fn outcome(rows_affected: u64) -> WriteOutcome {
    if rows_affected == 0 {
        WriteOutcome::Gone
    } else {
        WriteOutcome::Written
    }
}

const LIVE: &str = "(expires IS NULL OR expires > ?)";

#[async_trait]
impl Store for SqliteStore {
    #[instrument(skip_all, name = "sqlite.load")]
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        match self.live_text(id).await? {
            Some(data) => self.codec.decode(id.clone(), &data).map(Some),
            None => Ok(None),
        }
    }

    #[instrument(skip_all, name = "sqlite.create")]
    async fn create(&self, record: &Record) -> Result<()> {
        let now = time::now();
        let expires = self.expiry(record.cookie.expires, now);
        let (now_s, exp_s) = (format_date(&now), format_date(&expires));
        let t = &self.inner.table;
        if expires <= now {
            // Nothing to store; still report a live record with this id.
            return match self.load(&record.id).await? {
                Some(_) => Err(Error::Collision),
                None => Ok(()),
            };
        }
        let principal = self.principal_of(record);
        // ?6 is the principal, only named when the index is kept.
        let (col, val, set) = match principal {
            Some(_) => (", principal", ", ?6", ", principal = excluded.principal"),
            None => ("", "", ""),
        };
        let sql = format!(
            r#"INSERT INTO "{t}" (sid, expires, data, "createdAt", "updatedAt"{col}) VALUES (?1, ?2, ?3, ?4, ?4{val})
ON CONFLICT(sid) DO UPDATE SET expires = excluded.expires, data = excluded.data,
  "createdAt" = excluded."createdAt", "updatedAt" = excluded."updatedAt"{set}
WHERE "{t}".expires IS NOT NULL AND "{t}".expires <= ?5"#
        );
        let mut query = sqlx::query(&sql)
            .bind(record.id.as_str())
            .bind(&exp_s)
            .bind(self.codec.encode(record)?)
            .bind(&now_s)
            .bind(&now_s);
        if let Some(p) = principal {
            query = query.bind(p);
        }
        let done = query
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("create"))?;
        if done.rows_affected() == 0 {
            return Err(Error::Collision);
        }
        Ok(())
    }

    #[instrument(skip_all, name = "sqlite.save")]
    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let now = time::now();
        let expires = self.expiry(record.cookie.expires, now);
        let now_s = format_date(&now);
        if expires <= now {
            return self.delete_live(&record.id, &now_s, "save").await;
        }
        let principal = self.principal_of(record);
        let set = if principal.is_some() {
            ", principal = ?"
        } else {
            ""
        };
        let sql = format!(
            r#"UPDATE "{}" SET data = ?, expires = ?, "updatedAt" = ?{set} WHERE sid = ? AND {LIVE}"#,
            self.inner.table
        );
        let mut query = sqlx::query(&sql)
            .bind(self.codec.encode(record)?)
            .bind(format_date(&expires))
            .bind(&now_s);
        if let Some(p) = principal {
            query = query.bind(p);
        }
        let done = query
            .bind(record.id.as_str())
            .bind(&now_s)
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("save"))?;
        Ok(outcome(done.rows_affected()))
    }

    #[instrument(skip_all, name = "sqlite.touch")]
    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let now = time::now();
        let expires = self.expiry(expires, now);
        let now_s = format_date(&now);
        if expires <= now {
            return self.delete_live(id, &now_s, "touch").await;
        }
        let sql = format!(
            r#"UPDATE "{}" SET expires = ?, "updatedAt" = ? WHERE sid = ? AND {LIVE}"#,
            self.inner.table
        );
        let done = sqlx::query(&sql)
            .bind(format_date(&expires))
            .bind(&now_s)
            .bind(id.as_str())
            .bind(&now_s)
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("touch"))?;
        Ok(outcome(done.rows_affected()))
    }

    #[instrument(skip_all, name = "sqlite.destroy")]
    async fn destroy(&self, id: &SessionId) -> Result<()> {
        sqlx::query(&format!(
            r#"DELETE FROM "{}" WHERE sid = ?"#,
            self.inner.table
        ))
        .bind(id.as_str())
        .execute(&self.inner.pool)
        .await
        .map_err(db_err("destroy"))?;
        Ok(())
    }

    fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL.with_principal_index(self.inner.principal_index)
    }

    #[instrument(skip_all, name = "sqlite.principal_sessions")]
    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        if !self.inner.principal_index {
            return Err(Error::Unsupported("principal_index"));
        }
        let sql = format!(
            r#"SELECT sid, data FROM "{}" WHERE principal = ? AND {LIVE}"#,
            self.inner.table
        );
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(&sql)
            .bind(principal)
            .bind(format_date(&time::now()))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db_err("principal sessions"))?;
        // Another program may have rewritten the data, not the column.
        let (records, skipped) = meta::of_principal(
            principal,
            rows.into_iter().map(|(sid, data)| {
                SessionId::parse(&sid)
                    .ok()
                    .zip(data)
                    .and_then(|(id, data)| self.codec.decode(id, &data).ok())
            }),
        );
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "indexed rows that are not readable sessions were skipped"
            );
        }
        Ok(records)
    }

    #[instrument(skip_all, name = "sqlite.destroy_principal")]
    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        if !self.inner.principal_index {
            return Err(Error::Unsupported("principal_index"));
        }
        let sql = format!(
            r#"DELETE FROM "{}" WHERE principal = ? AND sid IS NOT ? AND {LIVE}"#,
            self.inner.table
        );
        let done = sqlx::query(&sql)
            .bind(principal)
            .bind(keep.map(SessionId::as_str))
            .bind(format_date(&time::now()))
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("destroy principal"))?;
        Ok(done.rows_affected())
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let sql = format!(r#"SELECT sid FROM "{}" WHERE {LIVE}"#, self.inner.table);
        let rows: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(format_date(&time::now()))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db_err("ids"))?;
        // Rows written by others with ids we would refuse are skipped.
        Ok(rows
            .into_iter()
            .filter_map(|(sid,)| SessionId::parse(&sid).ok())
            .collect())
    }

    async fn count(&self) -> Result<u64> {
        let sql = format!(
            r#"SELECT COUNT(*) FROM "{}" WHERE {LIVE}"#,
            self.inner.table
        );
        let (n,): (i64,) = sqlx::query_as(&sql)
            .bind(format_date(&time::now()))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db_err("count"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn clear(&self) -> Result<()> {
        sqlx::query(&format!(r#"DELETE FROM "{}""#, self.inner.table))
            .execute(&self.inner.pool)
            .await
            .map_err(db_err("clear"))?;
        Ok(())
    }

    #[instrument(skip_all, name = "sqlite.load_versioned")]
    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let Some(data) = self.live_text(id).await? else {
            return Ok(None);
        };
        let record = self.codec.decode(id.clone(), &data)?;
        Ok(Some((record, Version::new(data))))
    }

    #[instrument(skip_all, name = "sqlite.save_if")]
    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let now = time::now();
        let expires = self.expiry(record.cookie.expires, now);
        let t = &self.inner.table;
        let json = self.codec.encode(record)?;
        let done = if expires <= now {
            sqlx::query(&format!(r#"DELETE FROM "{t}" WHERE sid = ? AND data = ? AND {LIVE}"#))
                .bind(record.id.as_str())
                .bind(expected.as_str())
                .bind(format_date(&now))
                .execute(&self.inner.pool)
                .await
        } else {
            let principal = self.principal_of(record);
            let set = if principal.is_some() { ", principal = ?" } else { "" };
            let sql = format!(
                r#"UPDATE "{t}" SET data = ?, expires = ?, "updatedAt" = ?{set} WHERE sid = ? AND data = ? AND {LIVE}"#
            );
            let mut query = sqlx::query(&sql)
                .bind(&json)
                .bind(format_date(&expires))
                .bind(format_date(&now));
            if let Some(p) = principal {
                query = query.bind(p);
            }
            query
                .bind(record.id.as_str())
                .bind(expected.as_str())
                .bind(format_date(&now))
                .execute(&self.inner.pool)
                .await
        }
        .map_err(db_err("save_if"))?;
        if done.rows_affected() > 0 {
            return Ok(CasOutcome::Written(Version::new(json)));
        }
        // Nothing matched: tell a changed record from a missing one.
        Ok(match self.load_versioned(&record.id).await {
            Ok(Some(_)) | Err(Error::Decode(_)) => CasOutcome::Conflict,
            Ok(None) => CasOutcome::Gone,
            Err(e) => return Err(e),
        })
    }

    /// Deletes in batches of [`PRUNE_BATCH`] rows with a short pause
    /// between them: one big `DELETE` holds SQLite's single write lock for
    /// the whole statement (measured: 1,000,000 expired rows blocked every
    /// save for 2.15 s; in batches the worst request waited 250 ms).
    #[instrument(skip_all, name = "sqlite.delete_expired")]
    async fn delete_expired(&self) -> Result<u64> {
        let t = &self.inner.table;
        let sql = format!(
            r#"DELETE FROM "{t}" WHERE rowid IN (SELECT rowid FROM "{t}" WHERE expires <= ? LIMIT {PRUNE_BATCH})"#
        );
        let now = format_date(&time::now());
        let mut total = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(&now)
                .execute(&self.inner.pool)
                .await
                .map_err(db_err("delete expired"))?;
            total += done.rows_affected();
            if done.rows_affected() < PRUNE_BATCH {
                return Ok(total);
            }
            tokio::time::sleep(PRUNE_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_sequelize_and_sort_as_text() {
        let a = time::from_millis(1_795_744_481_837);
        assert_eq!(format_date(&a), "2026-11-27 01:54:41.837 +00:00");
        assert_eq!(parse_date("2026-11-27 01:54:41.837 +00:00"), Some(a));
        assert_eq!(parse_date("2026-11-27 01:54:41.837"), Some(a));
        let b = time::from_millis(1_795_744_481_838);
        assert!(format_date(&a) < format_date(&b));
        assert_eq!(parse_date("tomorrow"), None);
    }

    #[test]
    fn table_names_are_checked() {
        assert!(check_identifier("Sessions").is_ok());
        assert!(check_identifier("my_sessions2").is_ok());
        for bad in ["", "1abc", "a\"b", "a b", "a;drop", &"x".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }
}

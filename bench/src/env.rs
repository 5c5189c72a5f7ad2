//! The servers, namespaces and store constructors every section shares.
//!
//! Namespaces: Redis keys under `bench:` (plus the ids the peers' stores
//! wrote, which have no prefix option in the Node app or in
//! tower-sessions-redis-store: they are deleted one by one afterwards);
//! PostgreSQL in a database of its own, `session_bench`, created at the
//! start and dropped at the end; MySQL/MariaDB likewise in a database
//! `session_bench`; SQLite files in a temporary directory.
//! Every record is written with a one-hour expiry, so nothing outlives a
//! crashed run by long.

use anyhow::{bail, Context, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use sessionkit_mysql::MySqlStore;
use sessionkit_postgres::PostgresStore;
use sessionkit_redis::RedisStore;
use sessionkit_sqlite::SqliteStore;

/// The database the PostgreSQL contenders use; dropped afterwards.
pub const PG_DATABASE: &str = "session_bench";

/// The MySQL database the MySQL contenders use; dropped afterwards.
pub const MYSQL_DATABASE: &str = "session_bench";

/// The MongoDB database the Mongo contenders use; dropped afterwards.
pub const MONGO_DATABASE: &str = "session_bench";

/// PostgreSQL pool size, the store's default, given to every contender alike.
pub const PG_POOL: u32 = 10;
/// MySQL pool size, the store's default, given to every contender alike.
pub const MYSQL_POOL: u32 = 10;
/// SQLite pool size, given to every contender alike.
pub const SQLITE_POOL: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    Redis,
    Postgres,
    Mongo,
    Mysql,
}

impl Backend {
    pub const ALL: [Backend; 6] = [
        Backend::Memory,
        Backend::Sqlite,
        Backend::Redis,
        Backend::Postgres,
        Backend::Mongo,
        Backend::Mysql,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::Mongo => "mongo",
            Backend::Mysql => "mysql",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match Backend::ALL.into_iter().find(|b| b.name() == s) {
            Some(b) => Ok(b),
            None => bail!("unknown backend {s:?}"),
        }
    }
}

pub struct Env {
    /// The repository root (for the Node app).
    pub root: PathBuf,
    /// SQLite files live here; removed at the end.
    pub tmp: PathBuf,
    pub redis_url: Option<String>,
    pub mongo_url: Option<String>,
    pg_admin_url: Option<String>,
    /// The URL of [`PG_DATABASE`], once created.
    pub pg_url: Option<String>,
    mysql_admin_url: Option<String>,
    /// The URL of [`MYSQL_DATABASE`], once created.
    pub mysql_url: Option<String>,
    pub backends: Vec<Backend>,
    /// Why a backend is missing, for the report.
    pub missing: Vec<String>,
    /// Redis keys written outside `bench:` (the peers' sessions).
    pub extra_redis_keys: std::sync::Mutex<Vec<String>>,
}

/// `url` with its database (path) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> Result<String> {
    let scheme_end = url.find("://").context("no scheme in the PostgreSQL URL")? + 3;
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_end = head[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(head.len());
    Ok(format!("{}/{db}{query}", &head[..authority_end]))
}

/// Runs `statements`, one by one, on a connection of its own to the server
/// `options` names (at most 10 s to connect). For creating and dropping the
/// bench's databases, which PostgreSQL refuses inside a transaction.
async fn admin_sql<O>(options: O, statements: &[&str]) -> Result<()>
where
    O: ConnectOptions,
    O::Connection: Sized,
    for<'c> &'c mut O::Connection: sqlx::Executor<'c>,
{
    let mut conn = tokio::time::timeout(Duration::from_secs(10), options.connect()).await??;
    for sql in statements {
        sqlx::raw_sql(sql).execute(&mut conn).await?;
    }
    conn.close().await.ok();
    Ok(())
}

impl Env {
    pub async fn new(backends: Vec<Backend>) -> Result<Env> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("bench/ has no parent")?
            .to_path_buf();
        let tmp = std::env::temp_dir().join(format!("session-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut env = Env {
            root,
            tmp,
            redis_url: var("REDIS_URL"),
            mongo_url: var("MONGODB_URL"),
            pg_admin_url: var("DATABASE_URL"),
            pg_url: None,
            mysql_admin_url: var("MYSQL_URL"),
            mysql_url: None,
            backends: Vec::new(),
            missing: Vec::new(),
            extra_redis_keys: Default::default(),
        };
        for b in backends {
            let ok = match b {
                Backend::Memory | Backend::Sqlite => Ok(()),
                Backend::Redis => env.check_redis().await,
                Backend::Postgres => env.create_pg_database().await,
                Backend::Mongo => env.check_mongo().await,
                Backend::Mysql => env.create_mysql_database().await,
            };
            match ok {
                Ok(()) => env.backends.push(b),
                Err(e) => {
                    eprintln!("bench: {} skipped: {e:#}", b.name());
                    env.missing.push(format!("{}: {e:#}", b.name()));
                }
            }
        }
        Ok(env)
    }

    pub fn backends(&self) -> Vec<Backend> {
        self.backends.clone()
    }

    pub fn has(&self, b: Backend) -> bool {
        self.backends.contains(&b)
    }

    async fn check_redis(&self) -> Result<()> {
        let url = self.redis_url.as_deref().context("REDIS_URL is not set")?;
        let mut conn = self.redis_conn_to(url).await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn check_mongo(&self) -> Result<()> {
        let db = self.mongo_db().await?;
        tokio::time::timeout(
            Duration::from_secs(20),
            db.run_command(mongodb::bson::doc! { "ping": 1 }),
        )
        .await??;
        // A database of its own, dropped at the end (and now, if a crashed run left it).
        db.drop().await?;
        Ok(())
    }

    /// The bench's MongoDB database on a client with the driver's default
    /// options (pool of 10), which is what our store uses too.
    pub async fn mongo_db(&self) -> Result<mongodb::Database> {
        let url = self
            .mongo_url
            .as_deref()
            .context("MONGODB_URL is not set")?;
        let mut options = mongodb::options::ClientOptions::parse(url).await?;
        options.connect_timeout = Some(Duration::from_secs(10));
        options.server_selection_timeout = Some(Duration::from_secs(10));
        Ok(mongodb::Client::with_options(options)?.database(MONGO_DATABASE))
    }

    /// Our MongoDB store on `collection` in the bench database.
    pub async fn mongo_store(&self, collection: &str) -> Result<sessionkit_mongo::MongoStore> {
        let url = self
            .mongo_url
            .as_deref()
            .context("MONGODB_URL is not set")?;
        Ok(sessionkit_mongo::MongoStore::builder(url)
            .database(MONGO_DATABASE)
            .collection(collection)
            .create_indexes(true)
            .connect()
            .await?)
    }

    async fn create_pg_database(&mut self) -> Result<()> {
        let admin = self
            .pg_admin_url
            .as_deref()
            .context("DATABASE_URL is not set")?;
        admin_sql(
            PgConnectOptions::from_str(admin)?,
            &[
                &format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"),
                &format!("CREATE DATABASE {PG_DATABASE}"),
            ],
        )
        .await?;
        self.pg_url = Some(with_database(admin, PG_DATABASE)?);
        Ok(())
    }

    async fn create_mysql_database(&mut self) -> Result<()> {
        let admin = self
            .mysql_admin_url
            .as_deref()
            .context("MYSQL_URL is not set")?;
        admin_sql(
            MySqlConnectOptions::from_str(admin)?,
            &[
                &format!("DROP DATABASE IF EXISTS {MYSQL_DATABASE}"),
                &format!("CREATE DATABASE {MYSQL_DATABASE}"),
            ],
        )
        .await?;
        self.mysql_url = Some(with_database(admin, MYSQL_DATABASE)?);
        Ok(())
    }

    fn mysql(&self) -> Result<&str> {
        self.mysql_url.as_deref().context("no MySQL database")
    }

    /// Our MySQL store on `table` in the bench database (pool of [`MYSQL_POOL`]).
    pub async fn mysql_store(&self, table: &str) -> Result<MySqlStore> {
        Ok(MySqlStore::builder(self.mysql()?)
            .table(table)
            .max_connections(MYSQL_POOL)
            .create_schema(true)
            .prune_interval(None)
            .connect()
            .await?)
    }

    /// A pool with the settings our MySQL store uses.
    pub fn mysql_pool(&self) -> Result<MySqlPool> {
        let options = MySqlConnectOptions::from_str(self.mysql()?)?;
        Ok(MySqlPoolOptions::new()
            .max_connections(MYSQL_POOL)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options))
    }

    fn pg(&self) -> Result<&str> {
        self.pg_url.as_deref().context("no PostgreSQL database")
    }

    fn redis(&self) -> Result<&str> {
        self.redis_url.as_deref().context("REDIS_URL is not set")
    }

    pub fn sqlite_path(&self, file: &str) -> String {
        self.tmp.join(file).display().to_string()
    }

    /// Our SQLite store on `file` (pool of [`SQLITE_POOL`], WAL, no prune task).
    pub async fn sqlite_store(&self, file: &str) -> Result<SqliteStore> {
        Ok(SqliteStore::builder(self.sqlite_path(file))
            .max_connections(SQLITE_POOL)
            .create_schema(true)
            .prune_interval(None)
            .connect()
            .await?)
    }

    /// A pool with the settings our SQLite store uses.
    pub async fn sqlite_pool(&self, file: &str) -> Result<SqlitePool> {
        let options =
            SqliteConnectOptions::from_str(&format!("sqlite://{}", self.sqlite_path(file)))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
        Ok(SqlitePoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(SQLITE_POOL)
            .connect_with(options)
            .await?)
    }

    /// Our Redis store under `prefix` (one multiplexed connection).
    pub async fn redis_store(&self, prefix: &str) -> Result<RedisStore> {
        Ok(RedisStore::builder(self.redis()?)
            .prefix(prefix)
            .connect()
            .await?)
    }

    async fn redis_conn_to(&self, url: &str) -> Result<redis::aio::ConnectionManager> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(sessionkit_redis::DEFAULT_CONNECT_TIMEOUT)
            .set_response_timeout(sessionkit_redis::DEFAULT_RESPONSE_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(500);
        Ok(tokio::time::timeout(
            sessionkit_redis::DEFAULT_CONNECT_TIMEOUT,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await??)
    }

    /// A connection with the settings our Redis store uses.
    pub async fn redis_conn(&self) -> Result<redis::aio::ConnectionManager> {
        self.redis_conn_to(self.redis()?).await
    }

    /// Our PostgreSQL store on `table` in the bench database (pool of [`PG_POOL`]).
    pub async fn postgres_store(&self, table: &str) -> Result<PostgresStore> {
        Ok(PostgresStore::builder(self.pg()?)
            .table(table)
            .max_connections(PG_POOL)
            .create_schema(true)
            .prune_interval(None)
            .connect()
            .await?)
    }

    /// A pool with the settings our PostgreSQL store uses.
    pub fn pg_pool(&self) -> Result<PgPool> {
        let options = PgConnectOptions::from_str(self.pg()?)?.application_name("session-bench");
        Ok(PgPoolOptions::new()
            .max_connections(PG_POOL)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options))
    }

    /// The bench database's URL, for the Node app.
    pub fn pg_bench_url(&self) -> Option<&str> {
        self.pg_url.as_deref()
    }

    /// Removes everything the run wrote.
    pub async fn cleanup(&self) {
        if let Some(url) = self.redis_url.as_deref() {
            if let Err(e) = self.cleanup_redis(url).await {
                eprintln!("bench: cleaning Redis failed: {e:#}");
            }
        }
        if let (Some(admin), Some(_)) = (self.pg_admin_url.as_deref(), self.pg_url.as_deref()) {
            let dropped = async {
                let sql = format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)");
                admin_sql(PgConnectOptions::from_str(admin)?, &[&sql]).await
            };
            if let Err(e) = dropped.await {
                eprintln!("bench: dropping {PG_DATABASE} failed: {e:#}");
            }
        }
        if let (Some(admin), Some(_)) = (self.mysql_admin_url.as_deref(), self.mysql_url.as_deref())
        {
            let dropped = async {
                let sql = format!("DROP DATABASE IF EXISTS {MYSQL_DATABASE}");
                admin_sql(MySqlConnectOptions::from_str(admin)?, &[&sql]).await
            };
            if let Err(e) = dropped.await {
                eprintln!("bench: dropping {MYSQL_DATABASE} failed: {e:#}");
            }
        }
        if self.has(Backend::Mongo) {
            let dropped = async { anyhow::Ok(self.mongo_db().await?.drop().await?) };
            if let Err(e) = dropped.await {
                eprintln!("bench: dropping the MongoDB database {MONGO_DATABASE} failed: {e:#}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }

    async fn cleanup_redis(&self, url: &str) -> Result<()> {
        let mut conn = self.redis_conn_to(url).await?;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("bench:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.extend(
            self.extra_redis_keys
                .lock()
                .map(|k| k.clone())
                .unwrap_or_default(),
        );
        for batch in keys.chunks(500) {
            let _: i64 = redis::cmd("DEL").arg(batch).query_async(&mut conn).await?;
        }
        eprintln!("bench: deleted {} Redis keys", keys.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced() {
        let u = |s: &str| with_database(s, "b").unwrap();
        assert_eq!(
            u("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            u("postgres://u:p@h/test?sslmode=disable"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(u("postgres://h:5432"), "postgres://h:5432/b");
    }
}

//! Swap the session store by configuration: [`connect`] turns a URL (for
//! example `SESSION_STORE_URL`) into an `Arc<dyn Store>`.
//!
//! | URL | backend | cargo feature |
//! |---|---|---|
//! | `memory://` | in-process ([`store_memory`]) | `memory` (default) |
//! | `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` | SQLite file or in-memory | `sqlite` (default) |
//! | `redis://…`, `rediss://…` | Redis | `redis` |
//! | `postgres://…`, `postgresql://…` | PostgreSQL | `postgres` |
//! | `mongodb://…`, `mongodb+srv://…` | MongoDB | `mongo` |
//!
//! Options go in the query string; the store's own options are taken out,
//! the rest is passed to the driver (server backends) or refused (memory,
//! SQLite, except SQLite's own `mode`, `cache`, `immutable`, `vfs`).
//!
//! | option | applies to | meaning | default |
//! |---|---|---|---|
//! | `ttl` | all | seconds a session lives when its cookie has no expiry | `86400` |
//! | `capacity` | memory | maximum number of sessions | unbounded |
//! | `prefix` | redis | key prefix | `sess:` |
//! | `table` | sqlite, postgres | table name | `Sessions` / `session` |
//! | `schema` | postgres | schema name | `public` |
//! | `collection` | mongo | collection name | `sessions` |
//! | `database` | mongo | database name (else the URL's, else `test`) | URL's |
//! | `create_schema` | sqlite, postgres, mongo | create table / index on start | `true` |
//! | `prune_interval` | sqlite, postgres | seconds between expired-row sweeps, `0` = off | `900` |
//! | `connect_timeout` | redis, postgres, mongo | seconds to wait for the server | `10` |
//!
//! An unknown scheme, a backend whose feature is off, an unknown or bad
//! option is an [`Error::Config`] naming the problem.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), session_core::Error> {
//! let store = session_stores::connect("sqlite::memory:?ttl=3600").await?;
//! assert!(store.capabilities().count);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use session_core::{Error, Result, Store};
use std::borrow::Cow;
use std::sync::Arc;
#[allow(unused_imports)]
use std::time::Duration;

/// A URL taken apart: scheme, the part before `?`, and the query pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    scheme: String,
    base: String,
    options: Vec<(String, String)>,
}

fn config(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::Config(msg.into())
}

impl StoreUrl {
    /// Splits a store URL. Credentials in it are never echoed in errors.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let scheme_end = url.find(':').ok_or_else(|| {
            config("store URL has no scheme (expected e.g. sqlite://sessions.db)")
        })?;
        let scheme = url[..scheme_end].to_ascii_lowercase();
        let (base, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q + 1..]),
            None => (url, ""),
        };
        let mut options = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| config(format!("option {k:?} is not valid UTF-8 once decoded")))
            };
            options.push((decode(k)?, decode(v)?));
        }
        Ok(StoreUrl {
            scheme,
            base: base.to_owned(),
            options,
        })
    }

    /// The scheme, lowercased (`sqlite`, `redis`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Takes an option out of the query.
    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.options.iter().position(|(k, _)| k == key)?;
        Some(self.options.remove(i).1)
    }

    #[allow(dead_code)]
    fn take_secs(&mut self, key: &str) -> Result<Option<Duration>> {
        self.take(key)
            .map(|v| {
                v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                    config(format!(
                        "option {key}={v:?} is not a whole number of seconds"
                    ))
                })
            })
            .transpose()
    }

    #[allow(dead_code)]
    fn take_bool(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(config(format!("option {key}={v:?} is not true or false"))),
        }
    }

    #[allow(dead_code)]
    fn take_usize(&mut self, key: &str) -> Result<Option<usize>> {
        self.take(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| config(format!("option {key}={v:?} is not a whole number")))
            })
            .transpose()
    }

    /// Refuses options nobody consumed.
    #[allow(dead_code)]
    fn finish(&self) -> Result<()> {
        match self.options.first() {
            None => Ok(()),
            Some((k, _)) => Err(config(format!(
                "unknown option {k:?} for a {} store URL",
                self.scheme
            ))),
        }
    }

    /// The base URL with the options nobody consumed (driver options) put back.
    #[allow(dead_code)]
    fn driver_url(&self) -> String {
        if self.options.is_empty() {
            return self.base.clone();
        }
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let q: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        format!("{}?{}", self.base, q.join("&"))
    }
}

// Used only by the stubs of backends whose feature is off.
#[allow(dead_code)]
fn feature_off(backend: &str, feature: &str) -> Error {
    config(format!(
        "{backend} store URLs need session-stores' `{feature}` cargo feature, which is off in this build"
    ))
}

/// Connects to the store a URL names. See the crate docs for schemes and options.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let mut u = StoreUrl::parse(url)?;
    match u.scheme.as_str() {
        "memory" => memory(&mut u),
        "sqlite" => sqlite(&mut u).await,
        "redis" | "rediss" => redis(&mut u).await,
        "postgres" | "postgresql" => postgres(&mut u).await,
        "mongodb" | "mongodb+srv" => mongo(&mut u).await,
        other => Err(config(format!(
            "unknown store URL scheme {other:?}; expected memory, sqlite, redis, rediss, postgres, mongodb"
        ))),
    }
}

#[cfg(feature = "memory")]
fn memory(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let mut b = store_memory::MemoryStore::builder();
    if let Some(ttl) = u.take_secs("ttl")? {
        b = b.default_ttl(ttl);
    }
    if let Some(cap) = u.take_usize("capacity")? {
        b = b.capacity(cap);
    }
    u.finish()?;
    Ok(Arc::new(b.build()))
}

#[cfg(not(feature = "memory"))]
fn memory(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("memory", "memory"))
}

#[cfg(feature = "sqlite")]
async fn sqlite(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let path = u
        .base
        .strip_prefix("sqlite://")
        .or_else(|| u.base.strip_prefix("sqlite:"))
        .unwrap_or_default()
        .to_owned();
    if path.is_empty() {
        return Err(config(
            "sqlite store URL has no path (expected sqlite://sessions.db or sqlite::memory:)",
        ));
    }
    let ttl = u.take_secs("ttl")?;
    let table = u.take("table");
    let create = u.take_bool("create_schema", true)?;
    let prune = u.take_secs("prune_interval")?;
    // SQLite's own URL options go to sqlx.
    let mut passthrough = Vec::new();
    for key in ["mode", "cache", "immutable", "vfs"] {
        if let Some(v) = u.take(key) {
            passthrough.push(format!("{key}={v}"));
        }
    }
    u.finish()?;
    let url = if path == ":memory:" {
        "sqlite::memory:".to_owned()
    } else {
        format!("sqlite://{path}")
    };
    let url = if passthrough.is_empty() {
        url
    } else {
        format!("{url}?{}", passthrough.join("&"))
    };
    let mut b = store_sqlite::SqliteStore::builder(url).create_schema(create);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(t) = table {
        b = b.table(t);
    }
    if let Some(p) = prune {
        b = b.prune_interval((!p.is_zero()).then_some(p));
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("sqlite", "sqlite"))
}

#[cfg(feature = "redis")]
async fn redis(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let ttl = u.take_secs("ttl")?;
    let prefix = u.take("prefix");
    let timeout = u.take_secs("connect_timeout")?;
    let mut b = store_redis::RedisStore::builder(u.driver_url());
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(p) = prefix {
        b = b.prefix(p);
    }
    if let Some(t) = timeout {
        b = b.connect_timeout(t);
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "redis"))]
async fn redis(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("redis", "redis"))
}

#[cfg(feature = "postgres")]
async fn postgres(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let ttl = u.take_secs("ttl")?;
    let table = u.take("table");
    let schema = u.take("schema");
    let create = u.take_bool("create_schema", true)?;
    let prune = u.take_secs("prune_interval")?;
    let timeout = u.take_secs("connect_timeout")?;
    let mut b = store_postgres::PostgresStore::builder(u.driver_url()).create_schema(create);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(t) = table {
        b = b.table(t);
    }
    if let Some(s) = schema {
        b = b.schema(s);
    }
    if let Some(p) = prune {
        b = b.prune_interval((!p.is_zero()).then_some(p));
    }
    if let Some(t) = timeout {
        b = b.connect_timeout(t);
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("postgres", "postgres"))
}

#[cfg(feature = "mongo")]
async fn mongo(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let ttl = u.take_secs("ttl")?;
    let collection = u.take("collection");
    let database = u.take("database");
    let create = u.take_bool("create_schema", true)?;
    let timeout = u.take_secs("connect_timeout")?;
    let mut b = store_mongo::MongoStore::builder(u.driver_url()).create_indexes(create);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(c) = collection {
        b = b.collection(c);
    }
    if let Some(d) = database {
        b = b.database(d);
    }
    if let Some(t) = timeout {
        b = b.connect_timeout(t);
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "mongo"))]
async fn mongo(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("mongodb", "mongo"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_base_and_options() -> Result<()> {
        let u = StoreUrl::parse("redis://user:pw@127.0.0.1:6379/2?prefix=app%3A&ttl=60")?;
        assert_eq!(u.scheme(), "redis");
        assert_eq!(u.base, "redis://user:pw@127.0.0.1:6379/2");
        assert_eq!(
            u.options,
            vec![
                ("prefix".into(), "app:".into()),
                ("ttl".into(), "60".into())
            ]
        );
        assert!(StoreUrl::parse("no-scheme-here").is_err());
        Ok(())
    }

    #[test]
    fn option_values_are_checked() -> Result<()> {
        let mut u = StoreUrl::parse("memory://?ttl=soon&create_schema=maybe")?;
        assert!(u.take_secs("ttl").is_err());
        assert!(u.take_bool("create_schema", true).is_err());
        Ok(())
    }

    #[test]
    fn driver_url_keeps_unconsumed_options() -> Result<()> {
        let mut u = StoreUrl::parse("postgres://h/db?sslmode=disable&table=s")?;
        assert_eq!(u.take("table").as_deref(), Some("s"));
        assert_eq!(u.driver_url(), "postgres://h/db?sslmode=disable");
        Ok(())
    }
}

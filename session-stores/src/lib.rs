//! Swap the session store by configuration: [`connect`] turns a URL (for
//! example `SESSION_STORE_URL`) into an `Arc<dyn Store>`.
//!
//! | URL | backend | cargo feature |
//! |---|---|---|
//! | `memory://` | in-process ([`sessionkit_memory`]) | `memory` (default) |
//! | `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` | SQLite file or in-memory | `sqlite` (default) |
//! | `redis://…`, `rediss://…` | Redis | `redis` |
//! | `redis+cluster://[user:pass@]host:port,host:port,…/` (`rediss+cluster://` for TLS) | Redis Cluster: some nodes, the rest are discovered | `redis` |
//! | `redis+sentinel://[user:pass@]host:port,host:port,…/master[/db]` (`rediss+sentinel://` for TLS) | the master the Sentinels at these addresses know as `master` | `redis` |
//! | `postgres://…`, `postgresql://…` | PostgreSQL | `postgres` |
//! | `mongodb://…`, `mongodb+srv://…` | MongoDB | `mongo` |
//! | `mysql://…`, `mariadb://…` | MySQL / MariaDB | `mysql` |
//!
//! Options go in the query string. This crate's options are taken out;
//! the driver's own (listed below) stay in the URL for it; anything else
//! is refused at [`connect`] with an [`Error::Config`] that lists the
//! valid options (MongoDB's driver checks its own options the same way).
//! Durations are whole seconds, or milliseconds with `ms` (`1500ms`).
//!
//! | option | applies to | meaning | default |
//! |---|---|---|---|
//! | `ttl` | all | seconds a session lives when its cookie has no expiry | `86400` |
//! | `hashed_ids` | all | keep records under SHA-256 of their ids ([`HashedIds`]) | `false` |
//! | `capacity` | memory | maximum number of sessions | unbounded |
//! | `prefix` | redis | key prefix | `sess:` |
//! | `table` | sqlite, postgres, mysql | table name | `Sessions` / `session` / `sessions` |
//! | `schema` | postgres | schema name | `public` |
//! | `time_zone` | postgres | zone `expire` is written in: the `TimeZone` of the Node app's connections when sharing the table | `UTC` |
//! | `columns` | mysql | `session_id,expires,data` column names (express-mysql-session's `columnNames`) | those |
//! | `collection` | mongo | collection name | `sessions` |
//! | `database` | mongo | database name (else the URL's, else `test`) | URL's |
//! | `stringify` | mongo | `false` writes `session` as an embedded document, as connect-mongo with `stringify: false` (both shapes are always read) | `true` |
//! | `create_schema` | sqlite, postgres, mongo, mysql | create table / index on start | `true` |
//! | `principal_index` | sqlite, postgres, mysql | keep the per-user session index (adds a `principal` column; off keeps the Node table as it is) | `false` |
//! | `principal_index` | redis (all three) | keep the per-user session index (a SET per principal) | `true` |
//! | `principal_prefix` | redis | key prefix of the per-user index sets | `prefix` with its final `:` replaced by `-principal:` |
//! | `scan_count` | redis | `COUNT` hint of the `SCAN`s behind ids/count/clear | `100` |
//! | `prune_interval` | sqlite, postgres, mysql | seconds between expired-row sweeps, `0` = off | `900` |
//! | `max_connections` | sqlite, postgres, mysql | connection pool size | `4` / `10` / `10` |
//! | `connect_timeout` | redis, postgres, mongo, mysql | connecting, and waiting for a pooled connection | `10` |
//! | `operation_timeout` | redis, postgres, mongo, mysql | every store operation; past it [`Error::Unavailable`] (the middleware's 503). Redis: each command (`response_timeout` is an older name); PostgreSQL/MySQL also set the server's lock timeouts to it | `5` |
//! | `tls_ca` | redis (`rediss://`, `rediss+cluster://`) | PEM file of the CAs to trust instead of the platform's roots | platform + Mozilla roots |
//! | `tls_insecure` | redis (`rediss…`) | skip certificate verification (tests only; logs a warning) | `false` |
//! | `sentinel_password` | redis+sentinel | password of the Sentinels themselves | none |
//!
//! The drivers' own options, passed through:
//!
//! | backend | options |
//! |---|---|
//! | sqlite | `mode`, `cache`, `immutable`, `vfs` |
//! | redis (one node) | `protocol` (`resp2`, `resp3`) |
//! | postgres | `sslmode` (`disable`, `allow`, `prefer` (default), `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert`, `sslkey` (and their `ssl-…` spellings), `application_name`, `options`, `statement-cache-capacity`, `host`, `hostaddr`, `port`, `dbname`, `user`, `password` |
//! | mysql | `ssl-mode` (`DISABLED`, `PREFERRED` (default), `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`), `ssl-ca`, `ssl-cert`, `ssl-key` (and `sslmode`, `sslca`, …), `charset`, `collation`, `statement-cache-capacity`, `socket`, `timezone` |
//! | mongo | the MongoDB URI options (`tls`, `tlsCAFile`, `tlsCertificateKeyFile`, `replicaSet`, `authSource`, `maxPoolSize`, …) |
//!
//! # TLS
//!
//! With the `tls-rustls` feature (default) every server backend speaks TLS
//! through rustls: `rediss://…[?tls_ca=PATH]`,
//! `postgres://…?sslmode=verify-full&sslrootcert=PATH`,
//! `mysql://…?ssl-mode=VERIFY_IDENTITY&ssl-ca=PATH`,
//! `mongodb://…?tls=true&tlsCAFile=PATH`. A URL that requires TLS connects
//! over TLS or fails at [`connect`] with an [`Error::Config`] naming the
//! option (a refused certificate, an unreadable CA file, a server without
//! TLS); it never falls back to cleartext. Without the feature such a URL
//! is refused before connecting, naming the feature. (MongoDB's driver
//! always has TLS.)
//!
//! In `redis+cluster` URLs the credentials apply to every node; a host
//! without a port gets 6379. In `redis+sentinel` URLs the credentials and
//! the database number apply to the master; a Sentinel without a port gets
//! 26379.
//!
//! Encryption keys never go in the URL: [`connect_with`] takes them in an
//! [`AtRest`], which [`AtRest::from_env`] fills from
//! `SESSION_ENCRYPTION_KEYS` (comma-separated base64 keys, first seals).
//!
//! An unknown scheme, a backend whose feature is off, an unknown or bad
//! option is an [`Error::Config`] naming the problem.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! let store = sessionkit_stores::connect("sqlite::memory:?ttl=3600").await?;
//! assert!(store.capabilities().count);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use sessionkit_core::encryption::{Encryption, Key};
use sessionkit_core::{Error, HashedIds, Result, Store};
use std::borrow::Cow;
use std::sync::Arc;
#[allow(unused_imports)]
use std::time::Duration;

/// A URL taken apart: scheme, the part before `?`, and the query pairs.
/// Its `Debug` output hides passwords (userinfo and every option whose name
/// contains `password`).
#[derive(Clone)]
pub struct StoreUrl {
    scheme: String,
    base: String,
    options: Vec<(String, String)>,
    /// From [`AtRest`], applied by each server backend.
    encryption: Option<Encryption>,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("password");
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("StoreUrl")
            .field("scheme", &self.scheme)
            .field("base", &redact(&self.base))
            .field("options", &options)
            .field("encryption", &self.encryption.is_some())
            .finish()
    }
}

/// `url` for logs and errors: the password of its userinfo
/// (`user:PASSWORD@`) and the value of every query option whose name
/// contains `password` (`password=`, `sentinel_password=`) replaced by
/// `<redacted>`.
///
/// ```
/// use sessionkit_stores::redact;
/// assert_eq!(redact("redis://:pw@h:6379/0"), "redis://:<redacted>@h:6379/0");
/// assert_eq!(
///     redact("redis+sentinel://s1,s2/m?sentinel_password=x&ttl=60"),
///     "redis+sentinel://s1,s2/m?sentinel_password=<redacted>&ttl=60"
/// );
/// ```
pub fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = match main.find("://").map(|i| i + 3) {
        Some(start) => {
            let authority_end = main[start..]
                .find(['/', '#'])
                .map_or(main.len(), |i| start + i);
            match main[start..authority_end].rfind('@') {
                Some(at) => {
                    let userinfo = &main[start..start + at];
                    let hidden = match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:<redacted>"),
                        None => userinfo.to_owned(),
                    };
                    format!("{}{hidden}{}", &main[..start], &main[start + at..])
                }
                None => main.to_owned(),
            }
        }
        None => main.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                    format!("{k}=<redacted>")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// What a store keeps at rest, beside what the URL configures: encryption
/// keys (never in the URL, which ends up in logs) and hashed ids.
#[derive(Debug, Clone, Default)]
pub struct AtRest {
    /// Seal records with these keys (server stores; the in-process memory
    /// store has nothing at rest and ignores it).
    pub encryption: Option<Encryption>,
    /// Keep records under SHA-256 of their ids ([`HashedIds`]). The URL
    /// option `hashed_ids=true` turns it on too.
    pub hashed_ids: bool,
}

/// The environment variable [`AtRest::from_env`] reads encryption keys from.
pub const ENCRYPTION_KEYS_VAR: &str = "SESSION_ENCRYPTION_KEYS";

impl AtRest {
    /// Encryption keys from `SESSION_ENCRYPTION_KEYS`: comma-separated,
    /// each 32 bytes in standard base64 (`openssl rand -base64 32`); the
    /// first seals, all open. Unset or empty: no encryption. A malformed
    /// key is an [`Error::Config`] that does not echo it.
    pub fn from_env() -> Result<Self> {
        match std::env::var(ENCRYPTION_KEYS_VAR) {
            Ok(v) if !v.trim().is_empty() => Ok(AtRest {
                encryption: Some(parse_keys(&v)?),
                hashed_ids: false,
            }),
            _ => Ok(AtRest::default()),
        }
    }
}

/// Parses comma-separated base64 AES-256 keys.
pub fn parse_keys(list: &str) -> Result<Encryption> {
    use base64::Engine;
    let keys = list
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(k)
                .map_err(|_| config(format!("encryption key {} is not base64", i + 1)))?;
            Key::from_slice(&bytes)
                .map_err(|_| config(format!("encryption key {} is not 32 bytes", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    Encryption::new(keys)
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
            encryption: None,
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

    /// Refuses options nobody consumed, except the driver's own (`driver`,
    /// left in the URL for it), with an error listing the valid ones
    /// (`store`: this crate's options for the backend).
    #[allow(dead_code)]
    fn finish(&self, store: &[&str], driver: &[&str]) -> Result<()> {
        let unknown = self
            .options
            .iter()
            .find(|(k, _)| !driver.iter().any(|d| d.eq_ignore_ascii_case(k)));
        match unknown {
            None => Ok(()),
            Some((k, _)) => {
                let mut valid = format!("valid options: {}", store.join(", "));
                if !driver.is_empty() {
                    valid.push_str(&format!("; passed to the driver: {}", driver.join(", ")));
                }
                Err(config(format!(
                    "unknown option {k:?} for a {} store URL ({valid})",
                    self.scheme
                )))
            }
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
        "{backend} store URLs need sessionkit-stores' `{feature}` cargo feature, which is off in this build"
    ))
}

/// Connects to the store a URL names. See the crate docs for schemes and options.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    connect_with(url, &AtRest::default()).await
}

/// Like [`connect`], with encryption at rest and hashed ids as `at_rest` says.
pub async fn connect_with(url: &str, at_rest: &AtRest) -> Result<Arc<dyn Store>> {
    let mut u = StoreUrl::parse(url)?;
    let hashed = u.take_bool("hashed_ids", false)? || at_rest.hashed_ids;
    u.encryption = at_rest.encryption.clone();
    let store = open(&mut u).await?;
    Ok(if hashed {
        Arc::new(HashedIds::new(store))
    } else {
        store
    })
}

async fn open(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    match u.scheme.as_str() {
        // Each backend's future is boxed: their connect futures nest deep
        // enough to overflow the compiler's query depth when inlined here.
        "memory" => memory(u),
        "sqlite" => Box::pin(sqlite(u)).await,
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
        | "rediss+sentinel" => {
            Box::pin(redis(u)).await
        }
        "postgres" | "postgresql" => Box::pin(postgres(u)).await,
        "mongodb" | "mongodb+srv" => Box::pin(mongo(u)).await,
        "mysql" | "mariadb" => Box::pin(mysql(u)).await,
        other => Err(config(format!(
            "unknown store URL scheme {other:?}; expected memory, sqlite, redis, rediss, redis+cluster, redis+sentinel, postgres, mongodb, mysql"
        ))),
    }
}

#[cfg(feature = "memory")]
fn memory(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let mut b = sessionkit_memory::MemoryStore::builder();
    if let Some(ttl) = u.take_secs("ttl")? {
        b = b.default_ttl(ttl);
    }
    if let Some(cap) = u.take_usize("capacity")? {
        b = b.capacity(cap);
    }
    u.finish(&["ttl", "capacity", "hashed_ids"], &[])?;
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
    let principal_index = u.take_bool("principal_index", false)?;
    let prune = u.take_secs("prune_interval")?;
    let max_connections = u.take_usize("max_connections")?;
    // SQLite's own URL options go to sqlx.
    let mut passthrough = Vec::new();
    for key in SQLITE_DRIVER_OPTIONS {
        if let Some(v) = u.take(key) {
            passthrough.push(format!("{key}={v}"));
        }
    }
    u.finish(SQLITE_OPTIONS, SQLITE_DRIVER_OPTIONS)?;
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
    let mut b = sessionkit_sqlite::SqliteStore::builder(url)
        .create_schema(create)
        .principal_index(principal_index);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(t) = table {
        b = b.table(t);
    }
    if let Some(p) = prune {
        b = b.prune_interval((!p.is_zero()).then_some(p));
    }
    if let Some(n) = max_connections {
        b = b.max_connections(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(e) = u.encryption.clone() {
        b = b.encryption(e);
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("sqlite", "sqlite"))
}

/// A Redis deployment named by a URL (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code)]
enum RedisTarget {
    /// `redis://` / `rediss://`: the URL for the driver.
    Single(String),
    /// `redis+cluster://`: one `redis://` URL per node given.
    Cluster(Vec<String>),
    /// `redis+sentinel://`: Sentinel URLs, master name, db and credentials.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        db: Option<i64>,
        username: Option<String>,
        password: Option<String>,
    },
}

/// `host:port,host:port` → `host:port` each (`default_port` added where
/// missing; IPv6 in brackets).
#[allow(dead_code)]
fn redis_hosts(list: &str, default_port: u16) -> Result<Vec<String>> {
    let mut hosts = Vec::new();
    for h in list.split(',').map(str::trim) {
        if h.is_empty() {
            return Err(config(
                "empty host in a Redis host list (expected host:port,host:port)",
            ));
        }
        if h.contains(['/', '@', '?', '#']) {
            return Err(config(format!("bad host {h:?} in a Redis host list")));
        }
        let has_port = match h.rfind(']') {
            Some(end) => h[end..].contains(':'),
            None => h.contains(':'),
        };
        hosts.push(if has_port {
            h.to_owned()
        } else {
            format!("{h}:{default_port}")
        });
    }
    Ok(hosts)
}

/// Takes the deployment out of a Redis URL (and its `sentinel_password`).
/// Credentials are never echoed in errors.
#[allow(dead_code)]
fn redis_target(u: &mut StoreUrl) -> Result<RedisTarget> {
    let scheme = u.scheme.clone();
    if !scheme.contains('+') {
        return Ok(RedisTarget::Single(u.driver_url()));
    }
    let prefix = format!("{scheme}://");
    let rest = match u.base.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(&prefix) => u.base[prefix.len()..].to_owned(),
        _ => return Err(config(format!("a {scheme} URL starts with {prefix}"))),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (userinfo, rest) = match rest[..authority_end].rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest.as_str()),
    };
    let (list, path) = rest.split_once('/').unwrap_or((rest, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| config("a part of the Redis URL is not valid UTF-8 once decoded"))
    };
    match scheme.as_str() {
        "redis+cluster" | "rediss+cluster" => {
            if !path.is_empty() {
                return Err(config(
                    "a redis+cluster URL has no path: a cluster has only database 0",
                ));
            }
            let node_scheme = scheme.trim_end_matches("+cluster");
            let auth = userinfo.map(|i| format!("{i}@")).unwrap_or_default();
            let nodes = redis_hosts(list, 6379)?
                .into_iter()
                .map(|h| format!("{node_scheme}://{auth}{h}"))
                .collect();
            Ok(RedisTarget::Cluster(nodes))
        }
        "redis+sentinel" | "rediss+sentinel" => {
            let node_scheme = scheme.trim_end_matches("+sentinel");
            let (master, db) = path.split_once('/').unwrap_or((path, ""));
            if master.is_empty() {
                return Err(config(
                    "a redis+sentinel URL needs the master's name: redis+sentinel://host:26379,…/mymaster",
                ));
            }
            let db = match db.trim_end_matches('/') {
                "" => None,
                d => Some(d.parse::<i64>().map_err(|_| {
                    config(format!(
                        "database {d:?} in the redis+sentinel URL is not a number"
                    ))
                })?),
            };
            let (username, password) = match userinfo.map(|i| i.split_once(':')) {
                None => (None, None),
                Some(None) => {
                    return Err(config(
                        "credentials in a redis+sentinel URL are :password@ or user:password@",
                    ))
                }
                Some(Some((user, pass))) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(decode(pass)?),
                ),
            };
            let auth = match u.take("sentinel_password") {
                Some(p) => format!(
                    ":{}@",
                    percent_encoding::utf8_percent_encode(&p, percent_encoding::NON_ALPHANUMERIC)
                ),
                None => String::new(),
            };
            let sentinels = redis_hosts(list, 26379)?
                .into_iter()
                .map(|h| format!("{node_scheme}://{auth}{h}"))
                .collect();
            Ok(RedisTarget::Sentinel {
                sentinels,
                master: decode(master)?,
                db,
                username,
                password,
            })
        }
        other => Err(config(format!("unknown Redis URL scheme {other:?}"))),
    }
}

// The options each backend takes, for the error that lists them. The
// crate docs' table is the reference; a unit test checks both agree.
#[allow(dead_code)]
const SQLITE_OPTIONS: &[&str] = &[
    "ttl",
    "table",
    "create_schema",
    "principal_index",
    "prune_interval",
    "max_connections",
    "hashed_ids",
];
#[allow(dead_code)]
const SQLITE_DRIVER_OPTIONS: &[&str] = &["mode", "cache", "immutable", "vfs"];
#[allow(dead_code)]
const REDIS_OPTIONS: &[&str] = &[
    "ttl",
    "prefix",
    "principal_index",
    "principal_prefix",
    "scan_count",
    "connect_timeout",
    "operation_timeout",
    "response_timeout",
    "tls_ca",
    "tls_insecure",
    "sentinel_password",
    "hashed_ids",
];
#[allow(dead_code)]
const REDIS_DRIVER_OPTIONS: &[&str] = &["protocol"];
#[allow(dead_code)]
const POSTGRES_OPTIONS: &[&str] = &[
    "ttl",
    "table",
    "schema",
    "time_zone",
    "create_schema",
    "principal_index",
    "prune_interval",
    "connect_timeout",
    "operation_timeout",
    "max_connections",
    "hashed_ids",
];
/// What sqlx's PostgreSQL driver reads from the query string.
#[allow(dead_code)]
const POSTGRES_DRIVER_OPTIONS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "ssl-mode",
    "ssl-root-cert",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
    "application_name",
    "options",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
];
#[allow(dead_code)]
const MONGO_OPTIONS: &[&str] = &[
    "ttl",
    "collection",
    "database",
    "stringify",
    "create_schema",
    "connect_timeout",
    "operation_timeout",
    "hashed_ids",
];
#[allow(dead_code)]
const MYSQL_OPTIONS: &[&str] = &[
    "ttl",
    "table",
    "columns",
    "create_schema",
    "principal_index",
    "prune_interval",
    "connect_timeout",
    "operation_timeout",
    "max_connections",
    "hashed_ids",
];
/// What sqlx's MySQL driver reads from the query string.
#[allow(dead_code)]
const MYSQL_DRIVER_OPTIONS: &[&str] = &[
    "ssl-mode",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
    "sslmode",
    "sslca",
    "sslcert",
    "sslkey",
    "charset",
    "collation",
    "statement-cache-capacity",
    "socket",
    "timezone",
    "time-zone",
];

/// The two timeouts every server store takes from the URL.
#[allow(dead_code)]
struct Timeouts {
    connect: Option<Duration>,
    operation: Option<Duration>,
}

impl StoreUrl {
    /// `connect_timeout` and `operation_timeout` (whole seconds, or
    /// milliseconds with an `ms` suffix; never zero).
    #[allow(dead_code)]
    fn take_timeouts(&mut self) -> Result<Timeouts> {
        Ok(Timeouts {
            connect: self.take_duration("connect_timeout")?,
            operation: self.take_duration("operation_timeout")?,
        })
    }

    /// A positive duration: `5` (seconds) or `1500ms`.
    #[allow(dead_code)]
    fn take_duration(&mut self, key: &str) -> Result<Option<Duration>> {
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        let parsed = match v.strip_suffix("ms") {
            Some(ms) => ms.parse::<u64>().map(Duration::from_millis),
            None => v.parse::<u64>().map(Duration::from_secs),
        };
        match parsed {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(config(format!(
                "option {key}={v:?} is not a positive number of seconds (or of milliseconds with ms)"
            ))),
        }
    }
}

#[cfg(feature = "redis")]
async fn redis(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let ttl = u.take_secs("ttl")?;
    let prefix = u.take("prefix");
    let timeouts = u.take_timeouts()?;
    let response = u.take_duration("response_timeout")?;
    let principal_index = u.take_bool("principal_index", true)?;
    let principal_prefix = u.take("principal_prefix");
    let scan_count = u.take_usize("scan_count")?;
    let tls_ca = u.take("tls_ca");
    let tls_insecure = u.take_bool("tls_insecure", false)?;
    let target = redis_target(u)?;
    let mut b = match target {
        RedisTarget::Single(_) => {
            u.finish(REDIS_OPTIONS, REDIS_DRIVER_OPTIONS)?;
            sessionkit_redis::RedisStore::builder(u.driver_url())
        }
        RedisTarget::Cluster(nodes) => {
            u.finish(REDIS_OPTIONS, &[])?;
            sessionkit_redis::RedisStore::cluster_builder(nodes)
        }
        RedisTarget::Sentinel {
            sentinels,
            master,
            db,
            username,
            password,
        } => {
            u.finish(REDIS_OPTIONS, &[])?;
            let mut b = sessionkit_redis::RedisStore::sentinel_builder(sentinels, master);
            if let Some(db) = db {
                b = b.master_db(db);
            }
            if let Some(p) = password {
                b = b.master_auth(username, p);
            }
            b
        }
    };
    if let Some(t) = timeouts.operation.or(response) {
        b = b.operation_timeout(t);
    }
    if let Some(t) = timeouts.connect {
        b = b.connect_timeout(t);
    }
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(p) = prefix {
        b = b.prefix(p);
    }
    b = b.principal_index(principal_index);
    if let Some(p) = principal_prefix {
        b = b.principal_prefix(p);
    }
    if let Some(n) = scan_count {
        b = b.scan_count(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(path) = tls_ca {
        b = b.tls_ca_file(path);
    }
    b = b.tls_insecure(tls_insecure);
    if let Some(e) = u.encryption.clone() {
        b = b.encryption(e);
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
    let time_zone = u.take("time_zone");
    let create = u.take_bool("create_schema", true)?;
    let principal_index = u.take_bool("principal_index", false)?;
    let prune = u.take_secs("prune_interval")?;
    let timeouts = u.take_timeouts()?;
    let max_connections = u.take_usize("max_connections")?;
    u.finish(POSTGRES_OPTIONS, POSTGRES_DRIVER_OPTIONS)?;
    let mut b = sessionkit_postgres::PostgresStore::builder(u.driver_url())
        .create_schema(create)
        .principal_index(principal_index);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(t) = table {
        b = b.table(t);
    }
    if let Some(s) = schema {
        b = b.schema(s);
    }
    if let Some(z) = time_zone {
        b = b.time_zone(z);
    }
    if let Some(p) = prune {
        b = b.prune_interval((!p.is_zero()).then_some(p));
    }
    if let Some(t) = timeouts.connect {
        b = b.connect_timeout(t);
    }
    if let Some(t) = timeouts.operation {
        b = b.operation_timeout(t);
    }
    if let Some(n) = max_connections {
        b = b.max_connections(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(e) = u.encryption.clone() {
        b = b.encryption(e);
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
    let stringify = u.take_bool("stringify", true)?;
    let timeouts = u.take_timeouts()?;
    // Every other option is the driver's, which refuses unknown ones itself.
    let mut b = sessionkit_mongo::MongoStore::builder(u.driver_url())
        .create_indexes(create)
        .stringify(stringify);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(c) = collection {
        b = b.collection(c);
    }
    if let Some(d) = database {
        b = b.database(d);
    }
    if let Some(t) = timeouts.connect {
        b = b.connect_timeout(t);
    }
    if let Some(t) = timeouts.operation {
        b = b.operation_timeout(t);
    }
    if let Some(e) = u.encryption.clone() {
        b = b.encryption(e);
    }
    b.connect()
        .await
        .map(|s| Arc::new(s) as Arc<dyn Store>)
        .map_err(|e| match e {
            Error::Config(msg) if msg.contains("invalid option") => config(format!(
                "{msg} (this crate's options: {}; the rest are the MongoDB driver's URI options)",
                MONGO_OPTIONS.join(", ")
            )),
            other => other,
        })
}

#[cfg(not(feature = "mongo"))]
async fn mongo(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("mongodb", "mongo"))
}

#[cfg(feature = "mysql")]
async fn mysql(u: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    let ttl = u.take_secs("ttl")?;
    let table = u.take("table");
    let columns = u.take("columns");
    let create = u.take_bool("create_schema", true)?;
    let principal_index = u.take_bool("principal_index", false)?;
    let prune = u.take_secs("prune_interval")?;
    let timeouts = u.take_timeouts()?;
    let max_connections = u.take_usize("max_connections")?;
    u.finish(MYSQL_OPTIONS, MYSQL_DRIVER_OPTIONS)?;
    let mut b = sessionkit_mysql::MySqlStore::builder(u.driver_url())
        .create_schema(create)
        .principal_index(principal_index);
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    if let Some(t) = table {
        b = b.table(t);
    }
    if let Some(c) = columns {
        let names: Vec<&str> = c.split(',').map(str::trim).collect();
        let [id, expires, data] = names[..] else {
            return Err(config(
                "option columns takes three names: session_id,expires,data",
            ));
        };
        b = b.columns(id, expires, data);
    }
    if let Some(p) = prune {
        b = b.prune_interval((!p.is_zero()).then_some(p));
    }
    if let Some(t) = timeouts.connect {
        b = b.connect_timeout(t);
    }
    if let Some(t) = timeouts.operation {
        b = b.operation_timeout(t);
    }
    if let Some(n) = max_connections {
        b = b.max_connections(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(e) = u.encryption.clone() {
        b = b.encryption(e);
    }
    Ok(Arc::new(b.connect().await?))
}

#[cfg(not(feature = "mysql"))]
async fn mysql(_: &mut StoreUrl) -> Result<Arc<dyn Store>> {
    Err(feature_off("mysql", "mysql"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_keys_parse_and_errors_do_not_echo_them() -> Result<()> {
        let k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k2 = "HxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxs=";
        let enc = parse_keys(&format!("{k1}, {k2}"))?;
        let sealed = enc.seal("x")?;
        assert_eq!(parse_keys(k1)?.open(&sealed)?, "x");
        for bad in ["not-base64!", "AAAA", ""] {
            match parse_keys(bad) {
                Err(Error::Config(msg)) => assert!(bad.is_empty() || !msg.contains(bad)),
                other => unreachable!("{bad:?}: {other:?}"),
            }
        }
        Ok(())
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn at_rest_options_reach_the_store() -> anyhow::Result<()> {
        use sessionkit_core::{Record, SessionId};
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let at_rest = AtRest {
            encryption: Some(parse_keys("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?),
            hashed_ids: false,
        };
        let sealed = connect_with(&url, &at_rest).await?;
        let record = Record::new(SessionId::generate());
        sealed.create(&record).await?;
        assert_eq!(sealed.load(&record.id).await?, Some(record.clone()));
        let plain = connect(&url).await?;
        assert!(matches!(
            plain.load(&record.id).await,
            Err(Error::Decode(_))
        ));

        let hashed = connect(&format!("{url}?hashed_ids=true")).await?;
        let other = Record::new(SessionId::generate());
        hashed.create(&other).await?;
        assert_eq!(hashed.load(&other.id).await?, Some(other.clone()));
        assert!(
            plain.load(&other.id).await?.is_none(),
            "stored under the id"
        );
        assert!(!hashed.capabilities().ids);
        Ok(())
    }

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
    fn redis_cluster_urls_list_their_nodes() -> Result<()> {
        let mut u = StoreUrl::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/?prefix=a")?;
        assert_eq!(
            redis_target(&mut u)?,
            RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ])
        );
        // Credentials go to every node; a missing port is 6379; IPv6 in brackets.
        let mut u = StoreUrl::parse("rediss+cluster://u:p%40ss@a,[::1]:7001,[::2]")?;
        assert_eq!(
            redis_target(&mut u)?,
            RedisTarget::Cluster(vec![
                "rediss://u:p%40ss@a:6379".into(),
                "rediss://u:p%40ss@[::1]:7001".into(),
                "rediss://u:p%40ss@[::2]:6379".into()
            ])
        );
        for bad in [
            "redis+cluster://a:1,,b:2/",
            "redis+cluster://a:1/3",
            "redis+cluster://",
            "redis+cluster:a:1",
        ] {
            let mut u = StoreUrl::parse(bad)?;
            assert!(redis_target(&mut u).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn redis_sentinel_urls_name_sentinels_master_and_db() -> Result<()> {
        let mut u =
            StoreUrl::parse("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster?ttl=60")?;
        assert_eq!(
            redis_target(&mut u)?,
            RedisTarget::Sentinel {
                sentinels: vec![
                    "redis://127.0.0.1:26379".into(),
                    "redis://127.0.0.1:26380".into()
                ],
                master: "mymaster".into(),
                db: None,
                username: None,
                password: None,
            }
        );
        // Credentials and db are the master's; sentinel_password the Sentinels'.
        let mut u = StoreUrl::parse(
            "redis+sentinel://app:s%3Acret@s1,s2:5000/main/2?sentinel_password=x%2By",
        )?;
        assert_eq!(
            redis_target(&mut u)?,
            RedisTarget::Sentinel {
                sentinels: vec![
                    "redis://:x%2By@s1:26379".into(),
                    "redis://:x%2By@s2:5000".into()
                ],
                master: "main".into(),
                db: Some(2),
                username: Some("app".into()),
                password: Some("s:cret".into()),
            }
        );
        let mut u = StoreUrl::parse("redis+sentinel://:pw@s1/m")?;
        assert!(matches!(
            redis_target(&mut u)?,
            RedisTarget::Sentinel { username: None, password: Some(p), .. } if p == "pw"
        ));
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1/m/zero",
            "redis+sentinel://s1,/m",
            "redis+sentinel://justuser@s1/m",
        ] {
            let mut u = StoreUrl::parse(bad)?;
            assert!(redis_target(&mut u).is_err(), "{bad}");
        }
        // Plain redis:// is untouched (options left for the driver).
        let mut u = StoreUrl::parse("redis://h:1/2?protocol=resp3")?;
        assert_eq!(
            redis_target(&mut u)?,
            RedisTarget::Single("redis://h:1/2?protocol=resp3".into())
        );
        Ok(())
    }

    #[test]
    fn passwords_never_show() -> Result<()> {
        for (url, shown) in [
            ("postgres://u:secret@h/db", "postgres://u:<redacted>@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("redis://:secret@h:6379", "redis://:<redacted>@h:6379"),
            (
                "postgres://h/db?user=u&password=secret&sslmode=require",
                "postgres://h/db?user=u&password=<redacted>&sslmode=require",
            ),
            (
                "rediss+cluster://u:secret@a:1,b:2/?ttl=5",
                "rediss+cluster://u:<redacted>@a:1,b:2/?ttl=5",
            ),
            ("sqlite://s.db", "sqlite://s.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(redact(url), shown);
        }
        let u =
            StoreUrl::parse("redis+sentinel://app:secret@s1/m?sentinel_password=hunter2&ttl=60")?;
        let debug = format!("{u:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("ttl"), "{debug}");
        Ok(())
    }

    #[tokio::test]
    async fn unknown_options_are_refused_with_the_valid_ones() {
        for (url, typo, listed) in [
            ("memory://?capcity=3", "capcity", "capacity"),
            ("sqlite::memory:?tabel=s", "tabel", "table"),
            (
                "sqlite::memory:?operation_timeout=1",
                "operation_timeout",
                "prune_interval",
            ),
        ] {
            match connect(url).await.err() {
                Some(Error::Config(msg)) => {
                    assert!(msg.contains(typo) && msg.contains(listed), "{msg}")
                }
                other => unreachable!("{url}: {other:?}"),
            }
        }
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_options_are_checked_before_connecting() {
        // Refused at once, naming the option: no connection is tried.
        for (url, named) in [
            ("postgres://u:pw@127.0.0.1:1/x?tabel=s", "tabel"),
            ("postgres://u:pw@127.0.0.1:1/x?sslmode=maybe", "sslmode"),
            (
                "postgres://u:pw@127.0.0.1:1/x?operation_timeout=0",
                "operation_timeout",
            ),
        ] {
            match connect(url).await.err() {
                Some(Error::Config(msg)) => {
                    assert!(msg.contains(named), "{msg}");
                    assert!(!msg.contains("pw"), "{msg}");
                }
                other => unreachable!("{url}: {other:?}"),
            }
        }
        // Known options (the store's and the driver's) pass: the error is
        // the closed port's.
        let known = connect(
            "postgres://127.0.0.1:1/x?time_zone=Europe/Paris&operation_timeout=1500ms&max_connections=3&sslmode=disable&application_name=a&connect_timeout=1",
        )
        .await
        .err();
        assert!(
            matches!(known, Some(Error::Unavailable { .. })),
            "{known:?}"
        );
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_options_are_checked_before_connecting() {
        for (url, named) in [
            ("mysql://u:pw@127.0.0.1:1/x?ssl_mode=REQUIRED", "ssl_mode"),
            ("mysql://u:pw@127.0.0.1:1/x?columns=a,b", "columns"),
        ] {
            match connect(url).await.err() {
                Some(Error::Config(msg)) => assert!(msg.contains(named), "{msg}"),
                other => unreachable!("{url}: {other:?}"),
            }
        }
        let known = connect(
            "mysql://127.0.0.1:1/x?columns=sid,exp,data&ssl-mode=DISABLED&charset=utf8mb4&connect_timeout=1",
        )
        .await
        .err();
        assert!(
            matches!(known, Some(Error::Unavailable { .. })),
            "{known:?}"
        );
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_options_are_checked_before_connecting() {
        for (url, named) in [
            ("redis://:pw@127.0.0.1:1/?prefx=a", "prefx"),
            ("redis://127.0.0.1:1/?tls_ca=/tmp/ca.pem", "rediss://"),
            ("redis+cluster://127.0.0.1:1/?protocol=resp3", "protocol"),
        ] {
            match connect(url).await.err() {
                Some(Error::Config(msg)) => {
                    assert!(msg.contains(named), "{msg}");
                    assert!(!msg.contains("pw"), "{msg}");
                }
                other => unreachable!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_docs_table_lists_every_option() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter(|l| l.starts_with("//!"))
            .collect();
        for name in [
            SQLITE_OPTIONS,
            SQLITE_DRIVER_OPTIONS,
            REDIS_OPTIONS,
            REDIS_DRIVER_OPTIONS,
            POSTGRES_OPTIONS,
            MONGO_OPTIONS,
            MYSQL_OPTIONS,
        ]
        .concat()
        {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not documented"
            );
        }
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() -> Result<()> {
        let mut u = StoreUrl::parse("memory://?a=5&b=250ms&c=0&d=soon")?;
        assert_eq!(u.take_duration("a")?, Some(Duration::from_secs(5)));
        assert_eq!(u.take_duration("b")?, Some(Duration::from_millis(250)));
        assert!(u.take_duration("c").is_err());
        assert!(u.take_duration("d").is_err());
        assert_eq!(u.take_duration("e")?, None);
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

//! Section 2 and 3: HTTP throughput with the same generator for every
//! contender: the HTTP floor (no sessions), the store floor (the raw driver
//! calls per request), ours, tower-sessions and express-session.

use crate::env::{Backend, Env};
use crate::load::{self, LoadOpts};
use crate::raw::{MemoryKv, MongoKv, MySqlKv, PgKv, RedisKv, SharedKv, SqliteKv};
use crate::stats::{self, Sample};
use crate::{node, server};
use anyhow::Result;
use sessionkit_core::Store;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// axum with no sessions.
    Floor,
    /// axum + the raw driver calls.
    Raw,
    Ours,
    Tower,
    Express,
}

impl Who {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "floor" => Who::Floor,
            "raw" => Who::Raw,
            "ours" => Who::Ours,
            "tower" => Who::Tower,
            "express" => Who::Express,
            _ => anyhow::bail!("unknown contender {s:?}"),
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Who::Floor => "axum, no sessions (HTTP floor)",
            Who::Raw => "axum + raw driver calls (store floor)",
            Who::Ours => "**ours** (session-tower)",
            Who::Tower => "tower-sessions 0.14",
            Who::Express => "express-session 1.19 (Node)",
        }
    }
}

pub struct HttpRow {
    pub backend: Option<Backend>,
    pub who: Who,
    pub store: String,
    pub sample: Sample,
}

#[derive(Clone)]
pub struct HttpOpts {
    /// Contenders to run (all when empty).
    pub who: Vec<Who>,
    pub conns: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// The measured time is split into this many rounds; in each round every
    /// contender of a backend (and the HTTP floor) runs once, in turn, so a
    /// change in the machine's load hits them all alike.
    pub rounds: u32,
}

impl HttpOpts {
    fn runs(&self, w: Who) -> bool {
        self.who.is_empty() || self.who.contains(&w)
    }

    pub fn load(&self) -> LoadOpts {
        LoadOpts {
            conns: self.conns,
            warmup: self.warmup,
            measure: self.measure,
            path: server::PATH,
            check: true,
            stop: None,
        }
    }
}

/// Serves `app`, runs the generator against it, stops it.
pub async fn bench_app(app: axum::Router, opts: LoadOpts) -> Result<load::LoadResult> {
    let srv = server::serve(app).await?;
    let result = load::run(srv.addr, opts).await;
    srv.stop().await;
    result
}

fn report(
    rows: &mut Vec<HttpRow>,
    log: &mut Vec<String>,
    backend: Option<Backend>,
    who: Who,
    store: &str,
    r: Result<Sample>,
) {
    let name = backend.map_or("-", |b| b.name());
    match r {
        Ok(sample) => {
            if let Some(e) = &sample.first_error {
                let msg = format!(
                    "http {name} {}: {} errors of {}, first: {e}",
                    who.label(),
                    sample.errors,
                    sample.ops
                );
                eprintln!("bench: {msg}");
                log.push(msg);
            }
            eprintln!(
                "bench: http  {name:<8} {:<40} {:>8} req/s  p50 {:>9}  p99 {:>9}",
                who.label(),
                stats::fmt_rate(sample.rate()),
                stats::fmt_dur(sample.p50()),
                stats::fmt_dur(sample.p99()),
            );
            rows.push(HttpRow {
                backend,
                who,
                store: store.to_owned(),
                sample,
            });
        }
        Err(e) => {
            let msg = format!("http {name} {}: skipped: {e:#}", who.label());
            eprintln!("bench: {msg}");
            log.push(msg);
        }
    }
}

async fn ours_app(env: &Env, b: Backend) -> Result<axum::Router> {
    let store: Arc<dyn Store> = match b {
        Backend::Memory => Arc::new(sessionkit_memory::MemoryStore::new()),
        Backend::Sqlite => Arc::new(env.sqlite_store("http_ours.db").await?),
        Backend::Redis => Arc::new(env.redis_store("bench:http:").await?),
        Backend::Postgres => Arc::new(env.postgres_store("http_ours").await?),
        Backend::Mongo => Arc::new(env.mongo_store("http_ours").await?),
        Backend::Mysql => Arc::new(env.mysql_store("http_ours").await?),
    };
    server::ours(store)
}

async fn raw_app(env: &Env, b: Backend) -> Result<axum::Router> {
    let kv: SharedKv = match b {
        Backend::Memory => Arc::new(MemoryKv::default()),
        Backend::Sqlite => Arc::new(SqliteKv::new(env, "http_raw.db").await?),
        Backend::Redis => Arc::new(RedisKv::new(env, "bench:http-raw:").await?),
        Backend::Postgres => Arc::new(PgKv::new(env, "http_raw").await?),
        Backend::Mongo => Arc::new(MongoKv::new(env, "http_raw").await?),
        Backend::Mysql => Arc::new(MySqlKv::new(env, "http_raw").await?),
    };
    Ok(server::raw(kv))
}

/// tower-sessions with its store for `b`, on the same pool settings as ours.
async fn tower_app(env: &Env, b: Backend) -> Result<axum::Router> {
    use tower_sessions_sqlx_store::{MySqlStore, PostgresStore, SqliteStore};
    Ok(match b {
        Backend::Memory => server::tower(tower_sessions::MemoryStore::default()),
        Backend::Sqlite => {
            let store = SqliteStore::new(env.sqlite_pool("http_tower.db").await?);
            store.migrate().await?;
            server::tower(store)
        }
        Backend::Redis => {
            use tower_sessions_redis_store::fred::prelude::{Builder, ClientLike, Config};
            let url = env.redis_url.as_deref().unwrap_or_default();
            // One connection, like ours (a multiplexed ConnectionManager).
            let client = Builder::from_config(Config::from_url(url)?).build()?;
            client.init().await?;
            server::tower(tower_sessions_redis_store::RedisStore::new(client))
        }
        Backend::Postgres => {
            let store = PostgresStore::new(env.pg_pool()?)
                .with_schema_name("tower_sessions")
                .map_err(anyhow::Error::msg)?;
            store.migrate().await?;
            server::tower(store)
        }
        Backend::Mysql => {
            // In the bench database (its default schema would be a database
            // of its own).
            let store = MySqlStore::new(env.mysql_pool()?)
                .with_schema_name(crate::env::MYSQL_DATABASE)
                .map_err(anyhow::Error::msg)?;
            store.migrate().await?;
            server::tower(store)
        }
        // tower-sessions' MongoDB store is not part of this comparison.
        Backend::Mongo => anyhow::bail!("not compared"),
    })
}

fn remember_redis_keys(env: &Env, who: Who, cookies: &[String]) {
    let keys: Vec<String> = match who {
        // tower-cookies' signed value: 44 characters of base64 MAC, then the id.
        Who::Tower => cookies
            .iter()
            .filter_map(|c| {
                c.split_once('=')
                    .and_then(|(_, v)| v.get(44..))
                    .map(str::to_owned)
            })
            .collect(),
        Who::Express => cookies
            .iter()
            .filter_map(|c| node::express_id(c))
            .map(|id| format!("sess:{id}"))
            .collect(),
        _ => Vec::new(),
    };
    if let Ok(mut k) = env.extra_redis_keys.lock() {
        k.extend(keys);
    }
}

/// A contender being served for the whole rotation of one backend.
enum Live {
    Axum(server::Server),
    Node(node::NodeApp),
}

impl Live {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Live::Axum(s) => s.addr,
            Live::Node(n) => n.addr,
        }
    }

    async fn stop(self) {
        match self {
            Live::Axum(s) => s.stop().await,
            Live::Node(n) => n.stop().await,
        }
    }
}

struct Entry {
    who: Who,
    store: &'static str,
    live: Live,
    sample: Sample,
    cookies: Vec<String>,
    failed: Option<String>,
}

async fn start(env: &Env, b: Backend, who: Who) -> Result<Option<(&'static str, Live)>> {
    let axum = |app| async { anyhow::Ok(Live::Axum(server::serve(app).await?)) };
    Ok(Some(match who {
        Who::Floor => return Ok(None),
        Who::Raw => ("same layout as ours", axum(raw_app(env, b).await?).await?),
        Who::Ours => {
            let store = match b {
                Backend::Memory => "sessionkit-memory",
                Backend::Sqlite => "sessionkit-sqlite",
                Backend::Redis => "sessionkit-redis",
                Backend::Postgres => "sessionkit-postgres",
                Backend::Mongo => "sessionkit-mongo",
                Backend::Mysql => "sessionkit-mysql",
            };
            (store, axum(ours_app(env, b).await?).await?)
        }
        Who::Tower if b == Backend::Mongo => return Ok(None),
        Who::Tower => {
            let store = match b {
                Backend::Memory => "MemoryStore",
                Backend::Sqlite => "tower-sessions-sqlx-store 0.15 SqliteStore",
                Backend::Redis => "tower-sessions-redis-store 0.16 (fred)",
                Backend::Postgres => "tower-sessions-sqlx-store 0.15 PostgresStore",
                Backend::Mysql => "tower-sessions-sqlx-store 0.15 MySqlStore",
                Backend::Mongo => "",
            };
            (store, axum(tower_app(env, b).await?).await?)
        }
        Who::Express => {
            let (kind, store) = match b {
                Backend::Memory => ("memory", "MemoryStore"),
                Backend::Redis => ("redis", "connect-redis 11"),
                Backend::Postgres => ("postgres", "connect-pg-simple 10"),
                Backend::Mongo => ("mongo", "connect-mongo 6"),
                Backend::Mysql => ("mysql", "express-mysql-session 3"),
                Backend::Sqlite => return Ok(None),
            };
            (store, Live::Node(node::start(env, kind).await?))
        }
    }))
}

/// Runs the generator once against `addr` and adds the window to `into`.
async fn round(
    addr: std::net::SocketAddr,
    opts: &HttpOpts,
    check: bool,
    into: &mut Sample,
    cookies: &mut Vec<String>,
) -> Result<()> {
    let rounds = opts.rounds.max(1);
    let mut load = opts.load();
    load.measure = opts.measure / rounds;
    load.warmup = opts.warmup / rounds;
    load.check = check;
    let r = load::run(addr, load).await?;
    into.merge(r.sample);
    cookies.extend(r.cookies);
    Ok(())
}

pub async fn run(env: &Env, opts: &HttpOpts, log: &mut Vec<String>) -> Vec<HttpRow> {
    let mut rows = Vec::new();
    let floor = if opts.runs(Who::Floor) {
        match server::serve(server::none()).await {
            Ok(s) => Some(s),
            Err(e) => {
                log.push(format!("HTTP floor skipped: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let mut floor_sample = Sample::empty();
    let mut floor_failed: Option<String> = None;
    let mut no_cookies = Vec::new();
    if opts.runs(Who::Express) {
        if let Err(e) = node::ensure_modules(env).await {
            log.push(format!("express-session skipped: {e:#}"));
        }
    }
    for b in env.backends() {
        let mut entries: Vec<Entry> = Vec::new();
        for who in [Who::Raw, Who::Ours, Who::Tower, Who::Express] {
            if !opts.runs(who) {
                continue;
            }
            match start(env, b, who).await {
                Ok(Some((store, live))) => entries.push(Entry {
                    who,
                    store,
                    live,
                    sample: Sample::empty(),
                    cookies: Vec::new(),
                    failed: None,
                }),
                Ok(None) => {}
                Err(e) => report(&mut rows, log, Some(b), who, "", Err(e)),
            }
        }
        for _ in 0..opts.rounds.max(1) {
            if let (Some(f), None) = (&floor, &floor_failed) {
                if let Err(e) = round(f.addr, opts, false, &mut floor_sample, &mut no_cookies).await
                {
                    floor_failed = Some(format!("{e:#}"));
                }
            }
            for e in entries.iter_mut().filter(|e| e.failed.is_none()) {
                if let Err(err) =
                    round(e.live.addr(), opts, true, &mut e.sample, &mut e.cookies).await
                {
                    e.failed = Some(format!("{err:#}"));
                }
            }
        }
        for e in entries {
            e.live.stop().await;
            if b == Backend::Redis {
                remember_redis_keys(env, e.who, &e.cookies);
            }
            let r = match e.failed {
                Some(msg) => Err(anyhow::anyhow!(msg)),
                None => Ok(e.sample),
            };
            report(&mut rows, log, Some(b), e.who, e.store, r);
        }
    }
    if let Some(f) = floor {
        f.stop().await;
        let r = match floor_failed {
            Some(msg) => Err(anyhow::anyhow!(msg)),
            None => Ok(floor_sample),
        };
        let mut floor_rows = Vec::new();
        report(&mut floor_rows, log, None, Who::Floor, "-", r);
        floor_rows.extend(rows);
        rows = floor_rows;
    }
    rows
}

//! Section 2 and 3: HTTP throughput with the same generator for every
//! contender: the HTTP floor (no sessions), the store floor (the raw driver
//! calls per request), ours, tower-sessions and express-session.

use crate::env::{Backend, Env};
use crate::load::{self, LoadOpts};
use crate::raw::{MemoryKv, PgKv, RedisKv, SharedKv, SqliteKv};
use crate::stats::{self, Sample};
use crate::{node, server};
use anyhow::Result;
use session_core::Store;
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
        Backend::Memory => Arc::new(store_memory::MemoryStore::new()),
        Backend::Sqlite => Arc::new(env.sqlite_store("http_ours.db").await?),
        Backend::Redis => Arc::new(env.redis_store("bench:http:").await?),
        Backend::Postgres => Arc::new(env.postgres_store("http_ours").await?),
    };
    server::ours(store)
}

async fn raw_app(env: &Env, b: Backend) -> Result<axum::Router> {
    let kv: SharedKv = match b {
        Backend::Memory => Arc::new(MemoryKv::default()),
        Backend::Sqlite => Arc::new(SqliteKv::new(env, "http_raw.db").await?),
        Backend::Redis => Arc::new(RedisKv::new(env, "bench:http-raw:").await?),
        Backend::Postgres => Arc::new(PgKv::new(env, "http_raw").await?),
    };
    Ok(server::raw(kv))
}

/// tower-sessions with its store for `b`, on the same pool settings as ours.
async fn tower_app(env: &Env, b: Backend) -> Result<axum::Router> {
    use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};
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

pub async fn run(env: &Env, opts: &HttpOpts, log: &mut Vec<String>) -> Vec<HttpRow> {
    let mut rows = Vec::new();
    if opts.runs(Who::Floor) {
        let mut floor_opts = opts.load();
        floor_opts.check = false;
        let r = bench_app(server::none(), floor_opts)
            .await
            .map(|r| r.sample);
        report(&mut rows, log, None, Who::Floor, "-", r);
    }

    let node_ok = opts.runs(Who::Express)
        && match node::ensure_modules(env).await {
            Ok(()) => true,
            Err(e) => {
                log.push(format!("express-session skipped: {e:#}"));
                false
            }
        };
    for b in env.backends() {
        if opts.runs(Who::Raw) {
            let r = async {
                let res = bench_app(raw_app(env, b).await?, opts.load()).await?;
                anyhow::Ok(res.sample)
            }
            .await;
            report(&mut rows, log, Some(b), Who::Raw, "same layout as ours", r);
        }
        if opts.runs(Who::Ours) {
            let r = async {
                let res = bench_app(ours_app(env, b).await?, opts.load()).await?;
                anyhow::Ok(res.sample)
            }
            .await;
            let store = match b {
                Backend::Memory => "store-memory",
                Backend::Sqlite => "store-sqlite",
                Backend::Redis => "store-redis",
                Backend::Postgres => "store-postgres",
            };
            report(&mut rows, log, Some(b), Who::Ours, store, r);
        }
        if opts.runs(Who::Tower) {
            let r = async {
                let res = bench_app(tower_app(env, b).await?, opts.load()).await?;
                if b == Backend::Redis {
                    remember_redis_keys(env, Who::Tower, &res.cookies);
                }
                anyhow::Ok(res.sample)
            }
            .await;
            let store = match b {
                Backend::Memory => "MemoryStore",
                Backend::Sqlite => "tower-sessions-sqlx-store 0.15 SqliteStore",
                Backend::Redis => "tower-sessions-redis-store 0.16 (fred)",
                Backend::Postgres => "tower-sessions-sqlx-store 0.15 PostgresStore",
            };
            report(&mut rows, log, Some(b), Who::Tower, store, r);
        }
        let express_store = match b {
            Backend::Memory => Some(("memory", "MemoryStore")),
            Backend::Redis => Some(("redis", "connect-redis 9")),
            Backend::Postgres => Some(("postgres", "connect-pg-simple 10")),
            Backend::Sqlite => None,
        };
        if let (true, Some((kind, store))) = (node_ok, express_store) {
            let r = async {
                let app = node::start(env, kind).await?;
                let res = load::run(app.addr, opts.load()).await;
                app.stop().await;
                let res = res?;
                if b == Backend::Redis {
                    remember_redis_keys(env, Who::Express, &res.cookies);
                }
                anyhow::Ok(res.sample)
            }
            .await;
            report(&mut rows, log, Some(b), Who::Express, store, r);
        }
    }
    rows
}

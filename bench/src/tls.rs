//! Section `tls`: what TLS costs, on one server that listens in cleartext
//! and over TLS at once (started by `cargo xtask bench`: Redis and
//! PostgreSQL, `BENCH_PLAIN_*_URL` and `BENCH_TLS_*_URL`, the CA in
//! `SESSION_TEST_TLS_CA`).
//!
//! - Connection setup: sequential new connections, each opened (TCP, and
//!   the TLS handshake with certificate and host name checks), asked one
//!   round trip (`PING`, `SELECT 1`) and closed, with the raw drivers;
//!   cleartext and TLS alternate in slices. The handshake's cost is the
//!   difference of the medians.
//! - Steady state: the HTTP counter (ours) on a store over TLS and on the
//!   same store in cleartext, in interleaved rounds: what TLS costs a
//!   deployment whose connections are already open.

use crate::env::{Backend, PG_POOL};
use crate::http::HttpOpts;
use crate::stats::{self, fmt_dur, fmt_rate, fmt_ratio, Sample};
use crate::{load, server};
use anyhow::{Context, Result};
use sessionkit_core::Store;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// The two ways to the same server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cleartext,
    Tls,
}

/// One backend's connection setup, both ways.
pub struct ConnRow {
    pub backend: Backend,
    pub cleartext: Sample,
    pub tls: Sample,
}

/// One backend's HTTP counter, both ways.
pub struct HttpRow {
    pub backend: Backend,
    pub cleartext: Sample,
    pub tls: Sample,
}

#[derive(Default)]
pub struct Results {
    pub conns: Vec<ConnRow>,
    pub http: Vec<HttpRow>,
}

/// Slices per connection measurement: cleartext and TLS take turns.
const SLICES: usize = 10;

struct Urls {
    cleartext: String,
    tls: String,
    ca: String,
}

fn urls(b: Backend) -> Option<Urls> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let (plain, tls) = match b {
        Backend::Redis => ("BENCH_PLAIN_REDIS_URL", "BENCH_TLS_REDIS_URL"),
        Backend::Postgres => ("BENCH_PLAIN_POSTGRES_URL", "BENCH_TLS_POSTGRES_URL"),
        _ => return None,
    };
    Some(Urls {
        cleartext: var(plain)?,
        tls: var(tls)?,
        ca: var("SESSION_TEST_TLS_CA")?,
    })
}

/// Opens one connection, makes one round trip, closes it.
async fn connect_once(b: Backend, mode: Mode, u: &Urls) -> Result<()> {
    use sqlx::Connection;
    match b {
        Backend::Redis => {
            let client = match mode {
                Mode::Cleartext => redis::Client::open(u.cleartext.as_str())?,
                Mode::Tls => redis::Client::build_with_tls(
                    u.tls.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(std::fs::read(&u.ca)?),
                    },
                )?,
            };
            let mut c = client.get_multiplexed_async_connection().await?;
            let pong: String = redis::cmd("PING").query_async(&mut c).await?;
            anyhow::ensure!(pong == "PONG", "PING answered {pong:?}");
        }
        Backend::Postgres => {
            let url = match mode {
                Mode::Cleartext => &u.cleartext,
                Mode::Tls => &u.tls,
            };
            let mut c = sqlx::PgConnection::connect(url).await?;
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await?;
            anyhow::ensure!(one == 1);
            c.close().await?;
        }
        _ => anyhow::bail!("no TLS bench for {}", b.name()),
    }
    Ok(())
}

async fn connections(b: Backend, u: &Urls, count: usize) -> Result<ConnRow> {
    let mut row = ConnRow {
        backend: b,
        cleartext: Sample::empty(),
        tls: Sample::empty(),
    };
    // One of each first, unmeasured: the server's caches, the CA parsed.
    connect_once(b, Mode::Cleartext, u).await?;
    connect_once(b, Mode::Tls, u).await.context("over TLS")?;
    let per_slice = count.div_ceil(SLICES).max(1);
    for _ in 0..SLICES {
        for mode in [Mode::Cleartext, Mode::Tls] {
            let into = match mode {
                Mode::Cleartext => &mut row.cleartext,
                Mode::Tls => &mut row.tls,
            };
            let start = Instant::now();
            for _ in 0..per_slice {
                let t = Instant::now();
                connect_once(b, mode, u).await?;
                stats::record(&mut into.hist, t.elapsed());
                into.ops += 1;
            }
            into.elapsed += start.elapsed();
        }
    }
    Ok(row)
}

async fn store(b: Backend, mode: Mode, u: &Urls) -> Result<Arc<dyn Store>> {
    Ok(match (b, mode) {
        (Backend::Redis, Mode::Cleartext) => Arc::new(
            sessionkit_redis::RedisStore::builder(&u.cleartext)
                .prefix("bench:tls-off:")
                .connect()
                .await?,
        ),
        (Backend::Redis, Mode::Tls) => Arc::new(
            sessionkit_redis::RedisStore::builder(&u.tls)
                .prefix("bench:tls-on:")
                .tls_ca_file(&u.ca)
                .connect()
                .await?,
        ),
        (Backend::Postgres, _) => Arc::new(
            sessionkit_postgres::PostgresStore::builder(match mode {
                Mode::Cleartext => &u.cleartext,
                Mode::Tls => &u.tls,
            })
            .table(match mode {
                Mode::Cleartext => "tls_off",
                Mode::Tls => "tls_on",
            })
            .max_connections(PG_POOL)
            .create_schema(true)
            .prune_interval(None)
            .connect()
            .await?,
        ),
        _ => anyhow::bail!("no TLS bench for {}", b.name()),
    })
}

async fn http(b: Backend, u: &Urls, opts: &HttpOpts) -> Result<HttpRow> {
    let off = server::serve(server::ours(store(b, Mode::Cleartext, u).await?)?).await?;
    let on = server::serve(server::ours(store(b, Mode::Tls, u).await?)?).await?;
    let mut row = HttpRow {
        backend: b,
        cleartext: Sample::empty(),
        tls: Sample::empty(),
    };
    let rounds = opts.rounds.max(1);
    let mut load = opts.load();
    load.measure = opts.measure / rounds;
    load.warmup = opts.warmup / rounds;
    let mut result = Ok(());
    'rounds: for _ in 0..rounds {
        for (addr, into) in [(off.addr, &mut row.cleartext), (on.addr, &mut row.tls)] {
            match load::run(addr, load.clone()).await {
                Ok(r) => into.merge(r.sample),
                Err(e) => {
                    result = Err(e);
                    break 'rounds;
                }
            }
        }
    }
    off.stop().await;
    on.stop().await;
    result.map(|()| row)
}

/// Runs the section for the backends asked for that have a dual server.
pub async fn run(
    backends: &[Backend],
    opts: &HttpOpts,
    quick: bool,
    log: &mut Vec<String>,
) -> Results {
    let mut out = Results::default();
    // The process's rustls provider, before the raw driver's first handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let count = if quick { 20 } else { 400 };
    for b in [Backend::Redis, Backend::Postgres] {
        if !backends.contains(&b) {
            continue;
        }
        let Some(u) = urls(b) else {
            log.push(format!(
                "tls {}: skipped: no BENCH_TLS_* / BENCH_PLAIN_* URLs or SESSION_TEST_TLS_CA (`cargo xtask bench` starts the servers)",
                b.name()
            ));
            continue;
        };
        eprintln!(
            "bench: tls   {:<8} connection setup, {count} each way",
            b.name()
        );
        match connections(b, &u, count).await {
            Ok(r) => {
                eprintln!(
                    "bench: tls   {:<8} connect p50 cleartext {} TLS {}",
                    b.name(),
                    fmt_dur(r.cleartext.p50()),
                    fmt_dur(r.tls.p50())
                );
                out.conns.push(r);
            }
            Err(e) => log.push(format!("tls {} connection setup: {e:#}", b.name())),
        }
        match http(b, &u, opts).await {
            Ok(r) => {
                eprintln!(
                    "bench: tls   {:<8} HTTP cleartext {} req/s, TLS {} req/s",
                    b.name(),
                    fmt_rate(r.cleartext.rate()),
                    fmt_rate(r.tls.rate())
                );
                for (what, s) in [("cleartext", &r.cleartext), ("TLS", &r.tls)] {
                    if let Some(e) = &s.first_error {
                        log.push(format!(
                            "tls {} HTTP {what}: {} errors, first: {e}",
                            b.name(),
                            s.errors
                        ));
                    }
                }
                out.http.push(r);
            }
            Err(e) => log.push(format!("tls {} HTTP: {e:#}", b.name())),
        }
        if b == Backend::Postgres {
            if let Some(v) = negotiated(&u).await {
                log.push(format!("tls postgres: the connections negotiated {v}"));
            }
        }
    }
    out
}

/// The protocol and cipher a TLS connection to PostgreSQL negotiated.
async fn negotiated(u: &Urls) -> Option<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&u.tls).await.ok()?;
    let row: (String, String) = sqlx::query_as(
        "SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
    )
    .fetch_one(&mut c)
    .await
    .ok()?;
    let _ = c.close().await;
    Some(format!("{} with {}", row.0, row.1))
}

impl Results {
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.http.is_empty()
    }

    /// The section of the report.
    pub fn markdown(&self, out: &mut String) {
        if self.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### TLS: cleartext and TLS to the same server\n\n\
             One server listening both ways (started by xtask), the CA and host name checked (rustls).\n"
        );
        if !self.conns.is_empty() {
            let _ = writeln!(out, "Connection setup: a new connection, one round trip (`PING`, `SELECT 1`), closed; raw drivers, sequential, the two ways in alternating slices.\n");
            let _ = writeln!(out, "| backend | connections each | cleartext p50 | cleartext p99 | TLS p50 | TLS p99 | handshake cost (p50 TLS − cleartext) | TLS ÷ cleartext (p50) |");
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
            for r in &self.conns {
                let (c, t) = (r.cleartext.p50(), r.tls.p50());
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.backend.name(),
                    r.tls.ops,
                    fmt_dur(c),
                    fmt_dur(r.cleartext.p99()),
                    fmt_dur(t),
                    fmt_dur(r.tls.p99()),
                    fmt_dur(t.saturating_sub(c)),
                    fmt_ratio(t.as_secs_f64(), c.as_secs_f64()),
                );
            }
            let _ = writeln!(out);
        }
        if !self.http.is_empty() {
            let _ = writeln!(out, "Steady state: the HTTP counter (ours, default pool) on the store in cleartext and over TLS, in interleaved rounds.\n");
            let _ = writeln!(out, "| backend | cleartext req/s | cleartext p50 | TLS req/s | TLS p50 | TLS p99 | TLS ÷ cleartext | errors |");
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
            for r in &self.http {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.backend.name(),
                    fmt_rate(r.cleartext.rate()),
                    fmt_dur(r.cleartext.p50()),
                    fmt_rate(r.tls.rate()),
                    fmt_dur(r.tls.p50()),
                    fmt_dur(r.tls.p99()),
                    fmt_ratio(r.tls.rate(), r.cleartext.rate()),
                    r.cleartext.errors + r.tls.errors,
                );
            }
            let _ = writeln!(out);
        }
    }
}

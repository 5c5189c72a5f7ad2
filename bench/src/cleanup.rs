//! Section 5: pruning a million expired rows while the HTTP benchmark runs.
//!
//! The expired rows are bulk-inserted in one statement (`generate_series`
//! in PostgreSQL, a recursive CTE in SQLite), then the HTTP benchmark runs
//! on our store over the same table: once before, then while
//! `Store::delete_expired` runs (the window ends when it returns). For the
//! proposal in the report, the same is repeated with a batched prune
//! (10,000 rows per statement) written here with the raw driver.

use crate::env::{Backend, Env};
use crate::http::{bench_app, HttpOpts};
use crate::server;
use crate::stats::Sample;
use anyhow::Result;
use sessionkit_core::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per statement of the batched prune: PostgreSQL, SQLite. SQLite
/// holds its one write lock for the whole statement, so its batches are
/// smaller.
pub const BATCH_PG: u64 = 10_000;
pub const BATCH_SQLITE: u64 = 2_000;
/// Pause between two batches, so that waiting writers get the lock.
pub const PAUSE: Duration = Duration::from_millis(10);

pub struct PruneRow {
    pub backend: Backend,
    pub rows: u64,
    pub insert: Duration,
    pub before: Sample,
    /// (how, deleted, time taken, HTTP during)
    pub during: Vec<(String, u64, Duration, Sample)>,
}

const EXPIRED_JSON: &str = r#"{"cookie":{"originalMaxAge":3600000,"expires":"2020-01-01T00:00:00.000Z","httpOnly":true,"path":"/"},"n":1}"#;

enum Handle {
    Pg(sessionkit_postgres::PostgresStore),
    Sqlite(sessionkit_sqlite::SqliteStore),
}

impl Handle {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Handle::Pg(s) => Arc::new(s.clone()),
            Handle::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    async fn insert_expired(&self, n: u64) -> Result<()> {
        match self {
            Handle::Pg(s) => {
                let t = s.qualified_table();
                sqlx::query(&format!(
                    "INSERT INTO {t} (sid, sess, expire) \
                     SELECT 'expired-' || g, $1::json, (now() AT TIME ZONE 'UTC') - interval '1 day' \
                     FROM generate_series(1, $2::bigint) g"
                ))
                .bind(EXPIRED_JSON)
                .bind(n as i64)
                .execute(s.pool())
                .await?;
                sqlx::query(&format!("ANALYZE {t}"))
                    .execute(s.pool())
                    .await?;
            }
            Handle::Sqlite(s) => {
                let t = s.table();
                sqlx::query(&format!(
                    r#"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
INSERT INTO "{t}" (sid, expires, data, "createdAt", "updatedAt")
SELECT 'expired-' || x, '2020-01-01 00:00:00.000 +00:00', ?, '2020-01-01 00:00:00.000 +00:00', '2020-01-01 00:00:00.000 +00:00' FROM c"#
                ))
                .bind(n as i64)
                .bind(EXPIRED_JSON)
                .execute(s.pool())
                .await?;
            }
        }
        Ok(())
    }

    fn batch(&self) -> u64 {
        match self {
            Handle::Pg(_) => BATCH_PG,
            Handle::Sqlite(_) => BATCH_SQLITE,
        }
    }

    /// Deletes expired rows a batch at a time, each batch its own
    /// statement (and transaction), with a pause between batches.
    async fn prune_batched(&self) -> Result<u64> {
        let mut total = 0;
        let batch = self.batch();
        loop {
            let n = match self {
                Handle::Pg(s) => {
                    let t = s.qualified_table();
                    sqlx::query(&format!(
                        "DELETE FROM {t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} \
                         WHERE expire < ($1 AT TIME ZONE 'UTC') LIMIT $2))"
                    ))
                    .bind(sessionkit_core::time::now())
                    .bind(batch as i64)
                    .execute(s.pool())
                    .await?
                    .rows_affected()
                }
                Handle::Sqlite(s) => {
                    let t = s.table();
                    sqlx::query(&format!(
                        r#"DELETE FROM "{t}" WHERE rowid IN (SELECT rowid FROM "{t}" WHERE expires <= ? LIMIT ?)"#
                    ))
                    .bind(sessionkit_sqlite::format_date(&sessionkit_core::time::now()))
                    .bind(batch as i64)
                    .execute(s.pool())
                    .await?
                    .rows_affected()
                }
            };
            total += n;
            if n < batch {
                return Ok(total);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

async fn during(
    handle: &Arc<Handle>,
    app: axum::Router,
    opts: &HttpOpts,
    batched: bool,
) -> Result<(u64, Duration, Sample)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = opts.load();
    // The window is the prune itself, at most ten minutes.
    load.measure = Duration::from_secs(600);
    load.stop = Some(stop.clone());
    let warmup = opts.warmup;
    let h = handle.clone();
    let prune = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let t0 = Instant::now();
        let r = if batched {
            h.prune_batched().await
        } else {
            h.store()
                .delete_expired()
                .await
                .map_err(anyhow::Error::from)
        };
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        r.map(|n| (n, took))
    });
    let res = bench_app(app, load).await;
    let (deleted, took) = prune.await??;
    Ok((deleted, took, res?.sample))
}

async fn one(env: &Env, b: Backend, rows: u64, opts: &HttpOpts) -> Result<PruneRow> {
    let handle = Arc::new(match b {
        Backend::Postgres => Handle::Pg(env.postgres_store("prune_ours").await?),
        Backend::Sqlite => Handle::Sqlite(env.sqlite_store("prune_ours.db").await?),
        _ => anyhow::bail!("no prune benchmark for {}", b.name()),
    });
    let t0 = Instant::now();
    handle.insert_expired(rows).await?;
    let insert = t0.elapsed();
    eprintln!(
        "bench: prune {}: inserted {rows} expired rows in {insert:.1?}",
        b.name()
    );
    let app = server::ours(handle.store())?;
    let before = bench_app(app.clone(), opts.load()).await?.sample;
    let mut row = PruneRow {
        backend: b,
        rows,
        insert,
        before,
        during: Vec::new(),
    };
    let (n, took, s) = during(&handle, app.clone(), opts, false).await?;
    eprintln!(
        "bench: prune {}: delete_expired removed {n} rows in {took:.1?}",
        b.name()
    );
    row.during
        .push(("`delete_expired` (one statement)".into(), n, took, s));

    handle.insert_expired(rows).await?;
    let (n, took, s) = during(&handle, app, opts, true).await?;
    eprintln!(
        "bench: prune {}: batched prune removed {n} rows in {took:.1?}",
        b.name()
    );
    let how = format!(
        "batches of {}, {} ms apart (proposal)",
        handle.batch(),
        PAUSE.as_millis()
    );
    row.during.push((how, n, took, s));
    Ok(row)
}

pub async fn run(env: &Env, rows: u64, opts: &HttpOpts, log: &mut Vec<String>) -> Vec<PruneRow> {
    let mut out = Vec::new();
    for b in [Backend::Postgres, Backend::Sqlite] {
        if !env.has(b) {
            continue;
        }
        match one(env, b, rows, opts).await {
            Ok(r) => out.push(r),
            Err(e) => {
                let msg = format!("prune {}: skipped: {e:#}", b.name());
                eprintln!("bench: {msg}");
                log.push(msg);
            }
        }
    }
    out
}

//! Section 1: store operations, ours next to the raw driver issuing the
//! equivalent commands, with the same pool settings, in the same process,
//! interleaved (ours, raw, ours, raw) so that noise hits both alike.
//!
//! "Raw" is the floor: the driver's commands with the same bytes (the
//! record's JSON, built once), no (de)serialisation, no validation, no
//! tracing spans. The difference is everything the store adds.

use crate::env::{Backend, Env};
use crate::raw::{MemoryKv, MongoKv, MySqlKv, PgKv, Raw, RedisKv, SqliteKv};
use crate::stats::{self, Sample};
use anyhow::{bail, Result};
use async_trait::async_trait;
use sessionkit_core::{Record, SessionId, Store, WriteOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sessions created before the measurements; operations cycle through them.
pub const SLOTS: usize = 1000;

/// Each contender's time is cut into this many slices, alternating with the other's.
pub const SLICES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Load,
    Save,
    Touch,
    CreateDestroy,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Load, Op::Save, Op::Touch, Op::CreateDestroy];

    pub fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Save => "save",
            Op::Touch => "touch",
            Op::CreateDestroy => "create+destroy",
        }
    }
}

/// Per-task scratch state: a record whose id is replaced for each create.
pub struct Scratch {
    pub record: Record,
}

/// One contender at store level.
#[async_trait]
pub trait Target: Send + Sync + 'static {
    async fn op(&self, op: Op, slot: usize, scratch: &mut Scratch) -> Result<()>;
}

/// A 1 KiB session (its JSON is exactly 1024 bytes) expiring in an hour.
pub fn session_1k(id: SessionId) -> Record {
    let mut r = Record::new(id);
    r.cookie
        .set_max_age(Some(Duration::from_secs(3600)), sessionkit_core::time::now());
    r.data.insert("user".into(), "bench".into());
    r.data.insert("payload".into(), String::new().into());
    let len = r.to_json().map(|j| j.len()).unwrap_or(0);
    let pad = 1024usize.saturating_sub(len);
    r.data.insert("payload".into(), "x".repeat(pad).into());
    r
}

/// Our store, whichever it is.
pub struct Ours {
    store: Arc<dyn Store>,
    records: Vec<Record>,
}

impl Ours {
    pub async fn new(store: Arc<dyn Store>, records: &[Record]) -> Result<Self> {
        for r in records {
            store.create(r).await?;
        }
        Ok(Ours {
            store,
            records: records.to_vec(),
        })
    }
}

#[async_trait]
impl Target for Ours {
    async fn op(&self, op: Op, slot: usize, scratch: &mut Scratch) -> Result<()> {
        let r = &self.records[slot];
        match op {
            Op::Load => {
                if self.store.load(&r.id).await?.is_none() {
                    bail!("load found nothing");
                }
            }
            Op::Save => {
                if self.store.save(r).await? != WriteOutcome::Written {
                    bail!("save found nothing");
                }
            }
            Op::Touch => {
                if self.store.touch(&r.id, r.cookie.expires).await? != WriteOutcome::Written {
                    bail!("touch found nothing");
                }
            }
            Op::CreateDestroy => {
                scratch.record.id = SessionId::generate();
                self.store.create(&scratch.record).await?;
                self.store.destroy(&scratch.record.id).await?;
            }
        }
        Ok(())
    }
}

/// Runs `op` on `conc` tasks for `dur`.
pub async fn measure(
    target: Arc<dyn Target>,
    template: &Record,
    op: Op,
    conc: usize,
    dur: Duration,
) -> Sample {
    let start = Instant::now();
    let deadline = start + dur;
    let mut handles = Vec::with_capacity(conc);
    for t in 0..conc {
        let target = target.clone();
        let mut scratch = Scratch {
            record: template.clone(),
        };
        handles.push(tokio::spawn(async move {
            let mut s = Sample::empty();
            let mut slot = (t * 7919) % SLOTS;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = target.op(op, slot, &mut scratch).await;
                stats::record(&mut s.hist, t0.elapsed());
                s.ops += 1;
                if let Err(e) = r {
                    s.errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(format!("{e:#}"));
                    }
                }
                slot = (slot + 1) % SLOTS;
            }
            s
        }));
    }
    let mut total = Sample::empty();
    for h in handles {
        if let Ok(s) = h.await {
            total.hist.add(&s.hist).ok();
            total.ops += s.ops;
            total.errors += s.errors;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// One line of the store table.
pub struct Row {
    pub backend: Backend,
    pub op: Op,
    pub conc: usize,
    pub ours: Sample,
    pub raw: Sample,
}

/// Ours and raw for one backend, or the reason it could not run.
async fn contenders(
    env: &Env,
    b: Backend,
    records: &[Record],
) -> Result<(Arc<dyn Target>, Arc<dyn Target>)> {
    let (store, raw): (Arc<dyn Store>, Arc<dyn Target>) = match b {
        Backend::Memory => (
            Arc::new(sessionkit_memory::MemoryStore::new()),
            Arc::new(Raw::fill(MemoryKv::default(), records).await?),
        ),
        Backend::Sqlite => (
            Arc::new(env.sqlite_store("store_ours.db").await?),
            Arc::new(Raw::fill(SqliteKv::new(env, "store_raw.db").await?, records).await?),
        ),
        Backend::Redis => (
            Arc::new(env.redis_store("bench:store:").await?),
            Arc::new(Raw::fill(RedisKv::new(env, "bench:store-raw:").await?, records).await?),
        ),
        Backend::Postgres => (
            Arc::new(env.postgres_store("store_ours").await?),
            Arc::new(Raw::fill(PgKv::new(env, "store_raw").await?, records).await?),
        ),
        Backend::Mongo => (
            Arc::new(env.mongo_store("store_ours").await?),
            Arc::new(Raw::fill(MongoKv::new(env, "store_raw").await?, records).await?),
        ),
        Backend::Mysql => (
            Arc::new(env.mysql_store("store_ours").await?),
            Arc::new(Raw::fill(MySqlKv::new(env, "store_raw").await?, records).await?),
        ),
    };
    let ours: Arc<dyn Target> = Arc::new(Ours::new(store, records).await?);
    Ok((ours, raw))
}

pub async fn run(env: &Env, dur: Duration, log: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    let records: Vec<Record> = (0..SLOTS)
        .map(|_| session_1k(SessionId::generate()))
        .collect();
    let template = session_1k(SessionId::generate());
    for b in env.backends() {
        let (ours, raw) = match contenders(env, b, &records).await {
            Ok(c) => c,
            Err(e) => {
                log.push(format!("store level, {}: skipped: {e:#}", b.name()));
                eprintln!("bench: store level, {}: skipped: {e:#}", b.name());
                continue;
            }
        };
        for op in Op::ALL {
            for conc in [1, 32] {
                // Interleaved slices: ours, raw, ours, raw, ...
                let slice = dur / SLICES;
                let mut o = Sample::empty();
                let mut r = Sample::empty();
                for _ in 0..SLICES {
                    o.merge(measure(ours.clone(), &template, op, conc, slice).await);
                    r.merge(measure(raw.clone(), &template, op, conc, slice).await);
                }
                for (who, s) in [("ours", &o), ("raw", &r)] {
                    if let Some(e) = &s.first_error {
                        let msg = format!(
                            "store level, {} {} ×{conc}, {who}: {} errors, first: {e}",
                            b.name(),
                            op.name(),
                            s.errors
                        );
                        eprintln!("bench: {msg}");
                        log.push(msg);
                    }
                }
                eprintln!(
                    "bench: store {:<8} {:<14} ×{conc:<2}  ours {:>8}/s p99 {:>9}  raw {:>8}/s p99 {:>9}  {}",
                    b.name(),
                    op.name(),
                    stats::fmt_rate(o.rate()),
                    stats::fmt_dur(o.p99()),
                    stats::fmt_rate(r.rate()),
                    stats::fmt_dur(r.p99()),
                    stats::fmt_ratio(o.rate(), r.rate()),
                );
                rows.push(Row {
                    backend: b,
                    op,
                    conc,
                    ours: o,
                    raw: r,
                });
            }
        }
    }
    rows
}

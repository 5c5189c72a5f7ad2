//! `cargo xtask faults [--backend NAME]...`: the fault tests of issue 8.
//!
//! Runs the demo binary (`target/debug/session-demo`) against **private**
//! servers on free loopback ports in temporary directories (never the
//! shared servers on the usual ports) and drives it with plain HTTP/1.1
//! requests, each bounded by [`REQUEST_TIMEOUT`]:
//!
//! - Redis (append-only file, fsync always), PostgreSQL, MariaDB and the
//!   MongoDB test server (data in a directory, sync on commit): [`CLIENTS`]
//!   sessions are created and incremented; the server is stopped; every
//!   request during the outage must get the configured error status (503)
//!   within the timeout while the app stays alive; the server is started
//!   again on the same port and data; the app must answer 200 again within
//!   [`RECOVERY_LIMIT`] of the server accepting connections; every session
//!   must then hold exactly the counter it had before the outage.
//! - SQLite: writer threads create and increment sessions, recording each
//!   acknowledged (200) counter; the demo is killed with SIGKILL mid-loop,
//!   started again on the same file, and every acknowledged session must
//!   be there with at least its acknowledged counter.
//!
//! - Redis Cluster (3 masters, 3 replicas) and Sentinel (master, replica,
//!   3 Sentinels), own sets on fixed loopback ports: writer threads create
//!   and increment sessions, recording each acknowledged counter; a master
//!   is killed with SIGKILL by its PID; every request must get 200 or the
//!   error status within the timeout, requests must succeed again within
//!   [`FAILOVER_RECOVERY_LIMIT`] of the kill without restarting the demo,
//!   and acknowledged sessions missing after the promotion are counted and
//!   reported (replication is asynchronous: a few may be lost).
//!
//! Prints a table and fails on any failure.

use crate::servers::{self, Private, RedisGroup};
use crate::Backend;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every request gets an answer within this, or it counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The app answers again within this of the server accepting connections.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// The session layer's default error status for a store failure.
const ERROR_STATUS: u16 = 503;
/// Sessions created before an outage.
const CLIENTS: usize = 20;
/// Requests sent while the server is down.
const OUTAGE_REQUESTS: usize = 20;
/// Clients sending them concurrently.
const OUTAGE_THREADS: usize = 5;
/// Acknowledged SQLite writes before the kill.
const SQLITE_ACKS: usize = 300;
/// SQLite writer threads.
const SQLITE_WRITERS: usize = 4;
/// The demo's signing secret (≥ 32 bytes).
const SECRET: &str = "xtask-faults-secret-0123456789abcdef-0123456789";

/// Runs the fault tests on the backends named (default: every backend but
/// memory).
pub fn run(args: &[String]) -> Result<()> {
    let mut backends = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => backends.push(Backend::parse(
                it.next().context("--backend needs a name")?,
            )?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if backends.is_empty() {
        backends = vec![
            Backend::Redis,
            Backend::Postgres,
            Backend::Mongo,
            Backend::Mysql,
            Backend::Sqlite,
            Backend::RedisCluster,
            Backend::RedisSentinel,
        ];
    }
    // `ci` built it with the workspace's tests already.
    if crate::prebuilt_bin("session-demo").is_none() {
        crate::run(
            "build the demo",
            Command::new(crate::cargo()).args(["build", "-p", "session-demo"]),
        )?;
    }
    let bin = demo_binary()?;
    let start = Instant::now();
    let mut rows = Vec::new();
    for b in backends {
        eprintln!("xtask: == faults on {}", b.name());
        let mut row = Row::new(b);
        let result = match b {
            Backend::Sqlite => sqlite_case(&bin, &mut row),
            Backend::Memory => Err(anyhow::anyhow!("memory has no server and no file")),
            Backend::RedisCluster | Backend::RedisSentinel => failover_case(b, &bin, &mut row),
            _ => server_case(b, &bin, &mut row),
        };
        if let Err(e) = result {
            row.failures.push(format!("{e:#}"));
        }
        for f in &row.failures {
            eprintln!("xtask: faults on {}: FAILED: {f}", b.name());
        }
        rows.push(row);
    }
    print_table(&rows);
    eprintln!("xtask: faults took {:.0}s", start.elapsed().as_secs_f64());
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| r.backend.name())
        .collect();
    if !failed.is_empty() {
        bail!("fault tests failed on: {}", failed.join(", "));
    }
    Ok(())
}

fn demo_binary() -> Result<PathBuf> {
    let bin = std::path::absolute(crate::target_dir().join("debug").join("session-demo"))?;
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// One line of the table.
struct Row {
    backend: Backend,
    sent: u32,
    errors: u32,
    max_error: Option<Duration>,
    recovery: Option<Duration>,
    lost: Option<u32>,
    note: String,
    failures: Vec<String>,
}

impl Row {
    fn new(backend: Backend) -> Row {
        Row {
            backend,
            sent: 0,
            errors: 0,
            max_error: None,
            recovery: None,
            lost: None,
            note: String::new(),
            failures: Vec::new(),
        }
    }

    fn error_seen(&mut self, took: Duration) {
        self.errors += 1;
        self.max_error = Some(self.max_error.map_or(took, |m| m.max(took)));
    }
}

fn print_table(rows: &[Row]) {
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
    println!();
    println!("| backend  | requests | errors | max error latency | recovery (restart/kill) | sessions lost | result | notes");
    println!("|----------|---------:|-------:|------------------:|------------------------:|--------------:|--------|------");
    for r in rows {
        println!(
            "| {:<8} | {:>8} | {:>6} | {:>17} | {:>23} | {:>13} | {:<6} | {}",
            r.backend.name(),
            r.sent,
            r.errors,
            ms(r.max_error),
            ms(r.recovery),
            r.lost.map_or("-".to_owned(), |l| l.to_string()),
            if r.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            r.note
        );
    }
    println!();
}

/// A browser: its cookie and the counter it last saw acknowledged.
#[derive(Clone)]
struct Client {
    cookie: String,
    views: u64,
}

/// Restart of a server backend while the demo serves it.
fn server_case(b: Backend, bin: &Path, row: &mut Row) -> Result<()> {
    let mut server = Private::start(b)?;
    row.note = format!("private {}", server.how());
    let sep = if server.url().contains('?') { '&' } else { '?' };
    let store_url = format!("{}{sep}connect_timeout=2", server.url());
    let dir = servers::temp_dir(&format!("faults-demo-{}", b.name()))?;
    let mut demo = Demo::start(bin, &store_url, &dir, "demo")?;

    // Sessions before the outage: created, then incremented once.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        row.sent += 1;
        let r = get(demo.port, None).context("creating a session")?;
        let cookie = match (r.status, r.cookie, r.views) {
            (200, Some(c), Some(1)) => c,
            (s, c, v) => bail!("creating a session: status {s}, cookie {c:?}, views {v:?}"),
        };
        let mut c = Client { cookie, views: 1 };
        row.sent += 1;
        let r = get(demo.port, Some(&c.cookie)).context("incrementing a session")?;
        if r.status != 200 || r.views != Some(2) {
            bail!(
                "incrementing a session: status {}, views {:?}",
                r.status,
                r.views
            );
        }
        c.views = 2;
        clients.push(c);
    }

    // The outage: every request gets the error status in bounded time.
    // Several clients at once, as an app under traffic would see.
    server.stop()?;
    let port = demo.port;
    let answers: Vec<(Duration, Result<Reply>)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..OUTAGE_THREADS)
            .map(|t| {
                let clients = &clients;
                s.spawn(move || {
                    (0..OUTAGE_REQUESTS / OUTAGE_THREADS)
                        .map(|k| {
                            let i = t * (OUTAGE_REQUESTS / OUTAGE_THREADS) + k;
                            // One in five comes without a cookie (a new visitor).
                            let cookie = (i % 5 != 4).then(|| clients[i % CLIENTS].cookie.as_str());
                            let start = Instant::now();
                            let r = get(port, cookie);
                            (start.elapsed(), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect()
    });
    if answers.len() != OUTAGE_REQUESTS {
        row.failures
            .push("an outage request thread died".to_owned());
    }
    let mut latencies = Vec::new();
    for (took, r) in answers {
        row.sent += 1;
        latencies.push(format!("{}", took.as_millis()));
        match r {
            Ok(r) if r.status == ERROR_STATUS && took <= REQUEST_TIMEOUT => row.error_seen(took),
            Ok(r) if r.status == ERROR_STATUS => {
                row.error_seen(took);
                row.failures
                    .push(format!("an outage request took {} ms", took.as_millis()));
            }
            Ok(r) => row.failures.push(format!(
                "status {} during the outage (expected {ERROR_STATUS})",
                r.status
            )),
            Err(e) => row.failures.push(format!(
                "no answer during the outage after {} ms: {e:#}",
                took.as_millis()
            )),
        }
    }
    if !demo.alive() {
        bail!(
            "the demo exited during the outage (log: {})",
            demo.log.display()
        );
    }
    eprintln!(
        "xtask: {}: outage answers took (ms): {}",
        b.name(),
        latencies.join(" ")
    );

    // Back: the app answers again by itself, within the limit.
    server.resume()?;
    let back = Instant::now();
    loop {
        let c = &mut clients[0];
        row.sent += 1;
        let t = Instant::now();
        let r = get(demo.port, Some(&c.cookie));
        let took = t.elapsed();
        match r {
            Ok(r) if r.status == 200 => {
                row.recovery = Some(back.elapsed());
                if r.views != Some(c.views + 1) {
                    row.failures.push(format!(
                        "first session after recovery: views {:?}, expected {}",
                        r.views,
                        c.views + 1
                    ));
                }
                c.views += 1;
                break;
            }
            Ok(r) if r.status == ERROR_STATUS && took <= REQUEST_TIMEOUT => row.error_seen(took),
            Ok(r) => bail!(
                "status {} after {} ms while recovering",
                r.status,
                took.as_millis()
            ),
            Err(e) => bail!(
                "no answer after {} ms while recovering: {e:#}",
                took.as_millis()
            ),
        }
        if back.elapsed() > RECOVERY_LIMIT + REQUEST_TIMEOUT {
            bail!(
                "no recovery within {} s of the server's return",
                back.elapsed().as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(rec) = row.recovery.filter(|r| *r > RECOVERY_LIMIT) {
        row.failures.push(format!(
            "recovered {} ms after the server returned (limit {} s)",
            rec.as_millis(),
            RECOVERY_LIMIT.as_secs()
        ));
    }

    // Sessions written before the outage are intact.
    let mut lost = 0;
    for c in &mut clients {
        row.sent += 1;
        let r = get(demo.port, Some(&c.cookie)).context("reading a session back")?;
        if r.status != 200 {
            bail!("reading a session back: status {}", r.status);
        }
        if r.views == Some(c.views + 1) {
            c.views += 1;
        } else {
            lost += 1;
            eprintln!(
                "xtask: {}: session lost or changed: views {:?}, expected {}",
                b.name(),
                r.views,
                c.views + 1
            );
        }
    }
    row.lost = Some(lost);
    if lost > 0 {
        row.failures.push(format!(
            "{lost} of {CLIENTS} sessions lost over the restart"
        ));
    }
    demo.check_healthy(row);
    drop(demo);
    keep_or_remove(&dir, row);
    Ok(())
}

/// Writer threads of a failover test.
const FAILOVER_WRITERS: usize = 4;
/// Acknowledged writes before the master is killed.
const FAILOVER_ACKS: usize = 200;
/// The store's per-command bound in the failover tests (URL option).
const FAILOVER_RESPONSE_TIMEOUT_SECS: u64 = 3;
/// Writing goes on this long after the kill at most.
const FAILOVER_WINDOW: Duration = Duration::from_secs(25);
/// Requests must have recovered within this of the kill.
const FAILOVER_RECOVERY_LIMIT: Duration = Duration::from_secs(15);
/// Clean running after the last failure that ends the observation.
const FAILOVER_CLEAN: Duration = Duration::from_secs(4);

/// One request of a failover test: when it started (since the test's
/// start), how long it took, and its status (`None`: no answer).
struct Sample {
    at: Duration,
    took: Duration,
    status: Option<u16>,
}

/// Redis Cluster / Sentinel failover: writers create and increment
/// sessions through the demo, recording each acknowledged counter; a
/// master is killed with SIGKILL by its PID; requests must fail with the
/// store's error status (bounded) or succeed, and succeed again without
/// restarting the demo; acknowledged sessions missing afterwards are
/// counted (asynchronous replication may lose the last writes).
fn failover_case(b: Backend, bin: &Path, row: &mut Row) -> Result<()> {
    let mut group = match b {
        Backend::RedisSentinel => RedisGroup::start_sentinel(servers::FAULTS_SENTINEL_PORT)?,
        _ => RedisGroup::start_cluster(servers::FAULTS_CLUSTER_PORT)?,
    };
    let store_url = format!(
        "{}?connect_timeout=2&response_timeout={FAILOVER_RESPONSE_TIMEOUT_SECS}",
        group.url()
    );
    let dir = servers::temp_dir(&format!("faults-demo-{}", b.name()))?;
    let mut demo = Demo::start(bin, &store_url, &dir, "demo")?;
    let port = demo.port;
    let t0 = Instant::now();
    // Cookie -> (last acknowledged counter, when it was acknowledged).
    let acked: Arc<Mutex<HashMap<String, (u64, Duration)>>> = Arc::default();
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let acks = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..FAILOVER_WRITERS {
        let (acked, samples, acks, stop) =
            (acked.clone(), samples.clone(), acks.clone(), stop.clone());
        writers.push(std::thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::SeqCst) {
                // A new session, then increments of it.
                let mut cookie: Option<String> = None;
                for _ in 0..5 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let at = t0.elapsed();
                    let r = get(port, cookie.as_deref());
                    let took = t0.elapsed() - at;
                    let status = r.as_ref().ok().map(|r| r.status);
                    samples
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(Sample { at, took, status });
                    let Ok(r) = r else { continue };
                    if r.status != 200 {
                        continue;
                    }
                    // A new cookie for a known one: its session was lost;
                    // its entry keeps the last acknowledged counter (to be
                    // found missing at the end) and this one goes on.
                    let c = match (cookie, r.cookie) {
                        (_, Some(new)) => new,
                        (Some(old), None) => old,
                        (None, None) => bail!("no cookie for a new session"),
                    };
                    let views = r.views.context("no counter in the page")?;
                    acked
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .insert(c.clone(), (views, t0.elapsed()));
                    acks.fetch_add(1, Ordering::SeqCst);
                    cookie = Some(c);
                }
            }
            Ok(())
        }));
    }
    let stop_writers = |writers: Vec<std::thread::JoinHandle<Result<()>>>, row: &mut Row| {
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => row.failures.push(format!("writer: {e:#}")),
                Err(_) => row.failures.push("a writer thread panicked".to_owned()),
            }
        }
    };

    // Load first, then the kill.
    while (acks.load(Ordering::SeqCst) as usize) < FAILOVER_ACKS {
        if writers.iter().any(|w| w.is_finished()) || t0.elapsed() > Duration::from_secs(60) {
            stop_writers(writers, row);
            bail!("no {FAILOVER_ACKS} acknowledged writes before the kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let acks_before = acks.load(Ordering::SeqCst);
    let (master_port, pid) = group.kill_master()?;
    let killed = t0.elapsed();
    eprintln!(
        "xtask: {}: killed the master on :{master_port} (pid {pid}) after {acks_before} acknowledged writes",
        b.name()
    );

    // Writers go on until requests have run clean for a while after a
    // failure (or the window closes).
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = t0.elapsed();
        let last_failure_end = samples
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .iter()
            .filter(|s| s.at >= killed && s.status != Some(200))
            .map(|s| s.at + s.took)
            .max();
        let clean_since = last_failure_end.unwrap_or(killed);
        if (last_failure_end.is_some() && now >= clean_since + FAILOVER_CLEAN)
            || now >= killed + FAILOVER_WINDOW
            || !demo.alive()
        {
            break;
        }
    }
    stop_writers(writers, row);
    let promoted: Vec<String> = group
        .roles()
        .into_iter()
        .filter(|(_, role)| role == "master")
        .map(|(port, _)| format!(":{port}"))
        .collect();

    // Requests after the kill: the store's error or success, bounded.
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    row.sent = samples.len() as u32;
    let mut first_failure: Option<Duration> = None;
    let mut last_failure_end: Option<Duration> = None;
    for s in samples.iter().filter(|s| s.at + s.took >= killed) {
        match s.status {
            Some(200) => {}
            Some(ERROR_STATUS) => {
                row.error_seen(s.took);
                first_failure = Some(first_failure.map_or(s.at, |f| f.min(s.at)));
                last_failure_end =
                    Some(last_failure_end.map_or(s.at + s.took, |l| l.max(s.at + s.took)));
                if s.took > REQUEST_TIMEOUT {
                    row.failures
                        .push(format!("an error took {} ms", s.took.as_millis()));
                }
            }
            Some(other) => row.failures.push(format!(
                "status {other} during the failover (expected 200 or {ERROR_STATUS})"
            )),
            None => {
                row.errors += 1;
                row.failures.push(format!(
                    "no answer within {} s during the failover",
                    REQUEST_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let recovered = samples
        .iter()
        .filter(|s| s.status == Some(200) && s.at >= last_failure_end.unwrap_or(killed))
        .map(|s| s.at + s.took)
        .min();
    match recovered {
        Some(at) => {
            let rec = at.saturating_sub(killed);
            row.recovery = Some(rec);
            if rec > FAILOVER_RECOVERY_LIMIT {
                row.failures.push(format!(
                    "recovered {} ms after the kill (limit {} s)",
                    rec.as_millis(),
                    FAILOVER_RECOVERY_LIMIT.as_secs()
                ));
            }
        }
        None => row.failures.push(format!(
            "no successful request after the last failure ({} s after the kill)",
            (t0.elapsed() - killed).as_secs()
        )),
    }
    let failing = match (first_failure, last_failure_end) {
        (Some(f), Some(l)) => format!("{} ms", l.saturating_sub(f).as_millis()),
        _ => "no".to_owned(),
    };

    // Acknowledged sessions after the promotion.
    let acked = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let (mut gone, mut behind) = (0u32, 0u32);
    // How long before the kill the lost writes were acknowledged (negative:
    // after the kill, which asynchronous replication cannot explain).
    let mut lost_acked_at: Vec<i128> = Vec::new();
    for (cookie, (views, at)) in &acked {
        let r = get(demo.port, Some(cookie)).context("reading a session back")?;
        if r.status != 200 {
            bail!("reading a session back: status {}", r.status);
        }
        match r.views {
            // An error answer may still have written: more is fine.
            Some(v) if v > *views => continue,
            // A new session: the acknowledged one is gone.
            Some(1) => gone += 1,
            _ => behind += 1,
        }
        lost_acked_at.push(killed.as_millis() as i128 - at.as_millis() as i128);
    }
    lost_acked_at.sort_unstable();
    let lost_when = match (lost_acked_at.first(), lost_acked_at.last()) {
        (Some(a), Some(b)) => format!(" (acknowledged {a} to {b} ms before the kill)"),
        _ => String::new(),
    };
    row.lost = Some(gone + behind);
    row.note = format!(
        "SIGKILL of the master :{master_port} (pid {pid}) after {acks_before} acks; errors over {failing}; \
         {} sessions checked: {gone} gone, {behind} behind their acknowledged counter{lost_when}; masters now {}; {}",
        acked.len(),
        promoted.join(" "),
        group.how()
    );
    demo.check_healthy(row);
    drop(demo);
    keep_or_remove(&dir, row);
    Ok(())
}

/// Removes a temporary directory, or keeps it (with the demo's log) when
/// the row failed.
fn keep_or_remove(dir: &Path, row: &Row) {
    if row.failures.is_empty() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!(
            "xtask: faults on {}: the demo's log is kept in {}",
            row.backend.name(),
            dir.display()
        );
    }
}

/// SQLite: kill -9 the app during a write loop; every acknowledged
/// session is in the file afterwards.
fn sqlite_case(bin: &Path, row: &mut Row) -> Result<()> {
    let dir = servers::temp_dir("faults-sqlite")?;
    let store_url = format!("sqlite://{}", dir.join("sessions.db").display());
    row.note = "kill -9 of the app mid-write-loop, then the same file reopened".to_owned();
    let mut demo = Demo::start(bin, &store_url, &dir, "demo-1")?;
    let port = demo.port;
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let acks = Arc::new(AtomicU32::new(0));
    let sent = Arc::new(AtomicU32::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..SQLITE_WRITERS {
        let (acked, acks, sent, killed) =
            (acked.clone(), acks.clone(), sent.clone(), killed.clone());
        writers.push(std::thread::spawn(move || -> Result<u32> {
            // Each writer: a new session, then increments, round after round.
            let mut failed_after_kill = 0;
            'rounds: while !killed.load(Ordering::SeqCst) {
                let mut cookie: Option<String> = None;
                for _ in 0..5 {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let r = match get(port, cookie.as_deref()) {
                        Ok(r) => r,
                        Err(_) if killed.load(Ordering::SeqCst) => {
                            failed_after_kill += 1;
                            break 'rounds;
                        }
                        Err(e) => return Err(e.context("a write before the kill")),
                    };
                    if r.status != 200 {
                        bail!("status {} before the kill", r.status);
                    }
                    let c = match (&cookie, r.cookie) {
                        (Some(c), _) => c.clone(),
                        (None, Some(c)) => c,
                        (None, None) => bail!("no cookie for a new session"),
                    };
                    let views = r.views.context("no counter in the page")?;
                    acked
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .insert(c.clone(), views);
                    acks.fetch_add(1, Ordering::SeqCst);
                    cookie = Some(c);
                }
            }
            Ok(failed_after_kill)
        }));
    }
    // Kill mid-loop, once enough writes were acknowledged (or a writer stopped).
    let t = Instant::now();
    while (acks.load(Ordering::SeqCst) as usize) < SQLITE_ACKS
        && !writers.iter().any(|w| w.is_finished())
        && t.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    demo.child.kill().context("kill -9 of the demo")?;
    killed.store(true, Ordering::SeqCst);
    let _ = demo.child.wait();
    for w in writers {
        match w.join() {
            Ok(Ok(n)) => row.errors += n,
            Ok(Err(e)) => row.failures.push(format!("writer: {e:#}")),
            Err(_) => row.failures.push("a writer thread panicked".to_owned()),
        }
    }
    row.sent = sent.load(Ordering::SeqCst);
    drop(demo);

    // The same file, a new app: every acknowledged session is there.
    let t = Instant::now();
    let demo = Demo::start(bin, &store_url, &dir, "demo-2")?;
    row.recovery = Some(t.elapsed());
    let acked = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    if acked.is_empty() {
        bail!("no write was acknowledged before the kill");
    }
    let mut lost = 0;
    for (cookie, views) in &acked {
        row.sent += 1;
        let r = get(demo.port, Some(cookie)).context("reading a session back")?;
        if r.status != 200 {
            bail!("reading a session back: status {}", r.status);
        }
        // One more than acknowledged: a write in flight at the kill may
        // have been committed without its answer being read.
        if r.views.is_none_or(|v| v < views + 1) {
            lost += 1;
            eprintln!(
                "xtask: sqlite: session lost: views {:?}, acknowledged {views}",
                r.views
            );
        }
    }
    row.note = format!(
        "{} sessions ({} acknowledged writes) before kill -9; errors = requests cut by the kill; {}",
        acked.len(),
        acks.load(Ordering::SeqCst),
        "recovery = restart of the app on the same file"
    );
    row.lost = Some(lost);
    if lost > 0 {
        row.failures
            .push(format!("{lost} acknowledged sessions lost after kill -9"));
    }
    let mut demo = demo;
    demo.check_healthy(row);
    drop(demo);
    keep_or_remove(&dir, row);
    Ok(())
}

/// The demo binary, killed on drop.
struct Demo {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Demo {
    fn start(bin: &Path, store_url: &str, dir: &Path, name: &str) -> Result<Demo> {
        let port = servers::free_port()?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let mut child = Command::new(bin)
            .current_dir(dir)
            .env("SESSION_STORE_URL", store_url)
            .env("SESSION_SECRET", SECRET)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let t = Instant::now();
        while !servers::listening(port) {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the demo exited ({status}) before listening; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the demo did not listen within 30 s (log: {})",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Demo { child, port, log })
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Still running and no panic in its log.
    fn check_healthy(&mut self, row: &mut Row) {
        if !self.alive() {
            row.failures.push("the demo exited".to_owned());
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if log.contains("panicked") {
            row.failures
                .push(format!("the demo panicked (log: {})", self.log.display()));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer of the demo's `/`.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `name=value` of a `Set-Cookie` header.
    cookie: Option<String>,
    /// The visit counter on the page.
    views: Option<u64>,
}

/// `GET /` over a new connection, the whole exchange bounded by
/// [`REQUEST_TIMEOUT`].
fn get(port: u16, cookie: Option<&str>) -> Result<Reply> {
    let start = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = REQUEST_TIMEOUT
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .context("no complete answer within the request timeout (hang)")?;
        s.set_read_timeout(Some(left))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no complete answer within the request timeout (hang)")
            }
            Err(e) => return Err(e.into()),
        }
    }
    parse_reply(&String::from_utf8_lossy(&buf))
}

fn parse_reply(text: &str) -> Result<Reply> {
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let cookie = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.split(';').next())
        .map(|c| c.trim().to_owned());
    let views = body
        .split_once("id=\"views\">")
        .and_then(|(_, rest)| rest.split('<').next())
        .and_then(|n| n.trim().parse().ok());
    Ok(Reply {
        status,
        cookie,
        views,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() -> Result<()> {
        let r = parse_reply(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nset-cookie: connect.sid=s%3Aabc.def; Path=/; HttpOnly\r\n\r\n<div class=\"big\" id=\"views\">7</div>",
        )?;
        assert_eq!(r.status, 200);
        assert_eq!(r.cookie.as_deref(), Some("connect.sid=s%3Aabc.def"));
        assert_eq!(r.views, Some(7));
        let r = parse_reply("HTTP/1.1 503 Service Unavailable\r\n\r\n")?;
        assert_eq!((r.status, r.cookie, r.views), (503, None, None));
        assert!(parse_reply("garbage").is_err());
        Ok(())
    }
}

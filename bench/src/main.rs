//! `session-bench`: store operations and HTTP throughput of this
//! workspace's stores and middleware, next to the raw drivers,
//! tower-sessions and express-session, in one run. Run it with
//! `cargo xtask bench [--quick]`, which finds or starts the servers and
//! passes their URLs (`REDIS_URL`, `DATABASE_URL`, `MONGODB_URL`,
//! `MYSQL_URL`).
//!
//! Sections: `memory`, `middleware` (per-request cost without sockets),
//! `store`, `http` (with the peers), `prune`, `tls` (cleartext and TLS to
//! the same server: connection setup and steady state). The
//! report is printed and written to `target/bench/results.md`.

mod cleanup;
mod env;
mod http;
mod load;
mod memory;
mod middleware;
mod node;
mod raw;
mod report;
mod server;
mod stats;
mod store_level;
mod tls;

use anyhow::{bail, Context, Result};
use env::{Backend, Env};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: memory::Counting = memory::Counting;

const USAGE: &str = "usage: session-bench [--quick] [--backend NAME]... [--section NAME]...
    [--store-secs S] [--http-secs S] [--warmup-secs S] [--conns N] [--rounds N]
    [--prune-rows N] [--memory-sessions N] [--middleware-requests N]
    [--who NAME]... [--out PATH]

  --quick            short windows (a smoke test: asserts nothing about speed)
  --backend NAME     memory | sqlite | redis | postgres | mongo | mysql (default: all)
  --section NAME     memory | middleware | store | http | prune | tls
                     (default: all)
  --store-secs S     per contender and case at store level (default 1.0; quick 0.2)
  --http-secs S      measured seconds per HTTP contender (default 3; quick 0.5)
  --warmup-secs S    HTTP warm-up (default 1; quick 0.2)
  --conns N          HTTP connections (default 32)
  --rounds N         HTTP rotations: each contender runs N times, in turn
                     with the others, for 1/N of the time (default 3; quick 1)
  --prune-rows N     expired rows to prune (default 1000000; quick 20000)
  --memory-sessions N  (default 100000; quick 10000)
  --middleware-requests N  in-process requests per contender (default
                     100000; quick 5000); see src/middleware.rs for
                     instruction counts under callgrind
  --who NAME         HTTP and middleware contenders only: floor | raw |
                     ours | tower | express (default: all; handy under a
                     profiler)
  --out PATH         report file (default target/bench/results.md)";

/// The report's sections, in the order they run.
const SECTIONS: [&str; 6] = ["memory", "middleware", "store", "http", "prune", "tls"];

struct Args {
    backends: Vec<Backend>,
    sections: Vec<String>,
    store_secs: f64,
    http: http::HttpOpts,
    prune_rows: u64,
    memory_sessions: usize,
    middleware_requests: u64,
    out: Option<PathBuf>,
    quick: bool,
    command: String,
}

fn parse_args() -> Result<Args> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let mut a = Args {
        backends: Vec::new(),
        sections: Vec::new(),
        store_secs: if quick { 0.2 } else { 1.0 },
        http: http::HttpOpts {
            conns: 32,
            warmup: Duration::from_secs_f64(if quick { 0.2 } else { 1.0 }),
            measure: Duration::from_secs_f64(if quick { 0.5 } else { 3.0 }),
            who: Vec::new(),
            rounds: if quick { 1 } else { 3 },
        },
        prune_rows: if quick { 20_000 } else { 1_000_000 },
        memory_sessions: if quick { 10_000 } else { 100_000 },
        middleware_requests: if quick { 5_000 } else { 100_000 },
        out: None,
        quick,
        command: std::env::var("BENCH_COMMAND")
            .unwrap_or_else(|_| format!("session-bench {}", raw.join(" "))),
    };
    let mut it = raw.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => {}
            "--backend" => a.backends.push(Backend::parse(value("--backend")?)?),
            "--section" => {
                let s = value("--section")?;
                if !SECTIONS.contains(&s.as_str()) {
                    bail!("unknown section {s:?}");
                }
                a.sections.push(s.clone());
            }
            "--store-secs" => a.store_secs = value("--store-secs")?.parse()?,
            "--http-secs" => {
                a.http.measure = Duration::from_secs_f64(value("--http-secs")?.parse()?)
            }
            "--warmup-secs" => {
                a.http.warmup = Duration::from_secs_f64(value("--warmup-secs")?.parse()?)
            }
            "--conns" => a.http.conns = value("--conns")?.parse()?,
            "--rounds" => a.http.rounds = value("--rounds")?.parse()?,
            "--prune-rows" => a.prune_rows = value("--prune-rows")?.parse()?,
            "--memory-sessions" => a.memory_sessions = value("--memory-sessions")?.parse()?,
            "--middleware-requests" => {
                a.middleware_requests = value("--middleware-requests")?.parse()?
            }
            "--who" => a.http.who.push(http::Who::parse(value("--who")?)?),
            "--out" => a.out = Some(PathBuf::from(value("--out")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if a.backends.is_empty() {
        a.backends = Backend::ALL.to_vec();
    }
    if a.sections.is_empty() {
        a.sections = SECTIONS.map(String::from).to_vec();
    }
    Ok(a)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn machine(env: &Env) -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let mut servers = Vec::new();
    if env.has(Backend::Redis) {
        if let Ok(mut c) = env.redis_conn().await {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if let Some(v) = info.lines().find_map(|l| l.strip_prefix("redis_version:")) {
                servers.push(format!("Redis {}", v.trim()));
            }
        }
    }
    if env.has(Backend::Postgres) {
        if let Ok(pool) = env.pg_pool() {
            if let Ok(v) = sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&pool)
                .await
            {
                servers.push(format!(
                    "PostgreSQL {}",
                    v.split_whitespace().next().unwrap_or(&v)
                ));
            }
            pool.close().await;
        }
    }
    if env.has(Backend::Mysql) {
        if let Ok(pool) = env.mysql_pool() {
            if let Ok(v) = sqlx::query_scalar::<_, String>("SELECT VERSION()")
                .fetch_one(&pool)
                .await
            {
                let (version, rest) = v.split_once('-').unwrap_or((&v, ""));
                let name = if rest.contains("MariaDB") {
                    "MariaDB"
                } else {
                    "MySQL"
                };
                servers.push(format!("{name} {version}"));
            }
            pool.close().await;
        }
    }
    if env.has(Backend::Mongo) {
        let info = async {
            let db = env.mongo_db().await?;
            let info = db
                .run_command(mongodb::bson::doc! { "buildInfo": 1 })
                .await?;
            anyhow::Ok(info.get_str("version").unwrap_or("?").to_owned())
        };
        if let Ok(v) = info.await {
            servers.push(format!(
                "MongoDB wire protocol: a server reporting version {v} (`MONGODB_URL`, else SecantusDB started by xtask)"
            ));
        }
    }
    let sqlite = async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
        let v: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut c)
            .await?;
        anyhow::Ok(v)
    }
    .await
    .unwrap_or_default();
    if !sqlite.is_empty() {
        servers.push(format!("SQLite {sqlite} (bundled)"));
    }
    if let Some(v) = command_line("node", &["--version"]) {
        servers.push(format!("Node {v}"));
    }
    format!(
        "{model}, {cores} cores, {:.0} GiB RAM, Linux {kernel}; {}; all on loopback, shared with other work",
        mem_kb as f64 / 1024.0 / 1024.0,
        servers.join(", ")
    )
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let has = |s: &str| args.sections.iter().any(|x| x == s);

    // Memory first, before any runtime or pool allocates in the background.
    let memory = if has("memory") {
        eprintln!("bench: memory: {} sessions", args.memory_sessions);
        memory::run(args.memory_sessions)?
    } else {
        Vec::new()
    };
    // Then the in-process middleware cost, on a thread of its own.
    let middleware = if has("middleware") {
        eprintln!(
            "bench: middleware: {} requests per contender",
            args.middleware_requests
        );
        middleware::run(&args.http.who, args.middleware_requests)?
    } else {
        Vec::new()
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let env = Env::new(args.backends.clone()).await?;
        let result = run(&env, &args, memory, middleware, started).await;
        env.cleanup().await;
        result
    })
}

async fn run(
    env: &Env,
    args: &Args,
    memory: Vec<memory::MemRow>,
    middleware: Vec<middleware::MwRow>,
    started: Instant,
) -> Result<()> {
    let has = |s: &str| args.sections.iter().any(|x| x == s);
    let mut log: Vec<String> = env
        .missing
        .iter()
        .map(|m| format!("backend skipped: {m}"))
        .collect();
    let store = if has("store") {
        store_level::run(env, Duration::from_secs_f64(args.store_secs), &mut log).await
    } else {
        Vec::new()
    };
    let http = if has("http") {
        http::run(env, &args.http, &mut log).await
    } else {
        Vec::new()
    };
    let prune = if has("prune") {
        cleanup::run(env, args.prune_rows, &args.http, &mut log).await
    } else {
        Vec::new()
    };
    let tls = if has("tls") {
        tls::run(&args.backends, &args.http, args.quick, &mut log).await
    } else {
        tls::Results::default()
    };
    let header = format!(
        "## Benchmark results\n\n\
         - Command: `{}`{}\n\
         - Machine: {}\n\
         - Date: {} UTC; the run took {:.0} s\n\
         - Windows: store level {:.1} s per contender and case (in {} slices alternating ours and raw); \
           HTTP {} connections, {:.1} s warm-up + {:.1} s measured per contender, in {} rounds \
           (every contender of a backend and the HTTP floor in turn, each round); \
           load generator on one thread in the same process as the axum servers \
           (a tokio runtime of 2 workers); express-session in its own `node` process.\n",
        args.command,
        if args.quick {
            " (quick: a smoke test, figures are not meaningful)"
        } else {
            ""
        },
        machine(env).await,
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        started.elapsed().as_secs_f64(),
        args.store_secs,
        store_level::SLICES,
        args.http.conns,
        args.http.warmup.as_secs_f64(),
        args.http.measure.as_secs_f64(),
        args.http.rounds,
    );
    let md = report::Report {
        header,
        store: &store,
        http: &http,
        memory: &memory,
        middleware: &middleware,
        prune: &prune,
        tls: &tls,
        log: &log,
    }
    .markdown();
    println!("{md}");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| env.root.join("target").join("bench").join("results.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &md)?;
    eprintln!("bench: report written to {}", out.display());
    Ok(())
}

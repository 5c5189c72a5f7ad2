//! Project automation, run as `cargo xtask <command>`.
//!
//! - `conformance [--backend NAME]... [--require] [--containers]`: finds or
//!   starts a server for each backend, runs the shared conformance suite
//!   against it and prints a table. `--containers`: Redis, PostgreSQL,
//!   MariaDB and MongoDB in containers (see `containers.rs`); without
//!   `--backend`, only those four.
//! - `ci`: formatting, clippy, the conformance suite on every backend (all
//!   required), again on the four in containers, then every other test
//!   (and the custom store example's suite), rustdoc with warnings denied,
//!   `cargo package` of every published crate, the browser, interop and fault
//!   tests, and `bench --quick` as a smoke test of the benchmark harness.
//! - `interop [--backend NAME]...`: runs the Node express-session app and
//!   the Rust app against the same store and checks they share sessions
//!   (see `interop.rs`).
//! - `browser [--backend NAME]...`: the demo's headless-Chromium test per
//!   store (needs Debian's `chromium` and `chromium-driver`).
//! - `bench [--quick] [ARGS]...`: builds `bench/` in release and runs it
//!   (see `bench.rs`); the report goes to `target/bench/results.md`.
//! - `faults [--backend NAME]...`: restarts private Redis, PostgreSQL,
//!   MariaDB and MongoDB servers under a running demo, kill -9s it on
//!   SQLite and kills Redis Cluster / Sentinel masters (see `faults.rs`).
//! - `servers`: finds or starts the servers and prints their URLs, then
//!   waits (handy for running single tests by hand).

mod bench;
mod containers;
mod faults;
mod interop;
mod machine;
mod servers;
mod tls;

use anyhow::{bail, Context, Result};
use servers::Servers;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// A store backend: its name, crate and the server it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Backend {
    Memory,
    Sqlite,
    Redis,
    Postgres,
    Mongo,
    /// MySQL / MariaDB.
    Mysql,
    /// store-redis on a Redis Cluster.
    RedisCluster,
    /// store-redis on a master found through Redis Sentinel.
    RedisSentinel,
    /// store-redis over TLS (`rediss://`, a private server with a CA made per run).
    RedisTls,
    /// store-postgres over TLS (`sslmode=verify-full`).
    PostgresTls,
    /// store-mysql over TLS (`ssl-mode=VERIFY_IDENTITY`).
    MysqlTls,
    /// store-mongo over TLS (`tls=true&tlsCAFile=`).
    MongoTls,
}

impl Backend {
    /// Every backend the conformance suite runs on.
    const ALL: [Backend; 12] = [
        Backend::Memory,
        Backend::Sqlite,
        Backend::Redis,
        Backend::Postgres,
        Backend::Mongo,
        Backend::Mysql,
        Backend::RedisCluster,
        Backend::RedisSentinel,
        Backend::RedisTls,
        Backend::PostgresTls,
        Backend::MysqlTls,
        Backend::MongoTls,
    ];

    /// The deployments the demo's browser test runs on (TLS changes
    /// nothing the browser sees).
    const DEPLOYMENTS: [Backend; 8] = [
        Backend::Memory,
        Backend::Sqlite,
        Backend::Redis,
        Backend::Postgres,
        Backend::Mongo,
        Backend::Mysql,
        Backend::RedisCluster,
        Backend::RedisSentinel,
    ];

    /// For a TLS backend: the same store over cleartext.
    fn without_tls(self) -> Option<Backend> {
        match self {
            Backend::RedisTls => Some(Backend::Redis),
            Backend::PostgresTls => Some(Backend::Postgres),
            Backend::MysqlTls => Some(Backend::Mysql),
            Backend::MongoTls => Some(Backend::Mongo),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::Mongo => "mongo",
            Backend::Mysql => "mysql",
            Backend::RedisCluster => "redis-cluster",
            Backend::RedisSentinel => "redis-sentinel",
            Backend::RedisTls => "redis-tls",
            Backend::PostgresTls => "postgres-tls",
            Backend::MysqlTls => "mysql-tls",
            Backend::MongoTls => "mongo-tls",
        }
    }

    fn package(self) -> String {
        match self {
            Backend::RedisCluster | Backend::RedisSentinel => "sessionkit-redis".to_owned(),
            _ => match self.without_tls() {
                Some(plain) => plain.package(),
                None => format!("sessionkit-{}", self.name()),
            },
        }
    }

    /// The conformance test target of the backend's package.
    fn conformance_test(self) -> &'static str {
        match self {
            Backend::RedisCluster => "conformance_cluster",
            Backend::RedisSentinel => "conformance_sentinel",
            _ => "conformance",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .with_context(|| {
                format!("unknown backend {s:?}; known: memory sqlite redis postgres mongo mysql redis-cluster redis-sentinel redis-tls postgres-tls mysql-tls mongo-tls")
            })
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("conformance") => {
            let (backends, require, containers) = parse_conformance_args(&args[1..])?;
            let mut servers = if containers {
                Servers::containers()
            } else {
                Servers::default()
            };
            let rows = conformance(&backends, &mut servers)?;
            print_table(&rows);
            check_rows(&rows, require)
        }
        Some("ci") => ci(),
        Some("browser") => {
            let (mut backends, _, _) = parse_conformance_args(&args[1..])?;
            if args.len() == 1 {
                backends = Backend::DEPLOYMENTS.to_vec();
            }
            browser(&backends, &mut Servers::default())
        }
        Some("interop") => interop::run(&args[1..], &mut Servers::default()),
        Some("faults") => faults::run(&args[1..]),
        Some("bench") => bench::run(&args[1..], &mut Servers::default()),
        Some("servers") => {
            let mut servers = Servers::default();
            for b in Backend::ALL {
                match servers.ensure(b) {
                    Ok(Some((var, url, how))) => println!("{var}={url}   # {how}"),
                    Ok(None) => {}
                    Err(e) => println!("# {}: {e:#}", b.name()),
                }
            }
            println!("# servers started here stop when you press Enter");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  conformance [--backend NAME]... [--require] [--containers]\n  interop [--backend NAME]...\n  faults [--backend NAME]...\n  bench [--quick] [--help]\n  ci\n  servers"
            );
            std::process::exit(2)
        }
    }
}

fn workspace_root() -> Result<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(|p| p.to_path_buf())
        .context("xtask has no parent directory")
}

/// `(backends, require, containers)` from `[--backend NAME]... [--require]
/// [--containers]`.
fn parse_conformance_args(args: &[String]) -> Result<(Vec<Backend>, bool, bool)> {
    let mut backends = Vec::new();
    let mut require = false;
    let mut containers = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => backends.push(Backend::parse(
                it.next().context("--backend needs a name")?,
            )?),
            "--require" => require = true,
            "--containers" => containers = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if backends.is_empty() && containers {
        backends = containers::BACKENDS.to_vec();
        require = true;
    } else if backends.is_empty() {
        backends = Backend::ALL.to_vec();
    } else {
        // Backends named explicitly are required.
        require = true;
    }
    Ok((backends, require, containers))
}

/// One line of the conformance table.
#[derive(Debug)]
struct Row {
    backend: Backend,
    server: String,
    passed: u32,
    failed: u32,
    skipped: u32,
    seconds: f64,
    ran: bool,
}

fn conformance(backends: &[Backend], servers: &mut Servers) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &b in backends {
        let server = match servers.ensure(b) {
            Ok(Some((_, url, how))) => format!("{how}: {url}"),
            Ok(None) => "embedded".to_owned(),
            Err(e) => {
                eprintln!("xtask: no {} server: {e:#}", b.name());
                rows.push(Row {
                    backend: b,
                    server: format!("unavailable ({e})"),
                    passed: 0,
                    failed: 0,
                    skipped: 0,
                    seconds: 0.0,
                    ran: false,
                });
                continue;
            }
        };
        eprintln!("xtask: conformance on {} ({server})", b.name());
        let start = Instant::now();
        // A TLS backend runs the suite with the plain backend's variable
        // pointing at the TLS server, then the store's negative TLS tests.
        let mut runs = vec![b.conformance_test()];
        if b.without_tls().is_some() {
            runs.push("tls");
        }
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for test in runs {
            let mut cmd = test_command(&b.package(), test);
            cmd.arg("--format=terse");
            servers.apply_env(&mut cmd);
            if let (Some(plain), "conformance") = (b.without_tls(), test) {
                if let (Some((var, _, _)), Some((_, url, _))) =
                    (servers.ensure(plain)?, servers.ensure(b)?)
                {
                    cmd.env(var, url);
                }
            }
            let out = cmd
                .stderr(Stdio::inherit())
                .output()
                .context("running cargo test")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            print!("{stdout}");
            let (p, f, s) = parse_libtest(&stdout);
            passed += p;
            skipped += s;
            // A build failure or crash counts as a failure even without a summary line.
            failed += if out.status.success() { f } else { f.max(1) };
        }
        rows.push(Row {
            backend: b,
            server,
            passed,
            failed,
            skipped,
            seconds: start.elapsed().as_secs_f64(),
            ran: true,
        });
    }
    Ok(rows)
}

/// Sums `test result: ok. N passed; M failed; K ignored` lines.
fn parse_libtest(out: &str) -> (u32, u32, u32) {
    let mut sums = (0, 0, 0);
    for line in out.lines().filter(|l| l.starts_with("test result:")) {
        let num = |what: &str| -> u32 {
            line.split(';')
                .find(|part| part.trim().ends_with(what))
                .and_then(|part| part.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        sums.0 += num("passed");
        sums.1 += num("failed");
        sums.2 += num("ignored");
    }
    sums
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| backend  | passed | failed | skipped | seconds | server");
    println!("|----------|-------:|-------:|--------:|--------:|-------");
    for r in rows {
        println!(
            "| {:<8} | {:>6} | {:>6} | {:>7} | {:>7.1} | {}",
            r.backend.name(),
            r.passed,
            r.failed,
            r.skipped,
            r.seconds,
            r.server
        );
    }
    println!();
}

fn check_rows(rows: &[Row], require: bool) -> Result<()> {
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.failed > 0 || (r.ran && r.passed == 0))
        .map(|r| r.backend.name())
        .collect();
    if !failed.is_empty() {
        bail!("conformance failed on: {}", failed.join(", "));
    }
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ran || r.skipped > 0)
        .map(|r| r.backend.name())
        .collect();
    if require && !missing.is_empty() {
        bail!(
            "required backends did not run (or skipped cases): {}",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Test binaries and executables built once by `ci` for the whole
/// workspace. Running `cargo test -p PACKAGE` per step instead resolves
/// features per package, which rebuilds tokio, sqlx and everything above
/// them for each.
#[derive(Default)]
struct Prebuilt {
    /// (package, test target) → (executable, package directory).
    tests: HashMap<(String, String), (PathBuf, PathBuf)>,
    /// package's binary name → executable (the plain profile).
    bins: HashMap<String, PathBuf>,
}

static PREBUILT: OnceLock<Prebuilt> = OnceLock::new();

/// Builds every test and binary of the workspace once (`cargo test
/// --workspace --no-run`, the same features as the later test run) and
/// remembers where they are.
fn build_once() -> Result<()> {
    eprintln!("xtask: == build every test binary once");
    let start = Instant::now();
    let out = Command::new(cargo())
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the workspace's tests failed ({})", out.status);
    }
    let mut prebuilt = Prebuilt::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(m) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(name), Some(id), Some(manifest)) = (
            m["executable"].as_str(),
            m["target"]["name"].as_str(),
            m["package_id"].as_str(),
            m["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let dir = PathBuf::from(manifest)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let package = package_name(id, &dir);
        let kinds = m["target"]["kind"].to_string();
        if m["profile"]["test"] == true && kinds.contains("\"test\"") {
            prebuilt
                .tests
                .insert((package, name.to_owned()), (PathBuf::from(exe), dir));
        } else if m["profile"]["test"] == false && kinds.contains("\"bin\"") {
            prebuilt.bins.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    eprintln!(
        "xtask: built {} test binaries and {} executables in {:.1}s",
        prebuilt.tests.len(),
        prebuilt.bins.len(),
        start.elapsed().as_secs_f64()
    );
    let _ = PREBUILT.set(prebuilt);
    Ok(())
}

/// A package's name from cargo's package id (`path+file:///…/dir#name@1.0`,
/// or `…/name#1.0` when the directory is named after the package).
fn package_name(id: &str, dir: &Path) -> String {
    match id.rsplit_once('#') {
        Some((_, frag)) if frag.contains('@') => frag.split('@').next().unwrap_or(frag).to_owned(),
        _ => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// The command that runs test target `test` of `package`; the caller adds
/// the harness's arguments. The prebuilt binary when `ci` built one (run
/// in its package's directory, as cargo does), else `cargo test … --`.
fn test_command(package: &str, test: &str) -> Command {
    if let Some((exe, dir)) = PREBUILT
        .get()
        .and_then(|p| p.tests.get(&(package.to_owned(), test.to_owned())))
    {
        let mut cmd = Command::new(exe);
        cmd.current_dir(dir);
        return cmd;
    }
    let mut cmd = Command::new(cargo());
    cmd.args(["test", "-p", package, "--test", test, "--"]);
    cmd
}

/// The executable `name` when `ci` built it.
fn prebuilt_bin(name: &str) -> Option<PathBuf> {
    PREBUILT.get().and_then(|p| p.bins.get(name)).cloned()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when set (CI moves it to
/// RAM when the disk is short), else `target/` under the workspace root
/// (the current directory). Everything xtask writes goes under it.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: == {step}");
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("starting {step}"))?;
    eprintln!("xtask: {step} took {:.1}s", start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// The store URL the demo's browser test uses for a backend: its own
/// key prefix, table or collection, so it never touches test data; the SQL
/// stores with the per-user index its "active sessions" page needs.
fn demo_store_url(b: Backend, servers: &mut Servers) -> Result<Option<String>> {
    let join = |url: &str, opt: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{opt}")
    };
    Ok(match (b, servers.ensure(b)?) {
        (Backend::Memory, _) => Some("memory://".to_owned()),
        (Backend::Sqlite, _) => None, // the demo's default: sessions.db in its working directory
        (Backend::Redis, Some((_, url, _))) => Some(join(&url, "prefix=demo-browser:")),
        (Backend::Postgres, Some((_, url, _))) => Some(join(
            &url,
            "table=demo_browser_session&principal_index=true",
        )),
        (Backend::Mongo, Some((_, url, _))) => Some(join(&url, "collection=demo_browser_sessions")),
        (Backend::Mysql, Some((_, url, _))) => Some(join(
            &url,
            "table=demo_browser_sessions&principal_index=true",
        )),
        (Backend::RedisCluster | Backend::RedisSentinel, Some((_, url, _))) => {
            Some(join(&url, "prefix=demo-browser:"))
        }
        (Backend::RedisTls | Backend::PostgresTls | Backend::MysqlTls | Backend::MongoTls, _) => {
            bail!("the browser test does not run on {}", b.name())
        }
        (_, None) => bail!("no server for {}", b.name()),
    })
}

/// Runs the demo's headless-Chromium test once per backend.
fn browser(backends: &[Backend], servers: &mut Servers) -> Result<()> {
    for &b in backends {
        let mut cmd = test_command("session-demo", "browser");
        cmd.arg("--ignored");
        servers.apply_env(&mut cmd);
        match demo_store_url(b, servers)? {
            Some(url) => cmd.env("SESSION_STORE_URL", url),
            None => cmd.env_remove("SESSION_STORE_URL"),
        };
        run(
            &format!("browser test of the demo on {}", b.name()),
            &mut cmd,
        )?;
    }
    Ok(())
}

/// The published crates, packaged (and built from their packages) by `ci`.
const PUBLISHED: [&str; 11] = [
    "sessionkit-core",
    "sessionkit-jwt",
    "sessionkit-conformance",
    "sessionkit-tower",
    "sessionkit-stores",
    "sessionkit-memory",
    "sessionkit-sqlite",
    "sessionkit-redis",
    "sessionkit-postgres",
    "sessionkit-mongo",
    "sessionkit-mysql",
];

/// Cargo unpacks the crates it verifies from a local registry under
/// `$CARGO_HOME/registry/src/<registry hash>/` and never unpacks the same
/// name and version again: a second packaging of changed sources in the
/// same checkout would verify the old ones. Removes those copies of ours
/// (never anything from crates.io's index).
fn forget_unpacked_packages() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    for registry in std::fs::read_dir(src).into_iter().flatten().flatten() {
        if registry.file_name().to_string_lossy().starts_with("index.") {
            continue;
        }
        for krate in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if krate
                .file_name()
                .to_string_lossy()
                .starts_with("sessionkit-")
            {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

fn ci() -> Result<()> {
    let start = Instant::now();
    machine::prepare()?;
    run(
        "cargo fmt --check",
        Command::new(cargo()).args(["fmt", "--all", "--check"]),
    )?;
    run(
        "clippy",
        Command::new(cargo()).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    build_once()?;
    let mut servers = Servers::default();
    let rows = conformance(&Backend::ALL, &mut servers)?;
    print_table(&rows);
    check_rows(&rows, true)?;
    // The same suite with every server in a container (built here when
    // no registry is reachable); stopped before the rest.
    let start_containers = Instant::now();
    let container_rows = conformance(&containers::BACKENDS, &mut Servers::containers())?;
    let container_seconds = start_containers.elapsed().as_secs_f64();
    print_table(&container_rows);
    check_rows(&container_rows, true)?;
    eprintln!("xtask: conformance in containers took {container_seconds:.1}s (engine, images and containers included)");
    let mut tests = Command::new(cargo());
    tests.args([
        "test",
        "--workspace",
        "--no-fail-fast",
        "--",
        "--skip",
        "conformance::",
    ]);
    servers.apply_env(&mut tests);
    run(
        "tests (conformance cases excluded: they ran above)",
        &mut tests,
    )?;
    // The worked example of a third-party store: the whole suite (the
    // step above skipped conformance cases by name).
    run(
        "the custom store example's conformance suite",
        &mut test_command("custom-store-example", "conformance"),
    )?;
    run(
        "rustdoc (warnings denied)",
        Command::new(cargo())
            .args(["doc", "--workspace", "--all-features", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // A package directory left by an earlier run holds crates of the same
    // version with older contents, which the verification would build.
    let _ = std::fs::remove_dir_all(target_dir().join("package"));
    forget_unpacked_packages();
    run(
        "cargo package (every published crate, built from its package)",
        Command::new(cargo())
            .args(["package", "--allow-dirty"])
            .args(PUBLISHED.iter().flat_map(|p| ["-p", p])),
    )?;
    browser(&Backend::DEPLOYMENTS, &mut servers)?;
    eprintln!("xtask: == interop with Node's express-session");
    interop::run(&[], &mut servers)?;
    faults::run(&[])?;
    // A smoke test of the benchmark harness: short windows, every section
    // and contender; it asserts nothing about speed.
    bench::run(&["--quick".to_owned()], &mut servers)?;
    print_table(&rows);
    print_table(&container_rows);
    eprintln!("xtask: conformance in containers took {container_seconds:.1}s");
    eprintln!("xtask: ci passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_summaries_are_summed() {
        let out = "....\ntest result: ok. 30 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.0s\n\
                   test result: FAILED. 1 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(parse_libtest(out), (31, 3, 2));
        assert_eq!(parse_libtest("garbage"), (0, 0, 0));
    }

    /// `compose.yaml` publishes every usual server on 127.0.0.1 at the port
    /// the suite looks at, with the database and the password-less users
    /// its URLs name.
    #[test]
    fn compose_file_agrees_with_the_usual_urls() {
        let compose =
            std::fs::read_to_string(workspace_root().unwrap().join("compose.yaml")).unwrap();
        for (backend, port, url) in servers::USUAL {
            assert!(
                compose.contains(&format!("\"127.0.0.1:{port}:{port}\"")),
                "{}: port {port} not published on 127.0.0.1",
                backend.name()
            );
            assert!(url.contains(&format!("127.0.0.1:{port}")));
        }
        // postgres://postgres@…/test: no password, database `test`.
        assert!(compose.contains("POSTGRES_HOST_AUTH_METHOD: trust"));
        assert!(compose.contains("POSTGRES_DB: test"));
        // mysql://root@…/test: root without a password, database `test`.
        assert!(compose.contains("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"));
        assert!(compose.contains("MARIADB_DATABASE: test"));
    }

    /// Every crate without `publish = false` is in `PUBLISHED`, and the
    /// other way round.
    #[test]
    fn published_crates_are_the_packaged_ones() {
        let root = workspace_root().unwrap();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members: Vec<&str> = manifest
            .split("members = [")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap()
            .split('"')
            .skip(1)
            .step_by(2)
            .collect();
        let mut published = Vec::new();
        for m in members {
            let toml = std::fs::read_to_string(root.join(m).join("Cargo.toml")).unwrap();
            if !toml.contains("publish = false") {
                let name = toml
                    .split("name = \"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                published.push(name.to_owned());
                assert!(
                    root.join(m).join("README.md").is_file(),
                    "{m}: no README.md"
                );
                assert!(
                    root.join(m).join("LICENSE-MIT").is_file(),
                    "{m}: no LICENSE-MIT"
                );
                assert!(
                    root.join(m).join("LICENSE-APACHE").is_file(),
                    "{m}: no LICENSE-APACHE"
                );
            }
        }
        published.sort();
        let mut expected: Vec<String> = PUBLISHED.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(published, expected);
    }

    #[test]
    fn package_names_come_from_cargo_package_ids() {
        let dir = Path::new("/w/store-redis");
        assert_eq!(
            package_name("path+file:///w/store-redis#sessionkit-redis@0.1.0", dir),
            "sessionkit-redis"
        );
        assert_eq!(
            package_name("path+file:///w/xtask#0.1.0", Path::new("/w/xtask")),
            "xtask"
        );
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!(Backend::parse("redis").ok(), Some(Backend::Redis));
        assert_eq!(Backend::parse("mysql").ok(), Some(Backend::Mysql));
        assert!(Backend::parse("oracle").is_err());
    }
}

//! `cargo xtask interop [--backend NAME]...`: Node's express-session and the
//! Rust middleware on one session store.
//!
//! For each store (Redis; PostgreSQL in three databases whose default
//! `TimeZone` is UTC, UTC-8 and UTC+14; MongoDB with string, encrypted and
//! document sessions; SQLite through Sequelize; MySQL) this starts, on
//! 127.0.0.1, the Node app of `interop/` and the Rust app of
//! `interop/rust-app` four times each: with the old secret, with
//! `[new, old]`, with the new secret alone, and with a short Node secret
//! (Node `keyboard cat`, Rust `[new, keyboard cat]`). Then it runs the
//! cases of [`CASES`] over HTTP, as a browser would (the cookie is the only
//! thing carried from one app to the other), prints a table and fails if
//! any case failed or any store could not run.
//!
//! Nothing waits on a fixed delay for synchronisation: apps are ready when
//! their port answers. Only the expiry case waits for time itself to pass
//! (cookie lifetimes of a few seconds); each of its timelines runs in its
//! own thread with steps seconds apart, and a timeline whose step came too
//! late to conclude anything (a machine stalled for seconds) is run once
//! more, then reported as inconclusive rather than as a wrong answer.

use crate::servers::Servers;
use crate::Backend;
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Signs before the rotation; verifies only during it.
const SECRET_OLD: &str = "interop-old-secret-0123456789-abcdefghijklmnop";
/// Signs after the rotation.
const SECRET_NEW: &str = "interop-new-secret-9876543210-zyxwvutsrqponmlk";
/// express-session's default cookie name, used by both apps.
const COOKIE: &str = "connect.sid";
/// Cookie lifetime of the sessions in the touch timelines of case 5: its
/// half is the margin each step of a timeline has.
const TOUCH_LIFETIME: Duration = Duration::from_secs(8);
/// Cookie lifetime of the sessions that must expire untouched in case 5.
const SHORT_LIFETIME: Duration = Duration::from_secs(2);
/// Slack around the instants of a timeline.
const MARGIN: Duration = Duration::from_millis(300);
/// Stores keep expiry in whole seconds (Redis `EX`, connect-pg-simple's
/// `to_timestamp(ceil(..))`): a session may outlive its cookie by up to
/// this much.
const STORE_ROUNDING: Duration = Duration::from_millis(1500);
/// How long an app may take to listen.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Ids asked from each side's generator in case 7.
const IDS_PER_SIDE: usize = 25;

/// One store configuration the cases run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Redis,
    /// PostgreSQL in a database whose default TimeZone is this zone.
    Postgres(&'static str, &'static str),
    Mongo,
    /// MongoDB with sessions encrypted in connect-mongo's WebCrypto format.
    MongoEncrypted,
    /// MongoDB with sessions as documents (connect-mongo's `stringify: false`).
    MongoDocument,
    Sqlite,
    Mysql,
}

const TARGETS: [Target; 9] = [
    Target::Redis,
    Target::Postgres("interop_utc", "UTC"),
    Target::Postgres("interop_tz_west", "America/Los_Angeles"),
    Target::Postgres("interop_tz_east", "Pacific/Kiritimati"),
    Target::Mongo,
    Target::MongoEncrypted,
    Target::MongoDocument,
    Target::Sqlite,
    Target::Mysql,
];

impl Target {
    fn store(self) -> &'static str {
        match self {
            Target::Redis => "redis",
            Target::Postgres(..) => "postgres",
            Target::Mongo | Target::MongoEncrypted | Target::MongoDocument => "mongo",
            Target::Sqlite => "sqlite",
            Target::Mysql => "mysql",
        }
    }

    fn label(self) -> String {
        match self {
            Target::Postgres(_, tz) => format!("postgres TZ={tz}"),
            Target::MongoEncrypted => "mongo encrypted (WebCrypto)".to_owned(),
            Target::MongoDocument => "mongo stringify: false".to_owned(),
            other => other.store().to_owned(),
        }
    }

    fn slug(self) -> String {
        match self {
            Target::Postgres(db, _) => db.replace('_', "-"),
            Target::MongoEncrypted => "mongo-encrypted".to_owned(),
            Target::MongoDocument => "mongo-document".to_owned(),
            other => other.store().to_owned(),
        }
    }
}

/// The cases, in the issues' order: (column, description, check).
type Case = (&'static str, &'static str, fn(&Apps) -> Result<()>);
const CASES: [Case; 12] = [
    (
        "1 node→rust",
        "a session created in Node is read by Rust, data and cookie intact",
        case_node_to_rust,
    ),
    (
        "2 rust→node",
        "a session created in Rust is read by Node, data and cookie intact",
        case_rust_to_node,
    ),
    (
        "3 changes",
        "changes and regeneration on either side are seen by the other, no key lost",
        case_changes,
    ),
    (
        "4 destroy",
        "destroy on either side: the other side sees no session",
        case_destroy,
    ),
    (
        "5 expiry",
        "expiry and touch on either side are honoured by the other",
        case_expiry,
    ),
    (
        "6 rotation",
        "[new, old] secrets accept old-signed cookies and re-sign with the new one",
        case_rotation,
    ),
    (
        "7 ids",
        "generated ids pass the other side's validation",
        case_ids,
    ),
    (
        "8 short secret",
        "Node on `keyboard cat`: Rust on [long, `keyboard cat`] reads its sessions and moves them to the long secret",
        case_short_secret,
    ),
    (
        "9 rust first",
        "a rotation rolled out to Rust first: read-only Rust responses leave Node on the old secret its cookie",
        case_rotation_rust_first,
    ),
    (
        "10 reserved",
        "keys express-session can never keep (id, save, constructor, ...) are refused by Rust, nothing is lost",
        case_reserved_keys,
    ),
    (
        "11 surrogate",
        "a lone UTF-16 surrogate written by Node is read by Rust, and the session keeps working on both",
        case_lone_surrogate,
    ),
    (
        "12 pg rounding",
        "PostgreSQL: Node keeps a row Rust wrote through its last second, as it keeps its own",
        case_pg_rounding,
    ),
];

/// A Node service's short secret (express-session's README example).
const SECRET_SHORT: &str = "keyboard cat";

/// Entry point: `args` are the arguments after `interop`.
pub fn run(args: &[String], servers: &mut Servers) -> Result<()> {
    let selection = parse_args(args)?;
    let root = std::env::current_dir()?;
    let work = root.join(crate::target_dir()).join("interop");
    std::fs::create_dir_all(work.join("logs"))?;
    let node = NodeApp::prepare(&root.join("interop"))?;
    let rust_bin = build_rust_app(&root)?;

    let mut rows = Vec::new();
    for &target in &selection.targets {
        eprintln!("xtask: interop on {}", target.label());
        let results = match run_target(target, &selection.cases, servers, &node, &rust_bin, &work) {
            Ok(results) => results,
            Err(e) => {
                eprintln!("xtask: interop on {} could not run: {e:#}", target.label());
                CASES
                    .iter()
                    .map(|_| Outcome::NotRun(format!("{e:#}")))
                    .collect()
            }
        };
        rows.push((target, results));
    }
    report(&rows)
}

/// What to run: the stores, and the case numbers (1-based; empty: all).
struct Selection {
    targets: Vec<Target>,
    cases: Vec<usize>,
}

fn parse_args(args: &[String]) -> Result<Selection> {
    let mut stores = Vec::new();
    let mut cases = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => {
                let name = it.next().context("--backend needs a name")?;
                ensure!(
                    TARGETS.iter().any(|t| t.store() == name),
                    "unknown interop backend {name:?}; known: redis postgres mongo sqlite mysql"
                );
                stores.push(name.clone());
            }
            "--case" => {
                let n: usize = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=CASES.len()).contains(n))
                    .with_context(|| format!("--case needs a number from 1 to {}", CASES.len()))?;
                cases.push(n);
            }
            other => bail!("unknown argument {other:?} (usage: cargo xtask interop [--backend redis|postgres|mongo|sqlite|mysql]... [--case N]...)"),
        }
    }
    let targets = TARGETS
        .into_iter()
        .filter(|t| stores.is_empty() || stores.iter().any(|s| s == t.store()))
        .collect();
    Ok(Selection { targets, cases })
}

/// How one case went on one store.
enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
    /// Left out with `--case`.
    Skipped,
}

fn report(rows: &[(Target, Vec<Outcome>)]) -> Result<()> {
    println!();
    print!("| {:<32} |", "store");
    for (col, _, _) in CASES {
        print!(" {col} |");
    }
    println!();
    print!("|{}|", "-".repeat(34));
    for (col, _, _) in CASES {
        print!("{}|", "-".repeat(col.chars().count() + 2));
    }
    println!();
    let (mut passed, mut failed, mut not_run) = (0, 0, 0);
    for (target, results) in rows {
        print!("| {:<32} |", target.label());
        for ((col, _, _), outcome) in CASES.iter().zip(results) {
            let word = match outcome {
                Outcome::Passed => {
                    passed += 1;
                    "ok"
                }
                Outcome::Failed(_) => {
                    failed += 1;
                    "FAIL"
                }
                Outcome::NotRun(_) => {
                    not_run += 1;
                    "-"
                }
                Outcome::Skipped => "skip",
            };
            print!(" {word:<w$} |", w = col.chars().count());
        }
        println!();
    }
    println!();
    for (target, results) in rows {
        for ((col, what, _), outcome) in CASES.iter().zip(results) {
            match outcome {
                Outcome::Failed(why) => {
                    println!("FAIL {} / {col} ({what}):\n    {why}\n", target.label())
                }
                Outcome::NotRun(why) => {
                    // The same reason for every case of the store: say it once.
                    if *col == CASES[0].0 {
                        println!("NOT RUN {}: {why}\n", target.label());
                    }
                }
                Outcome::Passed | Outcome::Skipped => {}
            }
        }
    }
    println!("interop: {passed} passed, {failed} failed");
    if failed > 0 || not_run > 0 {
        bail!("interop: {failed} case(s) failed, {not_run} could not run (logs in target/interop/logs)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Preparing and starting the apps

/// The Node app directory, with its dependencies installed.
struct NodeApp {
    dir: PathBuf,
}

impl NodeApp {
    /// Checks Node and runs `npm ci` when `node_modules` is missing or was
    /// installed from another `package-lock.json`.
    fn prepare(dir: &Path) -> Result<NodeApp> {
        let version = Command::new("node").arg("--version").output().context(
            "running `node --version`: Node.js 20 or later is needed for the interop tests",
        )?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .with_context(|| format!("unexpected `node --version` output {version:?}"))?;
        ensure!(
            major >= 20,
            "Node.js {version} is too old: the interop app needs 20 or later"
        );
        // `npm ci` again whenever package-lock.json differs from the one the
        // last install here used (copied into node_modules as a stamp).
        let lock = std::fs::read(dir.join("package-lock.json"))
            .context("reading interop/package-lock.json")?;
        let stamp = dir.join("node_modules").join(".xtask-package-lock.json");
        if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
            eprintln!("xtask: npm ci in {} (node {version})", dir.display());
            let mut npm = Command::new("npm");
            npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
            // sqlite3 has no prebuilt binary reachable here: node-gyp builds
            // it against the installed Node headers instead of downloading them.
            if std::env::var_os("npm_config_nodedir").is_none()
                && Path::new("/usr/include/node/node.h").is_file()
            {
                npm.env("npm_config_nodedir", "/usr");
            }
            let status = npm.status().context("running npm ci (is npm installed?)")?;
            ensure!(status.success(), "npm ci failed in {}", dir.display());
            std::fs::write(&stamp, &lock)
                .with_context(|| format!("writing {}", stamp.display()))?;
        }
        Ok(NodeApp {
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `node tools.js ARGS` and returns its standard output.
    fn tool(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("node")
            .arg("tools.js")
            .args(args)
            .current_dir(&self.dir)
            .stderr(Stdio::inherit())
            .output()
            .context("running node tools.js")?;
        ensure!(
            out.status.success(),
            "node tools.js {} failed",
            args.join(" ")
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn build_rust_app(root: &Path) -> Result<PathBuf> {
    // `ci` built it with the workspace's tests (its tests/config.rs).
    if let Some(bin) = crate::prebuilt_bin("interop-app") {
        return Ok(bin);
    }
    eprintln!("xtask: == cargo build -p interop-app");
    let status = Command::new(crate::cargo())
        .args(["build", "-p", "interop-app"])
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building interop-app failed");
    let bin = root
        .join(crate::target_dir())
        .join("debug")
        .join(format!("interop-app{}", std::env::consts::EXE_SUFFIX));
    ensure!(bin.is_file(), "{} was not built", bin.display());
    Ok(bin)
}

/// The environment both apps get for one store.
/// Databases and files are named after this process, so that runs on one
/// machine do not see each other; they are removed afterwards.
struct StoreEnv {
    vars: Vec<(&'static str, String)>,
    /// Files to delete afterwards.
    files: Vec<PathBuf>,
    /// `node tools.js` commands that drop what was created.
    cleanup: Vec<Vec<String>>,
    tools_dir: PathBuf,
}

impl Drop for StoreEnv {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for args in &self.cleanup {
            let _ = Command::new("node")
                .arg("tools.js")
                .args(args)
                .current_dir(&self.tools_dir)
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn store_env(
    target: Target,
    servers: &mut Servers,
    node: &NodeApp,
    work: &Path,
) -> Result<StoreEnv> {
    let url = |servers: &mut Servers, b: Backend| -> Result<String> {
        match servers.ensure(b)? {
            Some((_, url, _)) => Ok(url),
            None => bail!("no server for {}", b.name()),
        }
    };
    let mut env = StoreEnv {
        vars: vec![("STORE", target.store().to_owned())],
        files: Vec::new(),
        cleanup: Vec::new(),
        tools_dir: node.dir.clone(),
    };
    let pid = std::process::id();
    let vars = &mut env.vars;
    match target {
        Target::Redis => vars.push(("REDIS_URL", url(servers, Backend::Redis)?)),
        Target::Postgres(db, tz) => {
            let base = url(servers, Backend::Postgres)?;
            let db = format!("{db}_{pid}");
            let db_url = node.tool(&["pg-database", &base, &db, tz])?;
            env.cleanup.push(vec!["pg-drop".into(), base, db]);
            vars.push(("DATABASE_URL", db_url));
            // Read by the Rust app only: store-postgres writes and compares
            // `expire` in the zone of the Node app's connections.
            vars.push(("PG_TIME_ZONE", tz.to_owned()));
        }
        Target::Mongo | Target::MongoEncrypted | Target::MongoDocument => {
            let base = url(servers, Backend::Mongo)?;
            let db = match target {
                Target::MongoEncrypted => format!("interop_enc_{pid}"),
                Target::MongoDocument => format!("interop_doc_{pid}"),
                _ => format!("interop_{pid}"),
            };
            if target == Target::MongoDocument {
                vars.push(("MONGO_STRINGIFY", "false".to_owned()));
            }
            if target == Target::MongoEncrypted {
                // Both apps derive the AES key from this secret as
                // connect-mongo's createWebCryptoAdapter({ secret }) does.
                vars.push(("MONGO_CRYPTO_SECRET", format!("interop-crypto-{pid}")));
            }
            node.tool(&["mongo-drop", &base, &db])?;
            env.cleanup
                .push(vec!["mongo-drop".into(), base.clone(), db.clone()]);
            vars.push(("MONGODB_URL", base));
            vars.push(("MONGODB_DB", db));
        }
        Target::Mysql => {
            let base = url(servers, Backend::Mysql)?;
            let table = format!("interop_{pid}");
            node.tool(&["mysql-drop", &base, &table])?;
            env.cleanup
                .push(vec!["mysql-drop".into(), base.clone(), table.clone()]);
            vars.push(("MYSQL_URL", base));
            vars.push(("MYSQL_TABLE", table));
        }
        Target::Sqlite => {
            let path = work.join(format!("sessions-{pid}.db"));
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let f = PathBuf::from(format!("{}{suffix}", path.display()));
                let _ = std::fs::remove_file(&f);
                env.files.push(f);
            }
            vars.push(("SQLITE_PATH", path.display().to_string()));
            // connect-session-sequelize's `get` ignores `expires`; only its
            // cleanup timer removes expired rows (every 15 min by default).
            vars.push(("SQLITE_CLEANUP_MS", "250".to_owned()));
        }
    }
    Ok(env)
}

/// A running app; killed on drop.
struct App {
    name: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
enum Side {
    Node,
    Rust,
}

fn start_app(
    side: Side,
    secrets: &[&str],
    label: &str,
    env: &StoreEnv,
    node: &NodeApp,
    rust_bin: &Path,
    work: &Path,
) -> Result<App> {
    let port = free_port()?;
    let name = format!(
        "{}[{}]",
        match side {
            Side::Node => "node",
            Side::Rust => "rust",
        },
        label
    );
    let log = work.join("logs").join(format!(
        "{}.log",
        name.replace(['[', ']'], "-")
            .trim_end_matches('-')
            .replace(',', "-")
    ));
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = match side {
        Side::Node => {
            let mut c = Command::new("node");
            c.arg("app.js").current_dir(&node.dir);
            c
        }
        Side::Rust => Command::new(rust_bin),
    };
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    cmd.env("SECRETS", secrets.join(","))
        .env("PORT", port.to_string())
        .env("COOKIE_NAME", COOKIE)
        .env("MAX_AGE_MS", "3600000")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let mut app = App {
        name,
        port,
        child,
        log,
    };
    let start = Instant::now();
    loop {
        if let Some(status) = app.child.try_wait()? {
            bail!(
                "{} exited before listening ({status}):\n{}",
                app.name,
                log_tail(&app.log)
            );
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(app);
        }
        if start.elapsed() > START_LIMIT {
            bail!(
                "{} did not listen on {port} within {START_LIMIT:?}:\n{}",
                app.name,
                log_tail(&app.log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("listening on "))
        .collect();
    let tail = &lines[lines.len().saturating_sub(15)..];
    tail.iter().map(|l| format!("    | {l}\n")).collect()
}

/// The six apps of one store: Node and Rust, each with the old secret,
/// with `[new, old]` and with the new secret.
struct Apps {
    node: App,
    rust: App,
    node_rotating: App,
    rust_rotating: App,
    node_new: App,
    rust_new: App,
    /// Node on the short secret alone; Rust on `[new, short]`.
    node_short: App,
    rust_short: App,
    target: Target,
    /// The store's environment (URLs) and the Node tools, for checks made
    /// on the store itself.
    vars: Vec<(&'static str, String)>,
    tools: NodeApp,
}

fn run_target(
    target: Target,
    only: &[usize],
    servers: &mut Servers,
    node: &NodeApp,
    rust_bin: &Path,
    work: &Path,
) -> Result<Vec<Outcome>> {
    let env = store_env(target, servers, node, work)?;
    let slug = target.slug();
    let start = |side, secrets: &[&str], what: &str| {
        start_app(
            side,
            secrets,
            &format!("{slug},{what}"),
            &env,
            node,
            rust_bin,
            work,
        )
    };
    // Node first, and it writes first: as in a migration, the Node store
    // creates the table / collection / index, and the Rust store finds it.
    let node_app = start(Side::Node, &[SECRET_OLD], "old")?;
    node_app
        .login("first", None)
        .context("first login on the Node app")?;
    let apps = Apps {
        rust: start(Side::Rust, &[SECRET_OLD], "old")?,
        node: node_app,
        node_rotating: start(Side::Node, &[SECRET_NEW, SECRET_OLD], "rotating")?,
        rust_rotating: start(Side::Rust, &[SECRET_NEW, SECRET_OLD], "rotating")?,
        node_new: start(Side::Node, &[SECRET_NEW], "new")?,
        rust_new: start(Side::Rust, &[SECRET_NEW], "new")?,
        node_short: start(Side::Node, &[SECRET_SHORT], "short")?,
        rust_short: start(Side::Rust, &[SECRET_NEW, SECRET_SHORT], "new-short")?,
        target,
        vars: env.vars.clone(),
        tools: NodeApp {
            dir: node.dir.clone(),
        },
    };
    let mut results = Vec::new();
    for (i, (col, _, check)) in CASES.into_iter().enumerate() {
        if !only.is_empty() && !only.contains(&(i + 1)) {
            results.push(Outcome::Skipped);
            continue;
        }
        let outcome = match check(&apps) {
            Ok(()) => Outcome::Passed,
            Err(e) => {
                let mut why = format!("{e:#}");
                for app in [
                    &apps.node,
                    &apps.rust,
                    &apps.node_rotating,
                    &apps.rust_rotating,
                ] {
                    let tail = log_tail(&app.log);
                    if !tail.trim().is_empty() {
                        why.push_str(&format!(
                            "\n    log of {} ({}):\n{tail}",
                            app.name,
                            app.log.display()
                        ));
                    }
                }
                Outcome::Failed(why)
            }
        };
        eprintln!(
            "xtask: {} / {col}: {}",
            target.label(),
            if matches!(outcome, Outcome::Passed) {
                "ok"
            } else {
                "FAIL"
            }
        );
        results.push(outcome);
    }
    if target == Target::MongoEncrypted {
        // The cases pass whether or not anything is encrypted: check that
        // every session both apps wrote is sealed at rest.
        let var = |name| {
            env.vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("{name} not set"))
        };
        let sealed = node
            .tool(&["mongo-sealed", &var("MONGODB_URL")?, &var("MONGODB_DB")?])
            .context("sessions encrypted at rest")?;
        eprintln!(
            "xtask: {}: {} sessions in the collection, all encrypted",
            target.label(),
            sealed.trim()
        );
    }
    Ok(results)
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client (one request per connection) and the app routes

/// An app's answer: the status, the `connect.sid` cookie it set (if any)
/// and the JSON body.
struct Reply {
    status: u16,
    cookie: Option<String>,
    body: Value,
}

fn http(port: u16, method: &str, target: &str, cookie: Option<&str>) -> Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {COOKIE}={c}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let mut cookie = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("set-cookie") {
            if let Some(rest) = value.strip_prefix(&format!("{COOKIE}=")) {
                cookie = Some(rest.split(';').next().unwrap_or("").to_owned());
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    if chunked {
        body = dechunk(&body)?;
    }
    let text = String::from_utf8_lossy(&body);
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()));
    Ok(Reply {
        status,
        cookie,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A session dump: `{found, id, session: {cookie, ...data}}`.
struct Dump(Value);

impl Dump {
    fn found(&self) -> bool {
        self.0["found"] == Value::Bool(true)
    }

    fn id(&self) -> Option<&str> {
        self.0["id"].as_str()
    }

    fn data(&self) -> Map<String, Value> {
        let mut m = self.0["session"].as_object().cloned().unwrap_or_default();
        m.shift_remove("cookie");
        m
    }

    /// The cookie fields, without those that are `null`: express-session
    /// treats a `null` field as an absent one (connect-mongo with
    /// `stringify: false` stores absent fields as `null`).
    fn cookie(&self) -> Map<String, Value> {
        let mut c = self.0["session"]["cookie"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        c.retain(|_, v| !v.is_null());
        c
    }
}

impl App {
    fn call(&self, method: &str, target: &str, cookie: Option<&str>) -> Result<Reply> {
        let reply = http(self.port, method, target, cookie)
            .with_context(|| format!("{method} {target} on {}", self.name))?;
        ensure!(
            reply.status == 200,
            "{method} {target} on {} answered {}: {}",
            self.name,
            reply.status,
            reply.body
        );
        Ok(reply)
    }

    /// Logs in; returns the new cookie and the session.
    fn login(&self, user: &str, max_age: Option<Duration>) -> Result<(String, Dump)> {
        let mut target = format!("/login?user={}", encode(user));
        if let Some(d) = max_age {
            target.push_str(&format!("&maxAge={}", d.as_millis()));
        }
        let reply = self.call("POST", &target, None)?;
        let cookie = reply
            .cookie
            .with_context(|| format!("login on {} set no {COOKIE} cookie", self.name))?;
        Ok((cookie, Dump(reply.body)))
    }

    fn read(&self, cookie: &str) -> Result<Dump> {
        Ok(Dump(self.call("GET", "/read", Some(cookie))?.body))
    }

    /// Sets `key`; returns the cookie set on the response (if any) and the session.
    fn set(&self, cookie: &str, key: &str, value: &Value) -> Result<(Option<String>, Dump)> {
        let target = format!(
            "/set?key={}&value={}",
            encode(key),
            encode(&value.to_string())
        );
        let reply = self.call("POST", &target, Some(cookie))?;
        Ok((reply.cookie, Dump(reply.body)))
    }

    fn regenerate(&self, cookie: &str) -> Result<(String, Dump)> {
        let reply = self.call("POST", "/regenerate", Some(cookie))?;
        let cookie = reply
            .cookie
            .with_context(|| format!("regenerate on {} set no cookie", self.name))?;
        Ok((cookie, Dump(reply.body)))
    }

    fn destroy(&self, cookie: &str) -> Result<()> {
        self.call("POST", "/destroy", Some(cookie)).map(|_| ())
    }

    fn touch(&self, cookie: &str) -> Result<()> {
        self.call("GET", "/touch", Some(cookie)).map(|_| ())
    }

    fn new_id(&self) -> Result<String> {
        let reply = self.call("GET", "/id", None)?;
        reply.body["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("/id on {} gave no id: {}", self.name, reply.body))
    }

    fn check_id(&self, id: &str) -> Result<Option<String>> {
        let reply = self.call("GET", &format!("/check-id?id={}", encode(id)), None)?;
        Ok(match reply.body["valid"] {
            Value::Bool(true) => None,
            _ => Some(reply.body["error"].as_str().unwrap_or("invalid").to_owned()),
        })
    }
}

// ---------------------------------------------------------------------------
// Checks

/// Milliseconds since the epoch of an ISO-8601 UTC instant as express-session
/// writes it (`2024-01-02T03:04:05.678Z`; `+00:00` accepted too).
fn iso_millis(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let ms: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let ms: i64 = ms.parse().ok()?;
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// The reader saw exactly what the writer stored: same id, same data, same
/// cookie fields (the expiry compared as an instant).
fn same_session(what: &str, written: &Dump, read: &Dump) -> Result<()> {
    ensure!(read.found(), "{what}: no session found");
    ensure!(
        read.id() == written.id(),
        "{what}: id {:?} instead of {:?}",
        read.id(),
        written.id()
    );
    ensure!(
        read.data() == written.data(),
        "{what}: data differs\n      written: {}\n      read:    {}",
        Value::Object(written.data()),
        Value::Object(read.data())
    );
    let (mut wc, mut rc) = (written.cookie(), read.cookie());
    let (we, re) = (wc.shift_remove("expires"), rc.shift_remove("expires"));
    let instant = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).and_then(iso_millis);
    ensure!(
        wc == rc && instant(&we) == instant(&re) && we.is_some() == re.is_some(),
        "{what}: cookie differs\n      written: {}\n      read:    {}",
        written.0["session"]["cookie"],
        read.0["session"]["cookie"]
    );
    Ok(())
}

/// The session as its writer sees it (its stored state), then as the reader
/// sees it, then again as the writer sees it after the reader's request.
fn cross_read(writer: &App, reader: &App, user: &str) -> Result<()> {
    let (cookie, _) = writer.login(user, None)?;
    let written = writer.read(&cookie)?;
    ensure!(
        written.found(),
        "{} does not find its own new session",
        writer.name
    );
    ensure!(
        written.data().get("user") == Some(&json!(user)) && written.data().len() == 4,
        "{} stored unexpected data: {}",
        writer.name,
        Value::Object(written.data())
    );
    let read = reader.read(&cookie)?;
    same_session(
        &format!("{} reading {}'s session", reader.name, writer.name),
        &written,
        &read,
    )?;
    let again = writer.read(&cookie)?;
    same_session(
        &format!(
            "{} reading its session after {} read it",
            writer.name, reader.name
        ),
        &written,
        &again,
    )
}

fn case_node_to_rust(a: &Apps) -> Result<()> {
    cross_read(&a.node, &a.rust, "node-user ✓")
}

fn case_rust_to_node(a: &Apps) -> Result<()> {
    cross_read(&a.rust, &a.node, "rust-user ✓")
}

fn case_changes(a: &Apps) -> Result<()> {
    for (first, other) in [(&a.node, &a.rust), (&a.rust, &a.node)] {
        let (cookie, _) = first.login("changer", None)?;
        let original = first.read(&cookie)?;
        let mut expected = original.data();
        // The other side adds a key and changes one.
        let cart = json!({ "items": [{ "sku": "A-1", "qty": 2 }], "total": 12.5 });
        other.set(&cookie, "cart", &cart)?;
        other.set(&cookie, "visits", &json!(2))?;
        expected.insert("cart".into(), cart);
        expected.insert("visits".into(), json!(2));
        let seen = first.read(&cookie)?;
        ensure!(
            seen.found(),
            "{} lost the session after {} changed it",
            first.name,
            other.name
        );
        ensure!(
            seen.data() == expected,
            "{} after {}'s changes\n      expected: {}\n      found:    {}",
            first.name,
            other.name,
            Value::Object(expected.clone()),
            Value::Object(seen.data())
        );
        // The cookie fields the first side stored survive the other's save
        // (only the expiry moves: a save resets it).
        let fields = |d: &Dump| {
            let mut c = d.cookie();
            c.shift_remove("expires");
            Value::Object(c)
        };
        ensure!(
            fields(&seen) == fields(&original),
            "{}'s save changed the cookie fields {} stored\n      stored: {}\n      now:    {}",
            other.name,
            first.name,
            fields(&original),
            fields(&seen)
        );
        // And back: the first side adds a key; nothing the other wrote is lost.
        first.set(&cookie, "flash", &json!("saved ✓"))?;
        expected.insert("flash".into(), json!("saved ✓"));
        let seen = other.read(&cookie)?;
        ensure!(
            seen.data() == expected,
            "{} after {}'s change\n      expected: {}\n      found:    {}",
            other.name,
            first.name,
            Value::Object(expected.clone()),
            Value::Object(seen.data())
        );
        // Regenerate on the other side: a new id with the same data; the old id is gone.
        let old_id = seen.id().map(str::to_owned);
        let (new_cookie, regenerated) = other.regenerate(&cookie)?;
        ensure!(
            regenerated.id().is_some() && regenerated.id().map(str::to_owned) != old_id,
            "{}'s regenerate kept the id",
            other.name
        );
        let seen = first.read(&new_cookie)?;
        ensure!(
            seen.found() && seen.id() == regenerated.id() && seen.data() == expected,
            "{} reading the session {} regenerated: {}",
            first.name,
            other.name,
            seen.0
        );
        ensure!(
            !first.read(&cookie)?.found(),
            "{} still finds the old id after {} regenerated it",
            first.name,
            other.name
        );
    }
    Ok(())
}

fn case_destroy(a: &Apps) -> Result<()> {
    for (creator, destroyer) in [
        (&a.node, &a.rust),
        (&a.rust, &a.node),
        (&a.node, &a.node),
        (&a.rust, &a.rust),
    ] {
        let (cookie, _) = creator.login("leaver", None)?;
        for app in [creator, destroyer] {
            ensure!(
                app.read(&cookie)?.found(),
                "{} does not see {}'s new session",
                app.name,
                creator.name
            );
        }
        destroyer.destroy(&cookie)?;
        for app in [&a.node, &a.rust] {
            let seen = app.read(&cookie)?;
            ensure!(
                !seen.found(),
                "{} still sees the session {} created and {} destroyed: {}",
                app.name,
                creator.name,
                destroyer.name,
                seen.0
            );
        }
    }
    Ok(())
}

fn wait_until(deadline: Instant) {
    // Waiting for time itself to pass (cookie lifetimes), not for another
    // process: there is nothing to poll instead.
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

fn case_expiry(a: &Apps) -> Result<()> {
    let (n, r) = (&a.node, &a.rust);
    // No early logout: an hour-long session is live on the other side (a
    // PostgreSQL time zone taken for UTC would move it hours back).
    for (writer, reader) in [(n, r), (r, n)] {
        let (cookie, _) = writer.login("hour", None)?;
        ensure!(
            reader.read(&cookie)?.found(),
            "{} does not see {}'s one-hour session: logged out early",
            reader.name,
            writer.name
        );
    }
    // The timelines run side by side, one thread each: every combination of
    // creator and toucher (the checker is the side that did not touch),
    // and an untouched short session from each side.
    let errors: Vec<String> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (creator, toucher, checker) in [(n, n, r), (n, r, n), (r, r, n), (r, n, r)] {
            handles.push(s.spawn(move || touched_timeline(creator, toucher, checker, [n, r])));
        }
        for creator in [n, r] {
            handles.push(s.spawn(move || short_timeline(creator, [n, r])));
        }
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("a timeline thread panicked".to_owned()),
            })
            .collect()
    });
    ensure!(errors.is_empty(), "{}", errors.join("\n    "));
    Ok(())
}

/// Whether a timeline could tell anything.
enum Timing {
    Told,
    /// A step came too late to conclude (the machine stalled for seconds).
    Missed(String),
}

/// Runs [`touched_once`], once more if the first run was inconclusive.
fn touched_timeline(creator: &App, toucher: &App, checker: &App, both: [&App; 2]) -> Result<()> {
    let mut why = String::new();
    for _ in 0..2 {
        match touched_once(creator, toucher, checker, both)? {
            Timing::Told => return Ok(()),
            Timing::Missed(w) => {
                eprintln!("xtask: inconclusive expiry timeline ({w}); running it again");
                why = w;
            }
        }
    }
    bail!("inconclusive twice: {why}")
}

/// A session touched half-way through its life, then read by the other side
/// after the expiry written in its JSON: the touch must keep it (no early
/// logout). Once the last touch's lifetime is over too, it is gone
/// everywhere (no immortal session).
fn touched_once(creator: &App, toucher: &App, checker: &App, both: [&App; 2]) -> Result<Timing> {
    let what = format!(
        "the session {} created and {} touched",
        creator.name, toucher.name
    );
    let login_start = Instant::now();
    let (cookie, _) = creator.login("toucher", Some(TOUCH_LIFETIME))?;
    // The JSON `expires` is at most login_done + lifetime; the stored
    // expiry at least login_start + lifetime.
    let login_done = Instant::now();
    wait_until(login_done + TOUCH_LIFETIME / 2);
    let touch_start = Instant::now();
    toucher.touch(&cookie)?;
    if Instant::now() + MARGIN > login_start + TOUCH_LIFETIME {
        return Ok(Timing::Missed(format!(
            "the touch of {what} came at the end of its life"
        )));
    }
    wait_until(login_done + TOUCH_LIFETIME + MARGIN);
    let seen = checker.read(&cookie)?;
    let read_done = Instant::now();
    if !seen.found() {
        if read_done + MARGIN > touch_start + TOUCH_LIFETIME {
            return Ok(Timing::Missed(format!(
                "{} read {what} after the touch's lifetime",
                checker.name
            )));
        }
        bail!(
            "{} lost {what}, at the expiry written before the touch: the touch was not honoured",
            checker.name
        );
    }
    // That read touched it again, before read_done.
    wait_until(read_done + TOUCH_LIFETIME + STORE_ROUNDING);
    for app in both {
        let seen = app.read(&cookie)?;
        ensure!(
            !seen.found(),
            "{} still sees {what} after its extended expiry: immortal session",
            app.name
        );
    }
    Ok(Timing::Told)
}

/// A session never used after its creation is gone on both sides once its
/// lifetime is over.
fn short_timeline(creator: &App, both: [&App; 2]) -> Result<()> {
    let (cookie, _) = creator.login("short", Some(SHORT_LIFETIME))?;
    wait_until(Instant::now() + SHORT_LIFETIME + STORE_ROUNDING);
    for app in both {
        let seen = app.read(&cookie)?;
        ensure!(
            !seen.found(),
            "{} still sees {}'s session {} after its expiry: immortal session",
            app.name,
            creator.name,
            seen.0["session"]["cookie"]["expires"]
        );
    }
    Ok(())
}

fn case_rotation(a: &Apps) -> Result<()> {
    for signer in [&a.node, &a.rust] {
        for rotating in [&a.node_rotating, &a.rust_rotating] {
            let (old_cookie, _) = signer.login("rotator", None)?;
            let written = signer.read(&old_cookie)?;
            for new_only in [&a.node_new, &a.rust_new] {
                ensure!(
                    !new_only.read(&old_cookie)?.found(),
                    "{} (new secret only) accepted a cookie signed with the old secret",
                    new_only.name
                );
            }
            let seen = rotating.read(&old_cookie)?;
            same_session(
                &format!(
                    "{} reading {}'s old-signed cookie",
                    rotating.name, signer.name
                ),
                &written,
                &seen,
            )?;
            let (set_cookie, _) = rotating.set(&old_cookie, "rotated", &json!(true))?;
            let new_cookie = set_cookie.with_context(|| {
                format!(
                    "{} changed the session but sent no cookie re-signed with the new secret",
                    rotating.name
                )
            })?;
            ensure!(
                new_cookie != old_cookie,
                "{} sent back the old-signed cookie",
                rotating.name
            );
            for new_only in [&a.node_new, &a.rust_new] {
                let seen = new_only.read(&new_cookie)?;
                ensure!(
                    seen.found()
                        && seen.id() == written.id()
                        && seen.data().get("rotated") == Some(&json!(true)),
                    "{} (new secret only) does not accept the cookie {} re-signed: {}",
                    new_only.name,
                    rotating.name,
                    seen.0
                );
            }
        }
    }
    Ok(())
}

fn case_short_secret(a: &Apps) -> Result<()> {
    let (cookie, _) = a.node_short.login("shorty", None)?;
    let written = a.node_short.read(&cookie)?;
    let seen = a.rust_short.read(&cookie)?;
    same_session(
        &format!(
            "{} reading {}'s cookie",
            a.rust_short.name, a.node_short.name
        ),
        &written,
        &seen,
    )?;
    let (set_cookie, _) = a.rust_short.set(&cookie, "moved", &json!(true))?;
    let long = set_cookie.with_context(|| {
        format!(
            "{} changed the session but sent no cookie",
            a.rust_short.name
        )
    })?;
    for reader in [&a.node_new, &a.rust_new] {
        let seen = reader.read(&long)?;
        ensure!(
            seen.found()
                && seen.id() == written.id()
                && seen.data().get("moved") == Some(&json!(true)),
            "{} (long secret only) does not accept the cookie {} re-signed: {}",
            reader.name,
            a.rust_short.name,
            seen.0
        );
    }
    Ok(())
}

fn case_rotation_rust_first(a: &Apps) -> Result<()> {
    // Node still on [old] alone; Rust already on [new, old].
    let (old_cookie, _) = a.node.login("early", None)?;
    let written = a.node.read(&old_cookie)?;
    for route in ["/read", "/touch"] {
        let reply = a.rust_rotating.call("GET", route, Some(&old_cookie))?;
        ensure!(
            reply.cookie.is_none(),
            "{} re-signed the cookie on a read-only request ({route}): Node on the old secret alone would start a new, empty session",
            a.rust_rotating.name
        );
    }
    let seen = a.node.read(&old_cookie)?;
    same_session(
        &format!(
            "{} after {} read the session",
            a.node.name, a.rust_rotating.name
        ),
        &written,
        &seen,
    )
}

fn case_reserved_keys(a: &Apps) -> Result<()> {
    let (cookie, _) = a.rust.login("keys", None)?;
    let written = a.rust.read(&cookie)?;
    for key in ["id", "req", "save", "destroy", "resetMaxAge", "constructor"] {
        let target = format!("/set?key={}&value=1", encode(key));
        let reply = http(a.rust.port, "POST", &target, Some(&cookie))?;
        ensure!(
            reply.status >= 400,
            "{} stored the key {key:?}, which Node drops on its next save",
            a.rust.name
        );
    }
    // Nothing half-written: both sides see the session as it was.
    for reader in [&a.node, &a.rust] {
        let seen = reader.read(&cookie)?;
        same_session(
            &format!("{} after refused keys", reader.name),
            &written,
            &seen,
        )?;
    }
    Ok(())
}

fn case_lone_surrogate(a: &Apps) -> Result<()> {
    let (cookie, _) = a.node.login("slicer", None)?;
    // What `"Zoë 😀".slice(0, -1)` leaves: a high surrogate alone. The
    // value is JSON text, parsed by the app (a JavaScript string).
    let target = format!("/set?key=name&value={}", encode(r#""Zo\u00eb \ud83d""#));
    http(a.node.port, "POST", &target, Some(&cookie))
        .and_then(|r| {
            ensure!(r.status == 200, "answered {}", r.status);
            Ok(r)
        })
        .with_context(|| format!("{} storing a lone surrogate", a.node.name))?;
    let seen = a.rust.read(&cookie)?;
    ensure!(
        seen.data().get("name") == Some(&json!("Zoë \u{fffd}")),
        "{} read {:?}",
        a.rust.name,
        seen.data().get("name")
    );
    // Rust writes the session back; Node keeps reading and writing it.
    a.rust.set(&cookie, "after", &json!(1))?;
    let seen = a.node.read(&cookie)?;
    ensure!(
        seen.found() && seen.data().get("after") == Some(&json!(1)),
        "{} after Rust wrote: {}",
        a.node.name,
        seen.0
    );
    a.node.set(&cookie, "again", &json!(2))?;
    ensure!(a.rust.read(&cookie)?.data().get("again") == Some(&json!(2)));
    Ok(())
}

fn case_pg_rounding(a: &Apps) -> Result<()> {
    let Target::Postgres(..) = a.target else {
        return Ok(());
    };
    let url = a
        .vars
        .iter()
        .find(|(k, _)| *k == "DATABASE_URL")
        .map(|(_, v)| v.clone())
        .context("no DATABASE_URL")?;
    for _ in 0..3 {
        let (_, written) = a.rust.login("rounding", None)?;
        let expires = written.cookie()["expires"]
            .as_str()
            .and_then(iso_millis)
            .context("no cookie expiry")?;
        if expires % 1000 == 0 {
            continue; // a whole second: nothing to round; try another
        }
        // The second Node's `get` computes at the cookie's last instant.
        let last_second = (expires + 999) / 1000;
        let id = written.id().context("no id")?;
        let keeps = a
            .tools
            .tool(&["pg-node-keeps", &url, id, &last_second.to_string()])?
            == "true";
        ensure!(
            keeps,
            "connect-pg-simple drops a row {} wrote (cookie expires at {expires} ms) before its last second {last_second}",
            a.rust.name
        );
        return Ok(());
    }
    bail!("three logins in a row expired on a whole second")
}

fn case_ids(a: &Apps) -> Result<()> {
    for (generator, checkers) in [(&a.node, [&a.rust, &a.node]), (&a.rust, [&a.node, &a.rust])] {
        let mut ids = Vec::new();
        for _ in 0..IDS_PER_SIDE {
            ids.push(generator.new_id()?);
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        ensure!(
            unique.len() == ids.len(),
            "{} generated a duplicate id",
            generator.name
        );
        for id in &ids {
            for checker in checkers {
                if let Some(why) = checker.check_id(id)? {
                    bail!(
                        "{}'s id {id:?} is refused by {}: {why}",
                        generator.name,
                        checker.name
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_instants_parse() {
        assert_eq!(iso_millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            iso_millis("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            iso_millis("2024-02-29T12:34:56.789+00:00"),
            Some(1_709_210_096_789)
        );
        assert_eq!(iso_millis("2024-02-29T12:34:56Z"), Some(1_709_210_096_000));
        assert_eq!(iso_millis("2024-02-29 12:34:56"), None);
    }

    #[test]
    fn responses_parse() -> Result<()> {
        let raw = b"HTTP/1.1 200 OK\r\nSet-Cookie: other=1\r\nset-cookie: connect.sid=s%3Aabc.def; Path=/; HttpOnly\r\n\
                    Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        let r = parse_response(raw)?;
        assert_eq!(r.status, 200);
        assert_eq!(r.cookie.as_deref(), Some("s%3Aabc.def"));
        assert_eq!(r.body, json!({ "a": 1 }));
        Ok(())
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=✓"), "a%20b%26c%3D%E2%9C%93");
    }
}

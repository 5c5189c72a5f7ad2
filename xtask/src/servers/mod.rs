//! Finds or starts the database servers the store tests need.
//!
//! For each backend, in order: a URL from the environment (`REDIS_URL`,
//! `DATABASE_URL`, `MONGODB_URL`, `MYSQL_URL`); a server already listening on its usual
//! port on 127.0.0.1; a local binary started in a temporary directory
//! (`redis-server`; PostgreSQL's `initdb`/`pg_ctl` as a non-root user; the
//! MongoDB wire-compatible test server `SecantusDB` from PyPI in a venv
//! under `target/`; MariaDB from its binaries with a data directory of its
//! own); last, a container (see `containers.rs`). `--containers` skips the
//! first three rungs for the backends that run in containers. Servers and
//! containers started here are stopped when xtask exits.

mod mongo;
mod private;
mod redis_group;

pub use mongo::mongo_python;
pub use private::Private;
pub use redis_group::*;

use crate::Backend;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version of the MongoDB wire-compatible test server installed from PyPI.
pub const SECANTUS_VERSION: &str = "SecantusDB==0.7.0b3";

/// A server process started by xtask; stopped on drop.
enum Started {
    Child(Child),
    /// A Redis Cluster or Sentinel set-up (stops itself on drop).
    Group(#[allow(dead_code)] RedisGroup),
    /// A private server (a TLS one; stops itself on drop).
    Private(#[allow(dead_code)] Box<Private>),
    /// A container (removed on drop).
    Container(#[allow(dead_code)] Box<crate::containers::Running>),
}

impl Drop for Started {
    fn drop(&mut self) {
        match self {
            Started::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Started::Group(_) | Started::Private(_) | Started::Container(_) => {}
        }
    }
}

/// The servers found or started so far, and the environment for tests.
#[derive(Default)]
pub struct Servers {
    found: HashMap<&'static str, (String, String, String)>,
    started: Vec<Started>,
    /// The certificates of the TLS servers, made on first need.
    certs: Option<crate::tls::Certs>,
    /// Whether this run started the PostgreSQL TLS server, which takes the
    /// client certificate of `certs` for [`crate::tls::CLIENT_USER`].
    pg_client_cert: bool,
    /// Containers first, for the backends that run in them.
    containers_first: bool,
    /// The container engine, once needed (after `started`: containers are
    /// removed before a Podman service started here stops).
    engine: Option<crate::containers::Engine>,
}

impl Servers {
    /// Servers that are containers wherever a backend can run in one
    /// (`--containers`).
    pub fn containers() -> Servers {
        Servers {
            containers_first: true,
            ..Servers::default()
        }
    }

    /// A server in a container.
    fn start_container(&mut self, b: Backend) -> Result<(String, String)> {
        if self.engine.is_none() {
            let engine = crate::containers::Engine::start()?;
            eprintln!("xtask: container engine: {}", engine.how());
            self.engine = Some(engine);
        }
        let engine = self.engine.as_mut().context("no container engine")?;
        let running = engine.run(b)?;
        let found = (running.url.clone(), running.how.clone());
        self.started.push(Started::Container(Box::new(running)));
        Ok(found)
    }

    /// Finds or starts the server for `b`: `(env var, url, how it was found)`,
    /// or `None` for embedded backends.
    pub fn ensure(&mut self, b: Backend) -> Result<Option<(String, String, String)>> {
        let var = match b {
            Backend::Memory | Backend::Sqlite => return Ok(None),
            Backend::Redis => "REDIS_URL",
            Backend::Postgres => "DATABASE_URL",
            Backend::Mongo => "MONGODB_URL",
            Backend::Mysql => "MYSQL_URL",
            Backend::RedisCluster => "REDIS_CLUSTER_URL",
            Backend::RedisSentinel => "REDIS_SENTINEL_URL",
            Backend::RedisTls => "REDIS_TLS_URL",
            Backend::PostgresTls => "DATABASE_TLS_URL",
            Backend::MysqlTls => "MYSQL_TLS_URL",
            Backend::MongoTls => "MONGODB_TLS_URL",
        };
        if let Some(found) = self.found.get(var) {
            return Ok(Some(found.clone()));
        }
        let (url, how) = self.find(b, var)?;
        eprintln!("xtask: {} server: {how}: {url}", b.name());
        let found = (var.to_owned(), url, how);
        self.found.insert(var, found.clone());
        Ok(Some(found))
    }

    /// Sets every found server's URL on `cmd`, and the CAs of the TLS
    /// servers (`SESSION_TEST_TLS_CA`, `SESSION_TEST_OTHER_CA`).
    pub fn apply_env(&self, cmd: &mut Command) {
        for (var, url, _) in self.found.values() {
            cmd.env(var, url);
        }
        if let Some(certs) = &self.certs {
            cmd.env("SESSION_TEST_TLS_CA", &certs.ca);
            cmd.env("SESSION_TEST_OTHER_CA", &certs.other_ca);
            if self.pg_client_cert {
                cmd.env("SESSION_TEST_CLIENT_USER", crate::tls::CLIENT_USER);
                cmd.env("SESSION_TEST_CLIENT_CERT", &certs.client_cert);
                cmd.env("SESSION_TEST_CLIENT_KEY", &certs.client_key);
            }
        }
    }

    fn certs(&mut self) -> Result<crate::tls::Certs> {
        Ok(match &self.certs {
            Some(c) => c.clone(),
            None => {
                let made = crate::tls::generate(&crate::target_dir().join("tls-certs"))?;
                self.certs = Some(made.clone());
                made
            }
        })
    }

    /// A private TLS server for `b` with this run's certificates.
    fn start_tls(&mut self, b: Backend) -> Result<(String, String)> {
        let plain = b.without_tls().context("not a TLS backend")?;
        let certs = self.certs()?;
        let server = Private::start_tls(plain, &certs)?;
        let found = (server.url().to_owned(), format!("started {}", server.how()));
        self.started.push(Started::Private(Box::new(server)));
        if plain == Backend::Postgres {
            self.pg_client_cert = true;
        }
        Ok(found)
    }

    /// For the bench: a Redis and a PostgreSQL server of this run's own,
    /// each taking TLS and cleartext, so one server is measured both ways
    /// (`BENCH_TLS_REDIS_URL` / `BENCH_PLAIN_REDIS_URL`, and
    /// `..._POSTGRES_URL`).
    pub fn start_bench_tls(&mut self) -> Result<()> {
        let certs = self.certs()?;
        for (b, tls_var, plain_var) in [
            (
                Backend::Redis,
                "BENCH_TLS_REDIS_URL",
                "BENCH_PLAIN_REDIS_URL",
            ),
            (
                Backend::Postgres,
                "BENCH_TLS_POSTGRES_URL",
                "BENCH_PLAIN_POSTGRES_URL",
            ),
        ] {
            let server = Private::start_dual(b, &certs)?;
            let how = format!("started {}", server.how());
            eprintln!("xtask: {} server for the TLS bench: {how}", b.name());
            let plain = server.plain_url().context("no cleartext URL")?.to_owned();
            self.found.insert(
                tls_var,
                (tls_var.to_owned(), server.url().to_owned(), how.clone()),
            );
            self.found
                .insert(plain_var, (plain_var.to_owned(), plain, how));
            self.started.push(Started::Private(Box::new(server)));
        }
        Ok(())
    }

    fn find(&mut self, b: Backend, var: &str) -> Result<(String, String)> {
        if self.containers_first && crate::containers::BACKENDS.contains(&b) {
            return self.start_container(b);
        }
        if let Ok(url) = std::env::var(var) {
            if !url.is_empty() {
                return Ok((url, format!("from ${var}")));
            }
        }
        if let Backend::RedisCluster | Backend::RedisSentinel = b {
            return self.find_redis_group(b == Backend::RedisSentinel);
        }
        if b.without_tls().is_some() {
            return self.start_tls(b);
        }
        let Some((_, port, url)) = USUAL.iter().find(|(u, _, _)| *u == b).copied() else {
            bail!("{} has no usual local server", b.name())
        };
        if listening(port) {
            return Ok((
                url.to_owned(),
                format!("already listening on 127.0.0.1:{port}"),
            ));
        }
        let started = match b {
            Backend::Redis => self.start_redis(),
            // The same private server as the fault tests' (initdb, pg_ctl).
            Backend::Postgres => self.start_private(Backend::Postgres),
            Backend::Mongo => self.start_mongo(),
            Backend::Mysql => self.start_private(Backend::Mysql),
            Backend::Memory | Backend::Sqlite => bail!("embedded backend"),
            Backend::RedisCluster | Backend::RedisSentinel => bail!("a group of servers"),
            Backend::RedisTls | Backend::PostgresTls | Backend::MysqlTls | Backend::MongoTls => {
                bail!("TLS servers are private")
            }
        };
        match started {
            Ok(found) => Ok(found),
            Err(e) if crate::containers::possible() => {
                eprintln!(
                    "xtask: no local {} server ({e:#}); trying a container",
                    b.name()
                );
                self.start_container(b).map_err(|c| {
                    c.context(format!(
                        "nothing on ${var} or 127.0.0.1:{port}, no local binary could start ({e:#}), and no container"
                    ))
                })
            }
            Err(e) => Err(e.context(format!(
                "nothing on ${var} or 127.0.0.1:{port}, no local binary could start, and no container engine (Docker, or Podman: apt-get install podman runc mmdebstrap)"
            ))),
        }
    }

    /// A ready cluster / Sentinel set-up already on the fixed ports, else
    /// one started here.
    fn find_redis_group(&mut self, sentinel: bool) -> Result<(String, String)> {
        let base = if sentinel {
            SENTINEL_PORT
        } else {
            CLUSTER_PORT
        };
        if let Some(url) = RedisGroup::running(sentinel, base) {
            return Ok((url, format!("already running on 127.0.0.1:{base}…")));
        }
        let group = if sentinel {
            RedisGroup::start_sentinel(base)?
        } else {
            RedisGroup::start_cluster(base)?
        };
        let found = (group.url().to_owned(), format!("started {}", group.how()));
        self.started.push(Started::Group(group));
        Ok(found)
    }

    /// A private server from the machine's binaries (PostgreSQL, MariaDB:
    /// its own data directory and port, as the fault tests use), stopped
    /// on drop.
    fn start_private(&mut self, b: Backend) -> Result<(String, String)> {
        let server = Private::start(b).with_context(|| {
            let (package, var) = match b {
                Backend::Mysql => (
                    "mariadb-server",
                    "MYSQL_URL=mysql://USER[:PASSWORD]@HOST:PORT/DATABASE",
                ),
                Backend::Postgres => (
                    "postgresql",
                    "DATABASE_URL=postgres://USER[:PASSWORD]@HOST:PORT/DATABASE",
                ),
                _ => ("its server", "its URL variable"),
            };
            format!(
                "starting a private {} server from the machine's binaries (Debian: apt-get install {package}; or set {var})",
                b.name()
            )
        })?;
        let found = (server.url().to_owned(), format!("started {}", server.how()));
        self.started.push(Started::Private(Box::new(server)));
        Ok(found)
    }

    fn start_redis(&mut self) -> Result<(String, String)> {
        let bin = which("redis-server").context("redis-server not found")?;
        let dir = temp_dir("redis")?;
        let port = free_port()?;
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.started.push(Started::Child(child));
        wait_for_port(port, Duration::from_secs(20))?;
        Ok((
            format!("redis://127.0.0.1:{port}"),
            format!("started {}", bin.display()),
        ))
    }

    fn start_mongo(&mut self) -> Result<(String, String)> {
        let python = mongo_python()?;
        let port = free_port()?;
        let child = Command::new(&python)
            // `--standalone`: a single mongod (by default it plays a
            // replica-set primary and slows down with every write).
            .args([
                "-m",
                "secantus",
                "--port",
                &port.to_string(),
                "--host",
                "127.0.0.1",
                "--storage-path",
                ":memory:",
                "--standalone",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the MongoDB test server")?;
        self.started.push(Started::Child(child));
        wait_for_port(port, Duration::from_secs(60))?;
        Ok((
            format!("mongodb://127.0.0.1:{port}"),
            format!("started {SECANTUS_VERSION} (MongoDB wire-compatible test server)"),
        ))
    }
}

pub fn listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if listening(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listened on 127.0.0.1:{port} within {limit:?}")
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn temp_dir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The servers the suite looks for on their usual local ports, and the URL
/// it then uses (`compose.yaml` starts them so; a test checks it agrees).
pub const USUAL: [(Backend, u16, &str); 4] = [
    (Backend::Redis, 6379, "redis://127.0.0.1:6379"),
    (
        Backend::Postgres,
        5432,
        "postgres://postgres@127.0.0.1:5432/test",
    ),
    (Backend::Mongo, 27017, "mongodb://127.0.0.1:27017"),
    (Backend::Mysql, 3306, "mysql://root@127.0.0.1:3306/test"),
];

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(initdb) = which("initdb") {
        return initdb.parent().map(Path::to_path_buf);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", u, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

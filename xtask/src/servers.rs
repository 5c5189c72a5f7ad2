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
    PgCtl {
        bin: PathBuf,
        data: PathBuf,
        user: Option<String>,
    },
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
            Started::PgCtl { bin, data, user } => {
                let mut cmd = as_user(user.as_deref(), &bin.join("pg_ctl"));
                cmd.args(["-D"])
                    .arg(&*data)
                    .args(["-m", "immediate", "stop"]);
                let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
                let _ = std::fs::remove_dir_all(&*data);
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
            Backend::Postgres => self.start_postgres(),
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

    /// A private server from the machine's binaries (MariaDB: its own
    /// data directory and port, as the fault tests use), stopped on drop.
    fn start_private(&mut self, b: Backend) -> Result<(String, String)> {
        let server = Private::start(b).with_context(|| {
            format!(
                "starting a private {} server from the machine's binaries (Debian: apt-get install mariadb-server; or set {})",
                b.name(),
                match b {
                    Backend::Mysql => "MYSQL_URL=mysql://USER[:PASSWORD]@HOST:PORT/DATABASE",
                    _ => "its URL variable",
                }
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

    fn start_postgres(&mut self) -> Result<(String, String)> {
        let bin = postgres_bin_dir().context("initdb/pg_ctl not found")?;
        let dir = temp_dir("pg")?;
        let user = if is_root() {
            Some("postgres".to_owned())
        } else {
            None
        };
        if let Some(u) = &user {
            let ok = Command::new("chown").arg(u).arg(&dir).status()?.success();
            if !ok {
                bail!("cannot hand {} to user {u}", dir.display());
            }
        }
        let data = dir.join("data");
        let status = as_user(user.as_deref(), &bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .context("running initdb")?;
        if !status.success() {
            bail!("initdb failed");
        }
        let port = free_port()?;
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {}",
            dir.display()
        );
        let status = as_user(user.as_deref(), &bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-o", &opts, "-w", "start"])
            .stdout(Stdio::null())
            .status()
            .context("running pg_ctl start")?;
        self.started.push(Started::PgCtl {
            bin: bin.clone(),
            data,
            user,
        });
        if !status.success() {
            bail!("pg_ctl start failed");
        }
        wait_for_port(port, Duration::from_secs(30))?;
        Ok((
            format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            format!("started {}", bin.join("postgres").display()),
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

/// A private server for fault tests: started on a free loopback port in its
/// own temporary directory (never the shared servers on the usual ports),
/// and stopped and started again on the same port and data directory.
/// Everything is stopped and removed on drop.
pub struct Private {
    backend: Backend,
    port: u16,
    dir: PathBuf,
    url: String,
    how: String,
    child: Option<Child>,
    pg: Option<(PathBuf, Option<String>)>,
    running: bool,
    /// TLS only: the certificate and key the server presents (copies in `dir`).
    tls: Option<crate::tls::Certs>,
    /// A TLS server that also takes cleartext (the bench's): the cleartext
    /// port (Redis: a second one; PostgreSQL: the same) and URL.
    plain: Option<(u16, String)>,
}

impl Private {
    /// Starts a private Redis (append-only file, fsync on every write),
    /// PostgreSQL, MariaDB or MongoDB test server (data in a directory).
    pub fn start(backend: Backend) -> Result<Private> {
        Private::start_with(backend, None, false)
    }

    /// Like [`Private::start`], serving TLS only (Redis, PostgreSQL,
    /// MariaDB) with `certs`; the URL asks for full verification against
    /// `certs.ca` (Redis: the CA goes to the tests in `SESSION_TEST_TLS_CA`).
    pub fn start_tls(backend: Backend, certs: &crate::tls::Certs) -> Result<Private> {
        Private::start_with(backend, Some(certs.clone()), false)
    }

    /// Like [`Private::start_tls`] (Redis and PostgreSQL), also taking
    /// cleartext logins ([`Private::plain_url`]): the bench compares TLS
    /// with cleartext on one server.
    pub fn start_dual(backend: Backend, certs: &crate::tls::Certs) -> Result<Private> {
        Private::start_with(backend, Some(certs.clone()), true)
    }

    fn start_with(
        backend: Backend,
        certs: Option<crate::tls::Certs>,
        dual: bool,
    ) -> Result<Private> {
        let label = if certs.is_some() { "tls" } else { "faults" };
        let dir = temp_dir(&format!("{label}-{}", backend.name()))?;
        let port = free_port()?;
        let (url, how, pg) = match backend {
            Backend::Redis => {
                let bin = which("redis-server").context("redis-server not found")?;
                (
                    format!("redis://127.0.0.1:{port}/"),
                    if certs.is_some() {
                        format!("{} (no persistence)", bin.display())
                    } else {
                        format!("{} (appendonly, fsync always)", bin.display())
                    },
                    None,
                )
            }
            Backend::Postgres => {
                let bin = postgres_bin_dir().context("initdb/pg_ctl not found")?;
                let user = is_root().then(|| "postgres".to_owned());
                if let Some(u) = &user {
                    if !Command::new("chown").arg(u).arg(&dir).status()?.success() {
                        bail!("cannot hand {} to user {u}", dir.display());
                    }
                }
                let status = as_user(user.as_deref(), &bin.join("initdb"))
                    .args(["-U", "postgres", "--auth=trust", "-D"])
                    .arg(dir.join("data"))
                    .stdout(Stdio::null())
                    .status()
                    .context("running initdb")?;
                if !status.success() {
                    bail!("initdb failed");
                }
                (
                    format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    format!("{}", bin.join("postgres").display()),
                    Some((bin, user)),
                )
            }
            Backend::Mongo => {
                mongo_python()?;
                (
                    format!("mongodb://127.0.0.1:{port}/"),
                    format!("{SECANTUS_VERSION} (storage in a directory, sync on commit)"),
                    None,
                )
            }
            Backend::Mysql => {
                let install = which("mariadb-install-db")
                    .or_else(|| which("mysql_install_db"))
                    .context("mariadb-install-db not found (apt-get install mariadb-server)")?;
                let mut cmd = Command::new(install);
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", dir.join("data").display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
                if is_root() {
                    cmd.arg("--user=root");
                }
                let status = cmd
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("running mariadb-install-db")?;
                if !status.success() {
                    bail!("mariadb-install-db failed");
                }
                // Run at every start, before connections are accepted.
                std::fs::write(
                    dir.join("init.sql"),
                    "CREATE DATABASE IF NOT EXISTS test;\n",
                )?;
                (
                    format!("mysql://root@127.0.0.1:{port}/test"),
                    "mariadbd (InnoDB, log flushed at every commit)".to_owned(),
                    None,
                )
            }
            Backend::Memory | Backend::Sqlite => bail!("{} has no server", backend.name()),
            Backend::RedisCluster | Backend::RedisSentinel => {
                bail!("{} is a group of servers: see RedisGroup", backend.name())
            }
            Backend::RedisTls | Backend::PostgresTls | Backend::MysqlTls | Backend::MongoTls => {
                bail!("start_tls takes the plain backend")
            }
        };
        let mut plain = None;
        let (url, how, tls) = match certs {
            None => (url, how, None),
            Some(certs) => {
                // Copies the server's files can own (PostgreSQL refuses a
                // key that others can read or that it does not own).
                let cert = dir.join("server.pem");
                let key = dir.join("server.key");
                std::fs::copy(&certs.cert, &cert)?;
                std::fs::copy(&certs.key, &key)?;
                std::fs::copy(&certs.ca, dir.join("ca.pem"))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
                if pg.is_some() {
                    // TLS only: no cleartext connection is accepted (unless
                    // `dual`, for the bench); the client-certificate role
                    // logs in with its certificate and nothing else.
                    let plain = if dual {
                        "host all all 127.0.0.1/32 trust\n"
                    } else {
                        ""
                    };
                    std::fs::write(
                        dir.join("data").join("pg_hba.conf"),
                        format!(
                            "local all all trust\n\
                             hostssl all {} 127.0.0.1/32 cert\n\
                             hostssl all all 127.0.0.1/32 trust\n{plain}",
                            crate::tls::CLIENT_USER
                        ),
                    )?;
                }
                if let Some((_, Some(u))) = &pg {
                    for f in [&cert, &key] {
                        if !Command::new("chown").arg(u).arg(f).status()?.success() {
                            bail!("cannot hand {} to user {u}", f.display());
                        }
                    }
                }
                let ca = certs.ca.display().to_string();
                if dual {
                    plain = Some(match backend {
                        Backend::Redis => {
                            let p = free_port()?;
                            (p, format!("redis://127.0.0.1:{p}/"))
                        }
                        Backend::Postgres => (port, format!("{url}?sslmode=disable")),
                        _ => bail!("no cleartext beside TLS for {}", backend.name()),
                    });
                }
                let url = match backend {
                    Backend::Redis => format!("rediss://127.0.0.1:{port}/"),
                    Backend::Postgres => {
                        format!("{url}?sslmode=verify-full&sslrootcert={ca}")
                    }
                    Backend::Mysql => format!("{url}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
                    Backend::Mongo => format!("{url}?tls=true&tlsCAFile={ca}"),
                    _ => bail!("no TLS server for {}", backend.name()),
                };
                let ca = dir.join("ca.pem");
                let tls = crate::tls::Certs {
                    cert,
                    key,
                    ca,
                    ..certs
                };
                let only = if dual {
                    "TLS and cleartext"
                } else {
                    "TLS only"
                };
                (url, format!("{how}, {only}"), Some(tls))
            }
        };
        let mut p = Private {
            backend,
            port,
            dir,
            url,
            how,
            child: None,
            pg,
            running: false,
            tls,
            plain,
        };
        p.resume()?;
        Ok(p)
    }

    /// The URL of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cleartext URL of a server started with [`Private::start_dual`].
    pub fn plain_url(&self) -> Option<&str> {
        self.plain.as_ref().map(|(_, u)| u.as_str())
    }

    /// What was started.
    pub fn how(&self) -> &str {
        &self.how
    }

    /// Stops the server (gracefully: SIGTERM / `pg_ctl stop -m fast`) and
    /// waits until it has exited.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        if let Some((bin, user)) = &self.pg {
            let ok = as_user(user.as_deref(), &bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .status()
                .context("running pg_ctl stop")?
                .success();
            if !ok {
                bail!("pg_ctl stop failed");
            }
            return Ok(());
        }
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "the {} server did not exit within 15 s of SIGTERM (killed)",
            self.backend.name()
        )
    }

    /// Starts the server again on the same port and data directory and
    /// returns once it accepts connections.
    pub fn resume(&mut self) -> Result<()> {
        if self.running {
            return Ok(());
        }
        let port = self.port.to_string();
        if let Some((bin, user)) = &self.pg {
            let mut opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                self.dir.display()
            );
            if let Some(tls) = &self.tls {
                opts.push_str(&format!(
                    " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c ssl_ca_file={}",
                    tls.cert.display(),
                    tls.key.display(),
                    tls.ca.display()
                ));
            }
            let ok = as_user(user.as_deref(), &bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-o", &opts, "-w", "start"])
                .stdout(Stdio::null())
                .status()
                .context("running pg_ctl start")?
                .success();
            self.running = true;
            if !ok {
                bail!(
                    "pg_ctl start failed (log: {})",
                    self.dir.join("log").display()
                );
            }
        } else {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("log"))?;
            let mut cmd = match self.backend {
                Backend::Redis => {
                    let mut c = Command::new("redis-server");
                    let plain_port = self.plain.as_ref().map_or(0, |(p, _)| *p).to_string();
                    match &self.tls {
                        None => c.args(["--port", &port]).args([
                            "--appendonly",
                            "yes",
                            "--appendfsync",
                            "always",
                        ]),
                        // No append-only file: the TLS servers' tests and
                        // the bench want the connection's cost, not fsync's.
                        Some(tls) => c
                            .args(["--port", &plain_port, "--tls-port", &port])
                            .arg("--tls-cert-file")
                            .arg(&tls.cert)
                            .arg("--tls-key-file")
                            .arg(&tls.key)
                            .arg("--tls-ca-cert-file")
                            .arg(&tls.ca)
                            .args(["--tls-auth-clients", "no"]),
                    };
                    c.args(["--bind", "127.0.0.1", "--save", ""])
                        .arg("--dir")
                        .arg(&self.dir);
                    c
                }
                Backend::Mysql => {
                    let mut c = Command::new(
                        which("mariadbd")
                            .or_else(|| which("mysqld"))
                            .or_else(|| {
                                let sbin = PathBuf::from("/usr/sbin/mariadbd");
                                sbin.is_file().then_some(sbin)
                            })
                            .context("mariadbd not found")?,
                    );
                    let at = |name: &str| self.dir.join(name).display().to_string();
                    c.arg("--no-defaults")
                        .arg(format!("--datadir={}", at("data")))
                        .arg(format!("--port={port}"))
                        .arg("--bind-address=127.0.0.1")
                        .arg(format!("--socket={}", at("sock")))
                        .arg(format!("--pid-file={}", at("pid")))
                        .arg(format!("--init-file={}", at("init.sql")))
                        .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
                        .arg("--innodb-flush-log-at-trx-commit=1");
                    if let Some(tls) = &self.tls {
                        c.arg(format!("--ssl-cert={}", tls.cert.display()))
                            .arg(format!("--ssl-key={}", tls.key.display()))
                            .arg(format!("--ssl-ca={}", tls.ca.display()))
                            .arg("--require-secure-transport=ON");
                    }
                    if is_root() {
                        c.arg("--user=root");
                    }
                    c
                }
                _ => {
                    let mut c = Command::new(mongo_python()?);
                    c.args(["-m", "secantus"]);
                    if let Some(tls) = &self.tls {
                        c.arg("--tls-cert-file")
                            .arg(&tls.cert)
                            .arg("--tls-key-file")
                            .arg(&tls.key);
                    }
                    c.args(["--port", &port, "--host", "127.0.0.1"])
                        .arg("--storage-path")
                        .arg(self.dir.join("data"))
                        .args(["--standalone", "--sync-on-commit"]);
                    c
                }
            };
            let child = cmd
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting the {} server", self.backend.name()))?;
            self.child = Some(child);
            self.running = true;
        }
        if let Some((port, _)) = &self.plain {
            wait_for_port(*port, Duration::from_secs(60))?;
        }
        wait_for_port(self.port, Duration::from_secs(60))
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "xtask: stopping the private {} server: {e:#}",
                self.backend.name()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The venv's python with the MongoDB test server installed (installs it
/// when missing).
pub fn mongo_python() -> Result<PathBuf> {
    let venv = crate::target_dir().join("mongo-venv");
    let python = venv.join("bin").join("python");
    let installed = Command::new(&python)
        .args(["-c", "import secantus"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "xtask: installing {SECANTUS_VERSION} into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin").join("pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    SECANTUS_VERSION,
                ])
                .status()?
                .success();
        if !ok {
            bail!(
                "could not install {SECANTUS_VERSION} into {}",
                venv.display()
            );
        }
    }
    Ok(python)
}

/// Conformance Redis Cluster: nodes on `CLUSTER_PORT..CLUSTER_PORT + 6`
/// (their cluster bus on the port + 10000).
pub const CLUSTER_PORT: u16 = 17000;
/// Conformance Sentinel set-up: master on the port, replica on port + 1,
/// Sentinels on port + 10, + 11, + 12.
pub const SENTINEL_PORT: u16 = 17100;
/// The fault tests' own cluster and Sentinel set-up (they kill masters).
pub const FAULTS_CLUSTER_PORT: u16 = 17200;
/// See [`FAULTS_CLUSTER_PORT`].
pub const FAULTS_SENTINEL_PORT: u16 = 17300;
/// The master name the Sentinels monitor.
pub const SENTINEL_MASTER: &str = "mymaster";

/// One redis-server process of a [`RedisGroup`].
struct GroupNode {
    port: u16,
    child: Child,
}

/// Several `redis-server` processes on fixed loopback ports with their
/// files in `target/<name>`: a 6-node Redis Cluster (3 masters, 3
/// replicas) or a Sentinel set-up (master, replica, 3 Sentinels, quorum
/// 2). Ready means polled ready (`cluster_state:ok` and replicas in sync;
/// the Sentinels know the master, its replica and each other), never a
/// blind sleep. Stopped (SIGKILL) and removed on drop.
pub struct RedisGroup {
    dir: PathBuf,
    nodes: Vec<GroupNode>,
    url: String,
    sentinel: bool,
    base: u16,
}

impl RedisGroup {
    /// The ports of a group, data nodes first.
    fn ports(sentinel: bool, base: u16) -> Vec<u16> {
        if sentinel {
            vec![base, base + 1, base + 10, base + 11, base + 12]
        } else {
            (base..base + 6).collect()
        }
    }

    /// The store URL of a group (session-stores' scheme).
    fn url_for(sentinel: bool, base: u16) -> String {
        if sentinel {
            format!(
                "redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/{SENTINEL_MASTER}",
                base + 10,
                base + 11,
                base + 12
            )
        } else {
            let nodes: Vec<String> = (base..base + 3).map(|p| format!("127.0.0.1:{p}")).collect();
            format!("redis+cluster://{}/", nodes.join(","))
        }
    }

    /// Whether a ready group already runs on these ports (started by
    /// another `cargo xtask servers`): its URL.
    pub fn running(sentinel: bool, base: u16) -> Option<String> {
        let ready = if sentinel {
            sentinels_ready(base)
        } else {
            cluster_ready(base)
        };
        ready.then(|| Self::url_for(sentinel, base))
    }

    /// Starts a 6-node cluster (3 masters with a replica each) on
    /// `base..base + 6` and waits until it is ready.
    pub fn start_cluster(base: u16) -> Result<RedisGroup> {
        let mut group = Self::spawn(false, base)?;
        for i in 0..6u16 {
            let port = base + i;
            let node_conf = format!("nodes-{port}.conf");
            group.spawn_node(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &node_conf,
                    // A dead master is failed over after ~2 s, not 15.
                    "--cluster-node-timeout",
                    "2000",
                ],
            )?;
        }
        group.wait_ports()?;
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for i in 0..6 {
            create.arg(format!("127.0.0.1:{}", base + i));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        group.wait_until(
            "the cluster is ready (cluster_state:ok, replicas in sync)",
            || cluster_ready(base),
        )?;
        Ok(group)
    }

    /// Starts a master on `base`, its replica on `base + 1` and three
    /// Sentinels on `base + 10..=12` (quorum 2, master down after 1 s) and
    /// waits until the Sentinels know the master, the replica and each other.
    pub fn start_sentinel(base: u16) -> Result<RedisGroup> {
        let mut group = Self::spawn(true, base)?;
        group.spawn_node(base, &[])?;
        let master = base.to_string();
        group.spawn_node(base + 1, &["--replicaof", "127.0.0.1", &master])?;
        for port in [base + 10, base + 11, base + 12] {
            let conf = group.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {base} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n\
                     sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                    dir = group.dir.display()
                ),
            )?;
            let log = group.log(port)?;
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting redis-server --sentinel")?;
            group.nodes.push(GroupNode { port, child });
        }
        group.wait_ports()?;
        group.wait_until(
            "the Sentinels know the master, its replica and each other",
            || sentinels_ready(base),
        )?;
        Ok(group)
    }

    fn spawn(sentinel: bool, base: u16) -> Result<RedisGroup> {
        which("redis-server").context("redis-server not found")?;
        which("redis-cli").context("redis-cli not found")?;
        let busy: Vec<u16> = Self::ports(sentinel, base)
            .into_iter()
            .filter(|p| listening(*p))
            .collect();
        if !busy.is_empty() {
            bail!("ports {busy:?} are in use (an earlier run still going?)");
        }
        let what = if sentinel { "sentinel" } else { "cluster" };
        let dir = std::path::absolute(crate::target_dir().join(format!("redis-{what}-{base}")))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(RedisGroup {
            dir,
            nodes: Vec::new(),
            url: Self::url_for(sentinel, base),
            sentinel,
            base,
        })
    }

    fn log(&self, port: u16) -> Result<std::fs::File> {
        Ok(std::fs::File::create(self.dir.join(format!("{port}.log")))?)
    }

    fn spawn_node(&mut self, port: u16, extra: &[&str]) -> Result<()> {
        let log = self.log(port)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server")?;
        self.nodes.push(GroupNode { port, child });
        Ok(())
    }

    fn wait_ports(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            let port = self.nodes[i].port;
            let start = Instant::now();
            while !listening(port) {
                if let Some(status) = self.nodes[i].child.try_wait()? {
                    bail!(
                        "redis-server on {port} exited ({status}); log: {}",
                        self.dir.join(format!("{port}.log")).display()
                    );
                }
                if start.elapsed() > Duration::from_secs(20) {
                    bail!("nothing listened on 127.0.0.1:{port} within 20 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Polls `ready` (every 100 ms, at most 60 s).
    fn wait_until(&self, what: &str, ready: impl Fn() -> bool) -> Result<()> {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{what}: not within 60 s (logs in {})", self.dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("xtask: {what} after {} ms", start.elapsed().as_millis());
        Ok(())
    }

    /// The store URL: `redis+cluster://…/` or `redis+sentinel://…/mymaster`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What runs, for reports.
    pub fn how(&self) -> String {
        if self.sentinel {
            format!(
                "redis-server: master :{}, replica :{}, 3 sentinels :{}-{} (quorum 2, down after 1 s)",
                self.base,
                self.base + 1,
                self.base + 10,
                self.base + 12
            )
        } else {
            format!(
                "redis-server cluster :{}-{} (3 masters, 3 replicas, node timeout 2 s)",
                self.base,
                self.base + 5
            )
        }
    }

    /// SIGKILLs the current master (the Sentinels' master, or the cluster
    /// master that owns slot 0) by its PID: `(port, pid)`.
    pub fn kill_master(&mut self) -> Result<(u16, u32)> {
        let port = if self.sentinel {
            let out = redis_cli(
                self.base + 10,
                &["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER],
            )?;
            out.lines()
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
                .context("the Sentinels name no master")?
        } else {
            let out = redis_cli(self.base, &["CLUSTER", "NODES"])?;
            // `<id> <ip:port@bus> <flags> <master> … <slots>`: the master with slot 0.
            out.lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.contains("master"))
                })
                .find(|l| {
                    l.split_whitespace()
                        .skip(8)
                        .any(|r| r == "0" || r.starts_with("0-"))
                })
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .context("no cluster master owns slot 0")?
        };
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("the master on {port} is not one of ours"))?;
        let pid = node.child.id();
        node.child.kill().context("kill -9 of the master")?;
        let _ = node.child.wait();
        Ok((port, pid))
    }

    /// The nodes whose process still runs, as `(port, role)` per `ROLE`.
    pub fn roles(&self) -> Vec<(u16, String)> {
        self.nodes
            .iter()
            .map(|n| {
                let role = redis_cli(n.port, &["ROLE"])
                    .ok()
                    .and_then(|r| r.lines().next().map(str::to_owned))
                    .unwrap_or_else(|| "down".to_owned());
                (n.port, role)
            })
            .collect()
    }
}

impl Drop for RedisGroup {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT ARGS…` on 127.0.0.1 (bounded: `-t`-less redis-cli
/// gives up on a refused connection at once; answers are local).
fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running redis-cli")?;
    if !out.status.success() {
        bail!("redis-cli -p {port} {args:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `field:value` of an `INFO`/`CLUSTER INFO` reply.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v.to_owned())
}

/// Every node of the cluster on `base..base + 6` says `cluster_state:ok`,
/// three are masters with a replica each and every replica's link is up.
fn cluster_ready(base: u16) -> bool {
    let mut masters = 0;
    for port in base..base + 6 {
        let Ok(info) = redis_cli(port, &["CLUSTER", "INFO"]) else {
            return false;
        };
        if info_field(&info, "cluster_state").as_deref() != Some("ok") {
            return false;
        }
        let Ok(repl) = redis_cli(port, &["INFO", "replication"]) else {
            return false;
        };
        match info_field(&repl, "role").as_deref() {
            Some("master") => {
                if info_field(&repl, "connected_slaves").as_deref() != Some("1") {
                    return false;
                }
                masters += 1;
            }
            Some("slave") => {
                if info_field(&repl, "master_link_status").as_deref() != Some("up") {
                    return false;
                }
            }
            _ => return false,
        }
    }
    masters == 3
}

/// Each Sentinel names the master on `base`, sees its replica and the two
/// other Sentinels, and the replica's link is up.
fn sentinels_ready(base: u16) -> bool {
    let replica_up = redis_cli(base + 1, &["INFO", "replication"])
        .is_ok_and(|r| info_field(&r, "master_link_status").as_deref() == Some("up"));
    replica_up
        && [base + 10, base + 11, base + 12].iter().all(|&port| {
            let Ok(out) = redis_cli(port, &["SENTINEL", "master", SENTINEL_MASTER]) else {
                return false;
            };
            // Alternating field / value lines.
            let lines: Vec<&str> = out.lines().map(str::trim).collect();
            let field = |name: &str| {
                lines
                    .chunks(2)
                    .find(|kv| kv.first() == Some(&name))
                    .and_then(|kv| kv.get(1).copied())
            };
            field("port") == Some(base.to_string().as_str())
                && field("flags") == Some("master")
                && field("num-slaves") == Some("1")
                && field("num-other-sentinels") == Some("2")
        })
}

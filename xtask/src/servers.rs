//! Finds or starts the database servers the store tests need.
//!
//! For each backend, in order: a URL from the environment (`REDIS_URL`,
//! `DATABASE_URL`, `MONGODB_URL`, `MYSQL_URL`); a server already listening on its usual
//! port on 127.0.0.1; a local binary started in a temporary directory
//! (`redis-server`; PostgreSQL's `initdb`/`pg_ctl` as a non-root user; the
//! MongoDB wire-compatible test server `SecantusDB` from PyPI in a venv
//! under `target/`). Servers started here are stopped when xtask exits.
//! (A container through a Docker engine would come last; no engine answers
//! on this project's machines, so it is reported rather than attempted.)
//!
//! MySQL / MariaDB is not started here: it must listen on 127.0.0.1:3306
//! (`.ci/run` starts the machine's MariaDB when it is down) or `MYSQL_URL`
//! must name a server; otherwise the error says so.

use crate::Backend;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version of the MongoDB wire-compatible test server installed from PyPI.
const SECANTUS_VERSION: &str = "SecantusDB==0.7.0b3";

/// A server process started by xtask; stopped on drop.
enum Started {
    Child(Child),
    PgCtl {
        bin: PathBuf,
        data: PathBuf,
        user: Option<String>,
    },
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
        }
    }
}

/// The servers found or started so far, and the environment for tests.
#[derive(Default)]
pub struct Servers {
    found: HashMap<&'static str, (String, String, String)>,
    started: Vec<Started>,
}

impl Servers {
    /// Finds or starts the server for `b`: `(env var, url, how it was found)`,
    /// or `None` for embedded backends.
    pub fn ensure(&mut self, b: Backend) -> Result<Option<(String, String, String)>> {
        let var = match b {
            Backend::Memory | Backend::Sqlite => return Ok(None),
            Backend::Redis => "REDIS_URL",
            Backend::Postgres => "DATABASE_URL",
            Backend::Mongo => "MONGODB_URL",
            Backend::Mysql => "MYSQL_URL",
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

    /// Sets every found server's URL on `cmd`.
    pub fn apply_env(&self, cmd: &mut Command) {
        for (var, url, _) in self.found.values() {
            cmd.env(var, url);
        }
    }

    fn find(&mut self, b: Backend, var: &str) -> Result<(String, String)> {
        if let Ok(url) = std::env::var(var) {
            if !url.is_empty() {
                return Ok((url, format!("from ${var}")));
            }
        }
        let (port, url) = match b {
            Backend::Redis => (6379, "redis://127.0.0.1:6379"),
            Backend::Postgres => (5432, "postgres://postgres@127.0.0.1:5432/test"),
            Backend::Mongo => (27017, "mongodb://127.0.0.1:27017"),
            Backend::Mysql => (3306, "mysql://root@127.0.0.1:3306/test"),
            Backend::Memory | Backend::Sqlite => bail!("embedded backend"),
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
            Backend::Mysql => bail!(
                "no MySQL / MariaDB server: $MYSQL_URL is not set and nothing listens on \
                 127.0.0.1:3306; start the machine's MariaDB (`service mariadb start`, as \
                 .ci/run does) or set MYSQL_URL=mysql://USER[:PASSWORD]@HOST:PORT/DATABASE"
            ),
            Backend::Memory | Backend::Sqlite => bail!("embedded backend"),
        };
        match started {
            Ok(found) => Ok(found),
            Err(e) => {
                let docker = if docker_answers() {
                    "a Docker engine answers, but containers are not wired up here"
                } else {
                    "no Docker engine answers either"
                };
                Err(e.context(format!(
                    "nothing on ${var} or 127.0.0.1:{port}, no local binary could start, {docker}"
                )))
            }
        }
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

fn which(name: &str) -> Option<PathBuf> {
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

fn is_root() -> bool {
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

fn docker_answers() -> bool {
    Path::new("/var/run/docker.sock").exists()
        && Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
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
}

impl Private {
    /// Starts a private Redis (append-only file, fsync on every write),
    /// PostgreSQL or MongoDB test server (data in a directory).
    pub fn start(backend: Backend) -> Result<Private> {
        let dir = temp_dir(&format!("faults-{}", backend.name()))?;
        let port = free_port()?;
        let (url, how, pg) = match backend {
            Backend::Redis => {
                let bin = which("redis-server").context("redis-server not found")?;
                (
                    format!("redis://127.0.0.1:{port}/"),
                    format!("{} (appendonly, fsync always)", bin.display()),
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
            Backend::Memory | Backend::Sqlite => bail!("{} has no server", backend.name()),
            Backend::Mysql => bail!("the fault tests do not start a private MySQL server yet"),
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
        };
        p.resume()?;
        Ok(p)
    }

    /// The URL of the server.
    pub fn url(&self) -> &str {
        &self.url
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
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                self.dir.display()
            );
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
                    c.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                        .args(["--appendonly", "yes", "--appendfsync", "always"])
                        .arg("--dir")
                        .arg(&self.dir);
                    c
                }
                _ => {
                    let mut c = Command::new(mongo_python()?);
                    c.args(["-m", "secantus", "--port", &port, "--host", "127.0.0.1"])
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
fn mongo_python() -> Result<PathBuf> {
    let venv = Path::new("target").join("mongo-venv");
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

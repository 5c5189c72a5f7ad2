//! Finds or starts the database servers the store tests need.
//!
//! For each backend, in order: a URL from the environment (`REDIS_URL`,
//! `DATABASE_URL`, `MONGODB_URL`); a server already listening on its usual
//! port on 127.0.0.1; a local binary started in a temporary directory
//! (`redis-server`; PostgreSQL's `initdb`/`pg_ctl` as a non-root user; the
//! MongoDB wire-compatible test server `SecantusDB` from PyPI in a venv
//! under `target/`). Servers started here are stopped when xtask exits.
//! (A container through a Docker engine would come last; no engine answers
//! on this project's machines, so it is reported rather than attempted.)

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

fn listening(port: u16) -> bool {
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

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn temp_dir(what: &str) -> Result<PathBuf> {
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

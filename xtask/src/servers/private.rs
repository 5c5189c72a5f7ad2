//! `Private`: a server of its own (free loopback port, own data directory)
//! for the fault tests, the TLS backends and the bench; stopped and
//! resumed on the same port, removed on drop.

use super::*;

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

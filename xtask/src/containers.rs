//! The last rung of server discovery: a container, started with
//! `testcontainers` through the Docker API (Docker, or Podman's API service).
//!
//! The engine, in order: `$DOCKER_HOST`; a Docker engine answering on
//! `/var/run/docker.sock`; else Podman, installed with apt when missing and
//! running as root, whose API service xtask starts itself on a socket of its
//! own with a `containers.conf` of its own (`CONTAINERS_CONF`: the `runc`
//! runtime and explicit ulimits, which a sandboxed kernel needs), and stops
//! when it exits. Nothing is written under `/etc`.
//!
//! The images: `SESSION_TEST_IMAGE_REDIS`, `…_POSTGRES`, `…_MARIADB`,
//! `…_MONGO` when set; else the official `redis`, `postgres`, `mariadb` and
//! `mongo` images when a registry is reachable (a real `mongod`); else
//! (`SESSION_TEST_IMAGES=local` forces it) images built here with Podman
//! and no registry: a minimal Debian root file system made by `mmdebstrap`
//! from the machine's apt mirror, then one small image per backend with
//! Debian's `redis-server`, `postgresql`, `mariadb-server`, and the MongoDB
//! wire-compatible test server from PyPI. Each local image is tagged with a
//! hash of its recipe, so a warm run reuses it and a changed recipe rebuilds.
//!
//! Every port is bound to 127.0.0.1 on a port chosen here (Podman 4.3
//! reports no host address for published ports, which testcontainers would
//! refuse), and xtask connects to 127.0.0.1 whatever testcontainers would
//! guess. A server counts as ready when it answers its own protocol.

use crate::servers::{free_port, is_root, which};
use crate::Backend;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

/// The backends that run in containers.
pub const BACKENDS: [Backend; 4] = [
    Backend::Redis,
    Backend::Postgres,
    Backend::Mysql,
    Backend::Mongo,
];

/// The label testcontainers puts on every container it creates.
const MANAGED_LABEL: &str = "org.testcontainers.managed-by=testcontainers";

/// The base of the local images, made by `mmdebstrap`.
const BASE_IMAGE: &str = "localhost/session-test-base:bookworm";

/// What a backend's container is: its port, image, settings and URL.
struct Spec {
    backend: Backend,
    /// The variable that names another image.
    image_var: &'static str,
    /// The official image (fully qualified: Podman has no default registry).
    official: &'static str,
    /// The name of the local image (its tag is its recipe's hash).
    local: &'static str,
    /// The recipe of the local image: lines before the package install,
    /// and what follows `apt-get install` (`{SECANTUS}`: the pinned test
    /// server).
    before: &'static str,
    containerfile: &'static str,
    port: u16,
    /// Settings of the official images (ignored by the local ones).
    env: &'static [(&'static str, &'static str)],
    /// The URL for a host port.
    url: fn(u16) -> String,
}

const APT: &str = "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends";

const SPECS: [Spec; 4] = [
    Spec {
        backend: Backend::Redis,
        image_var: "SESSION_TEST_IMAGE_REDIS",
        official: "docker.io/library/redis:7",
        local: "localhost/session-test-redis",
        before: "",
        containerfile: "redis-server && rm -rf /var/lib/apt/lists/*\n\
            EXPOSE 6379\n\
            CMD [\"redis-server\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--save\", \"\", \"--appendonly\", \"no\"]\n",
        port: 6379,
        env: &[],
        url: |p| format!("redis://127.0.0.1:{p}"),
    },
    Spec {
        backend: Backend::Postgres,
        image_var: "SESSION_TEST_IMAGE_POSTGRES",
        official: "docker.io/library/postgres:16",
        local: "localhost/session-test-postgres",
        before: "",
        // A cluster of its own (trust, database `test`), made at build time.
        containerfile: "postgresql && rm -rf /var/lib/apt/lists/* \\\n \
            && ln -s /usr/lib/postgresql/*/bin /opt/pgbin \\\n \
            && su postgres -c '/opt/pgbin/initdb -U postgres --auth=trust -D /var/lib/postgresql/data' > /dev/null \\\n \
            && echo 'host all all 0.0.0.0/0 trust' >> /var/lib/postgresql/data/pg_hba.conf \\\n \
            && echo 'CREATE DATABASE test' | su postgres -c '/opt/pgbin/postgres --single -D /var/lib/postgresql/data postgres' > /dev/null\n\
            USER postgres\n\
            EXPOSE 5432\n\
            CMD [\"/opt/pgbin/postgres\", \"-D\", \"/var/lib/postgresql/data\", \"-c\", \"listen_addresses=*\", \"-c\", \"unix_socket_directories=/tmp\"]\n",
        port: 5432,
        env: &[
            ("POSTGRES_HOST_AUTH_METHOD", "trust"),
            ("POSTGRES_DB", "test"),
        ],
        url: |p| format!("postgres://postgres@127.0.0.1:{p}/test"),
    },
    Spec {
        backend: Backend::Mysql,
        image_var: "SESSION_TEST_IMAGE_MARIADB",
        official: "docker.io/library/mariadb:11",
        local: "localhost/session-test-mariadb",
        before: "",
        // root without a password from any host, database `test` (the
        // init file runs at every start, before connections are taken).
        containerfile: "mariadb-server && rm -rf /var/lib/apt/lists/* \\\n \
            && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld \\\n \
            && printf \"CREATE DATABASE IF NOT EXISTS test;\\nCREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '';\\nGRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\\n\" > /etc/mysql/init.sql\n\
            EXPOSE 3306\n\
            CMD [\"mariadbd\", \"--user=mysql\", \"--bind-address=0.0.0.0\", \"--skip-name-resolve\", \"--init-file=/etc/mysql/init.sql\"]\n",
        port: 3306,
        env: &[
            ("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "1"),
            ("MARIADB_DATABASE", "test"),
        ],
        url: |p| format!("mysql://root@127.0.0.1:{p}/test"),
    },
    Spec {
        backend: Backend::Mongo,
        image_var: "SESSION_TEST_IMAGE_MONGO",
        official: "docker.io/library/mongo:7",
        local: "localhost/session-test-mongo",
        // The wheels are downloaded by the host's pip (which may need the
        // host's proxy settings and CAs), installed here with no index.
        before: "COPY wheels /wheels\n",
        containerfile: "python3 python3-venv && rm -rf /var/lib/apt/lists/* \\\n \
            && python3 -m venv /opt/secantus \\\n \
            && /opt/secantus/bin/pip install --quiet --disable-pip-version-check --no-index --find-links /wheels {SECANTUS} \\\n \
            && rm -rf /wheels\n\
            EXPOSE 27017\n\
            CMD [\"/opt/secantus/bin/python\", \"-m\", \"secantus\", \"--port\", \"27017\", \"--host\", \"0.0.0.0\", \"--storage-path\", \":memory:\", \"--standalone\"]\n",
        port: 27017,
        env: &[],
        url: |p| format!("mongodb://127.0.0.1:{p}"),
    },
];

fn spec(b: Backend) -> Result<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.backend == b)
        .with_context(|| format!("{} does not run in a container", b.name()))
}

/// The recipe of a local image, and its tag (a hash of the recipe).
fn recipe(s: &Spec) -> (String, String) {
    let file = format!(
        "FROM {BASE_IMAGE}\n{}{APT} {}",
        s.before,
        s.containerfile
            .replace("{SECANTUS}", crate::servers::SECANTUS_VERSION)
    );
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let hash = file.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (file, format!("{:012x}", hash & 0xffff_ffff_ffff))
}

/// Whether a container engine answers: `$DOCKER_HOST`, or Docker's socket.
pub fn engine_answers() -> bool {
    std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty())
        || ping(Path::new("/var/run/docker.sock"))
}

/// Whether a container engine answers, or Podman is installed (or can be):
/// the container rung is worth trying.
pub fn possible() -> bool {
    engine_answers() || which("podman").is_some() || (is_root() && which("apt-get").is_some())
}

/// `GET path` on a Docker API socket: the response, head and body.
fn get(socket: &Path, path: &str) -> Option<String> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: d\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.").then_some(answer)
}

/// `GET /_ping` on a Docker API socket answers `OK`.
fn ping(socket: &Path) -> bool {
    get(socket, "/_ping").is_some_and(|a| a.ends_with("OK"))
}

/// The Docker API version testcontainers speaks (bollard's default).
const CLIENT_API: (u32, u32) = (1, 53);

/// Refuses a Docker engine too old for testcontainers' API version with
/// what to do, rather than failing on the first container. (Podman
/// accepts any version.)
fn check_api_version(socket: &Path) -> Result<()> {
    let Some(answer) = get(socket, "/version") else {
        return Ok(());
    };
    let Some(body) = answer.split("\r\n\r\n").nth(1) else {
        return Ok(());
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Ok(());
    };
    let podman = v["Components"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["Name"] == "Podman Engine"));
    let api = v["ApiVersion"].as_str().unwrap_or_default();
    let parsed = api
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some(server) if !podman && server < CLIENT_API => bail!(
            "the Docker engine at {} serves API {api}; testcontainers needs {}.{} (Docker 29 or later), or use Podman (DOCKER_HOST to `podman system service`)",
            socket.display(),
            CLIENT_API.0,
            CLIENT_API.1
        ),
        _ => Ok(()),
    }
}

/// Whether Docker Hub's registry can be reached (else local images).
fn registry_reachable() -> bool {
    ("registry-1.docker.io", 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}

/// A container engine for this run; a Podman service started here is
/// stopped on drop.
pub struct Engine {
    how: String,
    /// Podman's API service, when started here.
    service: Option<Child>,
    /// `CONTAINERS_CONF` for the `podman` commands, and the service's
    /// socket, when started here.
    conf: Option<PathBuf>,
    socket: Option<PathBuf>,
    /// Build and use the local images.
    local: bool,
    /// Local images already checked or built in this run.
    built: HashMap<Backend, String>,
}

impl Engine {
    /// Finds or starts a container engine (see the module's docs).
    pub fn start() -> Result<Engine> {
        let force_local = std::env::var("SESSION_TEST_IMAGES").is_ok_and(|v| v == "local");
        if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            if let Some(path) = host.strip_prefix("unix://") {
                check_api_version(Path::new(path))?;
            }
            return Ok(Engine::found(format!("$DOCKER_HOST ({host})"), force_local));
        }
        if ping(Path::new("/var/run/docker.sock")) {
            check_api_version(Path::new("/var/run/docker.sock"))?;
            return Ok(Engine::found(
                "Docker at /var/run/docker.sock".to_owned(),
                force_local,
            ));
        }
        Engine::start_podman(force_local)
    }

    /// An engine that answers already: local images when asked, or when
    /// no registry answers and Podman can build them.
    fn found(how: String, force_local: bool) -> Engine {
        Engine {
            how,
            service: None,
            conf: None,
            socket: None,
            local: force_local || (which("podman").is_some() && !registry_reachable()),
            built: HashMap::new(),
        }
    }

    /// Installs Podman when missing (root, apt), writes its configuration,
    /// removes what an earlier run left behind, and starts its API service.
    fn start_podman(force_local: bool) -> Result<Engine> {
        install_podman()?;
        let dir = crate::target_dir().join("containers");
        std::fs::create_dir_all(&dir)?;
        let dir = std::fs::canonicalize(&dir)?;
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, containers_conf())?;
        // A service an interrupted run left running.
        let pid_file = dir.join("podman.pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        // A short path: a Unix socket's path has a length limit.
        let socket = std::env::temp_dir().join(format!("xtask-podman-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let service = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", &conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("podman-service.log"))?)
            .spawn()
            .context("starting podman system service")?;
        std::fs::write(&pid_file, service.id().to_string())?;
        let mut engine = Engine {
            how: String::new(),
            service: Some(service),
            conf: Some(conf),
            socket: Some(socket.clone()),
            local: force_local || !registry_reachable(),
            built: HashMap::new(),
        };
        let start = Instant::now();
        while !ping(&socket) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "podman's API service did not answer on {} (see {})",
                    socket.display(),
                    dir.join("podman-service.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // testcontainers reads the engine's address from the environment;
        // xtask is single-threaded here, before any container starts.
        std::env::set_var("DOCKER_HOST", format!("unix://{}", socket.display()));
        let version = engine
            .podman(&["version", "--format", "{{.Server.Version}}"])
            .unwrap_or_default();
        engine.how = format!(
            "Podman {} API service started here (runc, {})",
            version.trim(),
            socket.display()
        );
        // Containers an interrupted run left behind.
        let leftover =
            engine.podman(&["ps", "-aq", "--filter", &format!("label={MANAGED_LABEL}")])?;
        let ids: Vec<&str> = leftover.split_whitespace().collect();
        if !ids.is_empty() {
            eprintln!("xtask: removing {} leftover test container(s)", ids.len());
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            engine.podman(&args)?;
        }
        Ok(engine)
    }

    /// What engine this is.
    pub fn how(&self) -> &str {
        &self.how
    }

    /// Runs `podman` with this engine's configuration; its stdout.
    fn podman(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("podman");
        cmd.args(args);
        if let Some(conf) = &self.conf {
            cmd.env("CONTAINERS_CONF", conf);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running podman {}", args.join(" ")))?;
        if !out.status.success() {
            bail!("podman {} failed ({})", args.join(" "), out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn image_exists(&self, image: &str) -> bool {
        self.podman(&["image", "exists", image]).is_ok()
    }

    /// The image for `s`: from its variable, official, or local (built
    /// here when absent).
    fn image(&mut self, s: &Spec) -> Result<String> {
        if let Some(image) = std::env::var(s.image_var).ok().filter(|v| !v.is_empty()) {
            return Ok(image);
        }
        if !self.local {
            return Ok(s.official.to_owned());
        }
        if let Some(image) = self.built.get(&s.backend) {
            return Ok(image.clone());
        }
        if which("podman").is_none() {
            bail!("local images are built with podman, which is not installed");
        }
        let (file, tag) = recipe(s);
        let image = format!("{}:{tag}", s.local);
        if !self.image_exists(&image) {
            self.build_base()?;
            let start = Instant::now();
            let dir = crate::target_dir()
                .join("containers")
                .join(s.backend.name());
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("Containerfile"), &file)?;
            if s.before.contains("COPY wheels") {
                download_wheels(&dir.join("wheels"))?;
            }
            eprintln!("xtask: building {image}");
            let dir_s = dir.display().to_string();
            // The build reaches the apt mirror and PyPI through the host's network.
            self.podman(&["build", "--quiet", "--network=host", "-t", &image, &dir_s])?;
            eprintln!(
                "xtask: built {image} in {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        self.built.insert(s.backend, image.clone());
        Ok(image)
    }

    /// The base image: a minimal Debian root file system from the
    /// machine's apt mirror, imported once.
    fn build_base(&self) -> Result<()> {
        if self.image_exists(BASE_IMAGE) {
            return Ok(());
        }
        let start = Instant::now();
        let dir = crate::target_dir().join("containers");
        let tar = dir.join("rootfs.tar");
        eprintln!("xtask: making {BASE_IMAGE} with mmdebstrap");
        let status = Command::new("mmdebstrap")
            .args(["--quiet", "--variant=minbase", "bookworm"])
            .arg(&tar)
            .arg(debian_mirror())
            .status()
            .context("running mmdebstrap (apt-get install mmdebstrap)")?;
        if !status.success() {
            bail!("mmdebstrap failed ({status})");
        }
        let tar_s = tar.display().to_string();
        let imported = self.podman(&["import", "--quiet", &tar_s, BASE_IMAGE]);
        let _ = std::fs::remove_file(&tar);
        imported?;
        eprintln!(
            "xtask: made {BASE_IMAGE} in {:.1}s",
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Starts `b`'s server in a container and waits until it answers.
    pub fn run(&mut self, b: Backend) -> Result<Running> {
        let s = spec(b)?;
        let image = self.image(s)?;
        let (name, tag) = match image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_owned(), t.to_owned()),
            _ => (image.clone(), "latest".to_owned()),
        };
        let host_port = free_port()?;
        let mut req = GenericImage::new(name, tag)
            .with_exposed_port(s.port.tcp())
            .with_mapped_port(host_port, s.port.tcp())
            .with_startup_timeout(Duration::from_secs(300))
            .with_host_config_modifier(|hc| {
                // Loopback only, and an address Podman reports back.
                for bindings in hc.port_bindings.iter_mut().flat_map(|m| m.values_mut()) {
                    for binding in bindings.iter_mut().flatten() {
                        binding.host_ip = Some("127.0.0.1".to_owned());
                    }
                }
            });
        for (k, v) in s.env {
            req = req.with_env_var(*k, *v);
        }
        let start = Instant::now();
        let container = req
            .start()
            .with_context(|| format!("starting a container of {image} ({})", self.how))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !answers(b, host_port) {
            if Instant::now() > deadline {
                let logs = container.stderr_to_vec().unwrap_or_default();
                let tail: String = String::from_utf8_lossy(&logs)
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                bail!("{image} did not answer on 127.0.0.1:{host_port} within 120s; its log ends:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let how = format!(
            "container {image}, answered in {:.1}s",
            start.elapsed().as_secs_f64()
        );
        Ok(Running {
            _container: container,
            url: (s.url)(host_port),
            how,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(conf) = &self.conf {
            if let Some(dir) = conf.parent() {
                let _ = std::fs::remove_file(dir.join("podman.pid"));
            }
        }
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
            // The address set in `start_podman` goes with the service.
            std::env::remove_var("DOCKER_HOST");
        }
    }
}

/// A server in a container; the container is removed on drop.
pub struct Running {
    _container: Container<GenericImage>,
    /// Its URL (on 127.0.0.1).
    pub url: String,
    /// What runs, and where.
    pub how: String,
}

/// Downloads the MongoDB test server's wheels with the host's pip.
fn download_wheels(dir: &Path) -> Result<()> {
    let python = crate::servers::mongo_python()?;
    let _ = std::fs::remove_dir_all(dir);
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(dir)
        .arg(crate::servers::SECANTUS_VERSION)
        .status()
        .context("running pip download")?;
    if !status.success() {
        bail!(
            "pip download {} failed ({status})",
            crate::servers::SECANTUS_VERSION
        );
    }
    Ok(())
}

/// Installs Podman, runc and mmdebstrap with apt when Podman is missing
/// and xtask runs as root; else says what to install.
pub fn install_podman() -> Result<()> {
    if ["podman", "runc", "mmdebstrap"]
        .iter()
        .all(|t| which(t).is_some())
    {
        return Ok(());
    }
    if !(is_root() && which("apt-get").is_some()) {
        bail!("no container engine: set DOCKER_HOST, start Docker, or install Podman (apt-get install podman runc mmdebstrap)");
    }
    crate::machine::apt_install(&["podman", "runc", "mmdebstrap", "uidmap"])
}

/// Podman's configuration for this machine: runc (crun refuses some
/// kernels' cgroup layouts) and ulimits a sandboxed process may set (by
/// default Podman asks for more than the hard limits allow).
fn containers_conf() -> String {
    let nofile = hard_limit("Max open files").unwrap_or(20_000).min(20_000);
    format!(
        "# Written by cargo xtask; used through CONTAINERS_CONF.\n\
         [containers]\n\
         default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=4096:4096\"]\n\
         [engine]\n\
         runtime = \"runc\"\n"
    )
}

/// A hard limit of this process, from `/proc/self/limits`.
fn hard_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().nth(1)?.parse().ok()
}

/// The machine's Debian mirror (its apt sources), else deb.debian.org.
fn debian_mirror() -> String {
    let mut sources = String::new();
    for f in [
        "/etc/apt/sources.list",
        "/etc/apt/sources.list.d/debian.sources",
    ] {
        sources.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        sources.push('\n');
    }
    sources
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.trim_end_matches('/').ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_owned()
}

/// Whether `b`'s server on `port` answers its own protocol (a forwarded
/// port may accept connections before the server does).
fn answers(b: Backend, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    match b {
        Backend::Redis => {
            s.write_all(b"PING\r\n").is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
        }
        // SSLRequest: a postmaster that takes TCP connections answers `N` or `S`.
        Backend::Postgres => {
            s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| n == 1 && matches!(buf[0], b'N' | b'S'))
        }
        // The server speaks first: a handshake packet (protocol 10).
        Backend::Mysql => s.read(&mut buf).is_ok_and(|n| n > 4 && buf[4] == 10),
        Backend::Mongo => {
            s.write_all(&hello_message()).is_ok() && s.read(&mut buf).is_ok_and(|n| n >= 16)
        }
        _ => false,
    }
}

/// An OP_MSG `{hello: 1, $db: "admin"}`.
fn hello_message() -> Vec<u8> {
    let mut doc = Vec::new();
    doc.push(0x10);
    doc.extend_from_slice(b"hello\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02);
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let mut bson = ((doc.len() + 4) as i32).to_le_bytes().to_vec();
    bson.extend(doc);
    let mut body = 0u32.to_le_bytes().to_vec(); // flag bits
    body.push(0); // section kind 0: one document
    body.extend(bson);
    let mut msg = ((body.len() + 16) as i32).to_le_bytes().to_vec();
    msg.extend_from_slice(&1i32.to_le_bytes()); // request id
    msg.extend_from_slice(&0i32.to_le_bytes()); // response to
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_has_a_stable_tag_that_changes_with_it() {
        let (file, tag) = recipe(&SPECS[0]);
        assert!(file.starts_with(&format!("FROM {BASE_IMAGE}\n")));
        assert_eq!(tag, recipe(&SPECS[0]).1);
        assert_ne!(tag, recipe(&SPECS[1]).1);
        assert_eq!(tag.len(), 12);
    }

    #[test]
    fn every_container_backend_has_one_spec_and_a_usual_url_shape() {
        for b in BACKENDS {
            let s = spec(b).unwrap();
            let usual = crate::servers::USUAL.iter().find(|u| u.0 == b).unwrap();
            // The container's URL is the usual one on another port.
            assert_eq!(
                (s.url)(usual.1),
                usual.2,
                "{}: container URL differs from the usual one",
                b.name()
            );
        }
        assert!(spec(Backend::Sqlite).is_err());
    }

    #[test]
    fn the_hello_message_is_well_formed() {
        let m = hello_message();
        assert_eq!(
            i32::from_le_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_le_bytes(m[12..16].try_into().unwrap()), 2013);
        let doc = &m[21..];
        assert_eq!(
            i32::from_le_bytes(doc[0..4].try_into().unwrap()) as usize,
            doc.len()
        );
    }
}

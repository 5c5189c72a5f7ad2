//! Redis Cluster and Sentinel set-ups started from the machine's
//! `redis-server` on fixed loopback ports.

use super::*;

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

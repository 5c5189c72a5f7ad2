//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a namespace of its own, and addresses of servers that
//! are down or never answer.
#![allow(dead_code)]

use sessionkit_core::SessionId;
use sessionkit_redis::{RedisStore, RedisStoreBuilder};
use std::net::TcpListener;
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// The server of this test binary, by its target name (so
/// `conformance_cluster.rs` and `conformance_sentinel.rs` run the
/// `conformance.rs` suite and fixture on their own deployment):
///
/// - `conformance_cluster`: `REDIS_CLUSTER_URL`, else the cluster
///   `cargo xtask servers` starts (`redis+cluster://127.0.0.1:17000/`);
/// - `conformance_sentinel`: `REDIS_SENTINEL_URL`, else
///   `redis+sentinel://127.0.0.1:17110/mymaster`;
/// - every other binary: `REDIS_URL`, else `redis://127.0.0.1:6379`.
///
/// Cluster and Sentinel URLs use session-stores' schemes
/// (`redis+cluster://host:port,…/`, `redis+sentinel://host:port,…/master`).
pub fn url() -> String {
    let (var, default) = match env!("CARGO_CRATE_NAME") {
        "conformance_cluster" => ("REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:17000/"),
        "conformance_sentinel" => (
            "REDIS_SENTINEL_URL",
            "redis+sentinel://127.0.0.1:17110/mymaster",
        ),
        _ => ("REDIS_URL", "redis://127.0.0.1:6379"),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A builder for `url`: one node (over TLS with `rediss://`, trusting the CA
/// in `SESSION_TEST_TLS_CA` when set), or (test-only parsing, no
/// credentials) `redis+cluster://h:p,h:p/` and `redis+sentinel://h:p,h:p/master`.
pub fn builder(url: &str) -> RedisStoreBuilder {
    let hosts = |list: &str| -> Vec<String> {
        list.split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}"))
            .collect()
    };
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        let list = rest.split(['/', '?']).next().unwrap_or_default();
        RedisStore::cluster_builder(hosts(list))
    } else if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        let (list, master) = rest.split_once('/').unwrap_or((rest, ""));
        let master = master.split(['/', '?']).next().unwrap_or_default();
        RedisStore::sentinel_builder(hosts(list), master)
    } else if url.starts_with("rediss://") {
        // A TLS server of `cargo xtask` trusts the CA it made for this run.
        let b = RedisStore::builder(url);
        match std::env::var_os("SESSION_TEST_TLS_CA") {
            Some(ca) => b.tls_ca_file(ca),
            None => b,
        }
    } else {
        RedisStore::builder(url)
    }
}

/// A prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test:{}:sess:", SessionId::generate())
}

/// A store under a fresh random prefix, whose keys are deleted on drop.
pub struct Namespaced {
    pub store: RedisStore,
}

impl Namespaced {
    pub async fn new() -> anyhow::Result<Self> {
        let store = builder(&url())
            .prefix(unique_prefix())
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(Namespaced { store })
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        // Best effort: delete this namespace's keys. Only possible from a
        // multi-threaded runtime (the conformance cases use one); keys left
        // behind expire by themselves anyway.
        if let Ok(handle) = Handle::try_current() {
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                let store = self.store.clone();
                tokio::task::block_in_place(|| {
                    let _ = handle.block_on(sessionkit_core::Store::clear(&store));
                });
            }
        }
    }
}

// Each test binary uses a subset of this module (hence also `dead_code` above).
#[allow(unused_imports)]
pub use sessionkit_conformance::net::{host_port, via, Proxy};

/// A URL where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let port = sessionkit_conformance::net::closed_port()?;
    Ok(format!("redis://127.0.0.1:{port}"))
}

/// A listener that accepts connections and never answers (a hung server),
/// and its URL. Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let (listener, port) = sessionkit_conformance::net::silent_listener()?;
    Ok((listener, format!("redis://127.0.0.1:{port}")))
}

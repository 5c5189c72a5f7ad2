//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a namespace of its own, and addresses of servers that
//! are down or never answer.
#![allow(dead_code)]

use session_core::SessionId;
use std::net::TcpListener;
use std::time::Duration;
use store_redis::RedisStore;
use tokio::runtime::{Handle, RuntimeFlavor};

/// `REDIS_URL`, or the local default.
pub fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
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
        let store = RedisStore::builder(url())
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
                    let _ = handle.block_on(session_core::Store::clear(&store));
                });
            }
        }
    }
}

// Each test binary uses a subset of this module (hence also `dead_code` above).
#[allow(unused_imports)]
pub use session_conformance::net::{host_port, via, Proxy};

/// A URL where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let port = session_conformance::net::closed_port()?;
    Ok(format!("redis://127.0.0.1:{port}"))
}

/// A listener that accepts connections and never answers (a hung server),
/// and its URL. Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let (listener, port) = session_conformance::net::silent_listener()?;
    Ok((listener, format!("redis://127.0.0.1:{port}")))
}

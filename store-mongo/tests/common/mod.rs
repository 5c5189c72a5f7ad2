//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a collection of its own, and addresses of servers that
//! are down or never answer.
#![allow(dead_code)]

use session_core::SessionId;
use std::net::TcpListener;
use std::time::Duration;
use store_mongo::{MongoStore, MongoStoreBuilder};
use tokio::runtime::{Handle, RuntimeFlavor};

/// `MONGODB_URL`, or the local default.
pub fn url() -> String {
    std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".to_owned())
}

/// The database the tests use.
pub const DATABASE: &str = "store_mongo_tests";

/// A collection name no other test uses.
pub fn unique_collection() -> String {
    format!("sessions_{}", SessionId::generate())
}

/// A builder for `url()` in the test database, with a short connect timeout.
pub fn builder() -> MongoStoreBuilder {
    MongoStore::builder(url())
        .database(DATABASE)
        .connect_timeout(Duration::from_secs(10))
        .max_pool_size(32)
}

/// A store in a fresh collection, dropped with the fixture.
pub struct Namespaced {
    pub store: MongoStore,
}

impl Namespaced {
    pub async fn new() -> anyhow::Result<Self> {
        let store = builder().collection(unique_collection()).connect().await?;
        Ok(Namespaced { store })
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        // Best effort: drop the collection. Only possible from a
        // multi-threaded runtime (the conformance cases use one).
        if let Ok(handle) = Handle::try_current() {
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                let collection = self.store.collection().clone();
                tokio::task::block_in_place(|| {
                    let _ = handle.block_on(async { collection.drop().await });
                });
            }
        }
    }
}

/// `mongodb://127.0.0.1:<port>` where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
}

/// A listener that accepts connections and never answers (a hung server).
/// Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((
        listener,
        format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
    ))
}

/// A TCP proxy in front of the real server, to take the server "down" and
/// bring it back without touching the shared server itself.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Forwards `bind` (`127.0.0.1:0` for any free port) to `target`.
    pub async fn start(bind: &str, target: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (kill, mut killed) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut killed => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { break };
                        let target = target.clone();
                        conns.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
            }
            drop(listener);
            // Every proxied connection is closed before `stop` returns.
            conns.shutdown().await;
        });
        Ok(Proxy {
            addr,
            kill: Some(kill),
            task: Some(task),
        })
    }

    /// Stops listening and closes every proxied connection: the server is down.
    pub async fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// `host:port` of a URL like `scheme://[user[:pass]@]host[:port][/path][?query]`.
pub fn host_port(url: &str, default_port: u16) -> anyhow::Result<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    anyhow::ensure!(
        !host.is_empty() && !host.contains(','),
        "cannot proxy {host:?}"
    );
    Ok(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    })
}

/// `url` with its `host[:port]` replaced by `addr`.
pub fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let tail = &rest[authority.len()..];
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{tail}")
}

//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a schema of its own, and addresses of servers that are
//! down or never answer.
#![allow(dead_code)]

use session_core::SessionId;
use std::net::TcpListener;
use std::time::Duration;
use store_postgres::{PostgresStore, PostgresStoreBuilder};
use tokio::runtime::{Handle, RuntimeFlavor};

/// `DATABASE_URL`, or the local default.
pub fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema name no other test uses (lowercase, so it needs no quoting in psql).
pub fn unique_schema() -> String {
    let id = SessionId::generate().to_string().to_ascii_lowercase();
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    format!("sess_test_{clean}")
}

/// A builder for `url()` with test-friendly defaults: no prune task, a short
/// connect timeout.
pub fn builder() -> PostgresStoreBuilder {
    PostgresStore::builder(url())
        .prune_interval(None)
        .connect_timeout(Duration::from_secs(10))
        .max_connections(4)
}

/// A store whose table lives in a fresh schema, dropped with the fixture.
pub struct Namespaced {
    pub store: PostgresStore,
    pub schema: String,
}

impl Namespaced {
    pub async fn new() -> anyhow::Result<Self> {
        Self::with(|b| b).await
    }

    /// Like `new`, with extra builder options.
    pub async fn with(
        f: impl FnOnce(PostgresStoreBuilder) -> PostgresStoreBuilder,
    ) -> anyhow::Result<Self> {
        let schema = unique_schema();
        let store = f(builder().schema(&schema).create_schema(true))
            .connect()
            .await?;
        Ok(Namespaced { store, schema })
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        // Best effort: drop the schema. Only possible from a multi-threaded
        // runtime (the conformance cases use one).
        if let Ok(handle) = Handle::try_current() {
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                let pool = self.store.pool().clone();
                let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                tokio::task::block_in_place(|| {
                    let _ = handle.block_on(sqlx::query(&sql).execute(&pool));
                });
            }
        }
    }
}

/// `postgres://…@127.0.0.1:<port>/test` where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/test"))
}

/// A listener that accepts connections and never answers (a hung server).
/// Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((
        listener,
        format!("postgres://postgres@127.0.0.1:{port}/test"),
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

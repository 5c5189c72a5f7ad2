//! Network helpers for store crates' outage tests: a port where nothing
//! listens, a listener that never answers, and a TCP proxy that takes a
//! real server "down" and brings it back without touching the server.

use std::net::{SocketAddr, TcpListener};

/// A loopback port where nothing listens (a server that is down).
pub fn closed_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A listener that accepts connections and never answers (a hung server),
/// and its port. Keep the listener alive for as long as the test needs it.
pub fn silent_listener() -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// How long [`expect_unavailable`] lets a store's `connect` run before it
/// calls it hung.
pub const CONNECT_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// Awaits `connecting`, a store's `connect()` aimed at a server that is down
/// ([`closed_port`]) or never answers ([`silent_listener`]) with a short
/// connect timeout, and checks that it fails in time with
/// [`sessionkit_core::Error::Unavailable`] (transient, the driver's error kept
/// as its source). Returns the error for store-specific checks of its cause.
pub async fn expect_unavailable<T>(
    connecting: impl std::future::Future<Output = sessionkit_core::Result<T>>,
) -> anyhow::Result<sessionkit_core::Error> {
    let result = tokio::time::timeout(CONNECT_GUARD, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("connect hung for {CONNECT_GUARD:?}"))?;
    match result {
        Err(e @ sessionkit_core::Error::Unavailable { .. }) => Ok(e),
        Err(e) => anyhow::bail!("expected Unavailable, got {e:?}"),
        Ok(_) => anyhow::bail!("connected to a server that is down or silent"),
    }
}

/// How long [`expect_bounded`] waits before it calls an operation hung.
pub const OPERATION_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Awaits `op`, a store operation against a server that stopped answering
/// ([`Proxy::pause`]) or a table locked by another client, and checks that
/// it ends with [`sessionkit_core::Error::Unavailable`] (transient: the
/// middleware answers 503) instead of hanging. Returns how long it took, for
/// the report (never asserted: timing belongs to the benchmarks).
pub async fn expect_bounded<T: std::fmt::Debug>(
    op: impl std::future::Future<Output = sessionkit_core::Result<T>>,
) -> anyhow::Result<std::time::Duration> {
    let start = std::time::Instant::now();
    let result = tokio::time::timeout(OPERATION_GUARD, op)
        .await
        .map_err(|_| anyhow::anyhow!("the operation hung for {OPERATION_GUARD:?}"))?;
    let took = start.elapsed();
    match result {
        Err(sessionkit_core::Error::Unavailable { .. }) => Ok(took),
        other => {
            anyhow::bail!("expected Unavailable from a server that does not answer, got {other:?}")
        }
    }
}

/// A TCP proxy in front of a real server.
#[derive(Debug)]
pub struct Proxy {
    /// The address the proxy listens on.
    pub addr: SocketAddr,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    paused: tokio::sync::watch::Sender<bool>,
}

/// Copies `from` to `to`, holding the bytes while `paused` says so.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    /// Forwards `bind` (`127.0.0.1:0` for any free port) to `target`.
    pub async fn start(bind: &str, target: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (kill, mut killed) = tokio::sync::oneshot::channel::<()>();
        let (paused, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut killed => break,
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { break };
                        let target = target.clone();
                        let watch = watch.clone();
                        conns.spawn(async move {
                            if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                                let (in_read, in_write) = inbound.into_split();
                                let (out_read, out_write) = outbound.into_split();
                                tokio::join!(
                                    pump(in_read, out_write, watch.clone()),
                                    pump(out_read, in_write, watch),
                                );
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
            paused,
        })
    }

    /// Stops forwarding bytes, both ways, on every connection, keeping the
    /// connections open (and accepting new ones): a server that hangs.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards again what was held and what follows.
    pub fn resume(&self) {
        self.paused.send_replace(false);
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
pub fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let tail = &rest[authority.len()..];
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_through_the_proxy() -> anyhow::Result<()> {
        let url = "postgres://u:p@db.local:5433/test?sslmode=disable";
        assert_eq!(host_port(url, 5432)?, "db.local:5433");
        assert_eq!(host_port("redis://127.0.0.1", 6379)?, "127.0.0.1:6379");
        let addr: SocketAddr = "127.0.0.1:9".parse()?;
        assert_eq!(
            via(url, addr),
            "postgres://u:p@127.0.0.1:9/test?sslmode=disable"
        );
        assert!(host_port("mongodb://a,b/x", 27017).is_err());
        Ok(())
    }
}

//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a table of its own, and addresses of servers that are
//! down or never answer.
#![allow(dead_code)]

use sessionkit_core::SessionId;
use sessionkit_mysql::{MySqlStore, MySqlStoreBuilder};
use std::net::TcpListener;
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// `MYSQL_URL`, or the local default.
pub fn url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A table name no other test uses: `prefix` names the test binary, the
/// rest is random (lowercase: table names are case-sensitive on Linux).
pub fn unique_table(prefix: &str) -> String {
    let id = SessionId::generate().to_string().to_ascii_lowercase();
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!("{prefix}_{clean}")
}

/// A builder for `url()` with test-friendly defaults: no prune task, a short
/// connect timeout, a small pool.
pub fn builder() -> MySqlStoreBuilder {
    MySqlStore::builder(url())
        .prune_interval(None)
        .connect_timeout(Duration::from_secs(10))
        .max_connections(8)
}

/// A store in a fresh table, dropped with the fixture.
pub struct Namespaced {
    pub store: MySqlStore,
    pub table: String,
}

impl Namespaced {
    /// A store in a fresh table named `<prefix>_<random>`.
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        Self::with(prefix, |b| b).await
    }

    /// Like `new`, with extra builder options.
    pub async fn with(
        prefix: &str,
        f: impl FnOnce(MySqlStoreBuilder) -> MySqlStoreBuilder,
    ) -> anyhow::Result<Self> {
        let table = unique_table(prefix);
        let store = f(builder().table(&table).create_schema(true))
            .connect()
            .await?;
        Ok(Namespaced { store, table })
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        // Best effort: drop the table. Only possible from a multi-threaded
        // runtime (the conformance cases use one).
        if let Ok(handle) = Handle::try_current() {
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                let pool = self.store.pool().clone();
                let sql = format!("DROP TABLE IF EXISTS {}", self.store.quoted_table());
                tokio::task::block_in_place(|| {
                    let _ = handle.block_on(sqlx::query(&sql).execute(&pool));
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
    Ok(format!("mysql://root@127.0.0.1:{port}/test"))
}

/// A listener that accepts connections and never answers (a hung server),
/// and its URL. Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let (listener, port) = sessionkit_conformance::net::silent_listener()?;
    Ok((listener, format!("mysql://root@127.0.0.1:{port}/test")))
}

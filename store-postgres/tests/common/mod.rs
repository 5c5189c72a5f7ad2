//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a schema of its own, and addresses of servers that are
//! down or never answer.
#![allow(dead_code)]

use sessionkit_core::SessionId;
use sessionkit_postgres::{PostgresStore, PostgresStoreBuilder};
use std::net::TcpListener;
use std::time::Duration;
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

// Each test binary uses a subset of this module (hence also `dead_code` above).
#[allow(unused_imports)]
pub use sessionkit_conformance::net::{host_port, via, Proxy};

/// A URL where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let port = sessionkit_conformance::net::closed_port()?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/test"))
}

/// A listener that accepts connections and never answers (a hung server),
/// and its URL. Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let (listener, port) = sessionkit_conformance::net::silent_listener()?;
    Ok((
        listener,
        format!("postgres://postgres@127.0.0.1:{port}/test"),
    ))
}

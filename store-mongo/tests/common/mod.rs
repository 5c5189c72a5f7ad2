//! Helpers shared by the integration tests: the server URL (read at run
//! time), a store in a collection of its own, and addresses of servers that
//! are down or never answer.
#![allow(dead_code)]

use sessionkit_core::SessionId;
use sessionkit_mongo::{MongoStore, MongoStoreBuilder};
use std::net::TcpListener;
use std::time::Duration;
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

// Each test binary uses a subset of this module (hence also `dead_code` above).
#[allow(unused_imports)]
pub use sessionkit_conformance::net::{host_port, via, Proxy};

/// A URL where nothing listens (a server that is down).
pub fn closed_port_url() -> anyhow::Result<String> {
    let port = sessionkit_conformance::net::closed_port()?;
    Ok(format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
}

/// A listener that accepts connections and never answers (a hung server),
/// and its URL. Keep it alive for as long as the test needs it.
pub fn silent_server() -> anyhow::Result<(TcpListener, String)> {
    let (listener, port) = sessionkit_conformance::net::silent_listener()?;
    Ok((
        listener,
        format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
    ))
}

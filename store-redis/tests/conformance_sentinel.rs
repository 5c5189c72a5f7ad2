//! The shared conformance suite on the master that Redis Sentinel names
//! (`REDIS_SENTINEL_URL`, e.g.
//! `redis+sentinel://127.0.0.1:17110,127.0.0.1:17111/mymaster`, which
//! `cargo xtask conformance --backend redis-sentinel` starts and sets):
//! the suite and fixture of `conformance.rs`, run on the deployment that
//! `common::url()` picks for this test target, and the per-user index's
//! layout checks of `principal_index.rs`.

#[path = "principal_index.rs"]
mod principal_index;
#[path = "conformance.rs"]
mod suite;

// The suite's own `common` is private to it; this test needs the helpers too.
#[allow(clippy::duplicate_mod)]
mod common;

use anyhow::{bail, Result};
use sessionkit_core::{Error, Record, SessionId, Store};

/// A dropped master connection is replaced through the Sentinels by the
/// next command, without a new store (the same path a failover takes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_master_connection_is_asked_for_again() -> Result<()> {
    let ns = common::Namespaced::new().await?;
    let r = Record::new(SessionId::generate());
    ns.store.create(&r).await?;
    // The store's own connection asks the master to close it.
    let mut conn = ns.store.connection();
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .arg("SKIPME")
        .arg("no")
        .query_async(&mut conn)
        .await?;
    // The first command after may still see the closed connection (a
    // transient error); one of the next ones has a new connection.
    for _ in 0..5 {
        match ns.store.load(&r.id).await {
            Ok(Some(_)) => {
                let mut conn = ns.store.connection();
                let new: i64 = redis::cmd("CLIENT")
                    .arg("ID")
                    .query_async(&mut conn)
                    .await?;
                assert_ne!(new, id, "still the killed connection");
                return Ok(());
            }
            Ok(None) => bail!("the session is gone"),
            Err(Error::Unavailable { .. }) => continue,
            Err(e) => bail!("not a transient error: {e}"),
        }
    }
    bail!("no new master connection after 5 commands")
}

//! The shared conformance suite on a Redis Cluster (`REDIS_CLUSTER_URL`,
//! e.g. `redis+cluster://127.0.0.1:17000,127.0.0.1:17001/`, which
//! `cargo xtask conformance --backend redis-cluster` starts and sets): the
//! suite and fixture of `conformance.rs`, run on the deployment that
//! `common::url()` picks for this test target, and the per-user index's
//! layout checks of `principal_index.rs`. Plus what only a cluster
//! has: sessions spread over several masters.

// The suite's own `common` is private to it; this test needs the helpers too.
#[allow(clippy::duplicate_mod)]
mod common;
#[path = "principal_index.rs"]
mod principal_index;
#[path = "conformance.rs"]
mod suite;

use anyhow::{ensure, Result};
use sessionkit_core::{Record, SessionId, Store};

/// `ids`/`count`/`clear` see the keys of every master, not one node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_count_and_clear_cover_every_master() -> Result<()> {
    let ns = common::Namespaced::new().await?;
    let mut conn = ns.store.connection();
    // Each master's slot ranges: `CLUSTER SLOTS` rows are
    // [start, end, [host, port, …], replicas…].
    let rows: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let mut ranges = Vec::new();
    for row in rows {
        let (start, end): (i64, i64) = (
            redis::from_redis_value(&row[0])?,
            redis::from_redis_value(&row[1])?,
        );
        let node: Vec<redis::Value> = redis::from_redis_value(&row[2])?;
        let port: i64 = redis::from_redis_value(&node[1])?;
        ranges.push((start, end, port));
    }
    let masters: std::collections::BTreeSet<i64> = ranges.iter().map(|r| r.2).collect();
    ensure!(masters.len() >= 2, "a cluster of one master: {ranges:?}");
    let mut ids = Vec::new();
    let mut hit = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let r = Record::new(SessionId::generate());
        ns.store.create(&r).await?;
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(ns.store.key(&r.id))
            .query_async(&mut conn)
            .await?;
        if let Some(r) = ranges.iter().find(|r| (r.0..=r.1).contains(&slot)) {
            hit.insert(r.2);
        }
        ids.push(r.id);
    }
    // 60 random ids over masters holding a third of the slots each: every
    // master is hit (the chance that one is missed is below 1e-10).
    ensure!(
        hit == masters,
        "keys fell on masters {hit:?} of {masters:?}"
    );
    ensure!(ns.store.count().await? == 60);
    let mut listed = ns.store.ids().await?;
    listed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ensure!(listed == ids, "ids() missed or added sessions");
    ns.store.clear().await?;
    ensure!(ns.store.count().await? == 0);
    Ok(())
}

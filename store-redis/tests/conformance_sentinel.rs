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

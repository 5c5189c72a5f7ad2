//! Section `middleware`: what the session layer costs per request, without
//! sockets. The HTTP counter app of section `http` (the same handler and
//! configuration) is called in-process, on one thread, by 32 clients in
//! turn, each keeping its cookie; every answer is checked to be its
//! previous counter + 1. Reported per request: wall time and heap
//! allocations, for axum without sessions (the floor), ours on
//! store-memory and tower-sessions on its `MemoryStore`.
//!
//! Wall time on a shared machine is noisy; instruction counts are not.
//! For those, run the section under callgrind with two request counts and
//! divide the difference (start-up and warm-up cancel out):
//!
//! ```text
//! B=target/bench-build/release/session-bench
//! for n in 2000 12000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   $B --section middleware --who ours --middleware-requests $n 2>&1 | grep Collected; done
//! # instructions per request = (second - first) / 10000
//! ```
//!
//! (`--callgrind-out-file=cg.out` plus `callgrind_annotate --inclusive=yes
//! cg.out` shows where they go.)

use crate::http::Who;
use crate::memory;
use crate::server;
use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Clients taking turns, as the HTTP section's connections.
const CLIENTS: usize = 32;

pub struct MwRow {
    pub who: Who,
    pub requests: u64,
    pub elapsed: Duration,
    pub allocs: u64,
}

impl MwRow {
    pub fn ns_per_request(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.requests.max(1) as f64
    }

    pub fn allocs_per_request(&self) -> f64 {
        self.allocs as f64 / self.requests.max(1) as f64
    }
}

struct Client {
    cookie: Option<String>,
    expect: u64,
}

/// One request of `client` through `app`; checks the counter.
async fn step(app: &Router, client: &mut Client) -> Result<()> {
    let mut req = Request::get(server::PATH);
    if let Some(c) = &client.cookie {
        req = req.header(COOKIE, c.as_str());
    }
    let res = app.clone().oneshot(req.body(Body::empty())?).await?;
    if let Some(c) = res
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
    {
        client.cookie = Some(c.to_owned());
    }
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("status {status}: {}", String::from_utf8_lossy(&body));
    }
    let n: u64 = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| b.trim().parse().ok())
        .with_context(|| format!("not a counter: {:?}", String::from_utf8_lossy(&body)))?;
    // The floor answers 1 every time.
    if n != client.expect && n != 1 {
        bail!("counter {n}, expected {} (session lost?)", client.expect);
    }
    client.expect = n + 1;
    Ok(())
}

async fn measure(who: Who, app: Router, requests: u64) -> Result<MwRow> {
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|_| Client {
            cookie: None,
            expect: 1,
        })
        .collect();
    // Warm-up: every session created, caches and maps grown.
    for _ in 0..4 {
        for c in clients.iter_mut() {
            step(&app, c).await?;
        }
    }
    let allocs = memory::allocations();
    let start = Instant::now();
    for i in 0..requests {
        let c = &mut clients[(i % CLIENTS as u64) as usize];
        step(&app, c).await?;
    }
    Ok(MwRow {
        who,
        requests,
        elapsed: start.elapsed(),
        allocs: memory::allocations() - allocs,
    })
}

/// Runs the section on a current-thread runtime of its own (so no other
/// worker adds to instruction counts).
pub fn run(who: &[Who], requests: u64) -> Result<Vec<MwRow>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runs = |w: Who| who.is_empty() || who.contains(&w);
    rt.block_on(async {
        let mut rows = Vec::new();
        for w in [Who::Floor, Who::Ours, Who::Tower] {
            if !runs(w) {
                continue;
            }
            let app = match w {
                Who::Floor => server::none(),
                Who::Ours => server::ours(Arc::new(sessionkit_memory::MemoryStore::new()))?,
                _ => server::tower(tower_sessions::MemoryStore::default()),
            };
            let row = measure(w, app, requests).await?;
            eprintln!(
                "bench: middleware {:<40} {:>8.0} ns/request  {:>6.1} allocations/request",
                w.label(),
                row.ns_per_request(),
                row.allocs_per_request()
            );
            rows.push(row);
        }
        Ok(rows)
    })
}

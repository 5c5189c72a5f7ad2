//! Section 4: bytes per session held by the memory stores, counted by the
//! global allocator of this binary (live heap bytes before and after).

use sessionkit_core::{Record, SessionId, Store};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

/// The system allocator, counting live bytes.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Allocations (and reallocations) made so far, by every thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed) as u64
}

pub struct MemRow {
    pub store: &'static str,
    pub sessions: usize,
    pub payload: usize,
    /// Length of one session's stored JSON (ours) for reference.
    pub json_len: usize,
    pub bytes_per_session: f64,
}

pub const PAYLOAD: usize = 200;

fn ours_record() -> Record {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(3600)), sessionkit_core::time::now());
    r.data.insert("payload".into(), "x".repeat(PAYLOAD).into());
    r
}

/// Runs on a current-thread runtime before anything else allocates.
pub fn run(n: usize) -> anyhow::Result<Vec<MemRow>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json_len = ours_record().to_json()?.len();
    let mut rows = Vec::new();

    let before = live();
    let store = sessionkit_memory::MemoryStore::new();
    for _ in 0..n {
        let r = ours_record();
        rt.block_on(store.create(&r))?;
    }
    let after = live();
    rows.push(MemRow {
        store: "ours: store-memory",
        sessions: n,
        payload: PAYLOAD,
        json_len,
        bytes_per_session: (after - before) as f64 / n as f64,
    });
    drop(store);

    let before = live();
    let store = tower_sessions::MemoryStore::default();
    for _ in 0..n {
        use tower_sessions::session::{Id, Record as TRecord};
        use tower_sessions::SessionStore;
        let mut data = HashMap::new();
        data.insert(
            "payload".to_owned(),
            serde_json::Value::from("x".repeat(PAYLOAD)),
        );
        let mut r = TRecord {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        rt.block_on(store.create(&mut r))?;
    }
    let after = live();
    rows.push(MemRow {
        store: "tower-sessions 0.14 MemoryStore",
        sessions: n,
        payload: PAYLOAD,
        json_len,
        bytes_per_session: (after - before) as f64 / n as f64,
    });
    drop(store);
    Ok(rows)
}

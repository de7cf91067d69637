//! Bogus datagrams cost the receiving engine no allocation.
//!
//! A dedicated test binary, because it installs a counting global allocator: it counts the
//! allocations made on the receiving engine's event-loop thread (found by its name,
//! `jetstream-engine`, through `/proc/self/task/*/comm`) while another thread floods the
//! engine's port with bogus datagrams (`it/bogus.rs`), and divides by the datagrams the engine
//! counted as dropped. The engine expects a transfer (a live session), so the guessed-id and
//! forged-tag datagrams reach the session lookup and the AEAD; no sender is running, so every
//! allocation counted is due to the flood or to the idle loop.

#![allow(unsafe_code)] // The global allocator.
#![allow(unreachable_pub)]

#[path = "it/bogus.rs"]
mod bogus;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::{Engine, EngineConfig, TransferKeys};

/// Thread id whose allocations are counted (0: none).
static WATCHED: AtomicI32 = AtomicI32::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    let watched = WATCHED.load(Ordering::Relaxed);
    // SAFETY: gettid has no preconditions and cannot fail.
    if watched != 0 && unsafe { libc::gettid() } == watched {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The thread id of the (only) engine event loop of this process.
fn engine_thread() -> i32 {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let task = task.expect("task entry");
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // `comm` holds the first 15 bytes of the thread name.
        if comm.trim_end() == "jetstream-engin" {
            found.push(
                task.file_name()
                    .to_string_lossy()
                    .parse::<i32>()
                    .expect("tid"),
            );
        }
    }
    assert_eq!(found.len(), 1, "exactly one engine thread");
    found[0]
}

#[test]
fn bogus_datagrams_allocate_nothing_on_the_receiving_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::default();
    config.bind("127.0.0.1:0".parse().unwrap());
    let rx = Engine::spawn(config).expect("engine binds on loopback");
    let keys = TransferKeys::random().unwrap();
    let id = keys.session_id();
    let _incoming = rx.handle().receive(keys, dir.path().join("dst")).unwrap();
    let handle = rx.handle();
    let dropped = || {
        let i = handle.info().unwrap();
        i.dropped.malformed + i.dropped.unknown_session + i.dropped.rejected + i.discovery.invalid
    };
    let before = dropped();

    WATCHED.store(engine_thread(), Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = bogus::flood(rx.local_addr(), id, None, stop.clone());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().unwrap();
    // Let the engine drain its socket: until its drop counter stops moving.
    let mut last = u64::MAX;
    loop {
        let now = dropped();
        if now == last {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(50));
    }
    let allocs = ALLOCS.load(Ordering::SeqCst);
    WATCHED.store(0, Ordering::SeqCst);
    let counted = last - before;
    let per = allocs as f64 / counted.max(1) as f64;
    println!(
        "flood_alloc: {sent} bogus datagrams sent, {counted} dropped by the engine, {allocs} \
         allocations on its thread meanwhile ({per:.5} per bogus datagram)"
    );
    assert!(counted > 10_000, "the flood reached the engine ({counted})");
    assert!(
        per < 0.01,
        "{allocs} allocations for {counted} bogus datagrams"
    );
}

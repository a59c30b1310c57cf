//! Memory of the userspace flow state at scale: 100k DNS answers for
//! 100k distinct host names, then 100k connections to those addresses,
//! established and still open, fed through decode and the daemon's own
//! `FlowTable` (default settings). Prints one JSON line with this
//! process's RSS before and after (from /proc/self/status).
//!
//! `cargo bench -p observer --bench memory`
use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use observer::capture::decode as events;

#[path = "common/mod.rs"]
mod common;

const FLOWS: u32 = 100_000;
const CGROUP: u64 = 7;
/// Simulated arrival: one connection every 10 µs (100k/s), with the
/// daemon's 25 ms expiry sweep.
const GAP: Duration = Duration::from_micros(10);
const SWEEP: u32 = 2_500;

/// The system allocator, counting the bytes live on the heap, so the
/// report can split RSS into what the state holds and allocator overhead.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
            HEAP.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> usize {
    HEAP.load(Ordering::Relaxed)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either: this target has no options.
    let (mut table, metrics) = common::table();
    let rss_start = status_kib("VmRSS:");
    let heap_start = heap();
    let t0 = Instant::now();
    let mut now = t0;
    let started = Instant::now();
    for i in 0..FLOWS {
        let msg = common::dns_a_response(
            i as u16,
            &format!("svc{i}.ns{}.bench.example.com", i % 97),
            common::addr(i),
            3600,
        );
        let ev = events::decode(&common::dns(CGROUP, &msg)).expect("valid record");
        table.handle(ev, now);
    }
    let rss_names = status_kib("VmRSS:");
    let heap_names = heap();
    for i in 0..FLOWS {
        now += GAP;
        let cookie = 1 + u64::from(i);
        for rec in [
            common::connect(cookie, CGROUP, common::addr(i), 443),
            common::established(cookie),
        ] {
            let ev = events::decode(&rec).expect("valid record");
            table.handle(ev, now);
        }
        if i % SWEEP == 0 {
            table.expire(now);
        }
    }
    table.expire(now + Duration::from_secs(1));
    let elapsed = started.elapsed();
    let rss_end = status_kib("VmRSS:");
    let heap_end = heap();
    let hwm = status_kib("VmHWM:");
    let named_dns = metrics
        .connections
        .with_label_values(&["other", "", "", "", "", "", "python3", "tcp", "dns"])
        .get();
    println!(
        "{{\"flows\":{FLOWS},\"live\":{},\"pending\":{},\"named_by_dns\":{named_dns},\
\"rss_start_kib\":{rss_start},\"rss_after_names_kib\":{rss_names},\"rss_end_kib\":{rss_end},\
\"hwm_kib\":{hwm},\"heap_start\":{heap_start},\"heap_after_names\":{heap_names},\"heap_end\":{heap_end},\"seconds\":{:.3}}}",
        table.live_len(),
        table.pending_len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(table.live_len(), FLOWS as usize, "every flow still tracked");
}

//! Userspace cost per ring record: decode → name (TLS / HTTP / DNS) →
//! classify → count, through the daemon's own `FlowTable` with its default
//! settings and the built-in catalogue. Each iteration handles one unit
//! (a whole connection's records, or one DNS answer) with a fresh socket
//! cookie; throughput is in records (events).
//!
//! `cargo bench -p observer --bench pipeline`
use std::{hint::black_box, time::Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use observer::{capture::decode as events, flows::FlowTable, outputs::Outputs};

#[path = "common/mod.rs"]
mod common;

/// Distinct cookies and names cycled through (flows close, so cookies can
/// come back; DNS answers are re-learnt).
const POOL: u64 = 4096;
/// The daemon sweeps expired waits every 25 ms; here every this many units.
const EXPIRE_EVERY: u64 = 1024;
const CGROUP: u64 = 7;
const COOKIE_AT: usize = 16;

/// One unit of work: records with their cookie patched per iteration.
struct Unit {
    records: Vec<Vec<u8>>,
    /// Patch the cookie (connection records) or not (a DNS answer).
    per_cookie: bool,
}

impl Unit {
    fn flow(payload: &[u8], dst: std::net::Ipv4Addr, port: u16) -> Self {
        Self {
            records: vec![
                common::connect(0, CGROUP, dst, port),
                common::payload(0, payload),
                common::established(0),
                common::closed(0),
            ],
            per_cookie: true,
        }
    }
}

struct Driver {
    table: FlowTable<Outputs>,
    n: u64,
    dns: Vec<Vec<u8>>,
}

impl Driver {
    fn new() -> Self {
        let (table, _metrics) = common::table();
        let dns = (0..POOL as u32)
            .map(|i| {
                let msg = common::dns_a_response(
                    i as u16,
                    &format!("svc{i}.internal.example.com"),
                    common::addr(i),
                    300,
                );
                common::dns(CGROUP, &msg)
            })
            .collect();
        Self { table, n: 0, dns }
    }

    fn run(&mut self, unit: &mut Unit) -> usize {
        self.n += 1;
        let now = Instant::now();
        let mut finished = 0;
        if unit.per_cookie {
            let cookie = 1 + self.n % POOL;
            for rec in &mut unit.records {
                rec[COOKIE_AT..COOKIE_AT + 8].copy_from_slice(&cookie.to_ne_bytes());
            }
        }
        for rec in &unit.records {
            let event = events::decode(black_box(rec)).expect("valid record");
            finished += self.table.handle(event, now).len();
        }
        if self.n.is_multiple_of(EXPIRE_EVERY) {
            finished += self.table.expire(now).len();
        }
        finished
    }

    fn dns_answer(&mut self) {
        self.n += 1;
        let rec = &self.dns[(self.n % POOL) as usize];
        let event = events::decode(black_box(rec)).expect("valid record");
        black_box(self.table.handle(event, Instant::now()));
    }
}

fn pipeline(c: &mut Criterion) {
    let tls = common::fixture("tls_curl_api_openai.bin");
    let http = common::fixture("http_curl_get_models.bin");
    // Neither TLS nor HTTP: named by the DNS answer its cgroup received.
    let opaque = b"\x00\x00\x00\x10binary-protocol!".to_vec();
    let provider_ip = std::net::Ipv4Addr::new(203, 0, 113, 10);

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(4));
    g.bench_function("tls_flow", |b| {
        let mut d = Driver::new();
        let mut unit = Unit::flow(&tls, provider_ip, 443);
        b.iter(|| d.run(&mut unit));
    });
    g.bench_function("http_flow", |b| {
        let mut d = Driver::new();
        let mut unit = Unit::flow(&http, provider_ip, 80);
        b.iter(|| d.run(&mut unit));
    });
    g.bench_function("dns_named_flow", |b| {
        let mut d = Driver::new();
        for _ in 0..POOL {
            d.dns_answer();
        }
        let mut unit = Unit::flow(&opaque, common::addr(17), 5432);
        b.iter(|| d.run(&mut unit));
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("dns_answer", |b| {
        let mut d = Driver::new();
        b.iter(|| d.dns_answer());
    });
    // One of each: 4 + 4 + 4 + 1 records.
    g.throughput(Throughput::Elements(13));
    g.bench_function("mixed", |b| {
        let mut d = Driver::new();
        for _ in 0..POOL {
            d.dns_answer();
        }
        let mut units = [
            Unit::flow(&tls, provider_ip, 443),
            Unit::flow(&http, provider_ip, 80),
            Unit::flow(&opaque, common::addr(17), 5432),
        ];
        b.iter(|| {
            d.dns_answer();
            units.iter_mut().map(|u| d.run(u)).sum::<usize>()
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = pipeline
}
criterion_main!(benches);

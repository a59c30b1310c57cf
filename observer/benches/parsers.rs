//! Each parser on each real capture in `fixtures/` (tls_*.bin,
//! http_*.bin, dns_*.bin): time per message, throughput in bytes.
//!
//! `cargo bench -p observer --bench parsers`
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use observer::naming::{dns, http, tls};

#[path = "common/mod.rs"]
mod common;

fn fixtures(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(common::fixtures_dir())
        .expect("list fixtures")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".bin")?.to_owned();
            stem.starts_with(prefix)
                .then(|| (stem, std::fs::read(e.path()).expect("read fixture")))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {prefix}*.bin fixtures");
    out
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("tls");
    for (name, bytes) in fixtures("tls_") {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(&name, |b| {
            b.iter(|| tls::parse_client_hello(black_box(&bytes)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("http");
    for (name, bytes) in fixtures("http_") {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(&name, |b| b.iter(|| http::parse_request(black_box(&bytes))));
    }
    g.finish();
    let mut g = c.benchmark_group("dns");
    for (name, bytes) in fixtures("dns_") {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(&name, |b| b.iter(|| dns::parse_response(black_box(&bytes))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = parsers
}
criterion_main!(benches);

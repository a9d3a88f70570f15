//! What reading the ledger costs at high cardinality, beside the request path: the summary pass
//! behind `/metrics` and the dashboard, the default (bounded) `/report`, and the whole report as
//! `--report-file` writes it, over 100 000 hosts seen once and 1 000 busy ones.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use cutover_proxy::internals::{
    summarize, write_report, Format, Ledger, LedgerSettings, Observation, ReportSettings, RouteTable, Selection,
    Sources,
};

const T0: u64 = 1_764_000_000_000;

/// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ledger() -> Ledger {
    let ledger = Ledger::new(LedgerSettings::default(), Arc::new(RouteTable::empty()));
    let record = |host: &str, path: &str, agent: &str, ip: u32, at_ms: u64| {
        let o = Observation {
            host: Some(host.as_bytes()),
            path,
            method: &http::Method::GET,
            status: 200,
            bytes_in: 0,
            bytes_out: 512,
            client_ip: std::net::IpAddr::from(ip.to_be_bytes()),
            user_agent: Some(agent.as_bytes()),
            conn_age_ms: 1_000,
            tls: None,
            at_ms,
        };
        ledger.record(&o, |_| {});
    };
    for i in 0..99_000u32 {
        record(
            &format!("x{i:07}q.tenant.example.com"),
            &format!("/scan/{i:x}z/probe"),
            &format!("scanner/{i}"),
            0x0a00_0000 | i,
            T0 + u64::from(i),
        );
    }
    for i in 0..200_000u32 {
        let h = i % 1_000;
        record(
            &format!("service-{h}.example.com"),
            &format!("/api/v1/items/{}", i % 37),
            &format!("client/{}", i % 13),
            0x0a01_0000 | (i % 300),
            T0 + u64::from(i) * 50,
        );
    }
    ledger
}

fn reading(c: &mut Criterion) {
    let ledger = ledger();
    let src = Sources {
        probe: None,
        ledger: &ledger,
        dns: None,
        started_at_ms: T0,
        replica_id: "bench",
        settings: ReportSettings::default(),
    };
    let now = T0 + 11_000_000;
    let mut g = c.benchmark_group("report over 100 000 hosts");
    g.sample_size(10);
    g.bench_function("summary pass (/metrics, dashboard)", |b| b.iter(|| black_box(summarize(&src, now))));
    g.bench_function("default /report (JSON, bounded)", |b| {
        b.iter(|| write_report(&src, &Selection::bounded(), Format::Json, now, &mut std::io::sink()).unwrap())
    });
    g.bench_function("whole report (JSON, the report file)", |b| {
        b.iter(|| write_report(&src, &Selection::all(), Format::Json, now, &mut std::io::sink()).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    targets = reading
}
criterion_main!(benches);

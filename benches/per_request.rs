//! The work cutover-proxy adds to each request, apart from moving bytes: header rewriting
//! (hop-by-hop removal, X-Forwarded-*, client IP), formatting the access log line, and recording
//! the request in the ledger.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use cutover_proxy::internals::{
    client_ip, format_access, forward_head, set_forwarded, strip_hop_by_hop, AccessLog, AccessRecord, Text,
    TrustedProxies,
};
use http::{HeaderMap, HeaderValue, Method, Version};

/// Headers of a typical browser/API request behind a load balancer.
fn typical_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "4f6c1d7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"),
        ("cookie", "session=abc123; theme=dark"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    h
}

fn header_rewriting(c: &mut Criterion) {
    let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let peer = "10.1.2.3".parse().unwrap();
    let peer_hv = HeaderValue::from_static("10.1.2.3");
    let host = HeaderValue::from_static("api.example.com");
    let template = typical_headers();
    c.bench_function("headers: strip hop-by-hop + X-Forwarded-* + client ip", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |h| {
                let hop = strip_hop_by_hop(h);
                let ip = client_ip(peer, h, &trusted);
                set_forwarded(h, &peer_hv, true, "http", Some(&host));
                black_box((hop, ip));
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The own HTTP/1.1 side's whole head work for the same request: parse the client's bytes once,
/// gather the facts, write the head toward blue (the hyper side's equivalent is the HeaderMap
/// bench above plus hyper's own parse into that map and its encoding of it).
fn own_side_head(c: &mut Criterion) {
    let mut raw = b"GET /api/v1/items?page=2 HTTP/1.1\r\n".to_vec();
    for (k, v) in typical_headers().iter() {
        raw.extend_from_slice(k.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let mut out = Vec::with_capacity(1024);
    c.bench_function("own side: parse a request head and write it toward blue", |b| {
        b.iter(|| {
            out.clear();
            black_box(forward_head(black_box(&raw), b"10.1.2.3", &mut out))
        })
    });
}

/// A typical access record (host and path copied, as the request path does).
fn sample_record(ts: SystemTime) -> AccessRecord {
    AccessRecord {
        stale_conn: false,
        ts,
        client_ip: std::net::IpAddr::from([203, 0, 113, 7]),
        method: Method::GET,
        host: Some(Text::new(b"api.example.com")),
        path: Text::new(b"/v1/users/12345/orders"),
        version: Version::HTTP_11,
        status: 200,
        bytes_in: 0,
        bytes_out: 1834,
        duration: Duration::from_micros(1_734),
        upstream: "http://10.0.0.1:80",
        upstream_addr: Some(std::net::SocketAddr::from(([10, 0, 0, 1], 80))),
        user_agent: Some(Text::new(
            b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        )),
        request_id: Some(Text::new(b"Root=1-67891233-abcdef012345678912345678")),
        grpc_status: None,
        tls: None,
        error: None,
    }
}

fn log_line(c: &mut Criterion) {
    let rec = sample_record(SystemTime::now());
    let mut buf = Vec::with_capacity(64 * 1024);
    c.bench_function("log: format one access line", |b| {
        b.iter(|| {
            buf.clear();
            format_access(black_box(&rec), &mut buf);
            black_box(buf.len())
        })
    });
    // The worker's side of an access line: pack the record into its lane (the writer thread,
    // started on a sink, swaps the lane out every 2 ms meanwhile).
    let (log, writer) = AccessLog::start(std::io::sink(), 2048).unwrap();
    let lane = log.lane();
    c.bench_function("log: hand one record to the writer (pack into the worker's lane)", |b| {
        b.iter(|| {
            lane.access(sample_record(rec.ts));
        })
    });
    drop((lane, log));
    writer.finish(Duration::from_secs(5));
    c.bench_function("log: copy host and path into a record", |b| {
        b.iter(|| {
            black_box((Text::new(black_box(b"api.example.com")), Text::new(black_box(b"/v1/users/12345/orders"))))
        })
    });
}

fn record_one_request(c: &mut Criterion) {
    use cutover_proxy::internals::{Glob, Ledger, LedgerSettings, Observation, RouteTable, Templater};
    let settings = LedgerSettings {
        max_hosts: 100_000,
        max_paths_per_host: 1_000,
        max_paths: 200_000,
        ignore_paths: vec!["/healthz".parse::<Glob>().unwrap(), "/readyz".parse().unwrap()],
        ignore_user_agents: vec!["ELB-HealthChecker/*".parse().unwrap()],
        templater: Templater::default(),
        ..LedgerSettings::default()
    };
    let ledger = Ledger::new(settings, std::sync::Arc::new(RouteTable::empty()));
    let method = Method::GET;
    let hosts: Vec<String> = (0..1000).map(|i| format!("Service-{i}.Example.com:443")).collect();
    let paths: Vec<String> = (0..64).map(|i| format!("/v1/users/{}/orders/{i}", 1000 + i)).collect();
    let ua = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0";
    let mut i = 0usize;
    c.bench_function("ledger: record one request (normalize + template + update)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let obs = Observation {
                host: Some(hosts[i % hosts.len()].as_bytes()),
                path: &paths[i % paths.len()],
                method: &method,
                status: 200,
                bytes_in: 0,
                bytes_out: 1834,
                client_ip: std::net::IpAddr::from([203, 0, 113, (i % 7) as u8]),
                user_agent: Some(ua),
                conn_age_ms: 1200,
                tls: None,
                at_ms: 1_764_000_000_000 + i as u64,
            };
            black_box(ledger.record(&obs, |_| {}))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = header_rewriting, own_side_head, log_line, record_one_request
}
criterion_main!(benches);

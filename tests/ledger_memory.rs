//! A million requests with distinct random paths: the ledger stays bounded (peak RSS under
//! 64 MiB) and its totals stay exact.

use std::sync::Arc;

use cutover_proxy::internals::{Ledger, LedgerSettings, Observation, RouteTable, Templater, OTHER_PATH};

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_million_random_paths_stay_bounded_and_exact() {
    let settings = LedgerSettings {
        max_hosts: 100_000,
        max_paths_per_host: 1_000,
        max_paths: 200_000,
        ignore_paths: vec![],
        ignore_user_agents: vec![],
        templater: Templater::default(),
    };
    let ledger = Ledger::new(settings, Arc::new(RouteTable::empty()));
    let before = peak_rss_kib();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let method = http::Method::GET;
    let mut path = String::new();
    const N: u64 = 1_000_000;
    for i in 0..N {
        path.clear();
        // Letters only, so no segment is taken for an id: every path is a distinct template.
        let r = next();
        path.push_str("/files/");
        for k in 0..12 {
            path.push((b'a' + ((r >> (k * 5)) % 26) as u8) as char);
        }
        let host = format!("h{}.example.com", i % 20);
        let ua = format!("client/{}", r % 5000);
        ledger.record(
            &Observation {
                host: Some(host.as_bytes()),
                path: &path,
                method: &method,
                status: 200,
                bytes_in: 0,
                bytes_out: 10,
                client_ip: std::net::IpAddr::from([10, 0, (r >> 8) as u8, r as u8]),
                user_agent: Some(ua.as_bytes()),
                conn_age_ms: 5,
                tls: None,
                at_ms: 1_764_000_000_000 + i,
            },
            |_| {},
        );
    }
    let after = peak_rss_kib();
    let snapshot = ledger.snapshot();
    let total: u64 = snapshot.iter().map(|(_, h)| h.counts.requests).sum();
    assert_eq!(total, N, "every request counted");
    let path_total: u64 = snapshot.iter().flat_map(|(_, h)| h.paths.values()).map(|p| p.counts.requests).sum();
    assert_eq!(path_total, N, "path counts add up too");
    for (host, h) in &snapshot {
        assert_eq!(h.paths.len(), 1_001, "{host}: 1000 templates + {{other}}");
        assert!(h.paths.contains_key(OTHER_PATH));
    }
    assert!(after < 64 * 1024, "peak RSS {before} KiB before, {after} KiB after");
    eprintln!("peak RSS: {before} KiB before, {after} KiB after 1M distinct paths");
}

#[test]
fn lanes_merge_exactly_and_keep_the_path_bound() {
    let settings = LedgerSettings {
        max_hosts: 10,
        max_paths_per_host: 3,
        max_paths: 1_000,
        ignore_paths: vec![],
        ignore_user_agents: vec![],
        templater: Templater::default(),
    };
    let ledger = Ledger::new(settings, Arc::new(RouteTable::empty()));
    let (a, b) = (ledger.lane(), ledger.lane());
    let method = http::Method::GET;
    let mut first_hosts = 0;
    let mut first_paths = 0;
    for i in 0..400u64 {
        let lane = if i % 2 == 0 { &a } else { &b };
        // Lane a sees /p0../p2 most, lane b /p3../p5: merged, 6 templates for a bound of 3.
        let path = format!("/p{}", (i % 2) * 3 + (i / 2) % 3);
        ledger.record_into(
            lane,
            &Observation {
                host: Some(b"shared.example.com"),
                path: &path,
                method: &method,
                status: 200,
                bytes_in: 1,
                bytes_out: 2,
                client_ip: std::net::IpAddr::from([10, 0, 0, (i % 3) as u8]),
                user_agent: None,
                conn_age_ms: i,
                tls: None,
                at_ms: 1_764_000_000_000 + i,
            },
            |s| match s {
                cutover_proxy::internals::Sighting::NewHost { .. } => first_hosts += 1,
                cutover_proxy::internals::Sighting::NewPath { .. } => first_paths += 1,
            },
        );
    }
    assert_eq!((first_hosts, first_paths), (1, 6), "each host and path is announced once, whichever lane saw it");
    let snap = ledger.snapshot();
    assert_eq!(snap.len(), 1);
    let h = &snap[0].1;
    assert_eq!(h.counts.requests, 400);
    assert_eq!(h.counts.bytes_in, 400);
    assert_eq!(h.oldest_conn_age_ms, 399);
    assert_eq!(h.paths.len(), 4, "3 templates + {{other}}");
    assert_eq!(h.paths.values().map(|p| p.counts.requests).sum::<u64>(), 400);
    assert_eq!(h.paths[OTHER_PATH].counts.requests, 3 * 66 + 1, "the three least requested folded");
    assert_eq!(ledger.totals().requests, 400);
    assert_eq!(ledger.totals().paths_overflowed, 199);
}

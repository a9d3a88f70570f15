//! The ledger's bounds and merges, through its public surface: what a report reads back.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use http::Method;

use super::*;
use crate::base::host::{Overflow, OTHER_PATH};
use crate::routes::RouteTable;

const T0: u64 = 1_764_000_000_000;

fn obs<'a>(host: &'a str, path: &'a str, i: u64) -> Observation<'a> {
    Observation {
        host: Some(host.as_bytes()),
        path,
        method: &Method::GET,
        status: 200,
        bytes_in: 1,
        bytes_out: 2,
        client_ip: IpAddr::from([10, 0, 0, (i % 3) as u8]),
        user_agent: None,
        conn_age_ms: i,
        tls: None,
        at_ms: T0 + i,
    }
}

fn ledger(settings: LedgerSettings, routes: RouteTable) -> Ledger {
    Ledger::new(settings, Arc::new(routes))
}

/// Requests under every host and bucket a read lists, by name.
fn requests_by_host(l: &Ledger) -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    l.for_each_host(|name, h| {
        by.insert(name.to_owned(), h.counts.requests);
    });
    by
}

#[test]
fn lanes_merge_exactly_and_keep_the_path_bound() {
    let settings = LedgerSettings { max_hosts: 10, max_paths_per_host: 3, ..LedgerSettings::default() };
    let l = ledger(settings, RouteTable::empty());
    let (a, b) = (l.lane(), l.lane());
    let (mut first_hosts, mut first_paths) = (0, 0);
    for i in 0..400u64 {
        let lane = if i % 2 == 0 { &a } else { &b };
        // Lane a sees /p0../p2 most, lane b /p3../p5: merged, 6 templates for a bound of 3.
        let path = format!("/p{}", (i % 2) * 3 + (i / 2) % 3);
        l.record_into(lane, &obs("shared.example.com", &path, i), |s| match s {
            Sighting::NewHost { .. } => first_hosts += 1,
            Sighting::NewPath { .. } => first_paths += 1,
        });
    }
    assert_eq!((first_hosts, first_paths), (1, 6), "each host and path is announced once, whichever lane saw it");
    let h = l.host("shared.example.com").expect("recorded");
    assert_eq!((h.counts.requests, h.counts.bytes_in, h.oldest_conn_age_ms), (400, 400, 399));
    assert_eq!(h.paths.len(), 4, "3 templates + {{other}}");
    assert_eq!(h.paths.values().map(|p| p.counts.requests).sum::<u64>(), 400);
    assert_eq!(h.paths[OTHER_PATH].counts.requests, 3 * 66 + 1, "the three least requested folded");
    assert_eq!(requests_by_host(&l).len(), 1);
    // The merged view's fold is counted in the totals once a read made it.
    assert_eq!((l.totals().requests, l.totals().paths_overflowed), (400, 199));
}

#[test]
fn past_max_hosts_each_kind_has_its_bucket() {
    let routes = RouteTable::parse_text(
        Path::new("routes.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: api, namespace: prod}\nspec:\n  rules:\n  - host: '*.example.com'\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}\n",
    )
    .expect("valid routes");
    let l = ledger(LedgerSettings { max_hosts: 2, ..LedgerSettings::default() }, routes);
    for (i, host) in ["a.example.com", "b.example.com", "c.example.com", "10.0.0.7", "api.other.org", "d.example.com"]
        .into_iter()
        .enumerate()
    {
        l.record(&obs(host, "/x", i as u64), |_| {});
    }
    let by = requests_by_host(&l);
    let expect: Vec<(&str, u64)> = vec![
        (Overflow::Hosts.as_str(), 2),
        (Overflow::AddressedDirectly.as_str(), 1),
        (Overflow::Unrouted.as_str(), 1),
        ("a.example.com", 1),
        ("b.example.com", 1),
    ];
    let got: Vec<(&str, u64)> = by.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, expect);
    assert_eq!((l.host_count(), l.totals().requests, l.totals().hosts_overflowed), (2, 6, 4));
    assert_eq!(l.totals().unrouted, 1, "the unrouted bucket's request is unrouted");
}

#[test]
fn the_memory_budget_is_never_passed_and_nothing_is_lost() {
    let limit = 256 * 1024;
    let l = ledger(LedgerSettings { max_memory: limit, ..LedgerSettings::default() }, RouteTable::empty());
    const N: u64 = 20_000;
    let agent = |i: u64| format!("client/{i}");
    for i in 0..N {
        // Every fourth request repeats a host with a new path and agent: detail is earned too.
        let host = format!("h{}.example.com", if i % 4 == 3 { i - 1 } else { i });
        let path = format!("/p/{}", i % 7);
        let a = agent(i);
        let o = Observation { user_agent: Some(a.as_bytes()), ..obs(&host, &path, i) };
        l.record(&o, |_| {});
    }
    let m = l.memory();
    // Only the buckets may be charged past the limit (what must be counted is counted).
    assert!(m.used <= limit + 4096, "charged {} of {limit}", m.used);
    assert!(m.refused > 0);
    let by = requests_by_host(&l);
    assert_eq!(by.values().sum::<u64>(), N, "every request under its host or `(other)`");
    assert_eq!(by[Overflow::Hosts.as_str()], l.totals().hosts_overflowed);
    assert!(l.host_count() > 300, "{} hosts kept in {limit} B", l.host_count());
}

#[test]
fn a_host_seen_once_is_charged_little() {
    let l = ledger(LedgerSettings::default(), RouteTable::empty());
    const N: usize = 1000;
    for i in 0..N {
        let host = format!("once-{i}.tenant.example.com");
        let a = format!("Mozilla/5.0 (compatible; scanner/{i})");
        let path = format!("/random/{i}x/tail");
        l.record(&Observation { user_agent: Some(a.as_bytes()), ..obs(&host, &path, i as u64) }, |_| {});
    }
    let per_host = l.memory().used / N;
    assert!(per_host <= 512, "{per_host} B per host seen once");
    // A second request earns the detail, and the view shows both.
    l.record(&obs("once-1.tenant.example.com", "/other", 5), |_| {});
    let h = l.host("once-1.tenant.example.com").expect("recorded");
    assert_eq!((h.counts.requests, h.paths.len(), h.agents.items().len()), (2, 2, 1));
}

#[test]
fn a_restored_host_continues_and_is_not_announced_again() {
    let l = ledger(LedgerSettings::default(), RouteTable::empty());
    let mut counts = stats::Counters::starting(T0);
    for i in 0..5 {
        counts.count(&Method::GET, 200, 1, 2, T0 + i);
    }
    l.seed(HostSeed {
        name: "api.example.com".into(),
        ip_literal: false,
        paths: vec![PathSeed { template: "/v1".into(), example: "/v1".into(), counts }],
        clients: vec![(IpAddr::from([10, 0, 0, 1]), 5)],
        agents: vec![("curl/8".into(), 5)],
        minutes: vec![((T0 / 60_000), 5)],
        oldest_conn_age_ms: 0,
        tls: Default::default(),
        passthrough: None,
        after_move: None,
    });
    l.seed_totals(&TotalCounts { requests: 5, ..TotalCounts::default() });
    let mut sightings = Vec::new();
    l.record(&obs("api.example.com", "/v1", 10), |s| sightings.push(s));
    l.record(&obs("api.example.com", "/v2", 11), |s| sightings.push(s));
    let names: Vec<String> = sightings
        .iter()
        .map(|s| match s {
            Sighting::NewHost { host, .. } => format!("host {host}"),
            Sighting::NewPath { path, .. } => format!("path {path}"),
        })
        .collect();
    assert_eq!(names, ["path /v2"], "the restored host and its path are known");
    let h = l.host("api.example.com").expect("restored");
    assert_eq!((h.counts.requests, h.paths["/v1"].counts.requests, l.totals().requests), (7, 6, 7));
    assert_eq!(h.counts.first_seen_ms, T0);
}

//! Several replicas' reports → one: counts add up exactly, first/last seen take min/max, top-k and
//! per-minute rings merge, verdicts and actions are derived again from the merged facts.

use std::collections::HashMap;

use super::judge::ReportSettings;
use super::judge::{judge, sort_hosts};
use super::model::*;
use crate::base::host::OTHER_HOST;
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::dns::verdict::DnsVerdict;
use crate::record::stats::{Methods, StatusClasses};
use crate::record::LATE_CLIENTS;

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no report to merge")]
    Empty,
    /// A report of another schema.
    #[error("report {index}: schema `{schema}` is not {SCHEMA}")]
    Schema {
        /// Position among the inputs (0-based).
        index: usize,
        /// What it says.
        schema: String,
    },
}

/// Merges `reports` (one per replica). Verdicts use the newest report's `generated_at` as "now".
pub fn merge(reports: Vec<Report>, settings: &ReportSettings) -> Result<Report, MergeError> {
    for (index, r) in reports.iter().enumerate() {
        if r.schema != SCHEMA {
            return Err(MergeError::Schema { index, schema: r.schema.clone() });
        }
    }
    let newest = reports.iter().filter_map(|r| parse_rfc3339(&r.generated_at)).max().ok_or(MergeError::Empty)?;
    let started = reports.iter().filter_map(|r| parse_rfc3339(&r.started_at)).min().unwrap_or(newest);
    let mut totals = Totals::default();
    let mut green = GreenSummary::default();
    let mut dns = DnsSummary::default();
    let mut replicas = 0;
    let mut by_host: HashMap<String, HostReport> = HashMap::new();
    for r in reports {
        replicas += r.replicas;
        totals.requests += r.totals.requests;
        totals.ignored_requests += r.totals.ignored_requests;
        totals.unrouted_requests += r.totals.unrouted_requests;
        totals.hosts_overflowed_requests += r.totals.hosts_overflowed_requests;
        totals.paths_overflowed_requests += r.totals.paths_overflowed_requests;
        totals.tls_requests += r.totals.tls_requests;
        totals.sni_mismatch_requests += r.totals.sni_mismatch_requests;
        totals.default_cert_requests += r.totals.default_cert_requests;
        totals.passthrough_connections += r.totals.passthrough_connections;
        green.loaded |= r.green.loaded;
        green.objects = green.objects.max(r.green.objects);
        dns.live |= r.dns.live;
        for z in r.dns.zones {
            if !dns.zones.contains(&z) {
                dns.zones.push(z);
            }
        }
        for (mine, theirs) in
            [(&mut dns.blue_targets, r.dns.blue_targets), (&mut dns.green_targets, r.dns.green_targets)]
        {
            for t in theirs {
                if !mine.contains(&t) {
                    mine.push(t);
                }
            }
        }
        for h in r.hosts {
            match by_host.get_mut(&h.host) {
                Some(acc) => merge_host(acc, h),
                None => {
                    by_host.insert(h.host.clone(), h);
                }
            }
        }
    }
    let mut hosts: Vec<HostReport> = by_host.into_values().collect();
    totals.hosts = hosts.iter().filter(|h| h.host != OTHER_HOST).count() as u64;
    for h in hosts.iter_mut() {
        h.paths.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.path.cmp(&b.path)));
        judge(h, newest, settings, &dns.green_targets);
    }
    sort_hosts(&mut hosts);
    Ok(Report {
        schema: SCHEMA.into(),
        generated_at: rfc3339(newest),
        started_at: rfc3339(started),
        replicas,
        totals,
        green,
        dns,
        hosts,
    })
}

fn min_ts(a: &str, b: &str) -> String {
    match (parse_rfc3339(a), parse_rfc3339(b)) {
        (Some(x), Some(y)) => rfc3339(x.min(y)),
        (Some(_), None) => a.to_owned(),
        _ => b.to_owned(),
    }
}

fn max_ts(a: &str, b: &str) -> String {
    match (parse_rfc3339(a), parse_rfc3339(b)) {
        (Some(x), Some(y)) => rfc3339(x.max(y)),
        (Some(_), None) => a.to_owned(),
        _ => b.to_owned(),
    }
}

fn union_methods(a: &[String], b: &[String]) -> Vec<String> {
    let mut m = Methods::default();
    for name in a.iter().chain(b) {
        m.add_name(name);
    }
    m.names()
}

fn add_status(a: &mut StatusClasses, b: &StatusClasses) {
    a.merge(b);
}

fn merge_host(acc: &mut HostReport, mut h: HostReport) {
    acc.requests += h.requests;
    acc.first_seen = min_ts(&acc.first_seen, &h.first_seen);
    acc.last_seen = max_ts(&acc.last_seen, &h.last_seen);
    acc.hardcoded |= h.hardcoded;
    acc.methods = union_methods(&acc.methods, &h.methods);
    add_status(&mut acc.status, &h.status);
    acc.bytes_in += h.bytes_in;
    acc.bytes_out += h.bytes_out;
    acc.oldest_connection_age_s = acc.oldest_connection_age_s.max(h.oldest_connection_age_s);
    acc.tls_requests += h.tls_requests;
    acc.sni_mismatch_requests += h.sni_mismatch_requests;
    acc.default_cert_requests += h.default_cert_requests;
    match (&mut acc.passthrough, &h.passthrough) {
        (Some(mine), Some(theirs)) => mine.merge(theirs),
        (None, Some(theirs)) => acc.passthrough = Some(*theirs),
        _ => {}
    }
    // Replicas resolve on their own: keep the newest resolution (a known verdict over `unknown`).
    let newer = parse_rfc3339(h.dns.resolved_at.as_deref().unwrap_or(""))
        > parse_rfc3339(acc.dns.resolved_at.as_deref().unwrap_or(""));
    if acc.dns.verdict == DnsVerdict::Unknown || (h.dns.verdict != DnsVerdict::Unknown && newer) {
        acc.dns = h.dns.clone();
    }
    acc.requests_after_move += h.requests_after_move;
    acc.opened_before_move_requests += h.opened_before_move_requests;
    for c in std::mem::take(&mut h.late_clients) {
        match acc.late_clients.iter_mut().find(|x| x.ip == c.ip && x.user_agent == c.user_agent) {
            Some(x) => {
                x.requests += c.requests;
                x.last_seen = max_ts(&x.last_seen, &c.last_seen);
                x.connection_age_s = x.connection_age_s.max(c.connection_age_s);
                x.opened_before_move |= c.opened_before_move;
            }
            None => acc.late_clients.push(c),
        }
    }
    acc.late_clients.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.ip.cmp(&b.ip)));
    acc.late_clients.truncate(LATE_CLIENTS);
    let mut minutes = acc.minutes();
    minutes.merge(&h.minutes());
    acc.requests_per_minute = minutes.iter().map(|(minute, requests)| MinuteCount { minute, requests }).collect();
    let mut clients = acc.clients_topk();
    clients.merge(&h.clients_topk());
    acc.top_clients = clients.top().into_iter().map(|(ip, requests)| ClientCount { ip, requests }).collect();
    let mut agents = acc.agents_topk();
    agents.merge(&h.agents_topk());
    acc.top_user_agents =
        agents.top().into_iter().map(|(user_agent, requests)| AgentCount { user_agent, requests }).collect();
    for p in h.paths {
        match acc.paths.iter_mut().find(|x| x.path == p.path) {
            Some(x) => {
                x.requests += p.requests;
                x.first_seen = min_ts(&x.first_seen, &p.first_seen);
                x.last_seen = max_ts(&x.last_seen, &p.last_seen);
                x.methods = union_methods(&x.methods, &p.methods);
                add_status(&mut x.status, &p.status);
                x.bytes_in += p.bytes_in;
                x.bytes_out += p.bytes_out;
                // Replicas share one route table; where one judged and another did not, keep the judgement.
                if x.green_routed.is_none() {
                    x.green_routed = p.green_routed;
                    x.matched_route = p.matched_route;
                }
            }
            None => acc.paths.push(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::report::samples::{host, path, report};

    const T1: &str = "2026-11-25T10:00:00.000Z";
    const T2: &str = "2026-11-25T11:00:00.000Z";

    fn settings() -> ReportSettings {
        ReportSettings::default()
    }

    #[test]
    fn counts_add_up_and_times_take_the_extremes() {
        let a = host(
            "api.example.com",
            3,
            T1,
            json!({"paths": [path("/v1", 3, T1, Some(true))], "top_clients": [{"ip": "10.0.0.1", "requests": 3}],
                   "requests_per_minute": [{"minute": 100, "requests": 3}], "methods": ["GET"]}),
        );
        let b = host(
            "api.example.com",
            5,
            T2,
            json!({"paths": [path("/v1", 4, T2, None), path("/v2", 1, T2, Some(false))],
                   "top_clients": [{"ip": "10.0.0.1", "requests": 4}, {"ip": "10.0.0.2", "requests": 1}],
                   "requests_per_minute": [{"minute": 100, "requests": 1}, {"minute": 101, "requests": 4}],
                   "methods": ["POST"]}),
        );
        let merged = merge(vec![report(T1, vec![a]), report(T2, vec![b])], &settings()).unwrap();
        assert_eq!((merged.replicas, merged.totals.requests, merged.totals.hosts), (2, 8, 1));
        assert_eq!((merged.generated_at.as_str(), merged.started_at.as_str()), (T2, T1));
        let h = &merged.hosts[0];
        assert_eq!((h.requests, h.first_seen.as_str(), h.last_seen.as_str()), (8, T1, T2));
        assert_eq!(h.methods, ["GET", "POST"]);
        let v1 = h.paths.iter().find(|p| p.path == "/v1").unwrap();
        assert_eq!((v1.requests, v1.green_routed), (7, Some(true)), "a judged path keeps its verdict");
        assert_eq!(h.paths[0].path, "/v1", "most requested first");
        assert_eq!(h.top_clients[0].ip, "10.0.0.1");
        assert_eq!(h.top_clients[0].requests, 7);
        let minutes: Vec<(u64, u64)> = h.requests_per_minute.iter().map(|m| (m.minute, m.requests)).collect();
        assert_eq!(minutes, [(100, 4), (101, 4)]);
        assert_eq!(h.green.routed, Routed::Partial, "verdicts are judged again from the merged paths");
        assert_eq!(h.green.missing_paths, ["/v2"]);
    }

    #[test]
    fn distinct_hosts_stay_apart_and_sort_by_requests() {
        let merged = merge(
            vec![
                report(T1, vec![host("a.example.com", 1, T1, json!({}))]),
                report(T2, vec![host("b.example.com", 9, T2, json!({}))]),
            ],
            &settings(),
        )
        .unwrap();
        let names: Vec<&str> = merged.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["b.example.com", "a.example.com"]);
    }

    #[test]
    fn another_schema_or_nothing_is_refused() {
        let mut odd = report(T1, vec![]);
        odd.schema = "someone-else/v9".into();
        let err = merge(vec![report(T1, vec![]), odd], &settings()).unwrap_err();
        assert!(err.to_string().contains("report 1") && err.to_string().contains("someone-else/v9"), "{err}");
        assert!(matches!(merge(vec![], &settings()), Err(MergeError::Empty)));
    }
}

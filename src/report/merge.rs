//! Several replicas' reports → one: counts add up exactly, first/last seen take min/max, top-k and
//! per-minute rings merge, verdicts and actions are derived again from the merged facts.

use std::collections::HashMap;
use std::path::PathBuf;

use super::file::{read_streaming, ReportFileError};
use super::judge::{judge, sort_hosts, ReportSettings};
use super::model::*;
use crate::base::host::Overflow;
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
    /// A report file cannot be read.
    #[error(transparent)]
    File(#[from] ReportFileError),
}

/// A merge being made: headers and hosts added as they are read, judged at the end.
#[derive(Default)]
pub struct Merger {
    newest: u64,
    started: Option<u64>,
    replicas: Vec<Replica>,
    totals: Totals,
    green: GreenSummary,
    dns: DnsSummary,
    omitted: Option<Omitted>,
    by_host: HashMap<String, HostReport>,
    reports: usize,
    /// The most hosts one bounded report counted: the merge has at least as many.
    bounded_hosts: Option<u64>,
}

impl Merger {
    /// Adds a report's header (everything but its hosts).
    pub fn add_header(&mut self, r: &Report) {
        self.reports += 1;
        let generated = parse_rfc3339(&r.generated_at).unwrap_or(0);
        self.newest = self.newest.max(generated);
        if let Some(started) = parse_rfc3339(&r.started_at) {
            self.started = Some(self.started.map_or(started, |s| s.min(started)));
        }
        for rep in &r.replicas {
            let generated_at =
                if rep.generated_at.is_empty() { r.generated_at.clone() } else { rep.generated_at.clone() };
            self.replicas.push(Replica { generated_at, ..rep.clone() });
        }
        let (t, o) = (&mut self.totals, &r.totals);
        t.requests += o.requests;
        t.ignored_requests += o.ignored_requests;
        t.unrouted_requests += o.unrouted_requests;
        t.hosts_overflowed_requests += o.hosts_overflowed_requests;
        t.paths_overflowed_requests += o.paths_overflowed_requests;
        t.tls_requests += o.tls_requests;
        t.sni_mismatch_requests += o.sni_mismatch_requests;
        t.default_cert_requests += o.default_cert_requests;
        t.passthrough_connections += o.passthrough_connections;
        self.green.loaded |= r.green.loaded;
        self.green.objects = self.green.objects.max(r.green.objects);
        self.green.incomplete |= r.green.incomplete;
        if self.green.probe.is_none() {
            self.green.probe = r.green.probe.clone();
        }
        // Replicas share their sources: the union, each once.
        for s in &r.green.skipped {
            if !self.green.skipped.contains(s) {
                self.green.skipped.push(s.clone());
            }
        }
        for n in &r.green.not_serving {
            if !self.green.not_serving.contains(n) {
                self.green.not_serving.push(n.clone());
            }
        }
        for c in &r.green.commands {
            if !self.green.commands.iter().any(|m| m.command == c.command) {
                self.green.commands.push(c.clone());
            }
        }
        let dns = &mut self.dns;
        dns.live |= r.dns.live;
        for z in &r.dns.zones {
            if !dns.zones.contains(z) {
                dns.zones.push(z.clone());
            }
        }
        for (mine, theirs) in
            [(&mut dns.blue_targets, &r.dns.blue_targets), (&mut dns.green_targets, &r.dns.green_targets)]
        {
            for t in theirs {
                if !mine.contains(t) {
                    mine.push(t.clone());
                }
            }
        }
        if r.omitted.is_some() {
            self.bounded_hosts = Some(self.bounded_hosts.unwrap_or(0).max(r.totals.hosts));
        }
        if let Some(theirs) = &r.omitted {
            let mine = self.omitted.get_or_insert_with(|| Omitted {
                why: "the merged reports were bounded: their left-out hosts are counted here (a host left out by two of them, twice)".into(),
                ..Omitted::default()
            });
            mine.hosts += theirs.hosts;
            mine.requests += theirs.requests;
            for (a, t) in &theirs.by_action {
                let m = mine.by_action.entry(*a).or_default();
                m.hosts += t.hosts;
                m.requests += t.requests;
            }
        }
    }

    /// Adds one host of a report whose header was added.
    pub fn add_host(&mut self, h: HostReport) {
        match self.by_host.get_mut(&h.host) {
            Some(acc) => merge_host(acc, h),
            None => {
                self.by_host.insert(h.host.clone(), h);
            }
        }
    }

    /// The merged report; verdicts and actions judged as of the newest report.
    pub fn finish(self, settings: &ReportSettings) -> Result<Report, MergeError> {
        if self.reports == 0 {
            return Err(MergeError::Empty);
        }
        let mut totals = self.totals;
        let mut hosts: Vec<HostReport> = self.by_host.into_values().collect();
        totals.hosts = hosts.iter().filter(|h| Overflow::of(&h.host).is_none()).count() as u64;
        // Bounded reports list some of their hosts: the merge knows at least the most one counted.
        totals.hosts = totals.hosts.max(self.bounded_hosts.unwrap_or(0));
        // The reports say whether green was asked; the merge judges them the same way.
        let settings = &ReportSettings { probing: settings.probing || self.green.probe.is_some(), ..*settings };
        for h in hosts.iter_mut() {
            h.paths.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.path.cmp(&b.path)));
            judge(h, self.newest, settings, &self.dns.green_targets);
        }
        sort_hosts(&mut hosts);
        Ok(Report {
            schema: SCHEMA.into(),
            generated_at: rfc3339(self.newest),
            started_at: rfc3339(self.started.unwrap_or(self.newest)),
            replicas: self.replicas,
            totals,
            green: self.green,
            dns: self.dns,
            hosts,
            omitted: self.omitted,
        })
    }
}

/// A merged report of files, and the files left out.
pub struct Merged {
    pub report: Report,
    /// Files superseded by a newer report of the same replica: (file, why).
    pub superseded: Vec<(PathBuf, String)>,
}

/// Merges report files, reading each host by host (a report of any size is not held whole).
/// Several snapshots of one recording — the same replica id and start, as a replica that
/// restores its file keeps — count once: the newest. A replica that started over without its
/// file holds other traffic, so both of its recordings count.
pub fn merge_files(files: &[PathBuf], settings: &ReportSettings) -> Result<Merged, MergeError> {
    // First the headers: which file is the newest of its recording.
    let mut newest: HashMap<(String, String), (usize, u64)> = HashMap::new();
    let mut keys: Vec<Option<(String, String)>> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let header = read_streaming(f, |_| {})?;
        let key = match header.replicas.as_slice() {
            [one] if !one.id.is_empty() => Some((one.id.clone(), header.started_at.clone())),
            _ => None,
        };
        if let Some(key) = &key {
            let at = parse_rfc3339(&header.generated_at).unwrap_or(0);
            let best = newest.entry(key.clone()).or_insert((i, at));
            if at > best.1 {
                *best = (i, at);
            }
        }
        keys.push(key);
    }
    let mut m = Merger::default();
    let mut superseded = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if let Some(key) = &keys[i] {
            let keep = newest.get(key).map(|(k, _)| *k);
            if keep != Some(i) {
                let newer = keep.map(|k| files[k].display().to_string()).unwrap_or_default();
                superseded.push((
                    f.clone(),
                    format!("replica `{}` has a newer report of the same recording: {newer}", key.0),
                ));
                continue;
            }
        }
        let header = read_streaming(f, |h| m.add_host(h))?;
        m.add_header(&header);
    }
    Ok(Merged { report: m.finish(settings)?, superseded })
}

/// A merged report cut the way `/report` cuts one replica's: only hosts with `actions` (empty:
/// any), then at most `limit`, those with something to do first, by requests; the rest counted
/// in `omitted`, which says `why`.
pub fn keep_first(report: &mut Report, actions: &[Action], limit: usize, why: &str) {
    if report.hosts.len() <= limit && actions.is_empty() {
        return;
    }
    report.hosts.sort_by(|a, b| {
        (a.action == Action::None)
            .cmp(&(b.action == Action::None))
            .then(b.requests.cmp(&a.requests))
            .then_with(|| a.host.cmp(&b.host))
    });
    let (mut kept, mut rest): (Vec<HostReport>, Vec<HostReport>) =
        std::mem::take(&mut report.hosts).into_iter().partition(|h| actions.is_empty() || actions.contains(&h.action));
    if kept.len() > limit {
        rest.extend(kept.split_off(limit));
    }
    report.hosts = kept;
    sort_hosts(&mut report.hosts);
    let o = report.omitted.get_or_insert_with(Omitted::default);
    for h in &rest {
        o.add(h.action, h.requests);
    }
    o.why = why.to_owned();
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
    if h.green.probe.as_ref().is_some_and(|n| acc.green.probe.as_ref().is_none_or(|o| n.checked_at > o.checked_at)) {
        acc.green.probe = h.green.probe.take();
    }
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
                if x.unrouted_reason.is_none() {
                    x.unrouted_reason = p.unrouted_reason;
                }
                // Each replica asked green on its own: the latest answer stands.
                if p.probe.as_ref().is_some_and(|n| x.probe.as_ref().is_none_or(|o| n.checked_at > o.checked_at)) {
                    x.probe = p.probe;
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

    #[test]
    fn the_cut_keeps_hosts_with_an_action_first_and_counts_the_rest() {
        let mut r = report(
            T1,
            vec![
                host("a.test", 50, T1, json!({"action": "none"})),
                host("b.test", 5, T1, json!({"action": "switch-dns"})),
                host("c.test", 9, T1, json!({"action": "none"})),
            ],
        );
        let mut only = r.clone();
        keep_first(&mut only, &[Action::SwitchDns], 5, "only switch-dns");
        let names: Vec<&str> = only.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["b.test"], "the action filter comes after the merge, on the merged verdicts");
        assert_eq!(only.omitted.as_ref().map(|o| (o.hosts, o.requests)), Some((2, 59)));
        keep_first(&mut r, &[], 2, "at most 2");
        let names: Vec<&str> = r.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["a.test", "b.test"]);
        let o = r.omitted.as_ref().map(|o| (o.hosts, o.requests, o.why.as_str()));
        assert_eq!(o, Some((1, 9, "at most 2")));
    }

    fn settings() -> ReportSettings {
        ReportSettings::default()
    }

    fn merge(reports: Vec<Report>, settings: &ReportSettings) -> Result<Report, MergeError> {
        let mut m = Merger::default();
        for mut r in reports {
            let hosts = std::mem::take(&mut r.hosts);
            m.add_header(&r);
            hosts.into_iter().for_each(|h| m.add_host(h));
        }
        m.finish(settings)
    }

    /// `reports` written as files in a fresh folder.
    fn files(name: &str, reports: &[Report]) -> Vec<PathBuf> {
        let dir = std::env::temp_dir().join(format!("cutover-merge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let f = dir.join(format!("{i}.json"));
                std::fs::write(&f, crate::report::render::json(r)).unwrap();
                f
            })
            .collect()
    }

    /// A snapshot at `at` of replica `id`'s recording started at T1.
    fn of_replica(id: &str, at: &str, hosts: Vec<HostReport>) -> Report {
        let mut r = report(at, hosts);
        r.started_at = T1.into();
        r.replicas = vec![Replica { id: id.into(), generated_at: at.into(), ..Replica::default() }];
        r
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
        assert_eq!((merged.totals.requests, merged.totals.hosts), (8, 1));
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
        let f = files("schema", &[report(T1, vec![]), odd]);
        let err = merge_files(&f, &settings()).err().unwrap();
        assert!(err.to_string().contains("1.json") && err.to_string().contains("someone-else/v9"), "{err}");
        assert!(matches!(merge(vec![], &settings()), Err(MergeError::Empty)));
    }

    #[test]
    fn snapshots_of_one_recording_count_once() {
        let h = |n| host("api.example.com", n, T1, json!({}));
        let mut started_over = of_replica("pod-b", T2, vec![h(1)]);
        started_over.started_at = T2.into();
        let f = files(
            "replicas",
            &[
                of_replica("pod-a", T1, vec![h(3)]),
                of_replica("pod-a", T2, vec![h(5)]),
                of_replica("pod-b", T1, vec![h(2)]),
                started_over,
            ],
        );
        let merged = merge_files(&f, &settings()).unwrap();
        assert_eq!(
            merged.report.hosts[0].requests, 8,
            "pod-a's newest snapshot (5), pod-b's (2) and what pod-b counted after starting over (1)"
        );
        let ids: Vec<&str> = merged.report.replicas.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["pod-a", "pod-b", "pod-b"]);
        assert_eq!(merged.superseded.len(), 1);
        assert_eq!(merged.superseded[0].0, f[0]);
        assert!(merged.superseded[0].1.contains("pod-a"), "{}", merged.superseded[0].1);
    }
}

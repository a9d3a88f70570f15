//! Ledger snapshot → [`Report`]: green verdicts per host, the action, sorting. Also re-derives
//! verdicts and actions for merged reports, so one rule set serves both.

use super::judge::{judge, sort_hosts, ReportSettings};
use super::model::*;
use crate::base::host::{OTHER_HOST, OTHER_PATH};
use crate::base::time::{rfc3339, unix_ms};
use crate::dns::book::DnsBook;
use crate::dns::targets::Targets;
use crate::record::{HostStats, Ledger};

/// Makes the report of everything recorded so far, with the DNS evidence when it is configured.
pub fn build(ledger: &Ledger, started_at_ms: u64, settings: &ReportSettings, dns: Option<&DnsBook>) -> Report {
    build_at(ledger, started_at_ms, settings, dns, unix_ms())
}

/// [`build`] judged as of `now` (unix ms): `analyze` judges old logs as of their last line.
pub fn build_at(
    ledger: &Ledger,
    started_at_ms: u64,
    settings: &ReportSettings,
    dns: Option<&DnsBook>,
    now: u64,
) -> Report {
    let routes = ledger.routes();
    let loaded = !routes.is_empty();
    let no_targets = Targets::default();
    let targets = dns.map_or(&no_targets, |book| book.targets());
    let mut hosts: Vec<HostReport> =
        ledger.snapshot().into_iter().map(|(host, stats)| host_report(host, &stats, loaded, targets)).collect();
    if let Some(book) = dns {
        for h in hosts.iter_mut().filter(|h| !h.hardcoded) {
            h.dns = book.evidence(&h.host);
        }
    }
    let t = ledger.totals();
    let mut report = Report {
        schema: SCHEMA.into(),
        generated_at: rfc3339(now),
        started_at: rfc3339(started_at_ms),
        replicas: 1,
        totals: Totals {
            requests: t.requests,
            ignored_requests: t.ignored,
            hosts: ledger.host_count() as u64,
            unrouted_requests: t.unrouted,
            hosts_overflowed_requests: t.hosts_overflowed,
            paths_overflowed_requests: t.paths_overflowed,
            tls_requests: t.tls_requests,
            sni_mismatch_requests: t.sni_mismatch,
            default_cert_requests: t.default_cert,
            passthrough_connections: t.passthrough_connections,
        },
        green: GreenSummary { loaded, objects: routes.objects() as u64 },
        dns: dns.map(summary).unwrap_or_default(),
        hosts: Vec::new(),
    };
    for h in hosts.iter_mut() {
        judge(h, now, settings, &report.dns.green_targets);
    }
    sort_hosts(&mut hosts);
    report.hosts = hosts;
    report
}

fn summary(book: &DnsBook) -> DnsSummary {
    let list = |l: &[crate::dns::targets::Target]| l.iter().map(|t| t.to_string()).collect();
    DnsSummary {
        live: book.live(),
        zones: book.route53().zones.iter().map(|z| ZoneSummary { id: z.id.clone(), name: z.name.clone() }).collect(),
        blue_targets: list(&book.targets().blue),
        green_targets: list(&book.targets().green),
    }
}

fn host_report(host: String, s: &HostStats, loaded: bool, targets: &Targets) -> HostReport {
    let mut paths: Vec<PathReport> = s
        .paths
        .iter()
        .map(|(template, p)| {
            let judged = loaded && template.as_str() != OTHER_PATH && host != OTHER_HOST;
            PathReport {
                path: template.to_string(),
                requests: p.counts.requests,
                first_seen: rfc3339(p.counts.first_seen_ms),
                last_seen: rfc3339(p.counts.last_seen_ms),
                green_routed: judged.then_some(p.green.is_some()),
                matched_route: if judged { p.green.as_ref().map(|r| r.to_string()) } else { None },
                methods: p.counts.methods.names(),
                status: p.counts.status,
                bytes_in: p.counts.bytes_in,
                bytes_out: p.counts.bytes_out,
            }
        })
        .collect();
    paths.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.path.cmp(&b.path)));
    let after = s.after_move.as_deref().cloned().unwrap_or_default();
    let mut late_clients: Vec<LateClient> = after
        .clients
        .iter()
        .map(|c| LateClient {
            ip: c.ip.to_string(),
            user_agent: c.agent.to_string(),
            requests: c.requests,
            last_seen: rfc3339(c.last_seen_ms),
            connection_age_s: c.conn_age_ms as f64 / 1000.0,
            opened_before_move: c.opened_before_move,
        })
        .collect();
    late_clients.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.ip.cmp(&b.ip)));
    let hardcoded = targets.addressed_directly(&host, s.ip_literal);
    let p = &s.passthrough;
    let passthrough = (p.connections > 0).then(|| PassthroughReport {
        connections: p.connections,
        bytes_in: p.bytes_in,
        bytes_out: p.bytes_out,
        total_duration_s: p.duration_ms as f64 / 1000.0,
    });
    HostReport {
        requests: s.counts.requests,
        first_seen: rfc3339(s.counts.first_seen_ms),
        last_seen: rfc3339(s.counts.last_seen_ms),
        hardcoded,
        green: GreenVerdict { routed: Routed::Unknown, missing_paths: Vec::new() },
        dns: Default::default(),
        action: Action::Unknown,
        urgent: false,
        reason: String::new(),
        dns_change_blocked: None,
        methods: s.counts.methods.names(),
        status: s.counts.status,
        bytes_in: s.counts.bytes_in,
        bytes_out: s.counts.bytes_out,
        oldest_connection_age_s: s.oldest_conn_age_ms as f64 / 1000.0,
        tls_requests: s.tls.requests,
        sni_mismatch_requests: s.tls.sni_mismatch,
        default_cert_requests: s.tls.default_cert,
        passthrough,
        requests_per_minute: s.minutes.iter().map(|(minute, requests)| MinuteCount { minute, requests }).collect(),
        paths,
        top_clients: s
            .clients
            .top()
            .into_iter()
            .map(|(ip, requests)| ClientCount { ip: ip.to_string(), requests })
            .collect(),
        top_user_agents: s
            .agents
            .top()
            .into_iter()
            .map(|(ua, requests)| AgentCount { user_agent: ua.text.to_string(), requests })
            .collect(),
        requests_after_move: after.requests,
        opened_before_move_requests: after.on_old_connections,
        late_clients,
        host,
    }
}

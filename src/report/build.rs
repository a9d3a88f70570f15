//! Ledger + DNS evidence → [`HostReport`]s, judged: host by host as the ledger is read, so a
//! report of any size is made without a second copy of the ledger (`report::stream` writes them
//! out; [`Sources::build_at`] collects a whole report in memory for small ledgers and tests).

use super::judge::{judge, sort_hosts, ReportSettings};
use super::model::*;
use crate::base::host::{Overflow, OTHER_PATH};
use crate::base::time::rfc3339;
use crate::dns::book::DnsBook;
use crate::dns::evidence::DnsEvidence;
use crate::dns::targets::Targets;
use crate::dns::verdict::{DnsSource, DnsVerdict};
use crate::probe::book::{PathProbe, ProbeBook};
use crate::probe::task::HOST_PATH;
use crate::record::{HostStats, Ledger};
use crate::routes::RouteTable;

/// What a report is made of.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub ledger: &'a Ledger,
    /// The DNS evidence, when configured.
    pub dns: Option<&'a DnsBook>,
    /// When recording started (unix ms; a restored report's own start).
    pub started_at_ms: u64,
    /// `--replica-id`.
    pub replica_id: &'a str,
    pub settings: ReportSettings,
    /// Green's answers (`--green-probe`).
    pub probe: Option<&'a ProbeBook>,
}

/// What judging every host needs, gathered once per report.
struct Judging<'a> {
    loaded: bool,
    routes: std::sync::Arc<RouteTable>,
    probe: Option<&'a ProbeBook>,
    targets: &'a Targets,
    dns: Option<&'a DnsBook>,
    now: u64,
    settings: ReportSettings,
    green_targets: Vec<String>,
}

impl<'a> Sources<'a> {
    /// Everything but the hosts, as of `now`; read after the hosts, its totals hold what reading
    /// them folded.
    pub fn header(&self, now: u64) -> Report {
        let routes = self.ledger.routes();
        let t = self.ledger.totals();
        Report {
            schema: SCHEMA.into(),
            generated_at: rfc3339(now),
            started_at: rfc3339(self.started_at_ms),
            replicas: vec![Replica {
                id: self.replica_id.to_owned(),
                generated_at: rfc3339(now),
                ..Replica::default()
            }],
            totals: Totals {
                requests: t.requests,
                ignored_requests: t.ignored,
                hosts: self.ledger.host_count() as u64,
                unrouted_requests: t.unrouted,
                hosts_overflowed_requests: t.hosts_overflowed,
                paths_overflowed_requests: t.paths_overflowed,
                tls_requests: t.tls_requests,
                sni_mismatch_requests: t.sni_mismatch,
                default_cert_requests: t.default_cert,
                passthrough_connections: t.passthrough_connections,
            },
            green: GreenSummary { probe: self.probe.map(|b| b.url.clone()), ..green_summary(&routes) },
            dns: self.dns.map(summary).unwrap_or_default(),
            hosts: Vec::new(),
            omitted: None,
        }
    }

    fn judging(&self, now: u64) -> Judging<'a> {
        let dns = self.dns;
        let green_targets = dns.map(|b| b.targets().green.iter().map(|t| t.to_string()).collect()).unwrap_or_default();
        let routes = self.ledger.routes();
        Judging {
            loaded: routes.is_loaded(),
            routes,
            probe: self.probe,
            targets: dns.map_or(&NO_TARGETS, |b| b.targets()),
            dns,
            now,
            settings: self.settings,
            green_targets,
        }
    }

    /// Calls `f` with every host's report, judged as of `now`, in no particular order.
    pub fn each_host(&self, now: u64, mut f: impl FnMut(HostReport)) {
        let j = self.judging(now);
        self.ledger.for_each_host(|name, stats| f(j.host(name, stats)));
    }

    /// One host's report (`None` when the ledger has no such host).
    pub fn host(&self, name: &str, now: u64) -> Option<HostReport> {
        let stats = self.ledger.host(name)?;
        Some(self.judging(now).host(name, &stats))
    }

    /// The whole report in memory, hosts sorted: for small ledgers (analyze, the demo) and tests.
    pub fn build_at(&self, now: u64) -> Report {
        let mut hosts = Vec::new();
        self.each_host(now, |h| hosts.push(h));
        sort_hosts(&mut hosts);
        let mut report = self.header(now);
        report.hosts = hosts;
        report
    }
}

static NO_TARGETS: Targets = Targets { blue: Vec::new(), green: Vec::new() };

impl Judging<'_> {
    fn host(&self, name: &str, stats: &HostStats) -> HostReport {
        let mut h = host_report(name.to_owned(), stats, self.loaded, self.targets);
        if self.routes.not_serving().next().is_some() {
            for p in h.paths.iter_mut().filter(|p| p.green_routed == Some(false)) {
                let asked = p.example.as_deref().unwrap_or(&p.path);
                p.unrouted_reason = self.routes.why_unrouted(&h.host, asked).map(str::to_owned);
            }
        }
        match Overflow::of(name) {
            // What the bucket's hosts had in common: the zones did not hold them.
            Some(Overflow::OutsideZones) => {
                h.dns = DnsEvidence {
                    verdict: DnsVerdict::External,
                    source: Some(DnsSource::Route53),
                    ..DnsEvidence::default()
                }
            }
            // Judged on the way in: green's routes did not serve them.
            Some(Overflow::Unrouted) => h.paths.iter_mut().for_each(|p| p.green_routed = Some(false)),
            _ => {
                if let (Some(book), false) = (self.dns, h.hardcoded) {
                    h.dns = book.evidence(&h.host);
                }
            }
        }
        if let Some(book) = self.probe {
            add_probes(&mut h, book);
        }
        judge(&mut h, self.now, &self.settings, &self.green_targets);
        h
    }
}

/// Each path's last probe; a host without visible paths gets its host-level probe.
fn add_probes(h: &mut HostReport, book: &ProbeBook) {
    let Some(probes) = book.host(&h.host) else { return };
    let report = |p: &PathProbe| PathProbeReport {
        method: p.method.to_owned(),
        path: p.path.to_string(),
        status: p.status,
        verdict: p.verdict,
        detail: p.detail.to_string(),
        checked_at: rfc3339(p.checked_at_ms),
    };
    if h.paths.is_empty() {
        if let Some(p) = probes.get(HOST_PATH) {
            h.green.probe = Some(HostProbe::of(std::iter::once(&report(p)), 0));
        }
        return;
    }
    for path in &mut h.paths {
        path.probe = probes.get(path.path.as_str()).map(report);
    }
}

fn green_summary(routes: &RouteTable) -> GreenSummary {
    GreenSummary {
        loaded: routes.is_loaded(),
        objects: routes.objects() as u64,
        incomplete: routes.incomplete(),
        skipped: routes
            .skipped()
            .iter()
            .map(|s| SkippedSummary {
                path: s.path.display().to_string(),
                kind: s.kind.as_str().to_owned(),
                name: s.name.clone(),
                render: s.render.clone(),
            })
            .collect(),
        not_serving: routes
            .not_serving()
            .map(|(r, why)| NotServing { object: r.to_string(), reason: why.to_owned() })
            .collect(),
        commands: routes
            .commands()
            .iter()
            .map(|c| CommandSummary {
                command: c.command.clone(),
                objects: c.objects as u64,
                loaded_at: c.loaded_at_ms.map(rfc3339),
                error: c.error.clone(),
            })
            .collect(),
        probe: None,
    }
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
            let judged = loaded && template.as_str() != OTHER_PATH && Overflow::of(&host).is_none();
            PathReport {
                path: template.to_string(),
                example: (*p.example != **template).then(|| p.example.to_string()),
                requests: p.counts.requests,
                first_seen: rfc3339(p.counts.first_seen_ms),
                last_seen: rfc3339(p.counts.last_seen_ms),
                green_routed: judged.then_some(p.green.is_some()),
                matched_route: if judged { p.green.as_ref().map(|r| r.to_string()) } else { None },
                unrouted_reason: None,
                probe: None,
                methods: p.counts.methods.names(),
                status: p.counts.status,
                bytes_in: p.counts.bytes_in,
                bytes_out: p.counts.bytes_out,
            }
        })
        .collect();
    paths.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.path.cmp(&b.path)));
    let after = s.after_move.clone().unwrap_or_default();
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
        green: GreenVerdict { routed: Routed::Unknown, missing_paths: Vec::new(), probe: None },
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

//! A host's verdicts and action from its facts: green's verdict from its paths', then the rules
//! of [`super::classify`], then why no Route53 change can be written. The same for a fresh report
//! and a merged one, so one rule set serves both.

use std::time::Duration;

use super::classify::{classify, Evidence, ProbeEvidence};
use super::model::*;
use crate::base::host::{Overflow, OTHER_PATH};
use crate::base::time::parse_rfc3339;

/// How a report judges hosts.
#[derive(Debug, Clone, Copy)]
pub struct ReportSettings {
    /// After this much silence a host's action is `none`.
    pub quiet_period: Duration,
    /// Green is asked (`--green-probe`): `switch-dns` needs every seen path served when asked.
    pub probing: bool,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self { quiet_period: Duration::from_secs(15 * 60), probing: false }
    }
}

/// Derives `green` from the paths' verdicts and then the action (also used after a merge).
pub fn judge(h: &mut HostReport, now_ms: u64, settings: &ReportSettings, green_targets: &[String]) {
    let judged: Vec<&PathReport> = h.paths.iter().filter(|p| p.green_routed.is_some()).collect();
    let missing: Vec<String> =
        judged.iter().filter(|p| p.green_routed == Some(false)).map(|p| p.path.clone()).collect();
    h.green.routed = if judged.is_empty() {
        Routed::Unknown
    } else if missing.is_empty() {
        Routed::All
    } else if missing.len() == judged.len() {
        Routed::None
    } else {
        Routed::Partial
    };
    h.green.missing_paths = missing;
    let mut unrouted_reasons: Vec<&str> = Vec::new();
    for reason in h.paths.iter().filter(|p| p.green_routed == Some(false)).filter_map(|p| p.unrouted_reason.as_deref())
    {
        if !unrouted_reasons.contains(&reason) {
            unrouted_reasons.push(reason);
        }
    }
    let probing = settings.probing && crate::probe::asks_about(&h.host);
    if probing && !h.paths.is_empty() {
        let unprobed = h.paths.iter().filter(|p| p.probe.is_none() && p.path != OTHER_PATH).count() as u64;
        h.green.probe = Some(HostProbe::of(h.paths.iter().filter_map(|p| p.probe.as_ref()), unprobed));
    }
    let details = |v: ProbeVerdict| -> Vec<&str> {
        let of_paths =
            h.paths.iter().filter_map(|p| p.probe.as_ref()).filter(|p| p.verdict == v).map(|p| p.detail.as_str());
        let of_host = h.paths.is_empty().then_some(h.green.probe.as_ref()).flatten();
        let of_host = of_host.filter(|p| p.verdict == Some(v)).and_then(|p| p.detail.as_deref());
        of_paths.chain(of_host).collect()
    };
    let (unrouted, failing) = (details(ProbeVerdict::Unrouted), details(ProbeVerdict::Failing));
    let probe = probing.then(|| {
        let hp = h.green.probe.as_ref();
        ProbeEvidence {
            unrouted: &unrouted,
            failing: &failing,
            served: hp.map_or(0, |p| p.served as usize),
            unprobed: hp.map_or(1, |p| p.unprobed as usize),
        }
    });
    let last_seen_ms = parse_rfc3339(&h.last_seen).unwrap_or(now_ms);
    let quiet_for_ms = now_ms.saturating_sub(last_seen_ms);
    let (action, urgent, reason) = classify(&Evidence {
        host: &h.host,
        hardcoded: h.hardcoded,
        routed: h.green.routed,
        missing_paths: &h.green.missing_paths,
        unrouted_reasons: &unrouted_reasons,
        paths: h.paths.len(),
        dns: h.dns.verdict,
        quiet_for_ms,
        quiet_period_ms: settings.quiet_period.as_millis() as u64,
        now_ms,
        last_seen_ms,
        window_end_ms: h.dns.window_ends_at.as_deref().and_then(parse_rfc3339),
        late_clients: &h.late_clients,
        probe,
    });
    h.action = action;
    h.urgent = urgent;
    h.reason = match Overflow::of(&h.host) {
        Some(_) => {
            format!("hosts past the ledger's bounds (--max-hosts, --max-ledger-memory), counted together: {reason}")
        }
        None => reason,
    };
    h.dns_change_blocked = if action == Action::SwitchDns { super::changes::check(h, green_targets) } else { None };
    if h.sni_mismatch_requests > 0 {
        h.reason.push_str(&format!(
            "; Host differs from the TLS SNI on {} of {} TLS requests",
            h.sni_mismatch_requests, h.tls_requests
        ));
    }
    if let Some(p) = &h.passthrough {
        h.reason.push_str(&format!(
            "; passthrough: {} connection(s), paths not visible (TLS not terminated)",
            p.connections
        ));
    }
}

/// Most requests first; ties by name so reports are stable.
pub fn sort_hosts(hosts: &mut [HostReport]) {
    hosts.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.host.cmp(&b.host)));
}

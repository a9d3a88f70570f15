//! A host's verdicts and action from its facts: green's verdict from its paths', then the rules
//! of [`super::classify`], then why no Route53 change can be written. The same for a fresh report
//! and a merged one, so one rule set serves both.

use std::time::Duration;

use super::classify::{classify, Evidence};
use super::model::*;
use crate::base::host::Overflow;
use crate::base::time::parse_rfc3339;

/// How a report judges hosts.
#[derive(Debug, Clone, Copy)]
pub struct ReportSettings {
    /// After this much silence a host's action is `none`.
    pub quiet_period: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self { quiet_period: Duration::from_secs(15 * 60) }
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

//! Evidence → action, as docs/REPORT.md defines it: the first rule that applies
//! wins. Pure: the report builder and the merge call it with what they know.

use super::model::{Action, LateClient, Routed};
use crate::base::host::is_placeholder;
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::dns::verdict::DnsVerdict;

/// What is known about one host.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// Normalized host.
    pub host: &'a str,
    /// Clients address blue directly: an IP literal, a load balancer's name, or no usable Host
    /// (`Targets::addressed_directly`).
    pub hardcoded: bool,
    /// Green's verdict.
    pub routed: Routed,
    /// Path templates green lacks.
    pub missing_paths: &'a [String],
    /// Why objects that name some of those paths do not serve them (distinct reasons).
    pub unrouted_reasons: &'a [&'a str],
    /// Paths seen in all.
    pub paths: usize,
    /// DNS verdict (`unknown` until DNS evidence is configured).
    pub dns: DnsVerdict,
    /// Milliseconds since the host's last request.
    pub quiet_for_ms: u64,
    /// After this much silence a host counts as stopped.
    pub quiet_period_ms: u64,
    /// The report's "now", unix ms.
    pub now_ms: u64,
    /// The host's last request, unix ms.
    pub last_seen_ms: u64,
    /// DNS verdict `green`: when the TTL window closes (first green-only observation + largest TTL
    /// + `--ttl-grace`).
    pub window_end_ms: Option<u64>,
    /// Clients seen after the move.
    pub late_clients: &'a [LateClient],
    /// What green answered when asked (`None`: not probing).
    pub probe: Option<ProbeEvidence<'a>>,
}

/// Green's answers to the probe for one host.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeEvidence<'a> {
    /// Details of the paths green answered with its default answer.
    pub unrouted: &'a [&'a str],
    /// Details of the paths green fails.
    pub failing: &'a [&'a str],
    /// Paths (or, without visible paths, the host) answered as served.
    pub served: usize,
    /// Paths not asked yet.
    pub unprobed: usize,
}

/// Up to three details and how many more.
fn listed(details: &[&str]) -> String {
    let mut s = details.iter().take(3).copied().collect::<Vec<_>>().join("; ");
    if details.len() > 3 {
        s.push_str(&format!(" and {} more", details.len() - 3));
    }
    s
}

/// The action, whether it is urgent, and why.
pub fn classify(e: &Evidence<'_>) -> (Action, bool, String) {
    if e.hardcoded {
        let why = if is_placeholder(e.host) {
            "requests arrive without a usable Host header".to_owned()
        } else {
            format!(
                "clients address `{}` directly (an IP or a load balancer name): DNS changes will never move them",
                e.host
            )
        };
        return (Action::FixHardcoded, false, why);
    }
    let probe = e.probe.unwrap_or_default();
    let by_manifests = matches!(e.routed, Routed::Partial | Routed::None);
    if by_manifests || !probe.unrouted.is_empty() {
        let urgent = e.dns.reaches_green();
        let mut why = String::new();
        if by_manifests {
            let shown: Vec<&str> = e.missing_paths.iter().take(5).map(String::as_str).collect();
            let more = e.missing_paths.len().saturating_sub(shown.len());
            why = format!(
                "green does not route {} of {} seen paths: {}",
                e.missing_paths.len(),
                e.paths,
                shown.join(", ")
            );
            if more > 0 {
                why.push_str(&format!(" and {more} more"));
            }
        }
        if !probe.unrouted.is_empty() {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str(&format!(
                "asked, green has no route for {}: {}",
                probe.unrouted.len(),
                listed(probe.unrouted)
            ));
        }
        for reason in e.unrouted_reasons.iter().take(2) {
            why.push_str("; ");
            why.push_str(reason);
        }
        if e.unrouted_reasons.len() > 2 {
            why.push_str(&format!(" (and {} more objects green would not serve)", e.unrouted_reasons.len() - 2));
        }
        if urgent {
            why.push_str("; DNS already sends clients to green, which answers 404 for them now");
        }
        return (Action::AddGreenRoute, urgent, why);
    }
    if !probe.failing.is_empty() {
        let urgent = e.dns.reaches_green();
        let mut why = format!("green has the route but fails it when asked: {}", listed(probe.failing));
        if urgent {
            why.push_str("; DNS already sends clients to green");
        }
        return (Action::FixGreen, urgent, why);
    }
    match e.dns {
        // Asked, green must have answered every seen path (or the host) as served.
        v if v.reaches_blue() && e.probe.is_some() => {
            return if probe.unprobed == 0 && probe.served > 0 {
                (
                    Action::SwitchDns,
                    false,
                    format!("green serves every seen path when asked ({}); DNS points at {}", probe.served, e.dns),
                )
            } else {
                let why = format!(
                    "DNS points at {}; waiting for green's probe: {} path(s) not asked yet",
                    e.dns,
                    probe.unprobed.max(1)
                );
                (Action::Unknown, false, why)
            };
        }
        v if v.reaches_blue() && e.routed == Routed::All => {
            return (Action::SwitchDns, false, format!("green serves every seen path; DNS points at {}", e.dns))
        }
        v if v.reaches_blue() => {
            // Moving DNS needs proof that green serves the traffic: without a route table, or
            // without a visible path (TLS passthrough), there is none.
            let why = if e.paths == 0 {
                format!("DNS points at {}, but no path is visible (TLS passthrough): check green serves this host before switching DNS", e.dns)
            } else {
                format!("DNS points at {}, but green's routes were not checked (no --green-routes): load them before switching DNS", e.dns)
            };
            return (Action::Unknown, false, why);
        }
        v if v.is_elsewhere() => {
            return (Action::InvestigateDns, false, format!("DNS verdict `{}`: the host is not where expected", e.dns))
        }
        _ => {}
    }
    if e.quiet_for_ms >= e.quiet_period_ms {
        return (Action::None, false, format!("no request for {} s", e.quiet_for_ms / 1000));
    }
    if e.dns == DnsVerdict::Green {
        return after_move(e);
    }
    let why = match e.routed {
        Routed::Unknown => "no green route table and no DNS evidence configured".to_owned(),
        _ => "green serves every seen path; no DNS evidence configured to tell whether DNS still points at blue"
            .to_owned(),
    };
    (Action::Unknown, false, why)
}

/// DNS points only at green: within the TTL window traffic is propagating; past it, the clients
/// that still come cache DNS or keep old connections.
fn after_move(e: &Evidence<'_>) -> (Action, bool, String) {
    let Some(end) = e.window_end_ms else {
        return (Action::WaitTtl, false, "DNS points only at green; waiting for cached answers to expire".into());
    };
    if e.last_seen_ms <= end {
        let left = end.saturating_sub(e.now_ms) / 1000;
        let why = if left > 0 {
            format!(
                "DNS points only at green; requests are within the TTL window, which closes at {} ({left} s left)",
                rfc3339(end)
            )
        } else {
            format!("DNS points only at green; traffic stopped within the TTL window (closed at {})", rfc3339(end))
        };
        return (Action::WaitTtl, false, why);
    }
    let late: Vec<&LateClient> =
        e.late_clients.iter().filter(|c| parse_rfc3339(&c.last_seen).is_some_and(|at| at > end)).collect();
    let listed: Vec<String> = late
        .iter()
        .take(5)
        .map(|c| {
            let how = if c.opened_before_move {
                "connection opened before the move"
            } else {
                "resolved blue after the move: cached DNS"
            };
            let agent = if c.user_agent.is_empty() { "no user agent" } else { c.user_agent.as_str() };
            format!("{} ({agent}; {how}; connection {:.0} s old)", c.ip, c.connection_age_s)
        })
        .collect();
    let mut why =
        format!("DNS points only at green, yet requests still arrive after the TTL window closed at {}", rfc3339(end));
    if !listed.is_empty() {
        why.push_str(&format!(": {} client(s): {}", late.len(), listed.join(", ")));
        if late.len() > listed.len() {
            why.push_str(&format!(" and {} more", late.len() - listed.len()));
        }
    }
    (Action::FixClients, false, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(routed: Routed, missing: &[String], dns: DnsVerdict) -> Evidence<'_> {
        Evidence {
            host: "api.example.com",
            hardcoded: false,
            routed,
            missing_paths: missing,
            unrouted_reasons: &[],
            paths: 3,
            dns,
            quiet_for_ms: 0,
            quiet_period_ms: 900_000,
            now_ms: 100_000,
            last_seen_ms: 100_000,
            window_end_ms: None,
            late_clients: &[],
            probe: None,
        }
    }

    fn late(last_seen_ms: u64) -> LateClient {
        LateClient {
            ip: "10.9.8.7".into(),
            user_agent: "Java/1.8.0_202".into(),
            requests: 40,
            last_seen: rfc3339(last_seen_ms),
            connection_age_s: 3600.0,
            opened_before_move: true,
        }
    }

    #[test]
    fn the_first_rule_that_applies_wins() {
        let missing = vec!["/v1/pay".to_owned()];
        let late = [late(200_000)];
        type Case<'a> = (&'a str, Evidence<'a>, Action, bool, &'a str);
        let cases: Vec<Case> = vec![
            (
                "hardcoded beats a missing route",
                Evidence { hardcoded: true, ..ev(Routed::Partial, &missing, DnsVerdict::Unknown) },
                Action::FixHardcoded,
                false,
                "directly",
            ),
            (
                "a missing path, DNS unknown",
                ev(Routed::Partial, &missing, DnsVerdict::Unknown),
                Action::AddGreenRoute,
                false,
                "/v1/pay",
            ),
            (
                "a route green's cluster would not serve says why",
                Evidence {
                    unrouted_reasons: &["Ingress shop/pay uses networking.k8s.io/v1beta1, removed in Kubernetes 1.22: it will not apply on green (use networking.k8s.io/v1)"],
                    ..ev(Routed::Partial, &missing, DnsVerdict::Blue)
                },
                Action::AddGreenRoute,
                false,
                "/v1/pay; Ingress shop/pay uses networking.k8s.io/v1beta1, removed in Kubernetes 1.22",
            ),
            (
                "asked, green answers with its default backend: add-green-route though the manifests route it",
                Evidence {
                    probe: Some(ProbeEvidence {
                        unrouted: &["GET /v1/pay/8 → 404 like green's default backend"],
                        served: 1,
                        ..ProbeEvidence::default()
                    }),
                    ..ev(Routed::All, &[], DnsVerdict::Blue)
                },
                Action::AddGreenRoute,
                false,
                "asked, green has no route for 1: GET /v1/pay/8 → 404 like green's default backend",
            ),
            (
                "green fails a path when asked: fix-green",
                Evidence {
                    probe: Some(ProbeEvidence { failing: &["GET /v1/pay/8 → 503"], served: 2, ..ProbeEvidence::default() }),
                    ..ev(Routed::All, &[], DnsVerdict::Blue)
                },
                Action::FixGreen,
                false,
                "green has the route but fails it when asked: GET /v1/pay/8 → 503",
            ),
            (
                "green fails while DNS already sends clients there: urgent",
                Evidence {
                    probe: Some(ProbeEvidence { failing: &["certificate does not cover api.example.com"], ..ProbeEvidence::default() }),
                    ..ev(Routed::All, &[], DnsVerdict::Split)
                },
                Action::FixGreen,
                true,
                "certificate does not cover api.example.com; DNS already sends clients to green",
            ),
            (
                "asked, every path served: switch-dns with no route table at all",
                Evidence { probe: Some(ProbeEvidence { served: 3, ..ProbeEvidence::default() }), ..ev(Routed::Unknown, &[], DnsVerdict::Blue) },
                Action::SwitchDns,
                false,
                "green serves every seen path when asked (3)",
            ),
            (
                "probing, a path not asked yet: switch-dns waits",
                Evidence {
                    probe: Some(ProbeEvidence { served: 2, unprobed: 1, ..ProbeEvidence::default() }),
                    ..ev(Routed::All, &[], DnsVerdict::Blue)
                },
                Action::Unknown,
                false,
                "waiting for green's probe: 1 path(s) not asked yet",
            ),
            (
                "no route while DNS sends clients to green is urgent",
                ev(Routed::None, &missing, DnsVerdict::Green),
                Action::AddGreenRoute,
                true,
                "answers 404",
            ),
            (
                "green serves all, DNS blue",
                ev(Routed::All, &[], DnsVerdict::Blue),
                Action::SwitchDns,
                false,
                "points at blue",
            ),
            ("green serves all, DNS split", ev(Routed::All, &[], DnsVerdict::Split), Action::SwitchDns, false, "split"),
            (
                "DNS does not resolve",
                ev(Routed::All, &[], DnsVerdict::Unresolvable),
                Action::InvestigateDns,
                false,
                "unresolvable",
            ),
            (
                "DNS points elsewhere",
                ev(Routed::All, &[], DnsVerdict::UnknownTarget),
                Action::InvestigateDns,
                false,
                "",
            ),
            (
                "outside the imported zones",
                ev(Routed::All, &[], DnsVerdict::External),
                Action::InvestigateDns,
                false,
                "",
            ),
            ("no DNS evidence", ev(Routed::All, &[], DnsVerdict::Unknown), Action::Unknown, false, "no DNS evidence"),
            (
                "no evidence at all",
                ev(Routed::Unknown, &[], DnsVerdict::Unknown),
                Action::Unknown,
                false,
                "no green route table",
            ),
            (
                "no switch-dns without proof that green serves the host",
                ev(Routed::Unknown, &[], DnsVerdict::Blue),
                Action::Unknown,
                false,
                "not checked",
            ),
            (
                "passthrough: no path visible",
                Evidence { paths: 0, ..ev(Routed::Unknown, &[], DnsVerdict::Blue) },
                Action::Unknown,
                false,
                "passthrough",
            ),
            (
                "moved, within the TTL window",
                Evidence { window_end_ms: Some(150_000), ..ev(Routed::All, &[], DnsVerdict::Green) },
                Action::WaitTtl,
                false,
                "TTL window",
            ),
            ("moved, no window known yet", ev(Routed::All, &[], DnsVerdict::Green), Action::WaitTtl, false, "waiting"),
            (
                "moved, traffic past the window: the late clients are named",
                Evidence {
                    window_end_ms: Some(150_000),
                    last_seen_ms: 200_000,
                    late_clients: &late,
                    ..ev(Routed::All, &[], DnsVerdict::Green)
                },
                Action::FixClients,
                false,
                "10.9.8.7 (Java/1.8.0_202; connection opened before the move",
            ),
            (
                "stopped arriving",
                Evidence { quiet_for_ms: 1_000_000, ..ev(Routed::All, &[], DnsVerdict::Unknown) },
                Action::None,
                false,
                "no request for 1000 s",
            ),
            (
                "a placeholder host is hardcoded with its own reason",
                Evidence { host: "(none)", hardcoded: true, ..ev(Routed::Unknown, &[], DnsVerdict::Unknown) },
                Action::FixHardcoded,
                false,
                "without a usable Host",
            ),
        ];
        let mut failures = Vec::new();
        for (name, evidence, action, urgent, why_has) in cases {
            let (got, got_urgent, why) = classify(&evidence);
            if (got, got_urgent) != (action, urgent) || !why.contains(why_has) {
                failures.push(format!(
                    "{name}: got {got} urgent={got_urgent} `{why}`, want {action} urgent={urgent} with `{why_has}`"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

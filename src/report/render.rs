//! A report as JSON, CSV (one row per host and path, for spreadsheets) and Markdown (what an
//! operator pastes into the change ticket: hosts grouped by action, biggest first).

use std::fmt::Write;

use super::model::{Action, HostReport, Report};
use crate::base::names::named_enum;

named_enum! {
    /// Output formats of a report.
    pub enum Format {
        /// The report itself (schema v1).
        Json = "json",
        /// One row per host and path.
        Csv = "csv",
        /// Hosts grouped by action.
        Markdown = "markdown",
    }
}

/// Renders in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => json(report),
        Format::Csv => csv(report),
        Format::Markdown => markdown(report),
    }
}

/// Pretty JSON with a final newline.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

const CSV_HEADER: &str = "host,action,urgent,host_requests,dns,green_routed,path,path_requests,path_green_routed,matched_route,first_seen,last_seen,top_client";

/// One row per host and path (a host without paths gets one row with an empty path).
pub fn csv(report: &Report) -> String {
    let mut out = String::with_capacity(256 * (report.hosts.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    for h in &report.hosts {
        let top_client = h.top_clients.first().map(|c| c.ip.as_str()).unwrap_or("");
        let host_cols = [
            h.host.clone(),
            h.action.as_str().to_owned(),
            h.urgent.to_string(),
            h.requests.to_string(),
            h.dns.verdict.to_string(),
            h.green.routed.to_string(),
        ];
        if h.paths.is_empty() {
            let row: Vec<String> = host_cols
                .iter()
                .cloned()
                .chain([
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    h.first_seen.clone(),
                    h.last_seen.clone(),
                    top_client.into(),
                ])
                .collect();
            push_row(&mut out, &row);
        }
        for p in &h.paths {
            let row: Vec<String> = host_cols
                .iter()
                .cloned()
                .chain([
                    p.path.clone(),
                    p.requests.to_string(),
                    p.green_routed.map(|r| r.to_string()).unwrap_or_default(),
                    p.matched_route.clone().unwrap_or_default(),
                    p.first_seen.clone(),
                    p.last_seen.clone(),
                    top_client.into(),
                ])
                .collect();
            push_row(&mut out, &row);
        }
    }
    out
}

fn push_row(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // RFC 4180 quoting, and a leading quote against spreadsheet formula injection.
        let risky = cell.starts_with(['=', '+', '-', '@']);
        if risky || cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            if risky {
                out.push('\'');
            }
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

/// Hosts grouped by action, biggest first, with what to do for each.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.totals;
    let _ = writeln!(out, "# Cutover reconciliation report\n");
    let _ = writeln!(
        out,
        "Generated {} · recording since {} · {} replica(s)\n",
        report.generated_at, report.started_at, report.replicas
    );
    let _ = writeln!(
        out,
        "**{} requests** to **{} hosts** still arrived at blue ({} not routable on green; {} health checks ignored).",
        t.requests, t.hosts, t.unrouted_requests, t.ignored_requests
    );
    if t.tls_requests > 0 {
        let _ = writeln!(
            out,
            "\n{} requests over TLS: {} with a Host other than the TLS SNI, {} served the default certificate (no SNI or an unknown name).",
            t.tls_requests, t.sni_mismatch_requests, t.default_cert_requests
        );
    }
    if t.passthrough_connections > 0 {
        let _ = writeln!(
            out,
            "\n{} passthrough connections (TLS not terminated): hosts come from the SNI, paths are not visible.",
            t.passthrough_connections
        );
    }
    if !report.green.loaded {
        let _ = writeln!(out, "\nNo green route table was loaded (`--green-routes`): green verdicts are `unknown`.");
    }
    if t.hosts_overflowed_requests > 0 || t.paths_overflowed_requests > 0 {
        let _ = writeln!(
            out,
            "\nBounds reached: {} requests counted under `(other)` hosts, {} under `{{other}}` paths.",
            t.hosts_overflowed_requests, t.paths_overflowed_requests
        );
    }
    for &action in Action::ALL {
        let hosts: Vec<&HostReport> = report.hosts.iter().filter(|h| h.action == action).collect();
        if hosts.is_empty() {
            continue;
        }
        let requests: u64 = hosts.iter().map(|h| h.requests).sum();
        let _ = writeln!(out, "\n## {} — {} host(s), {} requests\n", action.as_str(), hosts.len(), requests);
        let _ = writeln!(out, "{}\n", action_advice(action));
        let _ = writeln!(out, "| host | requests | last seen | green | dns | why | top clients |");
        let _ = writeln!(out, "|---|---:|---|---|---|---|---|");
        for h in hosts {
            let clients: Vec<String> =
                h.top_clients.iter().take(3).map(|c| format!("{} ({})", c.ip, c.requests)).collect();
            let dns = match h.dns.ttl {
                Some(ttl) => format!("{} (TTL {ttl} s)", h.dns.verdict),
                None => h.dns.verdict.to_string(),
            };
            let mut why = h.reason.clone();
            if let Some(blocked) = &h.dns_change_blocked {
                why.push_str(&format!(" — no Route53 change written: {blocked}"));
            }
            if h.dns.external_dns.is_some() && h.action == Action::SwitchDns {
                why.push_str(" — owned by ExternalDNS: apply externaldns-patch.sh too");
            }
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} | {} | {} |",
                md(&h.host),
                if h.urgent { " **URGENT**" } else { "" },
                h.requests,
                h.last_seen,
                h.green.routed,
                md(&dns),
                md(&why),
                md(&clients.join(", "))
            );
        }
    }
    out
}

/// What the operator does for each action (one line).
pub fn action_advice(action: Action) -> &'static str {
    match action {
        Action::FixHardcoded => "Find these clients (top clients listed): they use an IP or a load balancer name, so DNS changes will never move them.",
        Action::AddGreenRoute => "Add the missing Ingress/HTTPRoute rules on green (via GitOps) before touching DNS; hosts marked URGENT already get green's 404s.",
        Action::SwitchDns => "Apply the exported Route53 change (`cutover-proxy report route53`, or GET /report/route53), or the ExternalDNS annotation patch.",
        Action::WaitTtl => "Wait: DNS already points at green and the decay should reach zero within the TTL window.",
        Action::FixClients => "Past the TTL window these clients cache DNS or keep old connections: restart or reconfigure them (JVM networkaddress.cache.ttl), or use --close-stale-connections.",
        Action::InvestigateDns => "The host is not where expected: look at its zone.",
        Action::Unknown => "Not enough evidence yet: configure DNS evidence (blue/green targets) to choose between switch-dns, wait-ttl and fix-clients.",
        Action::None => "Stopped arriving: nothing to do, kept as history.",
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

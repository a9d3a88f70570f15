//! A report as JSON (one host per line inside the `hosts` array), CSV (one row per host and
//! path, for spreadsheets) and Markdown (what an operator pastes into the change ticket: hosts
//! grouped by action, biggest first), each written host by host through a [`Sink`], so a report
//! of any size streams out without being held whole.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::model::{Action, HostReport, Omitted, Report};
use crate::base::names::named_enum;

named_enum! {
    /// Output formats of a report.
    pub enum Format {
        /// The report itself (schema v2).
        Json = "json",
        /// One row per host and path.
        Csv = "csv",
        /// Hosts grouped by action.
        Markdown = "markdown",
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
        }
    }
}

/// Hosts and requests of each action among the hosts a sink is given (the Markdown groups'
/// headings come before their hosts).
pub type Groups = [(u64, u64); Action::COUNT];

/// Counts `hosts` per action.
pub fn groups<'a>(hosts: impl IntoIterator<Item = &'a HostReport>) -> Groups {
    let mut g = [(0, 0); Action::COUNT];
    for h in hosts {
        let slot = &mut g[h.action.index()];
        *slot = (slot.0 + 1, slot.1 + h.requests);
    }
    g
}

/// Where a report goes, host by host: `begin` with the header (a report without hosts), then
/// every host (grouped by action for Markdown), then `end` with what was left out.
pub trait Sink {
    fn begin(&mut self, header: &Report, groups: &Groups) -> io::Result<()>;
    fn host(&mut self, h: &HostReport) -> io::Result<()>;
    fn end(&mut self, omitted: Option<&Omitted>) -> io::Result<()>;
}

/// The sink of `format` writing to `out`.
pub fn sink<'w>(format: Format, out: &'w mut dyn Write) -> Box<dyn Sink + 'w> {
    match format {
        Format::Json => Box::new(JsonSink { out, first: true, buf: Vec::with_capacity(4096) }),
        Format::Csv => Box::new(CsvSink { out }),
        Format::Markdown => Box::new(MarkdownSink { out, groups: [(0, 0); Action::COUNT], current: None }),
    }
}

/// A report held in memory, in `format` (hosts in the report's order; Markdown groups them).
pub fn render(report: &Report, format: Format) -> String {
    let mut out = Vec::with_capacity(4096 + 512 * report.hosts.len());
    let header = Report { hosts: Vec::new(), omitted: None, ..report.clone() };
    let mut hosts: Vec<&HostReport> = report.hosts.iter().collect();
    if format == Format::Markdown {
        // Stable: within an action, the report's own order.
        hosts.sort_by_key(|h| h.action);
    }
    let written = (|| {
        let mut s = sink(format, &mut out);
        s.begin(&header, &groups(report.hosts.iter()))?;
        for h in hosts {
            s.host(h)?;
        }
        s.end(report.omitted.as_ref())
    })();
    if let Err(e) = written {
        return format!("cannot render the report: {e}\n");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The report as JSON.
pub fn json(report: &Report) -> String {
    render(report, Format::Json)
}

struct JsonSink<'w> {
    out: &'w mut dyn Write,
    first: bool,
    /// One host serialized here, then written at once: the serializer's many small writes stay
    /// out of the (dynamic) writer.
    buf: Vec<u8>,
}

impl Sink for JsonSink<'_> {
    fn begin(&mut self, header: &Report, _: &Groups) -> io::Result<()> {
        let head = serde_json::to_string(header).map_err(io::Error::other)?;
        // The header serializes with an empty `hosts` last (and no `omitted`): the hosts go there.
        let open = head
            .strip_suffix("[]}")
            .filter(|h| h.ends_with("\"hosts\":"))
            .ok_or_else(|| io::Error::other("unexpected report header"))?;
        self.out.write_all(open.as_bytes())?;
        self.out.write_all(b"[")
    }

    fn host(&mut self, h: &HostReport) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(if std::mem::take(&mut self.first) { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut self.buf, h).map_err(io::Error::other)?;
        self.out.write_all(&self.buf)
    }

    fn end(&mut self, omitted: Option<&Omitted>) -> io::Result<()> {
        self.out.write_all(if self.first { b"]" } else { b"\n]" })?;
        if let Some(o) = omitted {
            self.out.write_all(b",\"omitted\":")?;
            serde_json::to_writer(&mut *self.out, o).map_err(io::Error::other)?;
        }
        self.out.write_all(b"}\n")
    }
}

const CSV_HEADER: &str = "host,action,urgent,host_requests,dns,green_routed,path,path_requests,path_green_routed,matched_route,first_seen,last_seen,top_client,green_probe,path_probe,path_probe_detail";

struct CsvSink<'w> {
    out: &'w mut dyn Write,
}

impl Sink for CsvSink<'_> {
    fn begin(&mut self, _: &Report, _: &Groups) -> io::Result<()> {
        writeln!(self.out, "{CSV_HEADER}")
    }

    /// One row per path (a host without paths gets one row with an empty path).
    fn host(&mut self, h: &HostReport) -> io::Result<()> {
        let mut out = String::with_capacity(256 * (h.paths.len() + 1));
        let top_client = h.top_clients.first().map(|c| c.ip.as_str()).unwrap_or("");
        let host_probe = h.green.probe.as_ref().and_then(|p| p.verdict).map(|v| v.to_string()).unwrap_or_default();
        let host_cols = [
            h.host.clone(),
            h.action.as_str().to_owned(),
            h.urgent.to_string(),
            h.requests.to_string(),
            h.dns.verdict.to_string(),
            h.green.routed.to_string(),
        ];
        if h.paths.is_empty() {
            let tail = [
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                h.first_seen.clone(),
                h.last_seen.clone(),
                top_client.into(),
                host_probe.clone(),
                String::new(),
                h.green.probe.as_ref().and_then(|p| p.detail.clone()).unwrap_or_default(),
            ];
            push_row(&mut out, &host_cols.iter().cloned().chain(tail).collect::<Vec<_>>());
        }
        for p in &h.paths {
            let tail = [
                p.path.clone(),
                p.requests.to_string(),
                p.green_routed.map(|r| r.to_string()).unwrap_or_default(),
                p.matched_route.clone().unwrap_or_default(),
                p.first_seen.clone(),
                p.last_seen.clone(),
                top_client.into(),
                host_probe.clone(),
                p.probe.as_ref().map(|p| p.verdict.to_string()).unwrap_or_default(),
                p.probe.as_ref().map(|p| p.detail.clone()).unwrap_or_default(),
            ];
            push_row(&mut out, &host_cols.iter().cloned().chain(tail).collect::<Vec<_>>());
        }
        self.out.write_all(out.as_bytes())
    }

    fn end(&mut self, _: Option<&Omitted>) -> io::Result<()> {
        Ok(())
    }
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

struct MarkdownSink<'w> {
    out: &'w mut dyn Write,
    groups: Groups,
    current: Option<Action>,
}

impl Sink for MarkdownSink<'_> {
    fn begin(&mut self, report: &Report, groups: &Groups) -> io::Result<()> {
        self.groups = *groups;
        let mut out = String::new();
        let t = &report.totals;
        let _ = writeln!(out, "# Cutover reconciliation report\n");
        let _ = writeln!(
            out,
            "Generated {} · recording since {} · {} replica(s)\n",
            report.generated_at,
            report.started_at,
            report.replicas.len()
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
            let _ =
                writeln!(out, "\nNo green route table was loaded (`--green-routes`): green verdicts are `unknown`.");
        }
        let g = &report.green;
        if g.incomplete {
            let _ = writeln!(
                out,
                "\nGreen's route table is incomplete: hosts may show `add-green-route` for routes green has."
            );
            for s in &g.skipped {
                let render = s.render.first().map(|r| format!(": `{r}`")).unwrap_or_default();
                let _ = writeln!(out, "- skipped {} `{}` ({}){render}", s.kind, s.name, s.path);
            }
            for c in g.commands.iter().filter(|c| c.error.is_some()) {
                let _ = writeln!(out, "- `{}` failed: {}", c.command, c.error.as_deref().unwrap_or_default());
            }
        }
        if !g.not_serving.is_empty() {
            let _ = writeln!(out, "\nRoute objects green's cluster would not serve:");
            for n in &g.not_serving {
                let _ = writeln!(out, "- {}: {}", n.object, n.reason);
            }
        }
        if t.hosts_overflowed_requests > 0 || t.paths_overflowed_requests > 0 {
            let _ = writeln!(
                out,
                "\nBounds reached: {} requests counted under `(other)` hosts, {} under `{{other}}` paths.",
                t.hosts_overflowed_requests, t.paths_overflowed_requests
            );
        }
        self.out.write_all(out.as_bytes())
    }

    fn host(&mut self, h: &HostReport) -> io::Result<()> {
        let mut out = String::new();
        if self.current != Some(h.action) {
            self.current = Some(h.action);
            let (hosts, requests) = self.groups[h.action.index()];
            let _ = writeln!(out, "\n## {} — {} host(s), {} requests\n", h.action.as_str(), hosts, requests);
            let _ = writeln!(out, "{}\n", action_advice(h.action));
            let _ = writeln!(out, "| host | requests | last seen | green | dns | why | top clients |");
            let _ = writeln!(out, "|---|---:|---|---|---|---|---|");
        }
        let clients: Vec<String> = h.top_clients.iter().take(3).map(|c| format!("{} ({})", c.ip, c.requests)).collect();
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
        // Green's routes, and what green answered when asked.
        let green = match h.green.probe.as_ref() {
            Some(p) => {
                let verdict = p.verdict.map_or("not asked yet".to_owned(), |v| v.to_string());
                format!(
                    "{} · asked: {verdict} ({} served, {} unrouted, {} failing)",
                    h.green.routed, p.served, p.unrouted, p.failing
                )
            }
            None => h.green.routed.to_string(),
        };
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            md(&h.host),
            if h.urgent { " **URGENT**" } else { "" },
            h.requests,
            h.last_seen,
            md(&green),
            md(&dns),
            md(&why),
            md(&clients.join(", "))
        );
        self.out.write_all(out.as_bytes())
    }

    fn end(&mut self, omitted: Option<&Omitted>) -> io::Result<()> {
        match omitted.filter(|o| o.hosts > 0) {
            Some(o) => {
                writeln!(self.out, "\n{} more host(s), {} requests, are left out: {}", o.hosts, o.requests, md(&o.why))
            }
            None => Ok(()),
        }
    }
}

/// What the operator does for each action (one line).
pub fn action_advice(action: Action) -> &'static str {
    match action {
        Action::FixHardcoded => "Find these clients (top clients listed): they use an IP or a load balancer name, so DNS changes will never move them.",
        Action::AddGreenRoute => "Add the missing Ingress/HTTPRoute rules on green (via GitOps) before touching DNS; hosts marked URGENT already get green's 404s.",
        Action::FixGreen => "Green has the route but fails it when asked (5xx, refused, timed out, TLS or certificate): fix green's backend, listener or certificate before DNS moves.",
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::report::samples::{host, path, report};

    const T: &str = "2026-11-25T10:00:00.000Z";

    #[test]
    fn csv_rows_are_quoted_and_safe_in_spreadsheets() {
        let with_paths = host(
            "api.example.com",
            3,
            T,
            json!({"paths": [path("/a,b", 2, T, Some(true)), path("/q\"x", 1, T, None)], "action": "switch-dns"}),
        );
        let formula = host("=cmd|' /C calc'!A0", 1, T, json!({}));
        let text = render(&report(T, vec![with_paths, formula]), Format::Csv);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 4, "one row per path, one for the host without paths: {text}");
        assert!(
            lines[1].starts_with("api.example.com,switch-dns,false,3,unknown,unknown,\"/a,b\",2,true,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains(",\"/q\"\"x\",1,,"), "{}", lines[2]);
        assert!(lines[3].starts_with("\"'=cmd|' /C calc'!A0\","), "a formula is defused: {}", lines[3]);
    }

    #[test]
    fn markdown_groups_hosts_by_action_in_working_order() {
        let hosts = vec![
            host("quiet.example.com", 50, T, json!({"action": "none", "reason": "no request for 1000 s"})),
            host("move.example.com", 5, T, json!({"action": "switch-dns", "reason": "green serves | all"})),
            host("10.0.0.9", 1, T, json!({"action": "fix-hardcoded", "urgent": false})),
            host("api.example.com", 2, T, json!({"action": "add-green-route", "urgent": true})),
        ];
        let text = render(&report(T, hosts), Format::Markdown);
        let order: Vec<usize> = ["## fix-hardcoded", "## add-green-route", "## switch-dns", "## none"]
            .iter()
            .map(|h| text.find(h).unwrap_or_else(|| panic!("no `{h}` in:\n{text}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(text.contains("api.example.com **URGENT**"));
        assert!(text.contains("green serves \\| all"), "a pipe cannot break the table");
        assert!(text.contains("No green route table was loaded"));
        assert!(!text.contains("## wait-ttl"), "empty groups are left out");
    }

    #[test]
    fn json_is_the_report_with_a_final_newline() {
        let r = report(T, vec![host("a.example.com", 1, T, json!({}))]);
        let text = render(&r, Format::Json);
        assert!(text.ends_with("}\n"));
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.hosts[0].host, "a.example.com");
    }
}

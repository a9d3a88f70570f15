//! The dashboard (`GET /` on the admin listener): one self-contained HTML page rendered from the
//! [`Summary`] — inline CSS, inline SVG sparklines, no script, no external asset; it reloads
//! itself every [`REFRESH_S`] seconds. Pure, and bounded: a group shows its biggest hosts and
//! counts the rest, whatever the ledger holds.
//!
//! Totals at the top, then hosts grouped by action in the order an operator works through them
//! (urgent `add-green-route` first, in red), each with its requests per minute over the last hour,
//! reason, DNS verdict, green's verdict and last request. Every string from the network is escaped.

use std::fmt::Write;
use std::time::Duration;

use crate::base::time::{parse_rfc3339, unix_ms};
use crate::report::model::{Action, HostReport, Report, Routed, Tally};
use crate::report::render::action_advice;
use crate::report::summary::{Group as SummaryGroup, Summary, GROUP_HOSTS};
/// Minutes shown in each sparkline.
pub const SPARK_MINUTES: u64 = 60;
/// The page reloads itself this often.
pub const REFRESH_S: u32 = 5;

/// One group of hosts on the page.
struct Group<'a> {
    id: &'static str,
    title: &'static str,
    color: &'static str,
    advice: &'static str,
    tally: &'a Tally,
    hosts: &'a [HostReport],
}

/// The action's colour (urgent add-green-route is a group of its own, in red).
fn color(action: Action) -> &'static str {
    match action {
        Action::FixHardcoded => "#d35400",
        Action::AddGreenRoute => "#b7791f",
        Action::FixGreen => "#a40e26",
        Action::SwitchDns => "#1f6feb",
        Action::WaitTtl => "#0e8a7e",
        Action::FixClients => "#8250df",
        Action::InvestigateDns => "#9a6700",
        Action::Unknown => "#6e7781",
        Action::None => "#9aa4ae",
    }
}

/// The groups in working order: urgent add-green-route first, then `Action::ALL`.
fn groups(summary: &Summary) -> Vec<Group<'_>> {
    SummaryGroup::all()
        .map(|g| {
            let (tally, hosts) = summary.group(g);
            match g {
                SummaryGroup::Urgent => Group {
                    id: "urgent",
                    title: "add-green-route (URGENT)",
                    color: "#cf222e",
                    advice: "DNS already sends these hosts to green, which answers 404 for the paths listed: add the routes on green now.",
                    tally,
                    hosts,
                },
                SummaryGroup::Action(action) => Group {
                    id: action.as_str(),
                    title: action.as_str(),
                    color: color(action),
                    advice: action_advice(action),
                    tally,
                    hosts,
                },
            }
        })
        .collect()
}

/// The whole page. `quiet_period` tells which hosts still arrive.
pub fn render(summary: &Summary, quiet_period: Duration) -> String {
    let report = &summary.header;
    let now = parse_rfc3339(&report.generated_at).unwrap_or_else(unix_ms);
    let arriving = summary.arriving as usize;
    let groups = groups(summary);
    let mut o = String::with_capacity(16 * 1024 + groups.iter().map(|g| g.hosts.len()).sum::<usize>() * 2048);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>cutover-proxy: {arriving} host(s) still arriving at blue</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(
        o,
        "<header><h1>cutover-proxy</h1><p class=\"meta\">what still arrives at blue · report at {} · recording \
         since {} · {} replica(s) · reloads every {REFRESH_S} s</p></header>",
        esc(&report.generated_at),
        esc(&report.started_at),
        report.replicas.len()
    );
    totals(&mut o, report, arriving, quiet_period);
    // A fleet report (`/?scope=fleet`) says which replica answered; its links stay in the fleet.
    let fleet = report.replicas.iter().any(|r| r.reachable.is_some());
    if fleet {
        replicas(&mut o, report);
    }
    o.push_str("<nav class=\"chips\">");
    for g in &groups {
        let requests = g.tally.requests;
        let empty = if g.tally.hosts == 0 { " empty" } else { "" };
        let _ = write!(
            o,
            "<a class=\"chip{empty}\" href=\"#{id}\" style=\"--c:{c}\"><b>{n}</b> {title}<small>{requests} req</small></a>",
            id = g.id,
            c = g.color,
            n = g.tally.hosts,
            title = g.title,
        );
    }
    o.push_str("</nav>");
    if groups.iter().all(|g| g.tally.hosts == 0) {
        o.push_str("<p class=\"none\">No request recorded yet.</p>");
    }
    for g in groups.iter().filter(|g| g.tally.hosts > 0) {
        group(&mut o, g, now, fleet);
    }
    let q = if fleet { "?scope=fleet" } else { "" };
    let _ = writeln!(
        o,
        "<footer>Full data: <a href=\"/report{q}\">/report{q}</a> (JSON) · <a href=\"/report.md{q}\">/report.md</a> · \
         <a href=\"/report.csv{q}\">/report.csv</a> · <a href=\"/metrics\">/metrics</a> (this replica)</footer></body></html>",
    );
    o
}

/// Who a fleet report asked, and what each answered.
fn replicas(o: &mut String, report: &Report) {
    o.push_str(
        "<section id=\"replicas\"><h2>Replicas</h2><table><thead><tr><th>replica</th><th>admin address</th>\
                <th>report at</th><th>answered</th></tr></thead><tbody>",
    );
    for r in &report.replicas {
        let answered = match (r.reachable, &r.error) {
            (Some(false), Some(why)) => format!("<span class=\"bad\">no: {}</span>", esc(why)),
            (Some(false), None) => "<span class=\"bad\">no</span>".to_owned(),
            _ => "yes".to_owned(),
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{answered}</td></tr>",
            esc(if r.id.is_empty() { "?" } else { &r.id }),
            esc(r.address.as_deref().unwrap_or("this replica")),
            esc(&r.generated_at),
        );
    }
    o.push_str("</tbody></table></section>");
}

fn totals(o: &mut String, report: &Report, arriving: usize, quiet: Duration) {
    let t = &report.totals;
    let cards: [(&str, u64, String); 5] = [
        ("requests recorded", t.requests, "health checks excluded".into()),
        ("hosts", t.hosts, format!("{arriving} seen in the last {}", human(quiet))),
        ("unrouted requests", t.unrouted_requests, "green would not serve them".into()),
        ("ignored requests", t.ignored_requests, "health checks and probes".into()),
        (
            "over the bounds",
            t.hosts_overflowed_requests + t.paths_overflowed_requests,
            "requests under (other) / {other}".into(),
        ),
    ];
    o.push_str("<section class=\"totals\">");
    for (label, n, note) in cards {
        let _ = write!(
            o,
            "<div class=\"card\"><span>{label}</span><strong>{n}</strong><small>{}</small></div>",
            esc(&note)
        );
    }
    o.push_str("</section>");
    if !report.green.loaded {
        o.push_str("<p class=\"warn\">No green route table loaded (<code>--green-routes</code>): green verdicts are unknown.</p>");
    }
    incomplete_table(o, &report.green);
}

/// Says when green's table may lack routes green has: what was skipped, which command failed.
fn incomplete_table(o: &mut String, green: &crate::report::model::GreenSummary) {
    if !green.incomplete {
        return;
    }
    let mut why = Vec::new();
    if !green.skipped.is_empty() {
        let names: Vec<String> = green.skipped.iter().take(5).map(|s| format!("{} {}", s.kind, s.name)).collect();
        let more = green.skipped.len().saturating_sub(names.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        why.push(format!(
            "{} skipped as not manifests yet ({}{more}): render them with <code>--green-routes-cmd</code>",
            green.skipped.len(),
            esc(&names.join(", "))
        ));
    }
    for c in green.commands.iter().filter(|c| c.error.is_some()) {
        why.push(format!("<code>{}</code> failed: {}", esc(&c.command), esc(c.error.as_deref().unwrap_or_default())));
    }
    let _ = write!(o, "<p class=\"warn\">Green's route table is incomplete: {}. Hosts may show <code>add-green-route</code> for routes green has.</p>", why.join("; "));
}

fn group(o: &mut String, g: &Group<'_>, now_ms: u64, fleet: bool) {
    let requests = g.tally.requests;
    let _ = write!(
        o,
        "<section class=\"group\" id=\"{id}\" style=\"--c:{c}\"><h2><span class=\"tag\">{title}</span> \
         {n} host(s) · {requests} requests</h2><p class=\"advice\">{advice}</p>",
        id = g.id,
        c = g.color,
        title = g.title,
        n = g.tally.hosts,
        advice = esc(g.advice),
    );
    o.push_str(
        "<table><thead><tr><th>host</th><th class=\"num\">requests</th><th>last 60 min (req/min)</th>\
         <th>last seen</th><th>DNS</th><th>green</th><th>why</th></tr></thead><tbody>",
    );
    for h in g.hosts {
        row(o, h, now_ms);
    }
    o.push_str("</tbody></table>");
    if g.tally.hosts > g.hosts.len() as u64 {
        let _ = write!(
            o,
            "<p class=\"more\">Showing the {} busiest of {} hosts; the rest are in \
             <a href=\"/report?{scope}action={}&amp;limit={limit}\">/report?action={}</a>.</p>",
            g.hosts.len().min(GROUP_HOSTS),
            g.tally.hosts,
            g.id,
            g.id,
            // A fleet report is bounded: the most it lists.
            scope = if fleet { "scope=fleet&amp;" } else { "" },
            limit = if fleet { crate::report::stream::DEFAULT_LIMIT } else { 0 },
        );
    }
    o.push_str("</section>");
}

fn row(o: &mut String, h: &HostReport, now_ms: u64) {
    let last = parse_rfc3339(&h.last_seen).map(|t| ago(now_ms.saturating_sub(t))).unwrap_or_else(|| "?".into());
    let urgent = if h.urgent { " <span class=\"urgent\">URGENT</span>" } else { "" };
    let routed = match h.green.routed {
        Routed::All => "all",
        Routed::Partial => "partial",
        Routed::None => "none",
        Routed::Unknown => "unknown",
    };
    // What green answered when asked, beside what its routes say.
    let asked = match h.green.probe.as_ref() {
        Some(p) => format!(
            "<br><span class=\"probe\" title=\"{}\">asked: {}</span>",
            esc(p.detail.as_deref().unwrap_or("")),
            p.verdict.map_or("not yet", |v| v.as_str())
        ),
        None => String::new(),
    };
    let _ = write!(
        o,
        "<tr><td class=\"host\">{host}{urgent}</td><td class=\"num\">{req}</td><td>{spark}</td>\
         <td title=\"{last_abs}\">{last}</td><td><span class=\"dns\">{dns}</span></td><td>{routed}{asked}</td>\
         <td class=\"why\">{why}</td></tr>",
        host = esc(&h.host),
        req = h.requests,
        spark = sparkline(h, now_ms),
        last_abs = esc(&h.last_seen),
        last = esc(&last),
        dns = esc(h.dns.verdict.as_str()),
        why = esc(&h.reason),
    );
}

/// The last [`SPARK_MINUTES`] minutes ending at `now_ms`, zero-filled, oldest first.
pub fn last_hour(h: &HostReport, now_ms: u64) -> Vec<u64> {
    let end = now_ms / 60_000;
    let start = end + 1 - SPARK_MINUTES;
    let mut counts = vec![0u64; SPARK_MINUTES as usize];
    for m in &h.requests_per_minute {
        if (start..=end).contains(&m.minute) {
            counts[(m.minute - start) as usize] += m.requests;
        }
    }
    counts
}

/// An inline SVG of the last hour's requests per minute, scaled to its own peak.
fn sparkline(h: &HostReport, now_ms: u64) -> String {
    const W: u64 = 180;
    const H: u64 = 28;
    let counts = last_hour(h, now_ms);
    let peak = counts.iter().copied().max().unwrap_or(0);
    let total: u64 = counts.iter().sum();
    let step = W as f64 / (SPARK_MINUTES - 1) as f64;
    let y = |c: u64| if peak == 0 { (H - 1) as f64 } else { 1.0 + (H - 2) as f64 * (1.0 - c as f64 / peak as f64) };
    let mut points = String::with_capacity(SPARK_MINUTES as usize * 12);
    for (i, c) in counts.iter().enumerate() {
        let _ = write!(points, "{:.1},{:.1} ", i as f64 * step, y(*c));
    }
    let last = counts.last().copied().unwrap_or(0);
    format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{total} requests in the last hour, peak {peak}/min, {last} in the current minute\">\
         <title>{total} requests in the last hour · peak {peak}/min · now {last}/min</title>\
         <polygon points=\"0,{H} {p} {W},{H}\" fill=\"var(--c)\" fill-opacity=\"0.15\"/>\
         <polyline points=\"{p}\" fill=\"none\" stroke=\"var(--c)\" stroke-width=\"1.5\"/></svg>\
         <span class=\"rate\">{last}/min</span>",
        p = points.trim_end(),
    )
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s > 0 {
        format!("{} h", s / 3600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// HTML escaping for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
:root{--bg:#f6f8fa;--fg:#1f2328;--mut:#656d76;--line:#d0d7de;font-family:system-ui,-apple-system,'Segoe UI',\
Roboto,'DejaVu Sans',sans-serif;font-size:14px;color:var(--fg);background:var(--bg)}\
body{margin:0 auto;max-width:1400px;padding:16px 24px}\
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}h1{font-size:20px;margin:0}\
.meta{color:var(--mut);margin:0}\
.totals{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin:14px 0}\
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;display:flex;flex-direction:column}\
.card span{color:var(--mut);font-size:12px;text-transform:uppercase;letter-spacing:.04em}\
.card strong{font-size:26px;font-variant-numeric:tabular-nums}.card small{color:var(--mut)}\
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 14px}\
.chip{display:flex;align-items:baseline;gap:6px;border:1px solid var(--c);border-left:6px solid var(--c);\
border-radius:6px;padding:4px 10px;background:#fff;color:var(--fg);text-decoration:none}\
.chip b{color:var(--c);font-size:16px}.chip small{color:var(--mut)}.chip.empty{opacity:.45}\
.group{background:#fff;border:1px solid var(--line);border-top:4px solid var(--c);border-radius:8px;\
margin:0 0 16px;padding:10px 14px}\
.group h2{font-size:16px;margin:2px 0}.tag{color:#fff;background:var(--c);border-radius:4px;padding:1px 8px}\
#urgent{background:#fff5f5}.bad{color:#cf222e;font-weight:600}.advice{color:var(--mut);margin:4px 0 8px}\
table{width:100%;border-collapse:collapse;table-layout:fixed}\
th:nth-child(1){width:21%}th:nth-child(2){width:7%}th:nth-child(3){width:250px}th:nth-child(4){width:7%}\
th:nth-child(5){width:8%}th:nth-child(6){width:6%}th{text-align:left;color:var(--mut);font-weight:600;font-size:12px;\
border-bottom:1px solid var(--line);padding:4px 6px}td{border-bottom:1px solid #eaeef2;padding:4px 6px;\
vertical-align:middle}.num{text-align:right;font-variant-numeric:tabular-nums}\
.host{font-family:ui-monospace,'DejaVu Sans Mono',monospace;word-break:break-all}\
.why{color:var(--mut)}.spark{vertical-align:middle}.rate{color:var(--mut);font-size:12px;\
margin-left:6px;font-variant-numeric:tabular-nums}\
.dns{border:1px solid var(--line);border-radius:10px;padding:0 7px;font-size:12px}\
.urgent{background:#cf222e;color:#fff;border-radius:4px;padding:0 5px;font-size:11px;font-family:system-ui}\
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px}\
.more,.none{color:var(--mut)}footer{color:var(--mut);margin:12px 0}\
@media (max-width:900px){.totals{grid-template-columns:repeat(2,1fr)}table{table-layout:auto}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::evidence::DnsEvidence;
    use crate::dns::verdict::DnsVerdict;
    use crate::record::stats::StatusClasses;
    use crate::report::model::*;

    fn host(name: &str, action: Action, urgent: bool, minutes: &[(u64, u64)]) -> HostReport {
        HostReport {
            host: name.into(),
            requests: minutes.iter().map(|m| m.1).sum(),
            first_seen: "2026-11-25T22:00:00Z".into(),
            last_seen: "2026-11-25T22:59:00Z".into(),
            hardcoded: false,
            green: GreenVerdict { routed: Routed::Partial, missing_paths: vec!["/x".into()], probe: None },
            dns: DnsEvidence { verdict: DnsVerdict::Green, ..Default::default() },
            action,
            urgent,
            reason: "green does not route 1 of 2 seen paths: /x".into(),
            methods: vec!["GET".into()],
            status: StatusClasses::default(),
            bytes_in: 0,
            bytes_out: 0,
            oldest_connection_age_s: 0.0,
            requests_per_minute: minutes.iter().map(|&(minute, requests)| MinuteCount { minute, requests }).collect(),
            paths: Vec::new(),
            top_clients: Vec::new(),
            top_user_agents: Vec::new(),
            dns_change_blocked: None,
            requests_after_move: 0,
            opened_before_move_requests: 0,
            late_clients: Vec::new(),
            tls_requests: 0,
            sni_mismatch_requests: 0,
            default_cert_requests: 0,
            passthrough: None,
        }
    }

    fn report(hosts: Vec<HostReport>) -> Report {
        Report {
            schema: SCHEMA.into(),
            generated_at: "2026-11-25T23:00:30Z".into(),
            started_at: "2026-11-25T21:00:00Z".into(),
            replicas: vec![Replica::default()],
            totals: Totals {
                requests: hosts.iter().map(|h| h.requests).sum(),
                hosts: hosts.len() as u64,
                ..Default::default()
            },
            green: GreenSummary { loaded: true, objects: 2, ..GreenSummary::default() },
            dns: DnsSummary::default(),
            hosts,
            omitted: None,
        }
    }

    fn page(hosts: Vec<HostReport>) -> String {
        render(&Summary::of_report(report(hosts), Duration::from_secs(900)), Duration::from_secs(900))
    }

    #[test]
    fn sparkline_is_the_last_hour_zero_filled() {
        let now = parse_rfc3339("2026-11-25T23:00:30Z").unwrap();
        let m = now / 60_000;
        let h = host("a.example.com", Action::SwitchDns, false, &[(m - 120, 5), (m - 59, 7), (m - 1, 3), (m, 2)]);
        let hour = last_hour(&h, now);
        assert_eq!(hour.len(), 60);
        assert_eq!(hour[0], 7, "the oldest minute shown is 59 minutes ago");
        assert_eq!(hour[58], 3);
        assert_eq!(hour[59], 2);
        assert_eq!(hour.iter().sum::<u64>(), 12, "the minute two hours ago is not shown");
    }

    #[test]
    fn urgent_hosts_come_first_and_network_strings_are_escaped() {
        let now_min = parse_rfc3339("2026-11-25T23:00:30Z").unwrap() / 60_000;
        let mut evil = host("<script>alert(1)</script>", Action::FixHardcoded, false, &[(now_min, 1)]);
        evil.reason = "\"><img src=x onerror=alert(2)>".into();
        let page = page(vec![
            evil,
            host("calm.example.com", Action::AddGreenRoute, false, &[(now_min, 4)]),
            host("hot.example.com", Action::AddGreenRoute, true, &[(now_min, 9)]),
        ]);
        assert!(!page.contains("<script>"), "host names are escaped");
        assert!(!page.contains("<img"), "reasons are escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let urgent = page.find("id=\"urgent\"").unwrap();
        let hardcoded = page.find("id=\"fix-hardcoded\"").unwrap();
        let calm = page.find("id=\"add-green-route\"").unwrap();
        assert!(urgent < hardcoded && hardcoded < calm, "urgent first, then the working order");
        assert!(page[urgent..hardcoded].contains("hot.example.com"));
        assert!(page[calm..].contains("calm.example.com") && !page[calm..].contains("hot.example.com"));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(!page.contains("http://") && !page.contains("https://"), "no external asset");
    }

    #[test]
    fn groups_are_bounded_and_say_so() {
        let now_min = parse_rfc3339("2026-11-25T23:00:30Z").unwrap() / 60_000;
        let hosts = (0..GROUP_HOSTS + 7)
            .map(|i| host(&format!("h{i:03}.example.com"), Action::SwitchDns, false, &[(now_min, 1)]))
            .collect();
        let page = page(hosts);
        assert_eq!(page.matches("<tr><td class=\"host\">").count(), GROUP_HOSTS);
        assert!(page.contains(&format!("Showing the {GROUP_HOSTS} busiest of {} hosts", GROUP_HOSTS + 7)));
    }
}

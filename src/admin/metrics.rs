//! `GET /metrics`: the Prometheus (OpenMetrics text) exposition, rendered at scrape time with the
//! `prometheus-client` crate from counters that already exist or that each worker keeps for itself.
//!
//! It only reads counters their owners keep, and nothing imports it: each worker's
//! `proxy::stats::WorkerStats` (in-flight requests, errors by cause) and its connection and tunnel
//! trackers, the ledger's totals, the log's dropped lines, the report writer's writes, the DNS
//! task's `DnsCounters`; a scrape sums the workers. Per-action series come from a report built
//! from the ledger (cached briefly by the admin server). Host names appear only in a bounded
//! top-N family.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::DurationHistogram;
use super::process::ProcessStats;
use crate::base::cause::Cause;
use crate::dns::counters::{DnsCounters, DnsErrorKind};
use crate::log::AccessLog;
use crate::probe::book::ProbeBook;
use crate::probe::ProbeVerdict;
use crate::proxy::stats::WorkerView;
use crate::record::Ledger;
use crate::report::model::Action;
use crate::report::summary::Summary;
use crate::report::writer::ReportWrites;
use crate::routes::RouteCounters;
use crate::tls::certs::CertStore;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything a scrape reads.
#[derive(Clone)]
pub struct MetricsSources {
    /// Each worker's counters and trackers.
    pub workers: Vec<WorkerView>,
    /// The log (dropped lines).
    pub log: AccessLog,
    /// DNS lookups and errors.
    pub dns: Arc<DnsCounters>,
    /// Report file writes.
    pub report_writes: Arc<ReportWrites>,
    /// Host and path bounds of the ledger: (`--max-hosts`, `--max-paths`).
    pub bounds: (usize, usize),
    /// Route reload and `--green-routes-cmd` failures.
    pub routes: Arc<RouteCounters>,
    /// Green's answers (`--green-probe`).
    pub probe: Option<Arc<ProbeBook>>,
    /// `--cert-dir`, for the certificates' expiry.
    pub certs: Option<Arc<CertStore>>,
}

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Renders the exposition. `report` is a recent report of the ledger (`None` with `--no-record`).
pub fn render(src: &MetricsSources, ledger: Option<&Ledger>, summary: Option<&Summary>, ready: bool) -> String {
    let mut r = Registry::default();
    gauge(&mut r, "cutover_ready", "1 while /readyz answers 200, 0 once draining", i64::from(ready));
    let build = Family::<Labels, Gauge<i64>>::default();
    build.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())]).set(1);
    r.register("cutover_build_info", "The running build: 1, labelled with its version", build);
    process_families(&mut r);
    r.register_with_unit(
        "cutover_request_duration",
        "Time from a request's arrival to the end of its response, by the status class sent",
        prometheus_client::registry::Unit::Seconds,
        DurationHistogram::of(&src.workers),
    );
    if let Some(store) = &src.certs {
        let expiry = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for c in store.current().certs() {
            if let Some(at) = c.not_after_ms {
                expiry.get_or_create(&vec![("name", c.name.clone())]).set(at as f64 / 1000.0);
            }
        }
        r.register_with_unit(
            "cutover_certificate_expiry_timestamp",
            "When each --cert-dir certificate expires (its notAfter, unix time)",
            prometheus_client::registry::Unit::Seconds,
            expiry,
        );
    }

    let (mut in_flight, mut conns, mut tunnels) = (0u64, 0usize, 0usize);
    let errors = Family::<Labels, Counter<u64>>::default();
    for w in &src.workers {
        in_flight += w.stats.in_flight();
        conns += w.conns.live();
        tunnels += w.tunnels.live();
    }
    for &cause in Cause::ALL {
        let n: u64 = src.workers.iter().map(|w| w.stats.errors(cause)).sum();
        errors.get_or_create(&vec![("cause", cause.as_str().to_owned())]).inc_by(n);
    }
    gauge(&mut r, "cutover_in_flight_requests", "Requests being forwarded now", as_i64(in_flight));
    gauge(&mut r, "cutover_in_flight_tunnels", "Upgraded (WebSocket) tunnels open now", conns_i64(tunnels));
    gauge(
        &mut r,
        "cutover_open_connections",
        "Client HTTP connections open now (upgraded ones count as tunnels)",
        conns_i64(conns),
    );
    r.register(
        "cutover_upstream_errors",
        "Requests that failed toward blue (or because the client left), by the log's error cause",
        errors,
    );

    let dns = Family::<Labels, Counter<u64>>::default();
    for &kind in DnsErrorKind::ALL {
        dns.get_or_create(&vec![("kind", kind.as_str().to_owned())]).inc_by(src.dns.errors(kind));
    }
    counter(&mut r, "cutover_dns_lookups", "DNS lookups made for DNS evidence", src.dns.lookups());
    r.register("cutover_dns_errors", "DNS lookups that failed, by kind", dns);

    counter(&mut r, "cutover_log_lines_dropped", "Log lines dropped because the writer was behind", src.log.dropped());
    let writes = Family::<Labels, Counter<u64>>::default();
    writes.get_or_create(&vec![("result", "ok".to_owned())]).inc_by(src.report_writes.ok.load(Ordering::Relaxed));
    writes
        .get_or_create(&vec![("result", "error".to_owned())])
        .inc_by(src.report_writes.failed.load(Ordering::Relaxed));
    r.register("cutover_report_writes", "Report file writes (--report-file), by result", writes);

    route_families(&mut r, &src.routes);
    if let Some(book) = &src.probe {
        let probes = Family::<Labels, Counter<u64>>::default();
        for &v in ProbeVerdict::ALL {
            probes.get_or_create(&vec![("verdict", v.as_str().to_owned())]).inc_by(book.made(v));
        }
        r.register("cutover_green_probes", "Probes of green (--green-probe), by verdict", probes);
    }
    if let Some(ledger) = ledger {
        ledger_families(&mut r, src, ledger);
        let table = ledger.routes();
        gauge(
            &mut r,
            "cutover_routes_objects",
            "Route objects in green's table that green serves",
            conns_i64(table.objects()),
        );
        gauge(
            &mut r,
            "cutover_routes_not_serving",
            "Route objects green's cluster would not serve (removed apiVersion, other ingress class or gateway)",
            conns_i64(table.not_serving().count()),
        );
        gauge(
            &mut r,
            "cutover_routes_skipped",
            "Helm charts, Kustomize overlays and templates skipped in --green-routes (not manifests yet)",
            conns_i64(table.skipped().len()),
        );
    }
    if let Some(summary) = summary {
        summary_families(&mut r, summary);
    }
    let mut out = String::with_capacity(8 * 1024);
    if encode(&mut out, &r).is_err() {
        out = "# EOF\n".to_owned();
    }
    out
}

/// `process_*`, as the Prometheus client libraries name them.
fn process_families(r: &mut Registry) {
    let p = ProcessStats::read();
    let float = |r: &mut Registry, name: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            g.set(v);
            r.register(name, help, g);
        }
    };
    let int = |r: &mut Registry, name: &str, help: &str, v: Option<u64>| {
        if let Some(v) = v {
            gauge(r, name, help, as_i64(v));
        }
    };
    int(r, "process_resident_memory_bytes", "Resident memory size in bytes", p.resident_bytes);
    int(r, "process_virtual_memory_bytes", "Virtual memory size in bytes", p.virtual_bytes);
    int(r, "process_open_fds", "Number of open file descriptors", p.open_fds);
    int(r, "process_max_fds", "Maximum number of open file descriptors", p.max_fds);
    float(
        r,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        p.start_time_seconds,
    );
    if let Some(cpu) = p.cpu_seconds {
        let c = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        c.inc_by(cpu);
        r.register("process_cpu_seconds", "Total user and system CPU time spent in seconds", c);
    }
}

fn route_families(r: &mut Registry, routes: &RouteCounters) {
    counter(
        r,
        "cutover_routes_reload_failures",
        "Route file reloads refused (the last good table kept)",
        routes.reload_failures.load(Ordering::Relaxed),
    );
    if !routes.command_failures.is_empty() {
        let failures = Family::<Labels, Counter<u64>>::default();
        for (command, n) in &routes.command_failures {
            failures.get_or_create(&vec![("command", command.clone())]).inc_by(n.load(Ordering::Relaxed));
        }
        r.register(
            "cutover_routes_cmd_failures",
            "--green-routes-cmd runs that gave no table (failed, timed out, empty or unreadable output)",
            failures,
        );
    }
}

fn conns_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ledger_families(r: &mut Registry, src: &MetricsSources, ledger: &Ledger) {
    let t = ledger.totals();
    let requests = t.requests;
    counter(r, "cutover_ledger_requests", "Requests recorded in the ledger (health checks excluded)", requests);
    counter(r, "cutover_ledger_ignored_requests", "Requests matching --ignore-path/--ignore-user-agent", t.ignored);
    counter(r, "cutover_ledger_unrouted_requests", "Requests whose host/path green does not route", t.unrouted);
    gauge(r, "cutover_ledger_hosts", "Distinct hosts in the ledger", conns_i64(ledger.host_count()));
    gauge(r, "cutover_ledger_paths", "Distinct path templates in the ledger", conns_i64(ledger.path_count()));
    gauge(r, "cutover_ledger_max_hosts", "--max-hosts", conns_i64(src.bounds.0));
    gauge(r, "cutover_ledger_max_paths", "--max-paths", conns_i64(src.bounds.1));
    let m = ledger.memory();
    gauge(r, "cutover_ledger_memory_bytes", "Bytes the ledger holds (charged to its budget)", conns_i64(m.used));
    gauge(r, "cutover_ledger_memory_limit_bytes", "--max-ledger-memory", conns_i64(m.limit));
    counter(
        r,
        "cutover_ledger_memory_refusals",
        "Times the memory budget refused an entry (its traffic was counted in a bucket, {other} or a compact entry)",
        m.refused,
    );
    let overflow = Family::<Labels, Counter<u64>>::default();
    overflow.get_or_create(&vec![("bucket", "hosts".to_owned())]).inc_by(t.hosts_overflowed);
    overflow.get_or_create(&vec![("bucket", "paths".to_owned())]).inc_by(t.paths_overflowed);
    r.register(
        "cutover_ledger_overflow_requests",
        "Requests counted under (other) hosts or {other} paths because a bound was reached",
        overflow,
    );
}

fn summary_families(r: &mut Registry, summary: &Summary) {
    let by_status = Family::<Labels, Counter<u64>>::default();
    let by_action = Family::<Labels, Gauge<i64>>::default();
    let hosts = Family::<Labels, Gauge<i64>>::default();
    let mut total = [0u64; 5];
    for &action in Action::ALL {
        let s = &summary.status_by_action[action.index()];
        let classes = [s.c1, s.c2, s.c3, s.c4, s.c5];
        for (i, n) in classes.iter().enumerate() {
            total[i] += n;
            if *n > 0 {
                let labels = vec![("action", action.as_str().to_owned()), ("status_class", CLASSES[i].to_owned())];
                by_action.get_or_create(&labels).set(as_i64(*n));
            }
        }
        hosts
            .get_or_create(&vec![("action", action.as_str().to_owned())])
            .set(as_i64(summary.by_action[action.index()].hosts));
    }
    for (i, n) in total.iter().enumerate() {
        by_status.get_or_create(&vec![("status_class", CLASSES[i].to_owned())]).inc_by(*n);
    }
    r.register("cutover_requests", "Requests recorded, by the status class sent to the client", by_status);
    r.register(
        "cutover_requests_by_action",
        "Requests recorded, by their host's current action and status class (a gauge: hosts change action)",
        by_action,
    );
    r.register("cutover_hosts", "Hosts still in the report, by action", hosts);
    gauge(r, "cutover_hosts_urgent", "add-green-route hosts that DNS already sends to green", as_i64(summary.urgent));
    let top = Family::<Labels, Gauge<i64>>::default();
    for h in summary.top_hosts() {
        let labels = vec![("host", h.host.clone()), ("action", h.action.as_str().to_owned())];
        top.get_or_create(&labels).set(as_i64(h.requests));
    }
    r.register(
        "cutover_top_host_requests",
        "Requests of the busiest hosts (at most 20 series; the rest have no host label)",
        top,
    );
    let took = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    took.set(summary.took.as_secs_f64());
    r.register(
        "cutover_summary_duration_seconds",
        "How long the last pass over the ledger took (the summary these families come from)",
        took,
    );
    let made = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    made.set(crate::base::time::parse_rfc3339(&summary.header.generated_at).unwrap_or(0) as f64 / 1000.0);
    r.register(
        "cutover_summary_timestamp_seconds",
        "When the summary these families come from was made (unix time; refreshed every 2 s or more)",
        made,
    );
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::stats::WorkerStats;

    fn sources(workers: Vec<WorkerView>) -> (MetricsSources, crate::log::writer::LogWriter) {
        let (log, writer) = AccessLog::start(std::io::sink(), 16).unwrap();
        let src = MetricsSources {
            workers,
            log,
            dns: Arc::default(),
            report_writes: Arc::default(),
            bounds: (100, 200),
            routes: Arc::default(),
            probe: None,
            certs: None,
        };
        (src, writer)
    }

    fn view() -> WorkerView {
        WorkerView { stats: Arc::new(WorkerStats::default()), conns: Arc::default(), tunnels: Arc::default() }
    }

    #[test]
    fn every_cause_is_counted_and_summed_over_workers() {
        let workers = vec![view(), view()];
        for (i, &cause) in Cause::ALL.iter().enumerate() {
            // Cause i counted i + 1 times, spread over both workers.
            for n in 0..=i {
                workers[n % 2].stats.count(cause);
            }
        }
        let (src, _writer) = sources(workers);
        let text = render(&src, None, None, true);
        for (i, cause) in Cause::ALL.iter().enumerate() {
            let line = format!("cutover_upstream_errors_total{{cause=\"{}\"}} {}", cause.as_str(), i + 1);
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn every_dns_error_kind_is_exposed() {
        let (src, _writer) = sources(vec![view()]);
        for &kind in DnsErrorKind::ALL {
            src.dns.error(kind);
        }
        let text = render(&src, None, None, true);
        for kind in DnsErrorKind::ALL {
            let line = format!("cutover_dns_errors_total{{kind=\"{}\"}} 1", kind.as_str());
            assert!(text.lines().any(|l| l == line), "missing `{line}`");
        }
    }
}

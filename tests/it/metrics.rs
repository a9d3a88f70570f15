//! `GET /metrics` as Prometheus sees it: the exposition is parsed by the official Python client's
//! OpenMetrics parser (strict: types, `_total` suffixes, `# EOF`), then checked against the traffic
//! sent through the real proxy.

use std::collections::HashMap;
use std::process::Command;

use crate::common::*;

/// One sample: family type, sample name, labels, value.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    family_type: String,
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

const PARSE: &str = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    sys.exit("python3 module prometheus_client is missing: pip install prometheus-client (.ci/run does)")
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family_type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// Parses the exposition with Python's `prometheus_client` OpenMetrics parser; fails loudly when
/// Python or the module is missing.
fn parse(text: &str) -> Vec<Sample> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse /metrics with prometheus_client (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics: {}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {samples:#?}"))
        .value
}

const ROUTES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: edge, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_openmetrics_and_count_what_was_sent() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = std::env::temp_dir().join(format!("cutover-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    let report_file = dir.join("report.json");
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--green-routes",
        routes.to_str().unwrap(),
        // Nothing listens on port 1: every request for this host is refused upstream.
        "--upstream-for",
        "dead.example.com=http://127.0.0.1:1",
        "--report-file",
        report_file.to_str().unwrap(),
        "--report-interval",
        "200ms",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(c.get("shop.example.com", "/api/cart/1").await.status, 200);
    }
    assert_eq!(c.get("shop.example.com", "/checkout").await.status, 200);
    assert_eq!(c.get("dead.example.com", "/").await.status, 502);
    assert_eq!(c.get("shop.example.com", "/healthz").await.status, 200);
    // 25 distinct hosts: more than the top-N host label allows.
    for i in 0..25 {
        c.get(&format!("tenant{i:02}.example.net"), "/").await;
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)).await.unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // Two summaries: the report file was written at least once in between.
    let deadline = std::time::Instant::now() + WAIT;
    while proxy.json_lines().iter().filter(|v| v["event"] == "summary").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no summary events");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    wait_fresh_summary(proxy.admin).await;
    let (status, text) = admin_get(proxy.admin, "/metrics").await;
    assert_eq!(status, 200);
    let s = parse(&text);

    let recorded = 3 + 1 + 1 + 25 + 1;
    assert_eq!(value(&s, "cutover_ledger_requests_total", &[]), recorded as f64);
    assert_eq!(value(&s, "cutover_requests_total", &[("status_class", "2xx")]), 29.0);
    assert_eq!(value(&s, "cutover_requests_total", &[("status_class", "5xx")]), 1.0);
    assert_eq!(value(&s, "cutover_requests_total", &[("status_class", "1xx")]), 1.0, "the WebSocket");
    assert_eq!(value(&s, "cutover_ledger_ignored_requests_total", &[]), 1.0, "/healthz");
    assert_eq!(value(&s, "cutover_ledger_unrouted_requests_total", &[]), (1 + 1 + 25 + 1) as f64);
    assert_eq!(value(&s, "cutover_upstream_errors_total", &[("cause", "upstream_connect_refused")]), 1.0);
    assert_eq!(value(&s, "cutover_upstream_errors_total", &[("cause", "upstream_timeout")]), 0.0);
    assert_eq!(
        value(&s, "cutover_requests_by_action", &[("action", "add-green-route"), ("status_class", "2xx")]),
        29.0,
        "shop and the tenants"
    );
    assert_eq!(value(&s, "cutover_hosts", &[("action", "add-green-route")]), 1.0 + 25.0 + 1.0, "shop, tenants, dead");
    assert_eq!(value(&s, "cutover_hosts", &[("action", "fix-hardcoded")]), 1.0, "the WebSocket went to 127.0.0.1");
    assert_eq!(value(&s, "cutover_hosts", &[("action", "switch-dns")]), 0.0, "every action has a series");
    assert_eq!(value(&s, "cutover_ledger_hosts", &[]), 28.0);
    assert_eq!(value(&s, "cutover_in_flight_tunnels", &[]), 1.0);
    assert_eq!(value(&s, "cutover_in_flight_requests", &[]), 0.0, "an open tunnel counts as a tunnel, not a request");
    // The keep-alive client; an upgraded connection counts as a tunnel, not as a connection.
    assert_eq!(value(&s, "cutover_open_connections", &[]), 1.0);
    assert_eq!(value(&s, "cutover_dns_lookups_total", &[]), 0.0);
    assert_eq!(value(&s, "cutover_dns_errors_total", &[("kind", "nxdomain")]), 0.0);
    assert_eq!(value(&s, "cutover_log_lines_dropped_total", &[]), 0.0);
    assert!(value(&s, "cutover_report_writes_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(value(&s, "cutover_report_writes_total", &[("result", "error")]), 0.0);
    assert_eq!(value(&s, "cutover_ready", &[]), 1.0);
    assert_eq!(value(&s, "cutover_ledger_max_hosts", &[]), 100_000.0);

    // Host names only in a bounded family: the busiest 20, shop first.
    let top: Vec<&Sample> = s.iter().filter(|x| x.name == "cutover_top_host_requests").collect();
    assert_eq!(top.len(), 20, "{top:#?}");
    assert_eq!(value(&s, "cutover_top_host_requests", &[("host", "shop.example.com")]), 4.0);
    let with_host = s.iter().filter(|x| x.labels.contains_key("host")).count();
    assert_eq!(with_host, 20, "no other family carries a host label");
    assert!(s.iter().all(|x| ["counter", "gauge", "histogram", "info"].contains(&x.family_type.as_str())));
    // The latency histogram, per status class: 29 + /healthz answered 2xx, buckets cumulative.
    let h2 = |suffix: &str, labels: &[(&str, &str)]| {
        value(&s, &format!("cutover_request_duration_seconds_{suffix}"), labels)
    };
    assert_eq!(h2("count", &[("status_class", "2xx")]), 30.0);
    assert_eq!(h2("bucket", &[("status_class", "2xx"), ("le", "+Inf")]), 30.0);
    assert!(h2("bucket", &[("status_class", "2xx"), ("le", "0.1")]) >= 29.0, "loopback answers in well under 100 ms");
    assert!(
        h2("bucket", &[("status_class", "2xx"), ("le", "0.001")])
            <= h2("bucket", &[("status_class", "2xx"), ("le", "0.1")])
    );
    assert_eq!(h2("count", &[("status_class", "5xx")]), 1.0);
    assert!(h2("sum", &[("status_class", "2xx")]) > 0.0);
    assert_eq!(value(&s, "cutover_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(value(&s, "process_resident_memory_bytes", &[]) > (4 << 20) as f64);
    assert!(value(&s, "process_open_fds", &[]) >= 5.0 && value(&s, "process_max_fds", &[]) >= 64.0);
    assert!(value(&s, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&s, "process_start_time_seconds", &[]) > 1.7e9);
    assert_eq!(value(&s, "cutover_routes_reload_failures_total", &[]), 0.0);
    assert!(value(&s, "cutover_ledger_memory_bytes", &[]) > 0.0);
    assert_eq!(value(&s, "cutover_ledger_memory_limit_bytes", &[]), (64 << 20) as f64, "the default budget");
    assert_eq!(value(&s, "cutover_ledger_memory_refusals_total", &[]), 0.0);

    ws.close(None).await.unwrap();
    proxy.wait_line(|v| v["status"] == 101);
    // The summary is up to 2 s old; in-flight gauges are read live.
    let (_, text) = admin_get(proxy.admin, "/metrics").await;
    let s = parse(&text);
    assert_eq!(value(&s, "cutover_in_flight_tunnels", &[]), 0.0);
    assert_eq!(value(&s, "cutover_in_flight_requests", &[]), 0.0);

    // Draining: readiness is visible in the metrics too.
    proxy.sigterm();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, text) = admin_get(proxy.admin, "/metrics").await;
        if value(&parse(&text), "cutover_ready", &[]) == 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cutover_ready never turned 0");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

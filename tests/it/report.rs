//! The ledger and the report as an operator sees them: exact counts, templates, bounds, ignore
//! rules, green verdicts, events, report files, merge, reload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use http::Request;

/// Green serves `shop.example.com` under `/api` and `/robots.txt` (Ingress), `*.tenant.example.com`
/// everything (HTTPRoute).
const GREEN_ROUTES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: edge, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /robots.txt, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tenants, namespace: saas}
spec:
  hostnames: ["*.tenant.example.com"]
  rules:
  - backendRefs: [{name: tenant-app, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ignored, namespace: shop}
spec: {ports: [{port: 80}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_counts_after_10000_concurrent_requests() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--log-requests", "none"]);
    let mut tasks = Vec::new();
    for c in 0..50u32 {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = H1Client::connect(addr).await;
            for i in 0..200u32 {
                let host = format!("h{}.example.com", (c + i) % 25);
                let path = format!("/v1/users/{}/orders/{}", c * 1000 + i, i % 4);
                assert_eq!(client.get(&host, &path).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = report_json(&proxy).await;
    assert_eq!(report["schema"], "cutover-proxy/report/v2");
    assert_eq!(report["totals"]["requests"], 10_000);
    assert_eq!(report["totals"]["hosts"], 25);
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 25);
    let sum: u64 = hosts.iter().map(|h| h["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, 10_000, "nothing lost");
    for h in hosts {
        assert_eq!(h["requests"], 400, "{}", h["host"]);
        let paths = h["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 1, "ids are templated: {paths:?}");
        assert_eq!(paths[0]["path"], "/v1/users/{id}/orders/{id}");
        assert_eq!(paths[0]["requests"], 400);
        assert_eq!(h["status"]["2xx"], 400);
        assert_eq!(h["methods"], serde_json::json!(["GET"]));
        assert_eq!(h["top_clients"][0]["ip"], "127.0.0.1");
        assert_eq!(h["green"]["routed"], "unknown");
        assert_eq!(h["action"], "unknown");
    }
    // Sorted by requests, then name.
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_normalized_and_health_checks_ignored() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    for host in ["API.Example.com", "api.example.com:8080", "api.example.com."] {
        assert_eq!(c.get(host, "/orders/550e8400-e29b-41d4-a716-446655440000?x=1").await.status, 200);
    }
    c.get("10.1.2.3:8080", "/").await;
    c.get("bücher.example", "/").await;
    c.get("api.example.com", "/healthz").await;
    let req = Request::get("/")
        .header("host", "api.example.com")
        .header("user-agent", "ELB-HealthChecker/2.0")
        .body(empty())
        .unwrap();
    assert_eq!(c.send(req).await.status, 200, "ignored requests are still forwarded");
    let mut h2 = H2Client::connect(proxy.addr).await;
    h2.send(Request::get("http://API.example.com:443/h2").body(empty()).unwrap()).await;
    // Each request is recorded a moment after its answer (ledger, then the line).
    proxy.wait_access(8);

    let report = report_json(&proxy).await;
    assert_eq!(report["totals"]["ignored_requests"], 2);
    assert_eq!(report["totals"]["requests"], 6);
    let api = host(&report, "api.example.com");
    assert_eq!(api["requests"], 4);
    let paths: Vec<&str> = api["paths"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/orders/{id}", "/h2"]);
    let ip = host(&report, "10.1.2.3");
    assert_eq!(ip["hardcoded"], true);
    assert_eq!(ip["action"], "fix-hardcoded");
    assert_eq!(host(&report, "xn--bcher-kva.example")["requests"], 1);
    assert!(report["hosts"].as_array().unwrap().iter().all(|h| h["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["path"] != "/healthz")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_send_the_rest_to_overflow_and_totals_stay_exact() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--max-hosts",
        "3",
        "--max-paths-per-host",
        "2",
        "--log-requests",
        "none",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    for h in 0..6 {
        for p in 0..4 {
            c.get(&format!("h{h}.example.com"), &format!("/section{p}")).await;
        }
    }
    let report = report_json(&proxy).await;
    assert_eq!(report["totals"]["requests"], 24);
    assert_eq!(report["totals"]["hosts"], 3);
    assert_eq!(report["totals"]["hosts_overflowed_requests"], 12);
    assert_eq!(report["totals"]["paths_overflowed_requests"], 6);
    let other = host(&report, "(other)");
    assert_eq!(other["requests"], 12);
    let h0 = host(&report, "h0.example.com");
    let other_path = h0["paths"].as_array().unwrap().iter().find(|p| p["path"] == "{other}").unwrap();
    assert_eq!(other_path["requests"], 2);
    let sum: u64 = report["hosts"].as_array().unwrap().iter().map(|h| h["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, 24);
}

fn write_routes(dir: &Path) -> PathBuf {
    let routes = dir.join("routes");
    std::fs::create_dir_all(routes.join("nested")).unwrap();
    std::fs::write(routes.join("nested").join("green.yaml"), GREEN_ROUTES).unwrap();
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_verdicts_actions_and_events() {
    let dir = temp_dir("verdicts");
    let routes = write_routes(&dir);
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--green-routes", routes.to_str().unwrap()]);
    proxy.wait_line(|v| v["event"] == "routes_loaded" && v["objects"] == 2);
    let mut c = H1Client::connect(proxy.addr).await;
    c.get("shop.example.com", "/api/cart/42").await;
    c.get("shop.example.com", "/robots.txt").await;
    c.get("shop.example.com", "/checkout").await;
    c.get("a.b.tenant.example.com", "/anything").await;
    c.get("legacy.example.com", "/").await;
    proxy.wait_access(5);

    let report = report_json(&proxy).await;
    assert_eq!(report["green"]["loaded"], true);
    assert_eq!(report["totals"]["unrouted_requests"], 2);
    let shop = host(&report, "shop.example.com");
    assert_eq!(shop["green"]["routed"], "partial");
    assert_eq!(shop["green"]["missing_paths"], serde_json::json!(["/checkout"]));
    assert_eq!(shop["action"], "add-green-route");
    assert_eq!(shop["urgent"], false);
    let api = shop["paths"].as_array().unwrap().iter().find(|p| p["path"] == "/api/cart/{id}").unwrap();
    assert_eq!(api["green_routed"], true);
    assert_eq!(api["matched_route"], "shop/edge (Ingress)");
    let tenant = host(&report, "a.b.tenant.example.com");
    assert_eq!(tenant["green"]["routed"], "all");
    assert_eq!(tenant["paths"][0]["matched_route"], "saas/tenants (HTTPRoute)");
    assert_eq!(host(&report, "legacy.example.com")["green"]["routed"], "none");

    let ev = proxy.wait_line(|v| v["event"] == "new_path" && v["path"] == "/checkout");
    assert_eq!(ev["green"], "unrouted");
    let ev = proxy.wait_line(|v| v["event"] == "new_path" && v["path"] == "/api/cart/{id}");
    assert_eq!(ev["green"], "routed");
    assert_eq!(ev["matched_route"], "shop/edge (Ingress)");
    proxy.wait_line(|v| v["event"] == "new_host" && v["host"] == "legacy.example.com");

    // CSV and Markdown views.
    let (status, csv) = admin_get(proxy.admin, "/report.csv").await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("host,action,urgent,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("shop.example.com,add-green-route,false,3,") && l.contains("/checkout,1,false")),
        "{csv}"
    );
    let (_, md) = admin_get(proxy.admin, "/report.md").await;
    assert!(md.contains("## add-green-route — 2 host(s)"), "{md}");
    assert!(md.find("add-green-route").unwrap() < md.find("## unknown").unwrap_or(usize::MAX));
    assert!(md.contains("| shop.example.com |"), "{md}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_requests_unrouted_keeps_only_what_green_would_not_serve() {
    let dir = temp_dir("unrouted");
    let routes = write_routes(&dir);
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--green-routes",
        routes.to_str().unwrap(),
        "--log-requests",
        "unrouted",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    c.get("shop.example.com", "/api/x").await;
    c.get("shop.example.com", "/checkout").await;
    c.get("x.tenant.example.com", "/").await;
    proxy.wait_access(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = proxy.access_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["path"], "/checkout");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_broken_route_file_refuses_to_start() {
    let dir = temp_dir("broken");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, format!("{GREEN_ROUTES}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: x, namespace: y}}\nspec:\n  rules:\n  - host: a.example.com\n    http:\n      paths:\n      - {{path: /a, pathType: Foo, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}\n")).unwrap();
    let (code, _, err) = run_binary(
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--green-routes",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.yaml") && err.contains("pathType") && err.contains("Foo"), "{err}");
    assert!(err.contains("document 3"), "names the document: {err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_reload_on_change_and_keep_the_last_good_table() {
    let dir = temp_dir("reload");
    let routes = write_routes(&dir);
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--green-routes", routes.to_str().unwrap()]);
    let mut c = H1Client::connect(proxy.addr).await;
    c.get("shop.example.com", "/checkout").await;
    // The client has its answer a moment before the request is recorded (ledger, then the line).
    proxy.wait_access(1);
    assert_eq!(host(&report_json(&proxy).await, "shop.example.com")["green"]["routed"], "none");

    // The missing route is added on green: the table reloads and the verdict follows.
    let added = GREEN_ROUTES.replace("      - {path: /robots.txt", "      - {path: /checkout, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n      - {path: /robots.txt");
    std::fs::write(routes.join("nested").join("green.yaml"), &added).unwrap();
    proxy.wait_line(|v| v["event"] == "routes_reloaded" && v["trigger"] == "file changed");
    assert_eq!(host(&report_json(&proxy).await, "shop.example.com")["green"]["routed"], "all");

    // A broken edit is refused; the last good table stays.
    std::fs::write(
        routes.join("broken.yaml"),
        "kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {name: b, namespace: c}\nspec: {rules: oops}\n",
    )
    .unwrap();
    let failed = proxy.wait_line(|v| v["event"] == "routes_reload_failed");
    assert!(failed["error"].as_str().unwrap().contains("broken.yaml"), "{failed}");
    assert_eq!(host(&report_json(&proxy).await, "shop.example.com")["green"]["routed"], "all");

    // SIGHUP reloads too.
    std::fs::remove_file(routes.join("broken.yaml")).unwrap();
    std::process::Command::new("kill").args(["-HUP", &proxy.child.id().to_string()]).status().unwrap();
    proxy.wait_line(|v| v["event"] == "routes_reloaded" && v["trigger"] == "SIGHUP");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_file_summary_and_shutdown_write() {
    let dir = temp_dir("file");
    let file = dir.join("report.json");
    let up = Upstream::start().await;
    let mut proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--report-file",
        file.to_str().unwrap(),
        "--report-interval",
        "200ms",
        "--drain-delay",
        "0s",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    c.get("a.example.com", "/one").await;
    let summary = proxy.wait_line(|v| v["event"] == "summary" && v["requests"] == 1);
    assert_eq!(summary["hosts"], 1);
    assert_eq!(summary["hosts_by_action"]["unknown"], 1);
    c.get("a.example.com", "/two").await;
    proxy.sigterm();
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written["totals"]["requests"], 2, "the shutdown write has the last request");
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name() != "report.json").collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_file_survives_kill_9_mid_writing() {
    let dir = temp_dir("kill9");
    let file = dir.join("report.json");
    let up = Upstream::start().await;
    let mut proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--report-file",
        file.to_str().unwrap(),
        "--report-interval",
        "100ms",
        "--max-hosts",
        "5000",
        "--log-requests",
        "none",
    ]);
    // Enough hosts that each write takes a while.
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = H1Client::connect(addr).await;
            for i in 0..300u32 {
                c.get(&format!("host-{t}-{i}.example.com"), &format!("/p/{}", i % 7)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Kill at some point while it keeps rewriting the file.
    tokio::time::sleep(Duration::from_millis(370)).await;
    std::process::Command::new("kill").args(["-9", &proxy.child.id().to_string()]).status().unwrap();
    proxy.wait_exit(Duration::from_secs(5));
    let text = std::fs::read_to_string(&file).expect("a report file exists");
    let report: serde_json::Value = serde_json::from_str(&text).expect("the report is complete JSON after kill -9");
    assert_eq!(report["schema"], "cutover-proxy/report/v2");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_replica_reports_add_up() {
    let dir = temp_dir("merge");
    let up = Upstream::start().await;
    let a = ProxyProc::start(&["--upstream", &up.url()]);
    let b = ProxyProc::start(&["--upstream", &up.url()]);
    let mut ca = H1Client::connect(a.addr).await;
    let mut cb = H1Client::connect(b.addr).await;
    for i in 0..7 {
        ca.get("shared.example.com", &format!("/items/{i}")).await;
    }
    for i in 0..5 {
        cb.get("shared.example.com", &format!("/items/{i}")).await;
    }
    cb.get("only-b.example.com", "/").await;
    let ra = dir.join("a.json");
    let rb = dir.join("b.json");
    std::fs::write(&ra, admin_get(a.admin, "/report").await.1).unwrap();
    std::fs::write(&rb, admin_get(b.admin, "/report").await.1).unwrap();

    let (code, out, err) = run_binary(&["report", "merge", ra.to_str().unwrap(), rb.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(merged["replicas"].as_array().map(Vec::len), Some(2), "{}", merged["replicas"]);
    assert_eq!(merged["totals"]["requests"], 13);
    assert_eq!(merged["totals"]["hosts"], 2);
    let shared = host(&merged, "shared.example.com");
    assert_eq!(shared["requests"], 12);
    assert_eq!(shared["paths"][0]["requests"], 12);
    assert_eq!(shared["top_clients"][0]["requests"], 12);
    let minutes: u64 =
        shared["requests_per_minute"].as_array().unwrap().iter().map(|m| m["requests"].as_u64().unwrap()).sum();
    assert_eq!(minutes, 12);
    let a_first = host(&serde_json::from_str(&std::fs::read_to_string(&ra).unwrap()).unwrap(), "shared.example.com")
        ["first_seen"]
        .clone();
    assert_eq!(shared["first_seen"], a_first, "first_seen is the earliest");

    let (code, md, _) =
        run_binary(&["report", "render", "--format", "markdown", ra.to_str().unwrap(), rb.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0));
    assert!(md.contains("**13 requests** to **2 hosts**"), "{md}");
    let (code, csv, _) = run_binary(&["report", "render", "--format", "csv", ra.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(csv.lines().count(), 1 + 1, "{csv}");

    std::fs::write(dir.join("junk.json"), "{\"not\": \"a report\"}").unwrap();
    let (code, _, err) = run_binary(&["report", "render", dir.join("junk.json").to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("junk.json") && err.contains("not a cutover-proxy report"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_is_in_the_report_while_it_lasts() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)).await.unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let report = report_json(&proxy).await;
    let h = host(&report, &proxy.addr.ip().to_string());
    assert_eq!(h["status"]["1xx"], 1, "counted when the tunnel opened: {h}");
    assert_eq!(h["paths"][0]["path"], "/ws");
    ws.close(None).await.unwrap();
    proxy.wait_line(|v| v["status"] == 101);
    assert_eq!(report_json(&proxy).await["totals"]["requests"], 1, "not counted twice when it closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_answer_is_a_499() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let (_, closed) = raw_exchange(
        proxy.addr,
        b"GET /slow?ms=1500 HTTP/1.1\r\nHost: impatient.example.com\r\n\r\n",
        Duration::from_millis(200),
    )
    .await;
    assert!(!closed);
    let line = proxy.wait_line(|v| v["path"] == "/slow" && v.get("status").is_some());
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["error"], "client_closed");
    let report = report_json(&proxy).await;
    assert_eq!(host(&report, "impatient.example.com")["status"]["4xx"], 1);
}

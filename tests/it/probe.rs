//! Asking green itself (`--green-probe`), with a real nginx on loopback as green: hosts it serves,
//! a path its app lacks, a host it does not know (its default server), a host whose backend fails,
//! and an https listener whose certificate covers some names and not others.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::Request;

use crate::common::dns::{Rr, TestDns};
use crate::common::nginx::Nginx;
use crate::common::*;

/// nginx as green, stopped when dropped.
struct Green {
    nginx: Nginx,
    http: u16,
    https: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Green {
    fn start() -> Green {
        let dir = temp_dir("green-nginx");
        tls::generate(&dir.join("certs"), &["secure.test"]);
        let (http, https) = (free_port(), free_port());
        let d = dir.display();
        let cert = dir.join("certs/secure.test.crt");
        let key = dir.join("certs/secure.test.key");
        let (cert, key) = (cert.display(), key.display());
        let log = "access_log LOG probe;".replace("LOG", &format!("{d}/probes.log"));
        let conf = format!(
            r#"  log_format probe '$msec|$request_method|$host|$request_uri|$http_user_agent|$http_x_cutover_probe|$http_cookie|$http_authorization';
  {log}
  server {{ listen 127.0.0.1:{http} default_server; location / {{ return 404 "default backend - 404"; }} }}
  server {{ listen 127.0.0.1:{http}; server_name shop.test api.test;
           location /v1/pay {{ return 200 "pay"; }}
           location / {{ return 404 "the shop app has no such page"; }} }}
  server {{ listen 127.0.0.1:{http}; server_name broken.test; location / {{ return 503 "no healthy upstream"; }} }}
  server {{ listen 127.0.0.1:{https} ssl default_server; ssl_certificate {cert}; ssl_certificate_key {key};
           location / {{ return 404 "default backend - 404"; }} }}
  server {{ listen 127.0.0.1:{https} ssl; server_name secure.test nocert.shop.test; ssl_certificate {cert}; ssl_certificate_key {key};
           location / {{ return 200 "secure"; }} }}"#
        );
        Green { nginx: Nginx::start(dir, &conf, https), http, https }
    }

    /// Every probe green saw: (unix s, method, host, uri, user agent, x-cutover-probe, cookie, authorization).
    fn probes(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.nginx.dir.join("probes.log")).unwrap_or_default();
        text.lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
    }

    fn ca(&self) -> PathBuf {
        self.nginx.dir.join("certs/ca/ca.crt")
    }
}

/// Waits until every host's probe verdict is known (no path left unasked).
async fn probed(proxy: &ProxyProc, hosts: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = report_json(proxy).await;
        let done = hosts.iter().all(|h| {
            let p = &host(&report, h)["green"]["probe"];
            p["unprobed"] == 0 && !p["verdict"].is_null()
        });
        if done {
            return report;
        }
        assert!(Instant::now() < deadline, "probes did not finish: {report:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn dns_for(dns: &TestDns, hosts: &[&str]) {
    for h in hosts {
        dns.set(h, vec![(Rr::A(vec!["10.1.0.7".parse().unwrap()]), 60)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_is_asked_and_every_verdict_and_action_follows() {
    let green = Green::start();
    let up = Upstream::start().await;
    let dns = TestDns::start().await;
    let hosts = ["shop.test", "api.test", "unknown.test", "broken.test"];
    dns_for(&dns, &hosts);
    let (dns_addr, url, probe) = (dns.addr.to_string(), up.url(), format!("http://127.0.0.1:{}", green.http));
    let proxy = ProxyProc::start(&[
        "--upstream",
        &url,
        "--green-probe",
        &probe,
        "--green-probe-rate",
        "4",
        "--dns-server",
        &dns_addr,
        "--blue-target",
        "10.1.0.0/16",
        "--green-target",
        "10.2.0.0/16",
    ]);
    let started = proxy.wait_line(|v| v["event"] == "green_probe");
    assert_eq!(started["user_agent"].as_str().unwrap(), format!("cutover-proxy-probe/{}", env!("CARGO_PKG_VERSION")));
    let mut c = H1Client::connect(proxy.addr).await;
    for (h, path) in [
        ("shop.test", "/v1/pay/8?card=4111"),
        ("shop.test", "/v1/missing/1"),
        ("api.test", "/v1/pay/9"),
        ("unknown.test", "/x"),
        ("broken.test", "/"),
    ] {
        let req = Request::get(path)
            .header("host", h)
            .header("cookie", "session=secret")
            .header("authorization", "Bearer secret")
            .body(empty())
            .unwrap();
        assert_eq!(c.send(req).await.status, 200);
    }
    // A path seen only with POST is asked with HEAD.
    let post = Request::post("/v1/pay/refund").header("host", "api.test").body(empty()).unwrap();
    assert_eq!(c.send(post).await.status, 200);
    proxy.wait_access(6);

    let report = probed(&proxy, &hosts).await;
    assert_eq!(report["green"]["probe"], probe);
    let path = |h: &str, template: &str| -> serde_json::Value {
        host(&report, h)["paths"].as_array().unwrap().iter().find(|p| p["path"] == template).unwrap()["probe"].clone()
    };
    let pay = path("shop.test", "/v1/pay/{id}");
    assert_eq!(
        (pay["verdict"].as_str(), pay["status"].as_u64(), pay["method"].as_str()),
        (Some("served"), Some(200), Some("GET"))
    );
    assert_eq!(pay["path"], "/v1/pay/8", "the real path, never its query");
    let missing = path("shop.test", "/v1/missing/{id}");
    assert_eq!(missing["verdict"], "unrouted");
    assert_eq!(missing["detail"], "GET /v1/missing/1 → 404 where blue answers 2xx");
    let unknown = path("unknown.test", "/x");
    assert_eq!(unknown["detail"], "GET /x → 404 like green's default backend");
    let broken = path("broken.test", "/");
    assert_eq!((broken["verdict"].as_str(), broken["detail"].as_str()), (Some("failing"), Some("GET / → 503")));
    let refund = path("api.test", "/v1/pay/refund");
    assert_eq!((refund["method"].as_str(), refund["verdict"].as_str()), (Some("HEAD"), Some("served")));

    // Actions: green's answers decide, with no route table at all.
    let shop = host(&report, "shop.test");
    assert_eq!(shop["action"], "add-green-route", "{shop:#}");
    assert!(shop["reason"]
        .as_str()
        .unwrap()
        .contains("asked, green has no route for 1: GET /v1/missing/1 → 404 where blue answers 2xx"));
    assert_eq!(shop["green"]["probe"]["served"], 1);
    assert_eq!(shop["green"]["probe"]["unrouted"], 1);
    assert_eq!(host(&report, "unknown.test")["action"], "add-green-route");
    assert_eq!(host(&report, "broken.test")["action"], "fix-green");
    let api = host(&report, "api.test");
    assert_eq!(api["action"], "switch-dns", "the probe alone is evidence: {api:#}");

    // What green saw: only GET and HEAD, the probe's own headers, none of the client's.
    let seen = green.probes();
    assert!(!seen.is_empty());
    for p in &seen {
        assert!(p[1] == "GET" || p[1] == "HEAD", "{p:?}");
        assert!(p[3].find('?').is_none(), "no query string: {p:?}");
        if p[2].ends_with(".invalid") {
            continue; // the calibration
        }
        assert_eq!(p[4], format!("cutover-proxy-probe/{}", env!("CARGO_PKG_VERSION")), "{p:?}");
        assert_eq!(
            (p[5].as_str(), p[6].as_str(), p[7].as_str()),
            ("1", "-", "-"),
            "no Cookie, no Authorization: {p:?}"
        );
    }
    assert!(
        seen.iter().any(|p| p[2].starts_with("cutover-probe-") && p[2].ends_with(".invalid")),
        "calibrated: {seen:?}"
    );
    // The rate limit: at most 4 a second.
    let times: Vec<f64> = seen.iter().map(|p| p[0].parse().unwrap()).collect();
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= 0.2, "probes 1/4 s apart at least: {times:?}");
    }

    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    let count = |v: &str| -> u64 {
        let series = format!("cutover_green_probes_total{{verdict=\"{v}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    assert!(count("served") >= 2 && count("unrouted") >= 2 && count("failing") >= 1, "{metrics}");
    let (_, csv) = admin_get(proxy.admin, "/report.csv").await;
    assert!(csv.lines().next().unwrap().ends_with(",green_probe,path_probe,path_probe_detail"), "{csv}");
    assert!(csv.contains("GET / → 503"), "{csv}");
    wait_fresh_summary(proxy.admin).await;
    let (_, page) = admin_get(proxy.admin, "/").await;
    assert!(page.contains("asked: failing") && page.contains("fix-green"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_green_is_asked_with_the_host_as_sni_and_its_certificate_checked() {
    let green = Green::start();
    let up = Upstream::start().await;
    let (url, probe, ca) = (up.url(), format!("https://127.0.0.1:{}", green.https), green.ca());
    let proxy = ProxyProc::start(&[
        "--upstream",
        &url,
        "--green-probe",
        &probe,
        "--green-probe-ca",
        ca.to_str().unwrap(),
        "--green-probe-rate",
        "20",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    for h in ["secure.test", "nocert.shop.test", "other.test"] {
        assert_eq!(c.get(h, "/").await.status, 200);
    }
    proxy.wait_access(3);
    let report = probed(&proxy, &["secure.test", "nocert.shop.test"]).await;
    assert_eq!(host(&report, "secure.test")["green"]["probe"]["verdict"], "served");
    let nocert = &host(&report, "nocert.shop.test")["green"]["probe"];
    assert_eq!(
        (nocert["verdict"].as_str(), nocert["detail"].as_str()),
        (Some("failing"), Some("certificate does not cover nocert.shop.test"))
    );
    assert_eq!(host(&report, "nocert.shop.test")["action"], "fix-green");
    // The calibration asked past the certificate: an unknown host is green's default answer.
    let other = probed(&proxy, &["other.test"]).await;
    let other = &host(&other, "other.test")["green"]["probe"];
    assert_eq!(other["verdict"], "failing", "other.test has no certificate either: {other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_green_changes_verdicts_never_blue_traffic() {
    // Green accepts and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let probe = format!("http://{}", hung.local_addr().unwrap());
    let up = Upstream::start().await;
    let url = up.url();
    let proxy = ProxyProc::start(&[
        "--upstream",
        &url,
        "--green-probe",
        &probe,
        "--green-probe-timeout",
        "1s",
        "--green-probe-rate",
        "50",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    let mut took = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        assert_eq!(c.get(&format!("h{}.test", i % 20), &format!("/p/{i}")).await.status, 200);
        took.push(started.elapsed());
    }
    took.sort();
    assert!(
        took[took.len() * 99 / 100] < Duration::from_millis(100),
        "p99 {:?} with green hung",
        took[took.len() * 99 / 100]
    );
    let report = probed(&proxy, &["h0.test"]).await;
    let p = &host(&report, "h0.test")["green"]["probe"];
    assert_eq!(p["verdict"], "failing");
    assert!(p["detail"].as_str().unwrap().ends_with("timed out after 1s"), "{p}");
    drop(hung);
}

#[test]
fn analyze_asks_green_about_last_weeks_hosts() {
    let green = Green::start();
    let dir = temp_dir("analyze-probe");
    let log = dir.join("access.log");
    let line = |host: &str, uri: &str| {
        format!(
            r#"{{"time_iso8601":"2026-11-20T10:00:00Z","remote_addr":"203.0.113.7","http_host":"{host}","request_method":"GET","request_uri":"{uri}","status":200}}"#
        )
    };
    let lines = [line("shop.test", "/v1/pay/8"), line("broken.test", "/"), line("unknown.test", "/x")];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let probe = format!("http://127.0.0.1:{}", green.http);
    let (code, out, err) = run_binary(
        &[
            "analyze",
            "--format",
            "nginx-json",
            "--green-probe",
            &probe,
            "--green-probe-rate",
            "50",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let verdict = |h: &str| host(&report, h)["green"]["probe"]["verdict"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        (verdict("shop.test"), verdict("broken.test"), verdict("unknown.test")),
        ("served".into(), "failing".into(), "unrouted".into())
    );
    assert_eq!(host(&report, "broken.test")["action"], "fix-green");
    std::fs::remove_dir_all(&dir).ok();
}

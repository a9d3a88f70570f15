//! DNS evidence end to end: a real DNS server on loopback, the real proxy resolving every host it
//! sees, and the report's verdicts and actions — one test per action, the TTL window moving a host
//! from `switch-dns` to `wait-ttl` to `fix-clients`, and `--close-stale-connections`.

use crate::common::dns as test_dns;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::common::*;
use http::Request;
use test_dns::{Rr, TestDns};

const BLUE_LB: &str = "k8s-blue-web-1a2b.eu-west-1.elb.amazonaws.com";
const GREEN_LB: &str = "k8s-green-web-3c4d.eu-west-1.elb.amazonaws.com";

/// Green serves every path of these hosts, but not `missing.example.com`.
const GREEN_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  hostnames: ["api.example.com", "split.example.com", "gone.example.com", "odd.example.com",
              "dead.example.com", "move.example.com", "quiet.example.com"]
  rules:
  - backendRefs: [{name: web, port: 80}]
"#;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

async fn dns_with_targets() -> TestDns {
    let dns = TestDns::start().await;
    dns.set(BLUE_LB, vec![(Rr::A(vec![ip("10.1.0.5"), ip("10.1.0.6")]), 60)]);
    dns.set(GREEN_LB, vec![(Rr::A(vec![ip("10.2.0.5")]), 60)]);
    dns
}

/// Polls the report until `done` holds for it (bounded by WAIT).
async fn report_until(proxy: &ProxyProc, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let r = report_json(proxy).await;
        if done(&r) {
            return r;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}: {r:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_proxy(upstream: &Upstream, dns: &TestDns, routes: &std::path::Path, extra: &[&str]) -> ProxyProc {
    let (dns_server, url) = (dns.addr.to_string(), upstream.url());
    let mut args = vec![
        "--upstream",
        url.as_str(),
        "--green-routes",
        routes.to_str().unwrap(),
        "--dns-server",
        &dns_server,
        "--blue-target",
        BLUE_LB,
        "--green-target",
        GREEN_LB,
        "--green-target",
        "10.2.0.0/16",
        "--dns-timeout",
        "300ms",
        "--dns-samples",
        "4",
    ];
    args.extend_from_slice(extra);
    ProxyProc::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dns_verdict_gives_its_action() {
    let upstream = Upstream::start().await;
    let dns = dns_with_targets().await;
    dns.set("api.example.com", vec![(Rr::Cname(BLUE_LB.into()), 300)]);
    // A weighted record: answers alternate between the two load balancers.
    dns.set("split.example.com", vec![(Rr::Cname(BLUE_LB.into()), 60), (Rr::Cname(GREEN_LB.into()), 60)]);
    dns.set("odd.example.com", vec![(Rr::A(vec![ip("203.0.113.9")]), 60)]);
    dns.set("missing.example.com", vec![(Rr::A(vec![ip("10.2.7.7")]), 60)]);
    dns.silence("dead.example.com");
    let dir = temp_dir("verdicts");
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let proxy = start_proxy(&upstream, &dns, &routes, &[]);

    let mut c = H1Client::connect(proxy.addr).await;
    for h in [
        "api.example.com",
        "split.example.com",
        "gone.example.com",
        "odd.example.com",
        "dead.example.com",
        "missing.example.com",
        "10.1.0.5",
    ] {
        assert_eq!(c.get(h, "/v1/orders").await.status, 200, "{h} is forwarded whatever its DNS says");
    }
    let r = report_until(&proxy, "every host resolved", |r| {
        ["api", "split", "gone", "odd", "dead", "missing"]
            .iter()
            .all(|n| host(r, &format!("{n}.example.com"))["dns"]["resolved_at"].is_string())
    })
    .await;

    let api = host(&r, "api.example.com");
    assert_eq!(api["dns"]["verdict"], "blue");
    assert_eq!(api["dns"]["source"], "live");
    assert_eq!(api["dns"]["chain"][0], BLUE_LB);
    assert_eq!(api["dns"]["ttl"], 60, "lowest TTL of the chain");
    assert_eq!(api["dns"]["max_ttl"], 300);
    assert!(api["dns"]["answers"].as_array().unwrap().iter().all(|a| a["side"] == "blue"), "{api}");
    assert_eq!(api["action"], "switch-dns");

    let split = host(&r, "split.example.com");
    assert_eq!(split["dns"]["verdict"], "split", "samples caught both weighted answers: {split}");
    assert_eq!(split["action"], "switch-dns");

    let gone = host(&r, "gone.example.com");
    assert_eq!(
        (gone["dns"]["verdict"].as_str(), gone["dns"]["error"].as_str()),
        (Some("unresolvable"), Some("NXDOMAIN"))
    );
    assert_eq!(gone["action"], "investigate-dns");

    let odd = host(&r, "odd.example.com");
    assert_eq!(odd["dns"]["verdict"], "unknown-target");
    assert_eq!(odd["dns"]["answers"][0]["side"], "neither");
    assert_eq!(odd["action"], "investigate-dns");

    let dead = host(&r, "dead.example.com");
    assert_eq!(dead["dns"]["verdict"], "unresolvable", "{dead}");
    assert!(dead["dns"]["error"].as_str().unwrap().contains("in time"), "{dead}");
    assert_eq!(dead["action"], "investigate-dns");

    let missing = host(&r, "missing.example.com");
    assert_eq!(missing["dns"]["verdict"], "green", "a green CIDR target: {missing}");
    assert_eq!((missing["action"].as_str(), missing["urgent"].as_bool()), (Some("add-green-route"), Some(true)));

    let ip_host = host(&r, "10.1.0.5");
    assert_eq!(ip_host["action"], "fix-hardcoded");
    assert_eq!(ip_host["dns"]["verdict"], "unknown", "IP literals are not resolved");

    // The DNS server never sits on the request path: with a silent server, requests are as quick.
    let t = Instant::now();
    for i in 0..20 {
        assert_eq!(c.get(&format!("new{i}.dead.example.com"), "/").await.status, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(2), "20 requests for unresolvable hosts took {:?}", t.elapsed());
    let summary = proxy.wait_line(|v| v["event"] == "dns_evidence");
    assert_eq!(summary["live"], true);
}

/// Clients that send a load balancer's name as Host reach blue without DNS: a configured target's
/// name counts, not only an AWS-shaped one, and neither is judged as a host to move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_named_like_a_configured_target_is_fix_hardcoded() {
    let upstream = Upstream::start().await;
    let (url, dir) = (upstream.url(), temp_dir("target-names"));
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let proxy = ProxyProc::start(&[
        "--upstream",
        url.as_str(),
        "--green-routes",
        routes.to_str().unwrap(),
        "--no-live-dns",
        "--blue-target",
        "blue-ingress.internal.example",
        "--green-target",
        "green-ingress.internal.example",
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    for h in ["blue-ingress.internal.example", "Green-Ingress.internal.example.:8080", "api.example.com"] {
        assert_eq!(c.get(h, "/v1/orders").await.status, 200);
    }
    proxy.wait_access(3);
    let r = report_json(&proxy).await;
    for name in ["blue-ingress.internal.example", "green-ingress.internal.example"] {
        let h = host(&r, name);
        assert_eq!((h["action"].as_str(), h["hardcoded"].as_bool()), (Some("fix-hardcoded"), Some(true)), "{h}");
        assert!(h["reason"].as_str().unwrap().contains("directly"), "{h}");
    }
    assert_eq!(host(&r, "api.example.com")["hardcoded"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_moves_from_switch_dns_to_wait_ttl_to_fix_clients() {
    let upstream = Upstream::start().await;
    let dns = dns_with_targets().await;
    dns.set("move.example.com", vec![(Rr::Cname(BLUE_LB.into()), 1)]);
    dns.set(BLUE_LB, vec![(Rr::A(vec![ip("10.1.0.5")]), 1)]);
    dns.set(GREEN_LB, vec![(Rr::A(vec![ip("10.2.0.5")]), 1)]);
    let dir = temp_dir("move");
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let proxy = start_proxy(&upstream, &dns, &routes, &["--ttl-grace", "5s", "--close-stale-connections"]);

    // A keep-alive client that opened its connection before the move.
    let mut old = H1Client::connect(proxy.addr).await;
    let got = old
        .send(
            Request::get("/cart")
                .header("host", "move.example.com")
                .header("user-agent", "Java/1.8.0_202")
                .body(empty())
                .unwrap(),
        )
        .await;
    assert_eq!(got.status, 200);
    assert!(got.headers.get("connection").is_none(), "no close while DNS points at blue");
    let r = report_until(&proxy, "blue", |r| host(r, "move.example.com")["dns"]["verdict"] == "blue").await;
    assert_eq!(host(&r, "move.example.com")["action"], "switch-dns");

    // The operator switches the record.
    dns.set("move.example.com", vec![(Rr::Cname(GREEN_LB.into()), 1)]);
    let r = report_until(&proxy, "green", |r| host(r, "move.example.com")["dns"]["verdict"] == "green").await;
    let dns_ev = &host(&r, "move.example.com")["dns"];
    assert!(dns_ev["green_since"].is_string() && dns_ev["window_ends_at"].is_string(), "{dns_ev}");
    let got = old
        .send(
            Request::get("/cart")
                .header("host", "move.example.com")
                .header("user-agent", "Java/1.8.0_202")
                .body(empty())
                .unwrap(),
        )
        .await;
    assert_eq!(got.status, 200, "a stale connection is still answered");
    assert_eq!(got.headers.get("connection").map(|v| v.to_str().unwrap()), Some("close"), "--close-stale-connections");
    let line = proxy.wait_line(|v| v["host"] == "move.example.com" && v["stale_conn"] == true);
    assert_eq!(line["status"], 200);
    let r = report_json(&proxy).await;
    let h = host(&r, "move.example.com");
    assert_eq!(h["action"], "wait-ttl", "{h:#}");
    assert_eq!(h["opened_before_move_requests"], 1);

    // Past the window (largest TTL 1 s + 5 s grace), a client still comes: it caches DNS.
    let end = report::parse(h["dns"]["window_ends_at"].as_str().unwrap());
    while report::now_ms() <= end + 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cached = H1Client::connect(proxy.addr).await;
    let lines = proxy.access_lines().len();
    assert_eq!(cached.get("move.example.com", "/cart").await.status, 200);
    proxy.wait_access(lines + 1);
    let r = report_json(&proxy).await;
    let h = host(&r, "move.example.com");
    assert_eq!(h["action"], "fix-clients", "{h:#}");
    let late = h["late_clients"].as_array().unwrap();
    let java = late.iter().find(|c| c["user_agent"] == "Java/1.8.0_202").unwrap_or_else(|| panic!("{h:#}"));
    assert_eq!((java["ip"].as_str(), java["opened_before_move"].as_bool()), (Some("127.0.0.1"), Some(true)));
    let fresh = late.iter().find(|c| c["user_agent"] == "").unwrap_or_else(|| panic!("{h:#}"));
    assert_eq!(fresh["opened_before_move"], false, "a new connection to blue after the move: cached DNS");
    assert!(h["reason"].as_str().unwrap().contains("127.0.0.1"), "{h}");

    // HTTP/2: a GOAWAY after the response instead of Connection: close.
    let mut h2 = H2Client::connect(proxy.addr).await;
    let got = h2.send(Request::get("http://move.example.com/cart").body(empty()).unwrap()).await;
    assert_eq!(got.status, 200);
    let start = Instant::now();
    while !h2.is_closed() {
        assert!(start.elapsed() < Duration::from_secs(5), "the HTTP/2 connection was not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_arriving_gets_none() {
    let upstream = Upstream::start().await;
    let dns = dns_with_targets().await;
    dns.set("quiet.example.com", vec![(Rr::Cname(GREEN_LB.into()), 1)]);
    let dir = temp_dir("quiet");
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let proxy = start_proxy(&upstream, &dns, &routes, &["--quiet-period", "1s"]);
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("quiet.example.com", "/").await.status, 200);
    let r = report_until(&proxy, "none", |r| host(r, "quiet.example.com")["action"] == "none").await;
    assert_eq!(host(&r, "quiet.example.com")["dns"]["verdict"], "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stale_connections_sends_goaway_to_http2_over_tls() {
    use crate::common::tls::{client_config, connect, generate};
    let upstream = Upstream::start().await;
    let dns = dns_with_targets().await;
    dns.set("tls.example.com", vec![(Rr::Cname(GREEN_LB.into()), 60)]);
    let dir = temp_dir("tls-stale");
    generate(&dir, &["tls.example.com"]);
    let routes = dir.join("green.yaml");
    std::fs::write(
        &routes,
        GREEN_ROUTES.replace("\"quiet.example.com\"", "\"quiet.example.com\", \"tls.example.com\""),
    )
    .unwrap();
    let cert_dir = dir.to_str().unwrap().to_owned();
    let proxy = start_proxy(
        &upstream,
        &dns,
        &routes,
        &["--tls-listen", "127.0.0.1:0", "--cert-dir", &cert_dir, "--close-stale-connections"],
    );
    // First sighting, then DNS says green.
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("tls.example.com", "/").await.status, 200);
    report_until(&proxy, "green", |r| host(r, "tls.example.com")["dns"]["verdict"] == "green").await;

    let config = client_config(&dir.join("ca/ca.crt"), &[b"h2"]);
    let tls = connect(proxy.listener("tls"), "tls.example.com", config).await;
    let (tx, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut h2 = H2Client::from_sender(tx);
    let got = h2.send(Request::get("https://tls.example.com/cart").body(empty()).unwrap()).await;
    assert_eq!(got.status, 200, "the request itself is answered");
    let start = Instant::now();
    while !h2.is_closed() {
        assert!(start.elapsed() < Duration::from_secs(5), "no GOAWAY on the TLS listener");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Time helpers for the window.
mod report {
    pub fn parse(s: &str) -> u64 {
        cutover_proxy::internals::parse_rfc3339(s).expect("RFC 3339")
    }
    pub fn now_ms() -> u64 {
        cutover_proxy::internals::unix_ms()
    }
}

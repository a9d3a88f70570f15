//! The dashboard as a person sees it: real traffic through the real proxy, then `GET /` on the admin
//! listener loaded in headless Chromium (Debian's `chromium`; .ci/run installs it). The rendered DOM
//! must show the hosts and their actions, and a screenshot is taken at a laptop's 1440×900.
//!
//! The screenshot goes to the test's temporary folder; with `CUTOVER_SCREENSHOT=docs/dashboard.png`
//! it replaces the README's picture.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

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
      - {path: /robots.txt, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public-api, namespace: api}
spec:
  hostnames: ["api.example.com", "*.tenant.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: api, port: 80}]
"#;

/// (host, path, requests)
const TRAFFIC: &[(&str, &str, usize)] = &[
    ("shop.example.com", "/api/cart/17", 60),
    ("shop.example.com", "/checkout", 12),
    ("api.example.com", "/v1/users/42/orders", 45),
    ("a.tenant.example.com", "/v1/reports/9", 20),
    ("legacy.example.com", "/soap/OrderService", 15),
    ("10.0.0.7", "/internal/metrics", 6),
    ("k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com", "/v1/ping", 3),
];

/// Debian's `chromium` (or another Chromium on PATH); a missing browser fails the test.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("headless Chromium is required for the dashboard test: apt-get install -y chromium (.ci/run installs it)");
}

/// Runs Chromium headless with `args` and the URL; returns stdout. Killed after a minute.
fn headless(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {args:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_hosts_by_action_in_chromium() {
    let browser = chromium();
    let dir = std::env::temp_dir().join(format!("cutover-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--green-routes", routes.to_str().unwrap()]);
    let mut c = H1Client::connect(proxy.addr).await;
    for (host, path, n) in TRAFFIC {
        for _ in 0..*n {
            assert_eq!(c.get(host, path).await.status, 200);
        }
    }

    let url = format!("http://{}/", proxy.admin);
    wait_fresh_summary(proxy.admin).await;
    let (status, html) = admin_get(proxy.admin, "/").await;
    assert_eq!(status, 200);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "self-contained: no external asset");

    let dom = headless(&dir.join("profile"), &["--dump-dom"], &url);
    for (host, _, n) in TRAFFIC {
        assert!(dom.contains(host), "{host} is not on the page:\n{dom}");
        let _ = n;
    }
    for (id, hosts) in [("fix-hardcoded", 2), ("add-green-route", 2), ("unknown", 2)] {
        let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no {id} group:\n{dom}"));
        let section = &dom[at..at + dom[at..].find("</section>").unwrap()];
        assert!(section.contains(&format!("{hosts} host(s)")), "{id}: {section}");
        assert_eq!(section.matches("<svg class=\"spark\"").count(), hosts, "one sparkline per host in {id}");
    }
    let order: Vec<usize> = ["fix-hardcoded", "add-green-route", "unknown"]
        .iter()
        .map(|id| dom.find(&format!("id=\"{id}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "groups in working order");
    let shop = dom.find("shop.example.com</td>").expect("shop row");
    assert!(dom[shop..].contains("green does not route 1 of 2 seen paths: /checkout"), "the reason is shown");
    assert!(dom.contains("<strong>161</strong>"), "total requests at the top");
    assert!(browser.exists());

    let shot = dir.join("dashboard.png");
    headless(
        &dir.join("profile"),
        &["--hide-scrollbars", "--window-size=1440,900", &format!("--screenshot={}", shot.display())],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(png_size(&png), (1440, 900));
    assert!(png.len() > 20_000, "a blank page compresses to almost nothing: {} bytes", png.len());
    if let Ok(target) = std::env::var("CUTOVER_SCREENSHOT") {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join(target);
        std::fs::copy(&shot, &target).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}

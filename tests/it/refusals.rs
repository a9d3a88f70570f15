//! What the proxy answers or drops itself, on raw sockets: the Host rules of RFC 9112 §3.2, the
//! upgrades it passes, request bodies that break off or stall. Each refusal is a real status on
//! the wire and an access line with its cause; nothing refused reaches blue.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// The status line's code and the body (after the head) of a raw answer.
fn answer(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// The values of header `name` that the echoing upstream says it received, from a raw answer.
fn seen(raw: &[u8], name: &str) -> Vec<String> {
    let echo: serde_json::Value = serde_json::from_str(&answer(raw).1).unwrap();
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_of_rfc_9112() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let wait = Duration::from_secs(5);

    let (raw, _) =
        raw_exchange(proxy.addr, b"GET /a HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n", wait).await;
    assert_eq!(answer(&raw).0, 400, "{}", String::from_utf8_lossy(&raw));
    let (raw, _) = raw_exchange(proxy.addr, b"GET /a HTTP/1.1\r\nUser-Agent: t\r\n\r\n", wait).await;
    assert_eq!(answer(&raw).0, 400, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(up.connections(), 0, "nothing refused reached blue");
    let lines = proxy.wait_access(2);
    let by_cause = |c: &str| lines.iter().find(|l| l["error"] == c).unwrap_or_else(|| panic!("{c} in {lines:?}"));
    assert_eq!(by_cause("client_host_repeated")["status"], 400);
    assert_eq!(by_cause("client_host_repeated")["host"], "(invalid)");
    assert_eq!(by_cause("client_host_missing")["status"], 400);

    // HTTP/1.0 may come without Host: forwarded, recorded as (none).
    let (raw, _) = raw_exchange(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n", wait).await;
    assert_eq!(answer(&raw).0, 200, "{}", String::from_utf8_lossy(&raw));
    // An absolute-form target's authority wins over the Host header, toward blue and in the log.
    let (raw, _) = raw_exchange(
        proxy.addr,
        b"GET http://abs.example.com/p?q=1 HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    let (code, body) = answer(&raw);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&raw));
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen(&raw, "host"), ["abs.example.com"]);
    assert_eq!(echo["uri"], "/p?q=1");
    let lines = proxy.wait_access(4);
    let by_path = |p: &str| lines.iter().find(|l| l["path"] == p).unwrap_or_else(|| panic!("{p} in {lines:?}"));
    assert!(by_path("/old")["host"].is_null() && by_path("/old")["status"] == 200, "{}", by_path("/old"));
    assert_eq!(by_path("/p")["host"], "abs.example.com");
    let report = report_json(&proxy).await;
    assert_eq!(host(&report, "(invalid)")["requests"], 1);
    assert_eq!(host(&report, "(none)")["requests"], 2, "the missing Host and the HTTP/1.0 request");
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    for cause in ["client_host_repeated", "client_host_missing"] {
        assert!(metrics.contains(&format!("cause=\"{cause}\"}} 1")), "{cause} counted: {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_websocket_and_allowed_upgrades_reach_blue() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--allow-upgrade", "x-custom"]);
    let wait = Duration::from_secs(5);
    let ask = |proto: &str| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: up.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {proto}\r\n\
             HTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n"
        )
    };
    for proto in ["h2c", "unknown/1.0"] {
        let (raw, _) = raw_exchange(proxy.addr, ask(proto).as_bytes(), wait).await;
        let (code, body) = answer(&raw);
        assert_eq!(code, 200, "answered as a plain request: {}", String::from_utf8_lossy(&raw));
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> = echo["headers"].as_array().unwrap().iter().map(|h| h[0].as_str().unwrap()).collect();
        for dropped in ["upgrade", "connection", "http2-settings"] {
            assert!(!names.contains(&dropped), "{proto}: {dropped} reached blue: {names:?}");
        }
    }
    // Only the allowed protocols of a list go on.
    let (raw, _) = raw_exchange(proxy.addr, ask("h2c, x-custom/2").as_bytes(), wait).await;
    let upgrade = seen(&raw, "upgrade");
    assert_eq!(upgrade, ["x-custom/2"], "h2c taken out of the list");
    let (raw, _) = raw_exchange(proxy.addr, ask("x-custom").as_bytes(), wait).await;
    let upgrade = seen(&raw, "upgrade");
    assert_eq!(upgrade, ["x-custom"], "an allowed protocol is passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_that_break_or_stall_are_the_clients_fault() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--client-body-timeout",
        "1s",
        "--client-body-min-rate",
        "50",
        "--upstream-timeout",
        "30s",
    ]);
    let wait = Duration::from_secs(8);
    // A chunk size that is not hex: 400 on the wire (never a 499 without a reason).
    let (raw, _) = raw_exchange(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: up.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
        wait,
    )
    .await;
    assert!(raw.starts_with(b"HTTP/1.1 400 Bad Request\r\n"), "{}", String::from_utf8_lossy(&raw));

    // A body that goes silent: 408 after the client body timeout, not 504 after blue's.
    let started = Instant::now();
    let (raw, _) = raw_exchange(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: up.example.com\r\nContent-Length: 100\r\n\r\nabc",
        wait,
    )
    .await;
    assert!(raw.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"), "{}", String::from_utf8_lossy(&raw));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // A body trickling below the minimum rate (50 B/s over each second): cut the same way.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: up.example.com\r\nContent-Length: 1000\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < wait {
        let _ = s.write_all(b"x").await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    assert!(got.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&got));
    let lines = proxy.wait_access(3);
    let mut causes: Vec<(u64, &str)> =
        lines.iter().map(|l| (l["status"].as_u64().unwrap(), l["error"].as_str().unwrap_or(""))).collect();
    causes.sort();
    assert_eq!(causes, [(400, "client_aborted"), (408, "client_body_timeout"), (408, "client_body_timeout")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_hyper_refuses_get_an_access_line_and_a_count() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let wait = Duration::from_secs(5);
    let (raw, _) =
        raw_exchange(proxy.addr, b"GET /a HTTP/1.1\r\nHost: a.example.com\r\nBad Header: x\r\n\r\n", wait).await;
    assert!(raw.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&raw));
    // A head over 64 KiB (nginx's limit is 4 x 8 KiB lines; the count of fields has none).
    let mut many = String::from("GET /a HTTP/1.1\r\nHost: a.example.com\r\n");
    for i in 0..1100 {
        many.push_str(&format!("X-Header-{i:04}: {}\r\n", "v".repeat(48)));
    }
    many.push_str("\r\n");
    let (raw, _) = raw_exchange(proxy.addr, many.as_bytes(), wait).await;
    assert!(raw.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&raw));
    let lines = proxy.wait_access(2);
    let mut seen: Vec<(u64, &str)> =
        lines.iter().map(|l| (l["status"].as_u64().unwrap(), l["error"].as_str().unwrap())).collect();
    seen.sort();
    assert_eq!(seen, [(400, "client_bad_request"), (431, "client_header_too_large")]);
    assert_eq!(up.connections(), 0);
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    assert!(metrics.contains("cause=\"client_header_too_large\"} 1"), "{metrics}");
}

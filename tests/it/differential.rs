//! cutover-proxy against nginx (`proxy_pass`) as the reference, on raw sockets: both in front of
//! one upstream that records the bytes it receives. For each request of the corpus, the status
//! the client gets, whether blue received anything, the target blue received byte for byte, and
//! the end-to-end headers in order must be nginx's, and header names keep their case both ways.
//! Differences kept on purpose are in `ACCEPTED` with their reason; differences still open would
//! be in `KNOWN`. The test fails when an entry of either goes away too, so the lists stay true.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::nginx::Nginx;
use crate::common::*;

/// What blue received of one request: the target and the headers (name as sent, value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// An upstream that parses each request head (httparse), reads a Content-Length body, records
/// what it got and answers with mixed-case headers, closing the connection.
async fn recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut headers = [httparse::EMPTY_HEADER; 256];
                    let mut req = httparse::Request::new(&mut headers);
                    match req.parse(&buf) {
                        Ok(httparse::Status::Complete(_)) => {
                            let start = buf.iter().position(|b| *b == b' ').unwrap_or(0) + 1;
                            let len = buf[start..].iter().position(|b| *b == b' ').unwrap_or(0);
                            let got = Received {
                                target: buf[start..start + len].to_vec(),
                                headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
                            };
                            log.lock().unwrap().push(got);
                            break;
                        }
                        Ok(httparse::Status::Partial) => continue,
                        Err(_) => return,
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nX-Mixed-Case: Kept\r\nETag: \"v1\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, seen)
}

/// nginx in front of `upstream` as a plain reverse proxy; its address.
fn nginx(upstream: SocketAddr) -> (Nginx, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = format!(
        r#"  access_log off;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }}
  }}"#
    );
    (Nginx::start(temp_dir("differential-nginx"), &conf, port), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Headers each proxy adds or owns (hop-by-hop, forwarding, framing): left out of the comparison.
const OWN: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// What one proxy did with one request.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: u16,
    forwarded: Option<(String, Vec<(String, String)>)>,
}

async fn exchange(proxy: SocketAddr, raw: &[u8], seen: &Arc<Mutex<Vec<Received>>>) -> (Outcome, Vec<u8>) {
    let before = seen.lock().unwrap().len();
    let (answer, _) = raw_exchange(proxy, raw, Duration::from_millis(1500)).await;
    let text = String::from_utf8_lossy(&answer);
    // The final status: 1xx interim answers (nginx sends 100 Continue to any Expect) skipped.
    let status = text
        .split("\r\n\r\n")
        .filter_map(|head| head.strip_prefix("HTTP/1.").and_then(|t| t.get(2..5)).and_then(|c| c.parse::<u16>().ok()))
        .find(|c| *c >= 200)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let got = seen.lock().unwrap()[before..].first().cloned();
    let forwarded = got.map(|r| {
        let headers = r
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned()))
            .filter(|(n, _)| !OWN.contains(&n.as_str()))
            .collect();
        (String::from_utf8_lossy(&r.target).into_owned(), headers)
    });
    (Outcome { status, forwarded }, answer)
}

/// The corpus: (name, raw request). Each asks the connection to close, so one request is one
/// exchange for both proxies.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let get = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: shop.example.com\r\n{extra}Connection: close\r\n\r\n").into_bytes()
    };
    let targets: &[(&str, &str)] = &[
        ("plain", "/a/b"),
        ("query", "/search?q=shoes&page=2"),
        ("JSON in a query", "/a?q={\"x\":1}"),
        ("backtick", "/a`b"),
        ("angle brackets", "/a<b>"),
        ("script in a query", "/a?q=<script>"),
        ("pipe and caret", "/a|b^c"),
        ("backslash", "/a\\b"),
        ("bad percent escape", "/%zz"),
        ("percent-encoded", "/a%20b%2Fc"),
        ("matrix parameters", "/a;p=1/b"),
        ("double slash", "/a//b"),
        ("dot segments", "/./a/../b"),
        ("repeated query keys", "/a?x=1&x=2"),
        ("empty query", "/a?"),
        ("root query", "/?"),
        ("tilde and plus", "/~user/a+b"),
        ("brackets", "/a[0]"),
        ("long target", "/LONG"),
    ];
    for (name, t) in targets {
        let t = if *t == "/LONG" { format!("/{}", "x".repeat(4000)) } else { (*t).to_owned() };
        out.push(((*name).to_owned(), get(&t, "")));
    }
    let mut utf8 = b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n".to_vec();
    out.push(("UTF-8 bytes in the target".into(), std::mem::take(&mut utf8)));
    let headers: &[(&str, &str)] = &[
        ("mixed-case header names", "X-Request-ID: abc\r\nX-Mixed-Case: v\r\n"),
        ("repeated headers in order", "X-A: 1\r\nX-B: 2\r\nX-A: 3\r\n"),
        ("two cookies", "Cookie: a=1\r\nCookie: b=2\r\n"),
        ("empty value", "X-Empty:\r\n"),
        ("value with inner spaces", "X-V: a  b   c\r\n"),
        ("value with a tab", "X-V: a\tb\r\n"),
        ("value with UTF-8", "X-V: caf\u{e9}\r\n"),
        ("accept-encoding", "Accept-Encoding: gzip, br\r\n"),
        ("authorization", "Authorization: Bearer abc.def\r\n"),
        ("user agent", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"),
        ("x-forwarded-for from the client", "X-Forwarded-For: 203.0.113.9\r\n"),
        ("expect without body", "Expect: 100-continue\r\n"),
        ("hop-by-hop named in Connection", "Connection: X-Secret\r\nX-Secret: 1\r\n"),
        ("proxy-connection", "Proxy-Connection: keep-alive\r\n"),
        ("TE trailers", "TE: trailers\r\n"),
        ("upgrade h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"),
        ("100 headers", "MANY100"),
        ("101 headers", "MANY101"),
        ("an 8 KiB header line", "LONGLINE"),
    ];
    for (name, h) in headers {
        let h = match *h {
            "MANY100" => (0..98).map(|i| format!("X-H{i}: v\r\n")).collect(),
            "MANY101" => (0..101).map(|i| format!("X-H{i}: v\r\n")).collect(),
            "LONGLINE" => format!("X-Long: {}\r\n", "v".repeat(8000)),
            other => other.to_owned(),
        };
        out.push(((*name).to_owned(), get("/h", &h)));
    }
    let raws: &[(&str, &str)] = &[
        ("two Host", "GET /a HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n"),
        ("no Host on HTTP/1.1", "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ("no Host on HTTP/1.0", "GET /a HTTP/1.0\r\n\r\n"),
        ("Host with a port", "GET /a HTTP/1.1\r\nHost: shop.example.com:8080\r\nConnection: close\r\n\r\n"),
        ("Host in capitals", "GET /a HTTP/1.1\r\nHost: SHOP.Example.COM\r\nConnection: close\r\n\r\n"),
        ("Host with a trailing dot", "GET /a HTTP/1.1\r\nHost: shop.example.com.\r\nConnection: close\r\n\r\n"),
        ("empty Host", "GET /a HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"),
        ("Host of an IP", "GET /a HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n"),
        ("absolute-form target", "GET http://abs.example.com/p HTTP/1.1\r\nHost: abs.example.com\r\nConnection: close\r\n\r\n"),
        ("HEAD", "HEAD /a HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("DELETE", "DELETE /a/1 HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("OPTIONS a path", "OPTIONS /a HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("extension method", "PURGE /a HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("lowercase method", "get /a HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("POST with JSON in a query", "POST /api?q={\"x\":1} HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"a\":1}\n"),
        ("POST with a body", "POST /form HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\na=1&b=2"),
        ("PUT chunked", "PUT /up HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("chunked with JSON in a query", "POST /api?q={\"x\":1} HTTP/1.1\r\nHost: shop.example.com\r\nX-Request-ID: abc\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("chunked with an extension and trailers", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        ("chunked in capitals", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("chunked with Expect", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("chunked with a bare LF", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\nabc\r\n0\r\n\r\n"),
        ("HTTP/1.0 keep-alive", "GET /a HTTP/1.0\r\nHost: shop.example.com\r\n\r\n"),
        ("two different Content-Length", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 3\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd"),
        ("TE not ending in chunked", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "GET /a HTTP/1.1\r\nHost: shop.example.com\r\nX-A: b\r\n c\r\nConnection: close\r\n\r\n"),
        ("space before the colon", "GET /a HTTP/1.1\r\nHost: shop.example.com\r\nX-A : b\r\nConnection: close\r\n\r\n"),
        ("NUL in a value", "GET /a HTTP/1.1\r\nHost: shop.example.com\r\nX-A: b\u{0}c\r\nConnection: close\r\n\r\n"),
        ("chunk size overflow", "POST /a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nfffffffffffffffffff1\r\nx\r\n0\r\n\r\n"),
        ("space in the target", "GET /a b HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
        ("HTTP/1.2", "GET /a HTTP/1.2\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n"),
    ];
    for (name, raw) in raws {
        out.push(((*name).to_owned(), raw.as_bytes().to_vec()));
    }
    out
}

/// Where cutover-proxy differs from nginx on purpose, and why.
const ACCEPTED: &[(&str, &str)] = &[
    ("TE not ending in chunked", "400, as RFC 9112 §6.3 says; nginx answers 501"),
    (
        "chunked with a bare LF",
        "400: a chunk line ends in CRLF (RFC 9112 §7.1); a lone LF is how chunk-line smuggling starts; nginx takes it",
    ),
    ("bad percent escape", "forwarded as ALB forwards it; nginx refuses to decode it, and may"),
    ("hop-by-hop named in Connection", "removed: RFC 9110 §7.6.1; nginx forwards it"),
    ("proxy-connection", "removed as hop-by-hop (RFC 9110 §7.6.1), as Envoy and HAProxy do"),
    ("upgrade h2c", "HTTP2-Settings is named in Connection: removed with it"),
    ("OPTIONS *", "the asterisk form is valid HTTP (RFC 9112 §3.2.4): forwarded; nginx refuses it"),
    ("lowercase method", "methods are case-sensitive tokens: `get` is forwarded as sent; nginx refuses it"),
    ("empty Host", "valid for a target without authority (RFC 9112 §3.2): forwarded; nginx refuses it"),
    (
        "no Host on HTTP/1.0",
        "blue is spoken to in HTTP/1.1, which needs a Host: its address, as nginx's default $proxy_host",
    ),
];

/// Where cutover-proxy still differs from nginx (none since the proxy reads HTTP/1.1 itself).
const KNOWN: &[&str] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_blue_as_nginx_forwards_them() {
    let (up, seen) = recording_upstream().await;
    let (_nginx, reference) = nginx(up);
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}"), "--client-body-timeout", "1s"]);
    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut differ = BTreeMap::new();
    for (name, raw) in &cases {
        let (want, _) = exchange(reference, raw, &seen).await;
        let (got, answer) = exchange(proxy.addr, raw, &seen).await;
        if got != want {
            differ.insert(
                name.clone(),
                (want, got, String::from_utf8_lossy(&answer).chars().take(200).collect::<String>()),
            );
        }
    }
    let brief = |o: &Outcome| match &o.forwarded {
        None => format!("{} (not forwarded)", o.status),
        Some((t, h)) => {
            format!("{} {t:.60} {:?}", o.status, h.iter().map(|(n, v)| format!("{n}={v:.20}")).collect::<Vec<_>>())
        }
    };
    let accepted = |n: &str| ACCEPTED.iter().any(|(a, _)| *a == n);
    let unexpected: Vec<String> = differ
        .iter()
        .filter(|(n, _)| !KNOWN.contains(&n.as_str()) && !accepted(n))
        .map(|(n, (want, got, answer))| {
            format!("{n}:\n  nginx: {}\n  ours:  {}\n  wire:  {answer:?}", brief(want), brief(got))
        })
        .collect();
    assert!(unexpected.is_empty(), "differences from nginx:\n{}", unexpected.join("\n"));
    for (n, (want, got, _)) in differ.iter().filter(|(n, _)| KNOWN.contains(&n.as_str())) {
        eprintln!("known difference, {n}: nginx {} / ours {}", brief(want), brief(got));
    }
    let gone: Vec<&str> =
        KNOWN.iter().copied().chain(ACCEPTED.iter().map(|(n, _)| *n)).filter(|k| !differ.contains_key(*k)).collect();
    assert!(gone.is_empty(), "now forwarded as nginx does, take them out of KNOWN / ACCEPTED: {gone:?}");
}

/// Header names keep their case both ways, as through nginx: blue sees the client's, the client
/// blue's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_keep_their_case_both_ways() {
    let (up, seen) = recording_upstream().await;
    let (_nginx, reference) = nginx(up);
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let raw = b"GET /case HTTP/1.1\r\nHost: shop.example.com\r\nX-Request-ID: abc\r\nX-Mixed-Case: v\r\nConnection: close\r\n\r\n";
    for via in [reference, proxy.addr] {
        let before = seen.lock().unwrap().len();
        let (answer, _) = raw_exchange(via, raw, Duration::from_millis(1500)).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.contains("\r\nX-Mixed-Case: Kept\r\n") && answer.contains("\r\nETag: \"v1\"\r\n"), "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = seen.lock().unwrap()[before].clone();
        let names: Vec<&str> = got.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"X-Request-ID") && names.contains(&"X-Mixed-Case") && names.contains(&"Host"),
            "{names:?}"
        );
    }
}

/// Over HTTPS (`--tls-listen`) the same: the target byte for byte, names with their case, and
/// `X-Forwarded-Proto: https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_clients_reach_blue_byte_for_byte_too() {
    use crate::common::tls::{client_config, connect, generate};
    let (up, seen) = recording_upstream().await;
    let dir = temp_dir("differential-tls");
    generate(&dir, &["shop.example.com"]);
    let proxy = ProxyProc::start(&[
        "--upstream",
        &format!("http://{up}"),
        "--tls-listen",
        "127.0.0.1:0",
        "--cert-dir",
        dir.to_str().unwrap(),
    ]);
    let config = client_config(&dir.join("ca/ca.crt"), &[b"http/1.1"]);
    let mut tls = connect(proxy.listener("tls"), "shop.example.com", config).await;
    tls.write_all(b"GET /a?q={\"x\":1}&s=<b> HTTP/1.1\r\nHost: shop.example.com\r\nX-Request-ID: abc\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.contains("\r\nX-Mixed-Case: Kept\r\n"), "{answer}");
    let got = seen.lock().unwrap().last().cloned().expect("blue got the request");
    assert_eq!(got.target, b"/a?q={\"x\":1}&s=<b>");
    assert!(got.headers.iter().any(|(n, v)| n == "X-Request-ID" && v == b"abc"), "{:?}", got.headers);
    assert!(got.headers.iter().any(|(n, v)| n == "x-forwarded-proto" && v == b"https"), "{:?}", got.headers);
    std::fs::remove_dir_all(&dir).ok();
}

//! End-to-end forwarding through the real binary: HTTP/1.1, h2c, streaming, trailers, WebSocket,
//! connection reuse, header rules, and the access log a user tails.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::Request;
use hyper::body::Frame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_get_is_forwarded_and_logged() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let got = c.get("Shop.Example.com:8080", "/v1/users/42?token=secret").await;
    assert_eq!(got.status, 200);
    let echo = got.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/v1/users/42?token=secret", "origin-form target kept whole");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(got.seen_header("host"), ["Shop.Example.com:8080"], "Host kept as received");

    let lines = proxy.wait_access(1);
    let l = &lines[0];
    assert_eq!(l["method"], "GET");
    assert_eq!(l["host"], "Shop.Example.com:8080");
    assert_eq!(l["path"], "/v1/users/42", "query left out by default");
    assert_eq!(l["status"], 200);
    assert_eq!(l["http_version"], "1.1");
    assert_eq!(l["client_ip"], "127.0.0.1");
    assert_eq!(l["upstream"], up.url());
    assert_eq!(l["bytes_out"].as_u64().unwrap(), got.body.len() as u64);
    assert!(l["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(l["ts"].as_str().unwrap().ends_with('Z'));
    assert!(l.get("error").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_query_flag_includes_the_query_and_secrets_never_appear() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--log-query"]);
    let mut c = H1Client::connect(proxy.addr).await;
    let req = Request::get("/search?q=shoes")
        .header("host", "shop.example.com")
        .header("authorization", "Bearer very-secret-token")
        .header("cookie", "session=also-secret")
        .body(empty())
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);
    let l = &proxy.wait_access(1)[0];
    assert_eq!(l["path"], "/search?q=shoes");
    let raw = l.to_string();
    assert!(!raw.contains("very-secret-token") && !raw.contains("also-secret"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_64mib_post_and_download() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let total = 64 * 1024 * 1024;
    let (body, sum) = streaming_body(total);
    let got = c.send(Request::post("/upload").header("host", "files.example.com").body(body).unwrap()).await;
    assert_eq!(got.status, 200);
    let echo = got.json();
    assert_eq!(echo["body_bytes"], total, "every byte arrived");
    assert_eq!(echo["body_sum"], sum, "in order, unchanged");
    assert!(got.seen_header("transfer-encoding") == ["chunked"], "a body of unknown length is sent chunked upstream");

    let got = c.get("files.example.com", &format!("/big?bytes={total}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len() as u64, total);
    assert_eq!(got.headers["content-length"], total.to_string().as_str());

    let lines = proxy.wait_access(2);
    assert_eq!(lines[0]["bytes_in"], total);
    assert_eq!(lines[1]["bytes_out"], total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_with_trailers_pass_both_ways() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-client-digest", "d1g3st".parse().unwrap());
    let body = body_of(vec![
        Frame::data(Bytes::from_static(b"hello ")),
        Frame::data(Bytes::from_static(b"world")),
        Frame::trailers(trailers),
    ]);
    let req = Request::post("/trailers")
        .header("host", "grpc.example.com")
        .header("te", "trailers")
        .header("trailer", "x-client-digest")
        .body(body)
        .unwrap();
    let got = c.send(req).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"received 11 bytes\n");
    let trailers = got.trailers.expect("response trailers reached the client");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert_eq!(trailers["x-got-trailers"], "x-client-digest=d1g3st;", "request trailers reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_to_http1_upstream() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H2Client::connect(proxy.addr).await;
    let uri = "http://api.example.com/v2/items?id=7";
    for _ in 0..3 {
        let got = c.send(Request::get(uri).body(empty()).unwrap()).await;
        assert_eq!(got.status, 200);
        let echo = got.json();
        assert_eq!(echo["version"], "HTTP/1.1");
        assert_eq!(echo["uri"], "/v2/items?id=7");
        assert_eq!(got.seen_header("host"), ["api.example.com"], ":authority became Host");
        assert_eq!(got.seen_header("x-forwarded-host"), ["api.example.com"]);
    }
    let (body, sum) = streaming_body(3 * 1024 * 1024);
    let got = c.send(Request::post("http://api.example.com/upload").body(body).unwrap()).await;
    assert_eq!(got.json()["body_sum"], sum);
    let lines = proxy.wait_access(4);
    assert!(lines.iter().all(|l| l["http_version"] == "2" && l["host"] == "api.example.com"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_carries_grpc_style_trailers() {
    let up = Upstream::start_h2().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--upstream-h2"]);
    let mut c = H1Client::connect(proxy.addr).await;
    let got = c.get("grpc.example.com", "/echo").await;
    assert_eq!(got.json()["version"], "HTTP/2.0");
    let req = Request::post("/trailers")
        .header("host", "grpc.example.com")
        .header("te", "trailers")
        .body(body_of(vec![Frame::data(Bytes::from_static(b"abc"))]))
        .unwrap();
    let got = c.send(req).await;
    assert_eq!(&got.body[..], b"received 3 bytes\n");
    assert_eq!(got.trailers.expect("trailers")["x-checksum"], "abc123");
    let mut c2 = H2Client::connect(proxy.addr).await;
    let got = c2.send(Request::get("http://grpc.example.com/echo").body(empty()).unwrap()).await;
    assert_eq!(got.json()["uri"], "http://grpc.example.com/echo", "h2 :authority kept toward the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_names_the_user_agent_request_id_upstream_address_and_grpc_status() {
    let up = Upstream::start_h2().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--upstream-h2"]);
    let mut c = H2Client::connect(proxy.addr).await;
    let grpc = |path: &str| {
        Request::post(format!("http://grpc.example.com{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "grpc-java-netty/1.68.1")
            .header("x-amzn-trace-id", "Root=1-67891233-abcdef012345678912345678")
            .body(body_of(vec![Frame::data(Bytes::from_static(b"\0\0\0\0\0"))]))
            .unwrap()
    };
    let got = c.send(grpc("/grpc?status=14")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.trailers.expect("trailers")["grpc-status"], "14");
    let got = c.send(grpc("/grpc-only?status=5")).await;
    assert_eq!(got.status, 200);
    let lines = proxy.wait_access(2);
    let by_path = |p: &str| lines.iter().find(|l| l["path"] == p).unwrap_or_else(|| panic!("{p} in {lines:?}"));
    let failed = by_path("/grpc");
    assert_eq!((failed["status"].as_u64(), failed["grpc_status"].as_u64()), (Some(200), Some(14)), "{failed}");
    assert_eq!(by_path("/grpc-only")["grpc_status"], 5, "a trailers-only answer");
    assert_eq!(failed["user_agent"], "grpc-java-netty/1.68.1");
    assert_eq!(failed["request_id"], "Root=1-67891233-abcdef012345678912345678");
    assert_eq!(failed["upstream_addr"], up.addr.to_string());

    // HTTP/1.1 through the lean exchange: X-Request-ID wins, no gRPC status, no user agent as null.
    let up1 = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up1.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let req = Request::get("/a")
        .header("host", "shop.example.com")
        .header("x-request-id", "req-42")
        .header("x-amzn-trace-id", "Root=1-0-0");
    assert_eq!(c.send(req.body(empty()).unwrap()).await.status, 200);
    let line = &proxy.wait_access(1)[0];
    assert_eq!((line["request_id"].as_str(), line["user_agent"].is_null()), (Some("req-42"), true), "{line}");
    assert_eq!(line["upstream_addr"], up1.addr.to_string());
    assert!(line.get("grpc_status").is_none(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr))
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    let echoed = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed.into_data().len(), 100_000);
    ws.close(None).await.unwrap();
    let l = proxy.wait_line(|v| v["status"] == 101);
    assert!(l["bytes_in"].as_u64().unwrap() > 100_000, "tunnelled bytes are counted: {l}");
    assert!(l["bytes_out"].as_u64().unwrap() > 100_000, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--workers", "1"]);
    let mut c = H1Client::connect(proxy.addr).await;
    for i in 0..50 {
        let got = c.get("a.example.com", &format!("/n/{i}")).await;
        assert_eq!(got.status, 200);
    }
    // Also across client connections.
    for _ in 0..5 {
        let mut c = H1Client::connect(proxy.addr).await;
        assert_eq!(c.get("b.example.com", "/").await.status, 200);
    }
    assert_eq!(up.connections(), 1, "55 sequential requests should share one upstream connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let req = Request::get("/echo")
        .header("host", "api.example.com")
        .header("connection", "keep-alive, X-Client-Secret")
        .header("x-client-secret", "hop")
        .header("keep-alive", "timeout=30")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-end-to-end", "yes")
        .body(empty())
        .unwrap();
    let got = c.send(req).await;
    for h in ["connection", "x-client-secret", "keep-alive", "proxy-connection", "te", "upgrade"] {
        assert!(got.seen_header(h).is_empty(), "{h} reached the upstream: {:?}", got.json());
    }
    assert_eq!(got.seen_header("x-end-to-end"), ["yes"]);

    let got = c.get("api.example.com", "/hop").await;
    for h in ["x-internal-debug", "keep-alive", "proxy-connection"] {
        assert!(!got.headers.contains_key(h), "{h} reached the client: {:?}", got.headers);
    }
    assert_eq!(got.headers["x-end-to-end"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_headers_without_trusted_proxies() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    let req = Request::get("/echo")
        .header("host", "api.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .unwrap();
    let got = c.send(req).await;
    assert_eq!(got.seen_header("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"], "appended");
    assert_eq!(got.seen_header("x-forwarded-proto"), ["http"], "an untrusted client cannot claim https");
    assert_eq!(got.seen_header("x-forwarded-host"), ["api.example.com"]);
    let l = &proxy.wait_access(1)[0];
    assert_eq!(l["client_ip"], "127.0.0.1", "untrusted X-Forwarded-For is not believed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_headers_with_trusted_proxies() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--trusted-proxies", "127.0.0.0/8"]);
    let mut c = H1Client::connect(proxy.addr).await;
    let req = Request::get("/echo")
        .header("host", "api.example.com")
        .header("x-forwarded-for", "198.51.100.4, 203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .unwrap();
    let got = c.send(req).await;
    assert_eq!(got.seen_header("x-forwarded-for"), ["198.51.100.4, 203.0.113.9, 127.0.0.1"]);
    assert_eq!(got.seen_header("x-forwarded-proto"), ["https"], "the trusted LB's proto is kept");
    let l = &proxy.wait_access(1)[0];
    assert_eq!(l["client_ip"], "203.0.113.9", "right-most untrusted address is the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_upstream_override() {
    let blue = Upstream::start().await;
    let other = Upstream::start().await;
    let rule = format!("*.legacy.example.com={}", other.url());
    let proxy = ProxyProc::start(&["--upstream", &blue.url(), "--upstream-for", &rule]);
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("a.legacy.example.com", "/").await.status, 200);
    assert_eq!(c.get("api.example.com", "/").await.status, 200);
    assert_eq!(other.connections(), 1);
    assert_eq!(blue.connections(), 1);
    let lines = proxy.wait_access(2);
    assert_eq!(lines[0]["upstream"], other.url());
    assert_eq!(lines[1]["upstream"], blue.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_all_logged() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut tasks = Vec::new();
    for t in 0..20 {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = H1Client::connect(addr).await;
            for i in 0..25 {
                assert_eq!(c.get(&format!("h{t}.example.com"), &format!("/p/{i}")).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let lines = proxy.wait_access(500);
    assert_eq!(lines.len(), 500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.access_lines().len(), 500, "exactly one line per request");
}

async fn up_and_down(proxy: &ProxyProc, total: u64) {
    let mut c = H1Client::connect(proxy.addr).await;
    let (body, sum) = streaming_body(total);
    let got = c.send(Request::post("/upload").header("host", "files.example.com").body(body).unwrap()).await;
    assert_eq!(got.json()["body_bytes"], total);
    assert_eq!(got.json()["body_sum"], sum);
    let mut c2 = H1Client::connect(proxy.addr).await;
    assert_eq!(c2.get_len("files.example.com", &format!("/big?bytes={total}")).await, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_in_constant_memory() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    // Warm up with 64 MiB each way: buffers and allocator arenas reach their working size.
    up_and_down(&proxy, 64 * 1024 * 1024).await;
    let warm = proc_kib(proxy.child.id(), "VmHWM");
    up_and_down(&proxy, 1024 * 1024 * 1024).await;
    let after = proc_kib(proxy.child.id(), "VmHWM");
    // Streaming, not buffering: 16× more bytes through (1 GiB each way), and the peak moves by at
    // most allocator noise (measured: 8–12 MiB), nowhere near the bytes carried.
    assert!(
        after.saturating_sub(warm) < 32 * 1024 && after < 128 * 1024,
        "peak RSS {warm} KiB after 64 MiB → {after} KiB after 1 GiB"
    );
}

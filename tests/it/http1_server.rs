//! The proxy's own HTTP/1.1 server side (`--http1-server own`, the default) on one connection:
//! pipelined requests answered in order, small bodies read whole and large ones streamed, the
//! hand-over to hyper's side for what it does not carry (a chunked body) with nothing lost,
//! HTTP/1.0 clients, and idle keep-alive connections that hold no buffer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Reads `n` responses (each with a Content-Length) off `s`: (status, head, body) each.
async fn responses(s: &mut TcpStream, n: usize) -> Vec<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < n {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        if let Ok(httparse::Status::Complete(len)) = resp.parse(&buf) {
            let length: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("a content-length");
            if buf.len() >= len + length {
                let status = resp.code.unwrap();
                let head = String::from_utf8_lossy(&buf[..len]).into_owned();
                out.push((status, head, buf[len..len + length].to_vec()));
                buf.drain(..len + length);
                continue;
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => panic!(
                "connection ended after {} responses: {:?} then {buf:?}",
                out.len(),
                out.iter().map(|(_, h, b)| format!("{h}{}", String::from_utf8_lossy(b))).collect::<Vec<_>>()
            ),
            Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    out
}

fn echo(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not the echo ({e}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_pipelined_requests_bodies_and_the_hand_over() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let big = vec![b'x'; 100_000];
    let mut wire = Vec::new();
    wire.extend_from_slice(b"GET /a?q=1 HTTP/1.1\r\nHost: pipe.example.com\r\nX-Mixed-Case: 1\r\n\r\n");
    wire.extend_from_slice(b"POST /b HTTP/1.1\r\nHost: pipe.example.com\r\nContent-Length: 5\r\n\r\nhello");
    wire.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n");
    // Over the size read whole here: streamed to blue, the next request's bytes kept.
    wire.extend_from_slice(
        format!("PUT /upload HTTP/1.1\r\nHost: pipe.example.com\r\nContent-Length: {}\r\n\r\n", big.len()).as_bytes(),
    );
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b"GET /d HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n");
    // Chunked: hyper's side takes the connection from here, with the bytes after it.
    wire.extend_from_slice(
        b"POST /e HTTP/1.1\r\nHost: pipe.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    wire.extend_from_slice(b"GET /f HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n");
    s.write_all(&wire).await.unwrap();
    let got = responses(&mut s, 7).await;
    let seen: Vec<(u16, String, u64)> = got
        .iter()
        .map(|(status, _, body)| {
            let e = echo(body);
            (*status, e["uri"].as_str().unwrap().to_owned(), e["body_bytes"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (200, "/a?q=1".to_owned(), 0),
            (200, "/b".to_owned(), 5),
            (200, "/c".to_owned(), 0),
            (200, "/upload".to_owned(), 100_000),
            (200, "/d".to_owned(), 0),
            (200, "/e".to_owned(), 3),
            (200, "/f".to_owned(), 0),
        ],
        "answered in order, bodies whole"
    );
    let first = echo(&got[0].2);
    let names: Vec<&str> = first["headers"].as_array().unwrap().iter().map(|h| h[0].as_str().unwrap()).collect();
    assert!(names.contains(&"x-mixed-case"), "{names:?}");
    assert_eq!(echo(&got[3].2)["body_sum"], big.iter().fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64)));
    let lines = proxy.wait_access(7);
    let mut paths: Vec<(&str, u64)> =
        lines.iter().map(|l| (l["path"].as_str().unwrap(), l["bytes_in"].as_u64().unwrap())).collect();
    paths.sort();
    assert_eq!(paths, [("/a", 0), ("/b", 5), ("/c", 0), ("/d", 0), ("/e", 3), ("/f", 0), ("/upload", 100_000)]);
    assert_eq!(host(&report_json(&proxy).await, "pipe.example.com")["requests"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_clients_are_answered_as_http_1_0_needs() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    // No Host, no keep-alive: blue's address as Host, and the connection closes after.
    let (raw, closed) = raw_exchange(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n", Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(closed && text.starts_with("HTTP/1.1 200 ") && text.contains("\r\nconnection: close\r\n"), "{text}");
    let body = &raw[text.find("\r\n\r\n").unwrap() + 4..];
    let e = echo(body);
    let host_seen: Vec<&str> =
        e["headers"].as_array().unwrap().iter().filter(|h| h[0] == "host").map(|h| h[1].as_str().unwrap()).collect();
    assert_eq!(host_seen, [up.url().trim_start_matches("http://")]);
    // With keep-alive: the connection stays for a second request.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    for path in ["/k1", "/k2"] {
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: old.example.com\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let got = responses(&mut s, 1).await;
        assert!(got[0].1.contains("\r\nconnection: keep-alive\r\n"), "{}", got[0].1);
        assert_eq!(echo(&got[0].2)["uri"], path);
    }
    let line = proxy.wait_line(|l| l["path"] == "/old" && l.get("status").is_some());
    assert_eq!((line["http_version"].as_str(), line["host"].as_str()), (Some("1.0"), None), "{line}");
}

/// RSS per idle keep-alive connection, each after one answered request, of a proxy started with
/// `extra`.
async fn idle_kib(up: &Upstream, extra: &[&str]) -> u64 {
    const CONNS: u64 = 1000;
    let url = up.url();
    let mut args = vec!["--upstream", url.as_str(), "--no-record"];
    args.extend_from_slice(extra);
    let proxy = ProxyProc::start(&args);
    let warm = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: idle.example.com\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(warm.await.0.starts_with(b"HTTP/1.1 200 "));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proc_kib(proxy.child.id(), "VmRSS");
    let mut held = Vec::new();
    // One at a time, as keep-alive clients come and go: the measure is what a connection keeps,
    // not what a burst of them had in flight.
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: idle.example.com\r\n\r\n").await.unwrap();
        responses(&mut s, 1).await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = proc_kib(proxy.child.id(), "VmRSS");
    drop(held);
    after.saturating_sub(before) * 1000 / CONNS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_holds_no_buffer() {
    let up = Upstream::start().await;
    let own = idle_kib(&up, &[]).await;
    let hyper = idle_kib(&up, &["--http1-server", "hyper"]).await;
    eprintln!("idle connection: own side {own} B, hyper's {hyper} B");
    // hyper keeps an 8 KiB read buffer and a write buffer per connection; this side keeps none
    // (the bound is loose: a debug build's futures are larger than a release build's).
    assert!(own <= 8 * 1024, "{own} B per idle connection");
    assert!(own * 2 <= hyper, "own {own} B vs hyper's {hyper} B");
}

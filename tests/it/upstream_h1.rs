//! The lean HTTP/1.1 exchange (requests without a body to a plain upstream): response framing,
//! connection reuse and the upstream's own ways of closing, against a scripted upstream that
//! answers raw bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that answers each request head with `reply(head)`: the bytes to send, and whether
/// to close the connection afterwards. It keeps the request heads and counts connections.
struct Scripted {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Connections the proxy closed.
    closed: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    async fn start(reply: fn(&str) -> (Vec<u8>, bool)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, seen, gone) = (connections.clone(), heads.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (seen, gone) = (seen.clone(), gone.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => {
                                    gone.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                        buf.drain(..end + 4);
                        seen.lock().unwrap().push(head.clone());
                        let (bytes, close) = reply(&head);
                        if s.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, connections, closed, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_with_trailers_to_a_get_and_the_connection_is_reused() {
    let up = Scripted::start(|_| {
        let body = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
                    5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-checksum: abc123\r\n\r\n";
        (body.as_bytes().to_vec(), false)
    })
    .await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    for _ in 0..3 {
        let req = Request::get("/stream?x=1").header("host", "api.example.com").header("te", "trailers");
        let got = c.send(req.body(empty()).unwrap()).await;
        assert_eq!(got.status, 200);
        assert_eq!(&got.body[..], b"hello world");
        let trailers = got.trailers.expect("trailers reached the client");
        assert_eq!(trailers["x-checksum"], "abc123");
    }
    assert_eq!(up.connections(), 1, "one upstream connection for three chunked responses");
    let heads = up.heads.lock().unwrap().clone();
    assert!(heads[0].starts_with("GET /stream?x=1 HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(heads[0].contains("host: api.example.com\r\n") && heads[0].contains("te: trailers\r\n"), "{}", heads[0]);
    let lines = proxy.wait_access(3);
    assert!(lines.iter().all(|l| l["status"] == 200 && l["bytes_out"] == 11 && l.get("error").is_none()), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_304_and_early_hints_have_no_body_and_keep_the_connection() {
    let up = Scripted::start(|head| {
        let reply = match path_of(head) {
            "/head" => "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
            "/empty" => "HTTP/1.1 204 No Content\r\n\r\n",
            "/cached" => "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n",
            "/hints" => {
                "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            }
            _ => "HTTP/1.1 404 Gone Fishing\r\ncontent-length: 0\r\n\r\n",
        };
        (reply.as_bytes().to_vec(), false)
    })
    .await;
    // One worker: the second client connection below shares the first one's upstream pool.
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--workers", "1"]);
    let mut c = H1Client::connect(proxy.addr).await;
    let got = c.send(Request::head("/head").header("host", "a.example.com").body(empty()).unwrap()).await;
    assert_eq!((got.status, got.headers["content-length"].to_str().unwrap(), got.body.len()), (200, "1000", 0));
    assert_eq!(c.get("a.example.com", "/empty").await.status, 204);
    let got = c.get("a.example.com", "/cached").await;
    assert_eq!((got.status, got.headers["etag"].to_str().unwrap()), (304, "\"v1\""));
    let got = c.get("a.example.com", "/hints").await;
    assert_eq!((got.status, &got.body[..]), (200, &b"ok"[..]));
    // A reason phrase of blue's own passes through.
    let (raw, _) =
        raw_exchange(proxy.addr, b"GET /other HTTP/1.1\r\nHost: a.example.com\r\n\r\n", Duration::from_millis(500))
            .await;
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 404 Gone Fishing\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(up.connections(), 1, "no response here ends the upstream connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_delimited_by_close_arrives_whole_and_the_connection_is_not_reused() {
    let up = Scripted::start(|_| {
        let mut reply = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec();
        reply.extend(std::iter::repeat_n(b'x', 100_000));
        (reply, true)
    })
    .await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    for _ in 0..2 {
        let got = c.get("old.example.com", "/legacy").await;
        assert_eq!((got.status, got.body.len()), (200, 100_000));
    }
    assert_eq!(up.connections(), 2, "a close-delimited response uses up its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
    // Blue answers one request per connection and then closes it, without saying so.
    let up = Scripted::start(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), true)).await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--workers", "1"]);
    let mut c = H1Client::connect(proxy.addr).await;
    for i in 0..6 {
        // Half of the requests come after the close has arrived, half right away (a race the
        // proxy settles by sending a GET again on a new connection).
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = c.get("api.example.com", "/once").await;
        assert_eq!((got.status, &got.body[..]), (200, &b"ok"[..]), "request {i}");
    }
    assert!(proxy.access_lines().iter().all(|l| l.get("error").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_broken_response_head_gives_502() {
    let up = Scripted::start(|head| {
        let reply = match path_of(head) {
            "/huge" => format!("HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n", "a".repeat(500_000)),
            "/large" => format!("HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n", "a".repeat(100_000)),
            "/lengths" => "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd".into(),
            _ => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".into(),
        };
        (reply.into_bytes(), false)
    })
    .await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    for path in ["/huge", "/lengths"] {
        let mut c = H1Client::connect(proxy.addr).await;
        assert_eq!(c.get("api.example.com", path).await.status, 502, "{path}");
    }
    let lines = proxy.wait_access(2);
    assert!(lines.iter().all(|l| l["error"] == "upstream_protocol_error"), "{lines:?}");
    // A large head within hyper's limit (which this path keeps) passes.
    let mut c = H1Client::connect(proxy.addr).await;
    let got = c.get("api.example.com", "/large").await;
    assert_eq!((got.status, got.headers["x-big"].len()), (200, 100_000));
    // A bad chunk after the status went out: the client sees the body cut short.
    let (raw, closed) =
        raw_exchange(proxy.addr, b"GET /chunks HTTP/1.1\r\nHost: api.example.com\r\n\r\n", Duration::from_secs(2))
            .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && closed, "{text}");
    let line = proxy.wait_line(|l| l["path"] == "/chunks" && l.get("status").is_some());
    assert_eq!(line["error"], "upstream_reset", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookies_are_joined_for_the_http1_upstream() {
    let up = Scripted::start(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(), false)).await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H2Client::connect(proxy.addr).await;
    let req = Request::get("http://shop.example.com/cart")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(empty())
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);
    let head = up.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /cart HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("host: shop.example.com\r\n") && head.contains("cookie: a=1; b=2\r\n"), "{head}");
    assert_eq!(head.matches("cookie:").count(), 1, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_closed_without_further_traffic() {
    let up = Scripted::start(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), false)).await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--upstream-idle-timeout", "300ms"]);
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("api.example.com", "/").await.status, 200);
    assert_eq!(up.connections(), 1);
    // No request comes to look at the pool: the connection's own watchdog closes it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while up.closed.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the idle upstream connection was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the next request simply opens a new one.
    assert_eq!(c.get("api.example.com", "/").await.status, 200);
    assert_eq!(up.connections(), 2);
}

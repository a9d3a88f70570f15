//! Shared test fixtures: the real `cutover-proxy` binary as a child process, a real upstream
//! (hyper, HTTP/1.1 and h2c, with upgrades), and real clients.
#![allow(dead_code)]

pub mod dns;
pub mod moto;
pub mod nginx;
pub mod tls;

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// The proxy binary running as a child, with its stdout lines collected.
pub struct ProxyProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ProxyProc {
    /// Starts `cutover-proxy serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 ARGS…` (each of
    /// the two unless ARGS has it) and waits for its `listening` events.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_cutover-proxy")), args, env)
    }

    /// Starts it under `ulimit -n LIMIT` (open files), to provoke EMFILE on accept.
    pub fn start_with_fd_limit(args: &[&str], limit: u32) -> Self {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_cutover-proxy")]);
        Self::spawn(cmd, args, &[])
    }

    fn spawn(mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        cmd.arg("serve");
        for flag in ["--listen", "--admin-listen"] {
            if !args.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}="))) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        if !args.iter().any(|a| *a == "--workers" || a.starts_with("--workers=")) {
            cmd.args(["--workers", "2"]);
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cutover-proxy");
        let lines = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        let mut proc =
            ProxyProc { child, addr: "0.0.0.0:0".parse().unwrap(), admin: "0.0.0.0:0".parse().unwrap(), lines, stderr };
        let proxy = proc.wait_line(|v| v["event"] == "listening" && v["listener"] == "proxy");
        let admin = proc.wait_line(|v| v["event"] == "listening" && v["listener"] == "admin");
        proc.addr = proxy["addr"].as_str().unwrap().parse().unwrap();
        proc.admin = admin["addr"].as_str().unwrap().parse().unwrap();
        proc
    }

    /// Every stdout line so far, parsed as JSON (each must parse).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
            .collect()
    }

    /// The access lines (those with a `status`).
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        self.json_lines().into_iter().filter(|v| v.get("status").is_some()).collect()
    }

    /// Waits for a stdout line matching `pred`.
    pub fn wait_line(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.json_lines().into_iter().find(|v| pred(v)) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching line in time.\nstdout:\n{}\nstderr:\n{}",
                    self.lines.lock().unwrap().join("\n"),
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `n` access lines.
    pub fn wait_access(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.access_lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "expected {n} access lines, got {}: {lines:?}", lines.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bound address of the listener of `kind` (`proxy`, `tls`, `passthrough`).
    pub fn listener(&self, kind: &str) -> SocketAddr {
        let line = self.wait_line(|v| v["event"] == "listening" && v["listener"] == kind);
        line["addr"].as_str().unwrap().parse().unwrap()
    }

    /// Sends SIGHUP.
    pub fn sighup(&self) {
        let ok = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for exit and returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect<R: std::io::Read + Send + 'static>(r: R) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Runs the binary to completion with `args`; returns (exit code, stdout, stderr).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover-proxy"));
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cutover-proxy");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A real upstream on 127.0.0.1:0 speaking HTTP/1.1 (and h2c when asked), counting connections
/// and keeping the target of every request it received.
pub struct Upstream {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    pub async fn start_h2() -> Self {
        Self::start_with(true).await
    }

    /// HTTP/1.1 and h2c (prior knowledge) on one port, as the client's preface says.
    pub async fn start_auto() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(upstream_handler);
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, accepted, targets: Arc::default() }
    }

    async fn start_with(h2: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let targets: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = targets.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        seen.lock().unwrap().push(req.uri().to_string());
                        upstream_handler(req)
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ =
                            hyper::server::conn::http1::Builder::new().serve_connection(io, svc).with_upgrades().await;
                    }
                });
            }
        });
        Upstream { addr, accepted, targets }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).boxed()
}

/// The upstream's routes:
/// - `/echo`: JSON of the request as the upstream saw it (method, uri, version, headers, body size).
/// - `/big?bytes=N`: a streamed body of N bytes.
/// - `/slow?ms=N`: answers after N ms.
/// - `/stall`: headers and 7 bytes, then nothing.
/// - `/trailers`: reads the body and its trailers, answers chunked with trailers.
/// - `/grpc?status=N`: a gRPC-style answer (200, `application/grpc`) whose trailers say
///   `grpc-status: N`; `/grpc-only?status=N`: a trailers-only answer (the status in the head).
/// - `/hop`: a response carrying hop-by-hop headers that must not reach the client.
/// - `/ws`: a WebSocket echo.
async fn upstream_handler(mut req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| -> u64 {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    match req.uri().path() {
        "/big" => {
            let total = param("bytes");
            let stream = repeat_chunk(Bytes::from(vec![b'x'; 64 * 1024]), total);
            let mut resp = Response::new(StreamBody::new(stream).boxed());
            resp.headers_mut().insert("content-length", total.into());
            Ok(resp)
        }
        "/stall" => {
            // Headers and a first chunk, then silence forever.
            let first = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"partial")))]);
            let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
            Ok(Response::new(StreamBody::new(body).boxed()))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(param("ms"))).await;
            Ok(Response::new(full("slow done\n")))
        }
        "/ws" => Ok(websocket_echo(&mut req)),
        "/trailers" => {
            let mut body = req.into_body();
            let mut size = 0usize;
            let mut got = String::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.unwrap();
                if let Some(d) = frame.data_ref() {
                    size += d.len();
                }
                if let Some(t) = frame.trailers_ref() {
                    for (k, v) in t {
                        got.push_str(&format!("{k}={};", v.to_str().unwrap()));
                    }
                }
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-checksum", "abc123".parse().unwrap());
            trailers.insert("x-got-trailers", got.parse().unwrap());
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("received {size} bytes\n")))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut resp = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            resp.headers_mut().insert("trailer", "x-checksum, x-got-trailers".parse().unwrap());
            Ok(resp)
        }
        "/grpc" => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", param("status").into());
            trailers.insert("grpc-message", "upstream%20unavailable".parse().unwrap());
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut resp = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
            Ok(resp)
        }
        "/grpc-only" => {
            let mut resp = Response::new(full(""));
            resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
            resp.headers_mut().insert("grpc-status", param("status").into());
            Ok(resp)
        }
        "/hop" => {
            let mut resp = Response::new(full("hop\n"));
            let h = resp.headers_mut();
            h.insert("connection", "x-internal-debug".parse().unwrap());
            h.insert("x-internal-debug", "secret".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-connection", "keep-alive".parse().unwrap());
            h.insert("x-end-to-end", "kept".parse().unwrap());
            Ok(resp)
        }
        _ => {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let version = format!("{:?}", req.version());
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let mut body = req.into_body();
            let mut size = 0u64;
            let mut sum = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(d) = frame.data_ref() {
                    size += d.len() as u64;
                    sum = d.iter().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64));
                }
            }
            let echo = serde_json::json!({"method": method, "uri": uri, "version": version, "headers": headers, "body_bytes": size, "body_sum": sum});
            let mut resp = Response::new(full(echo.to_string()));
            resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
            Ok(resp)
        }
    }
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<UpBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let key = req.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())).unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        use futures_util::{SinkExt, StreamExt};
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(full(""));
    *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("sec-websocket-accept", key.parse().unwrap());
    resp
}

/// A response as the client saw it.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Values of a header the upstream saw (from `/echo`).
    pub fn seen_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0] == name)
            .map(|p| p[1].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn collect_response<B>(resp: Response<B>) -> Got
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    Got { status: parts.status.as_u16(), headers: parts.headers, body: collected.to_bytes(), trailers }
}

/// An HTTP/1.1 client connection.
pub struct H1Client {
    tx: hyper::client::conn::http1::SendRequest<UpBody>,
}

impl H1Client {
    pub fn from_sender(tx: hyper::client::conn::http1::SendRequest<UpBody>) -> Self {
        Self { tx }
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        Self { tx }
    }

    pub async fn send(&mut self, req: Request<UpBody>) -> Got {
        self.tx.ready().await.unwrap();
        let resp =
            tokio::time::timeout(WAIT, self.tx.send_request(req)).await.expect("response in time").expect("response");
        collect_response(resp).await
    }

    /// GETs and counts the body's bytes without keeping them.
    pub async fn get_len(&mut self, host: &str, path: &str) -> u64 {
        self.tx.ready().await.unwrap();
        let req = Request::get(path).header("host", host).body(full("")).unwrap();
        let resp =
            tokio::time::timeout(WAIT, self.tx.send_request(req)).await.expect("response in time").expect("response");
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame.expect("body frame").data_ref() {
                n += d.len() as u64;
            }
        }
        n
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Got {
        self.send(Request::get(path).header("host", host).body(full("")).unwrap()).await
    }
}

/// Builds a request body from frames (data and trailers).
pub fn body_of(frames: Vec<Frame<Bytes>>) -> UpBody {
    StreamBody::new(futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>))).boxed()
}

/// `total` bytes as a stream of frames, `chunk` repeated (the last one cut), never all in memory.
fn repeat_chunk(chunk: Bytes, total: u64) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(chunk.len() as u64);
            Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..n as usize))), left - n))
        }
    })
}

/// A body streaming `total` bytes of a repeating pattern, without holding them in memory.
pub fn streaming_body(total: u64) -> (UpBody, u64) {
    let chunk: Bytes = (0..65536u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let mut sum = 0u64;
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        sum = chunk[..n].iter().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64));
        left -= n as u64;
    }
    let stream = repeat_chunk(chunk, total);
    (StreamBody::new(stream).boxed(), sum)
}

/// An h2c (prior knowledge) client connection.
pub struct H2Client {
    tx: hyper::client::conn::http2::SendRequest<UpBody>,
}

impl H2Client {
    pub fn from_sender(tx: hyper::client::conn::http2::SendRequest<UpBody>) -> Self {
        Self { tx }
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        Self { tx }
    }

    pub async fn send(&mut self, req: Request<UpBody>) -> Got {
        self.tx.ready().await.unwrap();
        let resp =
            tokio::time::timeout(WAIT, self.tx.send_request(req)).await.expect("response in time").expect("response");
        collect_response(resp).await
    }

    /// Whether the server ended the connection (GOAWAY and close).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Sends raw bytes on a fresh connection and reads until the peer closes (or `wait` passes).
/// Returns what was read and whether the peer closed.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// A plain GET on the admin listener; returns (status, body).
pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut c = H1Client::connect(admin).await;
    let got = c.get("admin", path).await;
    (got.status, String::from_utf8_lossy(&got.body).into())
}

pub fn empty() -> UpBody {
    full("")
}

/// Waits until the summary that `/metrics` and the dashboard read was made after this call
/// (it is refreshed every 2 s beside the request path), so it holds what was sent before.
pub async fn wait_fresh_summary(admin: SocketAddr) {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, text) = admin_get(admin, "/metrics").await;
        let made = text
            .lines()
            .find_map(|l| l.strip_prefix("cutover_summary_timestamp_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if made >= since {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no summary made after {since}: {made}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh folder for one test (the process id keeps parallel test binaries apart, the sequence
/// number tests of one binary that chose the same name).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cutover-test-{name}-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The proxy's `/report`, parsed.
pub async fn report_json(proxy: &ProxyProc) -> serde_json::Value {
    let (status, body) = admin_get(proxy.admin, "/report").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `report` as another replica's (same traffic, another `--replica-id`), written to `file`;
/// returns the file's path. `report merge` adds replicas up but counts one replica's snapshots once.
pub fn write_as_replica(report: &serde_json::Value, id: &str, file: &std::path::Path) -> String {
    let mut other = report.clone();
    other["replicas"][0]["id"] = id.into();
    std::fs::write(file, other.to_string()).unwrap();
    file.to_str().unwrap().to_owned()
}

/// One host of a report (panics, showing the report, when it is missing).
pub fn host<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report}"))
}

/// A `/proc/PID/status` field in KiB (`VmRSS`: resident now, `VmHWM`: the peak); 0 when gone.
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

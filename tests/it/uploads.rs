//! Request bodies larger than the own HTTP/1.1 side reads whole: streamed to blue as they arrive,
//! on the same connection as the requests around them, the target and header names as sent; an
//! `Expect: 100-continue` answered; blue answering before the body ends, or sending an interim
//! answer while it still takes the body; a body that stalls; chunked bodies re-framed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// What blue got of one request: the target, the header names as sent, the body's length and sum,
/// its trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    target: String,
    names: Vec<String>,
    body_len: u64,
    body_sum: u64,
    /// A chunked body's trailer section, as it arrived.
    trailers: String,
}

fn sum_of(sum: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64))
}

/// How the upstream treats a request's body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blue {
    /// Reads it whole, then answers `200 ok`.
    Takes,
    /// Answers 413 right after the head and then reads nothing for 5 s, as a server refusing an
    /// upload does.
    Refuses,
    /// Sends `100 Continue` nobody asked for, waits half a second, then takes the body.
    ContinuesFirst,
}

/// A keep-alive upstream on raw sockets: each request's head is parsed, its Content-Length body
/// treated as `blue` says and recorded.
async fn body_upstream(blue: Blue) -> (SocketAddr, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Got>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let (len, target, names, length, chunked) = loop {
                        let mut slots = [httparse::EMPTY_HEADER; 64];
                        let mut req = httparse::Request::new(&mut slots);
                        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
                            let length = req
                                .headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                                .map_or(0, |h| std::str::from_utf8(h.value).unwrap().parse::<u64>().unwrap());
                            let chunked = req
                                .headers
                                .iter()
                                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding") && h.value == b"chunked");
                            let names = req.headers.iter().map(|h| h.name.to_owned()).collect::<Vec<_>>();
                            break (len, req.path.unwrap().to_owned(), names, length, chunked);
                        }
                        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    };
                    buf.drain(..len);
                    if blue == Blue::ContinuesFirst {
                        let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if blue == Blue::Refuses {
                        let answer =
                            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig\n";
                        let _ = s.write_all(answer).await;
                        log.lock().unwrap().push(Got {
                            target,
                            names,
                            body_len: 0,
                            body_sum: 0,
                            trailers: String::new(),
                        });
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        return;
                    }
                    if chunked {
                        // Strictly as the proxy must send it: `size\r\n data \r\n`, then `0\r\n\r\n`.
                        let (mut got, mut sum) = (0u64, 0u64);
                        let trailers = loop {
                            let line_end = loop {
                                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                                    break i;
                                }
                                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                    _ => return,
                                }
                            };
                            let line = std::str::from_utf8(&buf[..line_end]).unwrap().to_owned();
                            let size = u64::from_str_radix(&line, 16).unwrap_or_else(|_| panic!("chunk line {line:?}"));
                            if size == 0 {
                                // The trailer section, up to its empty line.
                                buf.drain(..line_end + 2);
                                let end = loop {
                                    if buf.starts_with(b"\r\n") {
                                        break 2;
                                    }
                                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                        break i + 4;
                                    }
                                    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                        _ => return,
                                    }
                                };
                                let trailers = String::from_utf8_lossy(&buf[..end - 2]).into_owned();
                                buf.drain(..end);
                                break trailers;
                            }
                            let want = line_end + 2 + size as usize + 2;
                            while buf.len() < want {
                                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                    _ => return,
                                }
                            }
                            assert_eq!(&buf[want - 2..want], b"\r\n", "chunk data ends with CRLF");
                            sum = sum_of(sum, &buf[line_end + 2..want - 2]);
                            got += size;
                            buf.drain(..want);
                        };
                        log.lock().unwrap().push(Got { target, names, body_len: got, body_sum: sum, trailers });
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let (mut got, mut sum) = (0u64, 0u64);
                    loop {
                        let take = (length - got).min(buf.len() as u64) as usize;
                        sum = sum_of(sum, &buf[..take]);
                        got += take as u64;
                        buf.drain(..take);
                        if got == length {
                            break;
                        }
                        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    log.lock().unwrap().push(Got {
                        target,
                        names,
                        body_len: got,
                        body_sum: sum,
                        trailers: String::new(),
                    });
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Reads one response head (and a body of its Content-Length) from `s`; `None` when the
/// connection ends first.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, String, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let status: u16 = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.parse().unwrap()))
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return Some((status, head, body));
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Writes `body` in pieces of `piece` bytes, reads blue's `200 ok`, and returns how much the
/// proxy's anonymous memory grew since `rss_before` (KiB).
async fn finish_upload(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    pid: u32,
    rss_before: u64,
    body: &[u8],
    piece: usize,
) -> u64 {
    for piece in body.chunks(piece) {
        s.write_all(piece).await.unwrap();
    }
    let (status, head, answer) = response(s, buf).await.expect("an answer");
    assert_eq!((status, &answer[..]), (200, &b"ok"[..]), "{head}");
    let grown = proc_kib(pid, "RssAnon").saturating_sub(rss_before);
    eprintln!("anonymous memory grew {grown} KiB during the upload");
    grown
}

/// A GET with a mixed-case header name on `s`: its status.
async fn get_mixed_case(s: &mut TcpStream, buf: &mut Vec<u8>, path: &str) -> u16 {
    let get = format!("GET {path} HTTP/1.1\r\nHost: upload.example.com\r\nX-Mixed-Case: 1\r\n\r\n");
    s.write_all(get.as_bytes()).await.unwrap();
    response(s, buf).await.expect("an answer").0
}

/// `n` bytes of a pattern that shows a byte lost, doubled or moved.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_to_blue_with_the_request_as_sent() {
    let (up, seen) = body_upstream(Blue::Takes).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let pid = proxy.child.id();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = Vec::new();
    // JSON in the query (hyper's server refuses `{`), a client that waits for 100 Continue.
    let body = pattern(3 << 20);
    let head = format!(
        "PUT /up?q={{\"x\":1}} HTTP/1.1\r\nHost: upload.example.com\r\nX-Upload-ID: 7\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut interim)).await.unwrap().unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    let rss_before = proc_kib(pid, "RssAnon");
    let grown = finish_upload(&mut s, &mut buf, pid, rss_before, &body, 100_000).await;
    // The same connection goes on with the own side: names keep their case.
    assert_eq!(get_mixed_case(&mut s, &mut buf, "/after").await, 200);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].target.as_str(), got[0].body_len, got[0].body_sum),
        ("/up?q={\"x\":1}", body.len() as u64, sum_of(0, &body)),
        "the target byte for byte, the body whole"
    );
    assert!(got[0].names.contains(&"X-Upload-ID".to_owned()), "{:?}", got[0].names);
    assert!(!got[0].names.iter().any(|n| n.eq_ignore_ascii_case("expect")), "Expect is answered here, not sent on");
    assert!(got[1].names.contains(&"X-Mixed-Case".to_owned()), "{:?}", got[1].names);
    // Streamed, not held: far less than the body (anonymous memory: code pages touched for the
    // first time are not the upload's).
    assert!(grown < 1024, "RSS grew {grown} KiB during a 3 MiB upload");
    let line = proxy.wait_line(|l| l["path"] == "/up" && l.get("status").is_some());
    assert_eq!((line["status"].as_u64(), line["bytes_in"].as_u64()), (Some(200), Some(body.len() as u64)), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_answering_before_the_body_ends_is_passed_on() {
    let (up, seen) = body_upstream(Blue::Refuses).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let s = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // More than the sockets between here and blue hold, so the proxy's writes to blue block.
    let body = pattern(32 << 20);
    let writer = tokio::spawn(async move {
        let head =
            format!("POST /refused HTTP/1.1\r\nHost: upload.example.com\r\nContent-Length: {}\r\n\r\n", body.len());
        wr.write_all(head.as_bytes()).await.unwrap();
        for piece in body.chunks(64 * 1024) {
            if wr.write_all(piece).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(4), rd.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413 Payload Too Large\r\n") && text.ends_with("big\n"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "blue's answer while it still had body to take");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "the rest of the body ends the connection: {text}"
    );
    writer.abort();
    assert_eq!(seen.lock().unwrap().len(), 1);
    let line = proxy.wait_line(|l| l["path"] == "/refused" && l.get("status").is_some());
    assert_eq!(line["status"], 413, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_that_stalls_is_the_clients_timeout() {
    let (up, _) = body_upstream(Blue::Takes).await;
    let url = format!("http://{up}");
    // Blue's silence timeout shorter than the client's: blue's connection is closed while the
    // client's bytes are awaited, and that is still the client's slowness.
    let proxy = ProxyProc::start(&["--upstream", &url, "--client-body-timeout", "1s", "--upstream-timeout", "30s"]);
    let slow = ProxyProc::start(&["--upstream", &url, "--client-body-timeout", "5s", "--upstream-timeout", "1s"]);
    let head = b"POST /stall HTTP/1.1\r\nHost: upload.example.com\r\nContent-Length: 1000000\r\n\r\n";
    let mut first = head.to_vec();
    first.extend_from_slice(&pattern(100_000));
    let started = Instant::now();
    let (raw, closed) = raw_exchange(proxy.addr, &first, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n") && closed, "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    let mut s = TcpStream::connect(slow.addr).await.unwrap();
    s.write_all(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let _ = s.write_all(&pattern(100_000)).await;
    let mut buf = Vec::new();
    let (status, head, _) = response(&mut s, &mut buf).await.expect("an answer");
    assert_eq!(status, 408, "{head}");
    for p in [&proxy, &slow] {
        let line = p.wait_line(|l| l["path"] == "/stall" && l.get("status").is_some());
        assert_eq!(
            (line["status"].as_u64(), line["error"].as_str()),
            (Some(408), Some("client_body_timeout")),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_answer_from_blue_does_not_end_the_upload() {
    let (up, seen) = body_upstream(Blue::ContinuesFirst).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // More than the sockets hold while blue waits: the proxy's writes block with the 100 read.
    let body = pattern(16 << 20);
    let head = format!("POST /interim HTTP/1.1\r\nHost: upload.example.com\r\nContent-Length: {}\r\n\r\n", body.len());
    let (mut rd, mut wr) = s.split();
    let send = async {
        wr.write_all(head.as_bytes()).await.unwrap();
        wr.write_all(&body).await.unwrap();
    };
    let mut buf = Vec::new();
    let (answer, ()) = tokio::join!(
        async {
            let mut chunk = [0u8; 4096];
            loop {
                if buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(b"ok") {
                    return String::from_utf8_lossy(&buf).into_owned();
                }
                match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return String::from_utf8_lossy(&buf).into_owned(),
                }
            }
        },
        send
    );
    // The interim answer is blue's, not the client's (it did not ask): dropped, as nginx does.
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let got = seen.lock().unwrap().clone();
    assert_eq!((got.len(), got[0].body_len, got[0].body_sum), (1, body.len() as u64, sum_of(0, &body)));
    let line = proxy.wait_line(|l| l["path"] == "/interim" && l.get("status").is_some());
    assert_eq!(line["status"], 200, "{line}");
}

/// A chunked body of `pieces`, with an extension on the first chunk and a trailer section.
fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(format!("{:X}{}\r\n", p.len(), if i == 0 { ";name=v" } else { "" }).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Checksum: 1\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_streams_to_blue_reframed_and_the_connection_stays_on_the_own_side() {
    let (up, seen) = body_upstream(Blue::Takes).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let pid = proxy.child.id();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = Vec::new();
    // A small chunked body and a GET behind it, pipelined in one write.
    s.write_all(b"PUT /small HTTP/1.1\r\nHost: upload.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: upload.example.com\r\nX-Mixed-Case: 1\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, head, _) = response(&mut s, &mut buf).await.expect("two answers");
        assert_eq!(status, 200, "{head}");
    }
    let data = pattern(16 << 20);
    let pieces: Vec<&[u8]> = data.chunks(40_000).collect();
    let body = chunked(&pieces);
    let head = "POST /c?q={\"x\":1} HTTP/1.1\r\nHost: upload.example.com\r\nX-Upload-ID: 9\r\nTransfer-Encoding: chunked\r\n\r\n";
    let rss_before = proc_kib(pid, "RssAnon");
    s.write_all(head.as_bytes()).await.unwrap();
    // Written in pieces that cut chunk lines and data anywhere.
    let grown = finish_upload(&mut s, &mut buf, pid, rss_before, &body, 9_999).await;
    assert_eq!(get_mixed_case(&mut s, &mut buf, "/last").await, 200);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!((got[0].target.as_str(), got[0].body_len, got[0].body_sum), ("/small", 3, sum_of(0, b"abc")));
    assert!(got[1].names.contains(&"X-Mixed-Case".to_owned()), "the own side goes on: {:?}", got[1].names);
    assert_eq!(
        (got[2].target.as_str(), got[2].body_len, got[2].body_sum),
        ("/c?q={\"x\":1}", data.len() as u64, sum_of(0, &data)),
        "the target byte for byte, the data whole"
    );
    assert!(got[2].names.contains(&"X-Upload-ID".to_owned()), "{:?}", got[2].names);
    assert_eq!((got[0].trailers.as_str(), got[2].trailers.as_str()), ("", "X-Checksum: 1\r\n"), "trailers as sent");
    assert!(got[3].names.contains(&"X-Mixed-Case".to_owned()), "{:?}", got[3].names);
    // Streamed, not held: a fraction of the body (the allocator commits memory 2 MiB at a time).
    assert!(grown <= 4096, "RSS grew {grown} KiB during a 16 MiB chunked upload");
    let line = proxy.wait_line(|l| l["path"] == "/c" && l.get("status").is_some());
    assert_eq!((line["status"].as_u64(), line["bytes_in"].as_u64()), (Some(200), Some(data.len() as u64)), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_that_breaks_its_framing_is_refused_and_blue_gets_no_end() {
    let (up, seen) = body_upstream(Blue::Takes).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    // Good chunks first, so part of the body is on its way to blue, then a bare LF.
    let mut raw = b"POST /broken HTTP/1.1\r\nHost: upload.example.com\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"7530\r\n");
        raw.extend_from_slice(&pattern(30_000));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"5\nhello\r\n0\r\n\r\n");
    let (answer, closed) = raw_exchange(proxy.addr, &raw, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n") && closed, "{text}");
    let line = proxy.wait_line(|l| l["path"] == "/broken" && l.get("status").is_some());
    assert_eq!((line["status"].as_u64(), line["error"].as_str()), (Some(400), Some("client_aborted")), "{line}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().is_empty(), "blue never saw the body end: {:?}", seen.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_answering_while_the_client_pauses_is_passed_on_and_the_rest_is_drained() {
    let (up, _) = body_upstream(Blue::Refuses).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // 100 KB of a 10 MB body, then nothing: no write of the proxy's is blocked, it waits on the
    // client, and blue's 413 must still come through at once.
    let head = "PUT /paused HTTP/1.1\r\nHost: upload.example.com\r\nContent-Length: 10000000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&pattern(100_000)).await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let (status, head, body) = response(&mut s, &mut buf).await.expect("blue's answer while the client pauses");
    assert_eq!((status, &body[..]), (413, &b"big\n"[..]), "{head}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    // The client goes on sending what it had started (as curl does): the proxy reads and drops
    // it (a lingering close) instead of closing under it, which would reset the connection and
    // can take the answer with it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = pattern(16 << 20);
    tokio::time::timeout(Duration::from_secs(5), s.write_all(&rest))
        .await
        .expect("the rest is taken")
        .expect("no reset while the proxy lingers");
    let line = proxy.wait_line(|l| l["path"] == "/paused" && l.get("status").is_some());
    assert_eq!(line["status"], 413, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_its_host_has_its_body_drained() {
    let (up, seen) = body_upstream(Blue::Takes).await;
    let proxy = ProxyProc::start(&["--upstream", &format!("http://{up}")]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // No Host on HTTP/1.1: 400 from the proxy, nothing sent to blue, and the body the client is
    // sending read and dropped rather than reset.
    s.write_all(b"PUT /nohost HTTP/1.1\r\nContent-Length: 20000000\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = response(&mut s, &mut buf).await.expect("the proxy's 400");
    assert_eq!(status, 400, "{head}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(5), s.write_all(&pattern(16 << 20)))
        .await
        .expect("the body is taken")
        .expect("no reset while the proxy lingers");
    assert!(seen.lock().unwrap().is_empty());
    let line = proxy.wait_line(|l| l["path"] == "/nohost" && l.get("status").is_some());
    assert_eq!((line["status"].as_u64(), line["error"].as_str()), (Some(400), Some("client_host_missing")), "{line}");
}

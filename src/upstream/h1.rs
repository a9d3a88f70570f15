//! A lean HTTP/1.1 exchange with a plain-`http://` upstream for requests without a body (most
//! GETs): the request head goes straight to a pooled socket and the response is read in the
//! request's own task, with no connection task, no channel and no wake-up between tasks per
//! request (measured in docs/BENCHMARKS.md). Requests with a body, upgrades, HTTP/2 and TLS
//! upstreams keep hyper's client ([`super::pool`]).
//!
//! Response framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; chunked when the
//! last transfer coding is chunked (trailers kept); Content-Length (all values equal); otherwise
//! until the upstream closes. A connection is reused only after a complete HTTP/1.1 response
//! that did not ask to close and left no stray bytes behind.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::pool::{Pool, UpConn, Watchdog};
use crate::error::UpstreamError;
use crate::shutdown::now_ms;
use std::sync::{Arc, Weak};

/// Longest response head (status line and headers) accepted: hyper's default read buffer limit,
/// so responses that passed through hyper's client pass here too (nginx's `proxy_buffer_size`
/// plays the same part: "upstream sent too big header").
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most response header fields accepted (hyper's default is 100).
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Longest trailer section.
const MAX_TRAILERS: usize = 64 * 1024;
/// Room made in the read buffer before each read.
const READ_ROOM: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    /// The upstream closed or reset the connection before the response was complete.
    #[error("the upstream closed the connection before the response was complete")]
    Reset,
    /// The upstream stayed silent longer than `--upstream-timeout`.
    #[error("the upstream stayed silent too long")]
    Timeout,
    /// The upstream's bytes are not a valid HTTP/1.1 response.
    #[error("the upstream sent an invalid HTTP/1.1 response")]
    Protocol,
}

impl From<RawError> for UpstreamError {
    fn from(e: RawError) -> Self {
        match e {
            RawError::Reset => UpstreamError::Reset,
            RawError::Timeout => UpstreamError::Timeout,
            RawError::Protocol => UpstreamError::Protocol,
        }
    }
}

/// One pooled upstream connection: the socket, what was read past the last response, and the
/// watchdog that rings when the upstream is silent (busy) or the connection idle too long.
pub struct RawConn {
    io: TcpStream,
    buf: BytesMut,
    head: Vec<u8>,
    state: Arc<UpConn>,
    rang: oneshot::Receiver<()>,
    rung: bool,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Drop for RawConn {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

impl RawConn {
    fn new(io: TcpStream, watchdog: Watchdog, state: Arc<UpConn>, pool: Weak<Pool>) -> Self {
        let (ring, rang) = oneshot::channel();
        let watchdog = tokio::spawn(async move {
            watchdog.watch(ring).await;
            // Rang: when this connection sits idle in the pool, nobody would close it until the
            // next request; prune the pool now (this task ends with it).
            if let Some(pool) = pool.upgrade() {
                pool.raw_prune();
            }
        });
        Self { io, buf: BytesMut::new(), head: Vec::with_capacity(512), state, rang, rung: false, watchdog }
    }

    /// Whether the watchdog rang (the connection is finished either way).
    fn poll_rung(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.rung && Pin::new(&mut self.rang).poll(cx).is_ready() {
            self.rung = true;
        }
        self.rung
    }

    /// Still good for another request: not rung, not idle too long, nothing unsolicited read,
    /// and the socket not readable (an idle connection is readable only when the upstream closed
    /// it or sent junk). Checks readiness already known to the runtime: no system call.
    fn reusable(&mut self, idle_ms: u64) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.poll_rung(&mut cx) || !self.buf.is_empty() {
            return false;
        }
        if now_ms().saturating_sub(self.state.last_io()) >= idle_ms {
            return false;
        }
        self.io.poll_read_ready(&mut cx).is_pending()
    }

    /// Reads more into the buffer: the number of bytes read (0 at end of stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, RawError>> {
        if self.poll_rung(cx) {
            return Poll::Ready(Err(if self.state.timed_out() { RawError::Timeout } else { RawError::Reset }));
        }
        if self.buf.capacity() - self.buf.len() < READ_ROOM / 4 {
            self.buf.reserve(READ_ROOM);
        }
        // `read_buf` (not `try_read_buf`): a short read tells the runtime the socket is drained,
        // saving a system call that would only say "would block" on the next request.
        let read = std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx);
        match read {
            Poll::Ready(Ok(n)) => {
                self.state.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(RawError::Reset)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes the encoded request head.
    async fn write_head(&mut self) -> Result<(), RawError> {
        let mut sent = 0;
        poll_fn(|cx| {
            while sent < self.head.len() {
                if self.poll_rung(cx) {
                    return Poll::Ready(Err(RawError::Timeout));
                }
                match Pin::new(&mut self.io).poll_write(cx, &self.head[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(RawError::Reset)),
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        self.state.touch();
        Ok(())
    }

    /// Reads until a final (non-1xx) response head is complete; `got_bytes` tells whether any
    /// byte of a response arrived (a request that got none may be retried on a fresh connection).
    async fn read_head(&mut self, is_head: bool) -> Result<Head, (RawError, bool)> {
        let mut got_bytes = false;
        loop {
            if !self.buf.is_empty() {
                got_bytes = true;
                match parse_head(&mut self.buf, is_head).map_err(|e| (e, true))? {
                    Parsed::Final(head) => return Ok(head),
                    Parsed::Informational => continue,
                    Parsed::Partial if self.buf.len() >= MAX_HEAD => return Err((RawError::Protocol, true)),
                    Parsed::Partial => {}
                }
            }
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) => return Err((RawError::Reset, got_bytes)),
                Ok(_) => {}
                Err(e) => return Err((e, got_bytes)),
            }
        }
    }
}

/// A parsed final response head and how its body is framed.
struct Head {
    status: StatusCode,
    reason: Option<hyper::ext::ReasonPhrase>,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

enum Parsed {
    Final(Head),
    /// A 1xx response was consumed; the final one follows.
    Informational,
    Partial,
}

/// Parses (and consumes) one response head at the start of `buf`.
fn parse_head(buf: &mut BytesMut, is_head: bool) -> Result<Parsed, RawError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        // The limit holds however the head arrived (in one read or many).
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(RawError::Protocol),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(RawError::Protocol),
    };
    let code = res.code.ok_or(RawError::Protocol)?;
    let status = StatusCode::from_u16(code).map_err(|_| RawError::Protocol)?;
    if status.is_informational() {
        // 100 Continue, 103 Early Hints: dropped, as hyper's client does. 101 was not asked for.
        if code == 101 {
            return Err(RawError::Protocol);
        }
        let _ = buf.split_to(len);
        return Ok(Parsed::Informational);
    }
    let version = if res.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    let reason = match res.reason {
        Some(r) if Some(r) != status.canonical_reason() && !r.is_empty() => {
            hyper::ext::ReasonPhrase::try_from(r.as_bytes().to_vec()).ok()
        }
        _ => None,
    };
    // The values share the head's bytes instead of a copy each (as hyper does).
    let base = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(res.headers.len());
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| RawError::Protocol)?;
        let start = h.value.as_ptr() as usize - base;
        spans.push((name, start, start + h.value.len()));
    }
    let raw = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, start, end) in spans {
        let value = HeaderValue::from_maybe_shared(raw.slice(start..end)).map_err(|_| RawError::Protocol)?;
        headers.append(name, value);
    }
    let (framing, clean) = framing(&headers, status, is_head)?;
    let keep_alive = version == Version::HTTP_11 && clean && !asks_close(&headers);
    Ok(Parsed::Final(Head { status, reason, headers, framing, keep_alive }))
}

/// How the body is delimited, and whether the framing leaves the connection reusable.
fn framing(headers: &HeaderMap, status: StatusCode, is_head: bool) -> Result<(Framing, bool), RawError> {
    if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding overrides Content-Length (not even parsed then, as hyper did), but
        // a message with both must close the connection (RFC 9112 §6.3).
        let length = headers.contains_key(header::CONTENT_LENGTH);
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked { (Framing::Chunked(Chunk::Size), !length) } else { (Framing::Close, false) });
    }
    Ok(match content_length(headers)? {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

/// The Content-Length, when given: every value (and list element) must be the same number.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, RawError> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| RawError::Protocol)?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RawError::Protocol);
            }
            let n: u64 = part.parse().map_err(|_| RawError::Protocol)?;
            if found.is_some_and(|f| f != n) {
                return Err(RawError::Protocol);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn asks_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))))
}

/// Writes the request head in origin form. Several `Cookie` fields (HTTP/2 splits them) become
/// one, joined by "; " (RFC 9113 §8.2.3).
fn encode_head(parts: &request::Parts, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut cookies_done = false;
    for (name, value) in parts.headers.iter() {
        if name == header::COOKIE {
            if cookies_done {
                continue;
            }
            cookies_done = true;
            out.extend_from_slice(b"cookie: ");
            for (i, v) in parts.headers.get_all(header::COOKIE).iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(v.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods whose request may be sent again when a reused connection turned out closed before any
/// byte of the answer (RFC 9110 §9.2.2), as nginx's `proxy_next_upstream error` does.
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

impl Pool {
    /// Sends a request without a body and reads the response head; the body streams from the
    /// returned [`RawBody`], which gives the connection back to the pool at its end.
    pub async fn exchange(self: &Arc<Self>, parts: &request::Parts) -> Result<Response<RawBody>, UpstreamError> {
        let is_head = parts.method == Method::HEAD;
        let (mut conn, mut reused) = match self.raw_checkout().await {
            Some(conn) => (conn, true),
            None => (Box::pin(self.raw_connect()).await?, false),
        };
        loop {
            encode_head(parts, &mut conn.head);
            conn.state.set_busy(true);
            let head = match conn.write_head().await {
                Ok(()) => conn.read_head(is_head).await,
                Err(e) => Err((e, false)),
            };
            match head {
                Ok(head) => return Ok(self.respond(conn, head)),
                Err((RawError::Reset, false)) if reused && idempotent(&parts.method) => {
                    // The upstream closed this idle connection as we sent: once more on a new one.
                    drop(conn);
                    conn = Box::pin(self.raw_connect()).await?;
                    reused = false;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    fn respond(self: &Arc<Self>, conn: RawConn, head: Head) -> Response<RawBody> {
        let mut body = RawBody {
            conn: Some(conn),
            framing: head.framing,
            keep_alive: head.keep_alive,
            pool: self.clone(),
            // The head itself is not written yet either.
            fresh_data: true,
            deferred: None,
        };
        if matches!(body.framing, Framing::Empty) {
            body.end();
        }
        // The version stays HTTP/1.1: toward the client the proxy speaks its own (RFC 9110
        // §6.2), so an HTTP/1.0 upstream does not end a keep-alive client connection.
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        if let Some(reason) = head.reason {
            resp.extensions_mut().insert(reason);
        }
        resp
    }

    async fn raw_checkout(&self) -> Option<RawConn> {
        let idle_ms = self.settings().idle_timeout.as_millis() as u64;
        loop {
            let mut conn = self.raw_idle().lock().ok()?.pop()?;
            // Outside the task's cooperative budget: with the budget spent, the readiness check
            // would answer "not ready" and a connection the upstream closed would pass as usable.
            let ok = tokio::task::unconstrained(poll_fn(|_| Poll::Ready(conn.reusable(idle_ms)))).await;
            if ok {
                return Some(conn);
            }
        }
    }

    /// Closes the idle connections that are past the idle timeout, rang, or were closed by the
    /// upstream (run by a connection's watchdog when it rings, so an idle pool empties itself
    /// even when no request comes to check it).
    fn raw_prune(&self) {
        let idle_ms = self.settings().idle_timeout.as_millis() as u64;
        let stale: Vec<RawConn> = match self.raw_idle().lock() {
            Ok(mut stack) => {
                let mut stale = Vec::new();
                for mut conn in std::mem::take(&mut *stack) {
                    if conn.reusable(idle_ms) {
                        stack.push(conn);
                    } else {
                        stale.push(conn);
                    }
                }
                stale
            }
            Err(_) => Vec::new(),
        };
        drop(stale);
    }

    /// Puts a connection back; those past the idle timeout are closed by their own watchdog
    /// ([`Pool::raw_prune`]), so a release does no pruning of its own.
    fn raw_put(&self, conn: RawConn) {
        conn.state.set_busy(false);
        if let Ok(mut stack) = self.raw_idle().lock() {
            if stack.len() < self.settings().max_idle {
                stack.push(conn);
            }
        }
    }

    async fn raw_connect(self: &Arc<Self>) -> Result<RawConn, UpstreamError> {
        let budget = self.settings().connect_timeout;
        let tcp = tokio::time::timeout(budget, super::pool::connect_any(self.upstream(), budget))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)??;
        let state = Arc::new(UpConn::default());
        state.set_busy(true);
        Ok(RawConn::new(tcp, self.watchdog(state.clone()), state, Arc::downgrade(self)))
    }
}

/// How the response body is delimited.
enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    Close,
}

/// Where the chunked decoder stands.
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The response body, read from the upstream connection as the client takes it.
pub struct RawBody {
    conn: Option<RawConn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
    /// Data was handed out since the last `Pending`: hyper has it buffered, not yet written.
    fresh_data: bool,
    /// A failure held back one turn, so the data before it reaches the client first.
    deferred: Option<RawError>,
}

impl RawBody {
    /// The body is complete: the connection goes back to the pool when it can be reused.
    fn end(&mut self) {
        self.framing = Framing::Empty;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.raw_put(conn);
            }
        }
    }

    /// Ends the body with `e`. When data went out in this same turn, hyper still holds it in its
    /// write buffer and would drop it on the error: the error waits for the next turn, so the
    /// client sees the truncated body (status and all) before the connection closes.
    fn fail(&mut self, e: RawError, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RawError>>> {
        self.conn = None;
        self.framing = Framing::Empty;
        if std::mem::take(&mut self.fresh_data) {
            self.deferred = Some(e);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(e)))
    }

    /// Hands out a data frame.
    fn data(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, RawError>>> {
        self.fresh_data = true;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = RawError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RawError>>> {
        let this = self.get_mut();
        if let Some(e) = this.deferred.take() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match &mut this.framing {
                Framing::Empty => {
                    this.end();
                    return Poll::Ready(None);
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) if !conn.buf.is_empty() => {
                    let n = (*left).min(conn.buf.len() as u64) as usize;
                    let data = conn.buf.split_to(n).freeze();
                    *left -= n as u64;
                    if *left == 0 {
                        match &mut this.framing {
                            Framing::Chunked(state) => *state = Chunk::DataEnd,
                            _ => this.end(),
                        }
                    }
                    return this.data(data);
                }
                Framing::Close if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return this.data(data);
                }
                Framing::Chunked(Chunk::Size) if !conn.buf.is_empty() => match chunk_size(&mut conn.buf) {
                    Ok(Some(0)) => {
                        this.framing = Framing::Chunked(Chunk::Trailers);
                        continue;
                    }
                    Ok(Some(n)) => {
                        this.framing = Framing::Chunked(Chunk::Data(n));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return this.fail(e, cx),
                },
                Framing::Chunked(Chunk::DataEnd) if conn.buf.len() >= 2 => {
                    if &conn.buf[..2] != b"\r\n" {
                        return this.fail(RawError::Protocol, cx);
                    }
                    let _ = conn.buf.split_to(2);
                    this.framing = Framing::Chunked(Chunk::Size);
                    continue;
                }
                Framing::Chunked(Chunk::Trailers) if !conn.buf.is_empty() => match trailers(&mut conn.buf) {
                    Ok(Some(map)) => {
                        this.end();
                        if map.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(map))));
                    }
                    Ok(None) => {}
                    Err(e) => return this.fail(e, cx),
                },
                _ => {}
            }
            // Whatever is buffered is not enough: read more.
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            if !matches!(this.framing, Framing::Length(_) | Framing::Close | Framing::Chunked(Chunk::Data(_)))
                && conn.buf.len() >= MAX_TRAILERS
            {
                return this.fail(RawError::Protocol, cx);
            }
            match conn.poll_fill(cx) {
                Poll::Pending => {
                    this.fresh_data = false;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) if matches!(this.framing, Framing::Close) => {
                    this.keep_alive = false;
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail(RawError::Reset, cx),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(e, cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.deferred.is_none() && matches!(self.framing, Framing::Empty | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// Parses a chunk-size line (`1a;ext=1\r\n`) at the start of `buf`; `None` until it is complete.
fn chunk_size(buf: &mut BytesMut) -> Result<Option<u64>, RawError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_CHUNK_LINE { Err(RawError::Protocol) } else { Ok(None) };
    };
    if end > MAX_CHUNK_LINE || end == 0 || buf[end - 1] != b'\r' {
        return Err(RawError::Protocol);
    }
    let line = &buf[..end - 1];
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(RawError::Protocol);
    }
    // Leading zeros are allowed; the value itself must fit.
    let zeros = digits.iter().take_while(|&&b| b == b'0').count().min(digits.len() - 1);
    let digits = &digits[zeros..];
    if digits.len() > 15 {
        return Err(RawError::Protocol);
    }
    let text = std::str::from_utf8(digits).map_err(|_| RawError::Protocol)?;
    let size = u64::from_str_radix(text, 16).map_err(|_| RawError::Protocol)?;
    let _ = buf.split_to(end + 1);
    Ok(Some(size))
}

/// Parses the trailer section after the last chunk (ending with an empty line); `None` until it
/// is complete.
fn trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>, RawError> {
    if buf.starts_with(b"\r\n") {
        let _ = buf.split_to(2);
        return Ok(Some(HeaderMap::new()));
    }
    // A bare LF where the section's first line should end is refused at once, as hyper does.
    if buf.starts_with(b"\n") || buf.starts_with(b"\r") && buf.len() >= 2 && buf[1] != b'\n' {
        return Err(RawError::Protocol);
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_TRAILERS { Err(RawError::Protocol) } else { Ok(None) };
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let map = match httparse::parse_headers(&buf[..end + 4], &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields {
                let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| RawError::Protocol)?;
                let value = HeaderValue::from_bytes(f.value).map_err(|_| RawError::Protocol)?;
                map.append(name, value);
            }
            map
        }
        _ => return Err(RawError::Protocol),
    };
    let _ = buf.split_to(end + 4);
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(text: &str, is_head: bool) -> Result<Parsed, RawError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf, is_head)
    }

    fn framing_of(text: &str) -> (String, bool) {
        match head_of(text, false) {
            Ok(Parsed::Final(h)) => {
                let f = match h.framing {
                    Framing::Empty => "empty".to_string(),
                    Framing::Length(n) => format!("length {n}"),
                    Framing::Chunked(_) => "chunked".into(),
                    Framing::Close => "close".into(),
                };
                (f, h.keep_alive)
            }
            Ok(Parsed::Informational) => ("1xx".into(), false),
            Ok(Parsed::Partial) => ("partial".into(), false),
            Err(e) => (format!("error {e:?}"), false),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", ("length 5", true)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", ("length 5", true)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 204 No Content\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", ("chunked", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", ("chunked", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n", ("chunked", false)),
            // Transfer-Encoding overrides even a broken Content-Length.
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 10, 20\r\n\r\n", ("chunked", false)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", ("close", false)),
            ("HTTP/1.1 200 OK\r\n\r\n", ("close", false)),
            ("HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n", ("length 5", false)),
            ("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\n", ("length 5", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n", ("1xx", false)),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-le", ("partial", false)),
            ("SSH-2.0-OpenSSH\r\n\r\n", ("error Protocol", false)),
        ];
        for (text, (want, keep)) in cases {
            assert_eq!(framing_of(text), (want.to_string(), keep), "{text:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(framing_of(&huge).0, "error Protocol", "a head over the limit, complete in one read");
        // HEAD: no body whatever the length says.
        match head_of("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", true) {
            Ok(Parsed::Final(h)) => assert!(matches!(h.framing, Framing::Empty)),
            _ => panic!("HEAD response not parsed"),
        }
    }

    #[test]
    fn headers_and_reason_are_kept() {
        let Ok(Parsed::Final(h)) =
            head_of("HTTP/1.1 404 Nope\r\nX-A: 1\r\nx-a: 2\r\nServer: blue\r\ncontent-length: 0\r\n\r\n", false)
        else {
            panic!("not parsed")
        };
        assert_eq!(h.status, 404);
        assert_eq!(h.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h.headers["server"], "blue");
        assert_eq!(h.reason.as_ref().map(|r| r.as_bytes()), Some(&b"Nope"[..]));
    }

    #[test]
    fn chunk_lines_and_trailers() {
        let mut buf = BytesMut::from(&b"1a;name=v\r\nrest"[..]);
        assert_eq!(chunk_size(&mut buf), Ok(Some(26)));
        assert_eq!(&buf[..], b"rest");
        for bad in [&b"zz\r\n"[..], b"\r\n", b"1a\n", b"12345678901234567\r\n"] {
            assert_eq!(chunk_size(&mut BytesMut::from(bad)), Err(RawError::Protocol), "{bad:?}");
        }
        assert_eq!(chunk_size(&mut BytesMut::from(&b"1a"[..])), Ok(None));
        assert_eq!(chunk_size(&mut BytesMut::from(&b"00000000000000000000001a\r\n"[..])), Ok(Some(26)));
        assert_eq!(chunk_size(&mut BytesMut::from(&b"0000\r\n"[..])), Ok(Some(0)));
        let mut buf = BytesMut::from(&b"x-checksum: abc\r\nx-b: 2\r\n\r\nnext"[..]);
        let map = trailers(&mut buf).unwrap().unwrap();
        assert_eq!(map["x-checksum"], "abc");
        assert_eq!(&buf[..], b"next");
        assert_eq!(trailers(&mut BytesMut::from(&b"\r\n"[..])).unwrap().map(|m| m.len()), Some(0));
        assert_eq!(trailers(&mut BytesMut::from(&b"x-a: 1\r\n"[..])).unwrap(), None);
        // A read that ends after the first byte of a trailer field: wait for the rest.
        assert_eq!(trailers(&mut BytesMut::from(&b"x"[..])).unwrap(), None);
        assert_eq!(trailers(&mut BytesMut::from(&b"\r"[..])).unwrap(), None);
        // A bare LF instead of the empty line: refused at once.
        assert_eq!(trailers(&mut BytesMut::from(&b"\n"[..])), Err(RawError::Protocol));
    }

    #[test]
    fn request_head_in_origin_form_with_cookies_joined() {
        let req = http::Request::get("/a/b?q=1")
            .header("host", "shop.example.com")
            .header("cookie", "a=1")
            .header("x-forwarded-for", "10.0.0.1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_head(&parts, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a/b?q=1 HTTP/1.1\r\nhost: shop.example.com\r\ncookie: a=1; b=2\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
        );
    }
}

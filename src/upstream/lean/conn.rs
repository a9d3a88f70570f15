//! The lean exchange's sockets: a per-worker stack of idle upstream connections, the request head
//! written straight to one, the response head read and parsed ([`super::codec`]), and the body
//! streamed from the connection in the request's own task, which gives the connection back at
//! its end.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{request, Method, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::codec::{
    chunk_size, encode_head, idempotent, parse_head, trailers, Chunk, Framing, Head, LeanError, Parsed, MAX_HEAD,
    MAX_TRAILERS,
};
use crate::base::cause::Cause;
use crate::base::time::coarse_ms;
use crate::net::spare;
use crate::upstream::pool::{connect_any, PoolSettings, UpConn, Watchdog};
use crate::upstream::Upstream;

/// Room made in the read buffer before each read.
const READ_ROOM: usize = spare::READ_ROOM;

/// One pooled upstream connection: the socket, what was read past the last response, and the
/// watchdog that rings when the upstream is silent (busy) or the connection idle too long.
pub struct LeanConn {
    pub(super) io: TcpStream,
    buf: BytesMut,
    pub(super) state: Arc<UpConn>,
    rang: oneshot::Receiver<()>,
    rung: bool,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Drop for LeanConn {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

impl LeanConn {
    fn new(io: TcpStream, watchdog: Watchdog, state: Arc<UpConn>, pool: Weak<LeanPool>) -> Self {
        let (ring, rang) = oneshot::channel();
        let watchdog = tokio::spawn(async move {
            watchdog.watch(ring).await;
            // Rang: when this connection sits idle in the pool, nobody would close it until the
            // next request; prune the pool now (this task ends with it).
            if let Some(pool) = pool.upgrade() {
                pool.prune();
            }
        });
        Self { io, buf: BytesMut::new(), state, rang, rung: false, watchdog }
    }

    /// Whether the watchdog rang (the connection is finished either way).
    pub(super) fn poll_rung(&mut self, cx: &mut Context<'_>) -> bool {
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
        if coarse_ms().saturating_sub(self.state.last_io()) >= idle_ms {
            return false;
        }
        self.io.poll_read_ready(&mut cx).is_pending()
    }

    /// Reads more into the buffer: the number of bytes read (0 at end of stream).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, LeanError>> {
        if self.poll_rung(cx) {
            return Poll::Ready(Err(if self.state.timed_out() { LeanError::Timeout } else { LeanError::Reset }));
        }
        if self.buf.capacity() == 0 {
            self.buf = spare::read_buf(READ_ROOM);
        } else if self.buf.capacity() - self.buf.len() < READ_ROOM / 4 {
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
            Poll::Ready(Err(_)) => Poll::Ready(Err(LeanError::Reset)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes the request (its head, and a body read whole).
    pub(super) async fn write_request(&mut self, bytes: &[u8]) -> Result<(), LeanError> {
        let mut sent = 0;
        poll_fn(|cx| {
            while sent < bytes.len() {
                if self.poll_rung(cx) {
                    return Poll::Ready(Err(LeanError::Timeout));
                }
                match Pin::new(&mut self.io).poll_write(cx, &bytes[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(LeanError::Reset)),
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

    /// Whether what blue sent so far is more than interim (1xx) heads, which are dropped here as
    /// [`Self::read_head`] drops them: blue answered the request before it was all sent.
    pub(super) fn answered(&mut self, is_head: bool) -> bool {
        loop {
            let b = &self.buf[..];
            if b.len() < b"HTTP/1.1 1".len() {
                return false;
            }
            if !(b.starts_with(b"HTTP/1.") && b[9] == b'1') {
                return true;
            }
            match parse_head(&mut self.buf, is_head) {
                Ok(Parsed::Informational) => {}
                Ok(Parsed::Partial) => return self.buf.len() >= MAX_HEAD,
                // A final head, or one read_head refuses.
                _ => return true,
            }
        }
    }

    /// Reads until a final (non-1xx) response head is complete; `got_bytes` tells whether any
    /// byte of a response arrived (a request that got none may be retried on a fresh connection).
    pub(super) async fn read_head(&mut self, is_head: bool) -> Result<Head, (LeanError, bool)> {
        let mut got_bytes = false;
        loop {
            if !self.buf.is_empty() {
                got_bytes = true;
                match parse_head(&mut self.buf, is_head).map_err(|e| (e, true))? {
                    Parsed::Final(head) => return Ok(head),
                    Parsed::Informational => continue,
                    Parsed::Partial if self.buf.len() >= MAX_HEAD => return Err((LeanError::Protocol, true)),
                    Parsed::Partial => {}
                }
            }
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) => return Err((LeanError::Reset, got_bytes)),
                Ok(_) => {}
                Err(e) => return Err((e, got_bytes)),
            }
        }
    }
}

/// One worker's idle lean connections to one upstream, most recently used last.
pub struct LeanPool {
    upstream: Arc<Upstream>,
    settings: Arc<PoolSettings>,
    idle: Mutex<Vec<LeanConn>>,
}

impl LeanPool {
    /// An empty pool.
    pub fn new(upstream: Arc<Upstream>, settings: Arc<PoolSettings>) -> Arc<Self> {
        Arc::new(Self { upstream, settings, idle: Mutex::new(Vec::new()) })
    }

    /// Sends a request without a body and reads the response head; the body streams from the
    /// returned [`LeanBody`], which gives the connection back to the pool at its end.
    pub async fn exchange(self: &Arc<Self>, parts: &request::Parts) -> Result<Response<LeanBody>, Cause> {
        let mut bytes = spare::write_buf();
        encode_head(parts, &mut bytes);
        let sent = self.exchange_raw(&parts.method, &bytes).await;
        spare::give_write_buf(bytes);
        let (head, body) = sent?;
        // The version stays HTTP/1.1: toward the client the proxy speaks its own (RFC 9110
        // §6.2), so an HTTP/1.0 upstream does not end a keep-alive client connection.
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.header_map();
        if let Some(reason) = head.reason.clone() {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(head.raw.slice(reason)) {
                resp.extensions_mut().insert(reason);
            }
        }
        Ok(resp)
    }

    /// The same exchange with the request as bytes (its head, and a body read whole), sent
    /// again on a fresh connection should a reused one turn out closed. The response head comes
    /// back as it arrived.
    pub async fn exchange_raw(self: &Arc<Self>, method: &Method, request: &[u8]) -> Result<(Head, LeanBody), Cause> {
        let is_head = *method == Method::HEAD;
        let (mut conn, mut reused) = self.checkout_or_connect().await?;
        loop {
            conn.state.set_busy(true);
            let head = match conn.write_request(request).await {
                Ok(()) => conn.read_head(is_head).await,
                Err(e) => Err((e, false)),
            };
            match head {
                Ok(head) => {
                    let body = self.body(conn, &head, true);
                    return Ok((head, body));
                }
                Err((LeanError::Reset, false)) if reused && idempotent(method) => {
                    // The upstream closed this idle connection as we sent: once more on a new one.
                    drop(conn);
                    conn = Box::pin(self.connect()).await?;
                    reused = false;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// An idle connection, or a new one: the second says whether it was reused.
    pub(super) async fn checkout_or_connect(self: &Arc<Self>) -> Result<(LeanConn, bool), Cause> {
        match self.checkout().await {
            Some(conn) => Ok((conn, true)),
            None => Ok((Box::pin(self.connect()).await?, false)),
        }
    }

    /// The response's body; `reuse` false closes the connection at its end whatever blue said.
    pub(super) fn body(self: &Arc<Self>, conn: LeanConn, head: &Head, reuse: bool) -> LeanBody {
        let mut body = LeanBody {
            addr: conn.state.addr,
            conn: Some(conn),
            framing: head.framing.clone(),
            keep_alive: head.keep_alive && reuse,
            pool: self.clone(),
            // The head itself is not written yet either.
            fresh_data: true,
            deferred: None,
        };
        if matches!(body.framing, Framing::Empty) {
            body.end();
        }
        body
    }

    async fn checkout(&self) -> Option<LeanConn> {
        let idle_ms = self.settings.idle_timeout.as_millis() as u64;
        loop {
            let mut conn = self.idle.lock().ok()?.pop()?;
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
    fn prune(&self) {
        let idle_ms = self.settings.idle_timeout.as_millis() as u64;
        let stale: Vec<LeanConn> = match self.idle.lock() {
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
    /// ([`LeanPool::prune`]), so a release does no pruning of its own.
    fn put(&self, mut conn: LeanConn) {
        conn.state.set_busy(false);
        // An idle connection holds no buffer: the next read takes a spare one.
        spare::give_read_buf(std::mem::take(&mut conn.buf));
        if let Ok(mut stack) = self.idle.lock() {
            if stack.len() < self.settings.max_idle {
                stack.push(conn);
            }
        }
    }

    pub(super) async fn connect(self: &Arc<Self>) -> Result<LeanConn, Cause> {
        let budget = self.settings.connect_timeout;
        let tcp = tokio::time::timeout(budget, connect_any(&self.upstream, budget))
            .await
            .map_err(|_| Cause::ConnectTimeout)??;
        let state = Arc::new(UpConn::to(tcp.peer_addr().ok()));
        state.set_busy(true);
        let watchdog = Watchdog::new(state.clone(), &self.settings);
        Ok(LeanConn::new(tcp, watchdog, state, Arc::downgrade(self)))
    }
}

impl LeanBody {
    /// The upstream address the response comes from.
    pub fn upstream_addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }
}

/// The response body, read from the upstream connection as the client takes it.
pub struct LeanBody {
    /// Kept apart from the connection, which an empty body gives back at once.
    addr: Option<std::net::SocketAddr>,
    conn: Option<LeanConn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<LeanPool>,
    /// Data was handed out since the last `Pending`: hyper has it buffered, not yet written.
    fresh_data: bool,
    /// A failure held back one turn, so the data before it reaches the client first.
    deferred: Option<LeanError>,
}

impl LeanBody {
    /// The body is complete: the connection goes back to the pool when it can be reused.
    fn end(&mut self) {
        self.framing = Framing::Empty;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.put(conn);
            }
        }
    }

    /// Ends the body with `e`. When data went out in this same turn, hyper still holds it in its
    /// write buffer and would drop it on the error: the error waits for the next turn, so the
    /// client sees the truncated body (status and all) before the connection closes.
    fn fail(&mut self, e: LeanError, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, LeanError>>> {
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
    fn data(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, LeanError>>> {
        self.fresh_data = true;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for LeanBody {
    type Data = Bytes;
    type Error = LeanError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, LeanError>>> {
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
                        return this.fail(LeanError::Protocol, cx);
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
                return this.fail(LeanError::Protocol, cx);
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
                Poll::Ready(Ok(0)) => return this.fail(LeanError::Reset, cx),
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

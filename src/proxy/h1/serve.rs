//! The proxy's own HTTP/1.1 server side on plain and HTTPS listeners, for what most traffic is:
//! HTTP/1.x requests without a body, with a `Content-Length` one or a chunked one, toward a
//! plain `http://` blue. The head is parsed once ([`super::head`]), sent on with the few edits a
//! reverse proxy makes ([`super::forward`]) over the lean exchange, the body after it
//! ([`super::body`]), and blue's head comes back as it arrived ([`super::answer`]); the response
//! body is read from blue only as fast as the client takes it. Anything else (an odd framing, an
//! upgrade, gRPC, a head this side does not read) hands the connection, with the bytes read so
//! far, to hyper's server for good.
//!
//! A connection waiting for its next request holds no buffer: bytes are read into one of the
//! worker's spare buffers only once the socket is readable.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::answer::{self, BodyOut, ClientConn};
use super::forward::{self, Hop};
use super::head::{self, absolute_form, body_len, needs_hyper, persists, request_host, Facts, Length, Parse, Target};
use crate::base::cause::Cause;
use crate::base::host::INVALID_HOST;
use crate::base::time::unix_ms_of;
use crate::net::alarm::Expiry;
use crate::net::conn::ConnState;
use crate::net::io::{ClientIo, IoObserver};
use crate::net::spare;
use crate::proxy::handle::Opening;
use crate::proxy::record::RequestRecord;
use crate::proxy::{rewrite, Proxy};
use crate::upstream::lean::{Head, LeanBody, LeanError, LeanPool};

const READ_ROOM: usize = spare::READ_ROOM;
/// A lingering close reads what the client still sends for at most this long (nginx's
/// `lingering_time` is 30 s; shorter here, so it never holds up a pod's shutdown for long)…
const LINGER_TIME: Duration = Duration::from_secs(10);
/// …and gives up once it is silent this long (nginx's `lingering_timeout`).
const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection waits for its last bytes (a TLS close_notify) to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A client that takes none of its response for this long is cut (nginx's `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Response bytes gathered before they are written.
const FLUSH_AT: usize = 32 * 1024;
/// Body data this large is written as it is, not copied into the gathered bytes.
const DIRECT: usize = 8 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What gathering the response's next bytes ended with.
enum Gathered {
    /// Write what was gathered, then gather more.
    More,
    /// Write what was gathered, then this data as it is.
    Then(Bytes),
    /// The body is over (or failed): write what was gathered.
    End,
}

/// How a connection left this side.
pub enum Served {
    /// It is over.
    Closed,
    /// It is over, with the client's body still coming: read and dropped for a while before
    /// the close, so the answer is not lost to the reset that unread bytes cause (nginx's
    /// lingering close).
    Cut,
    /// hyper's server takes it from here, these bytes first.
    Hyper(Bytes),
}

/// What the head at the start of the buffer asks for, decided without holding on to the buffer.
enum Step {
    Partial,
    Hyper,
    /// Refused here (Host rules): the record is under a placeholder.
    Refuse {
        len: usize,
        cause: Cause,
        record: Box<RequestRecord>,
        minor: u8,
        /// A body follows the head, unread.
        body: bool,
    },
    Forward(Forward),
}

pub(super) struct Forward {
    /// The head's length.
    len: usize,
    /// The body's ([`super::body`]).
    pub(super) body: u64,
    /// The body is chunked (and streamed, re-framed).
    pub(super) chunked: bool,
    /// The client waits for `100 Continue` before it sends the body.
    expect_continue: bool,
    pub(super) method: Method,
    pub(super) lean: Arc<LeanPool>,
    /// The request toward blue: its head, then what is sent of its body with it.
    pub(super) head: Vec<u8>,
    pub(super) record: Box<RequestRecord>,
    /// The client's connection.
    client: ClientConn,
}

impl Proxy {
    /// Serves HTTP/1.1 requests on `io` until the connection ends or needs hyper's server.
    pub async fn serve_h1<S: ClientIo>(
        self: &Arc<Self>,
        io: &mut S,
        conn: &Arc<ConnState>,
        rang: &mut oneshot::Receiver<Expiry>,
    ) -> Served {
        let served = self.serve_requests(io, conn, rang).await;
        if let Served::Closed | Served::Cut = served {
            // A TLS client gets its close_notify, so a body that ends with the connection is
            // told from a cut one (hyper's side does the same).
            let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown())).await;
        }
        if let Served::Cut = served {
            Box::pin(linger(io)).await;
            return Served::Closed;
        }
        served
    }

    async fn serve_requests<S: ClientIo>(
        self: &Arc<Self>,
        io: &mut S,
        conn: &Arc<ConnState>,
        rang: &mut oneshot::Receiver<Expiry>,
    ) -> Served {
        let mut buf: Option<BytesMut> = None;
        // How much of `buf` was already looked at for a head's end.
        let mut seen = 0;
        loop {
            let step = match &buf {
                Some(b) if !b.is_empty() && head::may_end(b, seen) => self.step(b, conn),
                _ => Step::Partial,
            };
            let forward = match step {
                Step::Partial => {
                    if buf.as_ref().is_some_and(|b| b.len() >= head::MAX_HEAD) {
                        return hyper(buf);
                    }
                    seen = buf.as_ref().map_or(0, BytesMut::len);
                    match read(io, conn, rang, &mut buf).await {
                        Ok(()) => continue,
                        Err(()) => {
                            give_back(buf);
                            return Served::Closed;
                        }
                    }
                }
                Step::Hyper => return hyper(buf),
                Step::Refuse { len, cause, record, minor, body } => {
                    if let Some(b) = buf.as_mut() {
                        b.advance(len);
                    }
                    give_back(buf);
                    let client = ClientConn { minor, close: true };
                    let _ = Box::pin(own_answer(io, conn, cause, record, client)).await;
                    return if body { Served::Cut } else { Served::Closed };
                }
                Step::Forward(f) => f,
            };
            let mut forward = forward;
            seen = 0;
            if let Some(b) = buf.as_mut() {
                b.advance(forward.len);
            }
            if forward.expect_continue
                && (forward.body > 0 || forward.chunked)
                && buf.as_ref().is_none_or(BytesMut::is_empty)
                && send(io, conn, CONTINUE).await.is_err()
            {
                give_back(buf);
                spare::give_write_buf(forward.head);
                return Served::Closed;
            }
            let body = if forward.chunked || forward.body > head::MAX_BODY {
                self.upload(io, conn, &mut buf, &mut forward).await.map(Some)
            } else if forward.body > 0 {
                self.read_body(io, conn, &mut buf, &mut forward).await.map(|()| None)
            } else {
                Ok(None)
            };
            let Forward { method, lean, head, record, mut client, .. } = forward;
            let upload = match body {
                Ok(upload) => upload,
                Err(cause) => {
                    give_back(buf);
                    spare::give_write_buf(head);
                    let client = ClientConn { close: true, ..client };
                    let _ = Box::pin(own_answer(io, conn, cause, record, client)).await;
                    // A client that stopped sending or broke its framing may still be sending.
                    return Served::Cut;
                }
            };
            // Nothing pipelined behind it: the buffer goes back while blue answers.
            if buf.as_ref().is_some_and(BytesMut::is_empty) {
                give_back(buf.take());
            }
            // Boxed: the exchange's state is needed only while a request is served, and inline it
            // would be part of every idle connection's task.
            let mut unread = false;
            let exchanged = match upload {
                Some(uploaded) => {
                    spare::give_write_buf(head);
                    // The rest of a body blue did not wait for is still on its way: the
                    // connection ends with this answer.
                    unread = !uploaded.consumed;
                    client.close |= unread;
                    let answer = uploaded.upload.finish(uploaded.whole);
                    Box::pin(self.exchange(io, conn, answer, record, client, rang)).await
                }
                None => {
                    let sent = lean.exchange_raw(&method, &head);
                    let exchanged = Box::pin(self.exchange(io, conn, sent, record, client, rang)).await;
                    spare::give_write_buf(head);
                    exchanged
                }
            };
            // Closing with requests pipelined behind this one unread would reset the connection
            // under its last answer: those are drained too.
            let pipelined = buf.as_ref().is_some_and(|b| !b.is_empty());
            let closed = if unread || pipelined { Served::Cut } else { Served::Closed };
            if exchanged.is_err() || unread {
                give_back(buf);
                return closed;
            }
            // Idle, draining or stale rang while the request was served: close now it is done.
            if !matches!(rang.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                give_back(buf);
                return closed;
            }
        }
    }

    /// Reads the head at the start of `buf` and decides what becomes of it.
    fn step(self: &Arc<Self>, buf: &[u8], conn: &Arc<ConnState>) -> Step {
        let head = match head::parse(buf) {
            Parse::Partial => return Step::Partial,
            Parse::Foreign => return Step::Hyper,
            Parse::Complete(head) => head,
        };
        let facts = Facts::of(&head.fields);
        if needs_hyper(&head, &facts) {
            return Step::Hyper;
        }
        let absolute = absolute_form(head.target);
        let host = request_host(&facts, absolute.map(|(a, _)| a), head.minor);
        let pool = &self.pools[self.upstreams.pick(host.ok().flatten())];
        let Some(lean) = pool.lean() else { return Step::Hyper };
        conn.request_started();
        let target = absolute.map_or(Target::Path(head.target), |(_, t)| t);
        let mut shown = Vec::new();
        let target_bytes = match target {
            Target::Path(p) => p,
            Target::Rooted(_) => {
                target.push_to(&mut shown);
                &shown[..]
            }
        };
        let xff = head.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-for")).map(|(_, v)| *v);
        let opening = |host| Opening {
            method: Method::from_bytes(head.method).unwrap_or_default(),
            host,
            target: target_bytes,
            version: if head.minor == 0 { Version::HTTP_10 } else { Version::HTTP_11 },
            client_ip: rewrite::client_ip_of(conn.peer.ip(), xff.clone(), &self.settings.trusted),
            user_agent: facts.user_agent,
            request_id: facts.request_id,
        };
        let host = match host {
            Ok(host) => host,
            Err(cause) => {
                // Refused here, recorded under a placeholder: nothing reaches blue.
                let placeholder = (cause == Cause::HostRepeated).then_some(INVALID_HOST.as_bytes());
                let record = self.open_record_of(conn, opening(placeholder), pool.upstream());
                let body = facts.length == Length::Chunked || body_len(&facts) > 0;
                return Step::Refuse { len: head.len, cause, record, minor: head.minor, body };
            }
        };
        let record = self.open_record_of(conn, opening(host), pool.upstream());
        let hop = Hop {
            peer_ip: conn.peer_ip.as_bytes(),
            peer_trusted: conn.peer_trusted,
            proto: if conn.tls.is_some() { b"https" } else { b"http" },
            host,
            fallback_host: pool.upstream().authority.as_bytes(),
            authority: absolute.map(|(a, _)| a),
        };
        let mut out = spare::write_buf();
        forward::encode(head.method, target, &head.fields, &facts, &hop, &mut out);
        Step::Forward(Forward {
            len: head.len,
            body: body_len(&facts),
            chunked: facts.length == Length::Chunked,
            expect_continue: facts.expect_continue && head.minor >= 1,
            method: record.method.clone(),
            lean: lean.clone(),
            head: out,
            // When DNS already sends this host to green, the client reconnects (and re-resolves)
            // after this response.
            client: ClientConn { minor: head.minor, close: !persists(&head, &facts) || self.host_moved(host) },
            record,
        })
    }

    /// One request to blue and its answer to the client; `Err` when the connection closes now.
    async fn exchange<S: ClientIo>(
        &self,
        io: &mut S,
        conn: &ConnState,
        sent: impl Future<Output = Result<(Head, LeanBody), Cause>>,
        mut record: Box<RequestRecord>,
        mut client: ClientConn,
        rang: &mut oneshot::Receiver<Expiry>,
    ) -> Result<(), ()> {
        let sent = tokio::select! {
            biased;
            sent = sent => sent,
            // The client left before blue answered: the record says 499, as hyper's side (and
            // nginx) would; blue's connection is closed with the exchange.
            () = client_left(io.tcp(), !S::WAITS_UNBUFFERED) => return Err(()),
        };
        let (head, mut body) = match sent {
            Ok(answer) => answer,
            Err(cause) => return own_answer(io, conn, cause, record, client).await,
        };
        record.upstream_addr = body.upstream_addr();
        record.status = head.status.as_u16();
        // Draining (or idle, or stale) rang while blue answered: this answer says the
        // connection closes, as hyper's graceful shutdown does.
        client.close |= !matches!(rang.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        let mut out = spare::write_buf();
        let framing = answer::encode(&head, client, unix_ms_of(record.ts) / 1000, &mut out);
        drop(head);
        let mut trailers = None;
        let mut failed = None;
        let chunked = framing == BodyOut::Chunked;
        loop {
            let gathered = poll_fn(|cx| loop {
                match std::pin::Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            record.bytes_out += data.len() as u64;
                            if chunked {
                                answer::chunk_start(data.len(), &mut out);
                            }
                            if data.len() >= DIRECT {
                                return Poll::Ready(Gathered::Then(data));
                            }
                            out.extend_from_slice(&data);
                            if chunked {
                                out.extend_from_slice(b"\r\n");
                            }
                            if out.len() >= FLUSH_AT {
                                return Poll::Ready(Gathered::More);
                            }
                        }
                        Err(frame) => trailers = frame.into_trailers().ok(),
                    },
                    Poll::Ready(None) => return Poll::Ready(Gathered::End),
                    Poll::Ready(Some(Err(e))) => {
                        failed = Some(e);
                        return Poll::Ready(Gathered::End);
                    }
                    Poll::Pending if out.is_empty() => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(Gathered::More),
                }
            })
            .await;
            if matches!(gathered, Gathered::End) && failed.is_none() && chunked {
                answer::chunked_end(trailers.as_ref(), &mut out);
            }
            let mut written = send(io, conn, &out).await;
            out.clear();
            if let (Gathered::Then(data), Ok(())) = (&gathered, written) {
                written = send(io, conn, data).await;
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            if written.is_err() {
                // The client left or took nothing for the send timeout.
                spare::give_write_buf(out);
                return Err(());
            }
            if matches!(gathered, Gathered::End) {
                break;
            }
        }
        spare::give_write_buf(out);
        match failed {
            // The end of a body without a length is the close.
            None if framing == BodyOut::UntilClose => {
                record.complete = true;
                Err(())
            }
            None => {
                record.complete = true;
                if client.close {
                    Err(())
                } else {
                    Ok(())
                }
            }
            Some(e) => {
                record.error = Some(if e == LeanError::Timeout { Cause::Timeout } else { Cause::Reset });
                Err(())
            }
        }
    }
}

/// Reads more of the connection into `buf` (taking a spare one when it has none); `Err` when the
/// client left, or the alarm rang (header or idle timeout, drain) while it was waited for.
async fn read<S: ClientIo>(
    io: &mut S,
    conn: &ConnState,
    rang: &mut oneshot::Receiver<Expiry>,
    buf: &mut Option<BytesMut>,
) -> Result<(), ()> {
    if !S::WAITS_UNBUFFERED {
        // TLS: whether plaintext is there is known only by reading into a buffer.
        let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
        if b.capacity() - b.len() < READ_ROOM / 4 {
            b.reserve(READ_ROOM);
        }
        let before = b.len();
        let read = tokio::select! {
            biased;
            _ = &mut *rang => return Err(()),
            read = io.read_buf(&mut *b) => read,
        };
        return match read {
            Ok(0) | Err(_) => Err(()),
            Ok(_) => {
                conn.on_read(&b[before..]);
                Ok(())
            }
        };
    }
    loop {
        tokio::select! {
            biased;
            _ = &mut *rang => return Err(()),
            ready = io.tcp().readable() => ready.map_err(|_| ())?,
        }
        let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
        if b.capacity() - b.len() < READ_ROOM / 4 {
            b.reserve(READ_ROOM);
        }
        let before = b.len();
        // `read_buf` (not `try_read_buf`): a short read tells the runtime the socket is drained,
        // so watching it for the client's leaving costs no system call.
        let read = poll_fn(|cx| match std::pin::pin!(io.read_buf(&mut *b)).poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match read {
            Some(Ok(0)) | Some(Err(_)) => return Err(()),
            Some(Ok(_)) => {
                conn.on_read(&b[before..]);
                return Ok(());
            }
            // Readiness the runtime had not cleared yet: wait again, holding no buffer.
            None => {
                if b.is_empty() {
                    give_back(buf.take());
                }
            }
        }
    }
}

/// Reads and drops what the client still sends, until it closes, is quiet for
/// [`LINGER_TIMEOUT`], or [`LINGER_TIME`] is up.
async fn linger<S: ClientIo>(io: &mut S) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut b = spare::read_buf(READ_ROOM);
    loop {
        let now = tokio::time::Instant::now();
        // Checked here too: a read that is always ready would never see its timer.
        if now >= deadline {
            break;
        }
        b.clear();
        let quiet = (now + LINGER_TIMEOUT).min(deadline);
        match tokio::time::timeout_at(quiet, io.read_buf(&mut b)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    spare::give_read_buf(b);
}

/// Resolves when the client closes its side; bytes it sends meanwhile (a pipelined request)
/// stay in the socket for later, and this waits no more.
async fn client_left(io: &TcpStream, tls: bool) {
    // Under TLS too: the TCP socket's end is the client's leaving, and so is a TLS alert record
    // (its close_notify) ahead of it.
    const TLS_ALERT: u8 = 0x15;
    let mut byte = [0u8; 1];
    match io.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) if tls && byte[0] == TLS_ALERT => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Writes all of `bytes` (and flushes a TLS stream's records), waiting at most
/// [`SEND_TIMEOUT`] for the client to take more; no timer while the socket takes it at once.
async fn send<S: ClientIo>(io: &mut S, conn: &ConnState, bytes: &[u8]) -> Result<(), ()> {
    let mut sent = 0;
    let mut flushed = false;
    let mut io = std::pin::Pin::new(io);
    loop {
        let step = poll_fn(|cx| {
            while sent < bytes.len() {
                match io.as_mut().poll_write(cx, &bytes[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                    Poll::Ready(Ok(n)) => {
                        sent += n;
                        conn.on_write();
                    }
                    Poll::Pending => return Poll::Ready(Ok(false)),
                }
            }
            if !flushed {
                match io.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => flushed = true,
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                    Poll::Pending => return Poll::Ready(Ok(false)),
                }
            }
            Poll::Ready(Ok(true))
        })
        .await?;
        if step {
            return Ok(());
        }
        // The client's window is full: wait, with the one timer this send needs, until it
        // takes more.
        let progress = tokio::time::timeout(
            SEND_TIMEOUT,
            poll_fn(|cx| {
                if sent < bytes.len() {
                    let wrote = io.as_mut().poll_write(cx, &bytes[sent..]);
                    if let Poll::Ready(Ok(n)) = wrote {
                        sent += n;
                        conn.on_write();
                    }
                    wrote
                } else {
                    let done = io.as_mut().poll_flush(cx);
                    flushed = matches!(done, Poll::Ready(Ok(())));
                    done.map(|r| r.map(|()| 1))
                }
            }),
        )
        .await;
        match progress {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err(()),
        }
    }
}

/// The proxy's own answer for `cause` (its status and short text), written and recorded.
async fn own_answer<S: ClientIo>(
    io: &mut S,
    conn: &ConnState,
    cause: Cause,
    mut record: Box<RequestRecord>,
    client: ClientConn,
) -> Result<(), ()> {
    let status = StatusCode::from_u16(cause.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    record.status = status.as_u16();
    record.error = Some(cause);
    let mut out = spare::write_buf();
    answer::encode_own(status, cause.body(), client, unix_ms_of(record.ts) / 1000, &mut out);
    let written = send(io, conn, &out).await;
    record.bytes_out = cause.body().len() as u64;
    record.complete = written.is_ok();
    spare::give_write_buf(out);
    if client.close {
        return Err(());
    }
    written
}

fn hyper(buf: Option<BytesMut>) -> Served {
    Served::Hyper(buf.map(BytesMut::freeze).unwrap_or_default())
}

fn give_back(buf: Option<BytesMut>) {
    if let Some(b) = buf {
        spare::give_read_buf(b);
    }
}

//! The request's body on the own side. A `Content-Length` one of up to [`super::head::MAX_BODY`]
//! is read whole onto its head, so the exchange can be sent again on a fresh connection; a larger
//! or a chunked one ([`super::chunked`] re-frames it) goes to blue as it arrives ([`Upload`]),
//! one read at a time, so a connection holds one buffer whatever the client announced, and blue's
//! early answer is watched for meanwhile. Both are paced as hyper's side paces a body: fewer than
//! `--client-body-min-rate` bytes a second over a `--client-body-timeout` is the client's timeout
//! (408), never blue's.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::chunked::Rechunk;
use super::serve::Forward;
use crate::base::cause::Cause;
use crate::net::conn::ConnState;
use crate::net::io::{ClientIo, IoObserver};
use crate::net::spare;
use crate::proxy::{Proxy, ProxySettings};
use crate::upstream::lean::{LeanError, Meanwhile, Taken, Upload};

const READ_ROOM: usize = spare::READ_ROOM;
/// The most an upload reads from the client before writing it to blue.
const UPLOAD_ROOM: usize = 4 * READ_ROOM;

/// The client body's pace: each window must bring its minimum of bytes.
struct Pace {
    window: Duration,
    min_bytes: u64,
    deadline: Instant,
    got: u64,
}

impl Pace {
    fn of(settings: &ProxySettings) -> Self {
        let window = settings.client_body_timeout;
        let min_bytes = settings.client_body_min_rate.saturating_mul(window.as_secs()).max(1);
        Self { window, min_bytes, deadline: Instant::now() + window, got: 0 }
    }

    /// Reads more of the body onto `b`.
    async fn read<S: ClientIo>(&mut self, io: &mut S, conn: &ConnState, b: &mut BytesMut) -> Result<(), Cause> {
        let before = b.len();
        match tokio::time::timeout_at(self.deadline, io.read_buf(b)).await {
            Err(_) => Err(Cause::ClientBodyTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Cause::ClientAborted),
            Ok(Ok(n)) => {
                conn.on_read(&b[before..]);
                self.got += n as u64;
                if self.got >= self.min_bytes {
                    self.got = 0;
                    self.deadline = Instant::now() + self.window;
                }
                Ok(())
            }
        }
    }
}

impl Proxy {
    /// Reads the request's body whole (it is at most [`super::head::MAX_BODY`]) onto its head.
    pub(super) async fn read_body<S: ClientIo>(
        &self,
        io: &mut S,
        conn: &ConnState,
        buf: &mut Option<BytesMut>,
        f: &mut Forward,
    ) -> Result<(), Cause> {
        let body = f.body as usize;
        let mut pace = Pace::of(&self.settings);
        loop {
            let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
            if b.len() >= body {
                f.head.extend_from_slice(&b[..body]);
                b.advance(body);
                f.record.read_in = f.body;
                return Ok(());
            }
            // Grown as bytes come, not to the length the client announced.
            if b.capacity() - b.len() < READ_ROOM / 4 {
                b.reserve(READ_ROOM.min(body - b.len()));
            }
            pace.read(io, conn, b).await?;
            f.record.read_in = b.len().min(body) as u64;
        }
    }

    /// Sends the request with a body larger than [`super::head::MAX_BODY`], or a chunked one, to
    /// blue as the client sends it, until the body ends or blue answers first.
    pub(super) async fn upload<S: ClientIo>(
        &self,
        io: &mut S,
        conn: &ConnState,
        buf: &mut Option<BytesMut>,
        f: &mut Forward,
    ) -> Result<Uploaded, Cause> {
        let mut framing = if f.chunked { Framing::Chunked(Rechunk::new()) } else { Framing::Length(f.body) };
        // The head and what came with it go in one write; a chunked body's first piece is
        // re-framed onto the head before anything reaches blue. The head's buffer then holds
        // each re-framed piece.
        let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
        f.record.read_in = framing.take(b, &mut f.head)?;
        let mut upload = f.lean.upload(&f.method, &f.head).await?;
        f.head.clear();
        let mut pace = Pace::of(&self.settings);
        let whole = loop {
            if framing.done() {
                break true;
            }
            let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
            let room = framing.room();
            if b.capacity() - b.len() < room {
                b.reserve(room);
            }
            let started = Instant::now();
            // Blue may answer (a 413, a 401) while the client is still sending: the answer goes
            // out now, not after the whole body.
            tokio::select! {
                biased;
                read = pace.read(io, conn, b) => read?,
                blue = upload.meanwhile() => match blue {
                    Meanwhile::Answered | Meanwhile::Closed => break false,
                    Meanwhile::Silent => return Err(Cause::ClientBodyTimeout),
                },
            }
            let waited = started.elapsed();
            let (data, taken) = match &mut framing {
                // Written from the read buffer as it is.
                Framing::Length(left) => {
                    let n = (*left).min(b.len() as u64) as usize;
                    let taken = upload.write(&b[..n]).await;
                    b.advance(n);
                    *left -= n as u64;
                    (n as u64, taken)
                }
                Framing::Chunked(rechunk) => {
                    let data = rechunk.feed(b, &mut f.head)?;
                    let taken = if f.head.is_empty() { Ok(Taken::All) } else { upload.write(&f.head).await };
                    f.head.clear();
                    (data, taken)
                }
            };
            f.record.read_in += data;
            match taken {
                Ok(Taken::All) => {}
                Ok(Taken::Answered) => break false,
                // Blue's connection went quiet for `--upstream-timeout` while the client's
                // bytes were awaited: the client's slowness, not blue's.
                Err(LeanError::Timeout) if waited >= self.settings.upstream_timeout => {
                    return Err(Cause::ClientBodyTimeout)
                }
                Err(LeanError::Timeout) => return Err(Cause::Timeout),
                // Closed: blue may have answered before it did.
                Err(_) => break false,
            }
        };
        Ok(Uploaded { upload, whole, consumed: framing.done() })
    }
}

/// A body streamed to blue, its answer still to read.
pub(super) struct Uploaded {
    pub(super) upload: Upload,
    /// Blue took the whole body (else its connection is not reused).
    pub(super) whole: bool,
    /// The whole body was read from the client (else the client's connection ends with the
    /// answer, after a lingering close).
    pub(super) consumed: bool,
}

/// How the body streamed to blue ends.
enum Framing {
    /// Its bytes still to come.
    Length(u64),
    Chunked(Rechunk),
}

impl Framing {
    fn done(&self) -> bool {
        match self {
            Framing::Length(left) => *left == 0,
            Framing::Chunked(rechunk) => rechunk.done(),
        }
    }

    /// How much room the next read wants.
    fn room(&self) -> usize {
        match self {
            Framing::Length(left) => UPLOAD_ROOM.min(usize::try_from(*left).unwrap_or(usize::MAX)),
            Framing::Chunked(_) => UPLOAD_ROOM,
        }
    }

    /// Moves what `b` holds of the body onto `out`: the data bytes moved.
    fn take(&mut self, b: &mut BytesMut, out: &mut Vec<u8>) -> Result<u64, Cause> {
        match self {
            Framing::Length(left) => {
                let n = (*left).min(b.len() as u64) as usize;
                out.extend_from_slice(&b[..n]);
                b.advance(n);
                *left -= n as u64;
                Ok(n as u64)
            }
            Framing::Chunked(rechunk) => rechunk.feed(b, out),
        }
    }
}

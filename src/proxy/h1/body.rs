//! The request's body on the own side. One of up to [`super::head::MAX_BODY`] is read whole onto its
//! head, so the exchange can be sent again on a fresh connection; a larger one goes to blue as it
//! arrives ([`Upload`]), one read at a time, so a connection holds one buffer whatever the
//! client announced. Both are paced as hyper's side paces a body: fewer than
//! `--client-body-min-rate` bytes a second over a `--client-body-timeout` is the client's timeout
//! (408), never blue's.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::serve::Forward;
use crate::base::cause::Cause;
use crate::net::conn::ConnState;
use crate::net::io::{ClientIo, IoObserver};
use crate::net::spare;
use crate::proxy::{Proxy, ProxySettings};
use crate::upstream::lean::{LeanError, Taken, Upload};

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

    /// Sends the request with a body larger than [`super::head::MAX_BODY`] to blue as the client sends
    /// it. `Ok` carries the upload, whose answer is still to read, and whether the whole body went
    /// out (blue may answer before taking it all, or close after answering).
    pub(super) async fn upload<S: ClientIo>(
        &self,
        io: &mut S,
        conn: &ConnState,
        buf: &mut Option<BytesMut>,
        f: &mut Forward,
    ) -> Result<(Upload, bool), Cause> {
        let mut left = f.body;
        let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
        let first = left.min(b.len() as u64) as usize;
        f.head.extend_from_slice(&b[..first]);
        b.advance(first);
        left -= first as u64;
        f.record.read_in = first as u64;
        let mut upload = f.lean.upload(&f.method, &f.head).await?;
        let mut pace = Pace::of(&self.settings);
        let mut waited = Duration::ZERO;
        while left > 0 {
            let b = buf.get_or_insert_with(|| spare::read_buf(READ_ROOM));
            if b.is_empty() {
                if b.capacity() < UPLOAD_ROOM {
                    b.reserve(UPLOAD_ROOM.min(left as usize));
                }
                let started = Instant::now();
                pace.read(io, conn, b).await?;
                waited = started.elapsed();
            }
            let n = left.min(b.len() as u64) as usize;
            match upload.write(&b[..n]).await {
                Ok(Taken::All) => {}
                Ok(Taken::Answered) => return Ok((upload, false)),
                // Blue's connection went quiet for `--upstream-timeout` while the client's
                // bytes were awaited: the client's slowness, not blue's.
                Err(LeanError::Timeout) if waited >= self.settings.upstream_timeout => {
                    return Err(Cause::ClientBodyTimeout)
                }
                Err(LeanError::Timeout) => return Err(Cause::Timeout),
                // Closed: blue may have answered before it did.
                Err(_) => return Ok((upload, false)),
            }
            b.advance(n);
            left -= n as u64;
            f.record.read_in += n as u64;
        }
        Ok((upload, true))
    }
}

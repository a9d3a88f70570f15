//! A response body written by a blocking producer (a report streamed as the ledger is read):
//! chunks of [`CHUNK`] bytes through a channel of a few slots, so a slow reader slows the
//! producer instead of letting the report pile up in memory, and a reader that leaves stops it.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// Bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Chunks in flight at most.
const SLOTS: usize = 4;

/// The receiving end, the response's body.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

/// The producing end: an `io::Write` that sends full chunks (and the rest when dropped).
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

/// A connected pair.
pub fn channel() -> (ChannelWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(SLOTS);
    (ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) }, ChannelBody(rx))
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // Blocking: the producer runs on a blocking thread, and waits for the reader.
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

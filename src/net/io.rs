//! A transparent I/O wrapper that tells an observer about reads and writes, so one timer per
//! connection can enforce header, idle and upstream-silence timeouts instead of one per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Told about traffic on a connection.
pub trait IoObserver: Send + Sync + 'static {
    /// `bytes` were just read.
    fn on_read(&self, bytes: &[u8]);
    /// Some bytes were just written.
    fn on_write(&self);
}

pin_project_lite::pin_project! {
    /// `io`, with every successful read and write reported to `observer`.
    #[derive(Debug)]
    pub struct ObservedIo<T, O> {
        #[pin]
        io: T,
        observer: Arc<O>,
    }
}

impl<T, O> ObservedIo<T, O> {
    /// Wraps `io`.
    pub fn new(io: T, observer: Arc<O>) -> Self {
        Self { io, observer }
    }
}

impl<T: AsyncRead, O: IoObserver> AsyncRead for ObservedIo<T, O> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.observer.on_read(new);
            }
        }
        res
    }
}

impl<T: AsyncWrite, O: IoObserver> AsyncWrite for ObservedIo<T, O> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                this.observer.on_write();
            }
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                this.observer.on_write();
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// A client connection the proxy's own HTTP/1.1 side serves: plain TCP, or TLS over it.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin {
    /// Whether readiness can be awaited without a buffer (plain TCP); a TLS stream must be read
    /// into one to learn whether it holds plaintext.
    const WAITS_UNBUFFERED: bool;
    /// The TCP socket below (watched for the client's leaving).
    fn tcp(&self) -> &tokio::net::TcpStream;
}

impl ClientIo for tokio::net::TcpStream {
    const WAITS_UNBUFFERED: bool = true;
    fn tcp(&self) -> &tokio::net::TcpStream {
        self
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    const WAITS_UNBUFFERED: bool = false;
    fn tcp(&self) -> &tokio::net::TcpStream {
        self.get_ref().0
    }
}

pin_project_lite::pin_project! {
    /// `io` with `prefix` read before it: bytes one reader took off a connection, given back to
    /// the next (the proxy's own HTTP/1.1 side handing a connection to hyper's).
    #[derive(Debug)]
    pub struct Rewind<T> {
        prefix: bytes::Bytes,
        #[pin]
        io: T,
    }
}

impl<T> Rewind<T> {
    /// Wraps `io`.
    pub fn new(prefix: bytes::Bytes, io: T) -> Self {
        Self { prefix, io }
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Rewind<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn rewind_gives_the_prefix_back_first() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut io = Rewind::new(bytes::Bytes::from_static(b"hello"), a);
        let mut got = String::new();
        io.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello world");
    }
}

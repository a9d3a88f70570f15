//! `--passthrough-listen`: TLS that is not terminated (no keys — e.g. ACM certificates). Reads the
//! ClientHello without answering it, takes the SNI, then splices the raw bytes to
//! `--passthrough-upstream` both ways. Each connection is recorded under its SNI host
//! (connections, bytes, duration; no paths: they are encrypted). Input that is not TLS, or has no
//! SNI, is recorded under `(not-tls)` / `(no-sni)` and still forwarded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::base::cause::Cause;
use crate::base::time::coarse_ms;
use crate::proxy::Proxy;
use crate::record::PassthroughObservation;
use crate::tls::clienthello::{self, Hello, MAX_HELLO_BYTES};
use crate::upstream::Upstream;

/// Host key of passthrough connections whose first bytes are not a TLS ClientHello.
pub const NOT_TLS: &str = "(not-tls)";
/// Host key of passthrough TLS connections without a usable SNI.
pub const NO_SNI: &str = "(no-sni)";

/// Where passthrough connections go and how long they may wait.
#[derive(Debug)]
pub struct PassthroughSettings {
    /// `--passthrough-upstream`.
    pub upstream: Arc<Upstream>,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// Longest wait for a complete ClientHello (`--tls-handshake-timeout`).
    pub hello_timeout: Duration,
    /// A spliced connection silent both ways this long is closed (`--passthrough-idle-timeout`).
    pub idle_timeout: Duration,
}

/// Serves one passthrough connection to its end and records it.
pub async fn serve(proxy: Arc<Proxy>, settings: Arc<PassthroughSettings>, mut client: TcpStream, peer: SocketAddr) {
    let start = Instant::now();
    let ts = SystemTime::now();
    let (first, verdict) = read_hello(&mut client, settings.hello_timeout).await;
    if first.is_empty() {
        // Connected and left (or said nothing): a TCP health check, not traffic.
        tracing::debug!(peer = %peer, "passthrough connection closed before sending anything");
        return;
    }
    // Recorded when it ends, however it ends: also when the worker stops at the end of
    // --shutdown-timeout with the connection still open (its task is then dropped).
    let mut record = Record {
        proxy,
        peer,
        verdict,
        upstream: settings.upstream.name,
        start,
        ts,
        up: AtomicU64::new(first.len() as u64),
        down: AtomicU64::new(0),
        error: Some(Cause::Shutdown),
    };
    record.error = match connect(&settings.upstream, settings.connect_timeout).await {
        Err(e) => {
            record.up.store(0, Ordering::Relaxed);
            Some(e)
        }
        Ok(mut upstream) => match upstream.write_all(&first).await {
            Err(_) => {
                record.up.store(0, Ordering::Relaxed);
                Some(Cause::Reset)
            }
            Ok(()) => splice(client, upstream, settings.idle_timeout, &record.up, &record.down).await,
        },
    };
}

/// One passthrough connection's record, written to the ledger and the log when dropped.
struct Record {
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    verdict: Hello,
    upstream: &'static str,
    start: Instant,
    ts: SystemTime,
    up: AtomicU64,
    down: AtomicU64,
    error: Option<Cause>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let (host, kind) = match &self.verdict {
            Hello::Sni(name) => (name.as_str(), "sni"),
            Hello::NoSni => (NO_SNI, "no-sni"),
            Hello::NotTls | Hello::NeedMore => (NOT_TLS, "not-tls"),
        };
        let (bytes_in, bytes_out) = (self.up.load(Ordering::Relaxed), self.down.load(Ordering::Relaxed));
        let duration = self.start.elapsed();
        let at_ms = (self.ts + duration).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let proxy = &self.proxy;
        if let Some(cause) = self.error {
            proxy.stats.count(cause);
        }
        if let Some((ledger, lane)) = proxy.ledger() {
            ledger.record_passthrough(
                lane,
                &PassthroughObservation {
                    host,
                    sni: matches!(self.verdict, Hello::Sni(_)),
                    client_ip: self.peer.ip(),
                    bytes_in,
                    bytes_out,
                    duration_ms: duration.as_millis() as u64,
                    at_ms,
                },
                |s| proxy.log().sighting(&s),
            );
        }
        if proxy.settings().log_requests != crate::proxy::LogRequests::None {
            let sni = match &self.verdict {
                Hello::Sni(name) => Some(name.as_str()),
                _ => None,
            };
            let mut fields = json!({
                "client_ip": self.peer.ip().to_string(), "host": host, "sni": sni, "tls": kind,
                "bytes_in": bytes_in, "bytes_out": bytes_out,
                "duration_ms": (duration.as_micros() as f64 / 1000.0), "upstream": self.upstream,
            });
            if let (Some(e), Some(obj)) = (self.error, fields.as_object_mut()) {
                obj.insert("error".into(), e.as_str().into());
            }
            proxy.log().event("passthrough", fields);
        }
    }
}

/// Reads until the first bytes are a complete ClientHello, clearly not one, the client stops
/// sending (end of stream), or `timeout` passes. Returns everything read, to be forwarded as is.
async fn read_hello<S: AsyncRead + Unpin>(client: &mut S, timeout: Duration) -> (Vec<u8>, Hello) {
    let mut buf = Vec::with_capacity(2048);
    let deadline = tokio::time::Instant::now() + timeout;
    // End of the TLS records received whole so far: the ClientHello is parsed again only when a
    // record completes, not on every read (a client sending one byte at a time would otherwise
    // make every read re-parse everything before it).
    let mut whole = 0usize;
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                let verdict = clienthello::parse(&buf);
                return (buf, if verdict == Hello::NeedMore { Hello::NotTls } else { verdict });
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut completed = false;
        while let Some(header) = buf.get(whole..whole + 5) {
            let end = whole + 5 + u16::from_be_bytes([header[3], header[4]]) as usize;
            if header[0] != 0x16 || end > buf.len() {
                // Not a handshake record (the parser says what it is), or one still arriving.
                completed |= header[0] != 0x16;
                break;
            }
            whole = end;
            completed = true;
        }
        if !completed && buf.len() >= 5 && buf.len() < MAX_HELLO_BYTES {
            continue;
        }
        match clienthello::parse(&buf) {
            Hello::NeedMore if buf.len() < MAX_HELLO_BYTES => {}
            Hello::NeedMore => return (buf, Hello::NotTls),
            verdict => return (buf, verdict),
        }
    }
}

async fn connect(up: &Upstream, timeout: Duration) -> Result<TcpStream, Cause> {
    tokio::time::timeout(timeout, crate::upstream::pool::connect_any(up, timeout))
        .await
        .map_err(|_| Cause::ConnectTimeout)?
}

/// Copies both ways, each direction half-closing the other side at its end of stream, until both
/// ended, one failed, or nothing moved either way for `idle`, adding the bytes moved to `up` and
/// `down` as they go (read by the connection's record, even if this is dropped). Returns the cause.
pub async fn splice<A, B>(a: A, b: B, idle: Duration, up: &AtomicU64, down: &AtomicU64) -> Option<Cause>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last_io = AtomicU64::new(coarse_ms());
    let (mut a_rd, mut a_wr) = tokio::io::split(a);
    let (mut b_rd, mut b_wr) = tokio::io::split(b);
    let outcome = {
        let both = async {
            tokio::try_join!(pump(&mut a_rd, &mut b_wr, up, &last_io), pump(&mut b_rd, &mut a_wr, down, &last_io))
        };
        tokio::pin!(both);
        let idle_ms = idle.as_millis() as u64;
        let sleep = tokio::time::sleep(idle);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                res = &mut both => break res.err().map(|_| Cause::TunnelReset),
                _ = &mut sleep => {
                    let quiet = coarse_ms().saturating_sub(last_io.load(Ordering::Relaxed));
                    if quiet >= idle_ms {
                        break Some(Cause::TunnelIdleTimeout);
                    }
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(idle_ms - quiet));
                }
            }
        }
    };
    outcome
}

async fn pump<R, W>(rd: &mut R, wr: &mut W, count: &AtomicU64, last_io: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            // A peer that already closed both ways cannot take the FIN: that is no failure.
            let _ = wr.shutdown().await;
            return Ok(());
        }
        wr.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last_io.store(coarse_ms(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_split_over_reads_is_found() {
        let hello = {
            // The same bytes as the parser tests use: a hand-made minimal ClientHello with SNI.
            let name = b"split.example.com";
            let mut sni = vec![0u8, 0, 0, 0, 0, name.len() as u8 + 3, 0, 0, name.len() as u8];
            sni[3] = (name.len() + 5) as u8;
            sni.extend_from_slice(name);
            let mut body = vec![3, 3];
            body.extend_from_slice(&[1u8; 32]);
            body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
            body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
            body.extend_from_slice(&sni);
            let mut hs = vec![1, 0, 0, body.len() as u8];
            hs.extend_from_slice(&body);
            let mut rec = vec![22, 3, 1, 0, hs.len() as u8];
            rec.extend_from_slice(&hs);
            rec
        };
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let sender = tokio::spawn(async move {
            for b in hello.chunks(1) {
                tx.write_all(b).await.unwrap();
                tokio::task::yield_now().await;
            }
            tx
        });
        let (read, verdict) = read_hello(&mut rx, Duration::from_secs(5)).await;
        assert_eq!(verdict, Hello::Sni("split.example.com".into()));
        assert_eq!(read.len(), 5 + read[4] as usize, "stops at the end of the hello");
        drop(sender.await.unwrap());
        let (_, verdict) = read_hello(&mut &b"GET / HTTP/1.1\r\n\r\n"[..], Duration::from_secs(1)).await;
        assert_eq!(verdict, Hello::NotTls);
    }
}

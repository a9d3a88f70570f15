//! WebSocket and any other HTTP/1.1 Upgrade: after the 101, bytes are copied both ways until either
//! side closes (the other direction gets a short linger) or both stay silent for the tunnel idle timeout. The request's log line is written
//! when the tunnel closes, with the bytes tunnelled each way.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::record::RequestRecord;
use crate::base::cause::Cause;
use crate::base::time::coarse_ms;
use crate::net::shutdown::TrackGuard;
use crate::upstream::pool::UpConn;

/// How long both sides get to hand over their upgraded connections.
const UPGRADE_HANDOVER: Duration = Duration::from_secs(10);
/// How long the other direction may still deliver after one side closed.
const LINGER: Duration = Duration::from_secs(2);

/// Runs one tunnel to its end.
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    mut record: Box<RequestRecord>,
    up: Arc<UpConn>,
    idle: Duration,
    _guard: TrackGuard,
) {
    let both = tokio::time::timeout(UPGRADE_HANDOVER, async { tokio::try_join!(client, upstream) }).await;
    let (client, upstream) = match both {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upgrade handover failed");
            record.error = Some(Cause::UpgradeFailed);
            return;
        }
        Err(_) => {
            record.error = Some(Cause::UpgradeFailed);
            return;
        }
    };
    let (mut client_rd, mut client_wr) = tokio::io::split(TokioIo::new(client));
    let (mut up_rd, mut up_wr) = tokio::io::split(TokioIo::new(upstream));
    let (mut sent_up, mut sent_down) = (0u64, 0u64);
    let outcome = {
        let upward = pump(&mut client_rd, &mut up_wr, &mut sent_up);
        let downward = pump(&mut up_rd, &mut client_wr, &mut sent_down);
        tokio::pin!(upward, downward);
        let idle_ms = idle.as_millis() as u64;
        let sleep = tokio::time::sleep(idle);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                res = &mut upward => break linger(res, downward).await,
                res = &mut downward => break linger(res, upward).await,
                _ = &mut sleep => {
                    let quiet = coarse_ms().saturating_sub(record.conn.last_io().max(up.last_io()));
                    if quiet >= idle_ms {
                        break Some(Cause::TunnelIdleTimeout);
                    }
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(idle_ms - quiet));
                }
            }
        }
    };
    record.read_in = sent_up;
    record.bytes_out = sent_down;
    record.error = outcome;
    record.complete = true;
}

/// When one side has closed, the other direction gets a moment to deliver what is in flight (a
/// WebSocket close frame), then the tunnel ends: either side closing ends it.
async fn linger<F: std::future::Future<Output = std::io::Result<()>>>(
    first: std::io::Result<()>,
    other: std::pin::Pin<&mut F>,
) -> Option<Cause> {
    let second = tokio::time::timeout(LINGER, other).await;
    match (first, second) {
        (Err(_), _) | (_, Ok(Err(_))) => Some(Cause::TunnelReset),
        _ => None,
    }
}

/// Copies until end of stream, then half-closes the writer; counts the bytes.
async fn pump<R, W>(rd: &mut R, wr: &mut W, count: &mut u64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            return wr.shutdown().await;
        }
        wr.write_all(&buf[..n]).await?;
        wr.flush().await?;
        *count += n as u64;
    }
}

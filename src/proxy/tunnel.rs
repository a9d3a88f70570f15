//! WebSocket and any other HTTP/1.1 Upgrade: after the 101, bytes are copied both ways until either
//! side closes or both stay silent for the tunnel idle timeout. The request's log line is written
//! when the tunnel closes, with the bytes tunnelled each way.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::Finish;
use crate::shutdown::{now_ms, TrackGuard};
use crate::upstream::pool::UpConn;

/// How long both sides get to hand over their upgraded connections.
const UPGRADE_HANDOVER: Duration = Duration::from_secs(10);

/// Runs one tunnel to its end.
pub async fn run(client: OnUpgrade, upstream: OnUpgrade, mut finish: Finish, up: Arc<UpConn>, idle: Duration, _guard: TrackGuard) {
    let both = tokio::time::timeout(UPGRADE_HANDOVER, async { tokio::try_join!(client, upstream) }).await;
    let (client, upstream) = match both {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upgrade handover failed");
            finish.error = Some("upgrade_failed");
            return;
        }
        Err(_) => {
            finish.error = Some("upgrade_failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    let idle_ms = idle.as_millis() as u64;
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            res = &mut copy => {
                match res {
                    Ok((from_client, from_upstream)) => {
                        finish.tunnel_in = from_client;
                        finish.bytes_out = from_upstream;
                        finish.complete = true;
                    }
                    Err(_) => finish.error = Some("tunnel_reset"),
                }
                return;
            }
            _ = &mut sleep => {
                let last = finish.conn.last_io().max(up.last_io());
                let quiet = now_ms().saturating_sub(last);
                if quiet >= idle_ms {
                    finish.error = Some("tunnel_idle_timeout");
                    return;
                }
                sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(idle_ms - quiet));
            }
        }
    }
}

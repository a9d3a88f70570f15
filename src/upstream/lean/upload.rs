//! A request whose body is too large to read whole: its head and first bytes go out on a pooled
//! connection, the rest as the client sends it, and the response is read as for any lean
//! exchange. Nothing of the body is held beyond the piece in flight, and nothing is replayed:
//! once body bytes went out, a failure is the request's.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Method;
use tokio::io::AsyncWrite;

use super::codec::{Head, LeanError};
use super::conn::{LeanBody, LeanConn, LeanPool};
use crate::base::cause::Cause;

/// What blue did while the client's next bytes were awaited.
#[derive(Debug, PartialEq, Eq)]
pub enum Meanwhile {
    /// It answered: read the answer, send nothing more.
    Answered,
    /// It closed or broke the connection (its answer, if any, is read next).
    Closed,
    /// Nothing for `--upstream-timeout`.
    Silent,
}

/// An upload under way to blue.
pub struct Upload {
    pool: Arc<LeanPool>,
    conn: LeanConn,
    is_head: bool,
}

/// What writing a piece of the body ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Blue took it.
    All,
    /// Blue answered before taking the whole body: read its answer, send nothing more.
    Answered,
}

impl LeanPool {
    /// Writes the request's head and the body's first bytes; a reused connection that turns out
    /// closed is swapped for a fresh one (nothing reached blue through it).
    pub async fn upload(self: &Arc<Self>, method: &Method, first: &[u8]) -> Result<Upload, Cause> {
        let (mut conn, reused) = self.checkout_or_connect().await?;
        conn.state.set_busy(true);
        match conn.write_request(first).await {
            Ok(()) => {}
            Err(LeanError::Reset) if reused => {
                drop(conn);
                conn = Box::pin(self.connect()).await?;
                conn.write_request(first).await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Upload { pool: self.clone(), conn, is_head: *method == Method::HEAD })
    }
}

impl Upload {
    /// Writes the next piece of the body. While blue does not take it, whether blue answered is
    /// watched, so an early answer (a 413, a 401) is not stuck behind a full socket.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<Taken, LeanError> {
        let (conn, is_head) = (&mut self.conn, self.is_head);
        let mut sent = 0;
        let taken = poll_fn(|cx| {
            while sent < bytes.len() {
                if conn.poll_rung(cx) {
                    return Poll::Ready(Err(LeanError::Timeout));
                }
                match Pin::new(&mut conn.io).poll_write(cx, &bytes[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(LeanError::Reset)),
                    Poll::Ready(Ok(n)) => {
                        sent += n;
                        // Blue is taking the body, however slowly: not silent.
                        conn.state.touch();
                    }
                    Poll::Pending => {
                        return poll_meanwhile(conn, is_head, cx).map(|blue| match blue {
                            Meanwhile::Answered => Ok(Taken::Answered),
                            Meanwhile::Closed => Err(LeanError::Reset),
                            Meanwhile::Silent => Err(LeanError::Timeout),
                        })
                    }
                }
            }
            Poll::Ready(Ok(Taken::All))
        })
        .await?;
        conn.state.touch();
        Ok(taken)
    }

    /// Resolves when blue does something while the body waits on the client: answers (more
    /// than interim heads), closes, or stays silent for `--upstream-timeout` — which, with
    /// nothing to send it all that time, is the client's slowness.
    pub async fn meanwhile(&mut self) -> Meanwhile {
        let (conn, is_head) = (&mut self.conn, self.is_head);
        poll_fn(|cx| poll_meanwhile(conn, is_head, cx)).await
    }

    /// Reads blue's answer. `whole` says whether the whole body went out: a connection that
    /// answered part of one is not reused.
    pub async fn finish(mut self, whole: bool) -> Result<(Head, LeanBody), Cause> {
        let head = self.conn.read_head(self.is_head).await.map_err(|(e, _)| Cause::from(e))?;
        let body = self.pool.body(self.conn, &head, whole);
        Ok((head, body))
    }
}

/// Reads what blue sends while the body is not going out (the client is awaited, or blue's
/// socket is full); an unasked-for `100 Continue` is no answer: blue still waits for the body.
fn poll_meanwhile(conn: &mut LeanConn, is_head: bool, cx: &mut Context<'_>) -> Poll<Meanwhile> {
    loop {
        match conn.poll_fill(cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Meanwhile::Closed),
            Poll::Ready(Ok(_)) if conn.answered(is_head) => return Poll::Ready(Meanwhile::Answered),
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(LeanError::Timeout)) => return Poll::Ready(Meanwhile::Silent),
            Poll::Ready(Err(_)) => return Poll::Ready(Meanwhile::Closed),
            Poll::Pending => return Poll::Pending,
        }
    }
}

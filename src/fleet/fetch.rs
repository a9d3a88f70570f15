//! One GET to a replica's admin listener: plain HTTP/1.1, a deadline for the whole answer and a
//! cap on its size, the body written out as it arrives.

use std::io::Write;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::ToSocketAddrs;

/// Why an admin address gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No TCP connection.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// It answered, but not 200.
    #[error("GET {path} answered {status}: {body}")]
    Status { path: String, status: u16, body: String },
    /// The whole answer did not arrive in time.
    #[error("no whole answer within {0:?}")]
    Timeout(Duration),
    /// The answer is larger than the cap.
    #[error("the answer is larger than {0} MiB")]
    TooLarge(usize),
    /// The path does not make a request.
    #[error("`{0}` is not a request path")]
    Path(String),
    /// Writing the answer out failed.
    #[error("{0}")]
    Write(std::io::Error),
}

/// `GET path` at `addr` (`authority` its Host header), the body into `out`: at most `max_bytes`,
/// all of it within `within`.
pub async fn get(
    addr: impl ToSocketAddrs,
    authority: &str,
    path: &str,
    within: Duration,
    max_bytes: usize,
    out: &mut (dyn Write + Send),
) -> Result<(), FetchError> {
    tokio::time::timeout(within, exchange(addr, authority, path, max_bytes, out))
        .await
        .map_err(|_| FetchError::Timeout(within))?
}

async fn exchange(
    addr: impl ToSocketAddrs,
    authority: &str,
    path: &str,
    max_bytes: usize,
    out: &mut (dyn Write + Send),
) -> Result<(), FetchError> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(FetchError::Connect)?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, concat!("cutover-proxy/", env!("CARGO_PKG_VERSION")))
        .body(http_body_util::Empty::<bytes::Bytes>::new());
    let Ok(req) = req else {
        conn.abort();
        return Err(FetchError::Path(path.to_owned()));
    };
    let res = tx.send_request(req).await;
    let result = async {
        let res = res?;
        let status = res.status();
        let mut body = res.into_body();
        let mut seen = 0usize;
        let mut refused = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Some(data) = frame.data_ref() else { continue };
            seen += data.len();
            if status != http::StatusCode::OK {
                refused.extend_from_slice(&data[..data.len().min(512usize.saturating_sub(refused.len()))]);
                if refused.len() >= 512 {
                    break;
                }
                continue;
            }
            if seen > max_bytes {
                return Err(FetchError::TooLarge(max_bytes >> 20));
            }
            out.write_all(data).map_err(FetchError::Write)?;
        }
        if status != http::StatusCode::OK {
            let body = String::from_utf8_lossy(&refused).lines().next().unwrap_or("").to_owned();
            return Err(FetchError::Status { path: path.to_owned(), status: status.as_u16(), body });
        }
        Ok(())
    }
    .await;
    conn.abort();
    result
}

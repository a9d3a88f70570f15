//! The admin listener: `/healthz` (the process is up), `/readyz` (it takes traffic; 503 once a
//! shutdown has begun, so Kubernetes takes the pod out of its endpoints), and the report as
//! `/report` (JSON), `/report.csv` and `/report.md`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::dns::book::DnsBook;
use crate::record::ledger::Ledger;
use crate::report::build::{build, ReportSettings};
use crate::report::render::{render, Format};
use crate::report::route53::{export, ExportSettings};
use crate::shutdown::Shutdown;

/// What the admin endpoints read.
pub struct AdminState {
    /// Readiness.
    pub shutdown: Arc<Shutdown>,
    /// The ledger (`None` with `--no-record`).
    pub ledger: Option<Arc<Ledger>>,
    /// When recording started, unix ms.
    pub started_at_ms: u64,
    /// How reports judge hosts.
    pub report: ReportSettings,
    /// DNS evidence, when configured.
    pub dns: Option<Arc<DnsBook>>,
    /// How `/report/route53` writes changes.
    pub export: ExportSettings,
}

/// Serves the admin endpoints until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&req, state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn route(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let format = match req.uri().path() {
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" if state.shutdown.is_ready() => return text(StatusCode::OK, "ready\n"),
        "/readyz" => return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/report" | "/report.json" => Format::Json,
        "/report.csv" => Format::Csv,
        "/report.md" => Format::Markdown,
        "/report/route53" => return route53(req, state).await,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found; try /healthz, /readyz, /report, /report.csv, /report.md, /report/route53\n",
            )
        }
    };
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record)\n");
    };
    // Building a report of many hosts takes a while: off the admin runtime's thread.
    let (started, settings, dns) = (state.started_at_ms, state.report, state.dns.clone());
    let body =
        tokio::task::spawn_blocking(move || render(&build(&ledger, started, &settings, dns.as_deref()), format)).await;
    let Ok(body) = body else { return text(StatusCode::INTERNAL_SERVER_ERROR, "report failed\n") };
    let content_type = match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Markdown => "text/markdown; charset=utf-8",
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `/report/route53`: every zone's change batch with the skipped hosts and the ExternalDNS script;
/// `?zone=Z…` gives that zone's batch alone, ready for `--change-batch file://`.
async fn route53(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Full<Bytes>> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record)\n");
    };
    let zone = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("zone="))).map(str::to_owned);
    let (started, settings, dns, s) = (state.started_at_ms, state.report, state.dns.clone(), state.export);
    let built =
        tokio::task::spawn_blocking(move || export(&build(&ledger, started, &settings, dns.as_deref()), &s)).await;
    let Ok(out) = built else { return text(StatusCode::INTERNAL_SERVER_ERROR, "export failed\n") };
    let body = match zone {
        Some(z) => match out.batches.get(&z) {
            Some(batch) => batch.clone(),
            None => return text(StatusCode::NOT_FOUND, "no change for that hosted zone\n"),
        },
        None => serde_json::to_value(&out).unwrap_or_default(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default())));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

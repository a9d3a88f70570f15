//! The admin listener: `/healthz` (the process is up), `/readyz` (it takes traffic; 503 once a
//! shutdown has begun, so Kubernetes takes the pod out of its endpoints), the report as
//! `/report` (JSON), `/report.csv` and `/report.md`, the dashboard at `/` and Prometheus metrics at
//! `/metrics` (both from a report at most [`CACHE_FOR`] old, so frequent scrapes and page reloads
//! do not rebuild it each time).

pub mod dashboard;
pub mod metrics;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::admin::metrics::MetricsSources;
use crate::dns::book::DnsBook;
use crate::net::shutdown::Shutdown;
use crate::record::Ledger;
use crate::report::build::build;
use crate::report::changes::{export, ExportSettings};
use crate::report::judge::ReportSettings;
use crate::report::model::Report;
use crate::report::render::{render, Format};

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
    /// What `/metrics` reads besides the report.
    pub metrics: MetricsSources,
    /// The last report made for `/` and `/metrics`.
    pub cache: ReportCache,
}

/// How long the dashboard and `/metrics` reuse a report.
pub const CACHE_FOR: Duration = Duration::from_secs(2);

/// The last report built for the dashboard and `/metrics`, with when it was built.
#[derive(Default)]
pub struct ReportCache(Mutex<Option<(Instant, Arc<Report>)>>, tokio::sync::Mutex<()>);

impl ReportCache {
    fn fresh(&self) -> Option<Arc<Report>> {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cached.as_ref().filter(|(at, _)| at.elapsed() < CACHE_FOR).map(|(_, r)| r.clone())
    }
}

impl AdminState {
    /// A report at most [`CACHE_FOR`] old (built off the admin runtime's thread when needed). One
    /// build at a time: a dashboard refresh and a scrape arriving together share it.
    async fn cached_report(&self, ledger: Arc<Ledger>) -> Option<Arc<Report>> {
        if let Some(report) = self.cache.fresh() {
            return Some(report);
        }
        let _building = self.cache.1.lock().await;
        if let Some(report) = self.cache.fresh() {
            return Some(report);
        }
        let (started, settings) = (self.started_at_ms, self.report);
        let dns = self.dns.clone();
        let report = Arc::new(
            tokio::task::spawn_blocking(move || build(&ledger, started, &settings, dns.as_deref())).await.ok()?,
        );
        *self.cache.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), report.clone()));
        Some(report)
    }
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
    let format =
        match req.uri().path() {
            "/" => return dashboard(&state).await,
            "/metrics" => return metrics(&state).await,
            "/healthz" => return text(StatusCode::OK, "ok\n"),
            "/readyz" if state.shutdown.is_ready() => return text(StatusCode::OK, "ready\n"),
            "/readyz" => return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            "/report" | "/report.json" => Format::Json,
            "/report.csv" => Format::Csv,
            "/report.md" => Format::Markdown,
            "/report/route53" => return route53(req, state).await,
            _ => return text(
                StatusCode::NOT_FOUND,
                "not found; try /, /metrics, /healthz, /readyz, /report, /report.csv, /report.md, /report/route53\n",
            ),
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

/// `/report/route53`: every zone's change batches with the skipped hosts and the ExternalDNS
/// script; `?zone=Z…` gives that zone's batch alone (`&part=N` for the Nth when a zone has more
/// than 1 000 changes), ready for `--change-batch file://`.
async fn route53(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Full<Bytes>> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record)\n");
    };
    let param = |name: &str| {
        req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(name))).map(str::to_owned)
    };
    let zone = param("zone=");
    // A zone with more than 1 000 changes has several batches: `&part=2`…
    let part: usize = param("part=").and_then(|p| p.parse().ok()).unwrap_or(1);
    let (started, settings, dns, s) = (state.started_at_ms, state.report, state.dns.clone(), state.export);
    let built =
        tokio::task::spawn_blocking(move || export(&build(&ledger, started, &settings, dns.as_deref()), &s)).await;
    let Ok(out) = built else { return text(StatusCode::INTERNAL_SERVER_ERROR, "export failed\n") };
    let body = match zone {
        Some(z) => match out.batches.get(&z).and_then(|parts| parts.get(part.saturating_sub(1))) {
            Some(batch) => batch.clone(),
            None => return text(StatusCode::NOT_FOUND, "no change for that hosted zone\n"),
        },
        None => serde_json::to_value(&out).unwrap_or_default(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default())));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn dashboard(state: &AdminState) -> Response<Full<Bytes>> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record): no dashboard\n");
    };
    let Some(report) = state.cached_report(ledger).await else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "report failed\n");
    };
    let page = crate::admin::dashboard::render(&report, state.report.quiet_period);
    with_type(page, "text/html; charset=utf-8")
}

async fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    let report = match state.ledger.clone() {
        Some(ledger) => state.cached_report(ledger).await,
        None => None,
    };
    let body = crate::admin::metrics::render(
        &state.metrics,
        state.ledger.as_deref(),
        report.as_deref(),
        state.shutdown.is_ready(),
    );
    with_type(body, crate::admin::metrics::CONTENT_TYPE)
}

fn with_type(body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

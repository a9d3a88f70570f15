//! The admin listener: `/healthz` (the process is up), `/readyz` (it takes traffic; 503 once a
//! shutdown has begun, so Kubernetes takes the pod out of its endpoints), the report as `/report`
//! (JSON), `/report.csv` and `/report.md` — bounded by default, streamed as the ledger is read —,
//! `/report/route53`, and the dashboard at `/` and Prometheus metrics at `/metrics`, both from the
//! [`Summary`] a background task keeps fresh: a scrape or a page view builds nothing. With
//! `--peers`, `?scope=fleet` on the report, `/report/route53` and the dashboard merges every
//! replica's live report (`crate::fleet`).

mod body;
pub mod dashboard;
mod histogram;
pub mod metrics;
mod process;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::admin::metrics::MetricsSources;
use crate::base::time::unix_ms;
use crate::dns::book::DnsBook;
use crate::fleet::gather::{Fleet, Keep};
use crate::fleet::{split_scope, Scope};
use crate::net::shutdown::Shutdown;
use crate::probe::book::ProbeBook;
use crate::record::Ledger;
use crate::report::build::Sources;
use crate::report::changes::{export, ExportSettings};
use crate::report::judge::ReportSettings;
use crate::report::model::{Action, Report};
use crate::report::render::{self, Format};
use crate::report::stream::{self, Selection};
use crate::report::summary::{summarize, Summary};
use body::ChannelBody;

/// Switch-dns hosts `/report/route53` writes changes for at most (the offline `report route53`
/// takes a whole report file).
pub const ROUTE53_HOSTS: usize = 5000;
/// The summary is made again this often at least (more rarely when a pass takes long: five times
/// its duration, so it never takes more than a fifth of a core).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(2);

/// What the admin endpoints read.
pub struct AdminState {
    /// Readiness.
    pub shutdown: Arc<Shutdown>,
    /// The ledger (`None` with `--no-record`).
    pub ledger: Option<Arc<Ledger>>,
    /// When recording started, unix ms.
    pub started_at_ms: u64,
    /// `--replica-id`.
    pub replica_id: Arc<str>,
    /// How reports judge hosts.
    pub report: ReportSettings,
    /// DNS evidence, when configured.
    pub dns: Option<Arc<DnsBook>>,
    /// Green's answers (`--green-probe`).
    pub probe: Option<Arc<ProbeBook>>,
    /// The other replicas (`--peers`).
    pub fleet: Option<Arc<Fleet>>,
    /// How `/report/route53` writes changes.
    pub export: ExportSettings,
    /// What `/metrics` reads besides the summary.
    pub metrics: MetricsSources,
    /// The last summary (`None` until the first is made, and with `--no-record`).
    pub summary: ArcSwapOption<Summary>,
    /// The last fleet dashboard and when it was made (unix ms): pages that reload every few
    /// seconds in several tabs share one round of asking the replicas.
    pub fleet_page: ArcSwapOption<(u64, String)>,
}

type Body = Either<Full<Bytes>, ChannelBody>;

impl AdminState {
    fn sources<'a>(&'a self, ledger: &'a Ledger) -> Sources<'a> {
        Sources {
            ledger,
            dns: self.dns.as_deref(),
            started_at_ms: self.started_at_ms,
            replica_id: &self.replica_id,
            settings: self.report,
            probe: self.probe.as_deref(),
        }
    }
}

/// Keeps [`AdminState::summary`] fresh: a pass off the admin runtime's thread every
/// [`SUMMARY_EVERY`], or five times the last pass's duration when that is longer.
pub async fn keep_summary(state: Arc<AdminState>) {
    let Some(ledger) = state.ledger.clone() else { return };
    loop {
        let (s, l) = (state.clone(), ledger.clone());
        let made = tokio::task::spawn_blocking(move || summarize(&s.sources(&l), unix_ms())).await;
        let wait = match made {
            Ok(summary) => {
                let wait = SUMMARY_EVERY.max(summary.took * 5);
                state.summary.store(Some(Arc::new(summary)));
                wait
            }
            Err(_) => SUMMARY_EVERY,
        };
        tokio::time::sleep(wait).await;
    }
}

/// Serves the admin endpoints until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
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
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn route(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let format =
        match req.uri().path() {
            "/" => return dashboard(req, state).await,
            "/metrics" => return metrics(&state),
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
    report(req, state, format).await
}

/// This replica's report of `selection` as JSON, made off the admin runtime's thread.
async fn local_json(state: &Arc<AdminState>, ledger: Arc<Ledger>, selection: Selection) -> Option<Vec<u8>> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut json = Vec::new();
        stream::write(&s.sources(&ledger), &selection, Format::Json, unix_ms(), &mut json).ok().map(|_| json)
    })
    .await
    .ok()
    .flatten()
}

/// The report of every replica (`scope=fleet`) for `query` (a `/report` query): this one's and
/// each peer's, asked without the query's `action` filter (a replica must not drop a host by its
/// own partial verdict), merged, then filtered and cut. Bounded like one replica's report; an
/// error is the answer to give.
async fn fleet_report(state: &Arc<AdminState>, ledger: Arc<Ledger>, query: &str) -> Result<Report, Response<Body>> {
    let Some(fleet) = state.fleet.clone() else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "scope=fleet needs --peers (the replicas' admin addresses, e.g. a headless Service's NAME:PORT)\n",
        ));
    };
    let wanted =
        Selection::from_query(Some(query)).map_err(|why| owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")))?;
    let Some(limit) = wanted.limit else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "scope=fleet is bounded: drop all=true and limit=0 (`report merge` of the replicas' report files lists every host)\n",
        ));
    };
    let wide: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("action=")).collect();
    let wide = wide.join("&");
    let asked =
        Selection::from_query(Some(&wide)).map_err(|why| owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")))?;
    let Some(local) = local_json(state, ledger, asked).await else {
        return Err(text(StatusCode::INTERNAL_SERVER_ERROR, "report failed\n"));
    };
    let keep = Keep { actions: wanted.actions, limit };
    fleet
        .gather(&wide, &state.replica_id, local, state.report, keep)
        .await
        .map_err(|e| owned_text(StatusCode::INTERNAL_SERVER_ERROR, format!("fleet report failed: {e}\n")))
}

/// `/report`: the hosts a [`Selection`] of the query chooses (by default the ones that matter,
/// bounded), streamed as they are read.
async fn report(req: &Request<Incoming>, state: Arc<AdminState>, format: Format) -> Response<Body> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record)\n");
    };
    let (scope, query) = match split_scope(req.uri().query()) {
        Ok(scoped) => scoped,
        Err(why) => return owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    if scope == Scope::Fleet {
        let report = match fleet_report(&state, ledger, &query).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        let body = tokio::task::spawn_blocking(move || render::render(&report, format)).await.unwrap_or_default();
        return with_type(body, format.content_type());
    }
    let selection = match Selection::from_query(Some(&query)) {
        Ok(s) => s,
        Err(why) => return owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    let (mut writer, body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let src = state.sources(&ledger);
        if let Err(e) = stream::write(&src, &selection, format, unix_ms(), &mut writer) {
            tracing::debug!(error = %e, "report stream ended early");
        }
    });
    let mut resp = Response::new(Either::Right(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `/report/route53`: every zone's change batches with the skipped hosts and the ExternalDNS
/// script, for the busiest [`ROUTE53_HOSTS`] switch-dns hosts; `?zone=Z…` gives that zone's batch
/// alone (`&part=N` for the Nth when a zone has more than 1 000 changes), ready for
/// `--change-batch file://`.
async fn route53(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Body> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record)\n");
    };
    let (scope, query) = match split_scope(req.uri().query()) {
        Ok(scoped) => scoped,
        Err(why) => return owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)).map(str::to_owned);
    let zone = param("zone=");
    let part: usize = param("part=").and_then(|p| p.parse().ok()).unwrap_or(1);
    let selection =
        Selection { limit: Some(ROUTE53_HOSTS), max_bytes: None, actions: vec![Action::SwitchDns], host: None };
    let report: Report = if scope == Scope::Fleet {
        let ask = format!("action={}&limit={ROUTE53_HOSTS}", Action::SwitchDns.as_str());
        match fleet_report(&state, ledger, &ask).await {
            Ok(r) => r,
            Err(answer) => return answer,
        }
    } else {
        let parsed = match local_json(&state, ledger, selection).await {
            Some(json) => tokio::task::spawn_blocking(move || serde_json::from_slice(&json).ok()).await.ok().flatten(),
            None => None,
        };
        let Some(report) = parsed else { return text(StatusCode::INTERNAL_SERVER_ERROR, "export failed\n") };
        report
    };
    let out = export(&report, &state.export);
    let body = match zone {
        Some(z) => match out.batches.get(&z).and_then(|parts| parts.get(part.saturating_sub(1))) {
            Some(batch) => batch.clone(),
            None => return text(StatusCode::NOT_FOUND, "no change for that hosted zone\n"),
        },
        None => serde_json::to_value(&out).unwrap_or_default(),
    };
    let mut resp =
        Response::new(Either::Left(Full::new(Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default()))));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn dashboard(req: &Request<Incoming>, state: Arc<AdminState>) -> Response<Body> {
    let Some(ledger) = state.ledger.clone() else {
        return text(StatusCode::NOT_FOUND, "recording is off (--no-record): no dashboard\n");
    };
    if matches!(split_scope(req.uri().query()), Ok((Scope::Fleet, _))) {
        // Made for the asking (the fleet's summary is not kept fresh in the background), and kept
        // for the page's own reload interval.
        let fresh_ms = u64::from(crate::admin::dashboard::REFRESH_S) * 1000;
        if let Some(page) = state.fleet_page.load_full().filter(|p| unix_ms().saturating_sub(p.0) < fresh_ms) {
            return with_type(page.1.clone(), "text/html; charset=utf-8");
        }
        let report = match fleet_report(&state, ledger, "").await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        let quiet = state.report.quiet_period;
        let page = tokio::task::spawn_blocking(move || {
            crate::admin::dashboard::render(&crate::report::summary::Summary::of_report(report, quiet), quiet)
        })
        .await
        .unwrap_or_default();
        state.fleet_page.store(Some(Arc::new((unix_ms(), page.clone()))));
        return with_type(page, "text/html; charset=utf-8");
    }
    let Some(summary) = state.summary.load_full() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "the first summary is being made; reload in a moment\n");
    };
    let page = crate::admin::dashboard::render(&summary, state.report.quiet_period);
    with_type(page, "text/html; charset=utf-8")
}

fn metrics(state: &AdminState) -> Response<Body> {
    let summary = state.summary.load_full();
    let body = crate::admin::metrics::render(
        &state.metrics,
        state.ledger.as_deref(),
        summary.as_deref(),
        state.shutdown.is_ready(),
    );
    with_type(body, crate::admin::metrics::CONTENT_TYPE)
}

fn with_type(body: String, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    owned_text(status, body.to_owned())
}

fn owned_text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

//! `cutover-proxy demo`: the whole job on an embedded default, loopback only. An embedded blue upstream, an embedded DNS server with a sample
//! zone and its Route53 export (hosts already moved, hosts missed, a host green cannot serve, a stale
//! client, a hardcoded IP, a host that does not resolve), a sample green route table, an embedded
//! green that the proxy asks (`--green-probe`: it serves most routes, lacks some, and fails one
//! host), the real proxy in front, a replayed traffic mix; then the report printed, written to
//! `./cutover-demo/` with the Route53 change batches, and the dashboard served until Ctrl-C.

use std::convert::Infallible;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::base::time::{parse_rfc3339, unix_ms};
use crate::base::values::UpstreamUrl;
use crate::dns::targets::{Target, Targets};
use crate::probe::ProbeSettings;
use crate::report::changes::{export, ExportSettings};
use crate::report::file::{write_export, ReportFileError};
use crate::report::model::{Action, Report};
use crate::serve::{run_with, Hooks, ServeError, ServeSettings};

mod dns;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

macro_rules! from_error {
    ($($t:ty),*) => {
        $(impl From<$t> for DemoError {
            fn from(e: $t) -> Self {
                DemoError(e.to_string())
            }
        })*
    };
}
from_error!(
    std::io::Error,
    hyper::Error,
    http::Error,
    serde_json::Error,
    tokio::task::JoinError,
    tokio::time::error::Elapsed,
    ReportFileError,
    ServeError,
    String
);

type DemoResult<T> = Result<T, DemoError>;

/// Blue's and green's load balancers in the sample (what `--blue-target` / `--green-target` name).
const BLUE_EDGE: &str = "k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com";
const BLUE_LEGACY: &str = "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com";
const GREEN_EDGE: &str = "k8s-green-edge-3c4d.ap-northeast-2.elb.amazonaws.com";
/// The sample hosted zone's id.
const ZONE_ID: &str = "ZDEMO0EXAMPLE";

/// Green's sample route table: what the new cluster serves.
pub const GREEN_ROUTES: &str = r#"# Sample green routes (Kubernetes Ingress + Gateway API HTTPRoute), as a GitOps repo holds them.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: edge, namespace: shop}
spec:
  ingressClassName: alb
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /robots.txt, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: public-api, namespace: api}
spec:
  ingressClassName: alb
  rules:
  - host: api.example.com
    http:
      paths:
      - {path: /v1, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tenants, namespace: saas}
spec:
  hostnames: ["*.tenant.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: tenant-app, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: payments, namespace: pay}
spec:
  hostnames: ["pay.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: pay-v2, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: web}
spec:
  hosts: ["www.example.com", "legacy.example.com", "reports.example.com", "old.example.com", "partner.example.org"]
  gateways: ["istio-system/public"]
  http:
  - route: [{destination: {host: web.web.svc.cluster.local}}]
"#;

/// What Route53 says: `aws route53 list-resource-record-sets --hosted-zone-id ZDEMO0EXAMPLE --output json`.
const ROUTE53_EXPORT: &str = r#"{"ResourceRecordSets": [
  {"Name": "example.com.", "Type": "SOA", "TTL": 900, "ResourceRecords": [{"Value": "ns-1.awsdns-01.org. hostmaster.example.com. 1 7200 900 1209600 86400"}]},
  {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "eks-blue", "Weight": 100,
   "AliasTarget": {"HostedZoneId": "ZWKZPGTI48KDX", "DNSName": "dualstack.k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com.", "EvaluateTargetHealth": true}},
  {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "eks-green", "Weight": 0,
   "AliasTarget": {"HostedZoneId": "ZWKZPGTI48KDX", "DNSName": "dualstack.k8s-green-edge-3c4d.ap-northeast-2.elb.amazonaws.com.", "EvaluateTargetHealth": true}},
  {"Name": "api.example.com.", "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": "\"heritage=external-dns,external-dns/owner=eks-blue,external-dns/resource=ingress/api/public-api\""}]},
  {"Name": "shop.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com"}]},
  {"Name": "legacy.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com"}]},
  {"Name": "\\052.tenant.example.com.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": "k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com"}]},
  {"Name": "www.example.com.", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "k8s-green-edge-3c4d.ap-northeast-2.elb.amazonaws.com"}]},
  {"Name": "pay.example.com.", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "k8s-green-edge-3c4d.ap-northeast-2.elb.amazonaws.com"}]},
  {"Name": "reports.example.com.", "Type": "A", "TTL": 1, "ResourceRecords": [{"Value": "10.2.0.11"}]}
 ],
 "IsTruncated": false, "MaxItems": "300"}
"#;

/// What clients see: the sample zone served by the embedded DNS server.
fn zone() -> Vec<(&'static str, dns::Answer, u32)> {
    use dns::Answer::{Cname, A};
    let blue_edge = || vec![Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 1, 0, 11)];
    vec![
        (BLUE_EDGE, A(blue_edge()), 60),
        (BLUE_LEGACY, A(vec![Ipv4Addr::new(10, 1, 0, 20)]), 60),
        (GREEN_EDGE, A(vec![Ipv4Addr::new(10, 2, 0, 10)]), 60),
        // Missed: still on blue.
        ("shop.example.com", Cname(BLUE_EDGE), 300),
        ("api.example.com", A(blue_edge()), 60), // an alias: addresses only, no CNAME
        ("legacy.example.com", Cname(BLUE_LEGACY), 300),
        ("a.tenant.example.com", Cname(BLUE_EDGE), 300),
        // Already moved to green.
        ("www.example.com", Cname(GREEN_EDGE), 60),
        ("pay.example.com", Cname(GREEN_EDGE), 60),
        ("reports.example.com", A(vec![Ipv4Addr::new(10, 2, 0, 11)]), 1),
        // Neither side.
        ("partner.example.org", A(vec![Ipv4Addr::new(203, 0, 113, 50)]), 300),
    ]
}

/// The traffic mix: (host, path, requests, user agent).
const TRAFFIC: &[(&str, &str, usize, &str)] = &[
    ("shop.example.com", "/api/cart/{n}", 900, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
    ("shop.example.com", "/robots.txt", 40, "Googlebot/2.1"),
    ("shop.example.com", "/checkout", 120, "Mozilla/5.0 (iPhone) Safari/605.1"),
    ("api.example.com", "/v1/users/{n}/orders", 700, "okhttp/4.12.0"),
    ("a.tenant.example.com", "/v1/reports/{n}", 150, "Java/17.0.9"),
    ("legacy.example.com", "/soap/OrderService", 200, "Apache-HttpClient/4.5.14 (Java/1.8.0_392)"),
    ("www.example.com", "/static/app-{n}.js", 300, "Mozilla/5.0 (Macintosh) Chrome/131.0"),
    ("pay.example.com", "/v1/charges", 80, "stripe-node/14.0"),
    ("old.example.com", "/v2/legacy", 25, "Wget/1.21"),
    ("partner.example.org", "/hooks/order", 40, "Go-http-client/1.1"),
    ("10.0.0.7", "/internal/metrics", 60, "curl/8.5.0"),
    (BLUE_EDGE, "/v1/ping", 30, "python-requests/2.31"),
    ("api.example.com", "/healthz", 100, "ELB-HealthChecker/2.0"),
];

/// A JVM batch job that caches DNS forever and keeps its keep-alive connection: it keeps coming
/// to blue long after `reports.example.com` moved.
const STALE: (&str, &str, usize, &str) = ("reports.example.com", "/export/daily", 60, "Java/1.8.0_292");

/// Runs the demo; with `exit_at_once` it returns after printing instead of waiting for Ctrl-C.
pub fn run(out_dir: &Path, exit_at_once: bool) -> DemoResult<()> {
    std::fs::create_dir_all(out_dir).map_err(|e| DemoError(format!("cannot create {}: {e}", out_dir.display())))?;
    let routes_file = out_dir.join("green-routes.yaml");
    std::fs::write(&routes_file, GREEN_ROUTES)
        .map_err(|e| DemoError(format!("cannot write {}: {e}", routes_file.display())))?;
    let export_file = out_dir.join(format!("route53-{ZONE_ID}.json"));
    std::fs::write(&export_file, ROUTE53_EXPORT)
        .map_err(|e| DemoError(format!("cannot write {}: {e}", export_file.display())))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let blue = rt.block_on(start_blue())?;
    let green = rt.block_on(start_green())?;
    let dns_addr = rt.block_on(dns::start(&zone()))?;
    eprintln!(
        "blue (embedded upstream) on http://{blue}, green on http://{green}, sample DNS zone on udp://{dns_addr}"
    );

    let mut cfg = demo_settings(blue, dns_addr, &routes_file, &export_file, &out_dir.join("report.json"))?;
    cfg.probe = Some(ProbeSettings {
        green: UpstreamUrl { host: green.ip().to_string(), port: green.port(), tls: false },
        rate: 50,
        interval: Duration::from_secs(600),
        timeout: Duration::from_secs(2),
        ca_file: None,
    });
    let log = std::fs::File::create(out_dir.join("access.log"))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let proxy = std::thread::spawn(move || {
        run_with(cfg, Hooks { out: Box::new(log), ready: Some(ready_tx), stop: Some(stop_rx) })
    });
    let (listeners, admin) =
        ready_rx.recv_timeout(Duration::from_secs(15)).map_err(|_| DemoError("the proxy did not start".into()))?;
    let proxy_addr = *listeners.first().ok_or_else(|| DemoError("the proxy has no listener".into()))?;
    eprintln!("cutover-proxy on http://{proxy_addr}, admin on http://{admin}");

    rt.block_on(async {
        // The stale client connects before anything moved, and never reconnects.
        let mut stale = Client::connect(proxy_addr).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stale.get(STALE.0, STALE.1, STALE.3).await?;
        // One request per host, so the proxy resolves each; then the TTL window of the host that
        // moved with a 1 s TTL closes.
        let mut first = Client::connect(proxy_addr).await?;
        for (host, path, _, ua) in TRAFFIC {
            first.get(host, &path.replace("{n}", "1"), ua).await?;
        }
        wait_for_dns(admin).await?;
        let replay = replay(proxy_addr);
        let stale_traffic = async {
            for _ in 1..STALE.2 {
                stale.get(STALE.0, STALE.1, STALE.3).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, DemoError>(())
        };
        let (a, b) = tokio::join!(replay, stale_traffic);
        a.and(b)?;
        wait_for_probes(admin).await
    })?;
    let report_json = rt.block_on(admin_get(admin, "/report"))?;
    let report: Report = serde_json::from_str(&report_json)?;
    std::fs::write(out_dir.join("report.json"), &report_json)?;
    std::fs::write(out_dir.join("report.md"), rt.block_on(admin_get(admin, "/report.md"))?)?;
    std::fs::write(out_dir.join("report.csv"), rt.block_on(admin_get(admin, "/report.csv"))?)?;
    let fixes = export(&report, &ExportSettings::default());
    let fix_dir = out_dir.join("route53");
    let written = write_export(&fix_dir, &fixes)?;
    print_table(&report);
    println!("\nWritten to {}:", out_dir.display());
    println!("  report.json, report.md, report.csv, access.log (the proxy's JSON log)");
    println!(
        "  inputs: green-routes.yaml, {}",
        export_file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    for f in written {
        println!("  {}", f.strip_prefix(out_dir).unwrap_or(&f).display());
    }
    println!(
        "Apply a batch with: aws route53 change-resource-record-sets --hosted-zone-id {ZONE_ID} --change-batch file://{}",
        fix_dir.join(format!("{ZONE_ID}.json")).display()
    );

    if !exit_at_once {
        println!("\nDashboard: http://{admin}/   metrics: http://{admin}/metrics   report: http://{admin}/report.md");
        println!("Ctrl-C to stop.");
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    let _ = stop_tx.send(());
    match proxy.join() {
        Ok(result) => result.map_err(DemoError::from),
        Err(_) => Err(DemoError("the proxy thread failed".into())),
    }
}

/// Waits until green has been asked about every host and path (at most 20 s).
async fn wait_for_probes(admin: SocketAddr) -> DemoResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let report: Report = serde_json::from_str(&admin_get(admin, "/report").await?)?;
        let pending = report.hosts.iter().filter_map(|h| h.green.probe.as_ref()).any(|p| p.unprobed > 0);
        if !pending || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Green as the probe finds it: the sample routes served, a default backend for the rest (an
/// ALB's fixed response), and `legacy.example.com`'s new backend failing.
async fn start_green() -> DemoResult<SocketAddr> {
    serve_loopback(Some("awselb/2.0"), |host, path| {
        const SERVED: &[(&str, &[&str])] = &[
            ("shop.example.com", &["/api", "/robots.txt"]),
            ("api.example.com", &["/v1"]),
            (".tenant.example.com", &["/v1"]),
            ("pay.example.com", &["/v2"]),
            ("www.example.com", &["/"]),
            ("reports.example.com", &["/"]),
            ("old.example.com", &["/"]),
            ("partner.example.org", &["/"]),
        ];
        let served = SERVED.iter().any(|(h, prefixes)| {
            (host == *h || (h.starts_with('.') && host.ends_with(h))) && prefixes.iter().any(|p| path.starts_with(p))
        });
        match (host, served) {
            ("legacy.example.com", _) => (503, "upstream connect error or disconnect/reset before headers\n".into()),
            (_, true) => (200, "green served\n".into()),
            (_, false) => (404, "default backend - 404\n".into()),
        }
    })
    .await
}

/// Waits until every resolvable host has been resolved and the shortest TTL window has closed.
async fn wait_for_dns(admin: SocketAddr) -> DemoResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let report: Report = serde_json::from_str(&admin_get(admin, "/report").await?)?;
        let now = unix_ms();
        let pending = report.hosts.iter().any(|h| {
            let resolvable = !h.hardcoded && h.host != "(other)";
            let unresolved = resolvable && h.dns.resolved_at.is_none();
            let window_open = h.host == STALE.0
                && h.dns.window_ends_at.as_deref().and_then(parse_rfc3339).is_none_or(|end| end >= now);
            unresolved || window_open
        });
        if !pending {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError("the sample hosts were not resolved in time".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn demo_settings(
    blue: SocketAddr,
    dns: SocketAddr,
    routes: &Path,
    export: &Path,
    report: &Path,
) -> DemoResult<ServeSettings> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut s = ServeSettings::new(UpstreamUrl { host: blue.ip().to_string(), port: blue.port(), tls: false });
    s.listen = vec![loopback];
    s.admin_listen = loopback;
    s.workers = 2;
    s.green.files = vec![routes.to_owned()];
    s.report_file = Some(crate::report::file::ReportFile::Path(report.to_owned()));
    s.report_interval = Duration::from_secs(5);
    s.drain_delay = Duration::ZERO;
    let targets = |names: &[&str]| names.iter().map(|n| n.parse::<Target>()).collect::<Result<Vec<_>, String>>();
    s.dns.targets =
        Targets { blue: targets(&[BLUE_EDGE, BLUE_LEGACY])?, green: targets(&[GREEN_EDGE, "10.2.0.0/16"])? };
    s.dns.live = true;
    s.dns.resolver.servers = vec![dns];
    s.dns.resolver.target_refresh = Duration::from_secs(1);
    s.dns.resolver.timeout = Duration::from_millis(500);
    s.dns.route53 = vec![(ZONE_ID.to_owned(), export.to_owned())];
    s.dns.ttl_grace = Duration::from_secs(2);
    Ok(s)
}

/// One keep-alive client connection.
struct Client(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

impl Client {
    async fn connect(addr: SocketAddr) -> DemoResult<Self> {
        let stream = TcpStream::connect(addr).await?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self(tx))
    }

    async fn get(&mut self, host: &str, path: &str, ua: &str) -> DemoResult<()> {
        self.0.ready().await?;
        let req = Request::get(path).header("host", host).header("user-agent", ua).body(Empty::<Bytes>::new())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.0.send_request(req)).await??;
        resp.into_body().collect().await?;
        Ok(())
    }
}

/// Blue: answers every request with a short text naming the host and path.
async fn start_blue() -> DemoResult<SocketAddr> {
    serve_loopback(None, |host, path| (200, format!("blue served {host}{path}\n"))).await
}

/// An HTTP/1.1 server on a loopback port answering `answer(host, path)` (status, body), with
/// `server` as its `Server` header.
async fn serve_loopback(
    server: Option<&'static str>,
    answer: fn(&str, &str) -> (u16, String),
) -> DemoResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("-");
                    let (status, body) = answer(host, req.uri().path());
                    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
                    if let Some(server) = server {
                        resp.headers_mut().insert("server", hyper::header::HeaderValue::from_static(server));
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}

/// Sends the traffic mix over 8 keep-alive connections, with a progress bar on stderr.
async fn replay(proxy: SocketAddr) -> DemoResult<()> {
    let mut plan: Vec<(String, String, &'static str)> = Vec::new();
    for (host, path, n, ua) in TRAFFIC {
        for i in 0..*n {
            plan.push(((*host).to_owned(), path.replace("{n}", &(1000 + i * 7).to_string()), ua));
        }
    }
    // Interleave so the progress bar shows a mix, deterministically.
    plan.sort_by_key(|(h, p, _)| (p.len() * 31 + h.len()) % 17);
    let total = plan.len();
    let chunks: Vec<Vec<(String, String, &'static str)>> = plan.chunks(total.div_ceil(8)).map(|c| c.to_vec()).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for chunk in chunks {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(proxy).await?;
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            for (host, path, ua) in chunk {
                tx.ready().await?;
                let req =
                    Request::get(path).header("host", host).header("user-agent", ua).body(Empty::<Bytes>::new())?;
                let resp = tx.send_request(req).await?;
                resp.into_body().collect().await?;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, DemoError>(())
        }));
    }
    let bar = tokio::spawn({
        let done = done.clone();
        async move {
            loop {
                let n = done.load(std::sync::atomic::Ordering::Relaxed);
                let filled = n * 40 / total.max(1);
                eprint!("\rreplaying traffic [{}{}] {n}/{total}", "#".repeat(filled), " ".repeat(40 - filled));
                let _ = std::io::stderr().flush();
                if n >= total {
                    eprintln!();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    for t in tasks {
        t.await??;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), bar).await;
    Ok(())
}

async fn admin_get(admin: SocketAddr, path: &str) -> DemoResult<String> {
    let stream = TcpStream::connect(admin).await?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(path).header("host", "admin").body(Empty::<Bytes>::new())?;
    let resp = tx.send_request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The report as a terminal table, grouped like the Markdown report.
fn print_table(report: &Report) {
    let t = &report.totals;
    println!(
        "\n{} requests to {} hosts still arrived at blue ({} not routable on green, {} health checks ignored)\n",
        t.requests, t.hosts, t.unrouted_requests, t.ignored_requests
    );
    println!("{:<52} {:>8}  {:<8} {:<9} {:<15} {:<17} why", "host", "requests", "green", "asked", "dns", "action");
    println!("{}", "-".repeat(150));
    for &action in Action::ALL {
        for h in report.hosts.iter().filter(|h| h.action == action) {
            let green = h.green.routed.as_str();
            let asked = h.green.probe.as_ref().and_then(|p| p.verdict).map_or("-", |v| v.as_str());
            let mut why = h.reason.clone();
            if why.len() > 90 {
                let mut cut = 87;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
                why.push_str("...");
            }
            println!(
                "{:<52} {:>8}  {:<8} {:<9} {:<15} {:<17} {}",
                h.host,
                h.requests,
                green,
                asked,
                h.dns.verdict,
                format!("{}{}", action.as_str(), if h.urgent { "!" } else { "" }),
                why
            );
        }
    }
}

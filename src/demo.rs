//! `cutover-proxy demo` (part of the binary, like `main.rs`: it may use anyhow): the whole job on an embedded default, loopback only. An embedded blue
//! upstream, a sample green route table, the real proxy in front, a replayed traffic mix, and the
//! reconciliation report printed and written to `./cutover-demo/`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use clap::{CommandFactory, FromArgMatches};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use cutover_proxy::config::{Cli, Command, ServeConfig};
use cutover_proxy::report::model::Report;
use cutover_proxy::serve::{run_with, Hooks};

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
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public-api, namespace: api}
spec:
  hostnames: ["api.example.com", "*.tenant.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: api, port: 80}]
"#;

/// The traffic mix: (host, path, requests, user agent).
const TRAFFIC: &[(&str, &str, usize, &str)] = &[
    ("shop.example.com", "/api/cart/{n}", 900, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
    ("shop.example.com", "/robots.txt", 40, "Googlebot/2.1"),
    ("shop.example.com", "/checkout", 120, "Mozilla/5.0 (iPhone) Safari/605.1"),
    ("api.example.com", "/v1/users/{n}/orders", 700, "okhttp/4.12.0"),
    ("a.tenant.example.com", "/v1/reports/{n}", 150, "Java/17.0.9"),
    ("legacy.example.com", "/soap/OrderService", 200, "Apache-HttpClient/4.5.14 (Java/1.8.0_392)"),
    ("10.0.0.7", "/internal/metrics", 60, "curl/8.5.0"),
    ("k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com", "/v1/ping", 30, "python-requests/2.31"),
    ("api.example.com", "/healthz", 100, "ELB-HealthChecker/2.0"),
];

/// Runs the demo; with `exit_at_once` it returns after printing instead of waiting for Ctrl-C.
pub fn run(out_dir: &Path, exit_at_once: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let routes_file = out_dir.join("green-routes.yaml");
    std::fs::write(&routes_file, GREEN_ROUTES).with_context(|| format!("cannot write {}", routes_file.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let blue = rt.block_on(start_blue())?;
    eprintln!("blue (embedded upstream) on http://{blue}");

    let cfg = demo_config(blue, &routes_file, &out_dir.join("report.json"))?;
    let log = std::fs::File::create(out_dir.join("access.log"))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let proxy = std::thread::spawn(move || {
        run_with(cfg, Hooks { out: Box::new(log), ready: Some(ready_tx), stop: Some(stop_rx) })
    });
    let (listeners, admin) =
        ready_rx.recv_timeout(Duration::from_secs(15)).map_err(|_| anyhow!("the proxy did not start"))?;
    let proxy_addr = *listeners.first().ok_or_else(|| anyhow!("the proxy has no listener"))?;
    eprintln!("cutover-proxy on http://{proxy_addr}, admin on http://{admin}");

    rt.block_on(replay(proxy_addr))?;
    let report_json = rt.block_on(admin_get(admin, "/report"))?;
    let report: Report = serde_json::from_str(&report_json)?;
    std::fs::write(out_dir.join("report.json"), &report_json)?;
    std::fs::write(out_dir.join("report.md"), rt.block_on(admin_get(admin, "/report.md"))?)?;
    std::fs::write(out_dir.join("report.csv"), rt.block_on(admin_get(admin, "/report.csv"))?)?;
    print_table(&report);
    println!("\nWritten to {}: report.json, report.md, report.csv, access.log, green-routes.yaml", out_dir.display());

    if !exit_at_once {
        println!("Report live at http://{admin}/report.md (JSON: /report) — Ctrl-C to stop.");
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    let _ = stop_tx.send(());
    match proxy.join() {
        Ok(result) => result.map_err(|e| anyhow!("{e}")),
        Err(_) => Err(anyhow!("the proxy thread failed")),
    }
}

fn demo_config(blue: SocketAddr, routes: &Path, report: &Path) -> anyhow::Result<ServeConfig> {
    let args: Vec<String> = [
        "cutover-proxy",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        &format!("http://{blue}"),
        "--green-routes",
        &routes.to_string_lossy(),
        "--report-file",
        &report.to_string_lossy(),
        "--report-interval",
        "5s",
        "--drain-delay",
        "0s",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let matches = Cli::command().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let (Command::Serve(serve), Some(sub)) = (cli.command, matches.subcommand_matches("serve")) else {
        return Err(anyhow!("demo configuration is not a serve command"));
    };
    Ok(ServeConfig::resolve(*serve, sub)?)
}

/// Blue: answers every request with a short text naming the host and path.
async fn start_blue() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("-").to_owned();
                    let text = format!("blue served {host}{}\n", req.uri().path());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}

/// Sends the traffic mix over 8 keep-alive connections, with a progress bar on stderr.
async fn replay(proxy: SocketAddr) -> anyhow::Result<()> {
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
            Ok::<_, anyhow::Error>(())
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

async fn admin_get(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
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
    println!("{:<52} {:>8}  {:<8} {:<16} why", "host", "requests", "green", "action");
    println!("{}", "-".repeat(120));
    for action in cutover_proxy::report::render::ACTION_ORDER {
        for h in report.hosts.iter().filter(|h| h.action == action) {
            let green = serde_json::to_value(h.green.routed).ok().and_then(|v| v.as_str().map(str::to_owned));
            let mut why = h.reason.clone();
            if why.len() > 70 {
                let mut cut = 67;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
                why.push_str("...");
            }
            println!(
                "{:<52} {:>8}  {:<8} {:<16} {}",
                h.host,
                h.requests,
                green.unwrap_or_default(),
                format!("{}{}", action.as_str(), if h.urgent { "!" } else { "" }),
                why
            );
        }
    }
}

//! `cutover-proxy analyze`: blue's access logs from before the proxy, plain and gzipped, through the
//! real binary into the same report as live traffic.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{host, run_binary, temp_dir};

fn gzip(path: &Path, text: &str) {
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
}

const ROUTES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: edge, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
  - host: legacy.example.com
    http:
      paths:
      - {path: /soap, pathType: Prefix, backend: {service: {name: soap, port: {number: 80}}}}
"#;

/// An ALB log line.
fn alb(time: &str, client: &str, status: &str, request: &str, agent: &str) -> String {
    format!(
        "https {time} app/k8s-blue-api/50dc6c495c0c9188 {client}:41234 10.0.3.7:8080 0.001 0.012 0.000 {status} {status} 220 1043 \
         \"{request}\" \"{agent}\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 \
         arn:aws:elasticloadbalancing:ap-northeast-2:123456789012:targetgroup/k8s-shop/73e2d6bc24d8a067 \
         \"Root=1-58337262-36d228ad5d99923122bbe354\" \"shop.example.com\" \"arn:aws:acm:ap-northeast-2:123456789012:certificate/1\" \
         0 {time} \"forward\" \"-\" \"-\" \"10.0.3.7:8080\" \"{status}\" \"-\" \"-\" TID_1\n"
    )
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn alb_logs_plain_and_gzipped_make_the_same_report() {
    let dir = temp_dir("alb");
    std::fs::write(dir.join("green.yaml"), ROUTES).unwrap();
    let mut first = String::new();
    for i in 0..3 {
        let t = format!("2026-11-18T09:0{i}:10.123456Z");
        first +=
            &alb(&t, "203.0.113.7", "200", "GET https://shop.example.com:443/api/cart/4711 HTTP/1.1", "okhttp/4.12.0");
    }
    first += &alb(
        "2026-11-18T09:02:30.000000Z",
        "203.0.113.8",
        "404",
        "GET https://shop.example.com:443/checkout?step=2 HTTP/1.1",
        "Mozilla/5.0",
    );
    first += "this is not an ALB line\n\n";
    first += &alb(
        "2026-11-18T09:03:00.000000Z",
        "203.0.113.9",
        "200",
        "GET https://shop.example.com:443/healthz HTTP/1.1",
        "kube-probe/1.29",
    );
    let mut second = String::new();
    second += &alb(
        "2026-11-18T07:00:00.000000Z",
        "198.51.100.4",
        "200",
        "POST https://legacy.example.com:443/soap/OrderService HTTP/1.1",
        "Java/1.8.0_392",
    );
    second += &alb(
        "2026-11-18T09:04:00.000000Z",
        "198.51.100.5",
        "200",
        "GET https://10.0.0.7:443/internal/metrics HTTP/1.1",
        "curl/8.5.0",
    );
    second += "https 2026-11-18T09:04:01Z app/k8s-blue-api/1 198.51.100.5:1 - -1 -1 -1 400 - 0 0 \"- https://x:443- -\" \"-\" - - - \"-\" \"-\" \"-\" -\n";
    std::fs::write(dir.join("first.log"), &first).unwrap();
    gzip(&dir.join("second.log.gz"), &second);
    let out = dir.join("report.json");

    let (code, stdout, stderr) = run_binary(
        &[
            "analyze",
            "--format",
            "alb",
            "--green-routes",
            dir.join("green.yaml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            dir.join("first.log").to_str().unwrap(),
            dir.join("second.log.gz").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "malformed lines are not fatal: {stderr}");
    assert!(stdout.is_empty(), "the report went to --out: {stdout}");
    let first_log = dir.join("first.log");
    assert!(stderr.contains(&format!("malformed: {}:5: 6 fields", first_log.display())), "{stderr}");
    assert!(stderr.contains("second.log.gz:3: request `- https://x:443- -` has no method and URL"), "{stderr}");
    assert!(stderr.contains("analyzed 2 file(s): 10 lines, 7 requests, 2 malformed; 3 hosts"), "{stderr}");

    let r = report(&out);
    assert_eq!(r["schema"], "cutover-proxy/report/v2");
    assert_eq!(r["totals"]["requests"], 6, "the probe is ignored as in live traffic");
    assert_eq!(r["totals"]["ignored_requests"], 1);
    assert_eq!(r["started_at"], "2026-11-18T07:00:00.000Z", "the first request of the logs");
    assert_eq!(r["generated_at"], "2026-11-18T09:04:00.000Z", "judged as of the last request");
    let shop = host(&r, "shop.example.com");
    assert_eq!(shop["requests"], 4);
    assert_eq!(shop["action"], "add-green-route");
    assert_eq!(shop["green"]["missing_paths"], serde_json::json!(["/checkout"]));
    assert_eq!(shop["first_seen"], "2026-11-18T09:00:10.123Z");
    assert_eq!(shop["status"]["4xx"], 1);
    let paths: Vec<&str> = shop["paths"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/api/cart/{id}", "/checkout"]);
    let minutes: Vec<u64> =
        shop["requests_per_minute"].as_array().unwrap().iter().map(|m| m["requests"].as_u64().unwrap()).collect();
    assert_eq!(minutes, [1, 1, 2], "one bucket per minute of the log's own time");
    assert_eq!(shop["top_clients"][0]["ip"], "203.0.113.7");
    assert_eq!(host(&r, "10.0.0.7")["action"], "fix-hardcoded");
    let legacy = host(&r, "legacy.example.com");
    assert_eq!(
        legacy["action"], "none",
        "green routes it and it was silent for 2 h before the last line (quiet period 15m)"
    );
    assert_eq!(legacy["methods"], serde_json::json!(["POST"]));

    // The same report file as the proxy writes: `report render` reads it.
    let (code, md, err) = run_binary(&["report", "render", "--format", "markdown", out.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(md.contains("| shop.example.com |"), "{md}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nginx_json_logs_gzipped_to_markdown_on_stdout() {
    let dir = temp_dir("nginx");
    let lines = [
        r#"{"time_iso8601":"2026-11-20T19:00:00+09:00","remote_addr":"203.0.113.7","http_host":"api.example.com","request_method":"GET","request_uri":"/v1/users/42/orders?page=2","status":200,"request_length":312,"body_bytes_sent":2113,"http_user_agent":"okhttp/4.12.0"}"#,
        r#"{"time_local":"20/Nov/2026:10:00:30 +0000","remote_addr":"203.0.113.8","host":"API.Example.com:443","request":"POST /v1/users/43/orders HTTP/1.1","status":"201"}"#,
        r#"{"time_iso8601":"2026-11-20T10:01:00Z","remote_addr":"203.0.113.9","http_host":"api.example.com","request_uri":"/v1/users/44/orders","status":"-"}"#,
        r#"not json at all"#,
    ];
    gzip(&dir.join("access.log.gz"), &(lines.join("\n") + "\n"));
    let (code, stdout, stderr) = run_binary(
        &[
            "analyze",
            "--format",
            "nginx-json",
            "--report-format",
            "markdown",
            dir.join("access.log.gz").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("access.log.gz:3: no status field"), "{stderr}");
    assert!(stderr.contains("access.log.gz:4: not JSON"), "{stderr}");
    assert!(stderr.contains("4 lines, 2 requests, 2 malformed; 1 hosts"), "{stderr}");
    assert!(stdout.starts_with("# Cutover reconciliation report"), "{stdout}");
    assert!(stdout.contains("**2 requests** to **1 hosts**"), "{stdout}");
    assert!(stdout.contains("| api.example.com |"), "host normalized (case, port): {stdout}");
    assert!(stdout.contains("Generated 2026-11-20T10:00:30.000Z"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreadable_files_are_exit_2_with_the_file_named() {
    let dir = temp_dir("unreadable");
    let missing = dir.join("missing.log");
    let (code, _, stderr) = run_binary(&["analyze", "--format", "alb", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("missing.log") && stderr.contains("No such file"), "{stderr}");

    // A gzip stream that breaks off: the lines before it were read, the error names the file.
    let broken = dir.join("broken.log.gz");
    let mut bytes = Vec::new();
    {
        let mut gz = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::default());
        gz.write_all("x\n".repeat(10_000).as_bytes()).unwrap();
        gz.finish().unwrap();
    }
    bytes.truncate(bytes.len() / 2);
    bytes.extend_from_slice(b"garbage");
    std::fs::write(&broken, &bytes).unwrap();
    let (code, _, stderr) = run_binary(&["analyze", "--format", "nginx-json", broken.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("broken.log.gz"), "{stderr}");

    let (code, _, stderr) = run_binary(&["analyze", "--format", "apache", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("apache"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn route53_exports_give_history_its_dns_verdicts_and_fixes() {
    let dir = temp_dir("route53");
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rest, namespace: web}
spec:
  hostnames: ["api.example.com", "legacy.example.com", "moved.example.com", "shop.other.org"]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;
    std::fs::write(dir.join("green.yaml"), routes).unwrap();
    let mut log = String::new();
    for host in ["api.example.com", "legacy.example.com", "moved.example.com", "shop.other.org"] {
        let request = format!("GET https://{host}:443/v1/items HTTP/1.1");
        log += &alb("2026-11-18T09:00:10.000000Z", "203.0.113.7", "200", &request, "okhttp/4.12.0");
    }
    std::fs::write(dir.join("alb.log"), log).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Z0EXAMPLE.json");
    let out = dir.join("report.json");
    let (code, _, err) = run_binary(
        &[
            "analyze",
            "--format",
            "alb",
            "--green-routes",
            dir.join("green.yaml").to_str().unwrap(),
            "--route53-records",
            fixture.to_str().unwrap(),
            "--blue-target",
            "k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com",
            "--blue-target",
            "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com",
            "--green-target",
            "k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com",
            "--out",
            out.to_str().unwrap(),
            dir.join("alb.log").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let r = report(&out);
    for (name, verdict, action) in [
        ("api.example.com", "blue", "switch-dns"),
        ("legacy.example.com", "blue", "switch-dns"),
        ("moved.example.com", "green", "wait-ttl"),
        ("shop.other.org", "external", "investigate-dns"),
    ] {
        let h = host(&r, name);
        assert_eq!((h["dns"]["verdict"].as_str(), h["action"].as_str()), (Some(verdict), Some(action)), "{h}");
    }
    // The same fixes as from a live proxy.
    let fixes = dir.join("fixes");
    let (code, stdout, err) =
        run_binary(&["report", "route53", out.to_str().unwrap(), "--out", fixes.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("api.example.com") && stdout.contains("legacy.example.com"), "{stdout}");
    assert!(fixes.join("Z0EXAMPLE.json").is_file());

    // A broken export stops the analysis before the logs are read, naming the file.
    std::fs::write(dir.join("bad.json"), "{\"ResourceRecordSets\": 7}").unwrap();
    let arg = format!("Z1={}", dir.join("bad.json").display());
    let (code, _, err) = run_binary(
        &["analyze", "--format", "alb", "--route53-records", &arg, dir.join("alb.log").to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.json") && err.contains("ResourceRecordSets"), "{err}");
}

#[test]
fn a_line_without_end_is_malformed_not_read_whole() {
    let dir = temp_dir("long");
    let mut text = "x".repeat(3 << 20);
    text.push('\n');
    text += &alb(
        "2026-11-18T09:00:10.000000Z",
        "203.0.113.7",
        "200",
        "GET https://shop.example.com:443/api/x HTTP/1.1",
        "curl/8",
    );
    std::fs::write(dir.join("alb.log"), text).unwrap();
    let (code, out, err) = run_binary(&["analyze", "--format", "alb", dir.join("alb.log").to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("alb.log:1: line longer than 1048576 bytes"), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["totals"]["requests"], 1, "the next line is still read");
}

/// The proxy's own stdout, gzipped as a log collector keeps it, read back by `analyze --format
/// cutover`: the same hosts and counts as the proxy's live report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_access_log_makes_the_report_it_served() {
    use crate::common::{H1Client, ProxyProc, Upstream};
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    for (h, p) in
        [("shop.example.com", "/api/cart/1"), ("shop.example.com", "/api/cart/2"), ("img.example.com", "/a.png")]
    {
        assert_eq!(c.get(h, p).await.status, 200);
    }
    assert_eq!(c.get("shop.example.com", "/healthz").await.status, 200);
    proxy.wait_access(4);
    let live = crate::common::report_json(&proxy).await;
    let stdout: Vec<String> = proxy.json_lines().iter().map(|v| v.to_string()).collect();
    assert!(stdout.iter().any(|l| l.contains("\"event\"")), "event lines are in the log too");
    let dir = temp_dir("analyze-cutover");
    let log = dir.join("cutover-proxy-7d9f.log.gz");
    gzip(&log, &(stdout.join("\n") + "\nnot json: a collector's own line\n"));
    let out = dir.join("back.json");
    let (code, _, stderr) =
        run_binary(&["analyze", "--format", "cutover", "--out", out.to_str().unwrap(), log.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("4 requests, 0 malformed"), "{stderr}");
    let back = report(&out);
    for name in ["shop.example.com", "img.example.com"] {
        assert_eq!(host(&back, name)["requests"], host(&live, name)["requests"], "{name}");
        assert_eq!(host(&back, name)["status"], host(&live, name)["status"], "{name}");
    }
    assert_eq!(back["totals"]["requests"], live["totals"]["requests"]);
    assert_eq!(back["totals"]["ignored_requests"], 1, "the health check is ignored as live");
    std::fs::remove_dir_all(&dir).ok();
}

//! `report check`: the gate a pipeline waits on, against a live admin address and a file.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_check_closes_while_blue_gets_traffic_and_names_the_hosts() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("api.example.com", "/v1/x").await.status, 200);
    assert_eq!(c.get("api.example.com", "/healthz").await.status, 200);
    proxy.wait_access(2);
    let admin = format!("http://{}", proxy.admin);

    let check = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_binary(&args, &[])
        })
        .await
        .unwrap()
    };
    let args =
        |extra: &[&str]| -> Vec<String> { ["report", "check"].iter().chain(extra).map(|s| s.to_string()).collect() };

    let (code, out, err) = check(args(&[&admin, "--fail-on", "traffic"])).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("1 host(s) still sending traffic:"), "{out}");
    assert!(out.contains("api.example.com\tunknown\t1 requests"), "health checks are not traffic: {out}");

    let (code, out, _) = check(args(&[&admin, "--fail-on", "fix-green,add-green-route"])).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "ok: no host with action fix-green or add-green-route");

    // A report file, and a window.
    let dir = temp_dir("gate");
    let file = dir.join("report.json");
    let (_, body) = admin_get(proxy.admin, "/report?all=true").await;
    std::fs::write(&file, body).unwrap();
    let (code, out, _) = check(args(&[file.to_str().unwrap(), "--fail-on", "traffic", "--for", "24h"])).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("in the 24h before"), "{out}");

    let (code, _, err) = check(args(&["http://127.0.0.1:1", "--fail-on", "traffic"])).await;
    assert_eq!(code, Some(2), "an unreachable admin is an error, not an open gate: {err}");
    assert!(err.contains("http://127.0.0.1:1"), "{err}");
    let (code, _, err) = check(args(&[file.to_str().unwrap(), "--fail-on", "switch-dnss"])).await;
    assert_eq!(code, Some(2), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

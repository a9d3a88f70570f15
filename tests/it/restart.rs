//! A pod restarts mid-cutover: the ledger continues from `--report-file` (after a SIGTERM exactly,
//! after a SIGKILL from the last write), a broken file is set aside without keeping the proxy
//! down, and snapshots of one replica merge without double counting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

fn start(up: &Upstream, file: &Path, extra: &[&str]) -> ProxyProc {
    let url = up.url();
    let mut args = vec![
        "--upstream",
        url.as_str(),
        "--report-file",
        file.to_str().unwrap(),
        "--drain-delay",
        "0s",
        "--replica-id",
        "pod-a",
    ];
    args.extend_from_slice(extra);
    ProxyProc::start(&args)
}

async fn send(proxy: &ProxyProc, n: u32, offset: u32) {
    let mut c = H1Client::connect(proxy.addr).await;
    for i in offset..offset + n {
        assert_eq!(c.get(&format!("h{}.example.com", i % 2), &format!("/items/{}", i % 3)).await.status, 200);
    }
}

async fn full_report(proxy: &ProxyProc) -> serde_json::Value {
    let (status, body) = admin_get(proxy.admin, "/report?all=true").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn read(file: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn set_aside(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("report.json.broken-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_the_counts_continue_exactly() {
    let dir = temp_dir("restart-term");
    let file = dir.join("report.json");
    let up = Upstream::start().await;
    let mut first = start(&up, &file, &[]);
    send(&first, 50, 0).await;
    first.sigterm();
    assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0));
    let before = read(&file);
    assert_eq!(before["totals"]["requests"], 50);
    assert_eq!(before["replicas"][0]["id"], "pod-a");

    let second = start(&up, &file, &[]);
    let restored = second.wait_line(|v| v["event"] == "report_restored");
    assert_eq!((&restored["requests"], &restored["hosts"]), (&50.into(), &2.into()), "{restored}");
    send(&second, 5, 50).await;
    let r = full_report(&second).await;
    assert_eq!(r["totals"]["requests"], 55);
    assert_eq!(r["started_at"], before["started_at"], "the recording continues");
    for name in ["h0.example.com", "h1.example.com"] {
        let (was, now) = (host(&before, name), host(&r, name));
        assert_eq!(now["first_seen"], was["first_seen"], "{name}");
        let paths: u64 = now["paths"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).sum();
        assert_eq!(paths, now["requests"].as_u64().unwrap(), "{name}: paths add up");
        assert_eq!(now["top_clients"][0]["requests"], now["requests"], "{name}: one client, all its requests");
        let minutes: u64 =
            now["requests_per_minute"].as_array().unwrap().iter().map(|m| m["requests"].as_u64().unwrap()).sum();
        assert_eq!(minutes, now["requests"].as_u64().unwrap(), "{name}: the per-minute ring continues");
    }
    assert_eq!(host(&r, "h0.example.com")["requests"], 25 + 3);
    let lines = second.json_lines();
    assert!(
        !lines.iter().any(|v| v["event"] == "new_host" || v["event"] == "new_path"),
        "known hosts are not announced again"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_only_what_came_after_the_last_write_is_lost() {
    let dir = temp_dir("restart-kill");
    let file = dir.join("report.json");
    let up = Upstream::start().await;
    let mut first = start(&up, &file, &["--report-interval", "200ms"]);
    send(&first, 50, 0).await;
    // A write after the last request: a SIGKILL now loses nothing.
    first.wait_line(|v| v["event"] == "summary" && v["requests"] == 50);
    std::process::Command::new("kill").args(["-9", &first.child.id().to_string()]).status().unwrap();
    first.wait_exit(Duration::from_secs(5));

    let second = start(&up, &file, &["--report-interval", "200ms"]);
    second.wait_line(|v| v["event"] == "report_restored" && v["requests"] == 50);
    send(&second, 5, 50).await;
    assert_eq!(full_report(&second).await["totals"]["requests"], 55);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_foreign_file_is_set_aside_and_the_proxy_serves() {
    let up = Upstream::start().await;
    let good = {
        let dir = temp_dir("restart-good");
        let file = dir.join("report.json");
        let mut p = start(&up, &file, &[]);
        send(&p, 10, 0).await;
        p.sigterm();
        p.wait_exit(Duration::from_secs(20));
        std::fs::read_to_string(&file).unwrap()
    };
    let truncated = good[..good.len() / 2].to_owned();
    let foreign = good.replace("cutover-proxy/report/v2", "cutover-proxy/report/v9");
    for (name, text, why) in [("truncated", truncated, "report.json"), ("foreign", foreign, "v9")] {
        let dir = temp_dir(&format!("restart-{name}"));
        let file = dir.join("report.json");
        std::fs::write(&file, &text).unwrap();
        let mut p = start(&up, &file, &[]);
        let failed = p.wait_line(|v| v["event"] == "report_restore_failed");
        assert!(failed["error"].as_str().unwrap().contains(why), "{name}: {failed}");
        let aside = set_aside(&dir);
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        assert_eq!(failed["set_aside"], aside[0].to_str().unwrap(), "{name}");
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), text, "{name}: kept as it was");
        send(&p, 3, 0).await;
        p.sigterm();
        assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0), "{name}");
        assert_eq!(read(&file)["totals"]["requests"], 3, "{name}: counting started fresh");
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_one_replica_merge_without_double_counting() {
    let dir = temp_dir("restart-merge");
    let file = dir.join("report.json");
    let up = Upstream::start().await;
    let mut p = start(&up, &file, &["--report-interval", "200ms"]);
    send(&p, 3, 0).await;
    p.wait_line(|v| v["event"] == "summary" && v["requests"] == 3);
    let (s1, s2) = (dir.join("snapshot-1.json"), dir.join("snapshot-2.json"));
    std::fs::copy(&file, &s1).unwrap();
    send(&p, 4, 3).await;
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0));
    std::fs::copy(&file, &s2).unwrap();

    let (code, out, err) = run_binary(&["report", "merge", s1.to_str().unwrap(), s2.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(merged["totals"]["requests"], 7, "the newest snapshot, not both");
    assert_eq!(merged["replicas"].as_array().unwrap().len(), 1);
    assert!(err.contains("left out") && err.contains("snapshot-1.json") && err.contains("pod-a"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

//! `cutover-proxy demo --exit`: the README's first command works on a fresh machine, loopback only.

mod common;

#[test]
fn demo_prints_the_report_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("cutover-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = common::run_binary(&["demo", "--exit", "--out", dir.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("2200 requests to 6 hosts"), "{out}");
    for (host, action) in [
        ("shop.example.com", "add-green-route"),
        ("legacy.example.com", "add-green-route"),
        ("10.0.0.7", "fix-hardcoded"),
        ("api.example.com", "unknown"),
    ] {
        assert!(out.lines().any(|l| l.starts_with(host) && l.contains(action)), "{host} {action} in\n{out}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["totals"]["requests"], 2200);
    assert_eq!(report["totals"]["ignored_requests"], 100);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("## add-green-route"), "{md}");
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(access.lines().filter(|l| l.contains("\"status\":200")).count() >= 2300);
    std::fs::remove_dir_all(&dir).ok();
}

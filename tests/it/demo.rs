//! `cutover-proxy demo --exit`: the README's first command works on a fresh machine, loopback only.

#[test]
fn demo_prints_the_report_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("cutover-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = crate::common::run_binary(&["demo", "--exit", "--out", dir.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("2717 requests to 11 hosts"), "{out}");
    // Every action of the sample shows in the terminal table, with its DNS verdict.
    for (host, dns, action) in [
        ("10.0.0.7", "unknown", "fix-hardcoded"),
        ("k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com", "unknown", "fix-hardcoded"),
        ("shop.example.com", "blue", "add-green-route "),
        ("pay.example.com", "green", "add-green-route!"),
        ("api.example.com", "blue", "switch-dns"),
        ("legacy.example.com", "blue", "switch-dns"),
        ("a.tenant.example.com", "blue", "switch-dns"),
        ("www.example.com", "green", "wait-ttl"),
        ("reports.example.com", "green", "fix-clients"),
        ("partner.example.org", "unknown-target", "investigate-dns"),
        ("old.example.com", "unresolvable", "investigate-dns"),
    ] {
        let line =
            out.lines().find(|l| l.starts_with(&format!("{host} "))).unwrap_or_else(|| panic!("{host} in\n{out}"));
        assert!(line.contains(action) && line.contains(&format!(" {dns} ")), "{host}: {dns} {action} in {line}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["totals"]["requests"], 2717);
    assert_eq!(report["totals"]["ignored_requests"], 101);
    let stale = report["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "reports.example.com").unwrap();
    assert_eq!(stale["late_clients"][0]["user_agent"], "Java/1.8.0_292");
    assert_eq!(stale["late_clients"][0]["opened_before_move"], true);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("## add-green-route") && md.contains("## fix-clients"), "{md}");
    let batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("route53/ZDEMO0EXAMPLE.json")).unwrap()).unwrap();
    let names: std::collections::BTreeSet<&str> =
        batch["Changes"].as_array().unwrap().iter().map(|c| c["ResourceRecordSet"]["Name"].as_str().unwrap()).collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a.tenant.example.com.", "api.example.com.", "legacy.example.com."]
    );
    assert!(std::fs::read_to_string(dir.join("route53/externaldns-patch.sh"))
        .unwrap()
        .contains("annotate ingress public-api"));
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(access.lines().filter(|l| l.contains("\"status\":200")).count() >= 2800);
    assert!(access.contains("\"event\":\"dns_verdict\""), "DNS verdicts are logged as events");
    std::fs::remove_dir_all(&dir).ok();
}

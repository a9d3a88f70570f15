//! `cutover-proxy demo --exit`: the README's first command works on a fresh machine, loopback only.

#[test]
fn demo_prints_the_report_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("cutover-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = crate::common::run_binary(&["demo", "--exit", "--out", dir.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("2717 requests to 11 hosts"), "{out}");
    // Every action of the sample shows in the terminal table, with what green answered when
    // asked and the DNS verdict.
    for (host, asked, dns, action) in [
        ("10.0.0.7", "-", "unknown", "fix-hardcoded"),
        ("k8s-blue-edge-1a2b.ap-northeast-2.elb.amazonaws.com", "unrouted", "unknown", "fix-hardcoded"),
        ("shop.example.com", "unrouted", "blue", "add-green-route "),
        ("pay.example.com", "unrouted", "green", "add-green-route!"),
        ("legacy.example.com", "failing", "blue", "fix-green"),
        ("api.example.com", "served", "blue", "switch-dns"),
        ("a.tenant.example.com", "served", "blue", "switch-dns"),
        ("www.example.com", "served", "green", "wait-ttl"),
        ("reports.example.com", "served", "green", "fix-clients"),
        ("partner.example.org", "served", "unknown-target", "investigate-dns"),
        ("old.example.com", "served", "unresolvable", "investigate-dns"),
    ] {
        let line =
            out.lines().find(|l| l.starts_with(&format!("{host} "))).unwrap_or_else(|| panic!("{host} in\n{out}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cells[3], cells[4]), (asked, dns), "{host}: {line}");
        assert!(line.contains(action), "{host}: {action} in {line}");
    }
    assert!(out.contains("green has the route but fails it when asked: GET /soap/OrderService → 503"), "{out}");
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
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a.tenant.example.com.", "api.example.com."]);
    assert!(std::fs::read_to_string(dir.join("route53/externaldns-patch.sh"))
        .unwrap()
        .contains("annotate ingress public-api"));
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(access.lines().filter(|l| l.contains("\"status\":200")).count() >= 2800);
    assert!(access.contains("\"event\":\"dns_verdict\""), "DNS verdicts are logged as events");
    std::fs::remove_dir_all(&dir).ok();
}

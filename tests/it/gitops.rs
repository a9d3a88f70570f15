//! Green's routes from where GitOps keeps them (tests/fixtures/gitops: an ArgoCD app-of-apps
//! repository with Helm charts, values, a Kustomize base and overlay, and rendered manifests
//! holding the cutover's traps), from commands, and `routes check`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

fn gitops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitops")
}

async fn get(proxy: &ProxyProc, requests: &[(&str, &str)]) {
    let mut c = H1Client::connect(proxy.addr).await;
    for (host, path) in requests {
        assert_eq!(c.get(host, path).await.status, 200);
    }
    proxy.wait_access(requests.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_a_gitops_repository_skipping_charts_and_judging_by_version_and_class() {
    let up = Upstream::start().await;
    let repo = gitops();
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--green-routes",
        repo.to_str().unwrap(),
        "--green-kubernetes-version",
        "1.25",
        "--green-ingress-class",
        "alb",
    ]);
    // One event per chart, overlay and template, each naming what renders it.
    let events: Vec<_> = proxy.json_lines().into_iter().filter(|v| v["event"] == "routes_skipped").collect();
    let names: Vec<(&str, &str)> =
        events.iter().map(|e| (e["kind"].as_str().unwrap(), e["name"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [
            ("helm-chart", "kafka-consumer-template"),
            ("helm-chart", "server-template"),
            ("kustomize", "green"),
            ("go-template", "ingress.yaml")
        ],
        "{events:#?}"
    );
    let server = &events[1];
    let render: Vec<&str> = server["render"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let chart = repo.join("charts/server-template");
    let values = repo.join("values/pay.yaml");
    assert_eq!(render[0], format!("helm template pay {} -f {}", chart.display(), values.display()));
    assert_eq!(render[1], "argocd app manifests pay");
    assert!(render.contains(&"argocd app manifests orders"), "{render:?}");
    assert!(server["message"].as_str().unwrap().contains("render it with `helm template pay"), "{server}");
    let loaded = proxy.wait_line(|v| v["event"] == "routes_loaded");
    assert_eq!(
        (loaded["objects"].as_u64(), loaded["skipped"].as_u64(), loaded["not_serving"].as_u64()),
        (Some(2), Some(4), Some(2))
    );
    let not_serving: Vec<String> = proxy
        .json_lines()
        .into_iter()
        .filter(|v| v["event"] == "routes_not_serving")
        .map(|v| v["object"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(not_serving, ["ops/admin (Ingress)", "shop/orders (Ingress)"]);

    get(
        &proxy,
        &[("pay.example.com", "/v1/pay/8"), ("orders.example.com", "/v1/orders/9"), ("admin.example.com", "/users")],
    )
    .await;
    let report = report_json(&proxy).await;
    let pay = host(&report, "pay.example.com");
    assert_eq!(
        (pay["green"]["routed"].as_str(), pay["paths"][0]["matched_route"].as_str()),
        (Some("all"), Some("shop/pay (Ingress)"))
    );
    let orders = host(&report, "orders.example.com");
    assert_eq!(orders["action"], "add-green-route");
    let reason = orders["reason"].as_str().unwrap();
    assert!(
        reason.contains("Ingress shop/orders uses networking.k8s.io/v1beta1, removed in Kubernetes 1.22: it will not apply on green"),
        "{reason}"
    );
    assert!(orders["paths"][0]["unrouted_reason"].as_str().unwrap().contains("removed in Kubernetes 1.22"));
    let admin = host(&report, "admin.example.com");
    assert_eq!(admin["action"], "add-green-route");
    assert!(
        admin["reason"].as_str().unwrap().contains("has ingress class `nginx`; green's controllers watch alb"),
        "{admin}"
    );

    let green = &report["green"];
    assert_eq!(
        (green["loaded"].as_bool(), green["incomplete"].as_bool(), green["objects"].as_u64()),
        (Some(true), Some(true), Some(2))
    );
    assert_eq!(green["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(green["not_serving"].as_array().unwrap().len(), 2);
    wait_fresh_summary(proxy.admin).await;
    let (_, page) = admin_get(proxy.admin, "/").await;
    assert!(page.contains("Green's route table is incomplete: 4 skipped as not manifests yet"), "{page}");
    let (_, md) = admin_get(proxy.admin, "/report.md").await;
    assert!(md.contains("- skipped helm-chart `server-template`"), "{md}");
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    for line in ["cutover_routes_skipped 4", "cutover_routes_not_serving 2", "cutover_routes_objects 2"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cluster_flags_old_apis_and_other_classes_still_count_as_served() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--green-routes", gitops().to_str().unwrap()]);
    get(&proxy, &[("orders.example.com", "/v1/orders/9"), ("admin.example.com", "/")]).await;
    let report = report_json(&proxy).await;
    for h in ["orders.example.com", "admin.example.com"] {
        assert_eq!(host(&report, h)["green"]["routed"], "all", "{h}");
    }
}

/// A script that prints green's routes as `kubectl get … -o json` does: one host on its first
/// run, then fails, then prints two hosts.
fn routes_script(dir: &Path) -> PathBuf {
    let script = dir.join("routes.sh");
    let list = |hosts: &[&str]| {
        let items: Vec<String> = hosts
            .iter()
            .map(|h| {
                format!(
                    r#"{{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{{"name":"{h}","namespace":"live"}},"spec":{{"rules":[{{"host":"{h}","http":{{"paths":[{{"path":"/","pathType":"Prefix","backend":{{"service":{{"name":"x","port":{{"number":80}}}}}}}}]}}}}]}}}}"#
                )
            })
            .collect();
        format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","))
    };
    let text = format!(
        "#!/bin/sh\nn=$(cat '{state}' 2>/dev/null || echo 0)\necho $((n + 1)) > '{state}'\n\
         if [ \"$n\" = 0 ]; then echo '{one}'; exit 0; fi\n\
         if [ \"$n\" = 1 ]; then echo 'E1202 couldn'\"'\"'t get current server API group list' >&2; echo 'error: connection refused' >&2; exit 3; fi\n\
         echo '{two}'\n",
        state = dir.join("runs").display(),
        one = list(&["a.example.com"]),
        two = list(&["a.example.com", "b.example.com"]),
    );
    std::fs::write(&script, text).unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_command_that_fails_keeps_the_last_good_table_then_changes_it() {
    let dir = temp_dir("routes-cmd");
    let script = routes_script(&dir);
    let cmd = format!("sh {}", script.display());
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--green-routes-cmd",
        &cmd,
        "--green-routes-cmd",
        "sleep 30",
        "--green-routes-cmd-timeout",
        "1s",
        "--green-routes-refresh",
        "2s",
    ]);
    let loaded = proxy.wait_line(|v| v["event"] == "routes_cmd_loaded");
    assert_eq!((loaded["command"].as_str(), loaded["objects"].as_u64()), (Some(cmd.as_str()), Some(1)));
    let slow = proxy.wait_line(|v| v["event"] == "routes_cmd_failed" && v["command"] == "sleep 30");
    assert!(slow["error"].as_str().unwrap().starts_with("timed out after 1s"), "{slow}");
    get(&proxy, &[("a.example.com", "/"), ("b.example.com", "/")]).await;
    let report = report_json(&proxy).await;
    assert_eq!(host(&report, "a.example.com")["green"]["routed"], "all");
    assert_eq!(host(&report, "b.example.com")["green"]["routed"], "none");

    // The second run fails: the event names the command, its status and stderr; the table stays.
    let failed = proxy.wait_line(|v| v["event"] == "routes_cmd_failed" && v["command"] == cmd.as_str());
    assert_eq!(failed["exit_status"], 3, "{failed}");
    assert_eq!(failed["stderr"], "E1202 couldn't get current server API group list\nerror: connection refused");
    assert_eq!(failed["kept"], "last good table");
    let report = report_json(&proxy).await;
    assert_eq!(host(&report, "a.example.com")["green"]["routed"], "all", "the last good table is kept");
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    let series = format!("cutover_routes_cmd_failures_total{{command=\"{cmd}\"}} ");
    let n: u64 = metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(n >= 1, "{metrics}");

    // The third prints both hosts: the table changes, and b is judged again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = report_json(&proxy).await;
        if host(&report, "b.example.com")["green"]["routed"] == "all" {
            let cmds = report["green"]["commands"].as_array().unwrap().clone();
            assert_eq!(cmds[0]["objects"], 2);
            assert!(cmds[0]["error"].is_null(), "{cmds:?}");
            assert!(cmds[1]["error"].as_str().unwrap().starts_with("timed out"), "{cmds:?}");
            assert_eq!(report["green"]["incomplete"], true, "the slow command still fails");
            break;
        }
        assert!(Instant::now() < deadline, "the command's new table never arrived: {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn routes_check_lists_removed_apis_in_kubents_columns_and_the_table() {
    let repo = gitops();
    let (code, out, err) =
        run_binary(&["routes", "check", "--green-kubernetes-version", "1.25", repo.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("KIND ")).unwrap_or_else(|| panic!("{out}"));
    let columns: Vec<&str> = lines[header].split_whitespace().collect();
    assert_eq!(columns, ["KIND", "NAMESPACE", "NAME", "API_VERSION", "REPLACE_WITH", "SINCE", "FILE"]);
    let rows: Vec<Vec<&str>> =
        lines[header + 1..header + 4].iter().map(|l| l.split_whitespace().take(6).collect()).collect();
    assert!(
        rows.contains(&vec!["Ingress", "shop", "orders", "networking.k8s.io/v1beta1", "networking.k8s.io/v1", "1.22"]),
        "{out}"
    );
    assert!(rows.contains(&vec!["PodDisruptionBudget", "shop", "pay", "policy/v1beta1", "policy/v1", "1.25"]), "{out}");
    assert!(rows.contains(&vec!["CronJob", "shop", "settle", "batch/v1beta1", "batch/v1", "1.25"]), "{out}");
    assert!(lines[header + 4].is_empty(), "three objects, no more: {out}");
    // The table the proxy would use, host by host; the removed Ingress is not in it.
    assert!(
        out.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["pay.example.com", "/v1/pay", "shop/pay", "(Ingress)"]
        ),
        "{out}"
    );
    assert!(out.contains("shop/orders (Ingress)  Ingress shop/orders uses networking.k8s.io/v1beta1"), "{out}");
    assert!(out.contains("helm-chart   server-template"), "{out}");

    let (code, json, _) = run_binary(
        &["routes", "check", "--green-kubernetes-version", "1.25", "-o", "json", repo.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = v["removed_apis"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PodDisruptionBudget", "CronJob", "Ingress"]);
    assert_eq!(v["removed_apis"][2]["since"], "1.22");
    assert_eq!(v["kubernetes_version"], "1.25");
    assert!(v["hosts"].as_array().unwrap().iter().any(|h| h["host"] == "pay.example.com"), "{v}");

    // Before 1.22 nothing of it is removed yet.
    let (code, out, _) =
        run_binary(&["routes", "check", "--green-kubernetes-version", "1.21", repo.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("none found"), "{out}");
}

#[test]
fn routes_check_reads_rendered_manifests_from_standard_input() {
    use std::io::Write;
    let text = std::fs::read_to_string(gitops().join("rendered/orders.yaml")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover-proxy"))
        .args(["routes", "check", "--green-kubernetes-version", "1.29", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("orders  networking.k8s.io/v1beta1"), "{stdout}");
}

#[test]
fn a_broken_manifest_names_the_file_line_and_column() {
    let dir = temp_dir("broken-yaml");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n    namespace: y\n").unwrap();
    let (code, _, err) = run_binary(
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--green-routes",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:9:14: document 1: invalid YAML: mapping values are not allowed in this context",
            bad.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

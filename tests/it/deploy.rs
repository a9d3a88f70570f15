//! The deployment files agree with the binary: the Kubernetes manifests are parsed, cross-checked
//! (ports, probes, selectors, volumes, the shutdown budget), and the container's own arguments and
//! ConfigMaps start the real binary, whose probe endpoints then answer. The Dockerfile is checked
//! against the manifests (Docker itself is not available here).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of a YAML file.
fn docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn one(file: &str, kind: &str) -> Value {
    let all = docs(file);
    assert_eq!(all.len(), 1, "{file}");
    assert_eq!(all[0]["kind"], kind, "{file}");
    all.into_iter().next().unwrap()
}

/// `--name=value` from the container's args.
fn arg<'a>(args: &'a [String], name: &str) -> &'a str {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")))
        .unwrap_or_else(|| panic!("no --{name}= in {args:?}"))
}

fn seconds(d: &str) -> u64 {
    d.strip_suffix('s').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("`{d}` is not N s"))
}

#[test]
fn manifests_agree_with_each_other_and_with_the_flags() {
    let kustomization = one("kustomization.yaml", "Kustomization");
    let listed: Vec<&str> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(listed, ["configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"]);
    for file in &listed {
        assert!(!docs(file).is_empty(), "{file} is empty");
    }

    let deploy = one("deployment.yaml", "Deployment");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    let pod = &deploy["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deploy["spec"]["selector"]["matchLabels"], labels);
    let c = &pod["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    assert_eq!(args[0], "serve");

    // Ports: the flags' addresses, the named container ports, the Service, the scrape annotation.
    let port = |name: &str| -> u64 {
        c["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["containerPort"].as_u64().unwrap()
    };
    assert_eq!(arg(&args, "listen").rsplit_once(':').unwrap().1, port("http").to_string());
    assert_eq!(arg(&args, "admin-listen").rsplit_once(':').unwrap().1, port("admin").to_string());
    assert!(arg(&args, "admin-listen").starts_with("0.0.0.0:"), "probes and Prometheus reach the admin port");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/port"], port("admin").to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");

    let svc = one("service.yaml", "Service");
    assert_eq!(&svc["spec"]["selector"], labels);
    for p in svc["spec"]["ports"].as_array().unwrap() {
        let target = p["targetPort"].as_str().unwrap();
        assert!(target == "http" || target == "admin", "{p}");
    }
    let pdb = one("pdb.yaml", "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert!(deploy["spec"]["replicas"].as_u64().unwrap() > pdb["spec"]["maxUnavailable"].as_u64().unwrap());

    // The shutdown budget: preStop + drain delay + shutdown timeout fit in the grace period.
    let pre_stop: Vec<String> = serde_json::from_value(c["lifecycle"]["preStop"]["exec"]["command"].clone()).unwrap();
    assert_eq!(pre_stop[0], "sleep");
    let pre_stop: u64 = pre_stop[1].parse().unwrap();
    let drain = seconds(arg(&args, "drain-delay"));
    let shutdown = seconds(arg(&args, "shutdown-timeout"));
    let grace = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > pre_stop + drain + shutdown, "grace {grace} s ≤ {pre_stop} + {drain} + {shutdown}");
    assert!(pre_stop >= c["readinessProbe"]["periodSeconds"].as_u64().unwrap(), "readiness is seen failing first");

    // Non-root, read-only root file system: the report folder is a writable volume.
    let sc = &pod["spec"]["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_ne!(sc["runAsUser"], 0);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["resources"]["limits"]["memory"].is_string() && c["resources"]["requests"]["cpu"].is_string());
    let mounts = c["volumeMounts"].as_array().unwrap();
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let mount_of = |path: &str| -> &Value {
        mounts
            .iter()
            .filter(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
            .unwrap_or_else(|| panic!("{path} is not on a volume"))
    };
    let volume = |name: &Value| volumes.iter().find(|v| &v["name"] == name).unwrap().clone();
    assert!(volume(&mount_of(arg(&args, "report-file"))["name"])["emptyDir"].is_object());
    let configmaps: Vec<Value> = docs("configmap.yaml");
    let cm_name = |path: &str| volume(&mount_of(path)["name"])["configMap"]["name"].as_str().unwrap().to_owned();
    for path in [arg(&args, "config"), arg(&args, "green-routes")] {
        let name = cm_name(path);
        assert!(configmaps.iter().any(|cm| cm["metadata"]["name"] == name.as_str()), "no ConfigMap {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containers_arguments_and_configmaps_start_the_binary() {
    let deploy = one("deployment.yaml", "Deployment");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap().clone();
    let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_array().unwrap().clone();

    // Lay the ConfigMaps out as the kubelet would mount them, under a temporary root.
    let root = std::env::temp_dir().join(format!("cutover-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let configmaps = docs("configmap.yaml");
    for m in &mounts {
        let mount_path = m["mountPath"].as_str().unwrap();
        let target = root.join(mount_path.trim_start_matches('/'));
        let vol = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        if let Some(name) = vol["configMap"]["name"].as_str() {
            let cm = configmaps.iter().find(|cm| cm["metadata"]["name"] == name).unwrap();
            let data = cm["data"].as_object().unwrap();
            match m["subPath"].as_str() {
                Some(key) => {
                    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                    std::fs::write(&target, data[key].as_str().unwrap()).unwrap();
                }
                None => {
                    std::fs::create_dir_all(&target).unwrap();
                    for (key, text) in data {
                        std::fs::write(target.join(key), text.as_str().unwrap()).unwrap();
                    }
                }
            }
        } else {
            std::fs::create_dir_all(&target).unwrap();
        }
    }
    // The container's arguments, with mounted paths under the root, $(POD_NAME) expanded, and
    // loopback addresses instead of 0.0.0.0 (the fixture adds --listen/--admin-listen 127.0.0.1:0).
    let up = Upstream::start().await;
    let root_s = root.to_str().unwrap().to_owned();
    let mut run: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--listen=") && !a.starts_with("--admin-listen="))
        .map(|a| a.replace("=/", &format!("={root_s}/")).replace("$(POD_NAME)", "cutover-proxy-7d9f-abcde"))
        .collect();
    // The ConfigMap names blue's in-cluster ingress; here a local upstream stands in (flags beat the file).
    run.push(format!("--upstream={}", up.url()));
    let run_refs: Vec<&str> = run.iter().map(String::as_str).collect();
    let mut proxy = ProxyProc::start(&run_refs);
    proxy.wait_line(|v| v["event"] == "routes_loaded" && v["objects"] == 2);

    for probe in ["readinessProbe", "livenessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        let (status, body) = admin_get(proxy.admin, path).await;
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    let ann = &deploy["spec"]["template"]["metadata"]["annotations"];
    let (status, metrics) = admin_get(proxy.admin, ann["prometheus.io/path"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("cutover_ready 1"), "{metrics}");
    let mut client = H1Client::connect(proxy.addr).await;
    assert_eq!(client.get("shop.example.com", "/checkout").await.status, 200);

    // SIGTERM: readiness fails at once, the process exits 0 within the grace period, and this
    // replica's own report file is there.
    let grace =
        Duration::from_secs(deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap());
    drop(client);
    let started = Instant::now();
    proxy.sigterm();
    proxy.wait_line(|v| v["event"] == "draining");
    let (status, _) = admin_get(proxy.admin, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(proxy.wait_exit(grace), Some(0));
    assert!(started.elapsed() < grace);
    let report_file = root.join("var/lib/cutover/report-cutover-proxy-7d9f-abcde.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    let shop = report["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "shop.example.com").unwrap();
    assert_eq!(shop["green"]["missing_paths"], serde_json::json!(["/checkout"]), "the ConfigMap's routes were used");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_dockerfile_builds_a_small_non_root_image_matching_the_manifests() {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let froms: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains("rust:") && froms[0].contains(" AS build"));
    assert!(froms[1].contains("-slim") || froms[1].contains("distroless"), "small final image: {}", froms[1]);
    let final_stage = &dockerfile[dockerfile.rfind("\nFROM ").unwrap()..];
    let user = final_stage.lines().find_map(|l| l.strip_prefix("USER ")).expect("USER in the final stage");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "non-root: {user}");
    let deploy = one("deployment.yaml", "Deployment");
    let uid = deploy["spec"]["template"]["spec"]["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(user.starts_with(&uid.to_string()), "the image's user {user} is the pod's runAsUser {uid}");
    let exposed: Vec<u64> = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"].as_array().unwrap() {
        assert!(exposed.contains(&p["containerPort"].as_u64().unwrap()), "{p} not exposed");
    }
    assert!(final_stage.contains("ENTRYPOINT [\"/usr/local/bin/cutover-proxy\"]"));
    assert!(dockerfile.contains("--locked"), "the image builds what Cargo.lock pins");
    // What the build stage copies exists, and the build context leaves the rest out.
    for copied in ["Cargo.toml", "Cargo.lock", "src", "benches"] {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(copied).exists(), "{copied}");
    }
    let ignore = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"), "target/ stays out of the build context");
}

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
    assert_eq!(
        listed,
        ["namespace.yaml", "configmap.yaml", "deployment.yaml", "service.yaml", "service-peers.yaml", "pdb.yaml"]
    );
    assert_eq!(one("namespace.yaml", "Namespace")["metadata"]["name"], kustomization["namespace"]);
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
    // The fleet: --peers names the headless Service in the pod's namespace, on the admin port.
    let peers = one("service-peers.yaml", "Service");
    assert_eq!(peers["spec"]["clusterIP"], "None", "headless: one A record per pod");
    assert_eq!(&peers["spec"]["selector"], labels);
    assert_eq!(peers["spec"]["ports"][0]["targetPort"], "admin");
    let (peer_name, peer_port) = arg(&args, "peers").rsplit_once(':').unwrap();
    assert_eq!(peer_port, peers["spec"]["ports"][0]["port"].to_string());
    let namespace_of_pod = "$(POD_NAMESPACE)";
    assert_eq!(
        peer_name,
        format!("{}.{namespace_of_pod}.svc.cluster.local", peers["metadata"]["name"].as_str().unwrap())
    );
    let env = c["env"].as_array().unwrap();
    for (var, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let e = env.iter().find(|e| e["name"] == var).unwrap_or_else(|| panic!("{var} in {env:?}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], field);
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
    assert!(mounts.iter().all(|m| m.get("subPath").is_none()), "a subPath mount never sees ConfigMap updates");
}

/// `kubectl kustomize` renders the manifests as `kubectl apply -k` would apply them.
#[test]
fn kubectl_kustomize_renders_the_manifests_in_their_namespace() {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", deploy_dir().to_str().unwrap()])
        .output()
        .expect("kubectl is needed to render the manifests (.ci/run installs Debian's kubernetes-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let kinds: Vec<&str> = rendered.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for kind in ["Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    for o in rendered.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(o["metadata"]["namespace"], "cutover", "{o}");
    }
    let deploy = rendered.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let image = deploy["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert_eq!(image, "registry.example.com/platform/cutover-proxy:0.1.0");
    // The monitoring component is a Component of two Prometheus Operator objects.
    let component = one("monitoring/kustomization.yaml", "Component");
    let files: Vec<&str> = component["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(files, ["servicemonitor.yaml", "prometheusrule.yaml"]);
    let sm = one("monitoring/servicemonitor.yaml", "ServiceMonitor");
    let svc = one("service.yaml", "Service");
    assert_eq!(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]);
    assert!(svc["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == sm["spec"]["endpoints"][0]["port"]));
    let peers = one("service-peers.yaml", "Service");
    let selects = |labels: &Value| {
        sm["spec"]["selector"]["matchLabels"].as_object().unwrap().iter().all(|(k, v)| &labels[k] == v)
    };
    assert!(!selects(&peers["metadata"]["labels"]), "the headless Service is not scraped a second time");
    // As the README says to enable it: `components: [monitoring]` in the kustomization.
    let copy = temp_dir("kustomize");
    for entry in walk(&deploy_dir()) {
        let to = copy.join(entry.strip_prefix(deploy_dir()).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    let k = copy.join("kustomization.yaml");
    std::fs::write(&k, std::fs::read_to_string(&k).unwrap() + "components: [monitoring]\n").unwrap();
    let out = std::process::Command::new("kubectl").args(["kustomize", copy.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let with: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for kind in ["ServiceMonitor", "PrometheusRule"] {
            let o = with.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("{kind} rendered"));
            assert_eq!(o["metadata"]["namespace"], "cutover");
        }
    } else {
        // kubectl before 1.21 embeds a kustomize without components.
        assert!(err.to_lowercase().contains("component"), "{err}");
    }
    std::fs::remove_dir_all(&copy).ok();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The names in the alert rules and the Grafana dashboard are the binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_use_metric_names_the_binary_serves() {
    let certs = temp_dir("deploy-certs");
    crate::common::tls::generate(&certs, &["a.test"]);
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--tls-listen",
        "127.0.0.1:0",
        "--cert-dir",
        certs.to_str().unwrap(),
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    assert_eq!(c.get("a.test", "/").await.status, 200);
    proxy.wait_access(1);
    wait_fresh_summary(proxy.admin).await;
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    let served: std::collections::BTreeSet<&str> =
        metrics.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let rule = one("monitoring/prometheusrule.yaml", "PrometheusRule");
    let mut exprs: Vec<String> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy_dir().join("../grafana/cutover-proxy.json")).unwrap())
            .unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    let names = regex::Regex::new(r"\b(?:cutover|process)_[a-z_]+").unwrap();
    let mut checked = 0;
    for e in &exprs {
        for m in names.find_iter(e) {
            assert!(served.contains(m.as_str()), "`{}` (in `{e}`) is not served; served: {served:?}", m.as_str());
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} names checked");
    std::fs::remove_dir_all(&certs).ok();
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
        .map(|a| {
            a.replace("=/", &format!("={root_s}/"))
                .replace("$(POD_NAME)", "cutover-proxy-7d9f-abcde")
                .replace("$(POD_NAMESPACE)", "cutover")
        })
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

//! File-level tests against `tests/fixtures/routes/`: kubectl List JSON, multi-document YAML,
//! directory walking, broken files, and the table's merge/ranking behaviour.

use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/routes").join(name)
}

fn served_by(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.route(host, path).map(ToString::to_string)
}

#[test]
fn route_ref_display_and_json() {
    let r = RouteRef { namespace: "shop".into(), name: "edge".into(), kind: RouteKind::Ingress };
    assert_eq!(r.to_string(), "shop/edge (Ingress)");
    let r = RouteRef { namespace: "api".into(), name: "v2".into(), kind: RouteKind::HttpRoute };
    assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"namespace":"api","name":"v2","kind":"HTTPRoute"}"#);
    assert_eq!(RouteKind::VirtualService.to_string(), "VirtualService");
}

#[test]
fn kubectl_ingress_list_json() {
    let t = RouteTable::load(&[fixture("kubectl-ingress-list.json")]).unwrap();
    assert_eq!(t.objects(), 2);
    assert_eq!(served_by(&t, "shop.example.com", "/api/pay/42").as_deref(), Some("shop/edge (Ingress)"));
    assert_eq!(served_by(&t, "shop.example.com", "/robots.txt").as_deref(), Some("shop/edge (Ingress)"));
    assert_eq!(served_by(&t, "shop.example.com", "/robots.txt/"), None);
    assert_eq!(served_by(&t, "shop.example.com", "/api/payments"), None);
    assert_eq!(served_by(&t, "shop.example.com", "/"), None);
    assert_eq!(served_by(&t, "a.tenant.example.com", "/x").as_deref(), Some("tenant/tenants (Ingress)"));
    assert_eq!(served_by(&t, "a.b.tenant.example.com", "/x"), None);
    assert_eq!(t.implementation_specific(), 1);
    assert!(t.route_match("static.example.com", "/assets/app.js").unwrap().implementation_specific);
}

#[test]
fn multi_document_yaml_mixing_kinds() {
    let t = RouteTable::load(&[fixture("gitops-mixed.yaml")]).unwrap();
    // Service, Deployment, the empty document and the mesh-only VirtualService are skipped.
    assert_eq!(t.objects(), 3);
    assert_eq!(served_by(&t, "www.example.com", "/cart").as_deref(), Some("shop/shop-web (Ingress)"));
    assert_eq!(served_by(&t, "api.example.com", "/v2/users").as_deref(), Some("api/api (HTTPRoute)"));
    assert_eq!(served_by(&t, "eu.west.api.example.com", "/v2").as_deref(), Some("api/api (HTTPRoute)"));
    assert_eq!(served_by(&t, "api.example.com", "/v1/users/7").as_deref(), Some("api/api (HTTPRoute)"));
    assert_eq!(served_by(&t, "api.example.com", "/v1/users/7/orders"), None);
    assert_eq!(served_by(&t, "api.example.com", "/v20"), None);
    assert_eq!(
        served_by(&t, "reviews.example.com", "/reviews-all").as_deref(),
        Some("bookinfo/reviews (VirtualService)")
    );
    assert_eq!(served_by(&t, "reviews.example.com", "/healthz").as_deref(), Some("bookinfo/reviews (VirtualService)"));
    assert_eq!(served_by(&t, "reviews.example.com", "/other"), None);
    assert_eq!(served_by(&t, "reviews", "/reviews"), None);
    assert_eq!(served_by(&t, "ratings.example.com", "/"), None, "mesh-only VirtualService");
}

#[test]
fn directory_tree_recursive_skipping_hidden() {
    let t = RouteTable::load(&[fixture("tree")]).unwrap();
    assert_eq!(t.objects(), 3, "ingress.yaml, route.yml, vs.json; .hidden.yaml and .git/ skipped");
    assert_eq!(served_by(&t, "shop.example.com", "/").as_deref(), Some("shop/shop (Ingress)"));
    assert_eq!(served_by(&t, "api.example.com", "/v2/x").as_deref(), Some("api/api-v2 (HTTPRoute)"));
    assert_eq!(served_by(&t, "web.example.com", "/x").as_deref(), Some("istio-apps/web (VirtualService)"));
    assert_eq!(served_by(&t, "hidden.example.com", "/"), None);
}

#[test]
fn file_given_directly_is_read_whatever_its_name() {
    let dir = std::env::temp_dir().join(format!("routes-direct-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.txt");
    std::fs::write(&file, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: t}\nspec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n").unwrap();
    let direct = RouteTable::load(std::slice::from_ref(&file)).unwrap();
    let walked = RouteTable::load(std::slice::from_ref(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(served_by(&direct, "x.example", "/").as_deref(), Some("default/t (Ingress)"));
    assert!(walked.objects() == 0, "in a directory only .yaml/.yml/.json are read");
}

#[test]
fn load_merges_in_order_and_missing_path_is_an_error() {
    let t = RouteTable::load(&[fixture("tree"), fixture("gitops-mixed.yaml")]).unwrap();
    assert_eq!(t.objects(), 6);
    // Both define api.example.com PathPrefix /v2: a tie, so the first loaded (tree) wins.
    assert_eq!(served_by(&t, "api.example.com", "/v2").as_deref(), Some("api/api-v2 (HTTPRoute)"));
    let err = RouteTable::load(&[fixture("no-such-file.yaml")]).unwrap_err();
    assert!(err.to_string().contains("no-such-file.yaml: document 0: cannot read"), "{err}");
}

fn load_error(name: &str) -> RouteError {
    RouteTable::load(&[fixture(name)]).unwrap_err()
}

#[test]
fn broken_yaml_syntax_names_document_and_line() {
    let err = load_error("broken/bad-syntax.yaml");
    assert_eq!(err.document, 1);
    assert_eq!(err.field, "");
    assert!(err.reason.starts_with("invalid YAML: unclosed bracket"), "{}", err.reason);
    assert!(err.line.is_some() && err.column.is_some(), "{err:?}");
    let msg = err.to_string();
    let at = format!("broken/bad-syntax.yaml:{}:{}: document 1: invalid YAML:", err.line.unwrap(), err.column.unwrap());
    assert!(msg.contains(&at), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn broken_path_type() {
    let err = load_error("broken/bad-pathtype.yaml");
    let msg = err.to_string();
    assert!(
        msg.contains("bad-pathtype.yaml:1: document 0: spec.rules[0].http.paths[1].pathType: unknown pathType \"Foo\""),
        "{msg}"
    );
    assert!(msg.contains("(in Ingress edge)"), "{msg}");
}

#[test]
fn broken_rules_not_a_list() {
    let err = load_error("broken/rules-string.yaml");
    assert_eq!((err.document, err.field.as_str()), (1, "spec.rules"));
    assert!(
        err.to_string().contains("rules-string.yaml:6: document 1: spec.rules: expected a list, found a string"),
        "{err}"
    );
}

#[test]
fn broken_regex() {
    let err = load_error("broken/bad-regex.yaml");
    let msg = err.to_string();
    assert!(msg.contains("bad-regex.yaml:1: document 0: spec.rules[0].matches[0].path.value: invalid regex"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn list_item_index_is_the_document() {
    let json = r#"{"kind": "List", "items": [
        {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "a"}},
        {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "b"},
         "spec": {"rules": [{"host": "b.example", "http": {"paths": [{"path": "/", "pathType": "Sideways"}]}}]}}]}"#;
    let err = RouteTable::parse_text(Path::new("list.json"), json).unwrap_err();
    assert_eq!((err.document, err.field.as_str()), (1, "spec.rules[0].http.paths[0].pathType"));
    let err = RouteTable::parse_text(Path::new("bad.json"), "{\"kind\": \"List\",\n \"items\": [,]}").unwrap_err();
    assert!(err.to_string().starts_with("bad.json:2:12: document 0: invalid JSON: expected value"), "{err}");
}

#[test]
fn odd_documents_are_skipped() {
    let text =
        "# only a comment\n---\n---\njust a string\n---\n- 1\n- 2\n---\nmetadata: {name: no-kind}\n---\nkind: 7\n";
    assert!(RouteTable::parse_text(Path::new("odd.yaml"), text).unwrap().objects() == 0);
    assert!(RouteTable::parse_text(Path::new("empty.yaml"), "").unwrap().objects() == 0);
    // A YAML flow mapping looks like JSON at first sight; it is read as YAML.
    let flow = "{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: f}, spec: {defaultBackend: {service: {name: w}}}}";
    assert_eq!(RouteTable::parse_text(Path::new("flow.yaml"), flow).unwrap().objects(), 1);
    // Anchors and merge keys, and a JSON array of objects.
    let merged = "x: &base {apiVersion: networking.k8s.io/v1, kind: Ingress}\n---\n<<: {apiVersion: networking.k8s.io/v1, kind: Ingress}\nmetadata: {name: m, namespace: n}\nspec: {rules: [{host: m.example, http: {paths: [{path: /, pathType: Prefix}]}}]}\n";
    let t = RouteTable::parse_text(Path::new("merge.yaml"), merged).unwrap();
    assert_eq!(served_by(&t, "m.example", "/").as_deref(), Some("n/m (Ingress)"));
    let array = r#"[{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "a"}}]"#;
    assert_eq!(RouteTable::parse_text(Path::new("a.json"), array).unwrap().objects(), 1);
}

#[test]
fn merge_keeps_order_and_specificity_across_kinds() {
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing, namespace: a}\nspec:\n  rules:\n  - http:\n      paths: [{path: /api, pathType: Prefix}]\n";
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hr, namespace: b}\nspec:\n  hostnames: [\"*.example.com\"]\n  rules:\n  - matches: [{path: {value: /}}]\n";
    let vs = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: vs, namespace: c}\nspec:\n  hosts: [x.example.com]\n  gateways: [public]\n  http:\n  - match: [{uri: {regex: \"/api/.*\"}}]\n";
    let mut t = RouteTable::empty();
    assert!(t.objects() == 0);
    for text in [ingress, route, vs] {
        t.merge(RouteTable::parse_text(Path::new("t.yaml"), text).unwrap());
    }
    assert_eq!(t.objects(), 3);
    assert_eq!(served_by(&t, "x.example.com", "/api/1").as_deref(), Some("c/vs (VirtualService)"), "exact host first");
    assert_eq!(served_by(&t, "x.example.com", "/web").as_deref(), Some("b/hr (HTTPRoute)"), "then wildcard");
    assert_eq!(served_by(&t, "y.example.com", "/api/1").as_deref(), Some("b/hr (HTTPRoute)"));
    assert_eq!(served_by(&t, "other.test", "/api/1").as_deref(), Some("a/ing (Ingress)"), "then no host");
    assert_eq!(served_by(&t, "other.test", "/web"), None);
}

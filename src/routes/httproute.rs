//! Gateway API `HTTPRoute` (`gateway.networking.k8s.io` v1, v1beta1, v1alpha2: the fields read here
//! are the same in all three). Only hostnames and path matches are read; headers, query and method
//! conditions are ignored, so a route is counted as serving the path whatever they say.

use serde_json::{Map, Value};

use super::cluster::{Attachment, GatewayRef};
use super::matching::{HostPattern, PathPattern};
use super::walk::{
    as_object, as_str, child, field_error, item, object_ref, opt_array, opt_object, opt_str, FieldResult,
};
use super::{Parsed, RouteKind, Rule};

/// Parses one HTTPRoute; `None` when its apiVersion is not one we read.
pub(crate) fn parse(obj: &Map<String, Value>, api_version: &str) -> FieldResult<Option<Parsed>> {
    match api_version {
        "gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1" | "gateway.networking.k8s.io/v1alpha2" => {
        }
        _ => return Ok(None),
    }
    let route = object_ref(obj, RouteKind::HttpRoute)?;
    let empty = Map::new();
    let spec = opt_object(obj, "spec", "")?.unwrap_or(&empty);

    let mut hosts = Vec::new();
    for (i, h) in opt_array(spec, "hostnames", "spec")?.unwrap_or_default().iter().enumerate() {
        let field = item("spec.hostnames", i);
        hosts.push(HostPattern::parse(as_str(h, &field)?, false).map_err(|r| field_error(&field, r))?);
    }
    if hosts.is_empty() {
        // No hostnames: every host the parent Gateway accepts.
        hosts.push(HostPattern::Any);
    }

    let mut paths = Vec::new();
    let rules = opt_array(spec, "rules", "spec")?;
    for (i, rule) in rules.unwrap_or_default().iter().enumerate() {
        let field = item("spec.rules", i);
        let rule = as_object(rule, &field)?;
        let matches = opt_array(rule, "matches", &field)?.unwrap_or_default();
        for (j, m) in matches.iter().enumerate() {
            let field = item(&child(&field, "matches"), j);
            paths.push(parse_match(as_object(m, &field)?, &field)?);
        }
        if matches.is_empty() {
            // A rule without matches is PathPrefix `/`.
            paths.push(PathPattern::element_prefix("/"));
        }
    }
    if rules.is_none_or(<[Value]>::is_empty) {
        // The API defaults `rules` to one rule matching PathPrefix `/`.
        paths.push(PathPattern::element_prefix("/"));
    }

    let mut out = Vec::with_capacity(hosts.len() * paths.len());
    for host in &hosts {
        for path in &paths {
            out.push(Rule { host: host.clone(), path: path.clone(), implementation_specific: false });
        }
    }
    let parents = parent_gateways(spec, &route.namespace)?;
    Ok(Some(Parsed {
        route,
        rules: out,
        api_version: api_version.to_owned(),
        attachment: Attachment::Gateways(parents),
    }))
}

/// `spec.parentRefs` that are Gateways (the default kind), namespaces defaulted to the route's.
fn parent_gateways(spec: &Map<String, Value>, namespace: &str) -> FieldResult<Vec<GatewayRef>> {
    let mut out = Vec::new();
    for (i, p) in opt_array(spec, "parentRefs", "spec")?.unwrap_or_default().iter().enumerate() {
        let field = item("spec.parentRefs", i);
        let p = as_object(p, &field)?;
        if opt_str(p, "kind", &field)?.is_some_and(|k| k != "Gateway") {
            continue;
        }
        let name = opt_str(p, "name", &field)?.ok_or_else(|| field_error(&child(&field, "name"), "missing"))?;
        let ns = opt_str(p, "namespace", &field)?.unwrap_or(namespace);
        out.push(GatewayRef { namespace: ns.to_owned(), name: name.to_owned() });
    }
    Ok(out)
}

/// One `matches[]` entry → its path matcher (type defaults to PathPrefix, value to `/`).
fn parse_match(m: &Map<String, Value>, field: &str) -> FieldResult<PathPattern> {
    let Some(path) = opt_object(m, "path", field)? else {
        return Ok(PathPattern::element_prefix("/"));
    };
    let field = child(field, "path");
    let kind = opt_str(path, "type", &field)?.unwrap_or("PathPrefix");
    let value = opt_str(path, "value", &field)?.unwrap_or("/");
    let value_field = child(&field, "value");
    match kind {
        "Exact" | "PathPrefix" if !value.starts_with('/') => {
            Err(field_error(&value_field, format!("{value:?} is not an absolute path (must start with `/`)")))
        }
        "Exact" => Ok(PathPattern::Exact { path: value.to_string(), ignore_case: false }),
        "PathPrefix" => Ok(PathPattern::element_prefix(value)),
        "RegularExpression" => PathPattern::full_regex(value).map_err(|r| field_error(&value_field, r)),
        other => Err(field_error(
            &child(&field, "type"),
            format!("unknown path match type {other:?} (expected Exact, PathPrefix or RegularExpression)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::{RouteKind, RouteTable};
    use std::path::Path;

    fn route(name: &str, spec: &str) -> RouteTable {
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: web}}\nspec:\n  parentRefs: [{{name: public-gw, namespace: infra}}]\n{spec}\n"
        );
        RouteTable::parse_text(Path::new("route.yaml"), &text).unwrap()
    }

    fn served_by(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.route(host, path).map(|r| r.name.clone())
    }

    /// Gateway API docs: PathPrefix `/abc` matches `/abc`, `/abc/`, `/abc/def`, not `/abcd`.
    #[test]
    fn path_prefix_is_element_wise() {
        let t = route(
            "r",
            "  hostnames: [a.example.com]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /abc}}]",
        );
        for (path, want) in [("/abc", true), ("/abc/", true), ("/abc/def", true), ("/abcd", false), ("/", false)] {
            assert_eq!(t.route("a.example.com", path).is_some(), want, "{path}");
        }
        assert_eq!(t.route("a.example.com", "/abc").map(|r| r.kind), Some(RouteKind::HttpRoute));
    }

    #[test]
    fn hostname_wildcard_matches_several_labels() {
        let t = route("r", "  hostnames: [\"*.example.com\"]\n  rules:\n  - backendRefs: [{name: web, port: 80}]");
        assert!(t.route("foo.example.com", "/").is_some());
        assert!(t.route("foo.bar.example.com", "/x").is_some(), "Gateway wildcards match one or more labels");
        assert!(t.route("example.com", "/").is_none());
    }

    #[test]
    fn defaults_rule_without_matches_and_no_hostnames() {
        let t = route("all", "  rules:\n  - backendRefs: [{name: web, port: 80}]");
        assert_eq!(served_by(&t, "any.host.test", "/deep/path").as_deref(), Some("all"));
        let t = route("norules", "  hostnames: [x.example.com]");
        assert_eq!(served_by(&t, "x.example.com", "/y").as_deref(), Some("norules"));
        let t = route(
            "nopath",
            "  hostnames: [x.example.com]\n  rules:\n  - matches: [{method: GET}, {path: {value: /only}}]",
        );
        assert_eq!(
            served_by(&t, "x.example.com", "/anything").as_deref(),
            Some("nopath"),
            "a match without path is PathPrefix /"
        );
    }

    #[test]
    fn exact_and_regular_expression() {
        let spec = "  hostnames: [x.example.com]\n  rules:\n  - matches:\n    - path: {type: Exact, value: /login}\n    - path: {type: RegularExpression, value: \"/users/[0-9]+\"}";
        let t = route("r", spec);
        assert!(t.route("x.example.com", "/login").is_some());
        assert!(t.route("x.example.com", "/login/").is_none());
        assert!(t.route("x.example.com", "/users/42").is_some());
        assert!(t.route("x.example.com", "/users/42/edit").is_none(), "regex is a full match");
        assert!(t.route("x.example.com", "/api/users/42").is_none());
    }

    #[test]
    fn more_specific_path_wins_across_objects() {
        let mut t = route("regex", "  hostnames: [x.example.com]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/api/.*\"}}]");
        t.merge(route("short", "  hostnames: [x.example.com]\n  rules:\n  - matches: [{path: {value: /api}}]"));
        t.merge(route("long", "  hostnames: [x.example.com]\n  rules:\n  - matches: [{path: {value: /api/v2}}]"));
        t.merge(route(
            "exact",
            "  hostnames: [x.example.com]\n  rules:\n  - matches: [{path: {type: Exact, value: /api/v2/ping}}]",
        ));
        assert_eq!(served_by(&t, "x.example.com", "/api/v2/ping").as_deref(), Some("exact"));
        assert_eq!(served_by(&t, "x.example.com", "/api/v2/pong").as_deref(), Some("long"));
        assert_eq!(served_by(&t, "x.example.com", "/api/v1").as_deref(), Some("short"));
        assert_eq!(t.objects(), 4);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let text = |spec: &str| {
            format!("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata: {{name: bad}}\nspec:\n{spec}\n")
        };
        let cases = [
            (
                "  rules:\n  - matches: [{path: {type: Foo, value: /}}]",
                "spec.rules[0].matches[0].path.type",
                "unknown path match type",
            ),
            (
                "  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/a(\"}}]",
                "spec.rules[0].matches[0].path.value",
                "invalid regex",
            ),
            (
                "  rules:\n  - matches: [{path: {type: PathPrefix, value: api}}]",
                "spec.rules[0].matches[0].path.value",
                "not an absolute path",
            ),
            ("  hostnames: a.example.com", "spec.hostnames", "expected a list"),
            ("  rules: {matches: []}", "spec.rules", "expected a list, found a mapping"),
        ];
        for (spec, field, reason) in cases {
            let err = RouteTable::parse_text(Path::new("r.yaml"), &text(spec)).unwrap_err();
            assert_eq!(err.field, field, "{spec}");
            assert!(err.reason.contains(reason), "{} should contain {reason}", err.reason);
        }
    }
}

//! Kubernetes `Ingress`: `networking.k8s.io/v1`, and the older `networking.k8s.io/v1beta1` /
//! `extensions/v1beta1` (same rules; `pathType` optional and defaulting to `ImplementationSpecific`,
//! `spec.backend` instead of `spec.defaultBackend`). Other apiVersions are skipped.

use serde_json::{Map, Value};

use super::cluster::Attachment;
use super::matching::{HostPattern, PathPattern};
use super::walk::{
    as_object, as_str, child, field_error, item, object_ref, opt_array, opt_object, opt_str, FieldResult,
};
use super::{Parsed, RouteKind, Rule};

/// Parses one Ingress object; `None` when its apiVersion is not one we read.
pub(crate) fn parse(obj: &Map<String, Value>, api_version: &str) -> FieldResult<Option<Parsed>> {
    let v1 = match api_version {
        "networking.k8s.io/v1" => true,
        "networking.k8s.io/v1beta1" | "extensions/v1beta1" => false,
        _ => return Ok(None),
    };
    let route = object_ref(obj, RouteKind::Ingress)?;
    let mut rules = Vec::new();
    let spec = opt_object(obj, "spec", "")?;
    // `spec.ingressClassName` wins over the annotation it replaced, as controllers read them.
    let class = spec
        .and_then(|s| s.get("ingressClassName"))
        .or_else(|| obj.get("metadata")?.get("annotations")?.get("kubernetes.io/ingress.class"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let done = |route, rules| {
        let attachment = Attachment::IngressClass(class.clone());
        Ok(Some(Parsed { route, rules, api_version: api_version.to_owned(), attachment }))
    };
    let Some(spec) = spec else {
        return done(route, rules);
    };
    let default_key = if v1 { "defaultBackend" } else { "backend" };
    if opt_object(spec, default_key, "spec")?.is_some() {
        rules.push(Rule { host: HostPattern::Any, path: PathPattern::Fallback, implementation_specific: false });
    }
    for (i, rule) in opt_array(spec, "rules", "spec")?.unwrap_or_default().iter().enumerate() {
        let field = item("spec.rules", i);
        let rule = as_object(rule, &field)?;
        let host = match opt_str(rule, "host", &field)? {
            Some(h) => HostPattern::parse(h, true).map_err(|r| field_error(&child(&field, "host"), r))?,
            None => HostPattern::Any,
        };
        // A rule with a host but no `http` serves no paths.
        let Some(http) = opt_object(rule, "http", &field)? else { continue };
        let http_field = child(&field, "http");
        for (j, path) in opt_array(http, "paths", &http_field)?.unwrap_or_default().iter().enumerate() {
            let field = item(&child(&http_field, "paths"), j);
            let (path, implementation_specific) = parse_path(as_object(path, &field)?, &field, v1)?;
            rules.push(Rule { host: host.clone(), path, implementation_specific });
        }
    }
    done(route, rules)
}

/// One `http.paths[]` entry → its matcher, and whether it was `ImplementationSpecific` (read as Prefix).
fn parse_path(path: &Map<String, Value>, field: &str, v1: bool) -> FieldResult<(PathPattern, bool)> {
    let path_type = match path.get("pathType").filter(|v| !v.is_null()) {
        Some(t) => as_str(t, &child(field, "pathType"))?,
        None if v1 => return Err(field_error(&child(field, "pathType"), "missing (required in networking.k8s.io/v1)")),
        None => "ImplementationSpecific",
    };
    let value = opt_str(path, "path", field)?.unwrap_or("");
    let path_field = child(field, "path");
    match path_type {
        "Exact" | "Prefix" if !value.starts_with('/') => {
            Err(field_error(&path_field, format!("{value:?} is not an absolute path (must start with `/`)")))
        }
        "Exact" => Ok((PathPattern::Exact { path: value.to_string(), ignore_case: false }, false)),
        "Prefix" => Ok((PathPattern::element_prefix(value), false)),
        "ImplementationSpecific" if !value.is_empty() && !value.starts_with('/') => {
            Err(field_error(&path_field, format!("{value:?} is not an absolute path (must start with `/`)")))
        }
        "ImplementationSpecific" => Ok((PathPattern::element_prefix(value), true)),
        other => Err(field_error(
            &child(field, "pathType"),
            format!("unknown pathType {other:?} (expected Exact, Prefix or ImplementationSpecific)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::RouteTable;
    use std::path::Path;

    fn table(yaml: &str) -> RouteTable {
        RouteTable::parse_text(Path::new("test.yaml"), yaml).unwrap()
    }

    fn ingress(name: &str, rules: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{rules}\n"
        )
    }

    fn paths(host: &str, list: &[(&str, &str)]) -> String {
        let mut s = format!("  rules:\n  - host: {host}\n    http:\n      paths:\n");
        for (t, p) in list {
            s.push_str(&format!(
                "      - {{path: {p:?}, pathType: {t}, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
            ));
        }
        s
    }

    fn served_by(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.route(host, path).map(|r| r.name.clone())
    }

    /// Kubernetes Ingress docs, "Examples" table, including the multi-rule rows: every rule is its own
    /// Ingress so the answer names the rule that wins.
    #[test]
    fn docs_examples_table() {
        // (rules as (pathType, path), request path, index of the rule that should serve it)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<usize>);
        let cases: &[Case] = &[
            (&[("Prefix", "/")], "/", Some(0)),
            (&[("Exact", "/foo")], "/foo", Some(0)),
            (&[("Exact", "/foo")], "/bar", None),
            (&[("Exact", "/foo")], "/foo/", None),
            (&[("Exact", "/foo/")], "/foo", None),
            (&[("Prefix", "/foo")], "/foo", Some(0)),
            (&[("Prefix", "/foo")], "/foo/", Some(0)),
            (&[("Prefix", "/foo/")], "/foo", Some(0)),
            (&[("Prefix", "/foo/")], "/foo/", Some(0)),
            (&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
            (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
            (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
            (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
            (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
            (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
            (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
            (&[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(2)),
            (&[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/ccc", Some(0)),
            (&[("Prefix", "/aaa")], "/ccc", None),
            (&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
            (&[("Exact", "/foo"), ("Prefix", "/foo")], "/foo", Some(0)),
        ];
        for (rules, request, want) in cases {
            let mut t = RouteTable::empty();
            for (i, rule) in rules.iter().enumerate() {
                t.merge(table(&ingress(&format!("r{i}"), &paths("foo.com", &[*rule]))));
            }
            assert_eq!(served_by(&t, "foo.com", request), want.map(|i| format!("r{i}")), "{rules:?} vs {request}");
        }
    }

    #[test]
    fn host_wildcards_and_catch_all() {
        let mut t = table(&ingress("wild", &paths("\"*.foo.com\"", &[("Prefix", "/")])));
        t.merge(table(&ingress("exact", &paths("bar.foo.com", &[("Prefix", "/")]))));
        assert_eq!(served_by(&t, "bar.foo.com", "/x").as_deref(), Some("exact"), "exact host beats wildcard");
        assert_eq!(served_by(&t, "qux.foo.com", "/x").as_deref(), Some("wild"));
        assert_eq!(served_by(&t, "baz.bar.foo.com", "/x"), None, "Ingress wildcard is one label");
        assert_eq!(served_by(&t, "foo.com", "/x"), None);
        let no_host = "  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n";
        t.merge(table(&ingress("any", no_host)));
        assert_eq!(served_by(&t, "foo.com", "/x").as_deref(), Some("any"));
        assert_eq!(served_by(&t, "qux.foo.com", "/x").as_deref(), Some("wild"), "wildcard beats catch-all");
    }

    #[test]
    fn default_backend_catches_everything_but_ranks_last() {
        let spec = "  defaultBackend: {service: {name: web, port: {number: 80}}}";
        let mut t = table(&ingress("default", spec));
        assert_eq!(served_by(&t, "anything.example", "/any/path").as_deref(), Some("default"));
        t.merge(table(&ingress("specific", &paths("a.example", &[("Prefix", "/api")]))));
        assert_eq!(served_by(&t, "a.example", "/api/x").as_deref(), Some("specific"));
        assert_eq!(served_by(&t, "a.example", "/other").as_deref(), Some("default"));
    }

    #[test]
    fn host_without_http_serves_nothing() {
        let t = table(&ingress("bare", "  rules:\n  - host: bare.example\n"));
        assert_eq!(t.objects(), 1);
        assert_eq!(served_by(&t, "bare.example", "/"), None);
    }

    #[test]
    fn implementation_specific_is_prefix_and_counted() {
        let t = table(&ingress("impl", &paths("i.example", &[("ImplementationSpecific", "/app")])));
        assert_eq!(t.implementation_specific(), 1);
        let m = t.route_match("i.example", "/app/x").unwrap();
        assert!(m.implementation_specific);
        assert_eq!(served_by(&t, "i.example", "/apps"), None);
    }

    #[test]
    fn v1beta1_is_read_and_other_versions_skipped() {
        let beta = "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old, namespace: legacy}\nspec:\n  backend: {serviceName: web, servicePort: 80}\n  rules:\n  - host: old.example\n    http:\n      paths:\n      - path: /api\n        backend: {serviceName: api, servicePort: 80}\n";
        let t = table(beta);
        assert_eq!(t.objects(), 1);
        assert_eq!(t.implementation_specific(), 1);
        assert_eq!(t.route_match("old.example", "/api/v1").map(|m| m.implementation_specific), Some(true));
        assert_eq!(t.route_match("other.example", "/").map(|m| m.implementation_specific), Some(false));
        let t = table("apiVersion: example.com/v9\nkind: Ingress\nmetadata: {name: x}\nspec: {rules: 5}\n");
        assert_eq!(t.objects(), 0);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let cases = [
            (paths("a.example", &[("Foo", "/")]), "spec.rules[0].http.paths[0].pathType", "unknown pathType \"Foo\""),
            (paths("a.example", &[("Exact", "foo")]), "spec.rules[0].http.paths[0].path", "not an absolute path"),
            ("  rules: nope".to_string(), "spec.rules", "expected a list, found a string"),
            ("  rules:\n  - host: 5\n".to_string(), "spec.rules[0].host", "expected a string, found a number"),
            (
                "  rules:\n  - host: a.example\n    http: {paths: [{path: /}]}\n".to_string(),
                "spec.rules[0].http.paths[0].pathType",
                "missing",
            ),
            ("  rules:\n  - host: a.*.example\n".to_string(), "spec.rules[0].host", "invalid host"),
        ];
        for (spec, field, reason) in cases {
            let err = RouteTable::parse_text(Path::new("x.yaml"), &ingress("bad", &spec)).unwrap_err();
            assert_eq!(err.field, field, "{spec}");
            assert!(err.reason.contains(reason), "{} should contain {reason}", err.reason);
        }
    }
}

//! Istio `VirtualService` (`networking.istio.io` v1, v1beta1, v1alpha3).
//!
//! Only routes bound to a gateway are public. Istio reads an absent or empty `spec.gateways` as
//! `[mesh]` (sidecars only), so such a VirtualService is skipped like one that lists only `mesh`.
//! Hosts without a dot are short service names, not public hosts; a VirtualService left with no
//! public host is skipped too. Only `uri` conditions are read (headers, ports etc. are ignored).

use serde_json::{Map, Value};

use super::cluster::{Attachment, GatewayRef};
use super::matching::{HostPattern, PathPattern};
use super::walk::{
    as_object, as_str, child, field_error, item, object_ref, opt_array, opt_bool, opt_object, FieldResult,
};
use super::{Parsed, RouteKind, Rule};

/// Parses one VirtualService; `None` when it is mesh-internal, has no public host, or its apiVersion
/// is not one we read.
pub(crate) fn parse(obj: &Map<String, Value>, api_version: &str) -> FieldResult<Option<Parsed>> {
    match api_version {
        "networking.istio.io/v1" | "networking.istio.io/v1beta1" | "networking.istio.io/v1alpha3" => {}
        _ => return Ok(None),
    }
    let route = object_ref(obj, RouteKind::VirtualService)?;
    let empty = Map::new();
    let spec = opt_object(obj, "spec", "")?.unwrap_or(&empty);

    // `ns/name`, or `name` in the VirtualService's namespace; `mesh` is the sidecars, not a gateway.
    let mut gateways = Vec::new();
    for (i, g) in opt_array(spec, "gateways", "spec")?.unwrap_or_default().iter().enumerate() {
        let g = as_str(g, &item("spec.gateways", i))?.trim();
        if g != "mesh" {
            let (ns, name) = g.split_once('/').unwrap_or((&route.namespace, g));
            gateways.push(GatewayRef { namespace: ns.to_owned(), name: name.to_owned() });
        }
    }
    let public_gateway = !gateways.is_empty();

    let mut hosts = Vec::new();
    for (i, h) in opt_array(spec, "hosts", "spec")?.unwrap_or_default().iter().enumerate() {
        let field = item("spec.hosts", i);
        let host = as_str(h, &field)?.trim();
        if host == "*" {
            hosts.push(HostPattern::Any);
        } else if host.contains('.') {
            hosts.push(HostPattern::parse(host, false).map_err(|r| field_error(&field, r))?);
        }
        // else: a short service name (`reviews`), reachable only inside the mesh.
    }

    let mut paths = Vec::new();
    for (i, entry) in opt_array(spec, "http", "spec")?.unwrap_or_default().iter().enumerate() {
        let field = item("spec.http", i);
        let entry = as_object(entry, &field)?;
        let matches = opt_array(entry, "match", &field)?.unwrap_or_default();
        for (j, m) in matches.iter().enumerate() {
            let field = item(&child(&field, "match"), j);
            paths.push(parse_match(as_object(m, &field)?, &field)?);
        }
        if matches.is_empty() {
            // An entry without `match` takes every request.
            paths.push(PathPattern::StringPrefix { prefix: String::new(), ignore_case: false });
        }
    }

    if !public_gateway || hosts.is_empty() {
        return Ok(None);
    }
    let mut rules = Vec::with_capacity(hosts.len() * paths.len());
    for host in &hosts {
        for path in &paths {
            rules.push(Rule { host: host.clone(), path: path.clone(), implementation_specific: false });
        }
    }
    Ok(Some(Parsed { route, rules, api_version: api_version.to_owned(), attachment: Attachment::Gateways(gateways) }))
}

/// One `http[].match[]` entry → its path matcher; without `uri` it takes every path.
fn parse_match(m: &Map<String, Value>, field: &str) -> FieldResult<PathPattern> {
    let ignore_case = opt_bool(m, "ignoreUriCase", field)?.unwrap_or(false);
    let Some(uri) = opt_object(m, "uri", field)? else {
        return Ok(PathPattern::StringPrefix { prefix: String::new(), ignore_case: false });
    };
    let field = child(field, "uri");
    let Some((kind, value)) = uri.iter().find(|(_, v)| !v.is_null()) else {
        return Err(field_error(&field, "needs one of exact, prefix, regex"));
    };
    if uri.values().filter(|v| !v.is_null()).count() > 1 {
        return Err(field_error(&field, "has more than one of exact, prefix, regex"));
    }
    let value_field = child(&field, kind);
    let value = as_str(value, &value_field)?;
    match kind.as_str() {
        "exact" => Ok(PathPattern::Exact { path: value.to_string(), ignore_case }),
        "prefix" => Ok(PathPattern::StringPrefix { prefix: value.to_string(), ignore_case }),
        // ignoreUriCase applies to exact and prefix only.
        "regex" => PathPattern::full_regex(value).map_err(|r| field_error(&value_field, r)),
        other => {
            Err(field_error(&value_field, format!("unknown uri match {other:?} (expected exact, prefix or regex)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::{RouteKind, RouteTable};
    use std::path::Path;

    fn vs(name: &str, spec: &str) -> RouteTable {
        let text = format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: mesh}}\nspec:\n{spec}\n"
        );
        RouteTable::parse_text(Path::new("vs.yaml"), &text).unwrap()
    }

    const GW: &str = "  gateways: [istio-system/public]\n";

    #[test]
    fn prefix_is_a_plain_string_prefix() {
        let t = vs("v", &format!("{GW}  hosts: [u.example.com]\n  http:\n  - match: [{{uri: {{prefix: /usrv}}}}]\n    route: [{{destination: {{host: usrv}}}}]"));
        assert!(t.route("u.example.com", "/usrv").is_some());
        assert!(t.route("u.example.com", "/usrv-expand").is_some(), "Istio prefix is a string prefix");
        assert!(t.route("u.example.com", "/usr").is_none());
        assert_eq!(t.route("u.example.com", "/usrv").map(|r| r.kind), Some(RouteKind::VirtualService));
    }

    #[test]
    fn regex_exact_and_ignore_uri_case() {
        let spec = format!("{GW}  hosts: [r.example.com]\n  http:\n  - match:\n    - uri: {{regex: \"/item/[a-z]+\"}}\n    - uri: {{exact: /Login}}\n      ignoreUriCase: true\n");
        let t = vs("v", &spec);
        assert!(t.route("r.example.com", "/item/abc").is_some());
        assert!(t.route("r.example.com", "/item/abc/x").is_none(), "regex must match the whole path");
        assert!(t.route("r.example.com", "/LOGIN").is_some());
        assert!(t.route("r.example.com", "/login/").is_none());
    }

    #[test]
    fn entry_without_match_takes_everything() {
        let spec = format!("{GW}  hosts: [a.example.com]\n  http:\n  - match: [{{uri: {{exact: /x}}}}]\n    route: [{{destination: {{host: x}}}}]\n  - route: [{{destination: {{host: rest}}}}]");
        let t = vs("v", &spec);
        assert!(t.route("a.example.com", "/anything/else").is_some());
        let t = vs(
            "v",
            &format!("{GW}  hosts: [a.example.com]\n  http:\n  - match: [{{headers: {{x-canary: {{exact: \"1\"}}}}}}]"),
        );
        assert!(t.route("a.example.com", "/z").is_some(), "a match without uri takes every path");
    }

    #[test]
    fn hosts_short_names_skipped_star_and_wildcards() {
        let t = vs("v", &format!("{GW}  hosts: [reviews, \"*.apps.example.com\"]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]"));
        assert!(t.route("reviews", "/").is_none());
        assert!(t.route("a.b.apps.example.com", "/").is_some());
        let t = vs(
            "only-short",
            &format!("{GW}  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]"),
        );
        assert_eq!(t.objects(), 0, "no public host: not a public route (and not a catch-all)");
        assert!(t.route("anything.example.com", "/").is_none());
        let t = vs("star", &format!("{GW}  hosts: [\"*\"]\n  http:\n  - route: [{{destination: {{host: web}}}}]"));
        assert!(t.route("anything.example.com", "/x").is_some());
    }

    #[test]
    fn mesh_only_gateways_are_skipped() {
        let body = "  hosts: [m.example.com]\n  http:\n  - route: [{destination: {host: web}}]";
        assert_eq!(vs("v", &format!("  gateways: [mesh]\n{body}")).objects(), 0);
        assert_eq!(vs("v", body).objects(), 0, "absent gateways means mesh");
        assert_eq!(vs("v", &format!("  gateways: []\n{body}")).objects(), 0);
        let t = vs("v", &format!("  gateways: [mesh, istio-system/public]\n{body}"));
        assert_eq!(t.objects(), 1);
        assert!(t.route("m.example.com", "/").is_some());
    }

    #[test]
    fn shape_errors_name_the_field() {
        let text = |spec: &str| {
            format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: bad}}\nspec:\n{GW}  hosts: [a.example.com]\n{spec}\n")
        };
        let cases = [
            ("  http:\n  - match: [{uri: {regex: \"(\"}}]", "spec.http[0].match[0].uri.regex", "invalid regex"),
            ("  http:\n  - match: [{uri: {suffix: /x}}]", "spec.http[0].match[0].uri.suffix", "unknown uri match"),
            ("  http:\n  - match: [{uri: {}}]", "spec.http[0].match[0].uri", "needs one of"),
            ("  http: {match: []}", "spec.http", "expected a list"),
            ("  http:\n  - match: [{uri: {prefix: 5}}]", "spec.http[0].match[0].uri.prefix", "expected a string"),
        ];
        for (spec, field, reason) in cases {
            let err = RouteTable::parse_text(Path::new("v.yaml"), &text(spec)).unwrap_err();
            assert_eq!(err.field, field, "{spec}");
            assert!(err.reason.contains(reason), "{} should contain {reason}", err.reason);
        }
    }
}

//! Small reports for the report modules' tests: a host with the fields a test sets, in a report.

use serde_json::{json, Value};

use super::model::{HostReport, Report, SCHEMA};

/// A host seen `requests` times at `at` (RFC 3339), with `extra` fields over the defaults.
pub fn host(name: &str, requests: u64, at: &str, extra: Value) -> HostReport {
    let mut base = json!({
        "host": name, "requests": requests, "first_seen": at, "last_seen": at,
        "hardcoded": false, "green": {"routed": "unknown", "missing_paths": []},
        "action": "unknown", "urgent": false, "reason": "", "methods": ["GET"],
        "status": {"1xx": 0, "2xx": requests, "3xx": 0, "4xx": 0, "5xx": 0},
        "bytes_in": 0, "bytes_out": 0, "oldest_connection_age_s": 0.0, "requests_per_minute": [],
        "paths": [], "top_clients": [], "top_user_agents": []
    });
    if let (Some(b), Value::Object(more)) = (base.as_object_mut(), extra) {
        b.extend(more);
    }
    serde_json::from_value(base).unwrap_or_else(|e| panic!("sample host: {e}"))
}

/// One path of a host.
pub fn path(template: &str, requests: u64, at: &str, green_routed: Option<bool>) -> Value {
    json!({"path": template, "requests": requests, "first_seen": at, "last_seen": at,
           "green_routed": green_routed, "matched_route": null, "methods": ["GET"],
           "status": {"1xx": 0, "2xx": requests, "3xx": 0, "4xx": 0, "5xx": 0}, "bytes_in": 0, "bytes_out": 0})
}

/// A report of `hosts`, generated at `at`.
pub fn report(at: &str, hosts: Vec<HostReport>) -> Report {
    let requests: u64 = hosts.iter().map(|h| h.requests).sum();
    let n = hosts.len();
    let mut r: Report = serde_json::from_value(json!({
        "schema": SCHEMA, "generated_at": at, "started_at": at,
        "totals": {"requests": requests, "ignored_requests": 0, "hosts": n, "unrouted_requests": 0},
        "green": {"loaded": false, "objects": 0}, "hosts": []
    }))
    .unwrap_or_else(|e| panic!("sample report: {e}"));
    r.hosts = hosts;
    r
}

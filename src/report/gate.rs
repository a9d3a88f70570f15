//! `report check`: which hosts keep a gate closed — hosts with one of the given actions, or
//! hosts still sending traffic — as of the report's own time (pure).

use std::str::FromStr;

use super::model::{Action, HostReport, Report};
use crate::base::time::parse_rfc3339;

/// What keeps the gate closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOn {
    /// Hosts with one of these actions.
    Actions(Vec<Action>),
    /// Hosts still arriving at blue (health checks are never recorded).
    Traffic,
}

impl FromStr for FailOn {
    type Err = String;
    /// `traffic`, or actions separated by commas (`add-green-route,fix-green`).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "traffic" {
            return Ok(FailOn::Traffic);
        }
        let actions =
            s.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::parse).collect::<Result<Vec<Action>, _>>();
        match actions {
            Ok(a) if !a.is_empty() => Ok(FailOn::Actions(a)),
            Ok(_) => Err("give `traffic` or one or more actions".into()),
            Err(why) => Err(format!("{why}, or `traffic`")),
        }
    }
}

/// The hosts that keep the gate closed, most requests first. `within_ms`: only hosts seen in
/// that last stretch before the report was made count; without it, `traffic` means hosts still
/// arriving (any action but `none`).
pub fn closing_hosts<'a>(report: &'a Report, fail_on: &FailOn, within_ms: Option<u64>) -> Vec<&'a HostReport> {
    let now = parse_rfc3339(&report.generated_at).unwrap_or(0);
    let recent = |h: &HostReport| match within_ms {
        Some(w) => parse_rfc3339(&h.last_seen).is_some_and(|t| now.saturating_sub(t) <= w),
        None => true,
    };
    let mut hosts: Vec<&HostReport> = report
        .hosts
        .iter()
        .filter(|h| h.requests > 0 && recent(h))
        .filter(|h| match fail_on {
            FailOn::Actions(actions) => actions.contains(&h.action),
            FailOn::Traffic => within_ms.is_some() || h.action != Action::None,
        })
        .collect();
    hosts.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.host.cmp(&b.host)));
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let h = |name: &str, action: &str, last_seen: &str| {
            serde_json::json!({"host": name, "requests": 5, "first_seen": "2026-12-01T00:00:00Z", "last_seen": last_seen,
                "hardcoded": false, "green": {"routed": "all", "missing_paths": []}, "action": action, "urgent": false,
                "reason": "", "methods": [], "status": {"1xx":0,"2xx":5,"3xx":0,"4xx":0,"5xx":0}, "bytes_in": 0, "bytes_out": 0,
                "oldest_connection_age_s": 0.0, "requests_per_minute": [], "paths": [], "top_clients": [], "top_user_agents": []})
        };
        serde_json::from_value(serde_json::json!({
            "schema": "cutover-proxy/report/v2", "generated_at": "2026-12-02T00:00:00Z", "started_at": "2026-12-01T00:00:00Z",
            "replicas": [], "totals": {"requests": 15, "ignored_requests": 0, "hosts": 3, "unrouted_requests": 0},
            "green": {"loaded": true, "objects": 1},
            "hosts": [h("a.test", "switch-dns", "2026-12-01T23:59:00Z"), h("b.test", "none", "2026-12-01T20:00:00Z"),
                      h("c.test", "fix-green", "2026-12-01T23:00:00Z")]
        }))
        .unwrap()
    }

    #[test]
    fn actions_traffic_and_a_window() {
        let r = report();
        let names = |hosts: Vec<&HostReport>| hosts.into_iter().map(|h| h.host.clone()).collect::<Vec<_>>();
        assert_eq!(names(closing_hosts(&r, &"fix-green,add-green-route".parse().unwrap(), None)), ["c.test"]);
        assert_eq!(names(closing_hosts(&r, &FailOn::Traffic, None)), ["a.test", "c.test"], "`none` hosts stopped");
        assert_eq!(names(closing_hosts(&r, &FailOn::Traffic, Some(24 * 3_600_000))), ["a.test", "b.test", "c.test"]);
        assert_eq!(names(closing_hosts(&r, &FailOn::Traffic, Some(30 * 60_000))), ["a.test"]);
        assert!("fix-greens".parse::<FailOn>().unwrap_err().contains("or `traffic`"));
    }
}

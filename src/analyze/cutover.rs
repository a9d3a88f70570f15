//! cutover-proxy's own access lines read back (its stdout, as a log collector keeps it): what an
//! earlier run, or another replica's pod log, saw becomes a report again. Event lines (they carry
//! `event`) and non-JSON lines a collector interleaves are skipped; an access line must have
//! `ts`, `method`, `path` and `status`, as the proxy always writes them.
//!
//! Pure.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use super::LogRecord;
use crate::base::time::parse_rfc3339;

/// The fields of an access line the ledger counts (the rest are ignored).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    ts: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    host: Option<String>,
    path: Option<String>,
    status: Option<u16>,
    #[serde(borrow)]
    client_ip: Option<std::borrow::Cow<'a, str>>,
    user_agent: Option<String>,
    #[serde(default)]
    bytes_in: u64,
    #[serde(default)]
    bytes_out: u64,
    #[serde(default)]
    event: Option<serde::de::IgnoredAny>,
}

/// One line → a request; `Ok(None)` for a blank line, an event line or a line that is not JSON
/// (a collector's own lines, or stderr mixed in).
pub fn parse(line: &str) -> Result<Option<LogRecord>, String> {
    let line = line.trim();
    if !line.starts_with('{') {
        return Ok(None);
    }
    let l: Line<'_> = serde_json::from_str(line).map_err(|e| format!("not an access line: {e}"))?;
    // Event lines, and the heads the proxy refused before it had a request (method `-`): the
    // live ledger does not count those either.
    if l.event.is_some() || l.method.as_deref() == Some("-") {
        return Ok(None);
    }
    let ts = l.ts.ok_or("no ts field")?;
    let at_ms = parse_rfc3339(&ts).ok_or_else(|| format!("ts `{ts}` is not RFC 3339"))?;
    let method = l.method.ok_or("no method field")?;
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| format!("method `{method}`"))?;
    let path = l.path.ok_or("no path field")?;
    let status = l.status.filter(|s| (100..=599).contains(s)).ok_or("no status field (100–599)")?;
    let client_ip = l.client_ip.and_then(|ip| ip.parse::<IpAddr>().ok()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(Some(LogRecord {
        at_ms,
        host: l.host,
        path,
        method,
        status,
        client_ip,
        user_agent: l.user_agent,
        bytes_in: l.bytes_in,
        bytes_out: l.bytes_out,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::log::{format_access, AccessRecord, Text};

    fn line(host: Option<&str>, ua: Option<&str>) -> String {
        let rec = AccessRecord {
            ts: UNIX_EPOCH + Duration::from_millis(1_764_000_000_123),
            client_ip: "2001:db8::7".parse().unwrap(),
            method: http::Method::PUT,
            host: host.map(|h| Text::new(h.as_bytes())),
            path: Text::new(b"/v1/items/7"),
            version: http::Version::HTTP_2,
            status: 503,
            bytes_in: 12,
            bytes_out: 34,
            duration: Duration::from_millis(3),
            upstream: "http://10.0.0.1:80",
            upstream_addr: None,
            user_agent: ua.map(|u| Text::new(u.as_bytes())),
            request_id: None,
            grpc_status: None,
            error: Some(crate::base::cause::Cause::Reset),
            stale_conn: true,
            tls: None,
        };
        let mut buf = Vec::new();
        format_access(&rec, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn the_proxys_own_lines_come_back() {
        let r = parse(&line(Some("shop.example.com"), Some("okhttp/4.12.0 \"q\""))).unwrap().unwrap();
        assert_eq!(r.at_ms, 1_764_000_000_123);
        assert_eq!(
            (r.host.as_deref(), r.path.as_str(), r.method.as_str()),
            (Some("shop.example.com"), "/v1/items/7", "PUT")
        );
        assert_eq!((r.status, r.bytes_in, r.bytes_out), (503, 12, 34));
        assert_eq!(r.client_ip, "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(r.user_agent.as_deref(), Some("okhttp/4.12.0 \"q\""));
        let r = parse(&line(None, None)).unwrap().unwrap();
        assert_eq!((r.host, r.user_agent), (None, None));
    }

    #[test]
    fn events_and_foreign_lines_are_skipped_broken_access_lines_are_not() {
        assert_eq!(parse(r#"{"ts":"2026-11-25T10:00:00.000Z","event":"listening","addr":"0.0.0.0:8080"}"#), Ok(None));
        assert_eq!(parse("2026-11-25 10:00:00 kubelet: container started"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        let refused = r#"{"ts":"2026-11-25T10:00:00.000Z","client_ip":"192.0.2.1","method":"-","host":null,"path":"-","status":400,"error":"client_bad_request"}"#;
        assert_eq!(parse(refused), Ok(None), "a head refused before it was a request");
        assert!(parse(r#"{"ts":"2026-11-25T10:00:00.000Z","method":"GET","path":"/"}"#)
            .unwrap_err()
            .contains("status"));
        assert!(parse(r#"{"ts":"yesterday","method":"GET","path":"/","status":200}"#)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(parse("{\"ts\":").is_err());
    }
}

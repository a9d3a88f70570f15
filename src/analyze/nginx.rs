//! nginx access logs written as one JSON object per line, e.g.
//!
//! ```nginx
//! log_format cutover escape=json '{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr",'
//!     '"http_host":"$http_host","request_method":"$request_method","request_uri":"$request_uri",'
//!     '"status":$status,"request_length":$request_length,"body_bytes_sent":$body_bytes_sent,'
//!     '"http_user_agent":"$http_user_agent"}';
//! ```
//!
//! Field names accepted (the first present wins; values may be strings or numbers; `""` and `"-"`
//! count as absent):
//! - host: `http_host`, `host` (required; without it the request counts under `(none)`)
//! - path: `request_uri`, `uri`, or the target of `request` (`"GET /x HTTP/1.1"`) — required
//! - method: `request_method`, or the method of `request` (GET when neither is there)
//! - status: `status` — required
//! - time: `time_iso8601`, `@timestamp`, `time`, `timestamp` (ISO 8601), `time_local`
//!   (`20/Nov/2026:10:00:00 +0900`), `msec` (`1763632800.123`) — required
//! - client: `remote_addr`, `client_ip`, `realip_remote_addr`
//! - user agent: `http_user_agent`, `user_agent`
//! - bytes: `request_length`, `bytes_received` in; `body_bytes_sent`, `bytes_sent` out
//!
//! Pure.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use super::time;
use super::LogRecord;

/// The first present field of `names`, as text.
fn text<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<std::borrow::Cow<'a, str>> {
    names.iter().find_map(|n| match obj.get(*n)? {
        Value::String(s) if s.is_empty() || s == "-" => None,
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    })
}

fn number(obj: &Map<String, Value>, names: &[&str]) -> Result<u64, String> {
    match text(obj, names) {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| format!("`{}` is `{s}`, not a byte count", names[0])),
    }
}

/// One log line → a request; `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<LogRecord>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = value else { return Err("not a JSON object".into()) };
    let request = text(&obj, &["request"]);
    let mut request_parts = request.as_deref().map(|r| r.splitn(3, ' '));
    let (req_method, req_target) = match request_parts.as_mut() {
        Some(parts) => (parts.next(), parts.next()),
        None => (None, None),
    };
    let path = text(&obj, &["request_uri", "uri"])
        .map(|p| p.into_owned())
        .or_else(|| req_target.map(str::to_owned))
        .ok_or("no request_uri, uri or request field")?;
    // An absolute-form target (`GET http://host/x HTTP/1.1`, as proxies receive them): the path is
    // what follows the authority, and the authority is the host when no host field says otherwise.
    let (path, url_host) = match path.contains("://").then(|| super::alb::split_url(&path)).flatten() {
        Some((authority, rest)) => (rest.to_owned(), Some(authority.to_owned())),
        None if path.starts_with('/') => (path, None),
        None => return Err(format!("path `{path}` does not start with /")),
    };
    let method = text(&obj, &["request_method"]).map(|m| m.into_owned()).or(req_method.map(str::to_owned));
    let method = match method {
        Some(m) => http::Method::from_bytes(m.as_bytes()).map_err(|_| format!("method `{m}`"))?,
        None => http::Method::GET,
    };
    let status = text(&obj, &["status"]).ok_or("no status field")?;
    let status = status
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("status `{status}` is not an HTTP status"))?;
    let at_ms = if let Some(t) = text(&obj, &["time_iso8601", "@timestamp", "time", "timestamp"]) {
        time::iso8601(&t).ok_or_else(|| format!("time `{t}` is not ISO 8601"))?
    } else if let Some(t) = text(&obj, &["time_local"]) {
        time::clf(&t).ok_or_else(|| format!("time_local `{t}` is not dd/Mon/yyyy:hh:mm:ss +zzzz"))?
    } else if let Some(t) = text(&obj, &["msec"]) {
        time::msec(&t).ok_or_else(|| format!("msec `{t}` is not seconds.millis"))?
    } else {
        return Err("no time_iso8601, time_local or msec field".into());
    };
    let client_ip = text(&obj, &["remote_addr", "client_ip", "realip_remote_addr"])
        .and_then(|ip| ip.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(Some(LogRecord {
        at_ms,
        host: text(&obj, &["http_host", "host"]).map(|h| h.into_owned()).or(url_host),
        path,
        method,
        status,
        client_ip,
        user_agent: text(&obj, &["http_user_agent", "user_agent"]).map(|u| u.into_owned()),
        bytes_in: number(&obj, &["request_length", "bytes_received"])?,
        bytes_out: number(&obj, &["body_bytes_sent", "bytes_sent"])?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shapes() {
        let r = parse(r#"{"time_iso8601":"2026-11-20T19:00:00+09:00","remote_addr":"203.0.113.7","http_host":"shop.example.com","request_method":"POST","request_uri":"/api/cart/42?x=1","status":201,"request_length":512,"body_bytes_sent":"2113","http_user_agent":"okhttp/4.12.0"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.at_ms, crate::base::time::parse_rfc3339("2026-11-20T10:00:00Z").unwrap());
        assert_eq!(
            (r.host.as_deref(), r.path.as_str(), r.method.as_str()),
            (Some("shop.example.com"), "/api/cart/42?x=1", "POST")
        );
        assert_eq!((r.status, r.bytes_in, r.bytes_out), (201, 512, 2113));
        assert_eq!((r.client_ip.to_string(), r.user_agent.as_deref()), ("203.0.113.7".into(), Some("okhttp/4.12.0")));

        // `request` instead of method/uri, time_local, string status, `-` for no user agent.
        let r = parse(r#"{"time_local":"20/Nov/2026:10:00:00 +0000","host":"api.example.com","request":"DELETE /v1/x HTTP/1.1","status":"404","http_user_agent":"-"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.status, r.user_agent), ("DELETE", "/v1/x", 404, None));
        assert_eq!(r.at_ms, crate::base::time::parse_rfc3339("2026-11-20T10:00:00Z").unwrap());

        // msec and uri; no host at all.
        let r = parse(r#"{"msec":"1763632800.250","uri":"/","status":200}"#).unwrap().unwrap();
        assert_eq!((r.at_ms, r.host, r.method.as_str()), (1_763_632_800_250, None, "GET"));
        assert!(parse("").unwrap().is_none());

        // An absolute-form target: the path follows the authority, which is the host when none is logged.
        let r = parse(
            r#"{"msec":"1763632800","request":"GET http://legacy.example.com:8080/soap/x?y=1 HTTP/1.1","status":200}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.host.as_deref(), r.path.as_str()), (Some("legacy.example.com:8080"), "/soap/x?y=1"));
    }

    #[test]
    fn broken_lines_say_why() {
        let cases = [
            (r#"{"time_iso8601":"2026-11-20T10:00:00Z","status":200"#, "not JSON"),
            (r#"[1,2]"#, "not a JSON object"),
            (r#"{"time_iso8601":"2026-11-20T10:00:00Z","status":200}"#, "no request_uri"),
            (r#"{"time_iso8601":"2026-11-20T10:00:00Z","uri":"/","status":"OK"}"#, "status `OK`"),
            (r#"{"time_iso8601":"2026-11-20T10:00:00Z","uri":"/"}"#, "no status"),
            (r#"{"uri":"/","status":200}"#, "no time_iso8601"),
            (r#"{"time_local":"yesterday","uri":"/","status":200}"#, "time_local `yesterday`"),
            (r#"{"time_iso8601":"2026-11-20T10:00:00Z","uri":"x","status":200}"#, "does not start with /"),
            (r#"{"msec":"1","uri":"/","status":200,"body_bytes_sent":"lots"}"#, "not a byte count"),
            ("127.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5", "not JSON"),
        ];
        for (line, why) in cases {
            let err = parse(line).err().unwrap_or_else(|| panic!("accepted: {line}"));
            assert!(err.contains(why), "{err} (wanted {why})");
        }
    }
}

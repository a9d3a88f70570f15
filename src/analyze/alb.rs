//! AWS Application Load Balancer access logs, as ALB writes them to S3 (one `.log.gz` per node and
//! 5 minutes): space-separated fields, some double-quoted —
//!
//! `type time elb client:port target:port request_processing_time target_processing_time
//! response_processing_time elb_status_code target_status_code received_bytes sent_bytes "request"
//! "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name" "chosen_cert_arn"
//! matched_rule_priority request_creation_time "actions_executed" "redirect_url" "error_reason" …`
//!
//! where `"request"` is `"GET https://api.example.com:443/v1/x?q=1 HTTP/1.1"`. Fields after the user
//! agent are not needed (and AWS adds new ones at the end from time to time). Pure.

use std::net::{IpAddr, Ipv4Addr};

use super::LogRecord;

/// Fields a line needs: up to the user agent.
const MIN_FIELDS: usize = 14;

/// Splits a line into fields: runs of non-spaces, or `"…"` (with `\"` inside).
pub fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(30);
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { return Ok(out) };
        let mut field = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => field.push(c),
                        None => return Err("a quoted field ends in a backslash".into()),
                    },
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("quoted field {} is not closed", out.len() + 1)),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        out.push(field);
    }
}

/// One log line → a request; `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<LogRecord>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let f = fields(line)?;
    if f.len() < MIN_FIELDS {
        return Err(format!("{} fields, an ALB access log line has at least {MIN_FIELDS}", f.len()));
    }
    if !matches!(f[0].as_str(), "http" | "https" | "h2" | "grpcs" | "ws" | "wss") {
        return Err(format!("type `{}` is not http, https, h2, grpcs, ws or wss", f[0]));
    }
    let at_ms = super::time::iso8601(&f[1]).ok_or_else(|| format!("time `{}` is not ISO 8601", f[1]))?;
    let status = match f[8].as_str() {
        // No response was sent: the client went away first (the proxy logs these as 499 too).
        "-" => 499,
        s => {
            s.parse::<u16>().ok().filter(|s| (100..=599).contains(s)).ok_or_else(|| format!("elb_status_code `{s}`"))?
        }
    };
    let number = |i: usize, what: &str| -> Result<u64, String> {
        match f[i].as_str() {
            "-" => Ok(0),
            s => s.parse().map_err(|_| format!("{what} `{s}` is not a number")),
        }
    };
    let bytes_in = number(10, "received_bytes")?;
    let bytes_out = number(11, "sent_bytes")?;
    let mut request = f[12].splitn(3, ' ');
    let (method, url) = match (request.next(), request.next()) {
        (Some(m), Some(u)) if m != "-" && !m.is_empty() => (m, u),
        _ => return Err(format!("request `{}` has no method and URL (no complete HTTP request)", f[12])),
    };
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| format!("method `{method}`"))?;
    let (host, path) = split_url(url).ok_or_else(|| format!("URL `{url}` is not scheme://host/path"))?;
    Ok(Some(LogRecord {
        at_ms,
        host: Some(host.to_owned()),
        path: path.to_owned(),
        method,
        status,
        client_ip: client_ip(&f[3]),
        user_agent: (f[13] != "-").then(|| f[13].clone()),
        bytes_in,
        bytes_out,
    }))
}

/// `https://host:443/path?q` → (`host:443`, `/path?q`); the path defaults to `/`.
pub(super) fn split_url(url: &str) -> Option<(&str, &str)> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return None;
    }
    Some((authority, if path.is_empty() || path.starts_with('?') { "/" } else { path }))
}

/// `192.0.2.1:4321`, `[2001:db8::1]:4321` or a bare address; anything else is unspecified.
fn client_ip(s: &str) -> IpAddr {
    if let Ok(ip) = s.parse() {
        return ip;
    }
    let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
    host.trim_matches(['[', ']']).parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the examples in the ALB documentation.
    const HTTP: &str = r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90"#;
    const HTTPS: &str = r#"https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 201 200 0 57 "POST https://api.example.com:443/v1/orders/1234?debug=1 HTTP/1.1" "Mozilla/5.0 (X11; \"quoted\") Firefox/128.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "api.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90"#;
    const NO_TARGET: &str = r#"h2 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 [2001:db8::7]:2817 - -1 -1 -1 502 - 34 366 "GET https://shop.example.com:443/checkout HTTP/2.0" "-" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 - "Root=1-58337327-72bd00b0343d75b906739c42" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "Target.ResponseCodeMismatch" "-" "-" "-" "-""#;
    const NO_REQUEST: &str = r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - -1 -1 -1 400 - 0 0 "- http://www.example.com:80- -" "-" - - - "-" "-" "-" - 2018-07-02T22:22:48.364000Z "-" "-" "-" "-" "-" "-" "-""#;

    #[test]
    fn documented_lines() {
        let r = parse(HTTP).unwrap().unwrap();
        assert_eq!(r.host.as_deref(), Some("www.example.com:80"));
        assert_eq!((r.path.as_str(), r.method.as_str(), r.status), ("/", "GET", 200));
        assert_eq!((r.bytes_in, r.bytes_out), (34, 366));
        assert_eq!(r.client_ip.to_string(), "192.168.131.39");
        assert_eq!(r.user_agent.as_deref(), Some("curl/7.46.0"));
        assert_eq!(r.at_ms, crate::base::time::parse_rfc3339("2018-07-02T22:23:00.186Z").unwrap());

        let r = parse(HTTPS).unwrap().unwrap();
        assert_eq!(r.host.as_deref(), Some("api.example.com:443"));
        assert_eq!((r.path.as_str(), r.method.as_str(), r.status), ("/v1/orders/1234?debug=1", "POST", 201));
        assert_eq!(r.user_agent.as_deref(), Some("Mozilla/5.0 (X11; \"quoted\") Firefox/128.0"));

        let r = parse(NO_TARGET).unwrap().unwrap();
        assert_eq!((r.status, r.client_ip.to_string(), r.user_agent), (502, "2001:db8::7".to_owned(), None));
    }

    #[test]
    fn broken_lines_say_why() {
        let cases = [
            (NO_REQUEST, "no method and URL"),
            ("http 2018-07-02T22:23:00Z app/x 1.2.3.4:1", "4 fields"),
            (&HTTP.replace("2018-07-02T22:23:00.186641Z app", "yesterday app"), "time `yesterday`"),
            (&HTTP.replace("0.000 200 200", "0.000 2xx 200"), "elb_status_code `2xx`"),
            (&HTTP.replace("\"GET http", "GET http"), "URL"),
            (&HTTP[..HTTP.find("curl").unwrap()], "not closed"),
            (&HTTP.replace("http 2018", "tcp 2018"), "type `tcp`"),
        ];
        for (line, why) in cases {
            let err = parse(line).err().unwrap_or_else(|| panic!("accepted: {line}"));
            assert!(err.contains(why), "{err} (wanted {why})");
        }
        assert!(parse("   ").unwrap().is_none());
    }

    #[test]
    fn urls() {
        assert_eq!(split_url("https://a.example.com:443/x?y"), Some(("a.example.com:443", "/x?y")));
        assert_eq!(split_url("http://a.example.com:80?y=1"), Some(("a.example.com:80", "/")));
        assert_eq!(split_url("http://a.example.com:80"), Some(("a.example.com:80", "/")));
        assert_eq!(split_url("/relative"), None);
        assert_eq!(split_url("http:///x"), None);
    }
}

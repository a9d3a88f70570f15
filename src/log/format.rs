//! One access line as JSON, written byte by byte into the writer's batch (the formatter
//! machinery of serde costs more than the rest of the line).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use http::Version;

use super::packed::View;
use super::record::AccessRecord;
use crate::base::time::{push_rfc3339, unix_ms_of};

/// Appends one access line (JSON, newline-terminated) to `buf`.
pub fn format_access(rec: &AccessRecord, buf: &mut Vec<u8>) {
    format_view(&View::of(rec), buf);
}

pub(super) fn format_view(rec: &View<'_>, buf: &mut Vec<u8>) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"ts\":\"");
    push_rfc3339(buf, unix_ms_of(rec.ts));
    buf.extend_from_slice(b"\",\"client_ip\":\"");
    push_ip(buf, rec.client_ip);
    buf.extend_from_slice(b"\",\"method\":");
    push_json_str(buf, rec.method);
    buf.extend_from_slice(b",\"host\":");
    match rec.host {
        Some(h) => push_json_str(buf, h),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"path\":");
    push_json_str(buf, rec.path);
    buf.extend_from_slice(b",\"http_version\":\"");
    buf.extend_from_slice(match rec.version {
        Version::HTTP_09 => b"0.9",
        Version::HTTP_10 => b"1.0",
        Version::HTTP_11 => b"1.1",
        Version::HTTP_2 => b"2",
        Version::HTTP_3 => b"3",
        _ => b"?",
    });
    buf.extend_from_slice(b"\",\"status\":");
    buf.extend_from_slice(itoa.format(rec.status).as_bytes());
    buf.extend_from_slice(b",\"bytes_in\":");
    buf.extend_from_slice(itoa.format(rec.bytes_in).as_bytes());
    buf.extend_from_slice(b",\"bytes_out\":");
    buf.extend_from_slice(itoa.format(rec.bytes_out).as_bytes());
    buf.extend_from_slice(b",\"duration_ms\":");
    let micros = rec.duration.as_micros() as u64;
    buf.extend_from_slice(itoa.format(micros / 1000).as_bytes());
    buf.push(b'.');
    let frac = micros % 1000;
    buf.extend_from_slice(&[b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
    buf.extend_from_slice(b",\"upstream\":");
    push_json_str(buf, rec.upstream);
    if let Some(addr) = rec.upstream_addr {
        buf.extend_from_slice(b",\"upstream_addr\":\"");
        match addr {
            SocketAddr::V4(a) => push_ip(buf, IpAddr::V4(*a.ip())),
            SocketAddr::V6(a) => {
                buf.push(b'[');
                push_ip(buf, IpAddr::V6(*a.ip()));
                buf.push(b']');
            }
        }
        buf.push(b':');
        buf.extend_from_slice(itoa.format(addr.port()).as_bytes());
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"user_agent\":");
    match rec.user_agent {
        Some(ua) => push_json_str(buf, ua),
        None => buf.extend_from_slice(b"null"),
    }
    if let Some(id) = rec.request_id {
        buf.extend_from_slice(b",\"request_id\":");
        push_json_str(buf, id);
    }
    if let Some(status) = rec.grpc_status {
        buf.extend_from_slice(b",\"grpc_status\":");
        buf.extend_from_slice(itoa.format(status).as_bytes());
    }
    if let Some((sni, default_cert, sni_mismatch)) = rec.tls {
        buf.extend_from_slice(b",\"sni\":");
        match sni {
            Some(sni) => push_json_str(buf, sni),
            None => buf.extend_from_slice(b"null"),
        }
        if default_cert {
            buf.extend_from_slice(b",\"tls_cert\":\"default\"");
        }
        if sni_mismatch {
            buf.extend_from_slice(b",\"sni_mismatch\":true");
        }
    }
    if let Some(cause) = rec.error {
        buf.extend_from_slice(b",\"error\":");
        push_json_str(buf, cause.as_str().as_bytes());
    }
    if rec.stale_conn {
        buf.extend_from_slice(b",\"stale_conn\":true");
    }
    buf.extend_from_slice(b"}\n");
}

/// IPv4 by hand (the formatter machinery costs more than the rest of the line); IPv6 as usual.
fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut itoa = itoa::Buffer::new();
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(itoa.format(*octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Appends `s` as a JSON string; bytes that are not UTF-8 become U+FFFD.
pub fn push_json_str(buf: &mut Vec<u8>, s: &[u8]) {
    // The common case (a plain host or path): copy as is.
    if s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s);
        buf.push(b'"');
        return;
    }
    let text = String::from_utf8_lossy(s);
    buf.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::Method;

    use super::*;
    use crate::base::cause::Cause;
    use crate::log::{Text, TlsLog};

    pub(crate) fn record() -> AccessRecord {
        AccessRecord {
            stale_conn: false,
            ts: UNIX_EPOCH,
            client_ip: "192.0.2.1".parse().unwrap(),
            method: Method::POST,
            host: Some(Text::new(b"api.example.com")),
            path: Text::new(b"/v1/users"),
            version: Version::HTTP_11,
            status: 200,
            bytes_in: 12,
            bytes_out: 34,
            duration: Duration::from_micros(1_234),
            upstream: "http://10.0.0.1:80",
            upstream_addr: Some("10.0.0.1:80".parse().unwrap()),
            user_agent: Some(Text::new(b"curl/8.5.0")),
            request_id: None,
            grpc_status: None,
            error: None,
            tls: None,
        }
    }

    #[test]
    fn access_line_is_json() {
        let mut buf = Vec::new();
        format_access(&record(), &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], "/v1/users");
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["http_version"], "1.1");
        assert_eq!(v["host"], "api.example.com");
        assert_eq!(v["client_ip"], "192.0.2.1");
        assert_eq!((v["upstream_addr"].as_str(), v["user_agent"].as_str()), (Some("10.0.0.1:80"), Some("curl/8.5.0")));
        assert!(v.get("error").is_none() && v.get("request_id").is_none() && v.get("grpc_status").is_none());
        let mut buf = Vec::new();
        let mut rec = record();
        rec.error = Some(Cause::Reset);
        rec.host = Some(Text::new(b"we\"ird\xff"));
        rec.upstream_addr = Some("[2001:db8::1]:8443".parse().unwrap());
        rec.user_agent = None;
        rec.request_id = Some(Text::new(b"7f3c-1"));
        rec.grpc_status = Some(14);
        let long = format!("/{}", "a".repeat(300));
        rec.path = Text::new(long.as_bytes());
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], long.as_str());
        assert_eq!(v["error"], "upstream_reset");
        assert_eq!(v["upstream_addr"], "[2001:db8::1]:8443");
        assert!(v["user_agent"].is_null());
        assert_eq!((v["request_id"].as_str(), v["grpc_status"].as_u64()), (Some("7f3c-1"), Some(14)));
        assert_eq!(v["host"], "we\"ird\u{fffd}");
        assert!(v.get("sni").is_none(), "plain listeners carry no TLS fields");
        let mut rec = record();
        rec.tls = Some(TlsLog { sni: Some(Text::new(b"a.example.com")), default_cert: false, sni_mismatch: true });
        let mut buf = Vec::new();
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            (v["sni"].as_str(), v["sni_mismatch"].as_bool(), v.get("tls_cert")),
            (Some("a.example.com"), Some(true), None)
        );
        rec.tls = Some(TlsLog { sni: None, default_cert: true, sni_mismatch: false });
        let mut buf = Vec::new();
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v["sni"].is_null() && v["tls_cert"] == "default" && v.get("sni_mismatch").is_none(), "{v}");
    }
}

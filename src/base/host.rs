//! Host names as the ledger keys them: normalization of what a client sent (Host, `:authority`,
//! SNI), the placeholder keys that stand where no usable name is, and the name tests shared by the
//! ledger, the DNS evidence and the report.
//!
//! Rules (documented in docs/REPORT.md): lowercase, port and trailing dot removed, IDN to its
//! ASCII (punycode) form; an IP literal is kept and marked; no Host at all is `(none)`.

use std::fmt::Write;
use std::net::IpAddr;

use super::names::named_enum;

/// The ledger key for requests without a Host.
pub const NO_HOST: &str = "(none)";
/// The ledger key for a Host that is not text or not a name.
pub const INVALID_HOST: &str = "(invalid)";
/// The ledger key of passthrough TLS connections without a usable SNI.
pub const NO_SNI: &str = "(no-sni)";
/// The ledger key of passthrough connections whose first bytes are not a TLS ClientHello.
pub const NOT_TLS: &str = "(not-tls)";
/// The ledger key of path templates beyond the ledger's bounds.
pub const OTHER_PATH: &str = "{other}";

named_enum! {
    /// Where a host's traffic is counted once the ledger's bounds (`--max-hosts`, its memory)
    /// are reached: together with the other hosts of its kind, so each bucket still gets the
    /// action its hosts would get.
    pub enum Overflow {
        /// Names of no more telling kind.
        Hosts = "(other)",
        /// Clients that address blue directly (IP literals, load balancer names, no usable name):
        /// `fix-hardcoded`.
        AddressedDirectly = "(other: addressed directly)",
        /// Names in none of the imported Route53 zones: `investigate-dns`.
        OutsideZones = "(other: outside the zones)",
        /// Names whose path green's routes do not serve: `add-green-route`.
        Unrouted = "(other: unrouted)",
    }
}

impl Overflow {
    /// The bucket a ledger key names, if it is one.
    pub fn of(host: &str) -> Option<Overflow> {
        // Every bucket's name starts with `(`: most keys are told apart by their first byte.
        if host.starts_with('(') {
            Overflow::from_name(host)
        } else {
            None
        }
    }
}

/// Whether a ledger key is a placeholder rather than a name a client sent: every placeholder
/// starts with `(`, which normalization never lets through in a name.
pub fn is_placeholder(host: &str) -> bool {
    host.starts_with('(')
}

/// Whether a ledger key stands for traffic without a usable name (no Host, an invalid one, a
/// passthrough connection without SNI or without TLS): DNS cannot move such clients.
pub fn is_nameless(host: &str) -> bool {
    matches!(host, NO_HOST | INVALID_HOST | NO_SNI | NOT_TLS)
}

/// Normalizes into `out` (reused between calls: no allocation on the common path); returns
/// whether the host is an IP literal.
pub fn normalize_host_into(raw: Option<&[u8]>, out: &mut String) -> bool {
    out.clear();
    let Some(raw) = raw else {
        out.push_str(NO_HOST);
        return false;
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        out.push_str(INVALID_HOST);
        return false;
    };
    let text = text.trim();
    if text.is_empty() {
        out.push_str(NO_HOST);
        return false;
    }
    // [v6]:port or [v6]
    if let Some(rest) = text.strip_prefix('[') {
        let inner = rest.split(']').next().unwrap_or(rest);
        return match inner.parse::<IpAddr>() {
            Ok(ip) => {
                let _ = write!(out, "{ip}");
                true
            }
            Err(_) => {
                out.push_str(INVALID_HOST);
                false
            }
        };
    }
    let host = match text.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => text,
    };
    let host = host.trim_end_matches('.');
    if let Ok(ip) = host.parse::<IpAddr>() {
        let _ = write!(out, "{ip}");
        return true;
    }
    if host.is_ascii() {
        // A DNS name: at most 253 bytes of letters, digits, `-`, `_`, `.` (anything else is junk a
        // client made up, and must not grow the ledger with arbitrary keys).
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'));
        if !valid {
            out.push_str(INVALID_HOST);
            return false;
        }
        out.push_str(host);
        out.make_ascii_lowercase();
        return false;
    }
    match idna::domain_to_ascii(host) {
        Ok(ascii) if !ascii.is_empty() => out.push_str(&ascii),
        _ => out.push_str(INVALID_HOST),
    }
    false
}

/// `host[:port]` or `[v6]:port` → host part.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A DNS name as compared with load balancer names: lowercase, no trailing dot, no `dualstack.`
/// prefix (the same ELB).
pub fn lb_name(s: &str) -> String {
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    match s.strip_prefix("dualstack.") {
        Some(rest) => rest.to_owned(),
        None => s,
    }
}

/// Whether a normalized host is shaped like an AWS load balancer's own name (clients that bypass
/// DNS records). ALB/CLB names end in `.<region>.elb.amazonaws.com`, NLB names in
/// `.elb.<region>.amazonaws.com`.
pub fn is_aws_load_balancer_name(host: &str) -> bool {
    let host = host.strip_prefix("dualstack.").unwrap_or(host);
    (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")) && host.contains(".elb.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct NormalHost {
        name: String,
        ip_literal: bool,
    }

    #[test]
    fn hosts() {
        let normalize_host = |raw: Option<&[u8]>| {
            let mut name = String::new();
            let ip_literal = normalize_host_into(raw, &mut name);
            NormalHost { name, ip_literal }
        };
        let n = |s: &str| normalize_host(Some(s.as_bytes()));
        assert_eq!(n("API.Example.COM").name, "api.example.com");
        assert_eq!(n("api.example.com:8443").name, "api.example.com");
        assert_eq!(n("api.example.com.").name, "api.example.com");
        assert_eq!(n("api.example.com.:80").name, "api.example.com");
        assert_eq!(n("bücher.example").name, "xn--bcher-kva.example");
        assert_eq!(n("10.1.2.3:8080"), NormalHost { name: "10.1.2.3".into(), ip_literal: true });
        assert_eq!(n("[2001:db8::1]:443"), NormalHost { name: "2001:db8::1".into(), ip_literal: true });
        assert_eq!(n("2001:db8::1"), NormalHost { name: "2001:db8::1".into(), ip_literal: true });
        assert_eq!(normalize_host(None).name, NO_HOST);
        assert_eq!(n("").name, NO_HOST);
        assert_eq!(normalize_host(Some(b"\xff\xfe")).name, "(invalid)");
        assert_eq!(n("a b.example.com").name, "(invalid)");
        assert_eq!(n("(other)").name, "(invalid)", "a client cannot name a placeholder");
        assert_eq!(n(&"a".repeat(300)).name, "(invalid)");
        assert_eq!(n("under_score.example.com").name, "under_score.example.com");
        assert!(is_aws_load_balancer_name("k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com"));
        assert!(is_aws_load_balancer_name("k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com"));
        assert!(is_aws_load_balancer_name("dualstack.k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com"));
        assert!(!is_aws_load_balancer_name("api.example.com"));
        assert!(!is_aws_load_balancer_name("s3.amazonaws.com"));
        assert_eq!(Overflow::Hosts.as_str(), "(other)");
        assert_eq!(Overflow::of("(other: unrouted)"), Some(Overflow::Unrouted));
        assert_eq!(Overflow::of("api.example.com"), None);
        for p in [NO_HOST, INVALID_HOST, NO_SNI, NOT_TLS].into_iter().chain(Overflow::ALL.iter().map(|o| o.as_str())) {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder("api.example.com"));
    }

    #[test]
    fn ports_and_lb_names() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(lb_name("dualstack.K8S-Blue.elb.amazonaws.com."), "k8s-blue.elb.amazonaws.com");
    }
}

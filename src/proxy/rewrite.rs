//! The header edits a standard reverse proxy makes: hop-by-hop removal (RFC 9110 §7.6.1), X-Forwarded-*,
//! and which client IP to believe. Pure functions, tested with tables.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What [`strip_hop_by_hop`] found that the caller may need to restore.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HopByHop {
    /// The `Upgrade` value when `Connection` asked for an upgrade.
    pub upgrade: Option<HeaderValue>,
    /// The request carried `TE: trailers` (gRPC needs it end to end).
    pub te_trailers: bool,
}

/// An HTTP/2 client's `Cookie` fields (it may split them, one crumb each) as the one field an
/// HTTP/1.1 server expects, joined by "; " (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (crumbs.next(), crumbs.next()) else { return };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Removes the hop-by-hop headers: Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
/// Upgrade, and every header named in Connection. Returns the upgrade and TE facts first.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> HopByHop {
    let mut found = HopByHop::default();
    // Most messages carry none of them: one pass over the names is cheaper than seven lookups.
    if !headers.keys().any(is_hop_by_hop) {
        return found;
    }
    if let Some(te) = headers.get(header::TE) {
        found.te_trailers =
            te.to_str().map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers"))).unwrap_or(false);
    }
    let mut asks_upgrade = false;
    // Headers named in Connection are removed too (except the fixed ones handled below).
    if headers.contains_key(header::CONNECTION) {
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("upgrade") {
                    asks_upgrade = true;
                } else if token.eq_ignore_ascii_case("keep-alive") || token.eq_ignore_ascii_case("close") {
                    // The common values: Keep-Alive is removed below anyway, `close` names no header.
                } else if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(&name);
        }
        headers.remove(header::CONNECTION);
    }
    let upgrade = headers.remove(header::UPGRADE);
    if asks_upgrade {
        found.upgrade = upgrade;
    }
    if headers.contains_key(&KEEP_ALIVE) {
        headers.remove(&KEEP_ALIVE);
    }
    if headers.contains_key(&PROXY_CONNECTION) {
        headers.remove(&PROXY_CONNECTION);
    }
    if headers.contains_key(header::TE) {
        headers.remove(header::TE);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::TRANSFER_ENCODING);
        // Transfer-Encoding overrode any Content-Length (RFC 9112 §6.3): forwarding that length
        // would make the next hop frame the message by it, as nginx knows to avoid.
        headers.remove(header::CONTENT_LENGTH);
    }
    found
}

/// Whether `name` is one of the fixed hop-by-hop headers (a header merely named in Connection
/// needs Connection itself to be present).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Networks whose `X-Forwarded-For` is believed (blue's own load balancer in front of the proxy).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// From the `--trusted-proxies` CIDRs.
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        Self(nets)
    }

    /// No network is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the trusted networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client IP to record: the TCP peer, unless the peer is trusted; then the right-most
/// `X-Forwarded-For` entry that is not itself trusted (nginx's `real_ip_recursive on`).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    client_ip_of(peer, headers.get_all(&X_FORWARDED_FOR).iter().map(HeaderValue::as_bytes), trusted)
}

/// [`client_ip`] from the `X-Forwarded-For` values in the order they came.
pub fn client_ip_of<'a>(
    peer: IpAddr,
    xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut best = peer;
    // Later headers are appended later: walk all values right to left.
    for value in xff.rev() {
        let Ok(text) = std::str::from_utf8(value) else { return best };
        for entry in text.rsplit(',') {
            let Some(ip) = parse_xff_entry(entry) else { return best };
            best = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    best
}

/// One `X-Forwarded-For` element: an IP, possibly with a port or in brackets.
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = e.strip_prefix('[').and_then(|r| r.split(']').next())?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// Sets the forwarding headers toward the upstream. `X-Forwarded-For` gets the peer appended.
/// `X-Forwarded-Proto`/`-Host` are set from this hop unless a trusted peer already set them.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer_ip: &HeaderValue,
    peer_trusted: bool,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => peer_ip.clone(),
        Some(_) => {
            let mut joined: Vec<u8> = Vec::with_capacity(64);
            for v in headers.get_all(&X_FORWARDED_FOR) {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(v.as_bytes());
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer_ip.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| peer_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hop_by_hop_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[("connection", "close"), ("x-a", "1")], &["x-a"], &["connection"]),
            (
                &[("connection", "keep-alive, X-Secret"), ("x-secret", "s"), ("keep-alive", "timeout=5"), ("x-b", "2")],
                &["x-b"],
                &["x-secret", "keep-alive", "connection"],
            ),
            (
                &[
                    ("proxy-connection", "keep-alive"),
                    ("te", "gzip"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "h2c"),
                ],
                &[],
                &["proxy-connection", "te", "transfer-encoding", "upgrade"],
            ),
            (&[("x-c", "3"), ("accept", "*/*")], &["x-c", "accept"], &[]),
            // Transfer-Encoding overrode Content-Length: neither goes on.
            (
                &[("transfer-encoding", "chunked"), ("content-length", "10")],
                &[],
                &["transfer-encoding", "content-length"],
            ),
            (&[("content-length", "10")], &["content-length"], &[]),
        ];
        for (input, kept, removed) in cases {
            let mut h = map(input);
            strip_hop_by_hop(&mut h);
            for k in *kept {
                assert!(h.contains_key(*k), "{k} should be kept in {input:?}");
            }
            for k in *removed {
                assert!(!h.contains_key(*k), "{k} should be removed in {input:?}");
            }
        }
    }

    #[test]
    fn upgrade_and_te_are_reported() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("te", "trailers")]);
        let found = strip_hop_by_hop(&mut h);
        assert_eq!(found.upgrade.as_ref().map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        assert!(found.te_trailers);
        assert!(h.is_empty());
        // Upgrade without Connection: upgrade is not an upgrade request.
        let mut h = map(&[("upgrade", "websocket")]);
        assert_eq!(strip_hop_by_hop(&mut h).upgrade, None);
    }

    #[test]
    fn client_ip_table() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let none = TrustedProxies::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a TrustedProxies, &'a str);
        let cases: &[Case] = &[
            ("10.1.1.1", &[("x-forwarded-for", "203.0.113.7")], &trusted, "203.0.113.7"),
            ("10.1.1.1", &[("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.2.2.2")], &trusted, "203.0.113.7"),
            ("192.0.2.9", &[("x-forwarded-for", "203.0.113.7")], &trusted, "192.0.2.9"),
            ("10.1.1.1", &[("x-forwarded-for", "203.0.113.7")], &none, "10.1.1.1"),
            ("10.1.1.1", &[], &trusted, "10.1.1.1"),
            ("10.1.1.1", &[("x-forwarded-for", "garbage, 203.0.113.7")], &trusted, "203.0.113.7"),
            ("10.1.1.1", &[("x-forwarded-for", "10.3.3.3, 10.4.4.4")], &trusted, "10.3.3.3"),
            (
                "10.1.1.1",
                &[("x-forwarded-for", "203.0.113.1"), ("x-forwarded-for", "203.0.113.2")],
                &trusted,
                "203.0.113.2",
            ),
            ("10.1.1.1", &[("x-forwarded-for", "[2001:db8::1]:443")], &trusted, "2001:db8::1"),
            ("::ffff:10.1.1.1", &[("x-forwarded-for", "203.0.113.7")], &trusted, "203.0.113.7"),
        ];
        for (peer, hdrs, t, want) in cases {
            assert_eq!(client_ip(ip(peer), &map(hdrs), t), ip(want), "peer {peer} headers {hdrs:?}");
        }
    }

    #[test]
    fn forwarded_headers() {
        let peer = HeaderValue::from_static("192.0.2.1");
        let host = HeaderValue::from_static("api.example.com");
        let mut h = map(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")]);
        set_forwarded(&mut h, &peer, false, "http", Some(&host));
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "http", "an untrusted peer cannot claim https");
        assert_eq!(h["x-forwarded-host"], "api.example.com");

        let mut h = map(&[("x-forwarded-proto", "https"), ("x-forwarded-host", "orig.example.com")]);
        set_forwarded(&mut h, &peer, true, "http", Some(&host));
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https", "a trusted LB's proto is kept");
        assert_eq!(h["x-forwarded-host"], "orig.example.com");
    }
}

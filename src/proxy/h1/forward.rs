//! The request head toward blue, pure: the client's bytes with only what a reverse proxy must
//! change. Fields keep their names' case and their order; hop-by-hop fields go (RFC 9110 §7.6.1,
//! `TE: trailers` kept), an absolute-form target becomes origin form with its authority as the
//! `Host` (RFC 9112 §3.2.2), and X-Forwarded-* are set as the hyper side sets them
//! ([`crate::proxy::rewrite::set_forwarded`]): edited where they stand, added at the end.

use super::head::{tokens, Facts, Field, Target};

/// This hop's part of the forwarding fields.
pub struct Hop<'a> {
    /// The TCP peer's IP, as text.
    pub peer_ip: &'a [u8],
    /// The peer is a trusted proxy: its X-Forwarded-Proto and -Host are kept.
    pub peer_trusted: bool,
    /// `http` or `https`.
    pub proto: &'static [u8],
    /// The request's host (the absolute-form authority, else `Host`; none from an HTTP/1.0
    /// client that sent none).
    pub host: Option<&'a [u8]>,
    /// The `Host` toward blue when the client sent none: blue's own address, as hyper's side
    /// and nginx's default `$proxy_host` do.
    pub fallback_host: &'a [u8],
    /// An absolute-form target's authority: the `Host` field's new value.
    pub authority: Option<&'a [u8]>,
}

/// Writes the request head toward blue into `out`.
pub fn encode(
    method: &[u8],
    target: Target<'_>,
    fields: &[Field<'_>],
    facts: &Facts<'_>,
    hop: &Hop<'_>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method);
    out.push(b' ');
    target.push_to(out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut xff, mut xfp, mut xfh, mut host) = (false, false, false, false);
    for &(name, value) in fields {
        let is = |want: &[u8]| name.len() == want.len() && name.eq_ignore_ascii_case(want);
        match name.len() {
            2 if is(b"te") => {
                if facts.te_trailers {
                    field(out, name, b"trailers");
                }
                continue;
            }
            4 if is(b"host") => {
                host = true;
                field(out, name, hop.authority.unwrap_or(value));
                continue;
            }
            6 if is(b"expect") && value.eq_ignore_ascii_case(b"100-continue") => continue,
            7 if is(b"upgrade") => continue,
            10 if is(b"connection") || is(b"keep-alive") => continue,
            // The body's framing goes as it came, whatever `Connection` names: without it the
            // body read here would reach blue as a request of its own.
            14 if is(b"content-length") => {
                field(out, name, value);
                continue;
            }
            17 if is(b"transfer-encoding") => {
                field(out, name, value);
                continue;
            }
            15 if is(b"x-forwarded-for") => {
                if !xff {
                    xff = true;
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    let mut first = true;
                    for (_, v) in fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-for")) {
                        if !first {
                            out.extend_from_slice(b", ");
                        }
                        first = false;
                        out.extend_from_slice(v);
                    }
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(hop.peer_ip);
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            16 if is(b"proxy-connection") => continue,
            16 if is(b"x-forwarded-host") => {
                if hop.peer_trusted {
                    field(out, name, value);
                } else if let (false, Some(host)) = (xfh, hop.host) {
                    field(out, name, host);
                }
                xfh = true;
                continue;
            }
            17 if is(b"x-forwarded-proto") => {
                if hop.peer_trusted {
                    field(out, name, value);
                } else if !xfp {
                    field(out, name, hop.proto);
                }
                xfp = true;
                continue;
            }
            _ => {}
        }
        if facts.names_fields && named_in_connection(fields.iter().copied(), name) {
            continue;
        }
        field(out, name, value);
    }
    if !host {
        field(out, b"host", hop.authority.unwrap_or(hop.fallback_host));
    }
    if !xff {
        field(out, b"x-forwarded-for", hop.peer_ip);
    }
    if !xfp {
        field(out, b"x-forwarded-proto", hop.proto);
    }
    if let (false, Some(host)) = (xfh, hop.host) {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes one `name: value` field line.
pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether a `Connection` field lists `name` (a hop-by-hop field of this connection only).
pub fn named_in_connection<'b>(mut fields: impl Iterator<Item = Field<'b>>, name: &[u8]) -> bool {
    fields.any(|(n, v)| n.eq_ignore_ascii_case(b"connection") && tokens(v).any(|t| t.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::super::head::{absolute_form, parse, Parse};
    use super::*;

    fn forward(raw: &[u8], trusted: bool) -> String {
        let Parse::Complete(head) = parse(raw) else { panic!("not parsed") };
        let facts = Facts::of(&head.fields);
        let absolute = absolute_form(head.target);
        let host = match facts.host {
            super::super::head::HostField::One(h) => Some(absolute.map_or(h, |(a, _)| a)),
            _ => absolute.map(|(a, _)| a),
        };
        let hop = Hop {
            peer_ip: b"192.0.2.1",
            peer_trusted: trusted,
            proto: b"http",
            host,
            fallback_host: b"blue:8080",
            authority: absolute.map(|(a, _)| a),
        };
        let target = absolute.map_or(Target::Path(head.target), |(_, t)| t);
        let mut out = Vec::new();
        encode(head.method, target, &head.fields, &facts, &hop, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_clients_bytes_with_the_proxys_few_edits() {
        assert_eq!(
            forward(b"GET /a?q={\"x\":1} HTTP/1.1\r\nHost: Shop.Example\r\nX-Request-ID: r\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\n\r\n", false),
            "GET /a?q={\"x\":1} HTTP/1.1\r\nHost: Shop.Example\r\nX-Request-ID: r\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\n\
             x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: Shop.Example\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_fields_go() {
        assert_eq!(
            forward(
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n\
                  Proxy-Connection: keep-alive\r\nTE: gzip, trailers\r\nUpgrade: h2c\r\nExpect: 100-continue\r\nX-K: k\r\n\r\n",
                false
            ),
            "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nX-K: k\r\n\
             x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\r\n"
        );
    }

    #[test]
    fn connection_cannot_name_the_framing_away() {
        let sent = forward(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, host, x-a\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc",
            false,
        );
        assert!(sent.contains("\r\nContent-Length: 3\r\n") && sent.contains("\r\nHost: a\r\n"), "{sent}");
        assert!(!sent.contains("X-A"), "{sent}");
        let sent = forward(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            false,
        );
        assert!(sent.contains("\r\nTransfer-Encoding: chunked\r\n"), "{sent}");
    }

    #[test]
    fn forwarding_fields_edited_where_they_stand() {
        let raw = b"GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\
                    X-Forwarded-For: 198.51.100.2\r\nX-Forwarded-Host: orig\r\n\r\n";
        assert_eq!(
            forward(raw, false),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2, 192.0.2.1\r\nHost: a\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
        );
        assert_eq!(
            forward(raw, true),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2, 192.0.2.1\r\nHost: a\r\n\
             X-Forwarded-Proto: https\r\nX-Forwarded-Host: orig\r\n\r\n",
            "a trusted load balancer's proto and host are kept"
        );
    }

    #[test]
    fn an_http_1_0_request_without_host_gets_blues_address() {
        assert_eq!(
            forward(b"GET /a HTTP/1.0\r\nX-A: 1\r\n\r\n", false),
            "GET /a HTTP/1.1\r\nX-A: 1\r\nhost: blue:8080\r\nx-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_and_its_authority_the_host() {
        assert_eq!(
            forward(b"GET http://abs.test/p?q HTTP/1.1\r\nHost: other.test\r\n\r\n", false),
            "GET /p?q HTTP/1.1\r\nHost: abs.test\r\n\
             x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: abs.test\r\n\r\n"
        );
    }
}

//! A client's HTTP/1.1 request head as it arrived, pure: parsed once with httparse (which takes
//! every target byte nginx takes: 0x21–0x7E and 0x80–0xFF), the facts the proxy decides by, and
//! whether the proxy's own server side may carry it or hyper's must.

use std::mem::MaybeUninit;

use crate::base::cause::Cause;

/// Longest request head read here; a longer one goes to hyper, which answers 431 (nginx's
/// `large_client_header_buffers` are 4 × 8 KiB, so this is at least theirs).
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest request body this side reads whole before it sends the request on (nginx buffers
/// request bodies too: `client_body_buffer_size`, then a file); a longer one is streamed to blue
/// as it arrives ([`super::body`]).
pub const MAX_BODY: u64 = 64 * 1024;
/// Fields a request's `Connection` may name for removal here (each is looked for in every field).
pub const MAX_NAMED: usize = 16;
/// Field slots on the stack; a head with more is parsed again with as many slots as it has lines
/// (nginx has no count limit of its own, only the size).
const STACK_FIELDS: usize = 64;

/// One parsed field: its name as sent and its value.
pub type Field<'b> = (&'b [u8], &'b [u8]);

/// A complete request head: spans of the client's bytes.
pub struct RequestHead<'b> {
    /// Its length in bytes, the empty line included.
    pub len: usize,
    /// The method token, as sent.
    pub method: &'b [u8],
    /// The request target, as sent.
    pub target: &'b [u8],
    /// HTTP/1.x's minor version (an HTTP/1.2 client is spoken to as HTTP/1.1, as nginx does).
    pub minor: u8,
    /// The fields, in order.
    pub fields: Vec<Field<'b>>,
}

/// What parsing the start of a buffer gave.
pub enum Parse<'b> {
    /// The head is not complete yet.
    Partial,
    /// Not an HTTP/1.x request head this side reads: hyper's server gets the bytes and answers.
    Foreign,
    /// A complete head.
    Complete(RequestHead<'b>),
}

/// Whether a head's end (an empty line) may be in `buf`, looking only at what `seen` bytes of it
/// did not already show: a head sent a byte at a time is parsed once, not once a byte.
pub fn may_end(buf: &[u8], seen: usize) -> bool {
    let from = seen.saturating_sub(3).min(buf.len());
    buf[from..].windows(2).any(|w| w == b"\n\n" || w == b"\n\r")
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse<'_> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    match parse_into(buf, &mut slots) {
        Err(httparse::Error::TooManyHeaders) => {
            let lines = buf.iter().filter(|&&b| b == b'\n').count();
            let mut slots: Vec<MaybeUninit<httparse::Header<'_>>> = Vec::new();
            slots.resize_with(lines, MaybeUninit::uninit);
            parse_into(buf, &mut slots).unwrap_or(Parse::Foreign)
        }
        Err(httparse::Error::Version) => http_1x(buf),
        Err(_) => Parse::Foreign,
        Ok(parsed) => parsed,
    }
}

fn parse_into<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Parse<'b>, httparse::Error> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots)? {
        httparse::Status::Partial => return Ok(Parse::Partial),
        httparse::Status::Complete(len) => len,
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Ok(Parse::Foreign);
    };
    let fields = req.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect();
    Ok(Parse::Complete(RequestHead { len, method: method.as_bytes(), target: target.as_bytes(), minor, fields }))
}

/// httparse knows HTTP/1.0 and 1.1 only; nginx takes any HTTP/1.x as 1.1. The line is read again
/// with the minor version as 1 (forwarded as HTTP/1.1 anyway) and the real one kept.
fn http_1x(buf: &[u8]) -> Parse<'_> {
    // httparse judges the version before the line is complete: wait for its end.
    let Some(eol) = buf.iter().position(|&b| b == b'\n') else { return Parse::Partial };
    let line = buf[..eol].strip_suffix(b"\r").unwrap_or(&buf[..eol]);
    let Some(at) = line.len().checked_sub(8).filter(|&at| line[at..at + 7] == *b"HTTP/1.") else {
        return Parse::Foreign;
    };
    let minor = line[at + 7];
    if !minor.is_ascii_digit() || minor < b'2' {
        return Parse::Foreign;
    }
    let mut patched = buf.to_vec();
    patched[at + 7] = b'1';
    // The spans must point into `buf`: parse the patched copy, then map its spans back.
    match parse(&patched) {
        Parse::Complete(head) => {
            let back = |s: &[u8]| {
                let start = s.as_ptr() as usize - patched.as_ptr() as usize;
                &buf[start..start + s.len()]
            };
            Parse::Complete(RequestHead {
                len: head.len,
                method: back(head.method),
                target: back(head.target),
                minor: minor - b'0',
                fields: head.fields.iter().map(|(n, v)| (back(n), back(v))).collect(),
            })
        }
        Parse::Partial => Parse::Partial,
        Parse::Foreign => Parse::Foreign,
    }
}

/// Which `Host` the request names (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostField<'b> {
    /// No `Host` field.
    #[default]
    None,
    /// One.
    One(&'b [u8]),
    /// Several: refused.
    Repeated,
}

/// What the proxy decides by, gathered in one pass over the fields.
#[derive(Debug, Default)]
pub struct Facts<'b> {
    /// The `Host` field(s).
    pub host: HostField<'b>,
    /// How the request's body is framed.
    pub length: Length,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive` (what keeps an HTTP/1.0 connection open).
    pub keep_alive: bool,
    /// `Connection` lists `upgrade` and an `Upgrade` field is there.
    pub upgrade: bool,
    /// `Connection` names other fields (removed as hop-by-hop).
    pub names_fields: bool,
    /// How many: more than [`MAX_NAMED`] goes to hyper's side, so the removal stays linear.
    pub named: usize,
    /// `TE` lists `trailers`.
    pub te_trailers: bool,
    /// A gRPC content type (`application/grpc…`, not gRPC-Web), by the first `Content-Type`
    /// as hyper's side reads it.
    pub grpc: bool,
    content_type: bool,
    /// `User-Agent`.
    pub user_agent: Option<&'b [u8]>,
    /// `X-Request-ID`, else `X-Amzn-Trace-Id`.
    pub request_id: Option<&'b [u8]>,
}

impl<'b> Facts<'b> {
    /// The facts of `fields`.
    pub fn of(fields: &[Field<'b>]) -> Self {
        let mut f = Facts::default();
        let mut upgrade_field = false;
        let mut connection_upgrade = false;
        let mut amzn = None;
        for &(name, value) in fields {
            // Dispatch on length first: most fields are none of these.
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => {
                    f.host = match f.host {
                        HostField::None => HostField::One(value),
                        _ => HostField::Repeated,
                    }
                }
                2 if name.eq_ignore_ascii_case(b"te") => {
                    f.te_trailers |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"trailers"))
                }
                7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade_field = true,
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for t in tokens(value) {
                        if t.eq_ignore_ascii_case(b"close") {
                            f.close = true;
                        } else if t.eq_ignore_ascii_case(b"upgrade") {
                            connection_upgrade = true;
                        } else if t.eq_ignore_ascii_case(b"keep-alive") {
                            f.keep_alive = true;
                        } else if !t.is_empty() {
                            f.names_fields = true;
                            f.named += 1;
                        }
                    }
                }
                10 if name.eq_ignore_ascii_case(b"user-agent") => f.user_agent = f.user_agent.or(Some(value)),
                12 if name.eq_ignore_ascii_case(b"x-request-id") => f.request_id = f.request_id.or(Some(value)),
                12 if name.eq_ignore_ascii_case(b"content-type") && !f.content_type => {
                    f.content_type = true;
                    f.grpc = is_grpc_type(value);
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    f.length = match (f.length, digits(value)) {
                        (Length::None, Some(n)) => Length::Known(n),
                        // Repeated, a list, not a number: hyper's side refuses or reads it.
                        _ => Length::Other,
                    }
                }
                6 if name.eq_ignore_ascii_case(b"expect") => {
                    f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue")
                }
                15 if name.eq_ignore_ascii_case(b"x-amzn-trace-id") => amzn = amzn.or(Some(value)),
                // Only the plain case is read here; a list, a repeat or a Content-Length beside
                // it goes to hyper's side, which refuses or frames it by RFC 9112 §6.3.
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    f.length = match f.length {
                        Length::None if value.eq_ignore_ascii_case(b"chunked") => Length::Chunked,
                        _ => Length::Other,
                    }
                }
                _ => {}
            }
        }
        f.upgrade = upgrade_field && connection_upgrade;
        f.request_id = f.request_id.or(amzn);
        f
    }
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Length {
    /// No `Content-Length` nor `Transfer-Encoding`: no body.
    #[default]
    None,
    /// One `Content-Length`, a plain number.
    Known(u64),
    /// One `Transfer-Encoding: chunked` and no `Content-Length`.
    Chunked,
    /// Anything else (repeated or odd lengths, other codings, both framings).
    Other,
}

/// A plain decimal number (at most 18 digits, so it fits).
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The elements of a comma-separated list, trimmed.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a `Content-Type` is gRPC's: `application/grpc`, `application/grpc+proto` and the
/// like, not gRPC-Web (`application/grpc-web…`, meant for HTTP/1.1).
pub fn is_grpc_type(t: &[u8]) -> bool {
    t.len() >= 16
        && t[..16].eq_ignore_ascii_case(b"application/grpc")
        && matches!(t.get(16), None | Some(b'+') | Some(b';'))
}

/// An absolute-form target (`http://shop.example.com/a?b`): its authority (userinfo dropped) and
/// the origin-form target toward blue (`/a?b`; `/` when it has no path). `None` for the other
/// forms.
pub fn absolute_form(target: &[u8]) -> Option<(&[u8], Target<'_>)> {
    let scheme = target.iter().position(|&b| b == b':')?;
    if !(target[..scheme].eq_ignore_ascii_case(b"http") || target[..scheme].eq_ignore_ascii_case(b"https")) {
        return None;
    }
    let rest = target[scheme..].strip_prefix(b"://")?;
    let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.iter().rposition(|&b| b == b'@').map_or(authority, |at| &authority[at + 1..]);
    let path = &rest[end..];
    let origin = match path.first() {
        Some(b'/') => Target::Path(path),
        Some(_) => Target::Rooted(path),
        None => Target::Path(b"/"),
    };
    Some((authority, origin))
}

/// The target written toward blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'b> {
    /// As it is.
    Path(&'b [u8]),
    /// A query without a path: `/` goes before it.
    Rooted(&'b [u8]),
}

impl Target<'_> {
    /// Appends it to `out`.
    pub fn push_to(&self, out: &mut Vec<u8>) {
        match self {
            Target::Path(p) => out.extend_from_slice(p),
            Target::Rooted(q) => {
                out.push(b'/');
                out.extend_from_slice(q);
            }
        }
    }
}

/// Why the proxy's own server side hands a request to hyper's: what it does not carry itself.
pub fn needs_hyper(head: &RequestHead<'_>, facts: &Facts<'_>) -> bool {
    // A body of any length is read here (whole up to MAX_BODY, streamed beyond, chunked
    // re-framed); chunked from an HTTP/1.0 client, which cannot send it, goes to hyper's side.
    facts.length == Length::Other
        || facts.length == Length::Chunked && head.minor == 0
        || facts.upgrade
        || facts.grpc
        || facts.named > MAX_NAMED
        || head.method == b"CONNECT"
        || !plain_target(head.target)
}

/// Origin form (`/…`), asterisk form (`*`), or an absolute `http`/`https` form with an
/// authority: what this side forwards. The authority form (CONNECT's) and other schemes are
/// hyper's side's to judge.
fn plain_target(target: &[u8]) -> bool {
    match target.first() {
        Some(b'/') => true,
        Some(b'*') => target.len() == 1,
        _ => absolute_form(target).is_some_and(|(authority, _)| !authority.is_empty()),
    }
}

/// The body's length, when this side reads it.
pub fn body_len(facts: &Facts<'_>) -> u64 {
    match facts.length {
        Length::Known(n) => n,
        _ => 0,
    }
}

/// Whether the connection stays open after this request, as the client asked (RFC 9112 §9.3):
/// HTTP/1.1 unless `close`, HTTP/1.0 only with `keep-alive`.
pub fn persists(head: &RequestHead<'_>, facts: &Facts<'_>) -> bool {
    !facts.close && (head.minor >= 1 || facts.keep_alive)
}

/// The request's `Host` by RFC 9112 §3.2, as the hyper side decides it: the absolute-form
/// authority, else the one `Host`; several are refused, and none is refused from HTTP/1.1
/// (HTTP/1.0 may have none).
pub fn request_host<'b>(facts: &Facts<'b>, absolute: Option<&'b [u8]>, minor: u8) -> Result<Option<&'b [u8]>, Cause> {
    match facts.host {
        HostField::Repeated => Err(Cause::HostRepeated),
        HostField::None if minor >= 1 => Err(Cause::HostMissing),
        HostField::None => Ok(absolute),
        HostField::One(h) => Ok(Some(absolute.unwrap_or(h))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> RequestHead<'_> {
        match parse(raw) {
            Parse::Complete(h) => h,
            Parse::Partial => panic!("partial: {raw:?}"),
            Parse::Foreign => panic!("foreign: {raw:?}"),
        }
    }

    #[test]
    fn targets_nginx_takes_are_taken_byte_for_byte() {
        for target in [&b"/a?q={\"x\":1}"[..], b"/a`b", b"/a<b>", b"/a?q=<script>", b"/caf\xc3\xa9", b"/a|b^c\\d"] {
            let mut raw = b"GET ".to_vec();
            raw.extend_from_slice(target);
            raw.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(head(&raw).target, target);
        }
        assert!(matches!(parse(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), Parse::Foreign), "a space ends the target");
        assert!(matches!(parse(b"GET /a\x7f HTTP/1.1\r\n\r\n"), Parse::Foreign));
    }

    #[test]
    fn a_head_end_is_looked_for_in_new_bytes_only() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(may_end(buf, 0) && may_end(buf, buf.len() - 1) && may_end(buf, buf.len()));
        assert!(!may_end(b"GET / HTTP/1.1\r\nHost: a", 0));
        assert!(may_end(b"GET / HTTP/1.0\n\n", 15), "bare LF ends a head too");
    }

    #[test]
    fn names_keep_their_case_and_fields_their_order() {
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\n\r\nnext");
        assert_eq!(h.fields, [(&b"Host"[..], &b"a"[..]), (b"X-A", b"1"), (b"X-B", b"2"), (b"x-a", b"3")]);
        assert_eq!(h.len, 51);
    }

    #[test]
    fn many_fields_and_later_minor_versions() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..300 {
            raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(head(&raw).fields.len(), 301);
        let h = head(b"GET /x HTTP/1.2\r\nHost: a\r\n\r\n");
        assert_eq!((h.minor, h.target, h.fields.len()), (2, &b"/x"[..], 1));
        assert!(matches!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parse::Foreign));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parse::Partial));
        assert!(matches!(parse(b"GET / HTTP/1.3\r\nHost: a\r\n"), Parse::Partial));
        assert!(matches!(parse(b"GET / HTTP/1.2"), Parse::Partial), "the line's end decides, however it was split");
    }

    #[test]
    fn smuggling_shapes_are_foreign_to_this_side() {
        // hyper's side refuses them with its 400 and access line, as before.
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
        ] {
            assert!(matches!(parse(raw), Parse::Foreign), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn facts_table() {
        let facts = |raw: &'static [u8]| {
            let h = head(raw);
            let f = Facts::of(&h.fields);
            (needs_hyper(&h, &f), f.host, f.close, f.names_fields, f.te_trailers)
        };
        use HostField::*;
        assert_eq!(facts(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), (false, One(b"a"), false, false, false));
        assert_eq!(facts(b"GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n").1, Repeated);
        assert_eq!(facts(b"GET / HTTP/1.1\r\n\r\n").1, None);
        let (_, _, close, names, te) = facts(b"GET / HTTP/1.1\r\nConnection: close, X-S\r\nTE: trailers\r\n\r\n");
        assert!(close && names && te);
        assert!(facts(b"GET / HTTP/1.1\r\nConnection: keep-alive, X-S\r\n\r\n").3);
        assert!(facts(b"GET / HTTP/1.1\r\nTE: gzip, trailers\r\n\r\n").4);
        assert!(!facts(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0);
        let keeps = |raw: &'static [u8]| {
            let h = head(raw);
            persists(&h, &Facts::of(&h.fields))
        };
        assert!(keeps(b"GET / HTTP/1.1\r\n\r\n") && keeps(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!keeps(b"GET / HTTP/1.0\r\n\r\n") && !keeps(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        let small = head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        let f = Facts::of(&small.fields);
        assert!(!needs_hyper(&small, &f) && body_len(&f) == 3, "a small body is read here");
        let large = head(b"PUT / HTTP/1.1\r\nContent-Length: 68719476736\r\nExpect: 100-continue\r\n\r\n");
        let f = Facts::of(&large.fields);
        assert!(!needs_hyper(&large, &f) && body_len(&f) == 1 << 36 && f.expect_continue, "a large one is streamed");
        let chunked = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        let f = Facts::of(&chunked.fields);
        assert!(!needs_hyper(&chunked, &f) && f.length == Length::Chunked, "plain chunked is re-framed here");
        for hyper_side in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Type: application/grpc\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET ftp://x/y HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let h = head(hyper_side);
            assert!(needs_hyper(&h, &Facts::of(&h.fields)), "{:?}", String::from_utf8_lossy(hyper_side));
        }
        let mut named = b"GET / HTTP/1.1\r\nConnection: ".to_vec();
        named.extend_from_slice((0..=MAX_NAMED).map(|i| format!("x-{i}")).collect::<Vec<_>>().join(", ").as_bytes());
        named.extend_from_slice(b"\r\n\r\n");
        let h = head(&named);
        assert!(needs_hyper(&h, &Facts::of(&h.fields)), "more named fields than this side removes linearly");
        let h = head(b"GET / HTTP/1.1\r\nUser-Agent: first\r\nUser-Agent: second\r\n\r\n");
        assert_eq!(Facts::of(&h.fields).user_agent, Some(&b"first"[..]), "the first, as hyper's side reads it");
        // Upgrade without Connection: upgrade is no upgrade: the field is dropped as hop-by-hop.
        assert!(!facts(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n").0);
        let h = head(b"GET / HTTP/1.1\r\nX-Amzn-Trace-Id: t\r\nX-Request-ID: r\r\n\r\n");
        assert_eq!(Facts::of(&h.fields).request_id, Some(&b"r"[..]));
    }

    #[test]
    fn absolute_form_targets() {
        let abs = |t: &'static [u8]| {
            absolute_form(t).map(|(a, t)| {
                let mut out = Vec::new();
                t.push_to(&mut out);
                (String::from_utf8(a.to_vec()).unwrap(), String::from_utf8(out).unwrap())
            })
        };
        let pair = |a: &str, t: &str| Some((a.to_owned(), t.to_owned()));
        assert_eq!(abs(b"http://abs.test/p?q"), pair("abs.test", "/p?q"));
        assert_eq!(abs(b"HTTPS://abs.test:8443"), pair("abs.test:8443", "/"));
        assert_eq!(abs(b"http://u:p@abs.test?x=1"), pair("abs.test", "/?x=1"));
        assert_eq!(abs(b"/a/b"), None);
        assert_eq!(abs(b"*"), None);
        assert_eq!(abs(b"/a?u=http://x"), None);
    }

    #[test]
    fn host_rules() {
        let f = |host| Facts { host, ..Facts::default() };
        assert_eq!(request_host(&f(HostField::One(b"a")), None, 1), Ok(Some(&b"a"[..])));
        assert_eq!(request_host(&f(HostField::One(b"a")), Some(b"abs"), 1), Ok(Some(&b"abs"[..])));
        assert_eq!(request_host(&f(HostField::None), Some(b"abs"), 1), Err(Cause::HostMissing));
        assert_eq!(request_host(&f(HostField::None), None, 0), Ok(None), "HTTP/1.0 may have no Host");
        assert_eq!(request_host(&f(HostField::Repeated), None, 0), Err(Cause::HostRepeated));
    }
}

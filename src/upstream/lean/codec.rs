//! The lean exchange's HTTP/1.1 codec, pure: response heads parsed with httparse, body framing
//! as RFC 9112 §6.3 says (no body for HEAD, 1xx, 204 and 304; chunked when the last transfer
//! coding is chunked, trailers kept; Content-Length, all values equal; otherwise until the
//! upstream closes), chunk-size lines, trailer sections, and the request head written in origin
//! form. The socket side is in [`super::conn`].

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, StatusCode, Version};

use crate::base::cause::Cause;

/// Longest response head (status line and headers) accepted: hyper's default read buffer limit,
/// so responses that passed through hyper's client pass here too (nginx's `proxy_buffer_size`
/// plays the same part: "upstream sent too big header").
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most response header fields accepted (hyper's default is 100).
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Longest trailer section.
pub(super) const MAX_TRAILERS: usize = 64 * 1024;

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeanError {
    /// The upstream closed or reset the connection before the response was complete.
    #[error("the upstream closed the connection before the response was complete")]
    Reset,
    /// The upstream stayed silent longer than `--upstream-timeout`.
    #[error("the upstream stayed silent too long")]
    Timeout,
    /// The upstream's bytes are not a valid HTTP/1.1 response.
    #[error("the upstream sent an invalid HTTP/1.1 response")]
    Protocol,
}

impl From<LeanError> for Cause {
    fn from(e: LeanError) -> Self {
        match e {
            LeanError::Reset => Cause::Reset,
            LeanError::Timeout => Cause::Timeout,
            LeanError::Protocol => Cause::Protocol,
        }
    }
}

/// Where one header field lies in a head's bytes.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpan {
    name: (u32, u32),
    value: (u32, u32),
}

impl FieldSpan {
    /// The span of `name` and `value`, both slices of `base`.
    pub fn of(base: &[u8], name: &[u8], value: &[u8]) -> Self {
        let start = |s: &[u8]| (s.as_ptr() as usize - base.as_ptr() as usize) as u32;
        let (n, v) = (start(name), start(value));
        Self { name: (n, n + name.len() as u32), value: (v, v + value.len() as u32) }
    }

    /// The name, as it was sent.
    pub fn name<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.name.0 as usize..self.name.1 as usize]
    }

    /// The value.
    pub fn value<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.value.0 as usize..self.value.1 as usize]
    }

    /// The value's range in the head.
    pub fn value_range(&self) -> std::ops::Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

/// A parsed final response head, kept as it arrived (names with their case, fields in their
/// order), and how its body is framed.
pub struct Head {
    /// The status code.
    pub status: StatusCode,
    /// The head's bytes, status line to the empty line.
    pub raw: Bytes,
    /// The reason phrase, when it is not the status's canonical one.
    pub reason: Option<std::ops::Range<usize>>,
    /// The fields, in order.
    pub fields: Vec<FieldSpan>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

impl Head {
    /// The fields as (name, value) pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|f| (f.name(&self.raw), f.value(&self.raw)))
    }

    /// How the body is delimited.
    pub fn delimited(&self) -> Delimited {
        match self.framing {
            Framing::Empty => Delimited::Empty,
            Framing::Length(n) => Delimited::Length(n),
            Framing::Chunked(_) => Delimited::Chunked,
            Framing::Close => Delimited::Close,
        }
    }

    /// The fields as a header map (hyper's side), sharing the head's bytes instead of a copy
    /// each, as hyper does.
    pub(super) fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for f in &self.fields {
            // Both were checked when the head was parsed.
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(f.name(&self.raw)),
                HeaderValue::from_maybe_shared(self.raw.slice(f.value_range())),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        headers
    }
}

/// How a response body is delimited, as its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimited {
    /// No body (HEAD, 1xx, 204, 304, `Content-Length: 0`).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes.
    Close,
}

pub(super) enum Parsed {
    Final(Head),
    /// A 1xx response was consumed; the final one follows.
    Informational,
    Partial,
}

/// Parses (and consumes) one response head at the start of `buf`.
pub(super) fn parse_head(buf: &mut BytesMut, is_head: bool) -> Result<Parsed, LeanError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        // The limit holds however the head arrived (in one read or many).
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(LeanError::Protocol),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(LeanError::Protocol),
    };
    let code = res.code.ok_or(LeanError::Protocol)?;
    let status = StatusCode::from_u16(code).map_err(|_| LeanError::Protocol)?;
    if status.is_informational() {
        // 100 Continue, 103 Early Hints: dropped, as hyper's client does. 101 was not asked for.
        if code == 101 {
            return Err(LeanError::Protocol);
        }
        let _ = buf.split_to(len);
        return Ok(Parsed::Informational);
    }
    let version = if res.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    let reason = match res.reason {
        Some(r) if Some(r) != status.canonical_reason() && !r.is_empty() => {
            let at = r.as_ptr() as usize - buf.as_ptr() as usize;
            Some(at..at + r.len())
        }
        _ => None,
    };
    let mut fields = Vec::with_capacity(res.headers.len());
    for h in res.headers.iter() {
        // httparse's token and value bytes are exactly those `HeaderName` and `HeaderValue`
        // take, so hyper's side builds its map from these spans without a failure.
        fields.push(FieldSpan::of(buf, h.name.as_bytes(), h.value));
    }
    let raw = buf.split_to(len).freeze();
    let fields_of = || fields.iter().map(|f| (f.name(&raw), f.value(&raw)));
    let (framing, clean) = framing(fields_of, status, is_head)?;
    let keep_alive = version == Version::HTTP_11 && clean && !asks_close(fields_of());
    Ok(Parsed::Final(Head { status, raw, reason, fields, framing, keep_alive }))
}

/// A final response head parsed from `bytes` (tests of the layers above).
#[cfg(test)]
pub fn parse_response_head(bytes: &[u8], is_head: bool) -> Option<Head> {
    match parse_head(&mut BytesMut::from(bytes), is_head) {
        Ok(Parsed::Final(head)) => Some(head),
        _ => None,
    }
}

/// How the body is delimited, and whether the framing leaves the connection reusable.
fn framing<'a, I>(fields: impl Fn() -> I, status: StatusCode, is_head: bool) -> Result<(Framing, bool), LeanError>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    let named = |want: &'static str| move |(n, _): &(&[u8], &[u8])| n.eq_ignore_ascii_case(want.as_bytes());
    if let Some((_, te)) = fields().filter(named("transfer-encoding")).last() {
        // Transfer-Encoding overrides Content-Length (not even parsed then, as hyper did), but
        // a message with both must close the connection (RFC 9112 §6.3).
        let length = fields().any(|f| named("content-length")(&f));
        let chunked =
            te.rsplit(|&b| b == b',').next().is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked { (Framing::Chunked(Chunk::Size), !length) } else { (Framing::Close, false) });
    }
    Ok(match content_length(fields().filter(named("content-length")).map(|(_, v)| v))? {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

/// The Content-Length, when given: every value (and list element) must be the same number.
pub fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, LeanError> {
    let mut found: Option<u64> = None;
    for value in values {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(LeanError::Protocol);
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(LeanError::Protocol);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn asks_close<'a>(mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    fields.any(|(n, v)| {
        n.eq_ignore_ascii_case(b"connection")
            && v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Writes the request head in origin form, each field as it is (an HTTP/2 client's split
/// `Cookie` fields were joined before, as RFC 9113 §8.2.3 asks; an HTTP/1.1 client's stay apart).
pub(super) fn encode_head(parts: &request::Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in parts.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods whose request may be sent again when a reused connection turned out closed before any
/// byte of the answer (RFC 9110 §9.2.2), as nginx's `proxy_next_upstream error` does.
pub(super) fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// How the response body is delimited.
#[derive(Clone)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    Close,
}

/// Where the chunked decoder stands.
#[derive(Clone)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// Parses a chunk-size line (`1a;ext=1\r\n`) at the start of `buf`; `None` until it is complete.
pub fn chunk_size(buf: &mut BytesMut) -> Result<Option<u64>, LeanError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_CHUNK_LINE { Err(LeanError::Protocol) } else { Ok(None) };
    };
    if end > MAX_CHUNK_LINE || end == 0 || buf[end - 1] != b'\r' {
        return Err(LeanError::Protocol);
    }
    let line = &buf[..end - 1];
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(LeanError::Protocol);
    }
    // Leading zeros are allowed; the value itself must fit.
    let zeros = digits.iter().take_while(|&&b| b == b'0').count().min(digits.len() - 1);
    let digits = &digits[zeros..];
    if digits.len() > 15 {
        return Err(LeanError::Protocol);
    }
    let text = std::str::from_utf8(digits).map_err(|_| LeanError::Protocol)?;
    let size = u64::from_str_radix(text, 16).map_err(|_| LeanError::Protocol)?;
    let _ = buf.split_to(end + 1);
    Ok(Some(size))
}

/// Parses (and consumes) the trailer section after the last chunk; `None` until it is complete.
pub fn trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>, LeanError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some((len, fields)) = trailer_section(buf, 0, &mut slots)? else { return Ok(None) };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| LeanError::Protocol)?;
        let value = HeaderValue::from_bytes(f.value).map_err(|_| LeanError::Protocol)?;
        map.append(name, value);
    }
    let _ = buf.split_to(len);
    Ok(Some(map))
}

/// The trailer section at the start of `buf` (its fields, then an empty line): its length with
/// that line, and its fields; `None` until it is complete. Every line ends in CRLF. `from` is how
/// much of `buf` an earlier call already found incomplete, so bytes that dribble in are looked
/// at once each.
pub fn trailer_section<'h, 'b>(
    buf: &'b [u8],
    from: usize,
    slots: &'h mut [httparse::Header<'b>],
) -> Result<Option<(usize, &'h [httparse::Header<'b>])>, LeanError> {
    if buf.starts_with(b"\r\n") {
        return Ok(Some((2, &[])));
    }
    // A bare LF where the section's first line should end is refused at once, as hyper does.
    if buf.starts_with(b"\n") || buf.starts_with(b"\r") && buf.len() >= 2 && buf[1] != b'\n' {
        return Err(LeanError::Protocol);
    }
    // A buffer shorter than what was looked at is not the same section: look at it all.
    let start = if from > buf.len() { 0 } else { from.saturating_sub(3) };
    let Some(end) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| start + i) else {
        return if buf.len() > MAX_TRAILERS { Err(LeanError::Protocol) } else { Ok(None) };
    };
    if end + 4 > MAX_TRAILERS {
        return Err(LeanError::Protocol);
    }
    let section = &buf[..end + 4];
    // httparse takes a lone LF as a line end: one here would let the section end earlier for
    // one reader than for another.
    if section.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || section[i - 1] != b'\r')) {
        return Err(LeanError::Protocol);
    }
    match httparse::parse_headers(section, slots) {
        Ok(httparse::Status::Complete((len, fields))) if len == section.len() => Ok(Some((len, fields))),
        _ => Err(LeanError::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(text: &str, is_head: bool) -> Result<Parsed, LeanError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf, is_head)
    }

    fn framing_of(text: &str) -> (String, bool) {
        match head_of(text, false) {
            Ok(Parsed::Final(h)) => {
                let f = match h.framing {
                    Framing::Empty => "empty".to_string(),
                    Framing::Length(n) => format!("length {n}"),
                    Framing::Chunked(_) => "chunked".into(),
                    Framing::Close => "close".into(),
                };
                (f, h.keep_alive)
            }
            Ok(Parsed::Informational) => ("1xx".into(), false),
            Ok(Parsed::Partial) => ("partial".into(), false),
            Err(e) => (format!("error {e:?}"), false),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", ("length 5", true)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", ("length 5", true)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 204 No Content\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n", ("empty", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", ("chunked", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", ("chunked", true)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n", ("chunked", false)),
            // Transfer-Encoding overrides even a broken Content-Length.
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 10, 20\r\n\r\n", ("chunked", false)),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", ("close", false)),
            ("HTTP/1.1 200 OK\r\n\r\n", ("close", false)),
            ("HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n", ("length 5", false)),
            ("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\n", ("length 5", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n", ("1xx", false)),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", ("error Protocol", false)),
            ("HTTP/1.1 200 OK\r\ncontent-le", ("partial", false)),
            ("SSH-2.0-OpenSSH\r\n\r\n", ("error Protocol", false)),
        ];
        for (text, (want, keep)) in cases {
            assert_eq!(framing_of(text), (want.to_string(), keep), "{text:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(framing_of(&huge).0, "error Protocol", "a head over the limit, complete in one read");
        // HEAD: no body whatever the length says.
        match head_of("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", true) {
            Ok(Parsed::Final(h)) => assert!(matches!(h.framing, Framing::Empty)),
            _ => panic!("HEAD response not parsed"),
        }
    }

    #[test]
    fn headers_and_reason_are_kept() {
        let Ok(Parsed::Final(h)) =
            head_of("HTTP/1.1 404 Nope\r\nX-A: 1\r\nx-a: 2\r\nServer: blue\r\ncontent-length: 0\r\n\r\n", false)
        else {
            panic!("not parsed")
        };
        assert_eq!(h.status, 404);
        let names: Vec<&[u8]> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"X-A"[..], b"x-a", b"Server", b"content-length"], "case and order as sent");
        let map = h.header_map();
        assert_eq!(map.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(map["server"], "blue");
        assert_eq!(h.reason.clone().map(|r| &h.raw[r]), Some(&b"Nope"[..]));
    }

    #[test]
    fn chunk_lines_and_trailers() {
        let mut buf = BytesMut::from(&b"1a;name=v\r\nrest"[..]);
        assert_eq!(chunk_size(&mut buf), Ok(Some(26)));
        assert_eq!(&buf[..], b"rest");
        for bad in [&b"zz\r\n"[..], b"\r\n", b"1a\n", b"12345678901234567\r\n"] {
            assert_eq!(chunk_size(&mut BytesMut::from(bad)), Err(LeanError::Protocol), "{bad:?}");
        }
        assert_eq!(chunk_size(&mut BytesMut::from(&b"1a"[..])), Ok(None));
        assert_eq!(chunk_size(&mut BytesMut::from(&b"00000000000000000000001a\r\n"[..])), Ok(Some(26)));
        assert_eq!(chunk_size(&mut BytesMut::from(&b"0000\r\n"[..])), Ok(Some(0)));
        let mut buf = BytesMut::from(&b"x-checksum: abc\r\nx-b: 2\r\n\r\nnext"[..]);
        let map = trailers(&mut buf).unwrap().unwrap();
        assert_eq!(map["x-checksum"], "abc");
        assert_eq!(&buf[..], b"next");
        assert_eq!(trailers(&mut BytesMut::from(&b"\r\n"[..])).unwrap().map(|m| m.len()), Some(0));
        assert_eq!(trailers(&mut BytesMut::from(&b"x-a: 1\r\n"[..])).unwrap(), None);
        // A read that ends after the first byte of a trailer field: wait for the rest.
        assert_eq!(trailers(&mut BytesMut::from(&b"x"[..])).unwrap(), None);
        assert_eq!(trailers(&mut BytesMut::from(&b"\r"[..])).unwrap(), None);
        // A bare LF instead of the empty line: refused at once.
        assert_eq!(trailers(&mut BytesMut::from(&b"\n"[..])), Err(LeanError::Protocol));
    }

    #[test]
    fn request_head_in_origin_form_with_fields_as_they_are() {
        let req = http::Request::get("/a/b?q=1")
            .header("host", "shop.example.com")
            .header("cookie", "a=1")
            .header("x-forwarded-for", "10.0.0.1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_head(&parts, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a/b?q=1 HTTP/1.1\r\nhost: shop.example.com\r\ncookie: a=1\r\ncookie: b=2\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
        );
    }
}

//! The response head toward the client, pure: blue's head as it arrived (status line, names with
//! their case, fields in their order) without its hop-by-hop fields, framed for this connection;
//! and the proxy's own short answers.

use http::StatusCode;

use super::forward::{field, named_in_connection};
use super::head::tokens;
use crate::base::time::push_http_date;
use crate::upstream::lean::{Delimited, Head};

/// How the body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOut {
    /// Nothing follows the head.
    None,
    /// The data as it is (blue's `Content-Length` was kept).
    Length,
    /// In chunks (blue's were decoded; a body delimited by blue's close is chunked too, so the
    /// client's connection stays open).
    Chunked,
    /// The data as it is, and the connection closed after it: an HTTP/1.0 client knows no
    /// chunks.
    UntilClose,
}

/// The client connection a response head is written for.
#[derive(Debug, Clone, Copy)]
pub struct ClientConn {
    /// The client's HTTP/1.x minor version.
    pub minor: u8,
    /// The connection closes after this response.
    pub close: bool,
}

/// Writes blue's response head for `client`.
pub fn encode(head: &Head, client: ClientConn, now_secs: u64, out: &mut Vec<u8>) -> BodyOut {
    let close = client.close;
    let raw = &head.raw[..];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status.as_str().as_bytes());
    out.push(b' ');
    match &head.reason {
        Some(r) => out.extend_from_slice(&raw[r.clone()]),
        None => out.extend_from_slice(head.status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let delimited = head.delimited();
    let names_fields = head.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(b"connection")
            && tokens(v).any(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
    });
    let (mut date, mut length, mut chunked_inside) = (false, false, false);
    for (name, value) in head.iter() {
        let is = |want: &[u8]| name.len() == want.len() && name.eq_ignore_ascii_case(want);
        match name.len() {
            2 if is(b"te") => continue,
            4 if is(b"date") => date = true,
            7 if is(b"upgrade") => continue,
            10 if is(b"connection") || is(b"keep-alive") => continue,
            14 if is(b"content-length") => {
                match delimited {
                    Delimited::Empty if !length => field(out, name, value),
                    Delimited::Length(n) if !length => {
                        out.extend_from_slice(name);
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    _ => {}
                }
                length = true;
                continue;
            }
            16 if is(b"proxy-connection") => continue,
            17 if is(b"transfer-encoding") => {
                match delimited {
                    Delimited::Chunked if client.minor >= 1 => field(out, name, value),
                    // Blue's codings stay; chunked goes on top of them below, unless it is
                    // already there (not last: the body ends with blue's close).
                    Delimited::Close if client.minor >= 1 => {
                        chunked_inside |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"chunked"));
                        field(out, name, value);
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        if names_fields && named_in_connection(head.iter(), name) {
            continue;
        }
        field(out, name, value);
    }
    let body = match delimited {
        Delimited::Empty => BodyOut::None,
        Delimited::Length(_) => BodyOut::Length,
        // An HTTP/1.0 client knows no transfer codings: the decoded body, until the close.
        Delimited::Chunked | Delimited::Close if client.minor == 0 => BodyOut::UntilClose,
        Delimited::Chunked => BodyOut::Chunked,
        // Chunked may be applied once only (RFC 9112 §7): passed on as it came, until the close.
        Delimited::Close if chunked_inside => BodyOut::UntilClose,
        Delimited::Close => {
            // A body delimited by blue's close is chunked here (after blue's own codings, as a
            // field of its own: fields of one name are one list), so the client's connection
            // lives on.
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyOut::Chunked
        }
    };
    if !date {
        out.extend_from_slice(b"date: ");
        push_http_date(out, now_secs);
        out.extend_from_slice(b"\r\n");
    }
    if close || body == BodyOut::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client.minor == 0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    body
}

/// Writes the proxy's own answer: `status` with a short text body.
pub fn encode_own(status: StatusCode, body: &str, client: ClientConn, now_secs: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    push_http_date(out, now_secs);
    if client.close {
        out.extend_from_slice(b"\r\nconnection: close");
    } else if client.minor == 0 {
        out.extend_from_slice(b"\r\nconnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// The line before a chunk of `len` bytes.
pub fn chunk_start(len: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the trailer section.
pub fn chunked_end(trailers: Option<&http::HeaderMap>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, is_head: bool) -> Head {
        crate::upstream::lean::parse_response_head(raw.as_bytes(), is_head).expect("a final head")
    }

    fn answer_to(raw: &str, minor: u8, close: bool) -> (String, BodyOut) {
        let mut out = Vec::new();
        let body = encode(&head(raw, false), ClientConn { minor, close }, 784_111_777, &mut out);
        (String::from_utf8(out).unwrap(), body)
    }

    fn answer(raw: &str, close: bool) -> (String, BodyOut) {
        answer_to(raw, 1, close)
    }

    #[test]
    fn blues_head_as_it_came_without_hop_by_hop() {
        assert_eq!(
            answer(
                "HTTP/1.1 200 OK\r\nX-Mixed-Case: Kept\r\nETag: \"v1\"\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\
                 Keep-Alive: timeout=5\r\nDate: d\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            (
                "HTTP/1.1 200 OK\r\nX-Mixed-Case: Kept\r\nETag: \"v1\"\r\nDate: d\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                 Content-Length: 2\r\n\r\n"
                    .to_owned(),
                BodyOut::Length
            )
        );
    }

    #[test]
    fn framing_for_this_connection() {
        let (text, body) = answer("HTTP/1.0 404 Gone Fishing\r\nDate: d\r\n\r\n", true);
        assert_eq!(
            text,
            "HTTP/1.1 404 Gone Fishing\r\nDate: d\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(body, BodyOut::Chunked, "a body until blue's close is chunked toward the client");
        let (text, body) = answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", false);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        assert_eq!(body, BodyOut::Chunked);
        let (text, body) = answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nDate: d\r\n\r\n", false);
        assert_eq!(text, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nDate: d\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(body, BodyOut::Chunked);
        let (text, body) = answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nDate: d\r\n\r\n", false);
        assert_eq!(text, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nDate: d\r\nconnection: close\r\n\r\n");
        assert_eq!(body, BodyOut::UntilClose, "chunked is applied once only");
        let (text, body) = answer("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nDate: d\r\n\r\n", false);
        assert_eq!((text.contains("Content-Length: 7"), body), (true, BodyOut::None));
        let (text, _) = answer("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nDate: d\r\n\r\n", false);
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
    }

    #[test]
    fn an_http_1_0_client_gets_no_chunks() {
        let (text, body) = answer_to("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: d\r\n\r\n", 0, false);
        assert_eq!(
            (text.as_str(), body),
            ("HTTP/1.1 200 OK\r\nDate: d\r\nconnection: close\r\n\r\n", BodyOut::UntilClose)
        );
        let (text, body) = answer_to("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: d\r\n\r\n", 0, false);
        assert!(text.ends_with("connection: keep-alive\r\n\r\n") && body == BodyOut::Length, "{text}");
    }

    #[test]
    fn own_answers_and_chunks() {
        let mut out = Vec::new();
        encode_own(StatusCode::BAD_GATEWAY, "no\n", ClientConn { minor: 1, close: true }, 0, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 3\r\n\
             date: Thu, 01 Jan 1970 00:00:00 GMT\r\nconnection: close\r\n\r\nno\n"
        );
        let mut out = Vec::new();
        chunk_start(0x1a2b, &mut out);
        chunk_start(0, &mut out);
        assert_eq!(out, b"1a2b\r\n0\r\n");
    }
}

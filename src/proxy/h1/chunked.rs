//! A chunked request body re-framed toward blue, pure: each chunk goes on with its size and data
//! as the client sent them, without its extensions, then the last chunk and the trailer fields
//! written anew, less those a trailer may not carry (framing, routing, hop-by-hop, forwarding:
//! the fields hyper's client leaves out, and the ones this proxy sets). Blue so reads exactly the
//! framing the proxy read, whatever leniency either side has. The size line and the trailers are
//! parsed by the lean codec's rules (CRLF only, sizes that fit, bounded lines).

use bytes::{Buf, BytesMut};

use crate::base::cause::Cause;
use crate::upstream::lean::{chunk_size, trailer_section, MAX_HEADERS};

/// Where the body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Size,
    Data(u64),
    DataEnd,
    /// How much of the trailer section was found incomplete already.
    Trailers(usize),
    Done,
}

/// The re-framer's state across reads.
#[derive(Debug)]
pub struct Rechunk {
    at: At,
}

impl Rechunk {
    pub fn new() -> Self {
        Self { at: At::Size }
    }

    /// Whether the last chunk and the trailers were read.
    pub fn done(&self) -> bool {
        self.at == At::Done
    }

    /// Moves what `input` holds of the body into `out`, re-framed, and returns how many data bytes
    /// that was; an incomplete size line or trailer section stays in `input` for the next read,
    /// and what follows the body (a pipelined request) is left there untouched. A framing error
    /// is the client's: the body is refused ([`Cause::ClientAborted`], 400), as hyper's side
    /// refuses it.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<u64, Cause> {
        let bad = |_| Cause::ClientAborted;
        let mut data = 0;
        loop {
            match self.at {
                At::Size => match chunk_size(input).map_err(bad)? {
                    None => return Ok(data),
                    Some(0) => self.at = At::Trailers(0),
                    Some(size) => {
                        push_size(out, size);
                        self.at = At::Data(size);
                    }
                },
                At::Data(left) => {
                    let take = left.min(input.len() as u64) as usize;
                    if take == 0 {
                        return Ok(data);
                    }
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    data += take as u64;
                    self.at = if left == take as u64 { At::DataEnd } else { At::Data(left - take as u64) };
                }
                At::DataEnd => {
                    match input.get(..2) {
                        Some(b"\r\n") => input.advance(2),
                        Some(_) => return Err(Cause::ClientAborted),
                        None if input.first().is_some_and(|&b| b != b'\r') => return Err(Cause::ClientAborted),
                        None => return Ok(data),
                    }
                    out.extend_from_slice(b"\r\n");
                    self.at = At::Size;
                }
                At::Trailers(from) => {
                    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let Some((len, fields)) = trailer_section(input, from, &mut slots).map_err(bad)? else {
                        self.at = At::Trailers(input.len());
                        return Ok(data);
                    };
                    out.extend_from_slice(b"0\r\n");
                    for f in fields.iter().filter(|f| may_trail(f.name.as_bytes())) {
                        out.extend_from_slice(f.name.as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(f.value);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    input.advance(len);
                    self.at = At::Done;
                }
                At::Done => return Ok(data),
            }
        }
    }
}

/// Whether a trailer field goes on to blue: not one that frames, routes or authorizes the
/// request (RFC 9110 §6.5.1; hyper's client drops the same), nor a hop-by-hop or forwarding field
/// the proxy owns.
fn may_trail(name: &[u8]) -> bool {
    const DROPPED: &[&[u8]] = &[
        b"authorization",
        b"cache-control",
        b"connection",
        b"content-encoding",
        b"content-length",
        b"content-range",
        b"content-type",
        b"expect",
        b"forwarded",
        b"host",
        b"keep-alive",
        b"max-forwards",
        b"proxy-authorization",
        b"proxy-connection",
        b"set-cookie",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
    ];
    !DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// A chunk-size line in lowercase hex.
fn push_size(out: &mut Vec<u8>, size: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - size.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[((size >> (i * 4)) & 0xf) as usize]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `step` bytes: the re-framed bytes, the data count, what is left.
    fn run(raw: &[u8], step: usize) -> Result<(String, u64, Vec<u8>, bool), Cause> {
        let mut r = Rechunk::new();
        let (mut input, mut out, mut data) = (BytesMut::new(), Vec::new(), 0);
        for piece in raw.chunks(step) {
            input.extend_from_slice(piece);
            data += r.feed(&mut input, &mut out)?;
        }
        Ok((String::from_utf8_lossy(&out).into_owned(), data, input.to_vec(), r.done()))
    }

    #[test]
    fn chunks_keep_their_sizes_and_trailers_and_lose_extensions() {
        let raw = b"3;name=v\r\nabc\r\n00A\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nGET /next";
        // Cut at every place: each split of a size line, of the data's CRLF, of the trailers'
        // end.
        for step in 1..=raw.len() {
            let (out, data, left, done) = run(raw, step).unwrap();
            assert_eq!(out, "3\r\nabc\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n", "step {step}");
            assert_eq!((data, &left[..], done), (13, &b"GET /next"[..], true), "step {step}");
        }
        let raw = b"0\r\nX-Digest: d1\r\nHost: evil\r\nx-forwarded-for: 1.2.3.4\r\nContent-Length: 9\r\n\r\n";
        for step in 1..=raw.len() {
            let (out, _, _, done) = run(raw, step).unwrap();
            assert_eq!((out.as_str(), done), ("0\r\nX-Digest: d1\r\n\r\n", true), "trailers that may not trail go");
        }
        let mut big = b"0\r\n".to_vec();
        while big.len() < 70_000 {
            big.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789\r\n");
        }
        big.extend_from_slice(b"\r\n");
        assert_eq!(run(&big, big.len()).err(), Some(Cause::ClientAborted), "trailers over 64 KiB in one read");
        let (out, _, _, done) = run(b"0\r\n\r\n", 1).unwrap();
        assert_eq!((out.as_str(), done), ("0\r\n\r\n", true));
        let (out, _, _, done) = run(b"10000\r\n", 3).unwrap();
        assert_eq!((out.as_str(), done), ("10000\r\n", false));
    }

    #[test]
    fn broken_framing_is_the_clients_error() {
        for raw in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3;x\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"zz\r\nabc\r\n",
            b"\r\n",
            b"-3\r\nabc\r\n",
            b"ffffffffffffffffff1\r\nx\r\n",
            b"0\r\n\n",
            b"0\r\nX-A: b\r\n c\r\n\r\n",
            // A lone LF inside the section: httparse would end it there.
            b"0\r\nX: a\n\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"0\r\nX: a\nY: b\r\n\r\n",
        ] {
            for step in 1..=raw.len() {
                assert_eq!(
                    run(raw, step).err(),
                    Some(Cause::ClientAborted),
                    "{:?} step {step}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
    }

    #[test]
    fn sizes_are_written_in_hex() {
        for (size, text) in [(1u64, "1"), (15, "f"), (16, "10"), (0xabc, "abc"), (u64::from(u32::MAX) + 1, "100000000")]
        {
            let mut out = Vec::new();
            push_size(&mut out, size);
            assert_eq!(out, format!("{text}\r\n").into_bytes());
        }
    }
}

//! What green's answer to a probe means (pure): `served`, `unrouted` (green's default answer, or
//! a 404 where blue answers), or `failing` (5xx, the connection, TLS or the certificate), with a
//! one-line detail an operator can act on.

use crate::base::names::named_enum;
use crate::record::stats::StatusClasses;

named_enum! {
    /// One probe's verdict, least to most serious for a cutover: a host's verdict is its paths' worst.
    pub enum ProbeVerdict {
        /// Green answered as an application does (401/403/405 too: the route exists).
        Served = "served",
        /// Green has the route but fails it: 5xx, refused, reset, timed out, TLS or certificate.
        Failing = "failing",
        /// Green has no route: its default answer.
        Unrouted = "unrouted",
    }
}

/// What green answered (the parts that recognize its default answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Server` header.
    pub server: Option<String>,
    /// Body bytes read (at most the client's bound).
    pub body_len: u64,
    /// FNV-1a of those bytes.
    pub body_hash: u64,
}

impl Answer {
    /// Whether this is `default`'s answer: same status and server, and the same body (or one of
    /// the same length, for a default page that carries a request id).
    pub fn is_like(&self, default: &Answer) -> bool {
        self.status == default.status
            && self.server == default.server
            && (self.body_hash == default.body_hash || self.body_len == default.body_len)
    }
}

/// FNV-1a, 64 bits: enough to tell two bodies apart.
pub fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The FNV-1a starting value.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The verdict on `answer` to `asked` (`GET /v1/pay/8`), given green's default answer (for an
/// unknown host) and what blue answered for the same template.
pub fn judge(asked: &str, answer: &Answer, default: Option<&Answer>, blue: &StatusClasses) -> (ProbeVerdict, String) {
    let status = answer.status;
    if default.is_some_and(|d| answer.is_like(d)) {
        return (ProbeVerdict::Unrouted, format!("{asked} → {status} like green's default backend"));
    }
    if status >= 500 {
        return (ProbeVerdict::Failing, format!("{asked} → {status}"));
    }
    // A 404 that is not the default answer is an application's; where blue answers this template
    // with success, green's application lacks the path.
    if status == 404 && blue.c2 + blue.c3 > blue.c4 {
        let class = if blue.c2 >= blue.c3 { "2xx" } else { "3xx" };
        return (ProbeVerdict::Unrouted, format!("{asked} → 404 where blue answers {class}"));
    }
    (ProbeVerdict::Served, format!("{asked} → {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, server: &str, body: &str) -> Answer {
        Answer {
            status,
            server: Some(server.into()),
            body_len: body.len() as u64,
            body_hash: fnv1a(body.as_bytes(), FNV_START),
        }
    }

    #[test]
    fn verdicts() {
        let default = answer(404, "nginx", "default backend - 404");
        let blue_ok = StatusClasses { c2: 9, ..StatusClasses::default() };
        let blue_404 = StatusClasses { c4: 9, ..StatusClasses::default() };
        let cases = [
            (answer(200, "nginx", "pay"), &blue_ok, ProbeVerdict::Served, "GET /p → 200"),
            (answer(401, "nginx", "who?"), &blue_ok, ProbeVerdict::Served, "GET /p → 401"),
            (
                answer(404, "nginx", "default backend - 404"),
                &blue_ok,
                ProbeVerdict::Unrouted,
                "GET /p → 404 like green's default backend",
            ),
            (answer(200, "nginx", "default backend - 404"), &blue_ok, ProbeVerdict::Served, "GET /p → 200"),
            (
                answer(404, "nginx", "no such order"),
                &blue_ok,
                ProbeVerdict::Unrouted,
                "GET /p → 404 where blue answers 2xx",
            ),
            (answer(404, "nginx", "no such order"), &blue_404, ProbeVerdict::Served, "GET /p → 404"),
            (answer(503, "nginx", "down"), &blue_ok, ProbeVerdict::Failing, "GET /p → 503"),
        ];
        for (got, blue, verdict, detail) in cases {
            assert_eq!(judge("GET /p", &got, Some(&default), blue), (verdict, detail.to_owned()), "{got:?}");
        }
        assert!(ProbeVerdict::Unrouted > ProbeVerdict::Failing && ProbeVerdict::Failing > ProbeVerdict::Served);
    }
}

//! Just enough DER to read a leaf certificate's DNS names (subjectAltName) and its expiry: pure
//! functions over bytes, every read bounds-checked (a malformed certificate is an error, never a
//! panic).

use crate::base::time::unix_seconds;

/// One DER TLV: (tag, contents, what follows). Single-byte tags, definite lengths up to 4 bytes.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), ()> {
    let (&tag, rest) = input.split_first().ok_or(())?;
    let (&first, rest) = rest.split_first().ok_or(())?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(());
        }
        (rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | b as usize), &rest[n..])
    };
    if rest.len() < len {
        return Err(());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// What the proxy reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    /// The dNSName entries of the subjectAltName extension, lowercased, without a trailing dot.
    pub dns_names: Vec<String>,
    /// notAfter, unix milliseconds (`None` when the time cannot be read).
    pub not_after_ms: Option<u64>,
}

/// A certificate whose DER structure cannot be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER")]
pub struct Malformed;

impl From<()> for Malformed {
    fn from(_: ()) -> Self {
        Malformed
    }
}

/// Reads the DNS names and the expiry of an X.509 certificate (DER).
pub fn leaf_info(cert: &[u8]) -> Result<LeafInfo, Malformed> {
    Ok(walk(cert)?)
}

fn walk(cert: &[u8]) -> Result<LeafInfo, ()> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT
    const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
    let (tag, cert, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return Err(());
    }
    let (tag, mut tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return Err(());
    }
    let mut names = Vec::new();
    let mut not_after_ms = None;
    // TBSCertificate: [0] version?, serial, signature, issuer, validity, subject, spki, …, [3] extensions.
    let mut index = 0;
    while !tbs.is_empty() {
        let (tag, body, rest) = tlv(tbs)?;
        tbs = rest;
        if index == 0 && tag == VERSION {
            continue;
        }
        index += 1;
        if index == 4 {
            if tag != SEQUENCE {
                return Err(());
            }
            let (_, _, after_not_before) = tlv(body)?;
            let (time_tag, time, _) = tlv(after_not_before)?;
            not_after_ms = der_time(time_tag, time);
            continue;
        }
        if tag != EXTENSIONS {
            continue;
        }
        let (_, mut exts, _) = tlv(body)?;
        while !exts.is_empty() {
            let (_, ext, rest) = tlv(exts)?;
            exts = rest;
            let (_, oid, mut ext) = tlv(ext)?;
            if oid != SAN_OID {
                continue;
            }
            let (mut tag, mut value, after) = tlv(ext)?;
            if tag == 0x01 {
                ext = after; // `critical` BOOLEAN
                (tag, value, _) = tlv(ext)?;
            }
            if tag != 0x04 {
                return Err(());
            }
            let (_, mut general_names, _) = tlv(value)?;
            while !general_names.is_empty() {
                let (tag, name, rest) = tlv(general_names)?;
                general_names = rest;
                if tag == 0x82 {
                    if let Ok(s) = std::str::from_utf8(name) {
                        names.push(s.trim_end_matches('.').to_ascii_lowercase());
                    }
                }
            }
        }
    }
    Ok(LeafInfo { dns_names: names, not_after_ms })
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) → unix ms.
fn der_time(tag: u8, raw: &[u8]) -> Option<u64> {
    let digits = raw.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| digits.get(r).map(|d| d.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let f = |i: usize| num(rest + i * 2..rest + i * 2 + 2);
    let secs = unix_seconds(year, f(0)?, f(1)?, f(2)?, f(3)?, f(4)?)?;
    u64::try_from(secs).ok()?.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::time::parse_rfc3339;

    #[test]
    fn names_and_expiry_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["A.example.com".into(), "*.b.example.com".into(), "10.0.0.1".into()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let cert = params.self_signed(&key).unwrap();
        let info = leaf_info(cert.der()).unwrap();
        assert_eq!(info.dns_names, ["a.example.com", "*.b.example.com"]);
        assert_eq!(info.not_after_ms, parse_rfc3339("2031-07-09T00:00:00Z"));
        params.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let info = leaf_info(params.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(info.not_after_ms, parse_rfc3339("2049-12-31T00:00:00Z"), "UTCTime");
        params.not_after = rcgen::date_time_ymd(2050, 1, 2);
        let info = leaf_info(params.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(info.not_after_ms, parse_rfc3339("2050-01-02T00:00:00Z"), "GeneralizedTime");
        assert_eq!(leaf_info(b"\x30\x03\x02\x01"), Err(Malformed));
        // Truncations and corruptions of a real certificate never panic.
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = leaf_info(&der[..cut]);
            let mut bad = der.clone();
            bad[cut] ^= 0xff;
            let _ = leaf_info(&bad);
        }
    }

    #[test]
    fn times() {
        assert_eq!(der_time(0x17, b"991231235959Z"), parse_rfc3339("1999-12-31T23:59:59Z"));
        assert_eq!(der_time(0x17, b"300101000000Z"), parse_rfc3339("2030-01-01T00:00:00Z"));
        assert_eq!(der_time(0x18, b"21000101000000Z"), parse_rfc3339("2100-01-01T00:00:00Z"));
        assert_eq!(der_time(0x17, b"3001010000Z"), None);
        assert_eq!(der_time(0x18, b"2100010100000+0100"), None);
    }
}

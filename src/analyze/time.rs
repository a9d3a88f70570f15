//! Timestamps as access logs write them, to unix milliseconds (pure); the calendar arithmetic
//! is `base::time`'s.

use crate::base::time::{parse_rfc3339, unix_seconds, utc_offset_s};

/// ISO 8601 / RFC 3339 with `Z` or an offset, any fraction: `2018-07-02T22:23:00.186641Z`,
/// `2026-11-20T10:00:00+09:00` (nginx `$time_iso8601`), `+0900` too.
pub fn iso8601(s: &str) -> Option<u64> {
    parse_rfc3339(s)
}

/// nginx `$time_local` (Common Log Format): `20/Nov/2026:10:00:00 +0900`.
pub fn clf(s: &str) -> Option<u64> {
    let (stamp, zone) = s.trim().trim_matches(['[', ']']).split_once(' ')?;
    let b = stamp.as_bytes();
    if b.len() != 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' || b[17] != b':' {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == &stamp[3..6])? as i64 + 1;
    let num = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (d, y, h, mi, sec) = (num(0..2)?, num(7..11)?, num(12..14)?, num(15..17)?, num(18..20)?);
    let secs = unix_seconds(y, month, d, h, mi, sec)?.checked_sub(utc_offset_s(zone)?)?;
    u64::try_from(secs.checked_mul(1000)?).ok()
}

/// nginx `$msec`: seconds since the epoch with milliseconds, `1763632800.123`.
pub fn msec(s: &str) -> Option<u64> {
    let (secs, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let secs: u64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = if frac.is_empty() { 0 } else { format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()? };
    secs.checked_mul(1000)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_530_570_180_186; // 2018-07-02T22:23:00.186Z

    #[test]
    fn formats_logs_use() {
        type Parser = fn(&str) -> Option<u64>;
        let cases: &[(&str, Parser, Option<u64>)] = &[
            ("2018-07-02T22:23:00.186641Z", iso8601, Some(T)),
            ("2018-07-02T22:23:00Z", iso8601, Some(T - 186)),
            ("2018-07-03T07:23:00+09:00", iso8601, Some(T - 186)),
            ("2018-07-02T17:23:00-0500", iso8601, Some(T - 186)),
            ("2018-07-02T22:23:00", iso8601, None),
            ("2018-13-02T22:23:00Z", iso8601, None),
            ("yesterday", iso8601, None),
            ("02/Jul/2018:22:23:00 +0000", clf, Some(T - 186)),
            ("[03/Jul/2018:07:23:00 +0900]", clf, Some(T - 186)),
            ("02/Jyl/2018:22:23:00 +0000", clf, None),
            ("02/Jul/2018:22:23:00", clf, None),
            ("1530570180.186", msec, Some(T)),
            ("1530570180", msec, Some(T - 186)),
            ("-5", msec, None),
            ("1530570180.12é", msec, None),
            ("1530570180.1x", msec, None),
        ];
        for (text, parse, want) in cases {
            assert_eq!(parse(text), *want, "{text}");
        }
    }
}

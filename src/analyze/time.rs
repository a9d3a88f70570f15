//! Timestamps as access logs write them, to unix milliseconds (pure).

use crate::report::build::days_from_civil;

/// ISO 8601 / RFC 3339 with `Z` or an offset, any fraction: `2018-07-02T22:23:00.186641Z`,
/// `2026-11-20T10:00:00+09:00` (nginx `$time_iso8601`), `+0900` too.
pub fn iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let base = civil(s, [0..4, 5..7, 8..10, 11..13, 14..16, 17..19])?;
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')) {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        ms = format!("{:0<3}", &frac[..digits.min(3)]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = offset_s(rest)?;
    to_ms(base - offset, ms)
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
    let base = seconds(y, month, d, h, mi, sec)?;
    to_ms(base - offset_s(zone)?, 0)
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

fn civil(s: &str, r: [std::ops::Range<usize>; 6]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let [y, mo, d, h, mi, sec] = r;
    seconds(num(y)?, num(mo)?, num(d)?, num(h)?, num(mi)?, num(sec)?)
}

fn seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, sec: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !(0..=23).contains(&h) || !(0..=59).contains(&mi) {
        return None;
    }
    if !(0..=60).contains(&sec) {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// `Z`, `+09:00`, `-0500` → seconds east of UTC.
fn offset_s(z: &str) -> Option<i64> {
    if z == "Z" || z == "z" {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

fn to_ms(secs: i64, ms: i64) -> Option<u64> {
    u64::try_from(secs.checked_mul(1000)?.checked_add(ms)?).ok()
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

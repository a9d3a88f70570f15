//! Every clock and timestamp of the crate: the coarse process clock the request path reads, the
//! wall clock in unix milliseconds, RFC 3339 text both ways and civil dates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Resolution of [`coarse_ms`].
pub const TICK: Duration = Duration::from_millis(5);

/// Milliseconds since the process started, refreshed every [`TICK`] by a ticker thread: a relaxed
/// atomic load instead of a clock read on every socket read and write. Only coarse deadlines
/// (timeouts of a second or more) use it.
pub fn coarse_ms() -> u64 {
    clock().ms.load(Ordering::Relaxed)
}

/// The wall-clock time of the monotonic instant `at`, without a second clock read: the ticker
/// thread keeps the wall time of the process's start instant current, so a clock step (NTP) shows
/// within a [`TICK`].
pub fn wall_clock(at: Instant) -> SystemTime {
    let c = clock();
    let base = UNIX_EPOCH + Duration::from_nanos(c.wall_at_start_ns.load(Ordering::Relaxed));
    base + at.saturating_duration_since(c.start)
}

struct Clock {
    start: Instant,
    ms: AtomicU64,
    /// Wall time of `start`, in nanoseconds since the Unix epoch.
    wall_at_start_ns: AtomicU64,
}

impl Clock {
    fn wall_at_start_ns(start: Instant) -> u64 {
        let now = SystemTime::now();
        let since = start.elapsed();
        now.checked_sub(since).and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Arc<Clock>> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let start = Instant::now();
        let clock = Arc::new(Clock {
            start,
            ms: AtomicU64::new(0),
            wall_at_start_ns: AtomicU64::new(Clock::wall_at_start_ns(start)),
        });
        let ticker = clock.clone();
        let spawned = std::thread::Builder::new().name("coarse-clock".into()).spawn(move || loop {
            std::thread::sleep(TICK);
            ticker.ms.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            ticker.wall_at_start_ns.store(Clock::wall_at_start_ns(start), Ordering::Relaxed);
        });
        if spawned.is_err() {
            tracing::error!("cannot start the clock thread; timeouts will not fire");
        }
        clock
    })
}

/// Now, unix milliseconds (a real clock read: not for the request path).
pub fn unix_ms() -> u64 {
    unix_ms_of(SystemTime::now())
}

/// `t` in unix milliseconds (0 before the epoch).
pub fn unix_ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unix ms → `2026-11-25T22:08:46.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let mut buf = Vec::with_capacity(24);
    push_rfc3339(&mut buf, unix_ms);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Appends `2026-11-25T22:08:46.123Z` to `buf`.
pub fn push_rfc3339(buf: &mut Vec<u8>, unix_ms: u64) {
    thread_local! {
        // The log writer formats thousands of lines per second: the date and time up to the
        // second are the same for most of them.
        static LAST_SECOND: std::cell::Cell<(u64, [u8; 32], u8)> = const { std::cell::Cell::new((u64::MAX, [0; 32], 0)) };
    }
    let secs = unix_ms / 1000;
    let (cached_secs, mut text, len) = LAST_SECOND.get();
    let len = if cached_secs == secs {
        len
    } else {
        let mut head = Vec::with_capacity(32);
        push_seconds(&mut head, secs);
        let len = head.len().min(text.len());
        text[..len].copy_from_slice(&head[..len]);
        LAST_SECOND.set((secs, text, len as u8));
        len as u8
    };
    buf.extend_from_slice(&text[..len as usize]);
    let ms = unix_ms % 1000;
    buf.push(b'.');
    buf.extend_from_slice(&[b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
    buf.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second.
fn push_seconds(buf: &mut Vec<u8>, secs: u64) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    let two = |buf: &mut Vec<u8>, v: u64| buf.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(itoa.format(y).as_bytes());
    buf.push(b'-');
    two(buf, m as u64);
    buf.push(b'-');
    two(buf, day as u64);
    buf.push(b'T');
    two(buf, rem / 3600);
    buf.push(b':');
    two(buf, rem / 60 % 60);
    buf.push(b':');
    two(buf, rem % 60);
}

/// RFC 3339 / ISO 8601 → unix ms: `2026-11-25T22:08:46.123Z`, any fraction (`.186641`, `,5`), a
/// `T` or a space between date and time, `Z` or an offset (`+09:00`, `-0500`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let base = unix_seconds(num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?)?;
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')) {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &frac.as_bytes()[..digits.min(3)];
        ms = kept.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')) * [100, 10, 1][kept.len() - 1];
        rest = &frac[digits..];
    }
    let secs = base.checked_sub(utc_offset_s(rest)?)?;
    u64::try_from(secs.checked_mul(1000)?.checked_add(ms)?).ok()
}

/// `Z`, `+09:00`, `-0500` → seconds east of UTC.
pub fn utc_offset_s(z: &str) -> Option<i64> {
    if z == "Z" || z == "z" {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: Vec<u8> = z.bytes().skip(1).filter(|c| *c != b':').collect();
    if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let two = |i: usize| i64::from(digits[i] - b'0') * 10 + i64::from(digits[i + 1] - b'0');
    Some(sign * (two(0) * 3600 + two(2) * 60))
}

/// Seconds since the epoch of a civil date and time (UTC), checked field by field (a leap second
/// `:60` passes).
pub fn unix_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, sec: i64) -> Option<i64> {
    let valid = (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=60).contains(&sec);
    valid.then(|| days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Appends the IMF-fixdate of unix second `secs` (`Tue, 01 Dec 2026 20:30:34 GMT`, RFC 9110
/// §5.6.7), the `Date` of the proxy's own answers.
pub fn push_http_date(buf: &mut Vec<u8>, secs: u64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let t = secs % 86_400;
    let text = format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m as usize).saturating_sub(1) % 12],
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    buf.extend_from_slice(text.as_bytes());
}

/// Days since 1970-01-01 of a proleptic Gregorian date, after Howard Hinnant's `days_from_civil`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day), after Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let mut buf = Vec::new();
        push_http_date(&mut buf, 784_111_777);
        assert_eq!(buf, b"Sun, 06 Nov 1994 08:49:37 GMT", "RFC 9110's own example");
        buf.clear();
        push_http_date(&mut buf, 0);
        assert_eq!(buf, b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_990_126_123), "2026-11-29T22:08:46.123Z");
        let leap = 951_782_400_000; // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        // The same second again (cached), the next millisecond, then the next second.
        assert_eq!(rfc3339(leap + 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(leap + 1_001), "2000-02-29T00:00:01.001Z");
        assert_eq!(rfc3339(leap + 86_400_000), "2000-03-01T00:00:00.000Z");
        for ms in [0u64, 951_782_400_000, 1_795_990_126_123, 1_764_108_526_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("2026-11-25T22:08:46Z"), Some(1_795_990_126_000 - 4 * 86_400_000));
        assert_eq!(parse_rfc3339("nonsense"), None);
        assert_eq!(parse_rfc3339("2026-13-25T22:08:46Z"), None);
    }

    #[test]
    fn offsets_fractions_and_civil_checks() {
        const T: u64 = 1_530_570_180_186; // 2018-07-02T22:23:00.186Z
        let cases: &[(&str, Option<u64>)] = &[
            ("2018-07-02T22:23:00.186641Z", Some(T)),
            ("2018-07-02T22:23:00.18Z", Some(T - 6)),
            ("2018-07-02T22:23:00Z", Some(T - 186)),
            ("2018-07-03T07:23:00+09:00", Some(T - 186)),
            ("2018-07-02T17:23:00-0500", Some(T - 186)),
            ("2018-07-02 22:23:00,186Z", Some(T)),
            ("2018-07-02T22:23:00", None),
            ("2018-07-02T22:23:00.Z", None),
            ("2018-07-02T24:23:00Z", None),
            ("2018-13-02T22:23:00Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), *want, "{text}");
        }
        assert_eq!(unix_seconds(1999, 12, 31, 23, 59, 59), Some(946_684_799));
        assert_eq!(unix_seconds(1999, 2, 31, 0, 0, 61), None);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}

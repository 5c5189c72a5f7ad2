//! Time helpers shared by the stores: the instants are `chrono::DateTime<Utc>`
//! truncated to milliseconds, the precision JavaScript's `Date` has.
//!
//! The two text forms written on every request (`toISOString` for the
//! stored `cookie.expires`, `toUTCString` for `Set-Cookie`'s `Expires`) and
//! the ISO form read on every load are formatted and parsed here by plain
//! arithmetic for years 0000..=9999, without allocating; chrono handles
//! every other year and every other ISO form, and is the reference the
//! tests compare against.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant with millisecond precision.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole milliseconds like `Date.now()`.
pub fn now() -> Timestamp {
    // `Utc::now().timestamp_millis()` without building a chrono date first.
    let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // Before 1970: floor, as chrono's timestamp_millis does.
        Err(e) => {
            let ns = e.duration().as_nanos();
            i64::try_from(ns.div_ceil(1_000_000)).map_or(i64::MIN, |ms| -ms)
        }
    };
    from_millis(ms)
}

/// An instant from milliseconds since the Unix epoch, clamped to chrono's
/// range (years -262143..=262142) at whole milliseconds, so every result
/// survives [`to_iso`] / [`parse_iso`] unchanged.
pub fn from_millis(ms: i64) -> Timestamp {
    let min = DateTime::<Utc>::MIN_UTC.timestamp_millis();
    let max = DateTime::<Utc>::MAX_UTC.timestamp_millis();
    match Utc.timestamp_millis_opt(ms.clamp(min, max)) {
        chrono::LocalResult::Single(t) => t,
        _ if ms < 0 => DateTime::<Utc>::MIN_UTC,
        _ => DateTime::<Utc>::MAX_UTC,
    }
}

/// Days since 1970-01-01 as a proleptic Gregorian `(year, month, day)`
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both in range by construction: 1..=31 and 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The inverse of [`civil_from_days`] (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An instant split into its UTC fields, when its year is 0000..=9999.
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
    /// 0 = Sunday.
    weekday: u32,
}

impl Fields {
    fn of(t: &Timestamp) -> Option<Self> {
        let ms = t.timestamp_millis();
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Some(Fields {
            year: u32::try_from(year).ok().filter(|y| *y <= 9999)?,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            milli: ms.rem_euclid(1000) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        })
    }
}

/// Writes `n` as `N` decimal digits, zero-padded (`n < 10^N`).
fn digits<const N: usize>(out: &mut [u8], n: u32) {
    let mut n = n;
    for b in out[..N].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// [`to_iso`]'s text, on the stack for years 0000..=9999: formats and
/// serialises as a string without allocating.
pub(crate) enum IsoText {
    Short([u8; 24]),
    Long(String),
}

impl IsoText {
    pub(crate) fn new(t: &Timestamp) -> Self {
        let Some(f) = Fields::of(t) else {
            return IsoText::Long(expanded_iso(t));
        };
        let mut b = *b"0000-00-00T00:00:00.000Z";
        digits::<4>(&mut b[0..], f.year);
        digits::<2>(&mut b[5..], f.month);
        digits::<2>(&mut b[8..], f.day);
        digits::<2>(&mut b[11..], f.hour);
        digits::<2>(&mut b[14..], f.minute);
        digits::<2>(&mut b[17..], f.second);
        digits::<3>(&mut b[20..], f.milli);
        IsoText::Short(b)
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Only ASCII digits and punctuation are ever written.
            IsoText::Short(b) => std::str::from_utf8(b).unwrap_or_default(),
            IsoText::Long(s) => s,
        }
    }
}

impl serde::Serialize for IsoText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for IsoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `2026-11-27T01:54:41.837Z`: what `Date.prototype.toISOString` prints,
/// including its expanded form for years outside 0000..=9999
/// (`+010000-01-01T00:00:00.000Z`, `-000001-12-31T23:59:59.999Z`).
pub fn to_iso(t: &Timestamp) -> String {
    match IsoText::new(t) {
        IsoText::Long(s) => s,
        short => short.as_str().to_owned(),
    }
}

/// `to_iso` for years outside 0000..=9999 (and the reference for the rest).
fn expanded_iso(t: &Timestamp) -> String {
    let year = t.year();
    if (0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    let sign = if year < 0 { '-' } else { '+' };
    format!(
        "{sign}{:06}-{}",
        year.unsigned_abs(),
        t.format("%m-%dT%H:%M:%S%.3fZ")
    )
}

/// Parses an RFC 3339 / ISO-8601 instant (as `toISOString` writes it,
/// expanded years included), truncated to milliseconds.
pub fn parse_iso(s: &str) -> Option<Timestamp> {
    if let Some(t) = parse_iso_short(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(from_millis(t.with_timezone(&Utc).timestamp_millis()));
    }
    // JavaScript's expanded years: a sign and six digits ("-000000" is invalid).
    let (negative, rest) = match s.as_bytes().first()? {
        b'+' => (false, s.get(1..)?),
        b'-' => (true, s.get(1..)?),
        _ => return None,
    };
    let (digits, rest) = (rest.get(..6)?, rest.get(6..)?);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || (negative && digits == "000000") {
        return None;
    }
    let year: i32 = digits.parse().ok()?;
    let year = if negative { -year } else { year };
    // Everything after the year, checked by chrono on a leap year; the date
    // is then rebuilt with the real year (which refuses a bad 29 February).
    let probe = DateTime::parse_from_rfc3339(&format!("2000{rest}")).ok()?;
    let local = probe.naive_local();
    let date = NaiveDate::from_ymd_opt(year, local.month(), local.day())?;
    let utc = date
        .and_time(local.time())
        .checked_sub_offset(*probe.offset())?
        .and_utc();
    Some(from_millis(utc.timestamp_millis()))
}

/// The exact form [`to_iso`] writes for years 0000..=9999
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`), read without chrono; `None` for anything
/// else (which chrono then reads, or refuses), including a leap second.
fn parse_iso_short(s: &str) -> Option<Timestamp> {
    let b: &[u8; 24] = s.as_bytes().try_into().ok()?;
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let year = i64::from(num(0, 4)?);
    let (month, day) = (num(5, 7)?, num(8, 10)?);
    let (hour, minute, second, milli) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(from_millis(secs * 1000 + i64::from(milli)))
}

/// Appends `Thu, 01 Jan 1970 00:00:00 GMT`, the form
/// `Date.prototype.toUTCString` writes (and `Set-Cookie`'s `Expires` uses).
/// Years outside 0000..=9999 are written as chrono's `%Y` writes them.
pub fn write_http_date(t: &Timestamp, out: &mut String) {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(f) = Fields::of(t) else {
        use fmt::Write as _;
        let _ = write!(out, "{}", t.format("%a, %d %b %Y %H:%M:%S GMT"));
        return;
    };
    let mut b = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    b[..3].copy_from_slice(DAYS[f.weekday as usize % 7].as_bytes());
    digits::<2>(&mut b[5..], f.day);
    b[8..11].copy_from_slice(MONTHS[(f.month as usize + 11) % 12].as_bytes());
    digits::<4>(&mut b[12..], f.year);
    digits::<2>(&mut b[17..], f.hour);
    digits::<2>(&mut b[20..], f.minute);
    digits::<2>(&mut b[23..], f.second);
    // Only ASCII is ever written.
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

/// Seconds from `now` until `expires`, rounded up like connect-redis
/// (`Math.ceil((expires - now) / 1000)`); zero or negative means expired.
pub fn ttl_secs(expires: &Timestamp, now: &Timestamp) -> i64 {
    let ms = expires
        .timestamp_millis()
        .saturating_sub(now.timestamp_millis());
    if ms <= 0 {
        ms.div_euclid(1000)
    } else {
        ms.saturating_add(999) / 1000
    }
}

/// The instant a store should forget a record: the cookie's `expires` when
/// set, otherwise `now + default_ttl` (connect-redis's `ttl`, one day by default).
pub fn store_expiry(
    expires: Option<Timestamp>,
    default_ttl: std::time::Duration,
    now: Timestamp,
) -> Timestamp {
    expires.unwrap_or_else(|| {
        let ms = i64::try_from(default_ttl.as_millis()).unwrap_or(i64::MAX);
        from_millis(now.timestamp_millis().saturating_add(ms))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip_with_millis() {
        let t = from_millis(1_795_744_481_837);
        assert_eq!(to_iso(&t), "2026-11-27T01:54:41.837Z");
        assert_eq!(parse_iso("2026-11-27T01:54:41.837Z"), Some(t));
        assert_eq!(parse_iso("2026-11-27T02:54:41.837+01:00"), Some(t));
        assert_eq!(parse_iso("yesterday"), None);
    }

    /// A deterministic spread of instants over `lo..hi` milliseconds.
    fn spread(lo: i64, hi: i64, n: u64) -> impl Iterator<Item = i64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + (x % (hi - lo) as u64) as i64
        })
    }

    #[test]
    fn fast_forms_match_chrono() {
        // Years 0000..=9999 take the arithmetic path; chrono is the reference.
        let lo = -62_167_219_200_000; // 0000-01-01
        let hi = 253_402_300_800_000; // 10000-01-01
        let edges = [lo, hi - 1, 0, -1, 951_782_400_000, 4_107_542_400_000];
        for ms in spread(lo, hi, 200_000).chain(edges) {
            let t = from_millis(ms);
            let iso = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(to_iso(&t), iso);
            assert_eq!(parse_iso_short(&iso), Some(t), "{iso}");
            let mut http = String::new();
            write_http_date(&t, &mut http);
            assert_eq!(http, t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        }
        // Outside that range: chrono's forms, as before.
        for ms in [hi, lo - 1, i64::MAX, i64::MIN] {
            let t = from_millis(ms);
            let mut http = String::new();
            write_http_date(&t, &mut http);
            assert_eq!(http, t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        }
    }

    #[test]
    fn now_is_chronos_now_in_whole_milliseconds() {
        let before = Utc::now().timestamp_millis();
        let t = now();
        let after = Utc::now().timestamp_millis();
        assert!((before..=after).contains(&t.timestamp_millis()));
        assert_eq!(t.timestamp_subsec_nanos() % 1_000_000, 0);
    }

    #[test]
    fn fast_parse_refuses_what_it_does_not_own() {
        for s in [
            "2026-02-29T00:00:00.000Z",
            "2100-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-01T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-01-01T00:00:60.000Z",
            "2026-01-01t00:00:00.000Z",
            "2026-01-01T00:00:00.000z",
            "2026-01-01T00:00:00,000Z",
            "2026-01-0+T00:00:00.000Z",
            "+026-01-01T00:00:00.000Z",
        ] {
            assert_eq!(parse_iso_short(s), None, "{s}");
            // Whatever chrono makes of it stays the answer.
            assert_eq!(
                parse_iso(s),
                DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| from_millis(t.timestamp_millis())),
                "{s}"
            );
        }
        assert!(parse_iso_short("2000-02-29T23:59:59.999Z").is_some());
    }

    #[test]
    fn ttl_rounds_up_and_reports_expired() {
        let now = from_millis(1_000_000);
        assert_eq!(ttl_secs(&from_millis(1_000_001), &now), 1);
        assert_eq!(ttl_secs(&from_millis(1_001_000), &now), 1);
        assert_eq!(ttl_secs(&from_millis(1_001_001), &now), 2);
        assert_eq!(ttl_secs(&now, &now), 0);
        assert!(ttl_secs(&from_millis(999_999), &now) < 0);
    }

    #[test]
    fn extreme_millis_clamp_to_whole_milliseconds_that_round_trip() {
        for ms in [
            i64::MAX,
            i64::MIN,
            8_640_000_000_000_000,
            -8_640_000_000_000_000,
        ] {
            let t = from_millis(ms);
            assert_eq!(t.timestamp_subsec_nanos() % 1_000_000, 0, "{t:?}");
            assert_eq!(parse_iso(&to_iso(&t)), Some(t), "{}", to_iso(&t));
        }
    }

    #[test]
    fn expanded_years_are_written_and_read_like_javascript() {
        // `new Date(253402300800000).toISOString()` and friends, from Node.
        let cases = [
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, iso) in cases {
            assert_eq!(to_iso(&from_millis(ms)), iso);
            assert_eq!(parse_iso(iso), Some(from_millis(ms)), "{iso}");
        }
        assert_eq!(
            parse_iso("+010000-01-01T01:00:00.000+01:00"),
            Some(from_millis(253_402_300_800_000))
        );
        for bad in [
            "-000000-01-01T00:00:00.000Z",
            "+10000-01-01T00:00:00.000Z",
            "+010001-02-29T00:00:00.000Z",
            "+0100a0-01-01T00:00:00.000Z",
            "+",
            "-",
            "+999999-01-01T00:00:00.000Z",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert!(
            parse_iso("+010004-02-29T00:00:00.000Z").is_some(),
            "leap year"
        );
    }
}

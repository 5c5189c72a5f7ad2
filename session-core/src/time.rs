//! Time helpers shared by the stores: the instants are `chrono::DateTime<Utc>`
//! truncated to milliseconds, the precision JavaScript's `Date` has.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};

/// A UTC instant with millisecond precision.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole milliseconds like `Date.now()`.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
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

/// `2026-11-27T01:54:41.837Z`: what `Date.prototype.toISOString` prints,
/// including its expanded form for years outside 0000..=9999
/// (`+010000-01-01T00:00:00.000Z`, `-000001-12-31T23:59:59.999Z`).
pub fn to_iso(t: &Timestamp) -> String {
    let year = t.year();
    if (0..=9999).contains(&year) {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
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

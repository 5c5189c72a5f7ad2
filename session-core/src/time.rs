//! Time helpers shared by the stores: the instants are `chrono::DateTime<Utc>`
//! truncated to milliseconds, the precision JavaScript's `Date` has.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// A UTC instant with millisecond precision.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole milliseconds like `Date.now()`.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

/// An instant from milliseconds since the Unix epoch (clamped to chrono's range).
pub fn from_millis(ms: i64) -> Timestamp {
    match Utc.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) => t,
        _ if ms < 0 => DateTime::<Utc>::MIN_UTC,
        _ => DateTime::<Utc>::MAX_UTC,
    }
}

/// `2026-11-27T01:54:41.837Z`: what `Date.prototype.toISOString` prints.
pub fn to_iso(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 / ISO-8601 instant (as `toISOString` writes it).
pub fn parse_iso(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| from_millis(t.with_timezone(&Utc).timestamp_millis()))
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
    fn extreme_millis_do_not_panic() {
        let _ = from_millis(i64::MAX);
        let _ = from_millis(i64::MIN);
    }
}

//! Session metadata kept inside the record's JSON, under the reserved
//! top-level key [`META_KEY`] (`"__meta"`).
//!
//! express-session keeps every top-level key of a stored session as data and
//! writes it back, so a Node service sharing the store carries the metadata
//! along without reading it. A record without `"__meta"` is exactly what it
//! was before this module existed: nothing adds the key unless a feature
//! needs it (an expiry policy, client tracking, a principal).
//!
//! ```
//! use sessionkit_core::{Record, SessionId, SessionMeta};
//!
//! # fn main() -> Result<(), sessionkit_core::Error> {
//! let mut record = Record::new(SessionId::generate());
//! assert_eq!(record.meta()?, None);
//! let mut meta = SessionMeta::default();
//! meta.principal = Some("user-42".into());
//! record.set_meta(Some(&meta))?;
//! assert_eq!(record.meta()?.and_then(|m| m.principal).as_deref(), Some("user-42"));
//! # Ok(())
//! # }
//! ```

use crate::time::{self, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::time::Duration;

/// The top-level key of the record's JSON that holds the [`SessionMeta`].
/// Reserved: the middleware does not let handlers read or write it as data.
pub const META_KEY: &str = "__meta";

/// Metadata about a session, beside the user's data. Every field is
/// optional; absent fields are not written.
///
/// Instants are stored as ISO-8601 text (`toISOString`'s form), so a Node
/// service can read them too. Keys this version does not know are kept in
/// `extra` and written back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionMeta {
    /// When the session was created (when known).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "iso")]
    pub created: Option<Timestamp>,
    /// When the session was last written by a request.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "iso")]
    pub last_seen: Option<Timestamp>,
    /// Idle timeout in seconds: the session expires this long after its last
    /// request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// The absolute deadline: the session expires then, however active.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "iso")]
    pub absolute_deadline: Option<Timestamp>,
    /// Who the session belongs to (a user id), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The `User-Agent` of the request that created the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client address of the request that created the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Keys written by a newer version or another program, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Sorts what a per-user index returned for `principal`: the records that
/// really carry it (an index entry can be stale where another program
/// rewrote a record without it), and how many entries could not be read as
/// sessions (`None`), for the store to report.
pub fn of_principal(
    principal: &str,
    found: impl IntoIterator<Item = Option<crate::Record>>,
) -> (Vec<crate::Record>, usize) {
    let mut records = Vec::new();
    let mut unreadable = 0;
    for record in found {
        match record {
            Some(r) if r.principal() == Some(principal) => records.push(r),
            Some(_) => {}
            None => unreadable += 1,
        }
    }
    (records, unreadable)
}

impl SessionMeta {
    /// Whether the session has an idle timeout or an absolute deadline.
    pub fn has_expiry_policy(&self) -> bool {
        self.idle_timeout_secs.is_some() || self.absolute_deadline.is_some()
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout_secs.map(Duration::from_secs)
    }

    /// When the session expires if `last_activity` is its last request: the
    /// earlier of `last_activity + idle` and the absolute deadline; `None`
    /// without either.
    pub fn expiry_after(&self, last_activity: Timestamp) -> Option<Timestamp> {
        let idle = self.idle_timeout_secs.map(|s| {
            let ms = i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
            time::from_millis(last_activity.timestamp_millis().saturating_add(ms))
        });
        match (idle, self.absolute_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the absolute deadline has passed at `now`.
    pub fn past_deadline(&self, now: Timestamp) -> bool {
        self.absolute_deadline.is_some_and(|d| d <= now)
    }
}

/// `Option<Timestamp>` as ISO-8601 text.
mod iso {
    use super::*;

    pub(super) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&time::to_iso(t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => time::parse_iso(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not an ISO-8601 instant")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Record, SessionId};

    fn of(principal: Option<&str>) -> Record {
        let mut r = Record::new(SessionId::generate());
        let meta = SessionMeta {
            principal: principal.map(str::to_owned),
            ..SessionMeta::default()
        };
        assert!(r.set_meta(Some(&meta)).is_ok());
        r
    }

    #[test]
    fn of_principal_keeps_only_records_carrying_it() {
        let alice = of(Some("alice"));
        let found = vec![
            Some(alice.clone()),
            Some(of(Some("bob"))),
            None,
            Some(of(None)),
            Some(of(Some("alice "))),
            None,
        ];
        let (kept, unreadable) = of_principal("alice", found);
        assert_eq!(kept, vec![alice]);
        assert_eq!(unreadable, 2);
    }

    #[test]
    fn fields_round_trip_and_absent_ones_are_not_written() {
        let mut m = SessionMeta::default();
        assert_eq!(serde_json::to_string(&m).ok().as_deref(), Some("{}"));
        m.created = Some(time::from_millis(1_795_744_481_837));
        m.idle_timeout_secs = Some(900);
        m.principal = Some("u1".into());
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"created":"2026-11-27T01:54:41.837Z","idle_timeout_secs":900,"principal":"u1"}"#
        );
        let back: SessionMeta = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, m);
    }

    #[test]
    fn unknown_keys_survive() {
        let json = r#"{"ip":"::1","future":{"x":[1]}}"#;
        let m: SessionMeta = serde_json::from_str(json).unwrap_or_default();
        assert_eq!(m.ip.as_deref(), Some("::1"));
        assert_eq!(serde_json::to_string(&m).ok().as_deref(), Some(json));
    }

    #[test]
    fn record_helpers_add_replace_and_remove_the_key() {
        let mut r = Record::new(SessionId::generate());
        r.data.insert("user".into(), "bob".into());
        let before = r.to_json().unwrap_or_default();
        assert_eq!(r.meta().ok(), Some(None));
        let m = SessionMeta {
            principal: Some("bob".into()),
            ..SessionMeta::default()
        };
        assert!(r.set_meta(Some(&m)).is_ok());
        assert!(r
            .to_json()
            .unwrap_or_default()
            .ends_with(r#","__meta":{"principal":"bob"}}"#));
        assert_eq!(r.meta().ok().flatten(), Some(m));
        assert!(r.set_meta(None).is_ok());
        assert_eq!(
            r.to_json().unwrap_or_default(),
            before,
            "byte-identical again"
        );
    }

    #[test]
    fn a_malformed_meta_is_a_decode_error() {
        for bad in [
            r#"5"#,
            r#"{"created":"soon"}"#,
            r#"{"idle_timeout_secs":-1}"#,
        ] {
            let mut r = Record::new(SessionId::generate());
            r.data.insert(
                META_KEY.into(),
                serde_json::from_str(bad).unwrap_or(Value::Null),
            );
            assert!(matches!(r.meta(), Err(crate::Error::Decode(_))), "{bad}");
        }
    }

    #[test]
    fn expiry_is_the_earlier_deadline() {
        let now = time::from_millis(1_000_000);
        let mut m = SessionMeta::default();
        assert_eq!(m.expiry_after(now), None);
        m.idle_timeout_secs = Some(60);
        assert_eq!(m.expiry_after(now), Some(time::from_millis(1_060_000)));
        m.absolute_deadline = Some(time::from_millis(1_030_000));
        assert_eq!(m.expiry_after(now), Some(time::from_millis(1_030_000)));
        assert!(!m.past_deadline(now));
        assert!(m.past_deadline(time::from_millis(1_030_000)));
        m.idle_timeout_secs = None;
        assert_eq!(m.expiry_after(now), Some(time::from_millis(1_030_000)));
        m.idle_timeout_secs = Some(u64::MAX);
        assert_eq!(m.expiry_after(now), Some(time::from_millis(1_030_000)));
    }
}

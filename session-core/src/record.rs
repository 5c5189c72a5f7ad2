use crate::time::{self, Timestamp};
use crate::{Error, Result, SessionId};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::time::Duration;

/// The `SameSite` attribute, as express-session stores it (`"lax"`, `"strict"`,
/// `"none"`; a stored `true` reads as `Strict`, `false` as absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (needs `Secure` in current browsers).
    None,
}

impl SameSite {
    /// The lowercase name express-session stores.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "strict",
            SameSite::Lax => "lax",
            SameSite::None => "none",
        }
    }
}

/// The `Priority` cookie attribute (a Chrome extension express-session supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// `Priority=Low`.
    Low,
    /// `Priority=Medium`.
    Medium,
    /// `Priority=High`.
    High,
}

impl Priority {
    /// The lowercase name express-session stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

/// The cookie metadata express-session stores beside the data (`sess.cookie`).
///
/// Serialises exactly like express-session's `Cookie#toJSON`: `originalMaxAge`
/// and `expires` always present (`null` when unset), the other attributes
/// only when set, in express-session's order. Keys this crate does not know
/// are kept in `extra` and written back untouched.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CookieMeta {
    /// Max-age in milliseconds as first configured; `None` for a browser-session cookie.
    pub original_max_age: Option<i64>,
    /// When the cookie (and the session) expires; `None` for a browser-session cookie.
    pub expires: Option<Timestamp>,
    /// `Partitioned` (CHIPS).
    pub partitioned: Option<bool>,
    /// `Priority`.
    pub priority: Option<Priority>,
    /// `Secure`.
    pub secure: Option<bool>,
    /// `HttpOnly`.
    pub http_only: Option<bool>,
    /// `Domain`.
    pub domain: Option<String>,
    /// `Path`.
    pub path: Option<String>,
    /// `SameSite`.
    pub same_site: Option<SameSite>,
    /// Keys written by someone else (a newer express-session, a plugin), kept as they were.
    pub extra: Map<String, Value>,
}

impl CookieMeta {
    /// express-session's defaults: `{originalMaxAge: null, expires: null, httpOnly: true, path: "/"}`.
    pub fn new() -> Self {
        CookieMeta {
            http_only: Some(true),
            path: Some("/".to_owned()),
            ..CookieMeta::default()
        }
    }

    /// Sets `originalMaxAge` and `expires = now + max_age`, like assigning
    /// `cookie.maxAge` in express-session.
    pub fn set_max_age(&mut self, max_age: Option<Duration>, now: Timestamp) {
        match max_age {
            Some(d) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                self.original_max_age = Some(ms);
                self.expires = Some(time::from_millis(now.timestamp_millis().saturating_add(ms)));
            }
            None => {
                self.original_max_age = None;
                self.expires = None;
            }
        }
    }

    /// Resets `expires` from `originalMaxAge` (express-session's `resetMaxAge`,
    /// done on every response). No-op for browser-session cookies.
    pub fn reset_expiry(&mut self, now: Timestamp) {
        if let Some(ms) = self.original_max_age {
            self.expires = Some(time::from_millis(now.timestamp_millis().saturating_add(ms)));
        }
    }
}

impl Serialize for CookieMeta {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("originalMaxAge", &self.original_max_age)?;
        if let Some(p) = self.partitioned {
            m.serialize_entry("partitioned", &p)?;
        }
        if let Some(p) = self.priority {
            m.serialize_entry("priority", p.as_str())?;
        }
        m.serialize_entry("expires", &self.expires.as_ref().map(time::IsoText::new))?;
        if let Some(v) = self.secure {
            m.serialize_entry("secure", &v)?;
        }
        if let Some(v) = self.http_only {
            m.serialize_entry("httpOnly", &v)?;
        }
        if let Some(v) = &self.domain {
            m.serialize_entry("domain", v)?;
        }
        if let Some(v) = &self.path {
            m.serialize_entry("path", v)?;
        }
        if let Some(v) = self.same_site {
            m.serialize_entry("sameSite", v.as_str())?;
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The length of `s` as serde_json writes it: quoted, with `"`, `\\` and
/// `\b \f \n \r \t` as two characters and other control characters as
/// `\u00XX`.
fn json_str_len(s: &str) -> usize {
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len().saturating_add(escapes).saturating_add(2)
}

/// The longest a JSON number is written: an `i64`/`u64` takes at most 20
/// characters, an `f64` at most 24 (ryu's shortest form, sign and
/// exponent included).
const NUMBER_MAX_LEN: usize = 24;

/// At least the length of `v` as serde_json writes it compactly.
fn json_len_bound(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(_) => NUMBER_MAX_LEN,
        Value::String(s) => json_str_len(s),
        Value::Array(items) => items.iter().fold(2, |n, v| {
            n.saturating_add(1).saturating_add(json_len_bound(v))
        }),
        Value::Object(map) => map.iter().fold(2, |n, (k, v)| {
            n.saturating_add(2)
                .saturating_add(json_str_len(k))
                .saturating_add(json_len_bound(v))
        }),
    }
}

impl CookieMeta {
    /// At least the length of this cookie's JSON: 200 bytes cover the keys
    /// and punctuation of every known field (109) and their values at
    /// their longest (80: a 20-character `originalMaxAge`, a quoted
    /// expanded-year `expires` of 29, booleans, `"medium"`, `"strict"`);
    /// `domain`, `path` and unknown keys are measured.
    fn encoded_len_bound(&self) -> usize {
        let strings = [&self.domain, &self.path]
            .into_iter()
            .flatten()
            .fold(0usize, |n, s| n.saturating_add(json_str_len(s)));
        self.extra
            .iter()
            .fold(200usize.saturating_add(strings), |n, (k, v)| {
                n.saturating_add(2)
                    .saturating_add(json_str_len(k))
                    .saturating_add(json_len_bound(v))
            })
    }
}

fn bad(what: &str) -> Error {
    Error::decode(format!("cookie.{what} has an unexpected type"))
}

impl CookieMeta {
    /// Reads `sess.cookie` as stored by express-session (or by this crate).
    pub fn from_value(v: Value) -> Result<Self> {
        let Value::Object(map) = v else {
            return Err(Error::decode("cookie is not an object"));
        };
        Self::from_entries(map)
    }

    /// The fields of `sess.cookie`, in their order, each key once.
    fn from_entries<K>(entries: impl IntoIterator<Item = (K, Value)>) -> Result<Self>
    where
        K: AsRef<str> + Into<String>,
    {
        let mut c = CookieMeta::default();
        for (k, v) in entries {
            match (k.as_ref(), v) {
                (
                    "originalMaxAge" | "expires" | "partitioned" | "secure" | "httpOnly" | "domain"
                    | "path" | "priority" | "sameSite",
                    Value::Null,
                ) => {}
                ("originalMaxAge", Value::Number(n)) => {
                    let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64));
                    c.original_max_age = Some(ms.ok_or_else(|| bad("originalMaxAge"))?);
                }
                ("expires", Value::String(s)) => {
                    c.expires = Some(time::parse_iso(&s).ok_or_else(|| bad("expires"))?);
                }
                ("expires", Value::Number(n)) => {
                    c.expires = Some(time::from_millis(n.as_i64().ok_or_else(|| bad("expires"))?));
                }
                ("partitioned", Value::Bool(b)) => c.partitioned = Some(b),
                ("secure", Value::Bool(b)) => c.secure = Some(b),
                ("httpOnly", Value::Bool(b)) => c.http_only = Some(b),
                ("domain", Value::String(s)) => c.domain = Some(s),
                ("path", Value::String(s)) => c.path = Some(s),
                ("priority", Value::String(s)) => {
                    c.priority = Some(match s.to_ascii_lowercase().as_str() {
                        "low" => Priority::Low,
                        "medium" => Priority::Medium,
                        "high" => Priority::High,
                        _ => return Err(bad("priority")),
                    })
                }
                ("sameSite", Value::Bool(b)) => c.same_site = b.then_some(SameSite::Strict),
                ("sameSite", Value::String(s)) => {
                    c.same_site = Some(match s.to_ascii_lowercase().as_str() {
                        "strict" => SameSite::Strict,
                        "lax" => SameSite::Lax,
                        "none" => SameSite::None,
                        _ => return Err(bad("sameSite")),
                    })
                }
                (
                    "originalMaxAge" | "expires" | "partitioned" | "secure" | "httpOnly" | "domain"
                    | "path" | "priority" | "sameSite",
                    _,
                ) => return Err(bad(k.as_ref())),
                (_, v) => {
                    c.extra.insert(k.into(), v);
                }
            }
        }
        Ok(c)
    }
}

impl<'de> Deserialize<'de> for CookieMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        CookieMeta::from_value(Value::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// One session: its id, the cookie metadata and the user's data.
///
/// The stored JSON form is express-session's: `{"cookie": {...}, ...data}`.
/// The id is not part of the JSON; stores keep it in their key.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The session id.
    pub id: SessionId,
    /// `sess.cookie`.
    pub cookie: CookieMeta,
    /// Everything else in `req.session`: any JSON values, unknown keys kept.
    /// A `"cookie"` key here is never written (it would shadow the metadata).
    pub data: Map<String, Value>,
}

/// Serialises a record to express-session's JSON without copying it.
struct Wire<'a>(&'a Record);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cookie", &self.0.cookie)?;
        for (k, v) in &self.0.data {
            if k != "cookie" {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// A stored record as parsed: what `serde_json::Value` would hold, with
/// the top-level object split into `cookie` and the data as it is built,
/// and `cookie` kept as its fields (keys borrowed from the input when
/// unescaped). Duplicate keys behave as in a `Value`: the last value wins,
/// at the position of the first.
enum Stored<'de> {
    Object {
        cookie: Option<StoredCookie<'de>>,
        data: Map<String, Value>,
    },
    /// Valid JSON that is not an object.
    Other,
}

enum StoredCookie<'de> {
    Object(Vec<(Cow<'de, str>, Value)>),
    /// Valid JSON that is not an object.
    Other,
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads any JSON value to its end, keeping nothing.
fn skip_seq<'de, A: de::SeqAccess<'de>>(mut seq: A) -> std::result::Result<(), A::Error> {
    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The visitor answers for every JSON type other than an object.
macro_rules! not_an_object {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(
            self,
            seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            skip_seq(seq)?;
            Ok($other)
        }
    };
}

impl<'de> Deserialize<'de> for Stored<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Stored<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            not_an_object!(Stored::Other);
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut cookie = None;
                let mut data = Map::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if key == "cookie" {
                        cookie = Some(map.next_value::<StoredCookie<'de>>()?);
                    } else {
                        data.insert(key.into_owned(), map.next_value::<Value>()?);
                    }
                }
                Ok(Stored::Object { cookie, data })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StoredCookie<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = StoredCookie<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            not_an_object!(StoredCookie::Other);
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, Value)> = Vec::with_capacity(8);
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value = map.next_value::<Value>()?;
                    match fields.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => *v = value,
                        None => fields.push((key, value)),
                    }
                }
                Ok(StoredCookie::Object(fields))
            }
        }
        d.deserialize_any(V)
    }
}

impl Record {
    /// A new, empty session with express-session's default cookie.
    pub fn new(id: SessionId) -> Self {
        Record {
            id,
            cookie: CookieMeta::new(),
            data: Map::new(),
        }
    }

    /// The JSON that express-session would store for this session.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(&Wire(self)).map_err(|e| Error::Encode(e.into()))
    }

    /// Writes the JSON into a byte buffer (for drivers that take bytes).
    pub fn to_json_vec(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&Wire(self)).map_err(|e| Error::Encode(e.into()))
    }

    /// The length in bytes of [`Record::to_json`], counted without building
    /// the string (for size limits enforced before a store write).
    pub fn encoded_len(&self) -> Result<usize> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 = self.0.saturating_add(buf.len());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        serde_json::to_writer(&mut count, &Wire(self)).map_err(|e| Error::Encode(e.into()))?;
        Ok(count.0)
    }

    /// Whether the record's JSON ([`Record::to_json`]) is longer than
    /// `limit` bytes: its exact length when it is, `None` when it is not.
    ///
    /// Decides exactly as comparing [`Record::encoded_len`] with `limit`
    /// would, but first takes an upper bound of the length by walking the
    /// record without formatting it (strings are measured exactly with
    /// serde_json's escapes, numbers and the cookie's fixed fields at their
    /// longest): only a record whose bound exceeds the limit is counted.
    pub fn size_over(&self, limit: usize) -> Result<Option<usize>> {
        if self.encoded_len_bound() <= limit {
            return Ok(None);
        }
        let len = self.encoded_len()?;
        Ok((len > limit).then_some(len))
    }

    /// At least [`Record::encoded_len`]: `{"cookie":` + cookie + `,"k":v`
    /// per data key + `}`.
    fn encoded_len_bound(&self) -> usize {
        let mut n = self.cookie.encoded_len_bound().saturating_add(12);
        for (k, v) in &self.data {
            if k != "cookie" {
                n = n
                    .saturating_add(2)
                    .saturating_add(json_str_len(k))
                    .saturating_add(json_len_bound(v));
            }
        }
        n
    }

    /// Reads a stored record. Not JSON, not an object, or no valid `cookie`
    /// object gives [`Error::Decode`], never a panic.
    ///
    /// Decodes exactly as [`Record::from_value`] does after parsing the
    /// text into a [`Value`], without building that intermediate value for
    /// the top-level object and `cookie` (loaded on every request).
    ///
    /// A lone UTF-16 surrogate escape (`"Zoë \ud83d"`, what JavaScript's
    /// `str.slice()` can leave of an emoji and `JSON.stringify` writes) is
    /// read as U+FFFD, the replacement character, as Node itself does when
    /// it encodes such a string to UTF-8; saving the record writes U+FFFD.
    pub fn from_json(id: SessionId, json: &str) -> Result<Self> {
        Self::from_json_slice(id, json.as_bytes())
    }

    /// Like [`Record::from_json`], from bytes.
    pub fn from_json_slice(id: SessionId, json: &[u8]) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let first = Self::from_parsed(id.clone(), Stored::deserialize(&mut de), de.end());
        match first {
            Err(Error::Decode(_)) => match replace_lone_surrogates(json) {
                Some(fixed) => {
                    let mut de = serde_json::Deserializer::from_slice(&fixed);
                    Self::from_parsed(id, Stored::deserialize(&mut de), de.end())
                        // The record's own error, not the repaired text's.
                        .or(first)
                }
                None => first,
            },
            other => other,
        }
    }

    fn from_parsed(
        id: SessionId,
        stored: serde_json::Result<Stored<'_>>,
        end: serde_json::Result<()>,
    ) -> Result<Self> {
        let stored = stored.map_err(Error::decode)?;
        end.map_err(Error::decode)?;
        let Stored::Object { cookie, data } = stored else {
            return Err(Error::decode("stored session is not a JSON object"));
        };
        let cookie = match cookie.ok_or_else(|| Error::decode("stored session has no cookie"))? {
            StoredCookie::Object(fields) => CookieMeta::from_entries(fields)?,
            StoredCookie::Other => return Err(Error::decode("cookie is not an object")),
        };
        Ok(Record { id, cookie, data })
    }

    /// Reads a record from an already parsed JSON value.
    pub fn from_value(id: SessionId, value: Value) -> Result<Self> {
        let Value::Object(mut data) = value else {
            return Err(Error::decode("stored session is not a JSON object"));
        };
        let cookie = data
            .shift_remove("cookie")
            .ok_or_else(|| Error::decode("stored session has no cookie"))?;
        Ok(Record {
            id,
            cookie: CookieMeta::from_value(cookie)?,
            data,
        })
    }

    /// The session's [`SessionMeta`](crate::SessionMeta), stored under the
    /// reserved key [`META_KEY`](crate::META_KEY) of `data`; `None` when the
    /// record has none (every record written by express-session, and every
    /// one that needed no metadata). A `"__meta"` value that is not valid
    /// metadata is an [`Error::Decode`].
    pub fn meta(&self) -> Result<Option<crate::SessionMeta>> {
        self.data
            .get(crate::META_KEY)
            .map(|v| crate::SessionMeta::deserialize(v).map_err(Error::decode))
            .transpose()
    }

    /// The principal (user id) the session is tagged with: the `principal`
    /// of its [`SessionMeta`](crate::SessionMeta), read without decoding the
    /// rest. What stores index for [`Store::principal_sessions`](crate::Store::principal_sessions).
    pub fn principal(&self) -> Option<&str> {
        self.data
            .get(crate::META_KEY)?
            .get("principal")?
            .as_str()
            .filter(|p| !p.is_empty())
    }

    /// Stores `meta` under [`META_KEY`](crate::META_KEY) of `data` (in place
    /// when the key exists, else last); `None` removes the key, so the record
    /// is again exactly what express-session would write.
    pub fn set_meta(&mut self, meta: Option<&crate::SessionMeta>) -> Result<()> {
        match meta {
            Some(m) => {
                let value = serde_json::to_value(m).map_err(|e| Error::Encode(e.into()))?;
                self.data.insert(crate::META_KEY.to_owned(), value);
            }
            None => {
                self.data.shift_remove(crate::META_KEY);
            }
        }
        Ok(())
    }

    /// When the store should forget this record: `cookie.expires` when set,
    /// otherwise `now + default_ttl` (connect-redis's `ttl`, one day by default).
    pub fn store_expiry(&self, default_ttl: Duration, now: Timestamp) -> Timestamp {
        time::store_expiry(self.cookie.expires, default_ttl, now)
    }
}

/// `json` with every `\uXXXX` escape of a lone UTF-16 surrogate replaced
/// by `\ufffd`; `None` when it has none (valid surrogate pairs stay).
fn replace_lone_surrogates(json: &[u8]) -> Option<Vec<u8>> {
    fn unit(json: &[u8], at: usize) -> Option<u16> {
        if json.get(at) != Some(&b'\\') || json.get(at + 1) != Some(&b'u') {
            return None;
        }
        let hex = std::str::from_utf8(json.get(at + 2..at + 6)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    }
    let is_high = |u: u16| (0xD800..0xDC00).contains(&u);
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            if let Some(o) = out.as_mut() {
                o.push(json[i]);
            }
            i += 1;
            continue;
        }
        let (len, lone) = match unit(json, i) {
            Some(u) if is_high(u) => match unit(json, i + 6) {
                Some(next) if is_low(next) => (12, false),
                _ => (6, true),
            },
            Some(u) if is_low(u) => (6, true),
            Some(_) => (6, false),
            // `\\`, `\"`, …: two bytes, never the start of an escape.
            None => (2.min(json.len() - i), false),
        };
        if lone {
            out.get_or_insert_with(|| json[..i].to_vec())
                .extend_from_slice(b"\\ufffd");
        } else if let Some(o) = out.as_mut() {
            o.extend_from_slice(&json[i..i + len]);
        }
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn lone_surrogates_written_by_node_are_read_as_the_replacement_character() {
        // What JSON.stringify writes for "Zoë " + "😀".slice(0, 1), and a
        // lone low surrogate, beside a valid pair and an escaped backslash.
        let json = r#"{"cookie":{"originalMaxAge":null},"name":"Zo\u00eb \ud83d","low":"\uDE00x","pair":"\ud83d\ude00","path":"C:\\ud83d"}"#;
        let r = Record::from_json(id(), json).expect("decodes");
        assert_eq!(r.data["name"], "Zoë \u{fffd}");
        assert_eq!(r.data["low"], "\u{fffd}x");
        assert_eq!(r.data["pair"], "😀");
        assert_eq!(r.data["path"], "C:\\ud83d");
        // Written back as U+FFFD, which reads again.
        let again =
            Record::from_json(r.id.clone(), &r.to_json().expect("encodes")).expect("re-decodes");
        assert_eq!(again, r);
        // Other bad JSON keeps its own error.
        assert!(Record::from_json(id(), r#"{"cookie":{},"a":"\ud83d"#).is_err());
        assert!(replace_lone_surrogates(br#"{"a":"\ud83d\ude00"}"#).is_none());
    }

    use super::*;

    fn id() -> SessionId {
        SessionId::generate()
    }

    #[test]
    fn express_session_json_round_trips_byte_for_byte() {
        let json = r#"{"cookie":{"originalMaxAge":60000,"expires":"2026-11-27T01:54:41.837Z","httpOnly":true,"path":"/"},"user":"bob"}"#;
        let r = Record::from_json(id(), json).expect("decodes");
        assert_eq!(r.cookie.original_max_age, Some(60000));
        assert_eq!(r.data["user"], "bob");
        assert_eq!(r.to_json().expect("encodes"), json);
    }

    #[test]
    fn all_cookie_fields_and_unknown_keys_survive() {
        let json = r#"{"cookie":{"originalMaxAge":null,"partitioned":true,"priority":"high","expires":null,"secure":true,"httpOnly":false,"domain":"example.com","path":"/app","sameSite":"strict","future":{"x":1},"gone":null},"z":1,"a":{"nested":[1,2,{"b":null}]},"ünï":"çødé ✓"}"#;
        let r = Record::from_json(id(), json).expect("decodes");
        assert_eq!(r.cookie.same_site, Some(SameSite::Strict));
        assert_eq!(r.cookie.priority, Some(Priority::High));
        assert_eq!(r.cookie.domain.as_deref(), Some("example.com"));
        assert_eq!(r.to_json().expect("encodes"), json);
    }

    #[test]
    fn encoded_len_is_the_json_length() {
        let mut r = Record::new(id());
        r.data.insert("ünï".into(), Value::from("çødé ✓ \" \n"));
        r.data.insert("n".into(), Value::from(1.5));
        assert_eq!(
            r.encoded_len().expect("counts"),
            r.to_json().expect("encodes").len()
        );
    }

    #[test]
    fn the_size_bound_covers_the_longest_forms() {
        let mut r = Record::new(id());
        r.cookie = CookieMeta {
            original_max_age: Some(i64::MIN),
            expires: Some(time::from_millis(i64::MIN)),
            partitioned: Some(false),
            priority: Some(Priority::Medium),
            secure: Some(false),
            http_only: Some(false),
            domain: Some("\u{1}\"".into()),
            path: Some("/\\\n".into()),
            same_site: Some(SameSite::Strict),
            extra: [(
                "\u{7}".to_owned(),
                Value::from(-1.797_693_134_862_315_7e308),
            )]
            .into_iter()
            .collect(),
        };
        r.data
            .insert("\u{0}\u{1f}\u{7f}é".into(), Value::from(i64::MIN));
        r.data.insert("u".into(), Value::from(u64::MAX));
        r.data.insert(
            "a".into(),
            serde_json::json!([[], {}, [null, false, 5e-324]]),
        );
        let len = r.encoded_len().expect("counts");
        assert!(r.encoded_len_bound() >= len);
        assert_eq!(r.size_over(len).expect("counts"), None);
        assert_eq!(r.size_over(len - 1).expect("counts"), Some(len));
        // A small record is decided by the bound alone.
        let small = Record::new(id());
        assert!(small.encoded_len_bound() < 1024);
    }

    #[test]
    fn new_record_writes_express_defaults() {
        let r = Record::new(id());
        assert_eq!(
            r.to_json().expect("encodes"),
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}}"#
        );
    }

    #[test]
    fn records_round_trip_unchanged_found_by_fuzzing() {
        // fuzz/record_json: floats parsed inexactly drifted on every load/save,
        // and an `expires` outside years 0..=9999 (a huge number, or a huge
        // max_age) was written in a form that no longer decoded.
        for json in [
            r#"{"cookie":{"originalMaxAge":null,"expires":null},"big":1.8447473640709554e19}"#,
            r#"{"cookie":{"expires":9223372036854775807}}"#,
            r#"{"cookie":{"expires":-9223372036854775808}}"#,
            r#"{"cookie":{"expires":253402300800000}}"#,
            r#"{"cookie":{"expires":"+010000-01-01T00:00:00.000Z"}}"#,
        ] {
            let first = Record::from_json(id(), json).expect("decodes");
            let again = first.to_json().expect("encodes");
            let second = Record::from_json(first.id.clone(), &again).expect("re-decodes");
            assert_eq!(first, second, "{json} -> {again}");
        }
        let mut r = Record::new(id());
        r.cookie
            .set_max_age(Some(Duration::MAX), time::from_millis(1_000));
        let back = Record::from_json(r.id.clone(), &r.to_json().expect("encodes"));
        assert_eq!(back.expect("a huge max_age still decodes"), r);
    }

    /// The decoding `from_json` did before it skipped the `Value` step.
    fn via_value(id: SessionId, json: &[u8]) -> Result<Record> {
        let value: Value = serde_json::from_slice(json).map_err(Error::decode)?;
        Record::from_value(id, value)
    }

    fn same_as_via_value(json: &[u8]) {
        let direct = Record::from_json_slice(id(), json);
        let id = direct
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_else(|_| id());
        match (direct, via_value(id, json)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(json)),
            (Err(Error::Decode(_)), Err(Error::Decode(_))) => {}
            (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(json)),
        }
    }

    #[test]
    fn direct_decoding_matches_decoding_a_value() {
        for json in [
            r#"{"cookie":{"originalMaxAge":1,"expires":null},"a":1}"#,
            r#"{"a":1,"cookie":3,"b":2,"cookie":{"path":"/"},"a":[1,{"x":null}]}"#,
            r#"{"cookie":{"path":"/"},"cookie":"nope"}"#,
            r#"{"cookie":{"path":3,"path":"/","zz":1,"httpOnly":true,"zz":2}}"#,
            r#"{"cook\u0069e":{"domain":"a.b"},"\u0041":"\n"}"#,
            r#"{"cookie":{"p\u0061th":"/x","sameSite":"LAX","expires":1e3}}"#,
            r#"{"cookie":{"expires":"2026-11-27T01:54:41.837Z"},"n":1.5e300}"#,
            r#"{"cookie":[1,2,{"a":[]}]}"#,
            r#"{"cookie":null}"#,
            r#"{"cookie":{}} "#,
            r#"{"cookie":{}} x"#,
            r#"{"cookie":{},}"#,
            r#"[{"cookie":{}}]"#,
            r#"[[[]]]"#,
            r#""cookie""#,
            "null",
            "-1",
            "18446744073709551616",
            "",
            "{",
            r#"{"cookie":{"originalMaxAge":"1"}}"#,
        ] {
            same_as_via_value(json.as_bytes());
        }
        for dir in ["corpus/record_json", "regressions/record_json"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz")
                .join(dir);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                same_as_via_value(&std::fs::read(entry.path()).unwrap_or_default());
            }
        }
    }

    #[test]
    fn same_site_true_reads_as_strict() {
        let r = Record::from_json(id(), r#"{"cookie":{"sameSite":true}}"#).expect("decodes");
        assert_eq!(r.cookie.same_site, Some(SameSite::Strict));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for bad in [
            "",
            "not json",
            "[]",
            "42",
            "{}",
            r#"{"cookie":3}"#,
            r#"{"cookie":{"expires":"soon"}}"#,
            r#"{"cookie":{"httpOnly":"yes"}}"#,
            r#"{"cookie":{"sameSite":"sideways"}}"#,
        ] {
            let err = Record::from_json(id(), bad).expect_err(bad);
            assert!(matches!(err, Error::Decode(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn data_cookie_key_never_shadows_metadata() {
        let mut r = Record::new(id());
        r.data.insert("cookie".into(), Value::from("evil"));
        let back = Record::from_json(id(), &r.to_json().expect("encodes")).expect("decodes");
        assert_eq!(back.cookie, CookieMeta::new());
    }

    #[test]
    fn expiry_uses_cookie_or_default_ttl() {
        let now = time::from_millis(1_000_000);
        let mut r = Record::new(id());
        assert_eq!(
            r.store_expiry(Duration::from_secs(86_400), now),
            time::from_millis(1_000_000 + 86_400_000)
        );
        r.cookie.set_max_age(Some(Duration::from_secs(60)), now);
        assert_eq!(
            r.store_expiry(Duration::from_secs(86_400), now),
            time::from_millis(1_060_000)
        );
        r.cookie.reset_expiry(time::from_millis(2_000_000));
        assert_eq!(r.cookie.expires, Some(time::from_millis(2_060_000)));
    }
}

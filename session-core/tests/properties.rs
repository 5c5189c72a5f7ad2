//! Properties of the input-facing code, checked with proptest: signing and
//! rotation, tampering, id validation, cookie-value encoding and the record
//! JSON round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use sessionkit_core::signing::{self, decode_component, encode_component, MIN_SECRET_LEN};
use sessionkit_core::time;
use sessionkit_core::{CookieMeta, Priority, Record, SameSite, Secret, SessionId, Signer};

const ID_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Any valid id: 8..=128 characters of `A-Z a-z 0-9 - _`.
fn valid_id() -> impl Strategy<Value = SessionId> {
    "[A-Za-z0-9_-]{8,128}".prop_map(|s| SessionId::parse(&s).expect("matches the charset"))
}

/// 1..=4 distinct secrets of at least 32 arbitrary bytes.
fn secrets() -> impl Strategy<Value = Vec<Vec<u8>>> {
    btree_set(vec(any::<u8>(), MIN_SECRET_LEN..100), 1..=4)
        .prop_map(|set| set.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

fn signer(secrets: &[Vec<u8>]) -> Signer {
    Signer::new(secrets.iter().map(|s| Secret::new(s).expect("long enough"))).expect("signer")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_unsign_round_trips_with_rotation(id in valid_id(), secrets in secrets()) {
        let all = signer(&secrets);
        // Whatever secret signed it, the rotation verifies it, naming that secret.
        for (i, secret) in secrets.iter().enumerate() {
            let cookie = signer(std::slice::from_ref(secret)).sign_cookie(&id);
            let v = all.unsign_cookie(&cookie).expect("verifies");
            prop_assert_eq!(&v.id, &id);
            prop_assert_eq!(v.secret_index, i);
            // Node's raw primitive agrees with the signer.
            let raw = decode_component(&cookie);
            prop_assert_eq!(signing::unsign(&raw[2..], secret), Some(id.as_str()));
            prop_assert_eq!(signing::sign(id.as_str(), secret), &raw[2..]);
        }
        // The first secret signs.
        let cookie = all.sign_cookie(&id);
        prop_assert_eq!(all.unsign_cookie(&cookie).map(|v| v.secret_index), Some(0));
        // Dropping the secret that signed it drops the session.
        if secrets.len() > 1 {
            prop_assert_eq!(signer(&secrets[1..]).unsign_cookie(&cookie), None);
        }
    }

    #[test]
    fn short_secrets_are_refused(secret in vec(any::<u8>(), 0..MIN_SECRET_LEN)) {
        prop_assert!(Secret::new(&secret).is_err());
    }

    #[test]
    fn tampering_with_any_byte_of_a_signed_value_is_rejected(
        id in valid_id(),
        secrets in secrets(),
        at in any::<prop::sample::Index>(),
        with in any::<u8>(),
    ) {
        let s = signer(&secrets);
        let signed = s.sign(id.as_str());
        let mut bytes = signed.clone().into_bytes();
        let at = at.index(bytes.len());
        prop_assume!(bytes[at] != with);
        bytes[at] = with;
        let tampered = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(s.unsign(&tampered), None, "{} -> {}", signed, tampered);
        // Also when it arrives percent-encoded in a cookie.
        prop_assert_eq!(s.unsign_cookie(&encode_component(&tampered)), None);
        // Cut short or lengthened.
        prop_assert_eq!(s.unsign(&signed[..at]), None);
        prop_assert_eq!(s.unsign(&format!("{signed}{}", with as char)), None);
    }

    #[test]
    fn tampering_with_an_encoded_cookie_never_yields_another_id(
        id in valid_id(),
        secrets in secrets(),
        at in any::<prop::sample::Index>(),
        with in any::<u8>(),
    ) {
        // "%3A" -> "%3a" still decodes to the same value, so some edits are
        // harmless; none may verify as a different id.
        let s = signer(&secrets);
        let mut bytes = s.sign_cookie(&id).into_bytes();
        let at = at.index(bytes.len());
        bytes[at] = with;
        if let Some(v) = s.unsign_cookie(&String::from_utf8_lossy(&bytes)) {
            prop_assert_eq!(v.id, id);
        }
    }

    #[test]
    fn id_parse_accepts_exactly_the_documented_charset_and_length(
        s in prop_oneof![
            ".{0,140}",
            "[A-Za-z0-9_-]{0,140}",
            ("[A-Za-z0-9_-]{4,70}", any::<char>(), "[A-Za-z0-9_-]{4,70}")
                .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        ]
    ) {
        prop_assert_eq!((SessionId::MIN_LEN, SessionId::MAX_LEN), (8, 128));
        let expected = (SessionId::MIN_LEN..=SessionId::MAX_LEN).contains(&s.len())
            && s.chars().all(|c| ID_CHARS.contains(c));
        let parsed = SessionId::parse(&s);
        prop_assert_eq!(parsed.is_ok(), expected, "{:?}", s);
        if let Ok(id) = parsed {
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }

    #[test]
    fn generated_ids_always_parse(_n in 0..64u8) {
        let id = SessionId::generate();
        prop_assert_eq!(SessionId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn cookie_value_encoding_round_trips(s in any::<String>()) {
        let encoded = encode_component(&s);
        prop_assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-_.!~*'()".contains(&b)));
        prop_assert_eq!(decode_component(&encoded), s.as_str());
        if !s.contains('%') {
            prop_assert_eq!(decode_component(&s), s.as_str());
        }
    }

    #[test]
    fn decoding_any_text_never_panics_and_keeps_plus(s in "[%+a-fA-F0-9 ]{0,40}|.{0,40}") {
        let decoded = decode_component(&s);
        prop_assert!(decoded.matches('+').count() >= s.matches('+').count());
    }

    #[test]
    fn record_json_round_trips_for_arbitrary_data(
        id in valid_id(),
        data in json_object(),
        cookie in cookie_meta(),
    ) {
        let mut record = Record::new(id);
        record.cookie = cookie;
        record.data = data;
        record.data.shift_remove("cookie");
        let json = record.to_json().expect("encodes");
        prop_assert_eq!(record.encoded_len().expect("counts"), json.len());
        // The size limit decides as the exact length does, at the boundary.
        prop_assert_eq!(record.size_over(json.len()).expect("counts"), None);
        prop_assert_eq!(record.size_over(json.len() - 1).expect("counts"), Some(json.len()));
        let back = Record::from_json(record.id.clone(), &json).expect("decodes");
        prop_assert_eq!(&back, &record, "{}", json);
        prop_assert_eq!(back.to_json().expect("encodes"), json);
    }
}

/// Any JSON value: every type, arbitrary keys and strings, finite floats.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    vec((any::<String>(), json_value()), 0..12).prop_map(|kv| kv.into_iter().collect())
}

const KNOWN: [&str; 10] = [
    "cookie",
    "originalMaxAge",
    "expires",
    "partitioned",
    "priority",
    "secure",
    "httpOnly",
    "domain",
    "path",
    "sameSite",
];

/// Any cookie metadata a record can hold (unknown keys kept in `extra`).
fn cookie_meta() -> impl Strategy<Value = CookieMeta> {
    (
        (
            any::<Option<i64>>(),
            any::<Option<i64>>().prop_map(|ms| ms.map(time::from_millis)),
            any::<Option<bool>>(),
            prop::option::of(prop_oneof![
                Just(Priority::Low),
                Just(Priority::Medium),
                Just(Priority::High)
            ]),
            any::<Option<bool>>(),
        ),
        (
            any::<Option<bool>>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
            prop::option::of(prop_oneof![
                Just(SameSite::Strict),
                Just(SameSite::Lax),
                Just(SameSite::None)
            ]),
            json_object(),
        ),
    )
        .prop_map(
            |(
                (original_max_age, expires, partitioned, priority, secure),
                (http_only, domain, path, same_site, mut extra),
            )| {
                extra.retain(|k, _| !KNOWN.contains(&k.as_str()));
                let mut c = CookieMeta::new();
                c.original_max_age = original_max_age;
                c.expires = expires;
                c.partitioned = partitioned;
                c.priority = priority;
                c.secure = secure;
                c.http_only = http_only;
                c.domain = domain;
                c.path = path;
                c.same_site = same_site;
                c.extra = extra;
                c
            },
        )
}

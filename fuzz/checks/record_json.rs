//! The invariants of the `record_json` fuzz target, shared with the corpus
//! replay test (`session-core/tests/fuzz_corpus.rs`).
//!
//! Any bytes as a stored record: decoding never panics, and whatever
//! decodes survives decode → encode → decode unchanged, with a stable
//! encoding. The same for `sess.cookie` alone (`CookieMeta`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sessionkit_core::{CookieMeta, Record, SessionId};

/// Runs every invariant on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let id = SessionId::parse("fuzz-record-id-0123456789").expect("valid id");

    let decoded = Record::from_json_slice(id.clone(), data);
    if let Ok(text) = std::str::from_utf8(data) {
        let from_str = Record::from_json(id.clone(), text);
        assert_eq!(from_str.as_ref().ok(), decoded.as_ref().ok());
    }
    if let Ok(first) = decoded {
        let json = first.to_json().expect("a decoded record encodes");
        assert_eq!(first.to_json_vec().expect("encodes"), json.as_bytes());
        let second = Record::from_json(id.clone(), &json)
            .unwrap_or_else(|e| panic!("re-decoding {json} failed: {e:?}"));
        assert_eq!(first, second, "{json}");
        assert_eq!(second.to_json().expect("encodes"), json, "stable encoding");
    }

    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        // The input itself as `sess.cookie`, and, when it is an object, each
        // of its values (reaches the typed fields faster).
        let mut candidates = vec![value.clone()];
        if let Value::Object(map) = value {
            candidates.extend(map.into_iter().map(|(_, v)| v));
        }
        for candidate in candidates {
            if let Ok(first) = CookieMeta::from_value(candidate) {
                let encoded = serde_json::to_value(&first).expect("encodes");
                let second = CookieMeta::from_value(encoded.clone())
                    .unwrap_or_else(|e| panic!("re-decoding {encoded} failed: {e:?}"));
                assert_eq!(first, second, "{encoded}");
            }
        }
    }
}

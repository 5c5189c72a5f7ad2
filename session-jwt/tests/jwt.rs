//! JWT mode: issue, verify, rotate keys, revoke through a store denylist.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use sessionkit_core::{time, Record, SessionId, Store};
use sessionkit_jwt::{Jwt, JwtAlgorithm, JwtBuilder, JwtError};
use sessionkit_memory::MemoryStore;
use std::sync::Arc;
use std::time::Duration;

const KEY_A: &str = "jwt key A, thirty-two bytes or more!!";
const KEY_B: &str = "jwt key B, thirty-two bytes or more!!";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claims {
    role: String,
    uid: u64,
}

fn claims() -> Claims {
    Claims {
        role: "admin".into(),
        uid: 42,
    }
}

fn builder(store: &Arc<MemoryStore>) -> JwtBuilder {
    Jwt::builder().key(KEY_A).denylist(store.clone())
}

fn jwt(store: &Arc<MemoryStore>) -> Jwt {
    builder(store).build().unwrap()
}

#[tokio::test]
async fn issue_and_verify_with_custom_claims() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let sid = SessionId::generate();
    let token = jwt.issue(&sid, &claims()).unwrap();
    assert_eq!(token.split('.').count(), 3);
    let v = jwt.verify::<Claims>(&token).await.unwrap();
    assert_eq!(v.sid, sid);
    assert_eq!(v.claims, claims());
    assert_eq!(v.jti.len(), 32);
    let lifetime = v.expires_at.timestamp() - v.issued_at.timestamp();
    assert_eq!(lifetime, 15 * 60, "default ttl");

    // No custom claims.
    let token = jwt.issue(&sid, &()).unwrap();
    let v = jwt.verify::<()>(&token).await.unwrap();
    assert_eq!(v.sid, sid);
    let v = jwt.verify::<serde_json::Value>(&token).await.unwrap();
    assert_eq!(v.claims, serde_json::json!({}));

    // Each token has its own id.
    let a = jwt.issue(&sid, &()).unwrap();
    let b = jwt.issue(&sid, &()).unwrap();
    let (a, b) = (
        jwt.verify::<()>(&a).await.unwrap(),
        jwt.verify::<()>(&b).await.unwrap(),
    );
    assert_ne!(a.jti, b.jti);
}

#[tokio::test]
async fn expired_tokens_are_refused_unless_within_leeway() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let sid = SessionId::generate();
    let token = jwt.issue_with_ttl(&sid, &(), Duration::ZERO).unwrap();
    assert!(matches!(
        jwt.verify::<()>(&token).await,
        Err(JwtError::Expired)
    ));
    let lenient = builder(&store)
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(lenient.verify::<()>(&token).await.is_ok());
}

#[tokio::test]
async fn wrong_key_and_key_rotation() {
    let store = Arc::new(MemoryStore::new());
    let old = jwt(&store);
    let sid = SessionId::generate();
    let token_a = old.issue(&sid, &claims()).unwrap();

    let other = Jwt::builder()
        .key(KEY_B)
        .denylist(store.clone())
        .build()
        .unwrap();
    assert!(matches!(
        other.verify::<Claims>(&token_a).await,
        Err(JwtError::Invalid)
    ));

    // Rotation: B signs, A still verifies.
    let rotated = Jwt::builder()
        .keys([KEY_B, KEY_A])
        .denylist(store.clone())
        .build()
        .unwrap();
    assert_eq!(rotated.verify::<Claims>(&token_a).await.unwrap().sid, sid);
    let token_b = rotated.issue(&sid, &claims()).unwrap();
    assert!(other.verify::<Claims>(&token_b).await.is_ok());
    assert!(matches!(
        old.verify::<Claims>(&token_b).await,
        Err(JwtError::Invalid)
    ));
}

#[tokio::test]
async fn tampered_and_malformed_tokens_are_invalid() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let token = jwt.issue(&SessionId::generate(), &claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    let flip = |s: &str, at: usize| -> String {
        let mut b = s.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let payload = flip(parts[1], parts[1].len() / 2);
    let signature = flip(parts[2], 3);
    // {"alg":"none","typ":"JWT"}
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let hs512 = Jwt::builder()
        .key(KEY_A)
        .algorithm(JwtAlgorithm::Hs512)
        .denylist(store.clone())
        .build()
        .unwrap()
        .issue(&SessionId::generate(), &())
        .unwrap();
    for bad in [
        format!("{}.{payload}.{}", parts[0], parts[2]),
        format!("{}.{}.{signature}", parts[0], parts[1]),
        format!("{none}.{}.", parts[1]),
        format!("{none}.{}.{}", parts[1], parts[2]),
        hs512,
        String::new(),
        "a.b.c".into(),
        "....".into(),
        "not a token".into(),
        token.replace('.', ""),
        format!("{token}x"),
        "é.é.é".into(),
    ] {
        assert!(
            matches!(jwt.verify::<Claims>(&bad).await, Err(JwtError::Invalid)),
            "{bad}"
        );
        assert!(matches!(jwt.revoke(&bad).await, Err(JwtError::Invalid)));
    }
}

#[tokio::test]
async fn revoked_tokens_are_refused_until_they_expire() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let sid = SessionId::generate();
    let token = jwt.issue(&sid, &claims()).unwrap();
    let other = jwt.issue(&sid, &claims()).unwrap();
    let v = jwt.verify::<Claims>(&token).await.unwrap();

    jwt.revoke(&token).await.unwrap();
    assert!(matches!(
        jwt.verify::<Claims>(&token).await,
        Err(JwtError::Revoked)
    ));
    assert!(
        jwt.verify::<Claims>(&other).await.is_ok(),
        "only that token"
    );
    jwt.revoke(&token).await.unwrap(); // twice is fine

    // The denylist entry expires with the token.
    let deny = SessionId::parse(&format!("jwt-revoked-{}", v.jti)).unwrap();
    let entry = store.load(&deny).await.unwrap().expect("a denylist entry");
    assert_eq!(entry.cookie.expires, Some(v.expires_at));
    assert_eq!(
        entry.store_expiry(sessionkit_core::DEFAULT_TTL, time::now()),
        v.expires_at
    );

    // Revoking an expired token writes nothing.
    let expired = jwt.issue_with_ttl(&sid, &(), Duration::ZERO).unwrap();
    let before = store.count().await.unwrap();
    jwt.revoke(&expired).await.unwrap();
    assert_eq!(store.count().await.unwrap(), before);
}

#[tokio::test]
async fn require_session_revokes_every_token_of_a_destroyed_session() {
    let denylist = Arc::new(MemoryStore::new());
    let sessions = Arc::new(MemoryStore::new());
    let jwt = builder(&denylist)
        .require_session(sessions.clone())
        .build()
        .unwrap();
    let sid = SessionId::generate();
    sessions.create(&Record::new(sid.clone())).await.unwrap();
    let token = jwt.issue(&sid, &()).unwrap();
    assert!(jwt.verify::<()>(&token).await.is_ok());
    sessions.destroy(&sid).await.unwrap();
    assert!(matches!(
        jwt.verify::<()>(&token).await,
        Err(JwtError::SessionGone)
    ));
}

#[tokio::test]
async fn issuer_and_audience_are_checked() {
    let store = Arc::new(MemoryStore::new());
    let a = builder(&store)
        .issuer("auth")
        .audience("api")
        .build()
        .unwrap();
    let b = builder(&store)
        .issuer("auth")
        .audience("admin")
        .build()
        .unwrap();
    let plain = jwt(&store);
    let token = a.issue(&SessionId::generate(), &()).unwrap();
    assert!(a.verify::<()>(&token).await.is_ok());
    assert!(matches!(
        b.verify::<()>(&token).await,
        Err(JwtError::Invalid)
    ));
    let untagged = plain.issue(&SessionId::generate(), &()).unwrap();
    assert!(matches!(
        a.verify::<()>(&untagged).await,
        Err(JwtError::Invalid)
    ));
}

#[tokio::test]
async fn reserved_or_non_object_claims_are_refused() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let sid = SessionId::generate();
    for bad in [
        serde_json::json!({"sid": "x"}),
        serde_json::json!({"exp": 1}),
        serde_json::json!([1, 2]),
        serde_json::json!("text"),
    ] {
        assert!(
            matches!(jwt.issue(&sid, &bad), Err(JwtError::Claims(_))),
            "{bad}"
        );
    }
    // Claims of the wrong shape on verify are a Claims error, not a panic.
    let token = jwt.issue(&sid, &serde_json::json!({"role": 5})).unwrap();
    assert!(matches!(
        jwt.verify::<Claims>(&token).await,
        Err(JwtError::Claims(_))
    ));
}

/// A store whose server is down: every operation is a transient error
/// whose source holds what must never reach a message.
struct Down;

const LEAK: &str = "password=hunter2 host=10.0.0.5";

#[async_trait::async_trait]
impl Store for Down {
    async fn load(&self, _: &SessionId) -> sessionkit_core::Result<Option<Record>> {
        Err(sessionkit_core::Error::unavailable(
            "load",
            std::io::Error::other(LEAK),
        ))
    }
    async fn create(&self, _: &Record) -> sessionkit_core::Result<()> {
        Err(sessionkit_core::Error::unavailable(
            "create",
            std::io::Error::other(LEAK),
        ))
    }
    async fn save(&self, _: &Record) -> sessionkit_core::Result<sessionkit_core::WriteOutcome> {
        Err(sessionkit_core::Error::unavailable(
            "save",
            std::io::Error::other(LEAK),
        ))
    }
    async fn touch(
        &self,
        _: &SessionId,
        _: Option<sessionkit_core::time::Timestamp>,
    ) -> sessionkit_core::Result<sessionkit_core::WriteOutcome> {
        Err(sessionkit_core::Error::unavailable(
            "touch",
            std::io::Error::other(LEAK),
        ))
    }
    async fn destroy(&self, _: &SessionId) -> sessionkit_core::Result<()> {
        Err(sessionkit_core::Error::unavailable(
            "destroy",
            std::io::Error::other(LEAK),
        ))
    }
}

#[tokio::test]
async fn a_failing_denylist_is_a_store_error() {
    let jwt = Jwt::builder()
        .key(KEY_A)
        .denylist(Arc::new(Down))
        .build()
        .unwrap();
    let token = jwt.issue(&SessionId::generate(), &()).unwrap();
    let err = jwt.verify::<()>(&token).await.unwrap_err();
    assert!(matches!(&err, JwtError::Store(e) if e.is_transient()));
    assert!(!err.to_string().contains(LEAK));
    assert!(matches!(jwt.revoke(&token).await, Err(JwtError::Store(_))));
}

#[test]
fn configuration_is_checked() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for (b, what) in [
        (Jwt::builder().denylist(store.clone()), "no key"),
        (
            Jwt::builder().key("short").denylist(store.clone()),
            "short key",
        ),
        (
            Jwt::builder()
                .keys([KEY_A, "short"])
                .denylist(store.clone()),
            "one short key",
        ),
        (Jwt::builder().key(KEY_A), "no denylist"),
        (
            Jwt::builder()
                .key(KEY_A)
                .denylist(store.clone())
                .ttl(Duration::from_millis(10)),
            "ttl under a second",
        ),
        (
            Jwt::builder()
                .key(KEY_A)
                .denylist(store.clone())
                .leeway(Duration::from_secs(7200)),
            "leeway over an hour",
        ),
    ] {
        assert!(
            matches!(b.build(), Err(sessionkit_core::Error::Config(_))),
            "{what}"
        );
    }
    let debug = format!(
        "{:?}",
        Jwt::builder().key(KEY_A).denylist(store).build().unwrap()
    );
    assert!(!debug.contains(KEY_A));
}

/// `nbf` and `iat` are checked, strictly typed: a token not valid yet, one
/// issued in the future, or one whose `nbf` is a string (the type confusion
/// of GHSA-h395-gr6q-cpjc in jsonwebtoken 9) is refused.
#[tokio::test]
async fn not_before_and_issued_at_are_validated() {
    let store = Arc::new(MemoryStore::new());
    let jwt = jwt(&store);
    let now = time::now().timestamp();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(KEY_A.as_bytes()),
        )
        .unwrap()
    };
    let base = |extra: serde_json::Value| {
        let mut c = serde_json::json!({
            "sid": SessionId::generate().as_str(),
            "jti": "0123456789abcdef0123456789abcdef",
            "iat": now,
            "exp": now + 600,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(c)
    };
    // The control: a well-formed token verifies, with a past nbf too.
    assert!(jwt
        .verify::<serde_json::Value>(&base(serde_json::json!({})))
        .await
        .is_ok());
    assert!(jwt
        .verify::<serde_json::Value>(&base(serde_json::json!({ "nbf": now - 10 })))
        .await
        .is_ok());
    for bad in [
        serde_json::json!({ "nbf": now + 3600 }),
        serde_json::json!({ "nbf": (now + 3600).to_string() }),
        serde_json::json!({ "nbf": "99999999999" }),
        serde_json::json!({ "iat": now + 3600 }),
        serde_json::json!({ "iat": now.to_string() }),
    ] {
        assert!(
            matches!(
                jwt.verify::<serde_json::Value>(&base(bad.clone())).await,
                Err(JwtError::Invalid)
            ),
            "{bad}"
        );
    }
    // Within the configured leeway, a slightly early nbf is accepted.
    let lenient = builder(&store)
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(lenient
        .verify::<serde_json::Value>(&base(serde_json::json!({ "nbf": now + 30 })))
        .await
        .is_ok());
}

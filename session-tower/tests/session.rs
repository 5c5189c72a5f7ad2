//! express-session's behaviour, option by option and decision by decision,
//! through a real axum server on 127.0.0.1 and a real HTTP client, with the
//! store checked directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::get as route;
use axum::{Extension, Router};
use sessionkit_core::time;
use sessionkit_core::{Priority, Record, SessionId, Store, WriteOutcome};
use sessionkit_tower::{
    SameSitePolicy, SecureConnection, SecurePolicy, Session, SessionError, UnsetPolicy,
};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const DAY: Duration = Duration::from_secs(86_400);

/// The routes most tests use.
fn routes(store: Arc<Counting>) -> Router {
    let peek_store = store.clone();
    let save_store = store.clone();
    base_routes()
        .route(
            "/id",
            route(|s: Session| async move {
                Ok::<_, SessionError>(s.id().await?.map(|i| i.to_string()).unwrap_or_default())
            }),
        )
        .route(
            "/login",
            route(|s: Session| async move {
                s.regenerate().await?;
                s.insert("user", "alice").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/destroy",
            route(move |s: Session| {
                let store = peek_store.clone();
                async move {
                    let id = s.id().await?;
                    s.destroy().await?;
                    let still = match id {
                        Some(id) => store.peek(&id).await.is_some(),
                        None => false,
                    };
                    Ok::<_, SessionError>(format!("still stored: {still}"))
                }
            }),
        )
        .route(
            "/logout-flash",
            route(|s: Session| async move {
                s.destroy().await?;
                s.insert("flash", "bye").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/save",
            route(move |s: Session| {
                let store = save_store.clone();
                async move {
                    s.insert("n", 42).await?;
                    let outcome = s.save().await?;
                    let id = s.id().await?.expect("id");
                    let stored = store.peek(&id).await.map(|r| r.data["n"].clone());
                    Ok::<_, SessionError>(format!("{outcome:?} {stored:?}"))
                }
            }),
        )
        .route(
            "/touch",
            route(|s: Session| async move {
                s.touch().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/remember",
            route(|s: Session| async move {
                s.insert("user", "alice").await?;
                s.set_max_age(Some(30 * DAY)).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/unset",
            route(|s: Session| async move {
                s.insert("n", 1000).await?;
                s.unset().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/opt",
            route(|s: Option<Session>| async move {
                if s.is_some() {
                    "some"
                } else {
                    "none"
                }
            }),
        )
}

async fn app(store: &Arc<Counting>, config: sessionkit_tower::SessionConfig) -> String {
    serve(routes(store.clone()), store.clone(), config).await
}

/// Creates a session with n=1 and returns (its cookie, its id).
async fn start(base: &str, store: &Counting) -> (String, SessionId) {
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let out = (r.cookie(), r.sid());
    store.reset();
    out
}

// ---------------------------------------------------------------- new sessions

#[tokio::test]
async fn unused_session_without_cookie_costs_nothing() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let r = get(&format!("{base}/none"), &[]).await;
    assert_eq!(r.body, "ok");
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts(), NONE);
}

#[tokio::test]
async fn new_modified_session_is_created_with_express_json_and_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.body, "1");
    let sc = r.set_cookie().unwrap();
    assert!(sc.starts_with("connect.sid=s%3A"), "{sc}");
    assert!(sc.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{sc}");
    assert!(!sc.contains("Expires"), "browser-session cookie: {sc}");
    let c = store.counts();
    assert_eq!((c.loads, c.creates, c.saves, c.touches), (0, 1, 0, 0));
    let (json, _) = store.inner.get_raw(&r.sid()).unwrap();
    assert_eq!(
        json,
        r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/","sameSite":"lax"},"n":1}"#
    );
}

#[tokio::test]
async fn new_session_only_read_is_not_saved_and_gets_no_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let r = get(&format!("{base}/read"), &[]).await;
    assert_eq!(r.body, "n=None");
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts(), NONE);
}

#[tokio::test]
async fn save_uninitialized_stores_and_sends_even_unused_sessions() {
    let store = Counting::new();
    let base = app(&store, config().save_uninitialized(true).build().unwrap()).await;
    let r = get(&format!("{base}/none"), &[]).await;
    let id = r.sid();
    assert!(store.peek(&id).await.unwrap().data.is_empty());
    assert_eq!(store.counts().creates, 1);
}

// ----------------------------------------------------------- existing sessions

#[tokio::test]
async fn read_unmodified_session_is_touched_not_saved_and_no_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, _) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/read"), &cookie).await;
    assert_eq!(r.body, "n=Some(1)");
    assert!(r.set_cookies.is_empty());
    let c = store.counts();
    assert_eq!((c.loads, c.creates, c.saves, c.touches), (1, 0, 0, 1));
    // Browser-session cookie: the store applies its default TTL.
    assert_eq!(*store.touch_expiries.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn unused_existing_session_is_touched_like_express_session() {
    let store = Counting::new();
    let base = app(&store, config().max_age(DAY).build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    let before = store.inner.get_raw(&id).unwrap().1;
    let r = get_with_cookie(&format!("{base}/none"), &cookie).await;
    assert!(r.set_cookies.is_empty(), "rolling is off");
    let c = store.counts();
    assert_eq!((c.loads, c.saves, c.touches), (1, 0, 1));
    let after = store.inner.get_raw(&id).unwrap().1;
    assert!(after >= before);
}

#[tokio::test]
async fn modified_session_with_max_age_is_saved_and_cookie_refreshed() {
    let store = Counting::new();
    let base = app(&store, config().max_age(DAY).build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/inc"), &cookie).await;
    assert_eq!(r.body, "2");
    assert_eq!(r.sid(), id);
    let c = store.counts();
    assert_eq!((c.loads, c.creates, c.saves, c.touches), (1, 0, 1, 0));
    let record = store.peek(&id).await.unwrap();
    assert_eq!(record.data["n"], 2);
    assert_eq!(record.cookie.original_max_age, Some(86_400_000));
    let expires = record.cookie.expires.unwrap();
    let sc = r.set_cookie().unwrap();
    let http_date = expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    assert!(
        sc.contains(&format!("; Expires={http_date};")),
        "{sc} vs {http_date}"
    );
}

#[tokio::test]
async fn the_refreshed_cookie_is_the_signed_id_encoded_like_express_session() {
    let store = Counting::new();
    let base = app(&store, config().max_age(DAY).build().unwrap()).await;
    let (_, id) = start(&base, &store).await;
    let signed = signer(SECRET).sign(id.as_str());
    // However the client quoted or encoded a valid cookie, the answer is
    // the canonical value (the MAC the current secret gives, reused).
    for sent in [
        cookie_for(&id),
        format!("connect.sid={signed}"),
        format!(
            "connect.sid=\"{}\"",
            cookie_for(&id).trim_start_matches("connect.sid=")
        ),
        format!("connect.sid={}", signed.replace(':', "%3a")),
    ] {
        let r = get_with_cookie(&format!("{base}/inc"), &sent).await;
        let sc = r.set_cookie().unwrap();
        assert!(
            sc.starts_with(&format!("{}; Path=/; Expires=", cookie_for(&id))),
            "{sent}: {sc}"
        );
    }
}

#[tokio::test]
async fn modified_browser_session_is_saved_without_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/inc"), &cookie).await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookies.is_empty(), "no expiry to refresh");
    assert_eq!(store.counts().saves, 1);
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 2);
}

#[tokio::test]
async fn rolling_sends_the_cookie_on_every_response() {
    let store = Counting::new();
    let base = app(&store, config().rolling(true).max_age(DAY).build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    for path in ["/read", "/none"] {
        let r = get_with_cookie(&format!("{base}{path}"), &cookie).await;
        assert_eq!(r.sid(), id, "{path}");
        assert!(r.set_cookie().unwrap().contains("Expires="));
    }
    let c = store.counts();
    assert_eq!((c.loads, c.saves, c.touches), (2, 0, 2));
}

#[tokio::test]
async fn rolling_does_not_send_cookies_for_unsaved_new_sessions() {
    let store = Counting::new();
    let base = app(&store, config().rolling(true).build().unwrap()).await;
    let r = get(&format!("{base}/read"), &[]).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts(), NONE);
}

#[tokio::test]
async fn resave_writes_unmodified_sessions() {
    let store = Counting::new();
    let base = app(&store, config().resave(true).build().unwrap()).await;
    let (cookie, _) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/read"), &cookie).await;
    assert!(r.set_cookies.is_empty());
    let c = store.counts();
    assert_eq!((c.loads, c.saves, c.touches), (1, 1, 0));
}

#[tokio::test]
async fn unknown_id_gets_a_new_id_never_the_clients() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let chosen = SessionId::generate();
    let r = get_with_cookie(&format!("{base}/inc"), &cookie_for(&chosen)).await;
    assert_eq!(r.body, "1");
    assert_eq!(store.counts().loads, 1);
    assert_ne!(r.sid(), chosen);
    assert!(store.peek(&chosen).await.is_none());
    assert!(store.peek(&r.sid()).await.is_some());
}

#[tokio::test]
async fn loaded_session_keeps_its_stored_cookie_attributes() {
    let store = Counting::new();
    let base = app(&store, config().rolling(true).build().unwrap()).await;
    let json = r#"{"cookie":{"originalMaxAge":60000,"expires":"2099-01-01T00:00:00.000Z","httpOnly":true,"domain":"example.com","path":"/","sameSite":"strict"},"n":7}"#;
    let id = SessionId::generate();
    let far = time::parse_iso("2099-01-01T00:00:00.000Z").unwrap();
    store.inner.insert_raw(id.clone(), json, far);
    let r = get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    assert_eq!(r.body, "n=Some(7)");
    let sc = r.set_cookie().unwrap();
    assert!(
        sc.contains("; Domain=example.com; Path=/; Expires="),
        "{sc}"
    );
    assert!(sc.ends_with("; HttpOnly; SameSite=Strict"), "{sc}");
    // The expiry was reset from originalMaxAge (60 s), not the stored 2099 date.
    assert!(!sc.contains("2099"), "{sc}");
}

#[tokio::test]
async fn stored_attributes_that_would_inject_are_replaced() {
    let store = Counting::new();
    let base = app(&store, config().rolling(true).build().unwrap()).await;
    let json = r#"{"cookie":{"originalMaxAge":null,"expires":null,"domain":"evil.com; Secure","path":"/; Domain=evil.com"}}"#;
    let id = SessionId::generate();
    store.inner.insert_raw(
        id.clone(),
        json,
        time::from_millis(time::now().timestamp_millis() + 60_000),
    );
    let r = get_with_cookie(&format!("{base}/none"), &cookie_for(&id)).await;
    let sc = r.set_cookie().unwrap();
    assert!(!sc.contains("evil"), "{sc}");
    assert!(sc.contains("; Path=/"), "{sc}");
}

// --------------------------------------------------------------------- cookies

#[tokio::test]
async fn forged_unsigned_and_malformed_cookies_mean_a_new_session_and_no_store_read() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (_, id) = start(&base, &store).await;
    let good = signer(SECRET).sign(id.as_str());
    let other = signer("another secret that is at least thirty-two bytes").sign(id.as_str());
    let forged_mac = format!("{}AAAA", &good[..good.len() - 4]);
    let malformed_id = signer(SECRET).sign("a*b?c[d]e");
    for value in [
        id.to_string(),
        format!("s:{id}"),
        format!("s:{id}."),
        forged_mac,
        other,
        malformed_id,
        "%E0%A4%A".to_owned(),
        "s:".to_owned(),
        "x".repeat(5000),
    ] {
        store.reset();
        let cookie = format!(
            "connect.sid={}",
            sessionkit_core::signing::encode_component(&value)
        );
        let r = get_with_cookie(&format!("{base}/inc"), &cookie).await;
        assert_eq!(r.body, "1", "{value}");
        assert_ne!(r.sid(), id);
        assert_eq!(store.counts().loads, 0, "{value}");
    }
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 1, "untouched");
}

#[tokio::test]
async fn only_the_first_cookie_of_that_name_counts() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, _) = start(&base, &store).await;
    let r = get_with_cookie(
        &format!("{base}/read"),
        &format!("other=1; {cookie}; connect.sid=junk"),
    )
    .await;
    assert_eq!(r.body, "n=Some(1)");
    store.reset();
    let r = get_with_cookie(
        &format!("{base}/read"),
        &format!("connect.sid=junk; {cookie}"),
    )
    .await;
    assert_eq!(r.body, "n=None");
    assert_eq!(store.counts().loads, 0);
    // Also across several Cookie header lines.
    store.reset();
    let r = get(
        &format!("{base}/read"),
        &[("cookie", "connect.sid=junk"), ("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn a_plus_in_the_cookie_value_stays_a_plus() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let s = signer(SECRET);
    // Find an id whose signature contains '+' (about every other one does).
    let (id, signed) = (0..1000)
        .map(|_| SessionId::generate())
        .map(|id| {
            let signed = s.sign(id.as_str());
            (id, signed)
        })
        .find(|(_, signed)| signed.contains('+'))
        .unwrap();
    let mut record = Record::new(id.clone());
    record.data.insert("n".into(), 5.into());
    store.put(&record).await;
    let raw = format!("connect.sid=s%3A{}", &signed[2..]);
    assert!(raw.contains('+'));
    let r = get_with_cookie(&format!("{base}/read"), &raw).await;
    assert_eq!(r.body, "n=Some(5)");
    // As a space (form-decoding), it no longer verifies.
    let r = get_with_cookie(&format!("{base}/read"), &raw.replace('+', "%20")).await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn path_gating_leaves_other_paths_without_a_session() {
    let store = Counting::new();
    let router = Router::new()
        .route(
            "/other",
            route(|s: Option<Session>| async move { format!("{}", s.is_some()) }),
        )
        .route(
            "/app/inc",
            route(|s: Session| async move {
                s.insert("n", 1).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route("/app-missing", route(|_s: Session| async { "unreachable" }));
    let base = serve(
        router,
        store.clone(),
        config().path("/app/").build().unwrap(),
    )
    .await;
    let r = get(&format!("{base}/other"), &[]).await;
    assert_eq!(r.body, "false");
    assert!(r.set_cookies.is_empty());
    let r = get(&format!("{base}/app-missing"), &[]).await;
    assert_eq!(r.status, 500, "the extractor reports the missing session");
    assert_eq!(r.body, "Internal Server Error");
    let r = get(&format!("{base}/app/inc"), &[]).await;
    assert!(r.set_cookie().unwrap().contains("; Path=/app/;"));
}

#[tokio::test]
async fn missing_layer_is_a_500_from_the_extractor() {
    let base = serve_plain(routes(Counting::new())).await;
    assert_eq!(get(&format!("{base}/opt"), &[]).await.body, "none");
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.status, 500);
}

/// A rotation rolled out to Rust first (Rust `[new, old]`, Node still on
/// `[old]`): as express-session, a read-only response sends no cookie, so
/// Node keeps the cookie it can verify; a response that sends the cookie
/// anyway signs it with the new secret.
#[tokio::test]
async fn secret_rotation_verifies_old_cookies_and_re_signs_only_cookies_sent_anyway() {
    let store = Counting::new();
    let old_base = app(&store, SessionConfigForTest::old()).await;
    let r = get(&format!("{old_base}/inc"), &[]).await;
    let old_cookie = r.cookie();
    let old_value = old_cookie.split_once('=').unwrap().1.to_owned();
    let id = signer(OLD_SECRET).unsign_cookie(&old_value).unwrap().id;

    let base = app(
        &store,
        config().secrets([SECRET, OLD_SECRET]).build().unwrap(),
    )
    .await;
    store.reset();
    let r = get_with_cookie(&format!("{base}/read"), &old_cookie).await;
    assert_eq!(r.body, "n=Some(1)");
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    let r = get_with_cookie(&format!("{base}/none"), &old_cookie).await;
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    // A cookie sent anyway (here: rolling) carries the new signature.
    let rolling = app(
        &store,
        config()
            .secrets([SECRET, OLD_SECRET])
            .max_age(DAY)
            .rolling(true)
            .build()
            .unwrap(),
    )
    .await;
    let r = get_with_cookie(&format!("{rolling}/read"), &old_cookie).await;
    assert_eq!(r.sid(), id, "re-signed with the current secret");

    // Eager re-signing, when asked for: on every response that finds it.
    let eager = app(
        &store,
        config()
            .secrets([SECRET, OLD_SECRET])
            .resign_old_cookies(true)
            .build()
            .unwrap(),
    )
    .await;
    let r = get_with_cookie(&format!("{eager}/read"), &old_cookie).await;
    assert_eq!(r.sid(), id);
    assert_ne!(r.cookie(), old_cookie);
    // Once re-signed: no cookie on an unmodified request.
    let r2 = get_with_cookie(&format!("{eager}/read"), &r.cookie()).await;
    assert!(r2.set_cookies.is_empty());
    // Re-signing also works for a request that never used the session.
    let r3 = get_with_cookie(&format!("{eager}/none"), &old_cookie).await;
    assert_eq!(r3.sid(), id);

    // Without the old secret, the old cookie is not even looked up.
    let new_only = app(&store, config().build().unwrap()).await;
    store.reset();
    let r = get_with_cookie(&format!("{new_only}/read"), &old_cookie).await;
    assert_eq!(r.body, "n=None");
    assert_eq!(store.counts().loads, 0);
}

/// express-session's README secret, `keyboard cat`: a Node service's short
/// secret verifies its cookies in Rust when it follows a long one.
#[tokio::test]
async fn a_short_node_secret_verifies_after_a_long_one() {
    let store = Counting::new();
    let (_, id) = {
        let base = app(&store, config().build().unwrap()).await;
        start(&base, &store).await
    };
    // The same session as a Node service on `keyboard cat` would sign it.
    let short =
        sessionkit_core::Signer::new([
            sessionkit_core::Secret::verify_only("keyboard cat").unwrap()
        ]);
    assert!(short.is_err(), "a short secret never signs");
    let node_value = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"keyboard cat").unwrap();
        mac.update(id.as_str().as_bytes());
        let sig = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            mac.finalize().into_bytes(),
        );
        sessionkit_core::signing::encode_component(&format!("s:{}.{sig}", id.as_str()))
    };
    let base = app(
        &store,
        config().secrets([SECRET, "keyboard cat"]).build().unwrap(),
    )
    .await;
    let r = get_with_cookie(
        &format!("{base}/read"),
        &format!("connect.sid={node_value}"),
    )
    .await;
    assert_eq!(r.body, "n=Some(1)");
}

struct SessionConfigForTest;
impl SessionConfigForTest {
    fn old() -> sessionkit_tower::SessionConfig {
        sessionkit_tower::SessionConfig::builder()
            .secret(OLD_SECRET)
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn cookie_attributes_are_serialised_in_node_order() {
    let store = Counting::new();
    let cfg = config()
        .name("sid")
        .domain("example.com")
        .max_age(DAY)
        .secure(SecurePolicy::Always)
        .same_site(SameSitePolicy::None)
        .partitioned(true)
        .priority(Priority::High)
        .proxy(Some(true))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let r = get(&format!("{base}/inc"), &[("x-forwarded-proto", "https")]).await;
    let sc = r.set_cookie().unwrap();
    assert!(sc.starts_with("sid=s%3A"), "{sc}");
    let attrs: Vec<&str> = sc
        .split("; ")
        .skip(1)
        .map(|a| a.split('=').next().unwrap())
        .collect();
    assert_eq!(
        attrs,
        [
            "Domain",
            "Path",
            "Expires",
            "HttpOnly",
            "Secure",
            "Partitioned",
            "Priority",
            "SameSite"
        ]
    );
    assert!(sc.ends_with("; Priority=High; SameSite=None"), "{sc}");
}

#[tokio::test]
async fn http_only_false_and_omitted_same_site() {
    let store = Counting::new();
    let cfg = config()
        .http_only(false)
        .same_site(SameSitePolicy::Omit)
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let sc = get(&format!("{base}/inc"), &[]).await.set_cookies.join("");
    assert!(sc.ends_with("; Path=/"), "{sc}");
}

#[tokio::test]
async fn expires_option_sets_a_fixed_expiry() {
    let store = Counting::new();
    let at = time::from_millis(time::now().timestamp_millis() + 3_600_000);
    let base = app(&store, config().expires(at).build().unwrap()).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let record = store.peek(&r.sid()).await.unwrap();
    let max_age = record.cookie.original_max_age.unwrap();
    assert!(max_age > 0 && max_age <= 3_600_000);
    assert!(r.set_cookie().unwrap().contains("Expires="));
}

// ------------------------------------------------------------ proxy and secure

#[tokio::test]
async fn secure_cookie_is_never_set_on_an_insecure_request() {
    let store = Counting::new();
    let cfg = config().secure(SecurePolicy::Always).build().unwrap();
    let base = app(&store, cfg).await;
    // proxy unset: the header is not trusted.
    let r = get(&format!("{base}/inc"), &[("x-forwarded-proto", "https")]).await;
    assert_eq!(r.body, "1");
    assert!(r.set_cookies.is_empty());
    assert_eq!(
        store.counts().creates,
        0,
        "an unreachable session is not stored"
    );
}

#[tokio::test]
async fn proxy_true_trusts_the_first_forwarded_proto() {
    let store = Counting::new();
    let cfg = config()
        .secure(SecurePolicy::Always)
        .proxy(Some(true))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    for (proto, secure) in [
        ("https", true),
        ("HTTPS , http", true),
        ("http, https", false),
        ("http", false),
        ("", false),
    ] {
        let r = get(&format!("{base}/inc"), &[("x-forwarded-proto", proto)]).await;
        assert_eq!(r.set_cookies.len(), usize::from(secure), "{proto:?}");
        if secure {
            assert!(r.set_cookie().unwrap().contains("; Secure"));
        }
    }
    let r = get(&format!("{base}/inc"), &[]).await;
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn proxy_false_ignores_forwarded_proto() {
    let store = Counting::new();
    let cfg = config()
        .secure(SecurePolicy::Always)
        .proxy(Some(false))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let r = get(&format!("{base}/inc"), &[("x-forwarded-proto", "https")]).await;
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn secure_and_same_site_auto_follow_the_request() {
    let store = Counting::new();
    let cfg = config()
        .secure(SecurePolicy::Auto)
        .same_site(SameSitePolicy::Auto)
        .proxy(Some(true))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let plain = get(&format!("{base}/inc"), &[]).await;
    let sc = plain.set_cookie().unwrap();
    assert!(
        !sc.contains("Secure") && sc.ends_with("SameSite=Lax"),
        "{sc}"
    );
    let tls = get(&format!("{base}/inc"), &[("x-forwarded-proto", "https")]).await;
    let sc = tls.set_cookie().unwrap();
    assert!(sc.ends_with("; Secure; SameSite=None"), "{sc}");
    let rec = store.peek(&tls.sid()).await.unwrap();
    assert_eq!(rec.cookie.secure, Some(true));
    // The stored Secure flag then decides: no cookie back over plain HTTP.
    let r = get_with_cookie(&format!("{base}/inc"), &tls.cookie()).await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn secure_connection_extension_marks_tls_requests() {
    let store = Counting::new();
    let cfg = config().secure(SecurePolicy::Always).build().unwrap();
    let router = routes(store.clone())
        .layer(sessionkit_tower::SessionLayer::from_arc(store.clone(), cfg))
        .layer(Extension(SecureConnection));
    let base = serve_plain(router).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert!(r.set_cookie().unwrap().contains("; Secure"));
}

// --------------------------------------------------------------------- methods

#[tokio::test]
async fn regenerate_replaces_id_and_data_and_deletes_the_old_record_after() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, old) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/login"), &cookie).await;
    let new = r.sid();
    assert_ne!(new, old);
    assert!(store.peek(&old).await.is_none(), "old record deleted");
    let rec = store.peek(&new).await.unwrap();
    assert_eq!(rec.data.get("n"), None, "data dropped");
    assert_eq!(rec.data["user"], "alice");
    let c = store.counts();
    assert_eq!((c.creates, c.destroys), (1, 1));
}

#[tokio::test]
async fn regenerate_then_failed_save_keeps_the_old_session() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, old) = start(&base, &store).await;
    store.set_fail(Fail {
        create: true,
        ..Fail::default()
    });
    let r = get_with_cookie(&format!("{base}/login"), &cookie).await;
    assert_eq!(r.status, 503);
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts().destroys, 0);
    store.set_fail(Fail::default());
    assert_eq!(
        store.peek(&old).await.unwrap().data["n"],
        1,
        "still logged in"
    );
}

#[tokio::test]
async fn regenerate_works_without_loading_the_old_session() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, old) = start(&base, &store).await;
    get_with_cookie(&format!("{base}/login"), &cookie).await;
    assert_eq!(store.counts().loads, 0, "regenerate drops the data unread");
    assert!(store.peek(&old).await.is_none());
}

#[tokio::test]
async fn destroy_deletes_now_and_expires_the_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/destroy"), &cookie).await;
    assert_eq!(r.body, "still stored: false");
    let sc = r.set_cookie().unwrap();
    assert!(
        sc.starts_with("connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"),
        "{sc}"
    );
    assert!(store.peek(&id).await.is_none());
    let r = get_with_cookie(&format!("{base}/read"), &cookie).await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn data_after_destroy_starts_a_new_session() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, old) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/logout-flash"), &cookie).await;
    let new = r.sid();
    assert_ne!(new, old);
    assert!(store.peek(&old).await.is_none());
    assert_eq!(store.peek(&new).await.unwrap().data["flash"], "bye");
}

#[tokio::test]
async fn reload_rereads_the_store_and_reports_a_vanished_session() {
    let store = Counting::new();
    let shared = store.clone();
    let router = Router::new().route(
        "/reload",
        route(move |s: Session| {
            let store = shared.clone();
            async move {
                s.insert("n", 99).await?;
                let id = s.id().await?.expect("id");
                // Another request changes the stored session meanwhile.
                let mut rec = store.peek(&id).await.expect("stored");
                rec.data.insert("n".into(), 5.into());
                let _ = store.inner.save(&rec).await;
                let found = s.reload().await?;
                let n: Option<u64> = s.get("n").await?;
                store.inner.destroy(&id).await.ok();
                let found_again = s.reload().await?;
                Ok::<_, SessionError>(format!("{found} {n:?} {found_again}"))
            }
        }),
    );
    let base = serve(
        routes(store.clone()).merge(router),
        store.clone(),
        config().build().unwrap(),
    )
    .await;
    let (cookie, _) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/reload"), &cookie).await;
    assert_eq!(r.body, "true Some(5) false");
}

#[tokio::test]
async fn save_writes_before_the_response_and_not_twice() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let r = get(&format!("{base}/save"), &[]).await;
    assert_eq!(r.body, "Written Some(Number(42))");
    assert!(r.set_cookie().is_some());
    let c = store.counts();
    assert_eq!((c.creates, c.saves, c.touches), (1, 0, 0));
    // On an existing session: one save, no end-of-request write.
    store.reset();
    let r = get_with_cookie(&format!("{base}/save"), &r.cookie()).await;
    assert_eq!(r.body, "Written Some(Number(42))");
    let c = store.counts();
    assert_eq!((c.creates, c.saves, c.touches), (0, 1, 0));
}

#[tokio::test]
async fn an_unmodified_new_session_that_was_saved_gets_its_cookie() {
    let store = Counting::new();
    let router = Router::new().route(
        "/empty-save",
        route(|s: Session| async move {
            let outcome = s.save().await?;
            Ok::<_, SessionError>(format!("{outcome:?}"))
        }),
    );
    let base = serve(router, store.clone(), config().build().unwrap()).await;
    let r = get(&format!("{base}/empty-save"), &[]).await;
    assert_eq!(r.body, "Written");
    assert!(store.peek(&r.sid()).await.is_some());
}

#[tokio::test]
async fn a_session_destroyed_meanwhile_is_not_resurrected() {
    let store = Counting::new();
    let shared = store.clone();
    let router = Router::new().route(
        "/race",
        route(move |s: Session| {
            let store = shared.clone();
            async move {
                s.insert("cart", 3).await?;
                // Logout in another tab, while this request runs.
                let id = s.id().await?.expect("id");
                store.inner.destroy(&id).await.ok();
                Ok::<_, SessionError>("ok")
            }
        }),
    );
    let base = serve(
        routes(store.clone()).merge(router),
        store.clone(),
        config().max_age(DAY).build().unwrap(),
    )
    .await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/race"), &cookie).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts().saves, 1);
    assert!(store.peek(&id).await.is_none(), "not recreated");
}

#[tokio::test]
async fn explicit_save_of_a_destroyed_session_reports_gone() {
    let store = Counting::new();
    let shared = store.clone();
    let router = Router::new().route(
        "/gone",
        route(move |s: Session| {
            let store = shared.clone();
            async move {
                let id = s.id().await?.expect("id");
                store.inner.destroy(&id).await.ok();
                s.insert("x", 1).await?;
                let outcome = s.save().await?;
                Ok::<_, SessionError>(format!("{outcome:?}"))
            }
        }),
    );
    let base = serve(
        routes(store.clone()).merge(router),
        store.clone(),
        config().build().unwrap(),
    )
    .await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/gone"), &cookie).await;
    assert_eq!(r.body, "Gone");
    assert!(store.peek(&id).await.is_none());
    assert_eq!(store.counts().saves, 1, "no second attempt at the end");
}

#[tokio::test]
async fn touch_after_skips_store_io_and_touch_forces_it() {
    let store = Counting::new();
    let cfg = config()
        .max_age(DAY)
        .touch_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let (cookie, _) = start(&base, &store).await;
    // Written a moment ago by this process: unused requests cost nothing.
    for _ in 0..3 {
        let r = get_with_cookie(&format!("{base}/none"), &cookie).await;
        assert!(r.set_cookies.is_empty());
    }
    // A read loads but skips the touch.
    get_with_cookie(&format!("{base}/read"), &cookie).await;
    let c = store.counts();
    assert_eq!((c.loads, c.touches, c.saves), (1, 0, 0));
    // touch() forces it.
    store.reset();
    get_with_cookie(&format!("{base}/touch"), &cookie).await;
    let c = store.counts();
    assert_eq!((c.loads, c.touches), (1, 1));
    // A session this process has not written is touched.
    let mut other = Record::new(SessionId::generate());
    other.cookie.set_max_age(Some(DAY), time::now());
    store.put(&other).await;
    store.reset();
    get_with_cookie(&format!("{base}/none"), &cookie_for(&other.id)).await;
    let c = store.counts();
    assert_eq!((c.loads, c.touches), (1, 1));
    // ... once.
    store.reset();
    get_with_cookie(&format!("{base}/none"), &cookie_for(&other.id)).await;
    assert_eq!(store.counts(), NONE);
}

#[tokio::test]
async fn touch_after_not_shorter_than_the_store_ttl_is_ignored() {
    // A browser-session cookie's record lives the store's default TTL (one
    // day here, `Store::default_ttl`): skipping touches for two days would
    // let it expire untouched, so every request touches.
    let store = Counting::new();
    assert_eq!(store.default_ttl(), DAY);
    let cfg = config()
        .touch_after(Duration::from_secs(2 * 86_400))
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let (cookie, _) = start(&base, &store).await;
    for _ in 0..2 {
        store.reset();
        get_with_cookie(&format!("{base}/none"), &cookie).await;
        let c = store.counts();
        assert_eq!((c.loads, c.touches), (1, 1));
    }
}

#[tokio::test]
async fn remember_me_max_age_is_sent_stored_and_kept_by_touches() {
    let store = Counting::new();
    let base = app(
        &store,
        config().max_age(Duration::from_secs(3600)).build().unwrap(),
    )
    .await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/remember"), &cookie).await;
    assert_eq!(r.sid(), id);
    let rec = store.peek(&id).await.unwrap();
    assert_eq!(rec.cookie.original_max_age, Some(30 * 86_400_000));
    let expires = rec.cookie.expires.unwrap();
    let http_date = expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    assert!(r.set_cookie().unwrap().contains(&http_date));
    // A later request that never uses the session touches with 30 days, not 1 hour.
    store.reset();
    get_with_cookie(&format!("{base}/none"), &cookie).await;
    let touched = store.touch_expiries.lock().unwrap()[0].unwrap();
    let in_29_days = time::now().timestamp_millis() + 29 * 86_400_000;
    assert!(touched.timestamp_millis() > in_29_days);
}

#[tokio::test]
async fn invalid_per_session_cookie_settings_are_refused() {
    let store = Counting::new();
    let router = Router::new().route(
        "/bad",
        route(|s: Session| async move {
            let r = s
                .update_cookie(|c| c.path = Some("/; Domain=evil.com".into()))
                .await;
            let d = s.update_cookie(|c| c.domain = Some("a b".into())).await;
            format!("{} {}", r.is_err(), d.is_err())
        }),
    );
    let base = serve(router, store.clone(), config().build().unwrap()).await;
    let r = get(&format!("{base}/bad"), &[]).await;
    assert_eq!(r.body, "true true");
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn reserved_cookie_key_is_refused() {
    let store = Counting::new();
    let router = Router::new().route(
        "/k",
        route(|s: Session| async move { s.insert("cookie", 1).await.map(|_| "inserted") }),
    );
    let base = serve(router, store.clone(), config().build().unwrap()).await;
    assert_eq!(get(&format!("{base}/k"), &[]).await.status, 500);
}

/// Keys express-session can never keep (its `Session`'s own and
/// `Object.prototype`'s): refused with a clear error, nothing changes.
#[tokio::test]
async fn keys_express_session_reserves_are_refused() {
    let store = Counting::new();
    let router = Router::new().route(
        "/k",
        route(|s: Session| async move {
            s.insert("n", 1).await?;
            let mut out = Vec::new();
            for key in sessionkit_tower::NODE_RESERVED_KEYS {
                match s.insert(key, "lost in Node").await {
                    Err(e) => {
                        assert!(e.to_string().contains("express-session"), "{e}");
                    }
                    Ok(()) => out.push(key),
                }
            }
            s.insert("identity", "kept").await?;
            Ok::<_, SessionError>(format!("accepted {out:?}"))
        }),
    );
    let base = serve(router, store.clone(), config().build().unwrap()).await;
    let r = get(&format!("{base}/k"), &[]).await;
    assert_eq!(r.body, "accepted []");
    let stored = store.peek(&r.sid()).await.unwrap();
    let keys: Vec<&String> = stored.data.keys().collect();
    assert_eq!(keys, ["n", "identity"]);
    for key in [
        "id",
        "req",
        "save",
        "touch",
        "destroy",
        "constructor",
        "resetMaxAge",
    ] {
        assert!(sessionkit_tower::NODE_RESERVED_KEYS.contains(&key), "{key}");
    }
}

#[tokio::test]
async fn unset_keep_discards_changes_and_keeps_the_record() {
    let store = Counting::new();
    let base = app(&store, config().max_age(DAY).build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/unset"), &cookie).await;
    assert!(r.set_cookies.is_empty());
    let c = store.counts();
    assert_eq!((c.saves, c.touches, c.destroys), (0, 0, 0));
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 1);
}

#[tokio::test]
async fn unset_destroy_deletes_the_record() {
    let store = Counting::new();
    let cfg = config().unset(UnsetPolicy::Destroy).build().unwrap();
    let base = app(&store, cfg).await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/unset"), &cookie).await;
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    assert!(store.peek(&id).await.is_none());
    assert_eq!(store.counts().saves, 0);
}

#[tokio::test]
async fn genid_is_used_and_collisions_are_never_overwritten() {
    let store = Counting::new();
    let taken = SessionId::parse("custom-taken-id-0").unwrap();
    let mut victim = Record::new(taken.clone());
    victim.data.insert("owner".into(), "victim".into());
    store.put(&victim).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let cfg = config()
        .genid(move || {
            let n = counter.fetch_add(1, SeqCst);
            if n == 0 {
                SessionId::parse("custom-taken-id-0").expect("valid")
            } else {
                SessionId::parse(&format!("custom-fresh-id-{n}")).expect("valid")
            }
        })
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.sid().as_str(), "custom-fresh-id-1");
    assert_eq!(store.peek(&taken).await.unwrap().data["owner"], "victim");
    assert_eq!(store.counts().creates, 2);
}

// -------------------------------------------------------------- store failures

#[tokio::test]
async fn load_failure_is_an_opaque_503_never_a_new_session() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, id) = start(&base, &store).await;
    store.set_fail(Fail {
        load: true,
        ..Fail::default()
    });
    for path in ["/inc", "/none"] {
        store.reset();
        let r = get_with_cookie(&format!("{base}{path}"), &cookie).await;
        // One failed load per request: the end of the request does not
        // retry it (and wait for a down store twice).
        assert_eq!(store.counts().loads, 1, "{path}");
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.body, "Service Unavailable");
        assert!(!r.body.contains("hunter2"));
        assert!(r.set_cookies.is_empty());
    }
    assert_eq!(store.counts().creates, 0, "no replacement session");
    store.set_fail(Fail::default());
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 1);
}

#[tokio::test]
async fn write_failures_answer_the_configured_status() {
    let store = Counting::new();
    let cfg = config()
        .error_status(http::StatusCode::INTERNAL_SERVER_ERROR)
        .build()
        .unwrap();
    let base = app(&store, cfg).await;
    let (cookie, _) = start(&base, &store).await;
    for (fail, path, cookie) in [
        (
            Fail {
                create: true,
                ..Fail::default()
            },
            "/inc",
            "",
        ),
        (
            Fail {
                save: true,
                ..Fail::default()
            },
            "/inc",
            cookie.as_str(),
        ),
        (
            Fail {
                touch: true,
                ..Fail::default()
            },
            "/read",
            cookie.as_str(),
        ),
        (
            Fail {
                destroy: true,
                ..Fail::default()
            },
            "/destroy",
            cookie.as_str(),
        ),
    ] {
        store.set_fail(fail);
        let r = get_with_cookie(&format!("{base}{path}"), cookie).await;
        assert_eq!(r.status, 500, "{fail:?}");
        assert_eq!(r.body, "Internal Server Error");
        assert!(r.set_cookies.is_empty(), "{fail:?}");
    }
}

#[tokio::test]
async fn a_handler_may_handle_a_load_error_itself() {
    let store = Counting::new();
    let router = Router::new().route(
        "/soft",
        route(|s: Session| async move {
            match s.get::<u64>("n").await {
                Ok(n) => format!("{n:?}"),
                Err(e) => format!("degraded {}", e.status().as_u16()),
            }
        }),
    );
    let base = serve(
        routes(store.clone()).merge(router),
        store.clone(),
        config()
            .touch_after(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .await;
    let (cookie, _) = start(&base, &store).await;
    store.set_fail(Fail {
        load: true,
        ..Fail::default()
    });
    let r = get_with_cookie(&format!("{base}/soft"), &cookie).await;
    assert_eq!((r.status, r.body.as_str()), (200, "degraded 503"));
}

#[tokio::test]
async fn store_is_checked_directly_after_each_write() {
    // The record the middleware writes is the one express-session would write.
    let store = Counting::new();
    let base = app(&store, config().max_age(DAY).build().unwrap()).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let rec = store.peek(&r.sid()).await.unwrap();
    assert_eq!(rec.cookie.original_max_age, Some(86_400_000));
    assert_eq!(rec.cookie.http_only, Some(true));
    assert_eq!(rec.cookie.path.as_deref(), Some("/"));
    let outcome = store.inner.touch(&rec.id, None).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
}

#[tokio::test]
async fn destroy_expires_the_cookie_with_the_sessions_own_path_and_domain() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let json = r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"domain":"example.com","path":"/"},"n":1}"#;
    let id = SessionId::generate();
    let later = time::from_millis(time::now().timestamp_millis() + 60_000);
    store.inner.insert_raw(id.clone(), json, later);
    let r = get_with_cookie(&format!("{base}/destroy"), &cookie_for(&id)).await;
    let sc = r.set_cookie().unwrap();
    assert!(
        sc.starts_with("connect.sid=; Domain=example.com; Path=/; Expires=Thu, 01 Jan 1970"),
        "{sc}"
    );
}

#[tokio::test]
async fn per_session_cookie_settings_are_saved_and_sent() {
    let store = Counting::new();
    let router = Router::new().route(
        "/strict",
        route(|s: Session| async move {
            s.update_cookie(|c| c.same_site = Some(sessionkit_core::SameSite::Strict))
                .await?;
            Ok::<_, SessionError>("ok")
        }),
    );
    let base = serve(
        routes(store.clone()).merge(router),
        store.clone(),
        config().build().unwrap(),
    )
    .await;
    let (cookie, id) = start(&base, &store).await;
    let r = get_with_cookie(&format!("{base}/strict"), &cookie).await;
    assert!(r.set_cookie().unwrap().ends_with("; SameSite=Strict"));
    assert_eq!(store.counts().saves, 1);
    let rec = store.peek(&id).await.unwrap();
    assert_eq!(
        rec.cookie.same_site,
        Some(sessionkit_core::SameSite::Strict)
    );
}

#[tokio::test]
async fn a_handle_used_after_its_response_fails_instead_of_losing_writes() {
    let store = Counting::new();
    let kept: Arc<std::sync::Mutex<Option<Session>>> = Arc::default();
    let slot = kept.clone();
    let router = Router::new().route(
        "/keep",
        route(move |s: Session| {
            *slot.lock().unwrap() = Some(s);
            async { "ok" }
        }),
    );
    let base = serve(router, store.clone(), config().build().unwrap()).await;
    get(&format!("{base}/keep"), &[]).await;
    let session = kept.lock().unwrap().take().unwrap();
    let err = session.insert("late", 1).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 500);
    assert!(err.to_string().contains("after its response"));
}

/// `max_sessions_per_principal`: a login past the limit revokes the user's
/// oldest sessions; other users and the current session are untouched.
#[tokio::test]
async fn logins_past_max_sessions_per_principal_revoke_the_oldest() {
    let store = Arc::new(sessionkit_memory::MemoryStore::new());
    let router = Router::new().route(
        "/login/{user}",
        route(
            |s: Session, axum::extract::Path(user): axum::extract::Path<String>| async move {
                s.regenerate().await?;
                s.set_principal(Some(user)).await?;
                Ok::<_, SessionError>("in")
            },
        ),
    );
    let config = config().max_sessions_per_principal(3).build().unwrap();
    let base = serve_plain(router.layer(sessionkit_tower::SessionLayer::from_arc(
        store.clone(),
        config,
    )))
    .await;
    let mut alice = Vec::new();
    for _ in 0..5 {
        alice.push(get(&format!("{base}/login/alice"), &[]).await.sid());
    }
    let bob = get(&format!("{base}/login/bob"), &[]).await.sid();
    let listed: Vec<SessionId> = store
        .principal_sessions("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    // The latest login is always kept; two of the four before it went
    // (the oldest by creation time, to the millisecond).
    assert!(listed.contains(&alice[4]));
    let mut alive = 0;
    for id in &alice[..4] {
        alive += usize::from(store.load(id).await.unwrap().is_some());
    }
    assert_eq!(alive, 2);
    assert!(store.load(&bob).await.unwrap().is_some());
}

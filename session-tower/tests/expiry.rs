//! Expiry policies (idle + absolute timeouts) and the session metadata kept
//! under `"__meta"`, through a real axum server and a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::get as route;
use axum::Router;
use sessionkit_core::{time, Record, SessionId, SessionMeta, META_KEY};
use sessionkit_tower::{ClientIp, ExpiryPolicy, Session, SessionError};
use std::time::Duration;
use support::*;

const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn routes() -> Router {
    base_routes()
        .route(
            "/remember",
            route(|s: Session| async move {
                s.set_expiry_policy(ExpiryPolicy::new().idle(30 * DAY).absolute(90 * DAY))
                    .await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/login",
            route(|s: Session| async move {
                s.regenerate().await?;
                s.set_principal(Some("user-42".into())).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/meta",
            route(|s: Session| async move {
                let meta = s.meta().await?;
                let principal = s.principal().await?;
                let data = s.data().await?;
                Ok::<_, SessionError>(format!(
                    "{} {principal:?} {:?}",
                    meta.is_some(),
                    data.keys().collect::<Vec<_>>()
                ))
            }),
        )
        .route(
            "/reserved",
            route(|s: Session| async move {
                let get = s.get::<serde_json::Value>(META_KEY).await.is_err();
                let insert = s.insert(META_KEY, 1).await.is_err();
                let remove = s.remove::<serde_json::Value>(META_KEY).await.is_err();
                let cookie = s.get::<serde_json::Value>("cookie").await?;
                s.clear().await?;
                Ok::<_, SessionError>(format!("{get} {insert} {remove} {cookie:?}"))
            }),
        )
}

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::new().idle(30 * MIN).absolute(12 * 60 * MIN)
}

fn meta_of(r: &Record) -> SessionMeta {
    r.meta().unwrap().expect("a __meta")
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

#[tokio::test]
async fn without_a_feature_no_metadata_is_written() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), config().build().unwrap()).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let record = store.peek(&r.sid()).await.unwrap();
    assert_eq!(
        record.to_json().unwrap(),
        r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/","sameSite":"lax"},"n":1}"#
    );
    let r = get_with_cookie(&format!("{base}/meta"), &r.cookie()).await;
    assert_eq!(r.body, r#"false None ["n"]"#);
}

#[tokio::test]
async fn a_policy_is_stored_and_sets_the_expiry() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config().expiry_policy(policy()).build().unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert!(r.set_cookie().unwrap().contains("; Expires="), "{r:?}");
    let id = r.sid();
    let record = store.peek(&id).await.unwrap();
    let meta = meta_of(&record);
    let created = meta.created.unwrap();
    let last_seen = meta.last_seen.unwrap();
    assert!(last_seen >= created);
    assert_eq!(meta.idle_timeout_secs, Some(1800));
    assert_eq!(
        meta.absolute_deadline.unwrap().timestamp_millis(),
        created.timestamp_millis() + ms(12 * 60 * MIN)
    );
    assert_eq!(
        record.cookie.expires.unwrap().timestamp_millis(),
        last_seen.timestamp_millis() + ms(30 * MIN),
        "idle deadline is the earlier one"
    );
    assert_eq!(record.cookie.original_max_age, Some(ms(30 * MIN)));
    // The user's data sits beside it; handlers do not see the metadata.
    assert_eq!(record.data["n"], 1);

    // Later requests keep the creation time and the deadline.
    store.reset();
    let r2 = get_with_cookie(&format!("{base}/inc"), &r.cookie()).await;
    assert_eq!(r2.body, "2");
    let again = meta_of(&store.peek(&id).await.unwrap());
    assert_eq!(again.created, meta.created);
    assert_eq!(again.absolute_deadline, meta.absolute_deadline);
    assert!(again.last_seen.unwrap() >= last_seen);

    // A read-only request touches with the policy's expiry.
    store.reset();
    let before = time::now();
    get_with_cookie(&format!("{base}/read"), &r.cookie()).await;
    let touched = store.touch_expiries.lock().unwrap()[0].unwrap();
    assert!(touched.timestamp_millis() >= before.timestamp_millis() + ms(30 * MIN));
    assert!(touched <= again.absolute_deadline.unwrap());
}

#[tokio::test]
async fn the_absolute_deadline_caps_the_expiry() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config()
            .expiry_policy(ExpiryPolicy::new().idle(60 * MIN).absolute(10 * MIN))
            .build()
            .unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let record = store.peek(&r.sid()).await.unwrap();
    assert_eq!(record.cookie.expires, meta_of(&record).absolute_deadline);

    // Absolute only: the deadline is the expiry, no originalMaxAge.
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config()
            .expiry_policy(ExpiryPolicy::new().absolute(DAY))
            .build()
            .unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let record = store.peek(&r.sid()).await.unwrap();
    assert_eq!(record.cookie.expires, meta_of(&record).absolute_deadline);
    assert_eq!(record.cookie.original_max_age, None);
}

/// A record the store still holds (its store expiry in the future) whose
/// absolute deadline has passed.
async fn stale(store: &Counting) -> SessionId {
    let id = SessionId::generate();
    let mut record = Record::new(id.clone());
    record.data.insert("n".into(), 5.into());
    let now = time::now();
    let mut meta = SessionMeta::default();
    meta.created = Some(time::from_millis(now.timestamp_millis() - ms(DAY)));
    meta.absolute_deadline = Some(time::from_millis(now.timestamp_millis() - 1000));
    record.set_meta(Some(&meta)).unwrap();
    record.cookie.set_max_age(Some(DAY), now);
    store.put(&record).await;
    id
}

#[tokio::test]
async fn a_session_past_its_absolute_deadline_is_destroyed_and_replaced() {
    let store = Counting::new();
    // Even a layer without a policy enforces the deadline a session carries.
    let base = serve(routes(), store.clone(), config().build().unwrap()).await;
    let id = stale(&store).await;
    let r = get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "n=None"));
    assert!(store.peek(&id).await.is_none(), "destroyed");
    assert_eq!(store.counts().destroys, 1);

    // An unused session is checked too when the end of the request reads it.
    let id = stale(&store).await;
    let r = get_with_cookie(&format!("{base}/none"), &cookie_for(&id)).await;
    assert_eq!(r.status, 200);
    assert!(store.peek(&id).await.is_none());
    assert!(r.set_cookies.is_empty());

    // Data written to it starts a new session with a new id.
    let id = stale(&store).await;
    let r = get_with_cookie(&format!("{base}/inc"), &cookie_for(&id)).await;
    assert_eq!(r.body, "1");
    assert_ne!(r.sid(), id);
}

#[tokio::test]
async fn remember_me_overrides_the_policy_per_session_and_persists() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config().expiry_policy(policy()).build().unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let (cookie, id) = (r.cookie(), r.sid());
    let created = meta_of(&store.peek(&id).await.unwrap()).created;

    let r = get_with_cookie(&format!("{base}/remember"), &cookie).await;
    assert!(r.set_cookie().is_some(), "the cookie is re-sent");
    let record = store.peek(&id).await.unwrap();
    let meta = meta_of(&record);
    assert_eq!(meta.idle_timeout_secs, Some(30 * 86_400));
    assert_eq!(meta.created, created);
    assert_eq!(
        meta.absolute_deadline.unwrap().timestamp_millis(),
        created.unwrap().timestamp_millis() + ms(90 * DAY)
    );
    assert_eq!(record.cookie.original_max_age, Some(ms(30 * DAY)));

    // The next request keeps the per-session policy, not the layer's.
    store.reset();
    let before = time::now();
    get_with_cookie(&format!("{base}/read"), &cookie).await;
    let touched = store.touch_expiries.lock().unwrap()[0].unwrap();
    assert!(touched.timestamp_millis() >= before.timestamp_millis() + ms(30 * DAY));
}

#[tokio::test]
async fn principal_and_the_reserved_key() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), config().build().unwrap()).await;
    let r = get(&format!("{base}/login"), &[]).await;
    let (cookie, id) = (r.cookie(), r.sid());
    let meta = meta_of(&store.peek(&id).await.unwrap());
    assert_eq!(meta.principal.as_deref(), Some("user-42"));
    assert_eq!(meta.created, None, "no policy: only what was asked for");

    get_with_cookie(&format!("{base}/inc"), &cookie).await;
    let r = get_with_cookie(&format!("{base}/meta"), &cookie).await;
    assert_eq!(r.body, r#"true Some("user-42") ["n"]"#);

    let r = get_with_cookie(&format!("{base}/reserved"), &cookie).await;
    assert_eq!(r.body, "true true true None");
    // clear() removed the data, not the metadata.
    let record = store.peek(&id).await.unwrap();
    assert!(record.data.get("n").is_none());
    assert_eq!(meta_of(&record).principal.as_deref(), Some("user-42"));
}

#[tokio::test]
async fn client_tracking_records_user_agent_and_address() {
    let store = Counting::new();
    let router = routes().layer(sessionkit_tower::SessionLayer::from_arc(
        store.clone(),
        config().track_client(true).build().unwrap(),
    ));
    // The app tells the middleware the peer address (outside the session layer).
    let router = router.layer(axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            req.extensions_mut()
                .insert(ClientIp("192.0.2.7".parse().unwrap()));
            next.run(req).await
        },
    ));
    let base = serve_plain(router).await;
    let long = "x".repeat(1000);
    let r = get(&format!("{base}/inc"), &[("user-agent", &long)]).await;
    let meta = meta_of(&store.peek(&r.sid()).await.unwrap());
    assert_eq!(meta.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(meta.user_agent.map(|u| u.len()), Some(256));
    assert!(meta.created.is_some() && meta.idle_timeout_secs.is_none());

    // Behind a trusted proxy: X-Forwarded-For (only a valid address).
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config()
            .track_client(true)
            .proxy(Some(true))
            .build()
            .unwrap(),
    )
    .await;
    let r = get(
        &format!("{base}/inc"),
        &[
            ("x-forwarded-for", "2001:db8::1, 10.0.0.1"),
            ("user-agent", "UA"),
        ],
    )
    .await;
    let meta = meta_of(&store.peek(&r.sid()).await.unwrap());
    assert_eq!(meta.ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(meta.user_agent.as_deref(), Some("UA"));
    let r = get(&format!("{base}/inc"), &[("x-forwarded-for", "evil\"")]).await;
    assert_eq!(meta_of(&store.peek(&r.sid()).await.unwrap()).ip, None);
}

/// A policy with only an idle timeout reaches older sessions on their next
/// save (a read adds nothing); one with an absolute lifetime reaches them on
/// their first load (see the next test), counted from then.
#[tokio::test]
async fn older_sessions_get_the_policy_on_their_next_save_or_first_load() {
    let store = Counting::new();
    let idle_only = ExpiryPolicy::new().idle(30 * MIN);
    let base = serve(
        routes(),
        store.clone(),
        config().expiry_policy(idle_only).build().unwrap(),
    )
    .await;
    let id = SessionId::generate();
    let mut record = Record::new(id.clone());
    record.data.insert("n".into(), 1.into());
    let json = record.to_json().unwrap();
    store.put(&record).await;

    get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    assert_eq!(
        store.peek(&id).await.unwrap().to_json().unwrap(),
        json,
        "a read does not add metadata"
    );
    get_with_cookie(&format!("{base}/inc"), &cookie_for(&id)).await;
    let record = store.peek(&id).await.unwrap();
    let meta = meta_of(&record);
    assert_eq!(meta.created, None, "unknown");
    assert_eq!(meta.idle_timeout_secs, Some(1800));
    assert_eq!(meta.absolute_deadline, None);
    assert_eq!(record.data["n"], 2);

    // With an absolute lifetime: the first load, even a read, sets it.
    let base = serve(
        routes(),
        store.clone(),
        config().expiry_policy(policy()).build().unwrap(),
    )
    .await;
    let id = SessionId::generate();
    store.put(&Record::new(id.clone())).await;
    let before = time::now();
    get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    let meta = meta_of(&store.peek(&id).await.unwrap());
    assert_eq!(meta.created, None, "unknown");
    assert!(
        meta.absolute_deadline.unwrap().timestamp_millis()
            >= before.timestamp_millis() + ms(12 * 60 * MIN)
    );
}

#[tokio::test]
async fn an_undecodable_meta_is_ignored_not_fatal() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), config().build().unwrap()).await;
    let id = SessionId::generate();
    let mut record = Record::new(id.clone());
    record.data.insert(META_KEY.into(), "not metadata".into());
    record.data.insert("n".into(), 3.into());
    store.put(&record).await;
    let r = get_with_cookie(&format!("{base}/inc"), &cookie_for(&id)).await;
    assert_eq!(r.body, "4");
    assert_eq!(
        store.peek(&id).await.unwrap().data[META_KEY],
        "not metadata",
        "left as it was"
    );
}

#[test]
fn policies_are_checked() {
    let refused = |b: sessionkit_tower::SessionConfigBuilder, what: &str| {
        let err = b.build().expect_err(what);
        assert!(matches!(err, sessionkit_tower::Error::Config(_)), "{what}");
    };
    refused(
        config().expiry_policy(policy()).max_age(DAY),
        "policy and max_age",
    );
    refused(
        config().expiry_policy(ExpiryPolicy::new().idle(Duration::from_millis(500))),
        "idle under a second",
    );
    refused(
        config().expiry_policy(ExpiryPolicy::new().absolute(Duration::ZERO)),
        "zero absolute",
    );
    refused(
        config().expiry_policy(policy()).touch_after(30 * MIN),
        "touch_after not shorter than idle",
    );
    assert!(config()
        .expiry_policy(policy())
        .touch_after(MIN)
        .build()
        .is_ok());
}

/// What the handler sets as the cookie's expiry is what the response and
/// the store carry (express: `req.session.cookie.expires = date`), not
/// now + max-age recomputed at the end of the request.
#[tokio::test]
async fn an_expiry_set_by_the_handler_sticks() {
    let at = time::from_millis(4_102_444_800_000); // 2100-01-01T00:00:00Z
    let app = base_routes()
        .route(
            "/until",
            route(move |s: Session| async move {
                s.insert("n", 1).await?;
                s.set_expires(Some(at)).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/epoch",
            route(|s: Session| async move {
                s.update_cookie(|c| c.expires = Some(time::from_millis(0)))
                    .await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/browser-session",
            route(|s: Session| async move {
                s.update_cookie(|c| c.expires = None).await?;
                Ok::<_, SessionError>("ok")
            }),
        );
    let store = Counting::new();
    let base = serve(app, store.clone(), config().max_age(DAY).build().unwrap()).await;

    let until = get(&format!("{base}/until"), &[]).await;
    let sc = until.set_cookie().unwrap().to_owned();
    assert!(sc.contains("Expires=Fri, 01 Jan 2100 00:00:00 GMT"), "{sc}");
    let id = until.sid();
    let stored = store.peek(&id).await.unwrap();
    assert_eq!(stored.cookie.expires, Some(at));
    // originalMaxAge is the time that was left, as express's setter makes it.
    let left = stored.cookie.original_max_age.unwrap();
    let expected = at.timestamp_millis() - time::now().timestamp_millis();
    assert!((expected - left).abs() < 60_000, "{left} vs {expected}");

    let cookie = until.cookie();
    let none = get_with_cookie(&format!("{base}/browser-session"), &cookie).await;
    let sc = none.set_cookie().unwrap().to_owned();
    assert!(!sc.contains("Expires=") && !sc.contains("Max-Age"), "{sc}");
    let stored = store.peek(&id).await.unwrap();
    assert_eq!(
        (stored.cookie.expires, stored.cookie.original_max_age),
        (None, None)
    );

    let epoch = get_with_cookie(&format!("{base}/epoch"), &cookie).await;
    let sc = epoch.set_cookie().unwrap().to_owned();
    assert!(sc.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"), "{sc}");
}

/// A session created before the absolute lifetime was configured (no
/// metadata at all) gets its deadline on its first load under the policy,
/// even on read-only requests: a stolen cookie no longer lives forever.
#[tokio::test]
async fn a_session_older_than_the_policy_gets_its_deadline_on_first_load() {
    let store = Counting::new();
    let id = SessionId::generate();
    let mut record = Record::new(id.clone());
    record.data.insert("n".into(), 7.into());
    record.cookie.set_max_age(Some(DAY), time::now());
    store.put(&record).await;
    let base = serve(
        routes(),
        store.clone(),
        config().expiry_policy(policy()).build().unwrap(),
    )
    .await;
    let before = time::now().timestamp_millis();
    let r = get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    assert_eq!(r.body, "n=Some(7)");
    let stored = store.peek(&id).await.expect("still there");
    let deadline = meta_of(&stored)
        .absolute_deadline
        .expect("a deadline from this first load")
        .timestamp_millis();
    assert!(
        deadline >= before + ms(12 * 60 * MIN)
            && deadline <= time::now().timestamp_millis() + ms(12 * 60 * MIN)
    );
    // The cookie follows the policy (idle 30 min, capped by the deadline).
    assert!(r.set_cookie().is_some());
    let expires = stored.cookie.expires.unwrap().timestamp_millis();
    assert!(expires <= deadline && expires <= time::now().timestamp_millis() + ms(30 * MIN));
    // The deadline is kept, not pushed on later loads.
    let _ = get_with_cookie(&format!("{base}/read"), &cookie_for(&id)).await;
    let again = meta_of(&store.peek(&id).await.unwrap())
        .absolute_deadline
        .unwrap();
    assert_eq!(again.timestamp_millis(), deadline);
}

//! The header transport: the signed session id in `Authorization: Bearer`
//! or a named header, alone or beside the cookie, through a real axum
//! server on 127.0.0.1 and a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::get as route;
use axum::Router;
use sessionkit_core::{SessionId, Store};
use sessionkit_tower::{Session, SessionError, TokenHeader, Transport};
use std::sync::Arc;
use support::*;

const NAMED: &str = "x-session-id";

fn routes() -> Router {
    base_routes()
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
            route(|s: Session| async move {
                s.destroy().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
}

fn named() -> sessionkit_tower::SessionConfigBuilder {
    config()
        .transport(Transport::Header)
        .token_header(TokenHeader::Named("X-Session-Id".into()))
}

/// The id inside a token, verified with the current secret.
fn sid_of(token: &str) -> SessionId {
    signer(SECRET).unsign(token).expect("signed with SECRET").id
}

fn token_for(id: &SessionId, secret: &str) -> String {
    signer(secret).sign(id.as_str())
}

#[tokio::test]
async fn named_header_round_trip_without_cookies() {
    let store = Counting::new();
    // A cookie path the requests are outside of: it does not gate headers.
    let base = serve(
        routes(),
        store.clone(),
        named().path("/elsewhere").build().unwrap(),
    )
    .await;

    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert!(r.set_cookies.is_empty(), "{r:?}");
    let token = r.header(NAMED).expect("a new token");
    assert!(token.starts_with("s:"), "{token}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let id = sid_of(&token);
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 1);

    let r = get(&format!("{base}/inc"), &[(NAMED, &token)]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "2"));
    assert!(r.set_cookies.is_empty());
    assert_eq!(r.header(NAMED), None, "an existing token is not re-sent");
    assert_eq!(store.peek(&id).await.unwrap().data["n"], 2);

    // The percent-encoded form (the cookie value copied as is) works too.
    let encoded = signer(SECRET).sign_cookie(&id);
    let r = get(&format!("{base}/read"), &[(NAMED, &encoded)]).await;
    assert_eq!(r.body, "n=Some(2)");

    // The cookie is not a credential in header mode.
    let r = get(&format!("{base}/read"), &[("cookie", &cookie_for(&id))]).await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn bearer_tokens_and_the_response_header() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config().transport(Transport::Header).build().unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let token = r
        .header("x-session-token")
        .expect("default response header");
    for auth in [
        format!("Bearer {token}"),
        format!("bearer  {token} "),
        format!("BEARER\t{token}"),
    ] {
        let r = get(&format!("{base}/read"), &[("authorization", &auth)]).await;
        assert_eq!(r.body, "n=Some(1)", "{auth}");
    }
    // Another scheme is not a session token.
    let r = get(&format!("{base}/read"), &[("authorization", "Basic YTpi")]).await;
    assert_eq!(r.body, "n=None");

    let custom = serve(
        routes(),
        store.clone(),
        config()
            .transport(Transport::Header)
            .token_response_header("X-Api-Session")
            .build()
            .unwrap(),
    )
    .await;
    let r = get(&format!("{custom}/inc"), &[]).await;
    assert!(r.header("x-api-session").is_some(), "{r:?}");
    assert!(r.header("x-session-token").is_none());
}

#[tokio::test]
async fn forged_unsigned_and_malformed_tokens_are_no_session() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), named().build().unwrap()).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    let token = r.header(NAMED).unwrap();
    let id = sid_of(&token);
    store.reset();

    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let other_secret = token_for(&id, OLD_SECRET);
    let long = format!("s:{}.x", "a".repeat(10_000));
    for bad in [
        forged.as_str(),
        other_secret.as_str(),
        id.as_str(),
        "s:",
        "s:.",
        "s:short.abc",
        "s:bad*id*chars.abc",
        "%",
        "%E0%A4%A",
        long.as_str(),
    ] {
        let r = get(&format!("{base}/read"), &[(NAMED, bad)]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "n=None"), "{bad}");
        assert_eq!(r.header(NAMED), None, "nothing stored, nothing sent");
    }
    assert_eq!(store.counts(), NONE, "no store call for a bad token");

    // Bytes that are not UTF-8 (obs-text) are no session either, never a panic.
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{base}/read"))
        .header(
            NAMED,
            reqwest::header::HeaderValue::from_bytes(b"s:\xff\xfe.abc").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "n=None");
    assert_eq!(store.counts(), NONE);
}

#[tokio::test]
async fn rotation_verifies_old_tokens_and_hands_out_a_new_one() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        named().secrets([SECRET, OLD_SECRET]).build().unwrap(),
    )
    .await;
    let id = SessionId::generate();
    let mut record = sessionkit_core::Record::new(id.clone());
    record.data.insert("n".into(), 7.into());
    store.put(&record).await;

    let r = get(
        &format!("{base}/read"),
        &[(NAMED, &token_for(&id, OLD_SECRET))],
    )
    .await;
    assert_eq!(r.body, "n=Some(7)");
    let fresh = r.header(NAMED).expect("re-signed with the current secret");
    assert_eq!(fresh, token_for(&id, SECRET));

    // A token signed with the current secret is not re-sent.
    let r = get(&format!("{base}/read"), &[(NAMED, &fresh)]).await;
    assert_eq!(r.body, "n=Some(7)");
    assert_eq!(r.header(NAMED), None);
}

#[tokio::test]
async fn regenerate_sends_a_new_token_and_deletes_the_old_record() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), named().build().unwrap()).await;
    let token = get(&format!("{base}/inc"), &[])
        .await
        .header(NAMED)
        .unwrap();
    let old = sid_of(&token);

    let r = get(&format!("{base}/login"), &[(NAMED, &token)]).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty());
    let new_token = r.header(NAMED).expect("the regenerated session's token");
    let new = sid_of(&new_token);
    assert_ne!(new, old);
    assert!(store.peek(&old).await.is_none(), "old record deleted");
    assert_eq!(store.peek(&new).await.unwrap().data["user"], "alice");

    // The old token is dead: a new, empty session.
    let r = get(&format!("{base}/read"), &[(NAMED, &token)]).await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn destroy_deletes_the_record_and_sends_nothing() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), named().build().unwrap()).await;
    let token = get(&format!("{base}/inc"), &[])
        .await
        .header(NAMED)
        .unwrap();
    let id = sid_of(&token);

    let r = get(&format!("{base}/destroy"), &[(NAMED, &token)]).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty(), "no cookie to expire: {r:?}");
    assert_eq!(r.header(NAMED), None);
    assert!(store.peek(&id).await.is_none());
    let r = get(&format!("{base}/read"), &[(NAMED, &token)]).await;
    assert_eq!(r.body, "n=None");
}

#[tokio::test]
async fn both_transports_a_valid_header_wins_over_the_cookie() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        named().transport(Transport::Both).build().unwrap(),
    )
    .await;
    // A new session that no credential named gets both.
    let r = get(&format!("{base}/inc"), &[]).await;
    let by_cookie = r.sid();
    let token = r.header(NAMED).expect("and the token");
    assert_eq!(sid_of(&token), by_cookie);

    // Two sessions: A (n=1) by cookie, B (n=2) by header.
    let a = by_cookie;
    let b_token = get(&format!("{base}/inc"), &[])
        .await
        .header(NAMED)
        .unwrap();
    get(&format!("{base}/inc"), &[(NAMED, &b_token)]).await;

    let both = [("cookie", cookie_for(&a)), (NAMED, b_token.clone())];
    let both: Vec<(&str, &str)> = both.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = get(&format!("{base}/read"), &both).await;
    assert_eq!(r.body, "n=Some(2)", "the header wins");

    // A changed session found by header answers by header only.
    let r = get(&format!("{base}/login"), &both).await;
    assert!(r.set_cookies.is_empty(), "{r:?}");
    assert!(r.header(NAMED).is_some());
    assert!(
        store.peek(&a).await.is_some(),
        "the cookie's session untouched"
    );

    // An invalid header token is ignored and the cookie is used; a session
    // found by cookie answers by cookie only.
    let r = get(
        &format!("{base}/login"),
        &[("cookie", &cookie_for(&a)), (NAMED, "s:forged.abc")],
    )
    .await;
    assert_eq!(r.header(NAMED), None, "{r:?}");
    let new = r.sid();
    assert_ne!(new, a);
    assert!(store.peek(&a).await.is_none());
}

#[tokio::test]
async fn both_transports_outside_the_cookie_path_use_the_header_only() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        named()
            .transport(Transport::Both)
            .path("/app")
            .build()
            .unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert!(r.set_cookies.is_empty(), "outside /app: no cookie");
    let token = r.header(NAMED).expect("a header session");
    let r = get(&format!("{base}/read"), &[(NAMED, &token)]).await;
    assert_eq!(r.body, "n=Some(1)");
}

#[tokio::test]
async fn cookie_transport_ignores_header_tokens() {
    let store = Counting::new();
    let base = serve(
        routes(),
        store.clone(),
        config()
            .token_header(TokenHeader::Named(NAMED.into()))
            .build()
            .unwrap(),
    )
    .await;
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.header(NAMED), None);
    let id = r.sid();
    let r = get(&format!("{base}/read"), &[(NAMED, &token_for(&id, SECRET))]).await;
    assert_eq!(r.body, "n=None");
}

#[test]
fn header_names_are_checked() {
    for bad in [
        "",
        "x session",
        "authorization",
        "Cookie",
        "set-cookie",
        "é",
    ] {
        let err = config()
            .transport(Transport::Header)
            .token_header(TokenHeader::Named(bad.into()))
            .build()
            .expect_err(bad);
        assert!(matches!(err, sessionkit_tower::Error::Config(_)), "{bad}");
        let err = config()
            .transport(Transport::Header)
            .token_response_header(bad)
            .build()
            .expect_err(bad);
        assert!(matches!(err, sessionkit_tower::Error::Config(_)), "{bad}");
    }
}

#[tokio::test]
async fn stores_see_only_verified_ids() {
    // A valid token for an id the store does not know: a new session with
    // a new id, never the client's.
    let store = Counting::new();
    let base = serve(routes(), store.clone(), named().build().unwrap()).await;
    let chosen = SessionId::generate();
    let r = get(
        &format!("{base}/inc"),
        &[(NAMED, &token_for(&chosen, SECRET))],
    )
    .await;
    let new = sid_of(&r.header(NAMED).unwrap());
    assert_ne!(new, chosen);
    assert!(store.inner.load(&chosen).await.unwrap().is_none());
    let _: Arc<Counting> = store;
}

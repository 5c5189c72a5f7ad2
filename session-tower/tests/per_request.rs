//! Cookie settings and ids that depend on the request (express-session's
//! `cookie(req)` and `genid(req)`): `cookie_with` and `genid_with`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::Router;
use sessionkit_tower::SessionId;
use support::*;

fn attr<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

#[tokio::test]
async fn the_cookie_domain_and_path_follow_the_request() {
    let config = config()
        .cookie_with(|req, cookie| {
            cookie.domain = req.host().map(str::to_owned);
            // /t/{tenant}/… gets a cookie for its tenant only.
            let mut parts = req.uri().path().split('/').skip(1);
            if let (Some("t"), Some(tenant)) = (parts.next(), parts.next()) {
                cookie.path = Some(format!("/t/{tenant}"));
            }
        })
        .build()
        .unwrap();
    let store = Counting::new();
    let app = Router::new()
        .nest("/t/{tenant}", base_routes())
        .merge(base_routes());
    let base = serve(app, store.clone(), config).await;

    let acme = get(
        &format!("{base}/t/acme/inc"),
        &[("host", "acme.example.com")],
    )
    .await;
    let sc = acme.set_cookie().unwrap().to_owned();
    assert_eq!(attr(&sc, "Domain"), Some("acme.example.com"), "{sc}");
    assert_eq!(attr(&sc, "Path"), Some("/t/acme"), "{sc}");
    let stored = store.peek(&acme.sid()).await.unwrap();
    assert_eq!(stored.cookie.path.as_deref(), Some("/t/acme"));
    // The session continues with its cookie.
    let again = get(
        &format!("{base}/t/acme/inc"),
        &[("host", "acme.example.com"), ("cookie", &acme.cookie())],
    )
    .await;
    assert_eq!(again.body, "2");

    let other = get(
        &format!("{base}/t/globex/inc"),
        &[("host", "globex.example.com:8080")],
    )
    .await;
    let sc = other.set_cookie().unwrap().to_owned();
    assert_eq!(attr(&sc, "Domain"), Some("globex.example.com"), "{sc}");
    assert_eq!(attr(&sc, "Path"), Some("/t/globex"), "{sc}");

    let root = get(&format!("{base}/inc"), &[("host", "example.com")]).await;
    assert_eq!(attr(root.set_cookie().unwrap(), "Path"), Some("/"));
}

#[tokio::test]
async fn a_closure_that_could_inject_attributes_keeps_the_configured_values() {
    let config = config()
        .path("/")
        .cookie_with(|_, cookie| {
            cookie.domain = Some("evil.com; Secure=false".into());
            cookie.path = Some("/x; HttpOnly=false".into());
        })
        .build()
        .unwrap();
    let base = serve(base_routes(), Counting::new(), config).await;
    let res = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(res.body, "1");
    let sc = res.set_cookie().unwrap();
    assert!(
        !sc.contains("evil") && attr(sc, "Path") == Some("/"),
        "{sc}"
    );
}

#[tokio::test]
async fn genid_is_given_the_request() {
    let config = config()
        .genid_with(|req| {
            let tenant = req
                .host()
                .and_then(|h| h.split('.').next())
                .unwrap_or("www");
            SessionId::parse(&format!("{tenant}-{}", SessionId::generate().as_str())).unwrap()
        })
        .build()
        .unwrap();
    let store = Counting::new();
    let base = serve(base_routes(), store.clone(), config).await;
    let res = get(&format!("{base}/inc"), &[("host", "acme.example.com")]).await;
    let id = res.sid();
    assert!(id.as_str().starts_with("acme-"), "{}", id.as_str());
    assert!(store.peek(&id).await.is_some());
}

//! CSRF protection: the layer's cross-site check (`Sec-Fetch-Site`,
//! `Origin`) and the per-session synchronizer token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::{get as route_get, post as route_post};
use axum::Router;
use sessionkit_tower::{Session, SessionError};
use support::*;

fn routes() -> Router {
    Router::new()
        .route(
            "/form",
            route_get(|s: Session| async move { s.csrf_token().await }),
        )
        .route(
            "/change",
            route_post(|s: Session, headers: axum::http::HeaderMap| async move {
                let token = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                s.verify_csrf_token(token).await?;
                s.insert("changed", true).await?;
                Ok::<_, SessionError>("changed")
            }),
        )
        .route("/open", route_post(|| async { "open" }))
}

async fn post(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn cross_site_unsafe_requests_are_refused_by_the_layer() {
    let strict = config().reject_cross_site_requests(true).build().unwrap();
    let base = serve(routes(), Counting::new(), strict).await;
    let host = base.trim_start_matches("http://").to_owned();
    let url = format!("{base}/open");
    for (headers, expected) in [
        (vec![("sec-fetch-site", "cross-site")], 403),
        (vec![("sec-fetch-site", "same-site")], 403),
        (vec![("origin", "http://evil.example")], 403),
        (vec![("origin", "null")], 403),
        (vec![("sec-fetch-site", "same-origin")], 200),
        (vec![("sec-fetch-site", "none")], 200),
        (vec![], 200),
    ] {
        let (status, body) = post(&url, &headers).await;
        assert_eq!(status, expected, "{headers:?}: {body}");
        if expected == 403 {
            assert!(body.contains("cross-site"), "{body}");
        }
    }
    let same = format!("http://{host}");
    assert_eq!(post(&url, &[("origin", &same)]).await.0, 200);
    // Safe methods pass whatever their origin.
    let r = get(&format!("{base}/form"), &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(r.status, 200);
    // Off by default.
    let base = serve(routes(), Counting::new(), config().build().unwrap()).await;
    let (status, _) = post(&format!("{base}/open"), &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_synchronizer_token_is_checked_in_constant_time_and_refused_with_403() {
    let store = Counting::new();
    let base = serve(routes(), store.clone(), config().build().unwrap()).await;
    let form = get(&format!("{base}/form"), &[]).await;
    let token = form.body.clone();
    assert_eq!(token.len(), 32);
    let cookie = form.cookie();
    // The same token on the next page of the same session.
    let again = get_with_cookie(&format!("{base}/form"), &cookie).await;
    assert_eq!(again.body, token);
    let url = format!("{base}/change");
    let (status, body) = post(&url, &[("cookie", &cookie), ("x-csrf-token", &token)]).await;
    assert_eq!((status, body.as_str()), (200, "changed"));
    let mut wrong = token.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for bad in [
        vec![("cookie", cookie.as_str())],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", wrong.as_str()),
        ],
    ] {
        let (status, body) = post(&url, &bad).await;
        assert_eq!(status, 403, "{bad:?}");
        assert!(body.contains("CSRF"), "{body}");
    }
    // Another session's token is worthless here.
    let other = get(&format!("{base}/form"), &[]).await;
    let (status, _) = post(&url, &[("cookie", &cookie), ("x-csrf-token", &other.body)]).await;
    assert_eq!(status, 403);
    // No session at all: refused, and nothing is stored.
    let before = store.counts();
    let (status, _) = post(&url, &[("x-csrf-token", &token)]).await;
    assert_eq!(status, 403);
    assert_eq!(store.counts().creates, before.creates);
}

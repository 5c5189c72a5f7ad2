//! The layer in axum apps shaped the way real apps are: inside
//! `Router::nest` (the cookie path is matched against the path the client
//! asked for, as express does with `originalUrl`) and applied twice (the
//! inner layer finds the outer session and steps aside, as express-session
//! does when `req.session` exists).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::get as route;
use axum::Router;
use sessionkit_tower::{Session, SessionConfig, SessionError, SessionLayer};
use std::sync::Arc;
use support::*;

/// `/inc` from the base routes, and `/maybe`, which says whether the
/// request has a session at all.
fn routes() -> Router {
    base_routes().route(
        "/maybe",
        route(|s: Option<Session>| async move {
            if s.is_some() {
                "some"
            } else {
                "none"
            }
        }),
    )
}

fn layer(store: &Arc<Counting>, config: SessionConfig) -> SessionLayer {
    SessionLayer::from_arc(store.clone(), config)
}

/// Two requests to `url`: a new session counting 1, then 2 with its cookie;
/// the cookie's `Path` attribute.
async fn counts_twice(url: &str) -> String {
    let first = get(url, &[]).await;
    assert_eq!((first.status, first.body.as_str()), (200, "1"), "{url}");
    let second = get_with_cookie(url, &first.cookie()).await;
    assert_eq!((second.status, second.body.as_str()), (200, "2"), "{url}");
    let sc = first.set_cookie().unwrap();
    sc.split("; ")
        .find_map(|a| a.strip_prefix("Path="))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn nested_one_level_without_a_cookie_path() {
    let store = Counting::new();
    let app = Router::new().nest(
        "/api",
        routes().layer(layer(&store, config().build().unwrap())),
    );
    let base = serve_plain(app).await;
    assert_eq!(counts_twice(&format!("{base}/api/inc")).await, "/");
}

#[tokio::test]
async fn nested_one_level_with_the_nest_as_cookie_path() {
    let store = Counting::new();
    let config = config().path("/api").build().unwrap();
    let app = Router::new().nest("/api", routes().layer(layer(&store, config)));
    let base = serve_plain(app).await;
    assert_eq!(counts_twice(&format!("{base}/api/inc")).await, "/api");
    assert_eq!(get(&format!("{base}/api/maybe"), &[]).await.body, "some");
}

#[tokio::test]
async fn nested_two_levels_with_and_without_a_cookie_path() {
    for (path, expected) in [(None, "/"), (Some("/foo/bar"), "/foo/bar")] {
        let store = Counting::new();
        let mut b = config();
        if let Some(p) = path {
            b = b.path(p);
        }
        let inner = Router::new().nest("/bar", routes().layer(layer(&store, b.build().unwrap())));
        let app = Router::new().nest("/foo", inner);
        let base = serve_plain(app).await;
        assert_eq!(counts_twice(&format!("{base}/foo/bar/inc")).await, expected);
    }
}

#[tokio::test]
async fn outside_the_cookie_path_a_nested_route_has_no_session() {
    // The cookie path names the full path: under nest("/foo"), "/foo/bar"
    // is inside and "/foo/baz" outside (the browser would not send it there).
    let store = Counting::new();
    let config = config().path("/foo/bar").build().unwrap();
    let inner = Router::new()
        .nest("/bar", routes())
        .nest("/baz", routes())
        .layer(layer(&store, config));
    let app = Router::new().nest("/foo", inner);
    let base = serve_plain(app).await;
    assert_eq!(
        counts_twice(&format!("{base}/foo/bar/inc")).await,
        "/foo/bar"
    );
    let outside = get(&format!("{base}/foo/baz/maybe"), &[]).await;
    assert_eq!(outside.body, "none");
    assert!(outside.set_cookies.is_empty());
    // What the bug did: a cookie for a path the browser never sends back.
    let doubled = get(&format!("{base}/foo/foo/bar/inc"), &[]).await;
    assert!(doubled.set_cookies.is_empty(), "{:?}", doubled.set_cookies);
}

/// The layer on merged routers and on the router around them, with
/// `save_uninitialized(true)`: one cookie, one load and one save a request.
#[tokio::test]
async fn a_layer_applied_twice_steps_aside_for_the_outer_one() {
    let store = Counting::new();
    let config = || config().save_uninitialized(true).build().unwrap();
    let app = Router::new()
        .merge(routes().layer(layer(&store, config())))
        .merge(
            Router::new()
                .route("/other", route(|| async { "other" }))
                .layer(layer(&store, config())),
        )
        .layer(layer(&store, config()));
    let base = serve_plain(app).await;
    let first = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(first.set_cookies.len(), 1, "{:?}", first.set_cookies);
    assert_eq!(first.body, "1");
    assert_eq!(store.counts().creates, 1);
    assert_eq!(store.counts().saves, 0);
    store.reset();
    let second = get_with_cookie(&format!("{base}/inc"), &first.cookie()).await;
    assert_eq!(second.body, "2");
    assert!(second.set_cookies.len() <= 1, "{:?}", second.set_cookies);
    let c = store.counts();
    assert_eq!((c.loads, c.saves, c.creates), (1, 1, 0), "{c:?}");
    // The data is the user's, not a new empty session's.
    let third = get_with_cookie(&format!("{base}/read"), &first.cookie()).await;
    assert_eq!(third.body, "n=Some(2)");
}

#[tokio::test]
async fn a_layer_on_a_route_and_on_its_router_steps_aside() {
    let store = Counting::new();
    let config = || config().save_uninitialized(true).build().unwrap();
    let inc = route(|s: Session| async move {
        let n: u64 = s.get("n").await?.unwrap_or(0) + 1;
        s.insert("n", n).await?;
        Ok::<_, SessionError>(n.to_string())
    })
    .layer(layer(&store, config()));
    let app = Router::new()
        .route("/inc", inc)
        .layer(layer(&store, config()));
    let base = serve_plain(app).await;
    assert_eq!(counts_twice(&format!("{base}/inc")).await, "/");
    let c = store.counts();
    assert_eq!((c.loads, c.creates, c.saves), (1, 1, 1), "{c:?}");
}

/// A second layer with another cookie name is a second session, on purpose
/// (say, an admin area's): both are kept.
#[tokio::test]
async fn a_second_layer_with_another_cookie_is_its_own_session() {
    let store = Counting::new();
    let admin = config()
        .name("admin.sid")
        .save_uninitialized(true)
        .build()
        .unwrap();
    let user = config().save_uninitialized(true).build().unwrap();
    let app = routes()
        .layer(layer(&store, admin))
        .layer(layer(&store, user));
    let base = serve_plain(app).await;
    let first = get(&format!("{base}/none"), &[]).await;
    let mut names: Vec<&str> = first
        .set_cookies
        .iter()
        .map(|c| c.split('=').next().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin.sid", "connect.sid"]);
}

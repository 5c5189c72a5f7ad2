//! Hostile and malformed input through the middleware: a real axum server on
//! 127.0.0.1, a real HTTP client, and the store checked directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::extract::Path;
use axum::routing::get as route;
use axum::Router;
use sessionkit_core::signing::{self, encode_component};
use sessionkit_core::{time, Record, SessionId};
use sessionkit_tower::{Session, SessionConfig, SessionError, DEFAULT_MAX_SESSION_SIZE};
use std::sync::Arc;
use support::*;

fn routes() -> Router {
    base_routes()
        .route(
            "/big/{bytes}",
            route(|s: Session, Path(bytes): Path<usize>| async move {
                s.insert("blob", "x".repeat(bytes)).await?;
                Ok::<_, SessionError>("stored")
            }),
        )
        .route(
            "/big-soft/{bytes}",
            route(|s: Session, Path(bytes): Path<usize>| async move {
                match s.insert("blob", "x".repeat(bytes)).await {
                    Ok(()) => Ok::<_, SessionError>("stored".to_owned()),
                    Err(e) if e.is_too_large() => {
                        let n: Option<u64> = s.get("n").await?;
                        let blob: Option<String> = s.get("blob").await?;
                        Ok(format!(
                            "refused {}; n={n:?} blob={:?}",
                            e.status().as_u16(),
                            blob.map(|b| b.len())
                        ))
                    }
                    Err(e) => Err(e),
                }
            }),
        )
        .route(
            "/remove-n",
            route(|s: Session| async move {
                let n: Option<u64> = s.remove("n").await?;
                Ok::<_, SessionError>(format!("removed {n:?}"))
            }),
        )
        .route(
            "/long-path/{len}",
            route(|s: Session, Path(len): Path<usize>| async move {
                s.update_cookie(|c| c.path = Some(format!("/{}", "p".repeat(len))))
                    .await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/long-path-save/{len}",
            route(|s: Session, Path(len): Path<usize>| async move {
                s.update_cookie(|c| c.path = Some(format!("/{}", "p".repeat(len))))
                    .await?;
                let e = s.save().await.expect_err("over the limit");
                // Put the path back so the end of the request succeeds.
                s.update_cookie(|c| c.path = Some("/".into())).await?;
                Ok::<_, SessionError>(format!(
                    "save: {} {}",
                    e.is_too_large(),
                    e.status().as_u16()
                ))
            }),
        )
}

async fn app(store: &Arc<Counting>, config: SessionConfig) -> String {
    serve(routes(), store.clone(), config).await
}

/// Creates a session with n=1 and returns (its cookie, its id).
async fn start(base: &str, store: &Counting) -> (String, SessionId) {
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let out = (r.cookie(), r.sid());
    store.reset();
    out
}

/// The raw stored JSON and expiry, read without going through the counters.
fn raw(store: &Counting, id: &SessionId) -> (String, time::Timestamp) {
    store.inner.get_raw(id).expect("stored")
}

// ------------------------------------------------------------------ cookies

/// Ids that a store must never see, each correctly signed with the real
/// secret: they are refused by id validation after the MAC matched.
#[tokio::test]
async fn correctly_signed_hostile_ids_mean_no_session_and_no_store_read() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (_, existing) = start(&base, &store).await;
    let ten_kb: String = "lorem ipsum dolor sit amet ".repeat(380);
    assert!(ten_kb.len() >= 10 * 1024);
    let hostile = [
        "sess:*".to_owned(),
        format!("{existing}*"),
        "abcdefgh?".to_owned(),
        "abcd[a-z]efgh".to_owned(),
        "abcd\nefgh".to_owned(),
        "abcd\r\nSet-Cookie: x=1".to_owned(),
        "abcd\0efgh".to_owned(),
        ten_kb,
        "séssion-ïd-ünïcode".to_owned(),
        "セッションのIDです".to_owned(),
        "abcd efgh".to_owned(),
        "abcd;efgh".to_owned(),
        "abcd.efgh".to_owned(),
        "abcd+efgh".to_owned(),
        "abcdefg".to_owned(), // one character short
        "a".repeat(129),      // one character long
        existing.to_string() + "\u{0}",
    ];
    let s = signer(SECRET);
    for id in &hostile {
        assert!(SessionId::parse(id).is_err(), "{id:?} is not a valid id");
        let signed = s.sign(id);
        // The MAC is right: only the id validation refuses it.
        assert_eq!(
            signing::unsign(&signed[2..], SECRET.as_bytes()),
            Some(id.as_str())
        );
        let cookie = format!("connect.sid={}", encode_component(&signed));
        for path in ["/none", "/read", "/inc"] {
            store.reset();
            let r = get_with_cookie(&format!("{base}{path}"), &cookie).await;
            assert_eq!(r.status, 200, "{id:?} {path}");
            assert_eq!(store.counts().loads, 0, "{id:?} {path}: no store read");
            match path {
                "/read" => assert_eq!(r.body, "n=None"),
                "/inc" => {
                    assert_eq!(r.body, "1", "a new session");
                    assert_ne!(r.sid(), existing);
                    assert_eq!(store.counts().creates, 1);
                }
                _ => assert!(r.set_cookies.is_empty()),
            }
        }
    }
    assert_eq!(
        store.peek(&existing).await.unwrap().data["n"],
        1,
        "untouched"
    );
}

#[tokio::test]
async fn the_first_of_duplicate_cookies_wins_even_when_both_are_valid() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (a, _) = start(&base, &store).await;
    let (b, b_id) = start(&base, &store).await;
    get_with_cookie(&format!("{base}/inc"), &b).await; // b: n=2
    for (header, want) in [
        (format!("{a}; {b}"), "n=Some(1)"),
        (format!("{b}; {a}"), "n=Some(2)"),
        (format!("x=1; {b};{a}; connect.sid=junk"), "n=Some(2)"),
        (format!("connect.sid=; {a}"), "n=None"),
    ] {
        let r = get_with_cookie(&format!("{base}/read"), &header).await;
        assert_eq!(r.body, want, "{header}");
    }
    // Across two Cookie header lines, the first line's cookie wins.
    let r = get(
        &format!("{base}/read"),
        &[("cookie", b.as_str()), ("cookie", a.as_str())],
    )
    .await;
    assert_eq!(r.body, "n=Some(2)");
    // Writes go to the session that won, and only to it.
    let r = get_with_cookie(&format!("{base}/inc"), &format!("{b}; {a}")).await;
    assert_eq!(r.body, "3");
    assert_eq!(store.peek(&b_id).await.unwrap().data["n"], 3);
}

#[tokio::test]
async fn another_cookie_with_non_utf8_bytes_does_not_hide_the_session() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, _) = start(&base, &store).await;
    let mut header = b"pref=caf\xe9; ".to_vec();
    header.extend_from_slice(cookie.as_bytes());
    header.extend_from_slice(b"; legacy=\xff\xfe");
    let value = reqwest::header::HeaderValue::from_bytes(&header).unwrap();
    let res = reqwest::Client::new()
        .get(format!("{base}/read"))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "n=Some(1)");
}

#[tokio::test]
async fn plus_signs_are_kept_and_encoded_plus_is_the_same_cookie() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let s = signer(SECRET);
    let (id, signed) = (0..1000)
        .map(|_| SessionId::generate())
        .map(|id| {
            let signed = s.sign(id.as_str());
            (id, signed)
        })
        .find(|(_, signed)| signed.contains('+'))
        .unwrap();
    let mut record = Record::new(id.clone());
    record.data.insert("n".into(), 7.into());
    store.put(&record).await;
    let raw_plus = format!("connect.sid=s%3A{}", &signed[2..]);
    let encoded = format!("connect.sid={}", encode_component(&signed));
    assert!(raw_plus.contains('+') && encoded.contains("%2B"));
    for cookie in [&raw_plus, &encoded] {
        let r = get_with_cookie(&format!("{base}/read"), cookie).await;
        assert_eq!(r.body, "n=Some(7)", "{cookie}");
    }
    // A '+' read as a space (form decoding) breaks the MAC: no store read.
    store.reset();
    let r = get_with_cookie(&format!("{base}/read"), &raw_plus.replace('+', " ")).await;
    assert_eq!(r.body, "n=None");
    assert_eq!(store.counts().loads, 0);
}

#[tokio::test]
async fn a_huge_cookie_header_is_read_without_panic_or_store_read() {
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let (cookie, _) = start(&base, &store).await;
    let forged = signer(SECRET).sign("abcdefgh*");
    let many_pairs: String = (0..6000).map(|i| format!("k{i}=v{i}; ")).collect();
    let headers = [
        // 64 KB of one other cookie, then a forged session cookie.
        format!("big={}; connect.sid={forged}", "x".repeat(64 * 1024)),
        // 64 KB of small cookies, then a junk session cookie.
        format!("{many_pairs}connect.sid=junk"),
        // A 64 KB session cookie value.
        format!(
            "connect.sid=s%3A{}.{}",
            "a".repeat(64 * 1024),
            "b".repeat(43)
        ),
        // 64 KB of separators and escapes.
        format!("connect.sid={}", "%;=\"".repeat(16 * 1024)),
    ];
    for header in &headers {
        assert!(header.len() >= 64 * 1024);
        store.reset();
        for path in ["/read", "/none"] {
            let r = get_with_cookie(&format!("{base}{path}"), header).await;
            assert_eq!(r.status, 200, "{path}");
            assert!(r.set_cookies.is_empty());
        }
        assert_eq!(store.counts(), NONE, "no store I/O");
    }
    // A valid cookie after 64 KB of others is still found.
    let r = get_with_cookie(
        &format!("{base}/read"),
        &format!("big={}; {cookie}", "x".repeat(64 * 1024)),
    )
    .await;
    assert_eq!(r.body, "n=Some(1)");
}

// ----------------------------------------------------------- stored values

#[tokio::test]
async fn a_stored_value_that_is_not_a_session_is_an_error_never_a_new_session() {
    for (status, cfg) in [
        (503, config().build().unwrap()),
        (
            500,
            config()
                .error_status(http::StatusCode::INTERNAL_SERVER_ERROR)
                .build()
                .unwrap(),
        ),
    ] {
        let store = Counting::new();
        let base = app(&store, cfg).await;
        for garbage in [
            "not json",
            "",
            "[]",
            "42",
            "{}",
            r#"{"user":"alice","n":5}"#,
            r#"{"cookie":3,"n":5}"#,
            r#"{"cookie":null,"n":5}"#,
            r#"{"cookie":{"expires":"soon"},"n":5}"#,
            r#"{"cookie":{"httpOnly":"yes"},"n":5}"#,
            "{\"cookie\":{},\"n\":5",
        ] {
            let id = SessionId::generate();
            let expires = time::from_millis(time::now().timestamp_millis() + 3_600_000);
            store.inner.insert_raw(id.clone(), garbage, expires);
            let cookie = cookie_for(&id);
            for path in ["/read", "/inc", "/none", "/big-soft/10", "/remove-n"] {
                store.reset();
                let r = get_with_cookie(&format!("{base}{path}"), &cookie).await;
                assert_eq!(r.status, status, "{garbage:?} {path}");
                assert!(
                    r.body == "Service Unavailable" || r.body == "Internal Server Error",
                    "opaque body: {:?}",
                    r.body
                );
                assert!(r.set_cookies.is_empty(), "{garbage:?} {path}");
                let c = store.counts();
                assert_eq!(
                    (c.creates, c.saves, c.touches, c.destroys),
                    (0, 0, 0, 0),
                    "{garbage:?} {path}: nothing written"
                );
                assert_eq!(
                    raw(&store, &id),
                    (garbage.to_owned(), expires),
                    "{garbage:?} {path}: stored value untouched"
                );
            }
        }
    }
}

// ------------------------------------------------------------ size limit

fn limited(bytes: usize) -> SessionConfig {
    config().max_session_size(Some(bytes)).build().unwrap()
}

#[tokio::test]
async fn insert_over_the_size_limit_is_413_and_the_store_is_unchanged() {
    let store = Counting::new();
    let base = app(&store, limited(4096)).await;
    let (cookie, id) = start(&base, &store).await;
    let before = raw(&store, &id).0;

    let r = get_with_cookie(&format!("{base}/big/5000"), &cookie).await;
    assert_eq!((r.status, r.body.as_str()), (413, "Payload Too Large"));
    assert!(r.set_cookies.is_empty());
    let c = store.counts();
    assert_eq!((c.creates, c.saves), (0, 0));
    assert_eq!(raw(&store, &id).0, before, "stored session unchanged");

    // A handler may handle it: the session keeps its previous value.
    store.reset();
    let r = get_with_cookie(&format!("{base}/big-soft/5000"), &cookie).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "refused 413; n=Some(1) blob=None")
    );
    assert_eq!(store.counts().saves, 0, "nothing modified, nothing saved");
    assert_eq!(raw(&store, &id).0, before);

    // Under the limit it is stored.
    let r = get_with_cookie(&format!("{base}/big/3000"), &cookie).await;
    assert_eq!(r.status, 200);
    let stored = store.peek(&id).await.unwrap();
    assert_eq!(stored.data["blob"].as_str().map(str::len), Some(3000));
    // Replacing it with a larger value keeps the smaller one.
    let r = get_with_cookie(&format!("{base}/big-soft/4000"), &cookie).await;
    assert_eq!(r.body, "refused 413; n=Some(1) blob=Some(3000)");
    assert_eq!(store.peek(&id).await.unwrap(), stored);
}

#[tokio::test]
async fn a_new_session_over_the_limit_is_never_created() {
    let store = Counting::new();
    let base = app(&store, limited(4096)).await;
    let r = get(&format!("{base}/big/5000"), &[]).await;
    assert_eq!(r.status, 413);
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts(), NONE);
    assert_eq!(store.inner.len_including_expired(), 0);
}

#[tokio::test]
async fn end_of_request_save_over_the_limit_is_413_and_the_store_is_unchanged() {
    let store = Counting::new();
    let base = app(&store, limited(4096)).await;

    // Cookie metadata that grows past the limit: refused when the response leaves.
    let (cookie, id) = start(&base, &store).await;
    let before = raw(&store, &id);
    let r = get_with_cookie(&format!("{base}/long-path/5000"), &cookie).await;
    assert_eq!((r.status, r.body.as_str()), (413, "Payload Too Large"));
    assert!(r.set_cookies.is_empty());
    assert_eq!(store.counts().saves, 0);
    assert_eq!(raw(&store, &id), before);

    // An explicit save() reports it to the handler.
    let r = get_with_cookie(&format!("{base}/long-path-save/5000"), &cookie).await;
    assert_eq!((r.status, r.body.as_str()), (200, "save: true 413"));
    assert_eq!(raw(&store, &id).0, before.0);

    // A stored session already over the limit (written by another program,
    // or before the limit was lowered) is read and touched, but a change
    // that leaves it over the limit is not written.
    let big = SessionId::generate();
    let mut record = Record::new(big.clone());
    record.data.insert("n".into(), 1.into());
    record.data.insert("blob".into(), "x".repeat(8000).into());
    store.put(&record).await;
    let big_raw = raw(&store, &big).0;
    let big_cookie = cookie_for(&big);
    store.reset();
    let r = get_with_cookie(&format!("{base}/read"), &big_cookie).await;
    assert_eq!((r.status, r.body.as_str()), (200, "n=Some(1)"));
    assert_eq!(store.counts().touches, 1);
    let r = get_with_cookie(&format!("{base}/remove-n"), &big_cookie).await;
    assert_eq!(r.status, 413);
    assert_eq!(store.counts().saves, 0);
    assert_eq!(raw(&store, &big).0, big_raw, "stored session unchanged");
}

#[tokio::test]
async fn the_default_limit_is_one_mebibyte_and_none_disables_it() {
    assert_eq!(DEFAULT_MAX_SESSION_SIZE, 1024 * 1024);
    let store = Counting::new();
    let base = app(&store, config().build().unwrap()).await;
    let r = get(&format!("{base}/big/{}", 1024 * 1024), &[]).await;
    assert_eq!(r.status, 413);
    let r = get(&format!("{base}/big/{}", 1000 * 1000), &[]).await;
    assert_eq!(r.status, 200);

    let store = Counting::new();
    let base = app(&store, config().max_session_size(None).build().unwrap()).await;
    let r = get(&format!("{base}/big/{}", 2 * 1024 * 1024), &[]).await;
    assert_eq!(r.status, 200);
    let stored = store.peek(&r.sid()).await.unwrap();
    assert_eq!(
        stored.data["blob"].as_str().map(str::len),
        Some(2 * 1024 * 1024)
    );
}

// --------------------------------------------------------- configuration

fn refused(b: sessionkit_tower::SessionConfigBuilder, what: &str) {
    let err = b.build().expect_err(what);
    assert!(
        matches!(err, sessionkit_tower::Error::Config(_)),
        "{what:?}: {err:?}"
    );
}

#[test]
fn every_value_that_could_inject_attributes_or_header_lines_is_refused_at_build() {
    let b = config;
    // Cookie names: RFC 7230 tokens only.
    let mut names: Vec<String> = "()<>@,;:\\\"/[]?={} \t"
        .chars()
        .map(|c| format!("sid{c}x"))
        .collect();
    names.extend(
        [
            "",
            "sid\r\nSet-Cookie: admin=1",
            "sid\nx",
            "sid\0",
            "sid\u{7f}",
            "sïd",
            "sid=1; Domain=evil.com",
        ]
        .map(String::from),
    );
    for name in &names {
        refused(b().name(name), name);
    }
    // Domains: host names only.
    for domain in [
        "example.com; Secure",
        "example.com\r\nSet-Cookie: admin=1",
        "example.com\n",
        "example.com\0",
        "example.com=x",
        "example.com,evil.com",
        "exämple.com",
        "example.com/path",
        "exa mple.com",
        "..example.com",
        "example..com",
        "example.com.",
        "-example.com",
        &format!("{}.com", "a".repeat(64)),
        &format!("{}com", "a.".repeat(127)),
    ] {
        refused(b().domain(domain), domain);
    }
    // Paths: '/' then printable ASCII without ';'.
    for path in [
        "/app; Domain=evil.com",
        "/app\r\nSet-Cookie: admin=1",
        "/app\n",
        "/app\0",
        "/app\t",
        "/app\u{7f}",
        "/äpp",
        "app",
    ] {
        refused(b().path(path), path);
    }
    refused(
        b().max_session_size(Some(100)),
        "a size limit no session fits",
    );
    assert!(b().max_session_size(Some(1024)).build().is_ok());
    assert!(b()
        .name("my_app.sid!#$%&'*+-.^_`|~")
        .domain("sub.example-1.com")
        .path("/app/x-y_z.~!$&'()*+,=:@%20")
        .build()
        .is_ok());
}

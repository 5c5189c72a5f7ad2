//! Configuration is checked once, at build time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sessionkit_tower::{SameSitePolicy, SecurePolicy, SessionConfig};
use std::time::Duration;

const SECRET: &str = "test secret number one, thirty-two bytes or more";

fn refused(b: sessionkit_tower::SessionConfigBuilder, what: &str) {
    let err = b.build().expect_err(what);
    assert!(
        matches!(err, sessionkit_tower::Error::Config(_)),
        "{what}: {err:?}"
    );
}

#[test]
fn defaults_are_the_secure_ones() {
    let c = SessionConfig::builder().secret(SECRET).build().unwrap();
    assert_eq!(c.name(), "connect.sid");
    assert_eq!(c.path(), "/");
    let debug = format!("{c:?}");
    assert!(debug.contains("http_only: true"));
    assert!(debug.contains("same_site: Lax"));
    assert!(debug.contains("resave: false"));
    assert!(debug.contains("save_uninitialized: false"));
    assert!(debug.contains("error_status: 503"));
    assert!(!debug.contains(SECRET), "secrets are redacted");
}

#[test]
fn secrets_are_required_and_long() {
    refused(SessionConfig::builder(), "no secret");
    refused(SessionConfig::builder().secret("keyboard cat"), "short");
    // A short secret may follow a long one, to verify only; never sign.
    assert!(SessionConfig::builder()
        .secrets([SECRET, "keyboard cat"])
        .build()
        .is_ok());
    refused(
        SessionConfig::builder().secrets(["keyboard cat", SECRET]),
        "a short signing secret",
    );
    refused(
        SessionConfig::builder().secrets([SECRET, ""]),
        "an empty secret",
    );
    refused(
        SessionConfig::builder().secrets(Vec::<&str>::new()),
        "empty list",
    );
}

#[test]
fn names_and_attributes_that_could_inject_are_refused() {
    let b = || SessionConfig::builder().secret(SECRET);
    for name in ["", "a b", "sid;", "sid=x", "sid\r\nSet-Cookie: x", "sïd"] {
        refused(b().name(name), name);
    }
    for domain in ["evil.com; Secure", "a\nb", "", "exa mple.com"] {
        refused(b().domain(domain), domain);
    }
    for path in ["app", "/a;b", "/a\r\nX: y", ""] {
        refused(b().path(path), path);
    }
    assert!(b()
        .name("__Host-sid")
        .domain(".example.com")
        .path("/app")
        .build()
        .is_ok());
}

#[test]
fn insecure_combinations_are_refused() {
    let b = || SessionConfig::builder().secret(SECRET);
    refused(
        b().same_site(SameSitePolicy::None),
        "SameSite=None without Secure",
    );
    refused(b().partitioned(true), "Partitioned without Secure");
    // What browsers drop: SameSite=None without Secure on some response.
    refused(
        b().same_site(SameSitePolicy::Auto),
        "SameSite=Auto with Secure=Never (None on secure requests, never Secure)",
    );
    refused(
        b().same_site(SameSitePolicy::None)
            .secure(SecurePolicy::Auto),
        "SameSite=None with Secure=Auto (no Secure on plain requests)",
    );
    assert!(b()
        .same_site(SameSitePolicy::Auto)
        .secure(SecurePolicy::Auto)
        .build()
        .is_ok());
    assert!(b()
        .same_site(SameSitePolicy::None)
        .secure(SecurePolicy::Always)
        .build()
        .is_ok());
    refused(b().error_status(http::StatusCode::OK), "non-error status");
    refused(
        b().max_age(Duration::from_secs(60))
            .touch_after(Duration::from_secs(60)),
        "touch_after not shorter than max_age",
    );
    // Against the store's TTL: checked by the layer, which owns the store
    // (tests/session.rs, touch_after_not_shorter_than_the_store_ttl_is_ignored).
    assert!(b()
        .touch_after(Duration::from_secs(2 * 86_400))
        .build()
        .is_ok());
    refused(
        b().expires(sessionkit_core::time::from_millis(0)),
        "expires in the past",
    );
}

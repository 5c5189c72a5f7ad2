//! Reading the session cookie from `Cookie` headers and writing
//! `Set-Cookie`, the way Node's `cookie` package does, with every attribute
//! value checked so nothing can inject attributes or header lines.

use crate::config::SessionConfig;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use sessionkit_core::signing::{decode_component, encode_component_into};
use sessionkit_core::{CookieMeta, Priority, SameSite, Signer, Verified};
use std::fmt::Write as _;

/// RFC 7230 `token`: what a cookie name may be.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A domain name (optionally with a leading dot, as the `cookie` package allows).
pub(crate) fn valid_domain(domain: &str) -> bool {
    let d = domain.strip_prefix('.').unwrap_or(domain);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A path starting with `/`, printable ASCII without `;` (no control
/// character, so no header line can be injected).
pub(crate) fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';')
}

/// ASCII spaces and tabs around a key or value, as the `cookie` package trims.
fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The first value of cookie `name` across the request's `Cookie` headers,
/// unquoted and percent-decoded like the `cookie` package (`+` stays `+`).
/// `None` when absent or empty.
///
/// The headers are read as bytes: another cookie with bytes that are not
/// UTF-8 (obs-text) does not hide the session cookie beside it.
/// The longest raw cookie value that can hold a signed session id: every
/// character of the decoded value percent-encoded would triple it.
const MAX_RAW_COOKIE: usize = 3 * sessionkit_core::signing::MAX_SIGNED_LEN;

/// What [`find`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The decoded value.
    Value(String),
    /// A value too long to hold a signed session id: refused unread.
    TooLong,
}

pub(crate) fn find(headers: &HeaderMap, name: &str) -> Option<Found> {
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            let mut value = trim(&pair[eq + 1..]);
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            // The first occurrence wins, even when it is empty or invalid.
            if value.is_empty() {
                return None;
            }
            if value.len() > MAX_RAW_COOKIE {
                return Some(Found::TooLong);
            }
            let text = String::from_utf8_lossy(value);
            return Some(Found::Value(decode_component(&text).into_owned()));
        }
    }
    None
}

/// What the session cookie (or header token) of a request says, before any
/// store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCookie {
    /// No cookie with the configured name (or an empty one).
    Absent,
    /// A correctly signed cookie holding a valid id.
    Valid(Verified),
    /// A value without the `s:` prefix.
    Unsigned,
    /// `s:` but a signature no secret verifies, or a validly signed value
    /// whose id is malformed (wrong length or charset).
    Invalid,
}

/// Reads and verifies the session cookie exactly as the middleware does:
/// the first cookie named `name` across the `Cookie` headers, unquoted,
/// percent-decoded, its `s:<id>.<mac>` checked against each secret and the
/// id validated. No I/O, no logging.
pub fn read_session_cookie(headers: &HeaderMap, name: &str, signer: &Signer) -> SessionCookie {
    read_cookie(headers, name, signer).0
}

/// [`read_session_cookie`], plus the decoded value when the current secret
/// verified it: that value is exactly `signer.sign(id)`, so the response
/// can send it back without computing the MAC again.
pub(crate) fn read_cookie(
    headers: &HeaderMap,
    name: &str,
    signer: &Signer,
) -> (SessionCookie, Option<String>) {
    match find(headers, name) {
        None => (SessionCookie::Absent, None),
        Some(Found::TooLong) => (SessionCookie::Invalid, None),
        Some(Found::Value(value)) => match verify(&value, signer) {
            SessionCookie::Valid(v) if v.secret_index == 0 => {
                (SessionCookie::Valid(v), Some(value))
            }
            other => (other, None),
        },
    }
}

/// Verifies a signed value from a cookie or a header (already decoded).
fn verify(value: &str, signer: &Signer) -> SessionCookie {
    match signer.unsign(value) {
        Some(v) => SessionCookie::Valid(v),
        None if value.starts_with("s:") => SessionCookie::Invalid,
        None => SessionCookie::Unsigned,
    }
}

/// The token of the first `Authorization: Bearer` header, if any (the
/// scheme is case-insensitive, as RFC 9110 says). Other schemes are ignored.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    headers.get_all(AUTHORIZATION).iter().find_map(|v| {
        let bytes = trim(v.as_bytes());
        let scheme_len = bytes.iter().position(|&b| b == b' ' || b == b'\t')?;
        if !bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        Some(std::str::from_utf8(trim(&bytes[scheme_len..])).map_err(|_| ()))
    })
}

/// Reads and verifies the session token of the header transport: the first
/// `Authorization: Bearer` token when `name` is `None`, else the first
/// header called `name`. The token is the signed value `s:<id>.<mac>`,
/// raw or percent-encoded as in the cookie (`s%3A…`). No I/O, no logging.
pub fn read_session_header(
    headers: &HeaderMap,
    name: Option<&HeaderName>,
    signer: &Signer,
) -> SessionCookie {
    let token = match name {
        None => bearer(headers),
        Some(name) => headers
            .get(name)
            .map(|v| std::str::from_utf8(trim(v.as_bytes())).map_err(|_| ())),
    };
    match token {
        None | Some(Ok("")) => SessionCookie::Absent,
        Some(Err(())) => SessionCookie::Invalid,
        Some(Ok(token)) if token.len() > MAX_RAW_COOKIE => SessionCookie::Invalid,
        Some(Ok(token)) => verify(&decode_component(token), signer),
    }
}

/// `Thu, 01 Jan 1970 00:00:00 GMT`, the form `Date.prototype.toUTCString` writes.
#[cfg(test)]
pub(crate) fn http_date(t: &sessionkit_core::time::Timestamp) -> String {
    let mut out = String::with_capacity(29);
    sessionkit_core::time::write_http_date(t, &mut out);
    out
}

fn same_site(s: SameSite) -> &'static str {
    match s {
        SameSite::Strict => "Strict",
        SameSite::None => "None",
        _ => "Lax",
    }
}

fn priority(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Low",
        Priority::High => "High",
        _ => "Medium",
    }
}

/// Serialises a `Set-Cookie` value like Node's `cookie.serialize` with
/// express-session's cookie data: `name=value; Domain; Path; Expires;
/// HttpOnly; Secure; Partitioned; Priority; SameSite`.
///
/// `signed` is the signed value (`s:<id>.<mac>`, or empty to expire the
/// cookie), percent-encoded here like `encodeURIComponent`. Domain and
/// path come from the session's stored metadata when they are valid, and
/// from the configuration otherwise (a record written by another program
/// cannot inject attributes).
pub(crate) fn serialize(
    config: &SessionConfig,
    signed: &str,
    meta: &CookieMeta,
    expires_override: Option<&str>,
) -> Option<HeaderValue> {
    let mut out = String::with_capacity(config.name.len() + signed.len() + 112);
    out.push_str(&config.name);
    out.push('=');
    encode_component_into(signed, &mut out);
    let domain = match &meta.domain {
        Some(d) if valid_domain(d) => Some(d.as_str()),
        Some(_) => {
            tracing::warn!("stored session cookie has an invalid domain; using the configured one");
            config.domain.as_deref()
        }
        None => None,
    };
    if let Some(d) = domain {
        let _ = write!(out, "; Domain={d}");
    }
    let path = match &meta.path {
        Some(p) if valid_path(p) => Some(p.as_str()),
        Some(_) => {
            tracing::warn!("stored session cookie has an invalid path; using the configured one");
            Some(config.path.as_str())
        }
        None => None,
    };
    if let Some(p) = path {
        let _ = write!(out, "; Path={p}");
    }
    match expires_override {
        Some(e) => {
            let _ = write!(out, "; Expires={e}; Max-Age=0");
        }
        None => {
            if let Some(e) = &meta.expires {
                out.push_str("; Expires=");
                sessionkit_core::time::write_http_date(e, &mut out);
            }
        }
    }
    if meta.http_only == Some(true) {
        out.push_str("; HttpOnly");
    }
    if meta.secure == Some(true) {
        out.push_str("; Secure");
    }
    if meta.partitioned == Some(true) {
        out.push_str("; Partitioned");
    }
    if let Some(p) = meta.priority {
        let _ = write!(out, "; Priority={}", priority(p));
    }
    if let Some(s) = meta.same_site {
        let _ = write!(out, "; SameSite={}", same_site(s));
    }
    // Moved into the header value, not copied; checked like `from_str`.
    HeaderValue::try_from(out).ok()
}

/// A `Set-Cookie` that makes the browser drop the session cookie.
pub(crate) fn expired(config: &SessionConfig, meta: &CookieMeta) -> Option<HeaderValue> {
    serialize(config, "", meta, Some("Thu, 01 Jan 1970 00:00:00 GMT"))
}

#[cfg(test)]
mod tests {
    /// The decoded value [`find`] returned, if any.
    fn found(f: Option<Found>) -> Option<String> {
        match f? {
            Found::Value(v) => Some(v),
            Found::TooLong => Some("<too long>".into()),
        }
    }

    use super::*;
    use http::HeaderMap;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(COOKIE, v);
            }
        }
        h
    }

    #[test]
    fn a_cookie_too_long_for_a_signed_id_is_refused_unread() {
        let signer = sessionkit_core::Signer::new([sessionkit_core::Secret::new(
            "a secret of at least thirty-two bytes!!",
        )
        .unwrap()])
        .unwrap();
        let forged = format!("sid=s%3A{}.{}", "A".repeat(400 * 1024), "B".repeat(43));
        let h = headers(&[forged.as_str()]);
        assert_eq!(find(&h, "sid"), Some(Found::TooLong));
        assert_eq!(
            read_session_cookie(&h, "sid", &signer),
            SessionCookie::Invalid
        );
        // The longest value a signed id can take is still read.
        let id = sessionkit_core::SessionId::parse(&"a".repeat(128)).unwrap();
        let longest = format!("sid={}", signer.sign_cookie(&id));
        let h = headers(&[longest.as_str()]);
        assert!(matches!(
            read_session_cookie(&h, "sid", &signer),
            SessionCookie::Valid(v) if v.id == id
        ));
    }

    #[test]
    fn first_cookie_wins_and_plus_stays_plus() {
        let h = headers(&["a=1; sid=s%3Aab+c; sid=second", "sid=third"]);
        assert_eq!(found(find(&h, "sid")).as_deref(), Some("s:ab+c"));
        let h = headers(&["x=1", "sid=\"quoted\""]);
        assert_eq!(found(find(&h, "sid")).as_deref(), Some("quoted"));
        let h = headers(&["sid=; sid=later"]);
        assert_eq!(found(find(&h, "sid")), None);
        assert_eq!(find(&headers(&["novalue; other=1"]), "sid"), None);
    }

    #[test]
    fn other_cookies_with_non_utf8_bytes_do_not_hide_the_session_cookie() {
        let mut h = HeaderMap::new();
        let raw =
            HeaderValue::from_bytes(b"pref=caf\xe9; sid=s%3Aabc; x=\xff\xfe").expect("obs-text");
        h.append(COOKIE, raw);
        assert_eq!(found(find(&h, "sid")).as_deref(), Some("s:abc"));
        // Our own cookie with such bytes is present but invalid, and still wins.
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"sid=\xff").expect("obs-text"),
        );
        h.append(COOKIE, HeaderValue::from_static("sid=later"));
        assert_eq!(found(find(&h, "sid")).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn spaces_and_tabs_are_trimmed_like_the_cookie_package() {
        let h = headers(&["a=1;\t sid \t=\t \"s%3Ax\" ;b=2"]);
        assert_eq!(found(find(&h, "sid")).as_deref(), Some("s:x"));
        assert_eq!(
            found(find(&headers(&["sid=\""]), "sid")).as_deref(),
            Some("\"")
        );
        assert_eq!(found(find(&headers(&["sid=\"\""]), "sid")), None);
    }

    #[test]
    fn names_domains_and_paths_that_could_inject_are_refused() {
        assert!(valid_name("connect.sid"));
        for bad in ["", "a b", "a;b", "a=b", "a\r\nb", "a,b", "a\"b", "é"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_domain("example.com"));
        assert!(valid_domain(".example.com"));
        for bad in [
            "",
            ".",
            "ex ample.com",
            "a;b",
            "evil.com; Secure",
            "-a.com",
            "a..b",
        ] {
            assert!(!valid_domain(bad), "{bad:?}");
        }
        assert!(valid_path("/"));
        assert!(valid_path("/app/x-y"));
        for bad in ["", "app", "/a;b", "/a\r\nSet-Cookie: x", "/\u{7f}"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn http_date_matches_to_utc_string() {
        let t = sessionkit_core::time::from_millis(1_795_744_481_837);
        assert_eq!(http_date(&t), "Fri, 27 Nov 2026 01:54:41 GMT");
    }

    fn text() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        use proptest::prelude::*;
        proptest::option::of(prop_oneof![
            any::<String>(),
            "[a-z./;=, \r\n\t\"-]{0,24}",
            "/[ -~]{0,24}",
        ])
    }

    #[test]
    fn bearer_and_named_header_tokens() {
        let signer = sessionkit_core::Signer::new([sessionkit_core::Secret::new(
            "a secret of at least thirty-two bytes!!",
        )
        .expect("secret")])
        .expect("signer");
        let id = sessionkit_core::SessionId::generate();
        let token = signer.sign(id.as_str());
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        h.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer   {token}")).expect("value"),
        );
        assert!(matches!(
            read_session_header(&h, None, &signer),
            SessionCookie::Valid(v) if v.id == id
        ));
        let name = HeaderName::from_static("x-session-id");
        assert_eq!(
            read_session_header(&h, Some(&name), &signer),
            SessionCookie::Absent
        );
        for (value, expected) in [
            ("", SessionCookie::Absent),
            ("   ", SessionCookie::Absent),
            ("plain", SessionCookie::Unsigned),
            ("s:forged.mac", SessionCookie::Invalid),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
            assert_eq!(
                read_session_header(&h, Some(&name), &signer),
                expected,
                "{value:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(
            read_session_header(&h, None, &signer),
            SessionCookie::Absent
        );
    }

    proptest::proptest! {
        /// Any header bytes: never a panic, and only a correctly signed
        /// token is valid.
        #[test]
        fn header_tokens_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let signer = sessionkit_core::Signer::new([sessionkit_core::Secret::new(
                "a secret of at least thirty-two bytes!!",
            )
            .expect("secret")])
            .expect("signer");
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let name = HeaderName::from_static("x-session-id");
                let mut h = HeaderMap::new();
                h.insert(name.clone(), value.clone());
                h.insert(AUTHORIZATION, value);
                for which in [None, Some(&name)] {
                    let read = read_session_header(&h, which, &signer);
                    proptest::prop_assert!(!matches!(read, SessionCookie::Valid(_)));
                }
            }
        }

        /// Whatever a stored record (written by any program) says, the
        /// `Set-Cookie` carries only known attributes, each once, with a
        /// valid domain and path.
        #[test]
        fn stored_metadata_never_injects_attributes(
            domain in text(),
            path in text(),
            expires in proptest::prelude::any::<Option<i64>>(),
            flags in proptest::prelude::any::<[Option<bool>; 3]>(),
        ) {
            let config = SessionConfig::builder()
                .secret("a secret of at least thirty-two bytes!!")
                .domain("example.com")
                .build()
                .expect("config");
            let meta = CookieMeta {
                domain,
                path,
                expires: expires.map(sessionkit_core::time::from_millis),
                http_only: flags[0],
                secure: flags[1],
                partitioned: flags[2],
                same_site: Some(SameSite::Lax),
                priority: Some(Priority::High),
                ..CookieMeta::default()
            };
            for expired in [false, true] {
                let header = if expired {
                    super::expired(&config, &meta)
                } else {
                    serialize(&config, "s%3Avalue", &meta, None)
                };
                let header = header.expect("always a header");
                let text = header.to_str().expect("visible ASCII");
                let mut parts = text.split("; ");
                let first = parts.next().unwrap_or_default();
                proptest::prop_assert!(first.starts_with("connect.sid="), "{}", text);
                let mut seen = Vec::new();
                for part in parts {
                    let (name, value) = part.split_once('=').unwrap_or((part, ""));
                    proptest::prop_assert!(
                        [
                            "Domain", "Path", "Expires", "Max-Age", "HttpOnly", "Secure",
                            "Partitioned", "Priority", "SameSite"
                        ]
                        .contains(&name),
                        "{}",
                        text
                    );
                    proptest::prop_assert!(!seen.contains(&name), "{}", text);
                    seen.push(name);
                    match name {
                        "Domain" => proptest::prop_assert!(valid_domain(value), "{}", text),
                        "Path" => proptest::prop_assert!(valid_path(value), "{}", text),
                        _ => {}
                    }
                }
            }
        }
    }
}

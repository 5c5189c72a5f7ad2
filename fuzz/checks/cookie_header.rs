//! The invariants of the `cookie_header` fuzz target, shared with the corpus
//! replay test (`session-tower/tests/fuzz_corpus.rs`), so the fuzzer and CI
//! check the same things with the code the middleware runs.
//!
//! The input is used three ways:
//! 1. split on `\n` into `Cookie` header values (values `http` refuses are
//!    skipped, as a server would refuse them) and read like the middleware;
//! 2. as the text of an id that is signed with a real secret, so the
//!    validation after a correct MAC is exercised on any text;
//! 3. as the text for the cookie-value encode/decode round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::header::{HeaderMap, HeaderValue, COOKIE};
use sessionkit_core::signing::{decode_component, encode_component};
use sessionkit_core::{Secret, SessionId, Signer};
use sessionkit_tower::fuzzing::{read_session_cookie, SessionCookie};
use std::sync::OnceLock;

/// The cookie name the checks read.
pub const NAME: &str = "connect.sid";
/// The current secret (signs) and an older one (still verifies). The seed
/// corpus has cookies signed with both.
pub const SECRETS: [&str; 2] = [
    "fuzz secret number one, at least thirty-two bytes",
    "fuzz secret number zero, rotated out but still valid",
];
const STRANGER: &str = "a secret nobody used to sign anything in the corpus";

struct Signers {
    both: Signer,
    current: Signer,
    old: Signer,
    stranger: Signer,
}

fn signer(secrets: &[&str]) -> Signer {
    Signer::new(secrets.iter().map(|s| Secret::new(s).expect("long secret"))).expect("signer")
}

fn signers() -> &'static Signers {
    static SIGNERS: OnceLock<Signers> = OnceLock::new();
    SIGNERS.get_or_init(|| Signers {
        both: signer(&SECRETS),
        current: signer(&SECRETS[..1]),
        old: signer(&SECRETS[1..]),
        stranger: signer(&[STRANGER]),
    })
}

fn headers<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(COOKIE, v);
        }
    }
    h
}

/// Runs every invariant on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let s = signers();

    // 1. Arbitrary Cookie headers, read as the middleware reads them.
    let h = headers(data.split(|&b| b == b'\n').take(32));
    if let SessionCookie::Valid(v) = read_session_cookie(&h, NAME, &s.both) {
        assert!(v.secret_index < SECRETS.len());
        assert_eq!(SessionId::parse(v.id.as_str()).as_ref(), Ok(&v.id));
        // The secret that verified it verifies it alone, with the same id.
        let alone = if v.secret_index == 0 {
            &s.current
        } else {
            &s.old
        };
        match read_session_cookie(&h, NAME, alone) {
            SessionCookie::Valid(w) => assert_eq!((w.id, w.secret_index), (v.id, 0)),
            other => panic!("verified with both secrets but not alone: {other:?}"),
        }
        // A secret that never signed anything verifies nothing.
        assert_eq!(
            read_session_cookie(&h, NAME, &s.stranger),
            SessionCookie::Invalid
        );
    }

    // 2. The input as an id, correctly signed: accepted exactly when it is a
    // valid id, and then as that very id; the MAC is never enough.
    let text = String::from_utf8_lossy(data);
    let valid = SessionId::parse(&text).ok();
    for (index, signer) in [&s.current, &s.old].into_iter().enumerate() {
        let cookie = encode_component(&signer.sign(&text));
        let line = format!("{NAME}={cookie}");
        let got = read_session_cookie(&headers([line.as_bytes()]), NAME, &s.both);
        match (&valid, got) {
            (Some(id), SessionCookie::Valid(v)) => {
                assert_eq!((&v.id, v.secret_index), (id, index))
            }
            (None, SessionCookie::Invalid) => {}
            (valid, got) => panic!("signed {text:?} (valid: {valid:?}) read as {got:?}"),
        }
        // Tampering with any byte never yields another id.
        if let (Some(id), [at, with, ..]) = (&valid, data) {
            let mut tampered = line.clone().into_bytes();
            let at = NAME.len() + 1 + usize::from(*at) % cookie.len();
            tampered[at] = *with;
            if let SessionCookie::Valid(v) =
                read_session_cookie(&headers([tampered.as_slice()]), NAME, &s.both)
            {
                assert_eq!(&v.id, id, "tampered cookie verified as another id");
            }
        }
    }

    // 3. Cookie values: encoding is header-safe and decoding inverts it.
    let encoded = encode_component(&text);
    assert!(encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"%-_.!~*'()".contains(&b)));
    assert_eq!(decode_component(&encoded), text);
    let _ = decode_component(&text);
}

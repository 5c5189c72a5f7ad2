//! Cookie signing compatible with Node's `cookie-signature` and
//! express-session.
//!
//! A signed cookie value is `s:` + id + `.` + base64(HMAC-SHA256(secret, id))
//! with the `=` padding removed, then percent-encoded like
//! `encodeURIComponent`. With several secrets the first signs and each one
//! verifies, in order, so secrets can be rotated without logging users out.
//!
//! ```
//! use sessionkit_core::{Secret, SessionId, Signer};
//!
//! # fn main() -> Result<(), sessionkit_core::Error> {
//! let signer = Signer::new([Secret::new("a secret of at least thirty-two bytes!!")?])?;
//! let id = SessionId::generate();
//! let cookie = signer.sign_cookie(&id);
//! let verified = signer.unsign_cookie(&cookie);
//! assert_eq!(verified.map(|v| v.id), Some(id));
//! # Ok(())
//! # }
//! ```

use crate::{Error, SessionId};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use std::borrow::Cow;
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Minimum secret length in bytes. Shorter secrets can be brute-forced offline
/// from a single cookie.
pub const MIN_SECRET_LEN: usize = 32;

/// What `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn mac_b64(value: &str, key: &HmacSha256) -> String {
    let mut mac = key.clone();
    mac.update(value.as_bytes());
    STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

fn keyed(secret: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length; this never fails in practice.
    HmacSha256::new_from_slice(secret).ok()
}

/// `cookie-signature`'s `sign(val, secret)`: `val + "." + mac`. No length
/// check on the secret: this is the raw primitive (use [`Signer`] in apps).
pub fn sign(value: &str, secret: &[u8]) -> String {
    let mac = keyed(secret)
        .map(|k| mac_b64(value, &k))
        .unwrap_or_default();
    format!("{value}.{mac}")
}

/// `cookie-signature`'s `unsign(input, secret)`: the value when the MAC
/// (after the last `.`) matches, compared in constant time; `None` otherwise.
pub fn unsign<'a>(input: &'a str, secret: &[u8]) -> Option<&'a str> {
    let key = keyed(secret)?;
    unsign_with(input, &key)
}

/// Length of an HMAC-SHA256 in unpadded base64.
const MAC_B64_LEN: usize = 43;

/// The longest signed value (`s:<id>.<mac>`, decoded) a [`Signer`] can
/// verify: anything longer is refused before any MAC is computed.
pub const MAX_SIGNED_LEN: usize = 2 + crate::id::MAX_LEN + 1 + MAC_B64_LEN;

/// `value.mac` split at the last `.`, when `mac` has the shape of an
/// HMAC-SHA256 in unpadded base64 (cheap: no MAC computed).
fn split_mac(input: &str) -> Option<(&str, &str)> {
    let dot = input.rfind('.')?;
    let (value, mac) = (&input[..dot], &input[dot + 1..]);
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    (mac.len() == MAC_B64_LEN && mac.bytes().all(base64)).then_some((value, mac))
}

fn unsign_with<'a>(input: &'a str, key: &HmacSha256) -> Option<&'a str> {
    let (value, mac) = split_mac(input)?;
    let expected = mac_b64(value, key);
    bool::from(expected.as_bytes().ct_eq(mac.as_bytes())).then_some(value)
}

/// Percent-encodes like `encodeURIComponent` (what the `cookie` package does).
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// [`encode_component`], appended to `out` (no allocation of its own).
pub fn encode_component_into(value: &str, out: &mut String) {
    out.extend(utf8_percent_encode(value, URI_COMPONENT));
}

/// Decodes like the `cookie` package: percent-decoding when a `%` is present,
/// the raw text when decoding fails. A `+` stays a `+`.
pub fn decode_component(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    match percent_decode_str(value).decode_utf8() {
        Ok(decoded) => decoded,
        Err(_) => Cow::Borrowed(value),
    }
}

/// A signing secret of at least [`MIN_SECRET_LEN`] bytes. Its `Debug` output
/// is redacted.
#[derive(Clone)]
pub struct Secret {
    key: HmacSha256,
    /// Shorter than [`MIN_SECRET_LEN`]: accepted to verify cookies only.
    verify_only: bool,
}

impl Secret {
    /// Accepts a secret of at least 32 bytes; shorter ones are a
    /// [`Error::Config`] naming the length.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        let bytes = secret.as_ref();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(Error::Config(
                format!(
                    "session secret is {} bytes; at least {MIN_SECRET_LEN} are required",
                    bytes.len()
                )
                .into(),
            ));
        }
        let key = keyed(bytes).ok_or(Error::Config("secret rejected by HMAC".into()))?;
        Ok(Secret {
            key,
            verify_only: false,
        })
    }

    /// A secret of any non-empty length, to verify cookies only: an older
    /// (often short, like express-session's `keyboard cat`) secret of a
    /// Node service, kept after a longer one so the sessions it signed
    /// survive the move. [`Signer::new`] refuses it as the signing secret.
    /// Retire it once every cookie it signed has been re-sent with the new
    /// secret or has expired (the longest cookie lifetime after the switch).
    pub fn verify_only(secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        let bytes = secret.as_ref();
        if bytes.is_empty() {
            return Err(Error::Config("session secret is empty".into()));
        }
        let key = keyed(bytes).ok_or(Error::Config("secret rejected by HMAC".into()))?;
        Ok(Secret {
            key,
            verify_only: bytes.len() < MIN_SECRET_LEN,
        })
    }

    /// Whether this secret may only verify (it is shorter than
    /// [`MIN_SECRET_LEN`]).
    pub fn is_verify_only(&self) -> bool {
        self.verify_only
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A cookie value that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The session id inside the signed value.
    pub id: SessionId,
    /// Index of the secret that verified it (0 is the current signing secret).
    pub secret_index: usize,
}

/// Signs with the first secret, verifies with each secret in order.
#[derive(Debug, Clone)]
pub struct Signer {
    secrets: Vec<Secret>,
}

impl Signer {
    /// Builds a signer; at least one secret is required.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        let secrets: Vec<Secret> = secrets.into_iter().collect();
        match secrets.first() {
            None => {
                return Err(Error::Config(
                    "at least one session secret is required".into(),
                ))
            }
            Some(first) if first.verify_only => {
                return Err(Error::Config(
                    format!("the signing (first) session secret must be at least {MIN_SECRET_LEN} bytes; shorter ones may only follow it, to verify").into(),
                ))
            }
            Some(_) => {}
        }
        Ok(Signer { secrets })
    }

    /// The raw signed value `s:<id>.<mac>` (not percent-encoded).
    pub fn sign(&self, value: &str) -> String {
        format!("s:{value}.{}", mac_b64(value, &self.secrets[0].key))
    }

    /// The cookie value express-session would send: `s%3A<id>.<mac>`, percent-encoded.
    pub fn sign_cookie(&self, id: &SessionId) -> String {
        encode_component(&self.sign(id.as_str()))
    }

    /// Verifies a decoded value (`s:<id>.<mac>`): `None` when it is not
    /// signed, the MAC matches no secret, or the id is malformed.
    ///
    /// A value verified by the first secret (`secret_index == 0`) is
    /// exactly what [`sign`](Self::sign) returns for its id, so it can be
    /// sent back without signing again.
    ///
    /// The shape is checked before any MAC: a value longer than
    /// [`MAX_SIGNED_LEN`], a MAC that is not 43 base64 characters or an id
    /// that is not a valid [`SessionId`] costs no HMAC (a forged 400 KB
    /// cookie is refused as cheaply as a short one).
    pub fn unsign(&self, value: &str) -> Option<Verified> {
        if value.len() > MAX_SIGNED_LEN {
            return None;
        }
        let signed = value.strip_prefix("s:")?;
        let (id, _) = split_mac(signed)?;
        let id = SessionId::parse(id).ok()?;
        self.secrets.iter().enumerate().find_map(|(i, s)| {
            unsign_with(signed, &s.key).map(|_| Verified {
                id: id.clone(),
                secret_index: i,
            })
        })
    }

    /// Verifies a raw cookie value as it arrived (percent-encoded).
    pub fn unsign_cookie(&self, raw: &str) -> Option<Verified> {
        self.unsign(&decode_component(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: &[u8] = b"keyboard cat";

    fn node_cookie(id: &str, secret: &[u8]) -> String {
        encode_component(&format!("s:{}", sign(id, secret)))
    }

    #[test]
    fn node_vectors() {
        assert_eq!(
            node_cookie("apple", CAT),
            "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
        );
        assert_eq!(
            node_cookie("%", CAT),
            "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"
        );
        assert_eq!(
            node_cookie("/foo", CAT),
            "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"
        );
    }

    #[test]
    fn raw_unsign_accepts_own_and_rejects_tampering() {
        let signed = sign("apple", CAT);
        assert_eq!(unsign(&signed, CAT), Some("apple"));
        assert_eq!(unsign(&signed, b"another secret"), None);
        assert_eq!(unsign(&signed.replace("apple", "apply"), CAT), None);
        assert_eq!(unsign("apple", CAT), None);
        assert_eq!(unsign(&format!("{signed}x"), CAT), None);
        assert_eq!(unsign(&signed[..signed.len() - 1], CAT), None);
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s.repeat(32)).expect("long enough")
    }

    #[test]
    fn short_secrets_are_refused() {
        // Shapes no MAC is computed for: too long, a MAC of the wrong
        // length or alphabet, an id that is not one.
        let s = Signer::new([secret("k")]).expect("signer");
        let good = s.sign("abcdefgh");
        assert!(s.unsign(&good).is_some());
        for bad in [
            format!("s:{}.{}", "a".repeat(MAX_SIGNED_LEN), "b".repeat(43)),
            format!("{good}x"),
            good.replace('.', ".!"),
            format!("s:ab cdefgh.{}", &good[11..]),
        ] {
            assert!(
                split_mac(bad.trim_start_matches("s:")).is_none() || s.unsign(&bad).is_none(),
                "{bad}"
            );
            assert!(s.unsign(&bad).is_none(), "{bad}");
        }
        let short = Secret::verify_only("keyboard cat").expect("verify-only");
        assert!(short.is_verify_only());
        assert!(
            Signer::new([short.clone()]).is_err(),
            "a short secret cannot sign"
        );
        assert!(Secret::verify_only("").is_err());
        let err = Secret::new("keyboard cat").expect_err("too short");
        assert!(err.to_string().contains("12 bytes"), "{err}");
        assert!(Signer::new(Vec::new()).is_err());
    }

    #[test]
    fn signer_round_trip_and_rotation() {
        let id = SessionId::generate();
        let old = Signer::new([secret("o")]).expect("signer");
        let rotated = Signer::new([secret("n"), secret("o")]).expect("signer");
        let cookie = old.sign_cookie(&id);
        assert!(cookie.starts_with("s%3A"));
        let v = rotated.unsign_cookie(&cookie).expect("old secret verifies");
        assert_eq!(v.id, id);
        assert_eq!(v.secret_index, 1);
        let v = rotated
            .unsign_cookie(&rotated.sign_cookie(&id))
            .expect("verifies");
        assert_eq!(v.secret_index, 0);
        let new_only = Signer::new([secret("n")]).expect("signer");
        assert_eq!(new_only.unsign_cookie(&cookie), None);
    }

    #[test]
    fn unsigned_forged_and_malformed_values_are_rejected() {
        let s = Signer::new([secret("k")]).expect("signer");
        let id = SessionId::generate();
        let good = s.sign(id.as_str());
        let forged_mac = format!("{}AAAA", &good[..good.len() - 4]);
        let other = SessionId::generate();
        let swapped = good.replace(id.as_str(), other.as_str());
        for bad in [
            id.as_str().to_owned(),
            format!("s:{}", id),
            good[2..].to_owned(),
            forged_mac,
            swapped,
            "s:".into(),
            "s:.".into(),
            "%E0%A4%A".into(),
            String::new(),
        ] {
            assert_eq!(s.unsign_cookie(&bad), None, "{bad}");
        }
        // A validly signed but malformed id is refused too.
        assert_eq!(s.unsign(&s.sign("a*b?c[d]")), None);
        assert_eq!(s.unsign(&good).map(|v| v.id), Some(id));
    }

    #[test]
    fn plus_stays_plus_and_bad_escapes_stay_raw() {
        assert_eq!(decode_component("a+b"), "a+b");
        assert_eq!(decode_component("a%2Bb"), "a+b");
        assert_eq!(decode_component("%zz"), "%zz");
        assert_eq!(decode_component("%FF"), "%FF");
    }
}

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;

/// Shortest id accepted from a client.
pub const MIN_LEN: usize = 8;
/// Longest id accepted from a client (express-mysql-session's column is 128 wide).
pub const MAX_LEN: usize = 128;

/// A session id: generated here from the OS CSPRNG, or parsed and validated
/// from a client.
///
/// Generated ids are 24 random bytes as 32 base64url characters, the shape
/// of express-session's default ids (`uid-safe(24)`), so ids look alike
/// across Node and Rust. Parsed ids must be
/// [`MIN_LEN`](SessionId::MIN_LEN)..=[`MAX_LEN`](SessionId::MAX_LEN)
/// characters of `A-Z a-z 0-9 - _`: no store ever sees a key pattern
/// (`*`, `?`, `[`), a separator, whitespace, a control byte or non-ASCII.
/// The field is private: there is no way to build an id that skips this.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Box<str>);

/// Why a client-supplied id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// Shorter than [`SessionId::MIN_LEN`] or longer than [`SessionId::MAX_LEN`].
    #[error("session id length {0} is outside {MIN_LEN}..={MAX_LEN}")]
    Length(usize),
    /// Contains a byte outside `A-Z a-z 0-9 - _`.
    #[error("session id contains a character outside A-Z a-z 0-9 - _")]
    Charset,
}

impl SessionId {
    /// Shortest id accepted from a client (8).
    pub const MIN_LEN: usize = MIN_LEN;
    /// Longest id accepted from a client (128).
    pub const MAX_LEN: usize = MAX_LEN;

    /// A fresh id: 24 bytes from the operating system's CSPRNG, base64url.
    ///
    /// # Panics
    /// Only if the operating system has no usable random source, which no
    /// server can recover from; `getrandom` documents this as unreachable
    /// on supported platforms.
    #[allow(clippy::expect_used)]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        SessionId(URL_SAFE_NO_PAD.encode(bytes).into_boxed_str())
    }

    /// Validates an id that came from outside (a cookie, a header, a store key).
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if !(MIN_LEN..=MAX_LEN).contains(&s.len()) {
            return Err(InvalidId::Length(s.len()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidId::Charset);
        }
        Ok(SessionId(s.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug output shows only a prefix: ids are bearer credentials and do not
/// belong in logs.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(4).collect();
        write!(f, "SessionId({prefix}…)")
    }
}

impl std::str::FromStr for SessionId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_node_shape_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn node_default_ids_parse() {
        // Produced by express-session 1.18 (uid-safe, 24 bytes).
        for id in [
            "Xq3V9tQ0H1k6J0dO5sZk3jv0mB7sYx2T",
            "_8kWkQ-9FqhnZ0cvQm0HhQ9oZ2Zr3w1-",
        ] {
            assert!(SessionId::parse(id).is_ok(), "{id}");
        }
        // A UUID from a custom genid.
        assert!(SessionId::parse("0b4d6a2c-6f1e-4f57-9a51-7d0f3c7b9e21").is_ok());
    }

    #[test]
    fn hostile_ids_are_refused() {
        let long = "a".repeat(10_000);
        for bad in [
            "",
            "short",
            "abcdefgh*",
            "abcdefgh?",
            "abcdefgh[",
            "abcd\nefgh",
            "abcd\0efgh",
            "abcdéfghij",
            "abcd efgh",
            "abcd.efgh",
            "abcd:efgh",
            "sess:abcdefgh",
            &long,
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.as_str()));
    }
}

use std::error::Error as StdError;

/// The result type of every fallible operation in this crate and the stores.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in the core and in stores.
///
/// Backend errors keep their source; [`Error::is_transient`] tells callers
/// whether retrying (or answering 503) makes sense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `create` found a live record with the same id. Never an overwrite.
    #[error("a session with this id already exists")]
    Collision,
    /// The store could not be reached or the connection broke: retrying later may work.
    #[error("session store unavailable: {context}")]
    Unavailable {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The store answered with an error that retrying will not fix.
    #[error("session store error: {context}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A stored record could not be decoded (not JSON, not an object, no `cookie`).
    #[error("stored session could not be decoded")]
    Decode(#[source] BoxError),
    /// A record could not be encoded (for example it is larger than allowed).
    #[error("session could not be encoded")]
    Encode(#[source] BoxError),
    /// The store does not implement this optional operation.
    #[error("operation not supported by this store: {0}")]
    Unsupported(&'static str),
    /// A configuration value was refused.
    #[error("invalid configuration: {0}")]
    Config(std::borrow::Cow<'static, str>),
}

impl Error {
    /// Whether the failure is likely temporary (connection refused, timeout, pool exhausted).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Wraps a driver error that means the store could not be reached.
    pub fn unavailable(context: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            context,
            source: source.into(),
        }
    }

    /// Wraps a driver error that retrying will not fix.
    pub fn backend(context: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            context,
            source: source.into(),
        }
    }

    /// Wraps a decoding failure of stored data.
    pub fn decode(source: impl Into<BoxError>) -> Self {
        Error::Decode(source.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_kept_and_transience_reported() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::unavailable("load", io);
        assert!(err.is_transient());
        assert_eq!(
            err.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
        let err = Error::decode("bad json");
        assert!(!err.is_transient());
        assert!(err.source().is_some());
    }
}

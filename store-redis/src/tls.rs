//! TLS beyond the `rediss://` scheme: a CA of your own, or (by explicit
//! opt-in only) no verification at all.

use sessionkit_core::{Error, Result};
use std::path::PathBuf;

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug)]
// Kept (and refused at `check`) in a build without TLS.
#[cfg_attr(not(feature = "tls-rustls"), allow(dead_code))]
pub(crate) enum Ca {
    /// A PEM file, read at `connect`.
    File(PathBuf),
    /// PEM text.
    Pem(Vec<u8>),
}

/// The TLS options of a builder.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    /// Trust these CAs instead of the platform's roots.
    pub(crate) ca: Option<Ca>,
    /// Skip certificate and host name verification.
    pub(crate) insecure: bool,
}

/// Whether a node URL asks for TLS.
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

impl Tls {
    /// Checks the options against the URLs before anything connects: TLS
    /// options need `rediss://` URLs, all or none of the URLs use TLS, and
    /// a build without TLS refuses a TLS URL naming the cargo feature.
    pub(crate) fn check<'a>(&self, urls: impl IntoIterator<Item = &'a str>) -> Result<bool> {
        let flags: Vec<bool> = urls.into_iter().map(is_tls_url).collect();
        let tls = flags.iter().any(|t| *t);
        if tls && flags.iter().any(|t| !t) {
            return Err(Error::Config(
                "mixing redis:// and rediss:// URLs in one deployment".into(),
            ));
        }
        if !tls && (self.ca.is_some() || self.insecure) {
            return Err(Error::Config(
                "tls_ca and tls_insecure apply to TLS connections: use rediss:// URLs".into(),
            ));
        }
        if tls && !cfg!(feature = "tls-rustls") {
            return Err(Error::Config(
                "rediss:// URLs need sessionkit-redis' `tls-rustls` cargo feature, which is off in this build"
                    .into(),
            ));
        }
        if tls && self.insecure {
            tracing::warn!(
                "Redis TLS certificate verification is OFF (tls_insecure): anyone on the network path can read and change sessions"
            );
        }
        Ok(tls)
    }

    /// The CA certificates in PEM, read and checked (a clear error naming
    /// `tls_ca` for an unreadable file or one without a certificate).
    #[cfg_attr(not(feature = "tls-rustls"), allow(dead_code))]
    pub(crate) fn root_pem(&self) -> Result<Option<Vec<u8>>> {
        let (pem, what) = match &self.ca {
            None => return Ok(None),
            Some(Ca::Pem(pem)) => (pem.clone(), "the PEM given".to_owned()),
            Some(Ca::File(path)) => (
                std::fs::read(path).map_err(|e| {
                    Error::Config(format!("tls_ca: cannot read {}: {e}", path.display()).into())
                })?,
                path.display().to_string(),
            ),
        };
        let text = String::from_utf8_lossy(&pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::Config(
                format!("tls_ca: {what} holds no PEM certificate").into(),
            ));
        }
        Ok(Some(pem))
    }

    /// The driver's certificates, when a CA is configured.
    #[cfg(feature = "tls-rustls")]
    pub(crate) fn certificates(&self) -> Result<Option<redis::TlsCertificates>> {
        Ok(self.root_pem()?.map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        }))
    }

    /// The driver's TLS mode for Cluster and Sentinel.
    #[cfg(feature = "tls-rustls")]
    pub(crate) fn mode(&self) -> redis::TlsMode {
        if self.insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        }
    }
}

/// rustls needs one process-wide crypto provider; install ring's unless
/// the application already chose one.
#[cfg(feature = "tls-rustls")]
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_against_the_urls() {
        let none = Tls::default();
        assert!(matches!(none.check(["redis://h:1"]), Ok(false)));
        let with_ca = Tls {
            ca: Some(Ca::Pem(b"x".to_vec())),
            insecure: false,
        };
        assert!(matches!(
            with_ca.check(["redis://h:1"]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            none.check(["rediss://a:1", "redis://b:1"]),
            Err(Error::Config(_))
        ));
        let expected_tls = cfg!(feature = "tls-rustls");
        match none.check(["rediss://a:1"]) {
            Ok(tls) => assert!(tls && expected_tls),
            Err(Error::Config(msg)) => assert!(!expected_tls && msg.contains("tls-rustls")),
            Err(other) => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn a_ca_must_be_readable_pem() {
        let missing = Tls {
            ca: Some(Ca::File("/nonexistent/ca.pem".into())),
            insecure: false,
        };
        assert!(matches!(missing.root_pem(), Err(Error::Config(m)) if m.contains("tls_ca")));
        let garbage = Tls {
            ca: Some(Ca::Pem(b"not a certificate".to_vec())),
            insecure: false,
        };
        assert!(matches!(garbage.root_pem(), Err(Error::Config(m)) if m.contains("no PEM")));
    }
}

//! Helpers the store crates share to read their drivers' errors.

/// Whether `e`, or an error in its chain of sources, is a TLS certificate
/// being refused (unknown issuer, wrong host name, expired): a
/// configuration problem that retrying will not fix. Drivers wrap rustls'
/// errors in their own (often as an I/O error), so this goes by the text.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = format!("{err} {err:?}").to_ascii_lowercase();
        if text.contains("certificate") || text.contains("unknownissuer") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_certificate_error;

    #[test]
    fn certificate_errors_are_found_in_the_chain() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(is_certificate_error(&inner));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_certificate_error(&refused));
    }
}

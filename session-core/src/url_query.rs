//! Reading one option out of a driver URL's query string, for the stores'
//! checks before they hand the URL to their driver (does it ask for TLS?).

/// The percent-decoded value of the first query option named one of
/// `names` (ASCII case-insensitive) in `url`; `None` when absent.
///
/// ```
/// use sessionkit_core::url_query::find;
/// let url = "postgres://u:p@h/db?application_name=x&sslmode=verify%2Dfull";
/// assert_eq!(find(url, &["sslmode", "ssl-mode"]).as_deref(), Some("verify-full"));
/// assert_eq!(find(url, &["sslrootcert"]), None);
/// ```
pub fn find(url: &str, names: &[&str]) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        names.iter().any(|n| n.eq_ignore_ascii_case(k)).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn options_are_found_by_any_of_their_names() {
        let url = "mysql://root@127.0.0.1/test?ssl-mode=REQUIRED&ssl-ca=%2Ftmp%2Fca.pem";
        assert_eq!(
            find(url, &["sslmode", "ssl-mode"]).as_deref(),
            Some("REQUIRED")
        );
        assert_eq!(
            find(url, &["sslca", "ssl-ca"]).as_deref(),
            Some("/tmp/ca.pem")
        );
        assert_eq!(find("mysql://h/db", &["ssl-mode"]), None);
        assert_eq!(find("mysql://h/db?flag", &["flag"]).as_deref(), Some(""));
    }
}

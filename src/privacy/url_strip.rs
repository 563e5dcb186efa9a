//! URL stripping: what of a page or referrer URL may be stored.
//!
//! Page URLs keep scheme, host, port, path and only allow-listed query
//! parameters (site-search parameters, `utm_*`, and ones the site lists);
//! fragments and credentials are always dropped. Referrers from other sites
//! keep no query at all. Stripping happens before anything is stored, so a
//! session token or e-mail address in a query string never reaches disk.
//! An internationalised host is stored in Unicode, as reports show it.

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("URL is not absolute http(s)")]
    NotHttp,
    #[error("URL could not be parsed")]
    Malformed,
    #[error("URL has no host")]
    NoHost,
}

/// A stripped URL and the parameters that survived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanUrl {
    /// Stored form: `https://host[:port]/path[?kept=params]`.
    pub url: String,
    /// Lower-case host, without port.
    pub host: String,
    pub path: String,
    /// Kept query parameters, decoded, in their original order.
    pub params: Vec<(String, String)>,
}

/// Parses `raw` and keeps only the query parameters for which `keep`
/// returns true.
pub fn strip_url(raw: &str, keep: impl Fn(&str) -> bool) -> Result<CleanUrl, UrlError> {
    let mut url = Url::parse(raw.trim()).map_err(|_| UrlError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::NotHttp);
    }
    let host = url.host_str().ok_or(UrlError::NoHost)?.to_ascii_lowercase();
    let params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if params.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(params.iter());
    }
    Ok(CleanUrl {
        path: url.path().to_string(),
        url: unicode_host(url.to_string(), &host),
        host,
        params,
    })
}

/// A host name as people read it: internationalised names (punycode,
/// `xn--`) in Unicode, everything else unchanged.
pub fn unicode_domain(ascii: &str) -> String {
    if !ascii.split('.').any(|label| label.starts_with("xn--")) {
        return ascii.to_string();
    }
    match idna::domain_to_unicode(ascii) {
        (unicode, Ok(())) => unicode,
        (_, Err(_)) => ascii.to_string(),
    }
}

/// The serialised URL with an internationalised host (punycode, `xn--`)
/// written in Unicode, as readers of reports know it. Matching uses the
/// ASCII `host` next to it.
fn unicode_host(url: String, ascii_host: &str) -> String {
    let unicode = unicode_domain(ascii_host);
    if unicode == ascii_host {
        return url;
    }
    // The host follows the scheme's "//" (credentials were removed above).
    match url.find("://") {
        Some(i) if url[i + 3..].starts_with(ascii_host) => {
            let start = i + 3;
            format!(
                "{}{}{}",
                &url[..start],
                unicode,
                &url[start + ascii_host.len()..]
            )
        }
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(k: &str) -> bool {
        k == "q" || k.starts_with("utm_")
    }

    #[test]
    fn query_stripped_except_allow_list_and_fragment_dropped() {
        let c = strip_url(
            "https://user:pw@Example.org/a/b?session=abc&q=impfung&email=x%40y.de&utm_source=nl#top",
            keep,
        )
        .unwrap();
        assert_eq!(c.url, "https://example.org/a/b?q=impfung&utm_source=nl");
        assert_eq!(c.host, "example.org");
        assert_eq!(c.params.len(), 2);
    }

    #[test]
    fn nothing_kept_means_no_question_mark() {
        let c = strip_url("http://example.org/x?a=1", keep).unwrap();
        assert_eq!(c.url, "http://example.org/x");
    }

    #[test]
    fn internationalised_hosts_are_stored_in_unicode() {
        for raw in [
            "https://bücher.example/a?q=x",
            "https://xn--bcher-kva.example/a?q=x",
        ] {
            let c = strip_url(raw, keep).unwrap();
            assert_eq!(c.url, "https://bücher.example/a?q=x");
            assert_eq!(c.host, "xn--bcher-kva.example", "matching uses ASCII");
        }
        let c = strip_url("http://XN--BCHER-KVA.example:8080/", keep).unwrap();
        assert_eq!(c.url, "http://bücher.example:8080/");
    }

    #[test]
    fn rejects_non_http() {
        assert_eq!(
            strip_url("javascript:alert(1)", keep),
            Err(UrlError::NotHttp)
        );
        assert_eq!(strip_url("not a url", keep), Err(UrlError::Malformed));
    }
}

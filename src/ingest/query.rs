//! Strict `application/x-www-form-urlencoded` decoding for tracking
//! queries. `form_urlencoded::parse` replaces bytes that are not UTF-8
//! after percent-decoding with U+FFFD, which would store a silently altered
//! URL or title; here such a parameter is refused instead, naming its key.

use super::hit::Reject;

/// The query's `(key, value)` pairs, percent- and `+`-decoded, in order.
pub fn strict_pairs(query: &str) -> Result<Vec<(String, String)>, Reject> {
    let mut out = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(k).map_err(|_| invalid("a parameter name"))?;
        let value = decode(v).map_err(|_| match known_name(&key) {
            Some(name) => invalid(&format!("parameter `{name}`")),
            None => invalid("a parameter value"),
        })?;
        out.push((key, value));
    }
    Ok(out)
}

/// The parameters the tracking protocols read: a reason may name one of
/// these, never a name the client made up (nothing the caller sent is
/// echoed back).
const KNOWN_NAMES: &[&str] = &[
    "site",
    "url",
    "ref",
    "title",
    "pv",
    "kind",
    "target",
    "search",
    "results",
    "engaged_ms",
    "plugins",
    "idsite",
    "rec",
    "urlref",
    "action_name",
    "search_count",
    "download",
    "link",
    "ping",
    "ca",
    "pv_id",
    "ua",
    "uadata",
];

fn known_name(key: &str) -> Option<&'static str> {
    KNOWN_NAMES.iter().copied().find(|n| *n == key)
}

fn decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    // Most names and many values need no decoding: copy them once instead
    // of building two intermediate buffers per parameter on every hit.
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Ok(s.to_owned());
    }
    let bytes: Vec<u8> = if s.contains('+') {
        percent_encoding::percent_decode_str(&s.replace('+', " ")).collect()
    } else {
        percent_encoding::percent_decode_str(s).collect()
    };
    String::from_utf8(bytes)
}

fn invalid(what: &str) -> Reject {
    Reject::Invalid {
        field: "query",
        why: format!("{what} is not valid UTF-8 after percent-decoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(
            strict_pairs("a=x+y%21&b&=c").unwrap(),
            vec![
                ("a".into(), "x y!".into()),
                ("b".into(), "".into()),
                ("".into(), "c".into())
            ]
        );
    }

    #[test]
    fn refuses_invalid_utf8_and_names_the_key() {
        let err = strict_pairs("site=demo&url=%FF%FE")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`url`") && err.contains("UTF-8"), "{err}");
        assert!(strict_pairs("url=%E0%A4%A").is_err());
        assert!(strict_pairs("%FF=1").is_err());
        // a name the protocols do not define is not repeated
        let err = strict_pairs("echomarker=%FF").unwrap_err().to_string();
        assert!(
            !err.contains("echomarker") && err.contains("UTF-8"),
            "{err}"
        );
    }
}

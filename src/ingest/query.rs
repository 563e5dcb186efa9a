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
        let value = decode(v).map_err(|_| invalid(&format!("parameter `{}`", safe_key(&key))))?;
        out.push((key, value));
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let plus_as_space = s.replace('+', " ");
    String::from_utf8(percent_encoding::percent_decode_str(&plus_as_space).collect())
}

/// Only short ASCII names are echoed back in a reason.
fn safe_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect()
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
    }
}

//! Site-search terms, taken from the configured URL parameters of a page
//! URL (after stripping, which always keeps them).

use super::referrer::truncate;

/// The first non-empty value of one of `search_params`, trimmed, with
/// whitespace runs folded, and cut to `max_len` bytes.
pub fn search_term(
    params: &[(String, String)],
    search_params: &[String],
    max_len: usize,
) -> Option<String> {
    search_params.iter().find_map(|p| {
        params.iter().find(|(k, _)| k == p).and_then(|(_, v)| {
            let folded = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (!folded.is_empty()).then(|| truncate(&folded, max_len))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_configured_parameter() {
        let params = vec![
            ("page".into(), "2".into()),
            ("q".into(), "  masern   impfung ".into()),
        ];
        let sp = vec!["query".to_string(), "q".to_string()];
        assert_eq!(
            search_term(&params, &sp, 100).as_deref(),
            Some("masern impfung")
        );
        assert_eq!(search_term(&[("q".into(), " ".into())], &sp, 100), None);
    }
}

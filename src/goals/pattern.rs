//! Path patterns of page goals and funnel steps: a path such as
//! `/pricing`, where `*` stands for any characters within one path
//! segment and `**` for any characters across segments (`/guide/*`
//! matches `/guide/intro` but not `/guide/a/b`; `/guide/**` matches both).
//! The pattern is matched against the whole path of the stored URL,
//! without query string.
//!
//! Compiled to a regular expression by the `regex-automata` crate already
//! used for device detection, so matching is linear in the path's length.

use regex_automata::meta::Regex;

/// A compiled path pattern.
#[derive(Clone, Debug)]
pub struct PathPattern {
    source: String,
    regex: Regex,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0:?} must start with \"/\" (a path such as \"/guide/*\")")]
    NotAPath(String),
    #[error("{0:?} is longer than 512 bytes")]
    TooLong(String),
    #[error("{0:?} has three or more `*` in a row; use `*` (one segment) or `**` (any)")]
    Stars(String),
}

impl PathPattern {
    pub fn parse(source: &str) -> Result<PathPattern, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError::NotAPath(source.to_owned()));
        }
        if source.len() > 512 {
            return Err(PatternError::TooLong(source.to_owned()));
        }
        if source.contains("***") {
            return Err(PatternError::Stars(source.to_owned()));
        }
        let mut expr = String::from("^");
        for (i, part) in source.split("**").enumerate() {
            if i > 0 {
                expr.push_str(".*");
            }
            for (j, literal) in part.split('*').enumerate() {
                if j > 0 {
                    expr.push_str("[^/]*");
                }
                expr.push_str(&regex_syntax::escape(literal));
            }
        }
        expr.push('$');
        let regex = Regex::new(&expr).map_err(|_| PatternError::TooLong(source.to_owned()))?;
        Ok(PathPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// True when `path` (no query string) matches the whole pattern.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_within_a_segment_double_stars_cross() {
        let p = PathPattern::parse("/guide/*").unwrap();
        assert!(p.matches("/guide/intro"));
        assert!(p.matches("/guide/"));
        assert!(!p.matches("/guide/a/b"));
        assert!(!p.matches("/guides/a"));
        let p = PathPattern::parse("/guide/**").unwrap();
        assert!(p.matches("/guide/a/b"));
        let p = PathPattern::parse("/pricing").unwrap();
        assert!(p.matches("/pricing"));
        assert!(!p.matches("/pricing/x"));
        let p = PathPattern::parse("/a.b+(c)").unwrap();
        assert!(p.matches("/a.b+(c)"));
        assert!(!p.matches("/aXb+(c)"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(matches!(
            PathPattern::parse("guide"),
            Err(PatternError::NotAPath(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a/***"),
            Err(PatternError::Stars(_))
        ));
    }
}

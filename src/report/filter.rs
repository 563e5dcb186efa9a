//! Report filters: `dimension==value` (equals), `dimension=~text`
//! (contains, case-insensitive) and `dimension!=value` (not equal).
//! Several filters combine with AND. They are evaluated against raw events,
//! because roll-ups cannot be sliced by a second dimension.

use std::fmt;
use std::str::FromStr;

use crate::store::Dimension;

/// How a filter compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Contains,
    Not,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Contains => "=~",
            Op::Not => "!=",
        }
    }
}

/// One parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub dim: Dimension,
    pub op: Op,
    pub value: String,
    lower: String,
}

/// Why a filter could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "a filter is malformed; write `filter=DIMENSION==VALUE` (equals), \
         `filter=DIMENSION=~TEXT` (contains) or `filter=DIMENSION!=VALUE` (not equal), \
         URL-encoded, e.g. filter=page%3D%3Dhttps%3A%2F%2Fexample.org%2F"
    )]
    Syntax,
    #[error("a filter names an unknown dimension; valid dimensions: {0}")]
    UnknownDimension(String),
    #[error("at most {0} filters may be combined")]
    TooMany(usize),
}

/// Most filters in one request.
pub const MAX_FILTERS: usize = 10;

/// Comma-separated names of every dimension, for error messages.
pub fn dimension_names() -> String {
    Dimension::ALL
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Filter {
    pub fn new(dim: Dimension, op: Op, value: impl Into<String>) -> Filter {
        let value = value.into();
        let lower = value.to_lowercase();
        Filter {
            dim,
            op,
            value,
            lower,
        }
    }

    /// True when the event's values of this dimension (usually one, none
    /// when empty, several for plugins) satisfy the filter.
    pub fn matches<S: AsRef<str>>(&self, values: &[S]) -> bool {
        match self.op {
            Op::Eq => values.iter().any(|v| v.as_ref() == self.value),
            Op::Not => !values.iter().any(|v| v.as_ref() == self.value),
            Op::Contains => values
                .iter()
                .any(|v| v.as_ref().to_lowercase().contains(&self.lower)),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.dim, self.op.as_str(), self.value)
    }
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        let shown = || FilterError::Syntax;
        let name_end = s
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .ok_or_else(shown)?;
        let (name, rest) = s.split_at(name_end);
        if name.is_empty() {
            return Err(shown());
        }
        let op = match rest.get(..2) {
            Some("==") => Op::Eq,
            Some("=~") => Op::Contains,
            Some("!=") => Op::Not,
            _ => return Err(shown()),
        };
        let value = &rest[2..];
        if value.is_empty() && op == Op::Contains {
            return Err(shown());
        }
        let dim = name
            .parse::<Dimension>()
            .map_err(|_| FilterError::UnknownDimension(dimension_names()))?;
        Ok(Filter::new(dim, op, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_operators() {
        let f: Filter = "page==https://a/x?q=1".parse().unwrap();
        assert_eq!(
            (f.dim, f.op, f.value.as_str()),
            (Dimension::Page, Op::Eq, "https://a/x?q=1")
        );
        let f: Filter = "browser=~FIRE".parse().unwrap();
        assert!(f.matches(&["Firefox"]));
        assert!(!f.matches(&["Chrome"]));
        let f: Filter = "device_type!=bot".parse().unwrap();
        assert!(f.matches(&["desktop"]));
        assert!(f.matches::<&str>(&[]));
        assert!(!f.matches(&["bot"]));
        assert_eq!(f.to_string(), "device_type!=bot");
    }

    #[test]
    fn explains_bad_filters() {
        assert!(matches!("page".parse::<Filter>(), Err(FilterError::Syntax)));
        assert!(matches!(
            "page=x".parse::<Filter>(),
            Err(FilterError::Syntax)
        ));
        assert!(matches!("==x".parse::<Filter>(), Err(FilterError::Syntax)));
        let e = "pgae==x".parse::<Filter>().unwrap_err();
        assert!(e.to_string().contains("entry_page"), "{e}");
    }
}

//! What an incoming custom event keeps: its name must be declared for the
//! site, each property key must be declared for the event, values are
//! scrubbed like URLs (e-mail addresses and id-like tokens replaced by
//! `:email` / `:id`), cut to the declared `max_len` and, where the
//! declaration lists values, must be one of them. An undeclared event is
//! refused as a whole; an undeclared property or a value outside its list
//! is dropped from the event. Both are counted in
//! `sparsam_custom_refused_total` by reason, never logged with their text.

use super::config::EventDecl;
use crate::privacy::scrub_identifiers;

/// A custom event as a protocol described it: raw strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawCustomEvent {
    pub name: String,
    pub props: Vec<(String, String)>,
    /// Revenue in hundredths of the site's currency, when given.
    pub revenue_cents: Option<i64>,
}

/// A custom event as stored: a declared name, declared properties (sorted
/// by key, one value each), revenue in hundredths (0 = none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomEvent {
    pub name: String,
    pub props: Vec<(String, String)>,
    pub revenue_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("the event name is not declared for this site")]
    Undeclared,
}

/// Counts a refusal by reason (never with the refused text).
pub fn count_refused(reason: &'static str) {
    metrics::counter!("sparsam_custom_refused_total", "reason" => reason).increment(1);
}

/// Keeps what the site declared of `raw`.
pub fn accept(decls: &[EventDecl], raw: &RawCustomEvent) -> Result<CustomEvent, AcceptError> {
    let Some(decl) = decls.iter().find(|d| d.name == raw.name) else {
        count_refused("undeclared_event");
        return Err(AcceptError::Undeclared);
    };
    let mut props: Vec<(String, String)> = Vec::new();
    for (key, value) in &raw.props {
        let Some(prop) = decl.props.get(key) else {
            count_refused("undeclared_prop");
            continue;
        };
        let scrubbed = scrub_identifiers(value.trim());
        let cut: String = scrubbed.chars().take(prop.max_len).collect();
        if cut.is_empty() {
            continue;
        }
        if prop.values.as_ref().is_some_and(|vs| !vs.contains(&cut)) {
            count_refused("value_not_listed");
            continue;
        }
        if props.iter().any(|(k, _)| k == key) {
            // one value per key: the first one sent
            continue;
        }
        props.push((key.clone(), cut));
    }
    props.sort();
    Ok(CustomEvent {
        name: decl.name.clone(),
        props,
        revenue_cents: raw.revenue_cents.unwrap_or(0),
    })
}

/// Revenue as a client sent it (`"9.90"`, `9.9`) → hundredths, refusing
/// what is not a finite amount from -1e12 to 1e12.
pub fn parse_revenue(text: &str) -> Option<i64> {
    let amount: f64 = text.trim().parse().ok()?;
    (amount.is_finite() && amount.abs() <= 1e12).then(|| (amount * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goals::config::PropDecl;
    use std::collections::BTreeMap;

    fn decls() -> Vec<EventDecl> {
        let mut props = BTreeMap::new();
        props.insert(
            "plan".to_string(),
            PropDecl {
                max_len: 16,
                values: Some(vec!["free".into(), "pro".into()]),
            },
        );
        props.insert(
            "note".to_string(),
            PropDecl {
                max_len: 12,
                values: None,
            },
        );
        vec![EventDecl {
            name: "signup".into(),
            props,
        }]
    }

    fn raw(name: &str, props: &[(&str, &str)]) -> RawCustomEvent {
        RawCustomEvent {
            name: name.into(),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            revenue_cents: None,
        }
    }

    #[test]
    fn undeclared_events_are_refused_and_props_filtered() {
        assert_eq!(
            accept(&decls(), &raw("Signup", &[])),
            Err(AcceptError::Undeclared)
        );
        let e = accept(
            &decls(),
            &raw(
                "signup",
                &[
                    ("plan", "enterprise"),
                    ("secret", "x"),
                    ("note", "mail alice@example.org now"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            e.props,
            vec![("note".to_string(), "mail :email ".to_string())]
        );
        let e = accept(&decls(), &raw("signup", &[("plan", "pro")])).unwrap();
        assert_eq!(e.props, vec![("plan".to_string(), "pro".to_string())]);
    }

    #[test]
    fn revenue_is_parsed_to_hundredths() {
        assert_eq!(parse_revenue("9.90"), Some(990));
        assert_eq!(parse_revenue(" 12 "), Some(1200));
        assert_eq!(parse_revenue("NaN"), None);
        assert_eq!(parse_revenue("1e300"), None);
        assert_eq!(parse_revenue("abc"), None);
    }
}

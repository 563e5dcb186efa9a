//! The per-site declarations in the configuration file:
//!
//! ```toml
//! [[sites.events]]
//! name = "signup"
//! props = { plan = { max_len = 16, values = ["free", "pro"] } }
//!
//! [[sites.goals]]
//! name = "Signed up"
//! event = "signup"          # an event goal (optional `props` to match,
//! matomo_id = 1             #  optional Matomo goal id), or ...
//! [[sites.goals]]
//! name = "Read the guide"
//! path = "/guide/*"         # ... a page goal
//!
//! [[sites.funnels]]
//! name = "Sign-up flow"
//! steps = ["path:/pricing", "path:/signup", "event:signup"]
//! ```
//!
//! [`validate`] checks them when the file is loaded; every problem names
//! its key (`sites[0].funnels[1].steps[2]`), like the rest of the
//! configuration.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::pattern::PathPattern;
use super::{Condition, Funnel, Goal};

/// Most steps in one funnel.
pub const MAX_FUNNEL_STEPS: usize = 8;
/// Most declared events per site.
pub const MAX_EVENTS: usize = 100;
/// Most properties per event.
pub const MAX_PROPS: usize = 16;
/// Longest event name, property key, goal or funnel name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Largest `max_len` a property may declare, in characters.
pub const MAX_PROP_LEN: usize = 256;
/// Most values in a property's closed list.
pub const MAX_VALUES: usize = 100;

/// `[[sites.events]]`: one custom event a site may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDecl {
    pub name: String,
    /// Property keys allowed with the event.
    #[serde(default)]
    pub props: BTreeMap<String, PropDecl>,
}

/// One declared property of an event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropDecl {
    /// Longer values are cut to this many characters.
    pub max_len: usize,
    /// When set, only these values are stored.
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// `[[sites.goals]]`: a page goal (`path`) or an event goal (`event`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalDecl {
    pub name: String,
    #[serde(default)]
    pub event: Option<String>,
    /// Property values the event must carry (event goals only).
    #[serde(default)]
    pub props: BTreeMap<String, String>,
    #[serde(default)]
    pub path: Option<String>,
    /// The Matomo goal id (`idgoal`) that records this goal (event goals
    /// only): Matomo's `trackGoal(id, revenue)` stores the goal's event.
    #[serde(default)]
    pub matomo_id: Option<u32>,
}

/// `[[sites.funnels]]`: ordered steps within one visit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelDecl {
    pub name: String,
    /// `"path:/pattern"` or `"event:name"`.
    pub steps: Vec<String>,
}

impl GoalDecl {
    /// The goal's condition (the declaration is validated at load).
    pub fn condition(&self) -> Result<Condition, String> {
        match (&self.event, &self.path) {
            (Some(name), None) => Ok(Condition::Event {
                name: name.clone(),
                props: self
                    .props
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }),
            (None, Some(path)) => PathPattern::parse(path)
                .map(Condition::Page)
                .map_err(|e| e.to_string()),
            _ => Err("set exactly one of `event` (an event goal) or `path` (a page goal)".into()),
        }
    }
}

/// A funnel step's condition from its `path:` or `event:` form.
pub fn step_condition(step: &str) -> Result<Condition, String> {
    if let Some(path) = step.strip_prefix("path:") {
        PathPattern::parse(path.trim())
            .map(Condition::Page)
            .map_err(|e| e.to_string())
    } else if let Some(name) = step.strip_prefix("event:") {
        Ok(Condition::Event {
            name: name.trim().to_owned(),
            props: Vec::new(),
        })
    } else {
        Err(format!(
            "{step:?} must be \"path:/pattern\" or \"event:name\""
        ))
    }
}

/// The site's goals, ready to count.
pub fn goals(decls: &[GoalDecl]) -> Vec<Goal> {
    decls
        .iter()
        .filter_map(|g| {
            g.condition().ok().map(|condition| Goal {
                name: g.name.clone(),
                condition,
            })
        })
        .collect()
}

/// The site's funnel `name`, ready to count.
pub fn funnel(decls: &[FunnelDecl], name: &str) -> Option<Funnel> {
    let f = decls.iter().find(|f| f.name == name)?;
    Some(Funnel {
        name: f.name.clone(),
        steps: f
            .steps
            .iter()
            .filter_map(|s| step_condition(s).ok().map(|c| (s.clone(), c)))
            .collect(),
    })
}

fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() || name.trim() != name {
        Some("must be non-empty, without leading or trailing spaces".into())
    } else if name.len() > MAX_NAME_BYTES {
        Some(format!("must be at most {MAX_NAME_BYTES} bytes"))
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// Checks one site's declarations; `Err((key, problem))`, the key below
/// `prefix` (e.g. `sites[0]`).
pub fn validate(
    prefix: &str,
    events: &[EventDecl],
    goals: &[GoalDecl],
    funnels: &[FunnelDecl],
) -> Result<(), (String, String)> {
    let fail = |key: String, problem: String| Err((format!("{prefix}.{key}"), problem));
    if events.len() > MAX_EVENTS {
        return fail(
            "events".into(),
            format!("at most {MAX_EVENTS} events per site"),
        );
    }
    let mut names = HashSet::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(p) = name_problem(&e.name) {
            return fail(format!("events[{i}].name"), p);
        }
        if !names.insert(e.name.as_str()) {
            return fail(
                format!("events[{i}].name"),
                format!("{:?} is declared twice", e.name),
            );
        }
        if e.props.len() > MAX_PROPS {
            return fail(
                format!("events[{i}].props"),
                format!("at most {MAX_PROPS} properties per event"),
            );
        }
        for (key, prop) in &e.props {
            let at = format!("events[{i}].props.{key}");
            if key.is_empty()
                || key.len() > MAX_NAME_BYTES
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return fail(
                    at,
                    format!("a property key is 1-{MAX_NAME_BYTES} letters, digits, '_' or '-'"),
                );
            }
            if prop.max_len == 0 || prop.max_len > MAX_PROP_LEN {
                return fail(
                    format!("{at}.max_len"),
                    format!("must be 1 to {MAX_PROP_LEN} characters"),
                );
            }
            if let Some(values) = &prop.values {
                if values.is_empty() || values.len() > MAX_VALUES {
                    return fail(
                        format!("{at}.values"),
                        format!("list 1 to {MAX_VALUES} values, or leave the key out"),
                    );
                }
                for (j, v) in values.iter().enumerate() {
                    if v.is_empty() || v.chars().count() > prop.max_len {
                        return fail(
                            format!("{at}.values[{j}]"),
                            format!("must be 1 to max_len ({}) characters", prop.max_len),
                        );
                    }
                }
            }
        }
    }
    let declared = |name: &str| events.iter().find(|e| e.name == name);
    let mut goal_names = HashSet::new();
    let mut matomo_ids = HashSet::new();
    for (i, g) in goals.iter().enumerate() {
        if let Some(p) = name_problem(&g.name) {
            return fail(format!("goals[{i}].name"), p);
        }
        if !goal_names.insert(g.name.as_str()) {
            return fail(
                format!("goals[{i}].name"),
                format!("{:?} is used by another goal", g.name),
            );
        }
        match (&g.event, &g.path) {
            (Some(name), None) => {
                let Some(decl) = declared(name) else {
                    return fail(
                        format!("goals[{i}].event"),
                        format!("{name:?} is not a declared event (add it under [[sites.events]])"),
                    );
                };
                for (key, value) in &g.props {
                    let Some(prop) = decl.props.get(key) else {
                        return fail(
                            format!("goals[{i}].props.{key}"),
                            format!("is not a declared property of event {name:?}"),
                        );
                    };
                    if prop.values.as_ref().is_some_and(|vs| !vs.contains(value)) {
                        return fail(
                            format!("goals[{i}].props.{key}"),
                            format!("{value:?} is not one of the property's declared values"),
                        );
                    }
                }
            }
            (None, Some(path)) => {
                if let Err(e) = PathPattern::parse(path) {
                    return fail(format!("goals[{i}].path"), e.to_string());
                }
                if !g.props.is_empty() {
                    return fail(
                        format!("goals[{i}].props"),
                        "applies to event goals only".into(),
                    );
                }
                if g.matomo_id.is_some() {
                    return fail(
                        format!("goals[{i}].matomo_id"),
                        "applies to event goals only (a Matomo goal conversion stores the goal's event)".into(),
                    );
                }
            }
            _ => {
                return fail(
                    format!("goals[{i}]"),
                    "set exactly one of `event` (an event goal) or `path` (a page goal)".into(),
                )
            }
        }
        if let Some(id) = g.matomo_id {
            if id == 0 || !matomo_ids.insert(id) {
                return fail(
                    format!("goals[{i}].matomo_id"),
                    format!("{id} must be above 0 and used by one goal only"),
                );
            }
        }
    }
    let mut funnel_names = HashSet::new();
    for (i, f) in funnels.iter().enumerate() {
        if let Some(p) = name_problem(&f.name) {
            return fail(format!("funnels[{i}].name"), p);
        }
        if !funnel_names.insert(f.name.as_str()) {
            return fail(
                format!("funnels[{i}].name"),
                format!("{:?} is used by another funnel", f.name),
            );
        }
        if f.steps.len() < 2 || f.steps.len() > MAX_FUNNEL_STEPS {
            return fail(
                format!("funnels[{i}].steps"),
                format!("list 2 to {MAX_FUNNEL_STEPS} steps"),
            );
        }
        for (j, step) in f.steps.iter().enumerate() {
            let at = format!("funnels[{i}].steps[{j}]");
            match step_condition(step) {
                Err(problem) => return fail(at, problem),
                Ok(Condition::Event { name, .. }) if declared(&name).is_none() => {
                    return fail(
                        at,
                        format!("{name:?} is not a declared event (add it under [[sites.events]])"),
                    )
                }
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

//! Evaluates the uap-core dataset (`regexes.yaml` of the ua-parser
//! project): the first rule whose regex matches a user agent names its
//! browser, OS or device, with `$1`-style templates filled from the match.
//!
//! Why not the `ua-parser` crate's extractor (which ships the dataset and
//! whose semantics this follows rule for rule): it compiles every pattern
//! as a Unicode-aware regex, about 0.5 s of CPU at each start, which is
//! most of the collector's start-up. User agents are ASCII in practice and
//! the patterns are written for ASCII, so here they are compiled as byte
//! regexes without Unicode classes (case-insensitive rules fold ASCII
//! only), after the same rewrite the crate applies (`\d` to `[0-9]`, large
//! bounded repetitions to unbounded ones), and without building a full DFA
//! per rule (the lazy DFA serves these short matches). That compiles about
//! ten times faster, on two threads, and the device corpora in the test
//! suite check that the answers stay the same.

use regex_automata::meta::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Input, PatternID};
use serde::Deserialize;

/// Errors loading the dataset.
#[derive(Debug, thiserror::Error)]
pub enum UapError {
    #[error("uap-core dataset is malformed: {0}")]
    Dataset(#[from] serde_json::Error),
    #[error("uap-core rule {index} of {section}: {why}")]
    Rule {
        section: &'static str,
        index: usize,
        why: String,
    },
}

#[derive(Deserialize)]
struct Dataset {
    user_agent_parsers: Vec<UaSpec>,
    os_parsers: Vec<OsSpec>,
    device_parsers: Vec<DeviceSpec>,
}

#[derive(Deserialize)]
struct UaSpec {
    regex: String,
    family_replacement: Option<String>,
    v1_replacement: Option<String>,
    v2_replacement: Option<String>,
    v3_replacement: Option<String>,
}

#[derive(Deserialize)]
struct OsSpec {
    regex: String,
    os_replacement: Option<String>,
    os_v1_replacement: Option<String>,
    os_v2_replacement: Option<String>,
    os_v3_replacement: Option<String>,
    os_v4_replacement: Option<String>,
}

#[derive(Deserialize)]
struct DeviceSpec {
    regex: String,
    regex_flag: Option<String>,
    device_replacement: Option<String>,
    brand_replacement: Option<String>,
    model_replacement: Option<String>,
}

/// A browser match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UaMatch {
    pub family: String,
    pub major: Option<String>,
    pub minor: Option<String>,
    pub patch: Option<String>,
}

/// An OS match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsMatch {
    pub os: String,
    pub major: Option<String>,
    pub minor: Option<String>,
    pub patch: Option<String>,
    pub patch_minor: Option<String>,
}

/// A device match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceMatch {
    pub device: String,
    pub brand: Option<String>,
    pub model: Option<String>,
}

/// How one output field is made from a match.
#[derive(Debug)]
enum Field {
    /// Nothing (the field is unknown).
    None,
    /// A fixed replacement.
    Fixed(String),
    /// A capture group (empty captures count as absent).
    Group(usize),
    /// A template with `$n` references, trimmed; empty counts as absent.
    Template(String),
    /// The browser family's restricted template: only `$1` is replaced.
    FamilyTemplate(String),
}

/// A match: the haystack and the capture spans.
struct Found<'h> {
    hay: &'h [u8],
    caps: Captures,
}

fn group<'h>(c: &Found<'h>, i: usize) -> Option<&'h [u8]> {
    c.caps
        .get_group(i)
        .map(|s| &c.hay[s.range()])
        .filter(|b| !b.is_empty())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn has_substitution(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

impl Field {
    /// Replacement if given (and not blank), else group `idx` if the regex
    /// has it, else nothing. Templates when the replacement has `$n`.
    fn new(repl: Option<String>, groups: usize, idx: usize) -> Field {
        match repl.filter(|s| !s.trim().is_empty()) {
            Some(s) if has_substitution(&s) => Field::Template(s),
            Some(s) => Field::Fixed(s),
            None if groups >= idx => Field::Group(idx),
            None => Field::None,
        }
    }

    /// Like [`Field::new`] for group 1, but always a value (empty if none):
    /// the OS name and the device name.
    fn required(repl: Option<String>, groups: usize) -> Field {
        match Field::new(repl, groups, 1) {
            Field::None => Field::Fixed(String::new()),
            f => f,
        }
    }

    /// Replacement used as is if not empty, else group `idx` if present.
    fn fallback(repl: Option<String>, groups: usize, idx: usize) -> Field {
        match repl.filter(|s| !s.is_empty()) {
            Some(s) => Field::Fixed(s),
            None if groups >= idx => Field::Group(idx),
            None => Field::None,
        }
    }

    fn family(repl: Option<String>, groups: usize) -> Result<Field, String> {
        match repl {
            Some(s) if s.contains("$1") => {
                if groups < 1 {
                    Err("family_replacement uses $1 but the regex has no group".into())
                } else {
                    Ok(Field::FamilyTemplate(s))
                }
            }
            Some(s) if !s.is_empty() => Ok(Field::Fixed(s)),
            _ if groups >= 1 => Ok(Field::Group(1)),
            _ => Ok(Field::Fixed(String::new())),
        }
    }

    fn resolve(&self, c: &Found<'_>) -> Option<String> {
        match self {
            Field::None => None,
            Field::Fixed(s) => Some(s.clone()),
            Field::Group(i) => group(c, *i).map(text),
            Field::Template(t) => {
                let mut out = Vec::new();
                c.caps.interpolate_bytes_into(c.hay, t.as_bytes(), &mut out);
                let s = text(&out);
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_owned())
            }
            Field::FamilyTemplate(t) => {
                Some(t.replace("$1", &group(c, 1).map(text).unwrap_or_default()))
            }
        }
    }
}

struct Rule<const N: usize> {
    re: Regex,
    fields: [Field; N],
}

/// The compiled dataset.
pub struct Uap {
    ua: Vec<Rule<4>>,
    os: Vec<Rule<5>>,
    device: Vec<Rule<3>>,
}

/// The rewrite `ua-parser` applies before compiling: `\d`, `\D`, `\w`, `\W`
/// to ASCII classes, and bounded repetitions `{0,n}` / `{1,n}` with three
/// or more digits to `*` / `+` (smaller automata, same intent).
fn rewrite(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 16);
    let bytes = re.as_bytes();
    let mut i = 0;
    let mut in_class = 0i32;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() {
            let rep = match bytes[i + 1] {
                b'd' => Some(if in_class > 0 { "0-9" } else { "[0-9]" }),
                b'D' => Some("[^0-9]"),
                b'w' => Some(if in_class > 0 {
                    "A-Za-z0-9_"
                } else {
                    "[A-Za-z0-9_]"
                }),
                b'W' => Some("[^A-Za-z0-9_]"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => out.push_str(&re[i..i + 2]),
            }
            i += 2;
            continue;
        }
        match c {
            b'[' => in_class += 1,
            b']' => in_class -= 1,
            b'{' if in_class == 0 => {
                // {0,nnn} or {1,nnn} with nnn of three or more digits
                let rest = &re[i..];
                if let Some(end) = rest.find('}') {
                    let inner = &rest[1..end];
                    if let Some((lo, hi)) = inner.split_once(',') {
                        if (lo == "0" || lo == "1")
                            && hi.len() > 2
                            && hi.bytes().all(|b| b.is_ascii_digit())
                        {
                            out.push(if lo == "0" { '*' } else { '+' });
                            i += end + 1;
                            continue;
                        }
                    }
                }
            }
            _ => {}
        }
        // copy one UTF-8 character
        let len = re[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&re[i..i + len]);
        i += len;
    }
    out
}

fn compile(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    Regex::builder()
        .configure(Regex::config().dfa(false))
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .case_insensitive(case_insensitive),
        )
        .build(&rewrite(pattern))
        .map_err(|e| e.to_string())
}

fn groups(re: &Regex) -> usize {
    re.group_info().group_len(PatternID::ZERO).saturating_sub(1)
}

/// The error of rule `index` of `section`.
fn rule_err(section: &'static str, index: usize) -> impl Fn(String) -> UapError {
    move |why| UapError::Rule {
        section,
        index,
        why,
    }
}

/// The patch-minor version (`v4`) of browsers is not used, so it is not
/// compiled.
fn compile_ua(i: usize, s: UaSpec) -> Result<Rule<4>, UapError> {
    let err = rule_err("user_agent_parsers", i);
    let re = compile(&s.regex, false).map_err(&err)?;
    let g = groups(&re);
    Ok(Rule {
        fields: [
            Field::family(s.family_replacement, g).map_err(&err)?,
            Field::fallback(s.v1_replacement, g, 2),
            Field::fallback(s.v2_replacement, g, 3),
            Field::fallback(s.v3_replacement, g, 4),
        ],
        re,
    })
}

fn compile_os(i: usize, s: OsSpec) -> Result<Rule<5>, UapError> {
    let re = compile(&s.regex, false).map_err(rule_err("os_parsers", i))?;
    let g = groups(&re);
    Ok(Rule {
        fields: [
            Field::required(s.os_replacement, g),
            Field::new(s.os_v1_replacement, g, 2),
            Field::new(s.os_v2_replacement, g, 3),
            Field::new(s.os_v3_replacement, g, 4),
            Field::new(s.os_v4_replacement, g, 5),
        ],
        re,
    })
}

fn compile_device(i: usize, s: DeviceSpec) -> Result<Rule<3>, UapError> {
    let re = compile(&s.regex, s.regex_flag.as_deref() == Some("i"))
        .map_err(rule_err("device_parsers", i))?;
    let g = groups(&re);
    Ok(Rule {
        fields: [
            Field::required(s.device_replacement, g),
            // the brand never falls back to a group
            Field::new(s.brand_replacement, 0, 999),
            Field::new(s.model_replacement, g, 1),
        ],
        re,
    })
}

/// Compiles `specs` with `f`, split over two threads.
fn compile_all<S: Send, R: Send>(
    specs: Vec<S>,
    f: fn(usize, S) -> Result<R, UapError>,
) -> Result<Vec<R>, UapError> {
    let mut specs: Vec<(usize, S)> = specs.into_iter().enumerate().collect();
    let second = specs.split_off(specs.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let h = scope.spawn(move || {
            second
                .into_iter()
                .map(|(i, s)| f(i, s))
                .collect::<Result<Vec<R>, UapError>>()
        });
        let a = specs
            .into_iter()
            .map(|(i, s)| f(i, s))
            .collect::<Result<Vec<R>, UapError>>();
        (a, h.join())
    });
    let mut a = a?;
    match b {
        Ok(b) => a.extend(b?),
        Err(_) => {
            return Err(UapError::Rule {
                section: "all",
                index: 0,
                why: "compiler thread panicked".into(),
            })
        }
    }
    Ok(a)
}

fn first<'r, 'h, const N: usize>(
    rules: &'r [Rule<N>],
    ua: &'h [u8],
) -> Option<(&'r Rule<N>, Found<'h>)> {
    rules.iter().find_map(|r| {
        if !r.re.is_match(Input::new(ua)) {
            return None;
        }
        let mut caps = r.re.create_captures();
        r.re.captures(Input::new(ua), &mut caps);
        caps.is_match().then_some((r, Found { hay: ua, caps }))
    })
}

impl Uap {
    /// Compiles the dataset from its JSON form (see `build.rs`).
    pub fn from_json(json: &str) -> Result<Uap, UapError> {
        let d: Dataset = serde_json::from_str(json)?;
        Ok(Uap {
            ua: compile_all(d.user_agent_parsers, compile_ua)?,
            os: compile_all(d.os_parsers, compile_os)?,
            device: compile_all(d.device_parsers, compile_device)?,
        })
    }

    /// The browser of the first matching rule.
    pub fn browser(&self, ua: &str) -> Option<UaMatch> {
        let (r, c) = first(&self.ua, ua.as_bytes())?;
        let [f, a, b, p] = &r.fields;
        Some(UaMatch {
            family: f.resolve(&c).unwrap_or_default(),
            major: a.resolve(&c),
            minor: b.resolve(&c),
            patch: p.resolve(&c),
        })
    }

    /// The OS of the first matching rule.
    pub fn os(&self, ua: &str) -> Option<OsMatch> {
        let (r, c) = first(&self.os, ua.as_bytes())?;
        let [o, a, b, p, q] = &r.fields;
        Some(OsMatch {
            os: o.resolve(&c).unwrap_or_default(),
            major: a.resolve(&c),
            minor: b.resolve(&c),
            patch: p.resolve(&c),
            patch_minor: q.resolve(&c),
        })
    }

    /// The device of the first matching rule.
    pub fn device(&self, ua: &str) -> Option<DeviceMatch> {
        let (r, c) = first(&self.device, ua.as_bytes())?;
        let [d, b, m] = &r.fields;
        Some(DeviceMatch {
            device: d.resolve(&c).unwrap_or_default(),
            brand: b.resolve(&c),
            model: m.resolve(&c),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_like_the_reference_parser() {
        assert_eq!(rewrite(r"Foo/(\d+)"), "Foo/([0-9]+)");
        assert_eq!(rewrite(r"[\d\.]+"), "[0-9\\.]+");
        assert_eq!(rewrite(r"a[^;]{0,200}b.{1,300}"), "a[^;]*b.+");
        assert_eq!(rewrite(r"x{0,20}"), "x{0,20}");
        assert_eq!(rewrite(r"[{0,300}]"), "[{0,300}]");
        assert_eq!(rewrite(r"\w\W\D"), "[A-Za-z0-9_][^A-Za-z0-9_][^0-9]");
        assert_eq!(rewrite("ü{0,999}"), "ü*");
    }

    #[test]
    fn templates_groups_and_replacements() {
        let json = r#"{
            "user_agent_parsers": [
                {"regex": "(Foo)Browser/(\\d+)\\.(\\d+)", "family_replacement": "$1 Browser"},
                {"regex": "(Baz)/(\\d+)", "family_replacement": "Bar"},
                {"regex": "Qux/(\\d+)"}
            ],
            "os_parsers": [
                {"regex": "Android (\\d+)", "os_replacement": "Android", "os_v1_replacement": "$1"}
            ],
            "device_parsers": [
                {"regex": "; (pixel) (\\d+)\\)", "regex_flag": "i",
                 "device_replacement": "$1 $2", "brand_replacement": "Google", "model_replacement": "$1 $2"}
            ]
        }"#;
        let u = Uap::from_json(json).unwrap();
        let b = u.browser("FooBrowser/12.3").unwrap();
        assert_eq!(b.family, "Foo Browser");
        assert_eq!(
            (b.major.as_deref(), b.minor.as_deref()),
            (Some("12"), Some("3"))
        );
        assert_eq!(b.patch, None);
        let b = u.browser("Baz/7").unwrap();
        assert_eq!((b.family.as_str(), b.major.as_deref()), ("Bar", Some("7")));
        // versions come from group 2 on: one group is the family
        let b = u.browser("Qux/7").unwrap();
        assert_eq!((b.family.as_str(), b.major.as_deref()), ("7", None));
        assert!(u.browser("nothing").is_none());
        let o = u.os("Linux; Android 14; X").unwrap();
        assert_eq!((o.os.as_str(), o.major.as_deref()), ("Android", Some("14")));
        let d = u.device("(Linux; PIXEL 8)").unwrap();
        assert_eq!(d.device, "PIXEL 8");
        assert_eq!(d.brand.as_deref(), Some("Google"));
        assert_eq!(d.model.as_deref(), Some("PIXEL 8"));
    }

    #[test]
    fn broken_rules_name_their_place() {
        let json = r#"{"user_agent_parsers": [{"regex": "(unclosed"}],
                       "os_parsers": [], "device_parsers": []}"#;
        let e = Uap::from_json(json).err().unwrap().to_string();
        assert!(
            e.contains("user_agent_parsers") && e.contains("rule 0"),
            "{e}"
        );
    }
}

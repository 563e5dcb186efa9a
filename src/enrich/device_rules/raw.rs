//! DeviceDetector's rule files as plain data, read from their YAML or from
//! the compact form that `build.rs` makes of the vendored copy.
//!
//! Why: parsing the 1.7 MB of YAML took about a third of a second at every
//! start, and the literal prefilter's extraction (a `regex-syntax` parse of
//! every rule) as much again. The build script runs this module over the
//! vendored files once (it includes this file with `#[path]`, so both read
//! the files the same way), extracts every rule's literals, and writes all
//! of it as length-prefixed strings that [`decode`] reads back in a few
//! milliseconds. A newer copy of the rules from a directory (`[device]
//! rules_dir`) still goes through the YAML path, literals extracted when a
//! list is first built.
//!
//! This module depends on `serde_yaml`, `regex-syntax` and `std` only (the
//! build script has no access to the rest of the crate).

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use serde_yaml::Value;

/// The rule files, in the order the compact form stores them, with what
/// each holds.
pub const FILE_KINDS: &[(&str, Kind)] = &[
    ("bots.yml", Kind::Named),
    ("oss.yml", Kind::Named),
    ("vendorfragments.yml", Kind::Fragments),
    ("client/browser_engine.yml", Kind::Named),
    ("client/browsers.yml", Kind::Named),
    ("client/feed_readers.yml", Kind::Named),
    ("client/libraries.yml", Kind::Named),
    ("client/mediaplayers.yml", Kind::Named),
    ("client/mobile_apps.yml", Kind::Named),
    ("client/pim.yml", Kind::Named),
    ("client/hints/apps.yml", Kind::Map),
    ("client/hints/browsers.yml", Kind::Map),
    ("device/cameras.yml", Kind::Devices),
    ("device/car_browsers.yml", Kind::Devices),
    ("device/consoles.yml", Kind::Devices),
    ("device/mobiles.yml", Kind::Devices),
    ("device/notebooks.yml", Kind::Devices),
    ("device/portable_media_player.yml", Kind::Devices),
    ("device/shell_tv.yml", Kind::Devices),
    ("device/televisions.yml", Kind::Devices),
];

/// The shape of a rule file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A list of rules with name and version templates (bots, OS, clients).
    Named,
    /// A mapping of brand to regex and model rules (device files).
    Devices,
    /// A mapping of brand to fragments (`vendorfragments.yml`).
    Fragments,
    /// A mapping of name to name (client-hint files).
    Map,
}

/// Literals one of which every match of a rule starts with (`true`) or
/// ends with (`false`), lower-case; `None` when the rule has no usable set
/// (it is then tried for every user agent).
pub type Literals = Option<(bool, Vec<String>)>;

/// One regex with its literals: `None` until extracted (the YAML path
/// extracts when its list is first built), `Some` from the compact form.
#[derive(Debug, Clone, Default)]
pub struct RawRegex {
    pub regex: String,
    pub literals: Option<Literals>,
}

/// An OS rule's version sub-rule.
#[derive(Debug, Clone, Default)]
pub struct RawSub {
    pub re: RawRegex,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// A bot, OS or client rule.
#[derive(Debug, Clone, Default)]
pub struct RawNamed {
    pub re: RawRegex,
    pub name: String,
    pub version: String,
    pub engine_default: String,
    pub engine_versions: Vec<(String, String)>,
    pub versions: Option<Vec<RawSub>>,
}

/// A model rule under a brand.
#[derive(Debug, Clone, Default)]
pub struct RawModel {
    pub re: RawRegex,
    pub model: String,
    pub device: Option<String>,
    pub brand: Option<String>,
}

/// One brand of a device file.
#[derive(Debug, Clone, Default)]
pub struct RawBrand {
    pub brand: String,
    pub re: RawRegex,
    pub device: Option<String>,
    pub model: Option<String>,
    pub models: Vec<RawModel>,
}

/// One rule file's content.
#[derive(Debug, Clone)]
pub enum RawFile {
    Named(Vec<RawNamed>),
    Devices(Vec<RawBrand>),
    Map(Vec<(String, String)>),
}

/// What is wrong with a rule file.
#[derive(Debug)]
pub enum RawError {
    Yaml(serde_yaml::Error),
    Rule { index: usize, why: String },
}

fn rule_err(index: usize, why: impl Into<String>) -> RawError {
    RawError::Rule {
        index,
        why: why.into(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn regex_of(v: &Value) -> Option<RawRegex> {
    v.get("regex").and_then(text).map(|regex| RawRegex {
        regex,
        literals: None,
    })
}

/// Reads one rule file of `kind` from its YAML.
pub fn from_yaml(kind: Kind, yaml: &str) -> Result<RawFile, RawError> {
    let v: Value = serde_yaml::from_str(yaml).map_err(RawError::Yaml)?;
    match kind {
        Kind::Named => named(&v),
        Kind::Devices => devices(&v),
        Kind::Fragments => fragments(&v),
        Kind::Map => {
            let Value::Mapping(m) = v else {
                return Err(rule_err(0, "expected a mapping"));
            };
            Ok(RawFile::Map(
                m.iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
            ))
        }
    }
}

fn named(v: &Value) -> Result<RawFile, RawError> {
    let Value::Sequence(items) = v else {
        return Err(rule_err(0, "expected a list of rules"));
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let re = regex_of(item).ok_or_else(|| rule_err(i, "missing regex"))?;
        let field = |k: &str| item.get(k).and_then(text).unwrap_or_default();
        let mut engine_default = String::new();
        let mut engine_versions = Vec::new();
        if let Some(engine) = item.get("engine") {
            engine_default = engine.get("default").and_then(text).unwrap_or_default();
            if let Some(Value::Mapping(m)) = engine.get("versions") {
                for (k, e) in m {
                    if let (Some(k), Some(e)) = (text(k), text(e)) {
                        engine_versions.push((k, e));
                    }
                }
            }
        }
        let versions = match item.get("versions") {
            Some(Value::Sequence(subs)) => Some(
                subs.iter()
                    .map(|s| {
                        Ok(RawSub {
                            re: regex_of(s)
                                .ok_or_else(|| rule_err(i, "versions entry without regex"))?,
                            name: s.get("name").and_then(text),
                            version: s.get("version").and_then(text),
                        })
                    })
                    .collect::<Result<Vec<_>, RawError>>()?,
            ),
            _ => None,
        };
        rules.push(RawNamed {
            re,
            name: field("name"),
            version: field("version"),
            engine_default,
            engine_versions,
            versions,
        });
    }
    Ok(RawFile::Named(rules))
}

fn devices(v: &Value) -> Result<RawFile, RawError> {
    let Value::Mapping(m) = v else {
        return Err(rule_err(0, "expected a mapping of brands"));
    };
    let mut brands = Vec::with_capacity(m.len());
    for (i, (brand, spec)) in m.iter().enumerate() {
        let brand = text(brand).ok_or_else(|| rule_err(i, "brand is not text"))?;
        let re = regex_of(spec).ok_or_else(|| rule_err(i, format!("{brand}: missing regex")))?;
        let mut models = Vec::new();
        if let Some(Value::Sequence(list)) = spec.get("models") {
            for m in list {
                models.push(RawModel {
                    re: regex_of(m)
                        .ok_or_else(|| rule_err(i, format!("{brand}: model without regex")))?,
                    model: m.get("model").and_then(text).unwrap_or_default(),
                    device: m.get("device").and_then(text),
                    brand: m.get("brand").and_then(text),
                });
            }
        }
        brands.push(RawBrand {
            brand,
            re,
            device: spec.get("device").and_then(text),
            model: spec.get("model").and_then(text),
            models,
        });
    }
    Ok(RawFile::Devices(brands))
}

/// Vendor fragments become named rules: the fragment with `[^a-z0-9]+`
/// appended, named after its brand.
fn fragments(v: &Value) -> Result<RawFile, RawError> {
    let Value::Mapping(m) = v else {
        return Err(rule_err(0, "expected a mapping of brands"));
    };
    let mut rules = Vec::new();
    for (i, (brand, list)) in m.iter().enumerate() {
        let brand = text(brand).ok_or_else(|| rule_err(i, "brand is not text"))?;
        let Value::Sequence(list) = list else {
            return Err(rule_err(i, format!("{brand}: expected a list")));
        };
        for re in list.iter().filter_map(text) {
            rules.push(RawNamed {
                re: RawRegex {
                    regex: format!("{re}[^a-z0-9]+"),
                    literals: None,
                },
                name: brand.clone(),
                ..Default::default()
            });
        }
    }
    Ok(RawFile::Named(rules))
}

impl RawFile {
    /// Every regex of the file, model rules included.
    pub fn regexes_mut(&mut self) -> Vec<&mut RawRegex> {
        let mut out = Vec::new();
        match self {
            RawFile::Named(rules) => {
                for r in rules {
                    out.push(&mut r.re);
                    for s in r.versions.iter_mut().flatten() {
                        out.push(&mut s.re);
                    }
                }
            }
            RawFile::Devices(brands) => {
                for b in brands {
                    out.push(&mut b.re);
                    for m in &mut b.models {
                        out.push(&mut m.re);
                    }
                }
            }
            RawFile::Map(_) => {}
        }
        out
    }
}

// --- literals ------------------------------------------------------------

/// Removes zero-width lookaround groups (`(?=`, `(?!`, `(?<=`, `(?<!`) so
/// that `regex-syntax` can parse the rest. The result matches a superset
/// of the original, which keeps a literal prefilter sound.
pub fn without_lookarounds(re: &str) -> String {
    let b = re.as_bytes();
    let mut out = String::with_capacity(re.len());
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let len = 1 + re[i + 1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&re[i..i + len]);
            i += len;
            continue;
        }
        if in_class {
            in_class = c != b']';
        } else if c == b'[' {
            in_class = true;
            // a `]` right after `[` or `[^` is a literal
            out.push('[');
            i += 1;
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push(']');
                i += 1;
            }
            continue;
        } else if c == b'('
            && (re[i..].starts_with("(?=")
                || re[i..].starts_with("(?!")
                || re[i..].starts_with("(?<=")
                || re[i..].starts_with("(?<!"))
        {
            i = skip_group(b, i);
            continue;
        }
        let len = re[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&re[i..i + len]);
        i += len;
    }
    out
}

/// The index just past the group that opens at `start`.
fn skip_group(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// Whether `regex-syntax` (the automata's parser) takes `re` as written.
pub fn automata_parse(re: &str) -> bool {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(re)
        .is_ok()
}

/// The literals of `rule` (see [`Literals`]).
pub fn required_literals(rule: &str) -> Literals {
    let cleaned = without_lookarounds(rule);
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(&cleaned)
        .ok()?;
    for (is_prefix, kind) in [(true, ExtractKind::Prefix), (false, ExtractKind::Suffix)] {
        let mut extractor = Extractor::new();
        extractor.kind(kind).limit_total(512);
        let seq = extractor.extract(&hir);
        let Some(lits) = seq.literals() else {
            continue;
        };
        // very short literals would name the rule for almost every UA
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().len() < 2) {
            continue;
        }
        let mut out: Vec<String> = lits
            .iter()
            .map(|l| String::from_utf8_lossy(l.as_bytes()).to_ascii_lowercase())
            .collect();
        out.sort();
        out.dedup();
        return Some((is_prefix, out));
    }
    None
}

// --- compact form ----------------------------------------------------------

/// Writes files in the compact form: for each file its name, then its
/// content; strings are a little-endian `u32` length and the bytes,
/// options a flag byte, lists a `u32` count.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn count(&mut self, n: usize) {
        self.0
            .extend_from_slice(&u32::try_from(n).expect("fits u32").to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.count(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }

    fn regex(&mut self, re: &RawRegex) {
        self.str(&re.regex);
        match re
            .literals
            .as_ref()
            .expect("literals extracted before encoding")
        {
            None => self.0.push(0),
            Some((is_prefix, lits)) => {
                self.0.push(if *is_prefix { 1 } else { 2 });
                self.count(lits.len());
                for l in lits {
                    self.str(l);
                }
            }
        }
    }

    /// Appends one file.
    pub fn file(&mut self, name: &str, file: &RawFile) {
        self.str(name);
        match file {
            RawFile::Named(rules) => {
                self.0.push(0);
                self.count(rules.len());
                for r in rules {
                    self.regex(&r.re);
                    self.str(&r.name);
                    self.str(&r.version);
                    self.str(&r.engine_default);
                    self.count(r.engine_versions.len());
                    for (from, e) in &r.engine_versions {
                        self.str(from);
                        self.str(e);
                    }
                    match &r.versions {
                        None => self.0.push(0),
                        Some(subs) => {
                            self.0.push(1);
                            self.count(subs.len());
                            for s in subs {
                                self.regex(&s.re);
                                self.opt(s.name.as_deref());
                                self.opt(s.version.as_deref());
                            }
                        }
                    }
                }
            }
            RawFile::Devices(brands) => {
                self.0.push(1);
                self.count(brands.len());
                for b in brands {
                    self.str(&b.brand);
                    self.regex(&b.re);
                    self.opt(b.device.as_deref());
                    self.opt(b.model.as_deref());
                    self.count(b.models.len());
                    for m in &b.models {
                        self.regex(&m.re);
                        self.str(&m.model);
                        self.opt(m.device.as_deref());
                        self.opt(m.brand.as_deref());
                    }
                }
            }
            RawFile::Map(pairs) => {
                self.0.push(2);
                self.count(pairs.len());
                for (k, v) in pairs {
                    self.str(k);
                    self.str(v);
                }
            }
        }
    }
}

/// Reads the compact form back; `None` if it is cut short or not UTF-8
/// (it is written by the build script, so that would be a build bug).
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn count(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn str(&mut self) -> Option<String> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n)?).ok().map(str::to_string)
    }

    fn opt(&mut self) -> Option<Option<String>> {
        match self.byte()? {
            0 => Some(None),
            _ => self.str().map(Some),
        }
    }

    fn regex(&mut self) -> Option<RawRegex> {
        let regex = self.str()?;
        let literals = match self.byte()? {
            0 => None,
            kind => {
                let n = self.count()?;
                let lits = (0..n).map(|_| self.str()).collect::<Option<Vec<_>>>()?;
                Some((kind == 1, lits))
            }
        };
        Some(RawRegex {
            regex,
            literals: Some(literals),
        })
    }

    /// The next file: its name and content.
    pub fn file(&mut self) -> Option<(String, RawFile)> {
        let name = self.str()?;
        let file = match self.byte()? {
            0 => {
                let n = self.count()?;
                let mut rules = Vec::with_capacity(n);
                for _ in 0..n {
                    let re = self.regex()?;
                    let name = self.str()?;
                    let version = self.str()?;
                    let engine_default = self.str()?;
                    let ne = self.count()?;
                    let engine_versions = (0..ne)
                        .map(|_| Some((self.str()?, self.str()?)))
                        .collect::<Option<Vec<_>>>()?;
                    let versions = match self.byte()? {
                        0 => None,
                        _ => {
                            let ns = self.count()?;
                            let subs = (0..ns)
                                .map(|_| {
                                    Some(RawSub {
                                        re: self.regex()?,
                                        name: self.opt()?,
                                        version: self.opt()?,
                                    })
                                })
                                .collect::<Option<Vec<_>>>()?;
                            Some(subs)
                        }
                    };
                    rules.push(RawNamed {
                        re,
                        name,
                        version,
                        engine_default,
                        engine_versions,
                        versions,
                    });
                }
                RawFile::Named(rules)
            }
            1 => {
                let n = self.count()?;
                let mut brands = Vec::with_capacity(n);
                for _ in 0..n {
                    let brand = self.str()?;
                    let re = self.regex()?;
                    let device = self.opt()?;
                    let model = self.opt()?;
                    let nm = self.count()?;
                    let models = (0..nm)
                        .map(|_| {
                            Some(RawModel {
                                re: self.regex()?,
                                model: self.str()?,
                                device: self.opt()?,
                                brand: self.opt()?,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?;
                    brands.push(RawBrand {
                        brand,
                        re,
                        device,
                        model,
                        models,
                    });
                }
                RawFile::Devices(brands)
            }
            _ => {
                let n = self.count()?;
                let pairs = (0..n)
                    .map(|_| Some((self.str()?, self.str()?)))
                    .collect::<Option<Vec<_>>>()?;
                RawFile::Map(pairs)
            }
        };
        Some((name, file))
    }
}

//! Loads DeviceDetector's rule files (YAML, as vendored under
//! `assets/device-detector/`) into compiled-on-demand rule lists.
//!
//! The files are data, not code: the binary embeds the vendored copy, and
//! `[device] rules_dir` points at a newer copy with the same layout
//! (`bots.yml`, `oss.yml`, `client/*.yml`, `client/hints/*.yml`,
//! `device/*.yml`, `vendorfragments.yml`) so detection can be updated
//! without a release. Every file is checked at load time (structure, and
//! each rule parses), and errors name the file and the rule.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde_yaml::Value;

use super::pattern::{FirstMatch, Pattern};

/// The rule files, relative to the rules directory, with the embedded copy.
pub const FILES: &[(&str, &str)] = &[
    (
        "bots.yml",
        include_str!("../../../assets/device-detector/regexes/bots.yml"),
    ),
    (
        "oss.yml",
        include_str!("../../../assets/device-detector/regexes/oss.yml"),
    ),
    (
        "vendorfragments.yml",
        include_str!("../../../assets/device-detector/regexes/vendorfragments.yml"),
    ),
    (
        "client/browser_engine.yml",
        include_str!("../../../assets/device-detector/regexes/client/browser_engine.yml"),
    ),
    (
        "client/browsers.yml",
        include_str!("../../../assets/device-detector/regexes/client/browsers.yml"),
    ),
    (
        "client/feed_readers.yml",
        include_str!("../../../assets/device-detector/regexes/client/feed_readers.yml"),
    ),
    (
        "client/libraries.yml",
        include_str!("../../../assets/device-detector/regexes/client/libraries.yml"),
    ),
    (
        "client/mediaplayers.yml",
        include_str!("../../../assets/device-detector/regexes/client/mediaplayers.yml"),
    ),
    (
        "client/mobile_apps.yml",
        include_str!("../../../assets/device-detector/regexes/client/mobile_apps.yml"),
    ),
    (
        "client/pim.yml",
        include_str!("../../../assets/device-detector/regexes/client/pim.yml"),
    ),
    (
        "client/hints/apps.yml",
        include_str!("../../../assets/device-detector/regexes/client/hints/apps.yml"),
    ),
    (
        "client/hints/browsers.yml",
        include_str!("../../../assets/device-detector/regexes/client/hints/browsers.yml"),
    ),
    (
        "device/cameras.yml",
        include_str!("../../../assets/device-detector/regexes/device/cameras.yml"),
    ),
    (
        "device/car_browsers.yml",
        include_str!("../../../assets/device-detector/regexes/device/car_browsers.yml"),
    ),
    (
        "device/consoles.yml",
        include_str!("../../../assets/device-detector/regexes/device/consoles.yml"),
    ),
    (
        "device/mobiles.yml",
        include_str!("../../../assets/device-detector/regexes/device/mobiles.yml"),
    ),
    (
        "device/notebooks.yml",
        include_str!("../../../assets/device-detector/regexes/device/notebooks.yml"),
    ),
    (
        "device/portable_media_player.yml",
        include_str!("../../../assets/device-detector/regexes/device/portable_media_player.yml"),
    ),
    (
        "device/shell_tv.yml",
        include_str!("../../../assets/device-detector/regexes/device/shell_tv.yml"),
    ),
    (
        "device/televisions.yml",
        include_str!("../../../assets/device-detector/regexes/device/televisions.yml"),
    ),
];

/// The name tables (short codes, families), embedded.
pub const TABLES: &str = include_str!("../../../assets/device-detector/tables.yml");

/// Errors loading rule files.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is not valid YAML: {source}")]
    Yaml {
        file: String,
        source: serde_yaml::Error,
    },
    #[error("{file}, rule {index}: {why}")]
    Rule {
        file: String,
        index: usize,
        why: String,
    },
}

/// Where the rule files come from.
#[derive(Clone, Debug, Default)]
pub enum Source {
    /// The copy embedded in the binary.
    #[default]
    Embedded,
    /// A directory with the same layout (newer rules).
    Dir(PathBuf),
}

impl Source {
    fn read(&self, name: &str) -> Result<std::borrow::Cow<'static, str>, RulesError> {
        match self {
            Source::Embedded => Ok(FILES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| std::borrow::Cow::Borrowed(*text))
                .unwrap_or_default()),
            Source::Dir(dir) => {
                let path = dir.join(name);
                std::fs::read_to_string(&path)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|source| RulesError::Read { path, source })
            }
        }
    }
}

/// A `$1`-style template: DeviceDetector's `$1`..`$3`, which the packaged
/// files write as `\g<1>`..`\g<3>`.
#[derive(Debug, Clone, Default)]
pub struct Template(Box<str>);

impl Template {
    pub fn new(text: &str) -> Template {
        Template(text.replace(r"\g<", "$<").into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// DeviceDetector's `buildByMatch`: `$n` replaced by group `n` (empty
    /// when it did not take part), then trimmed.
    pub fn fill(&self, groups: &super::pattern::Groups<'_>) -> String {
        let t = &*self.0;
        if !t.contains('$') {
            return t.trim().to_string();
        }
        let mut out = String::with_capacity(t.len() + 16);
        let mut rest = t;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (n, used) = if let Some(d) = after.strip_prefix('<') {
                match d.find('>') {
                    Some(end) => (d[..end].parse::<usize>().ok(), end + 2),
                    None => (None, 0),
                }
            } else {
                match after.as_bytes().first() {
                    Some(c) if c.is_ascii_digit() => (Some((c - b'0') as usize), 1),
                    _ => (None, 0),
                }
            };
            match n {
                Some(n) => {
                    out.push_str(groups.get(n));
                    rest = &after[used..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out.trim().to_string()
    }
}

/// An OS sub-rule's name and version templates (each optional).
pub type Refinement = (Option<Template>, Option<Template>);

/// A client or OS rule: regex, name template, version template.
#[derive(Debug)]
pub struct NamedRule {
    pub name: Template,
    pub version: Template,
    /// Browsers: engine by default and from a browser version on.
    pub engine_default: String,
    pub engine_versions: Vec<(String, String)>,
    /// OS rules: the first matching sub-rule refines name and version.
    pub versions: Option<(FirstMatch, Vec<Refinement>)>,
}

/// An ordered list of named rules.
#[derive(Debug)]
pub struct NamedList {
    pub list: FirstMatch,
    pub rules: Vec<NamedRule>,
}

impl NamedList {
    /// The first rule that matches, with its groups.
    pub fn first<'h>(&self, ua: &'h str) -> Option<(&NamedRule, super::pattern::Groups<'h>)> {
        self.list.first(ua).map(|(i, g)| (&self.rules[i], g))
    }
}

/// A model rule under a brand.
#[derive(Debug)]
pub struct ModelRule {
    pub model: Template,
    pub device: Option<String>,
    pub brand: Option<String>,
}

/// One brand of a device file.
#[derive(Debug)]
pub struct BrandRule {
    /// "Unknown" in the files is kept as "".
    pub brand: String,
    pub device: Option<String>,
    pub model: Option<Template>,
    /// Model rules, compiled (and their prefilter built) on first use.
    models_src: Vec<(String, ModelRule)>,
    models: OnceLock<FirstMatch>,
}

impl BrandRule {
    pub fn has_models(&self) -> bool {
        !self.models_src.is_empty()
    }

    /// The first model rule that matches.
    pub fn model<'h>(&self, ua: &'h str) -> Option<(&ModelRule, super::pattern::Groups<'h>)> {
        let list = self.models.get_or_init(|| {
            FirstMatch::new(
                self.models_src
                    .iter()
                    .map(|(re, _)| Pattern::rule(re))
                    .collect(),
            )
        });
        list.first(ua).map(|(i, g)| (&self.models_src[i].1, g))
    }

    /// The model table with its prefilter, built now if it was not (its
    /// regexes still compile on first use); `None` without model rules.
    pub fn model_list(&self) -> Option<&FirstMatch> {
        if self.models_src.is_empty() {
            return None;
        }
        let _ = self.model("");
        self.models.get()
    }

    /// Builds the model table now (what the first user agent of this
    /// brand pays otherwise); returns how many model rules do not compile.
    pub fn compile_models(&self) -> usize {
        if self.models_src.is_empty() {
            return 0;
        }
        let _ = self.model("");
        self.models.get().map_or(0, FirstMatch::compile_all)
    }
}

/// A device file: brands in file order.
#[derive(Debug)]
pub struct DeviceList {
    pub list: FirstMatch,
    pub brands: Vec<BrandRule>,
}

impl DeviceList {
    pub fn first<'h>(&self, ua: &'h str) -> Option<(&BrandRule, super::pattern::Groups<'h>)> {
        self.list.first(ua).map(|(i, g)| (&self.brands[i], g))
    }
}

/// Every rule file, parsed.
#[derive(Debug)]
pub struct RuleFiles {
    pub bots: NamedList,
    pub oss: NamedList,
    pub engines: NamedList,
    pub feed_readers: NamedList,
    pub mobile_apps: NamedList,
    pub media_players: NamedList,
    pub pim: NamedList,
    pub browsers: NamedList,
    pub libraries: NamedList,
    pub hint_apps: FxHashMap<String, String>,
    pub hint_browsers: FxHashMap<String, String>,
    pub televisions: DeviceList,
    pub shell_tv: DeviceList,
    pub notebooks: DeviceList,
    pub consoles: DeviceList,
    pub car_browsers: DeviceList,
    pub cameras: DeviceList,
    pub portable_media_players: DeviceList,
    pub mobiles: DeviceList,
    /// Brand, and its fragments (matched with `[^a-z0-9]+` appended).
    pub vendor_fragments: NamedList,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml(file: &str, src: &Source) -> Result<Value, RulesError> {
    let raw = src.read(file)?;
    serde_yaml::from_str(&raw).map_err(|source| RulesError::Yaml {
        file: file.to_string(),
        source,
    })
}

fn rule_err(file: &str, index: usize, why: impl Into<String>) -> RulesError {
    RulesError::Rule {
        file: file.to_string(),
        index,
        why: why.into(),
    }
}

/// Checks that `re` parses with one of the engines (it compiles on first
/// use; a broken rule must fail the load, not vanish silently).
fn checked(file: &str, index: usize, re: &str) -> Result<Pattern, RulesError> {
    let p = Pattern::rule(re);
    if regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(re)
        .is_ok()
        || fancy_regex::Regex::new(re).is_ok()
    {
        Ok(p)
    } else {
        Err(rule_err(file, index, format!("regex does not parse: {re}")))
    }
}

fn named_list(file: &str, src: &Source) -> Result<NamedList, RulesError> {
    let v = yaml(file, src)?;
    let Value::Sequence(items) = v else {
        return Err(rule_err(file, 0, "expected a list of rules"));
    };
    let mut patterns = Vec::with_capacity(items.len());
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let re = item
            .get("regex")
            .and_then(text)
            .ok_or_else(|| rule_err(file, i, "missing regex"))?;
        patterns.push(checked(file, i, &re)?);
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
            Some(Value::Sequence(subs)) => {
                let mut sub_patterns = Vec::new();
                let mut sub_rules = Vec::new();
                for s in subs {
                    let re = s
                        .get("regex")
                        .and_then(text)
                        .ok_or_else(|| rule_err(file, i, "versions entry without regex"))?;
                    sub_patterns.push(checked(file, i, &re)?);
                    sub_rules.push((
                        s.get("name").and_then(text).map(|t| Template::new(&t)),
                        s.get("version").and_then(text).map(|t| Template::new(&t)),
                    ));
                }
                Some((FirstMatch::new(sub_patterns), sub_rules))
            }
            _ => None,
        };
        rules.push(NamedRule {
            name: Template::new(&field("name")),
            version: Template::new(&field("version")),
            engine_default,
            engine_versions,
            versions,
        });
    }
    Ok(NamedList {
        list: FirstMatch::new(patterns),
        rules,
    })
}

fn string_map(file: &str, src: &Source) -> Result<FxHashMap<String, String>, RulesError> {
    let v = yaml(file, src)?;
    let Value::Mapping(m) = v else {
        return Err(rule_err(file, 0, "expected a mapping"));
    };
    Ok(m.iter()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect())
}

fn device_list(file: &str, src: &Source) -> Result<DeviceList, RulesError> {
    let v = yaml(file, src)?;
    let Value::Mapping(m) = v else {
        return Err(rule_err(file, 0, "expected a mapping of brands"));
    };
    let mut patterns = Vec::with_capacity(m.len());
    let mut brands = Vec::with_capacity(m.len());
    for (i, (brand, spec)) in m.iter().enumerate() {
        let brand = text(brand).ok_or_else(|| rule_err(file, i, "brand is not text"))?;
        let re = spec
            .get("regex")
            .and_then(text)
            .ok_or_else(|| rule_err(file, i, format!("{brand}: missing regex")))?;
        patterns.push(checked(file, i, &re)?);
        let mut models_src = Vec::new();
        if let Some(Value::Sequence(models)) = spec.get("models") {
            for m in models {
                let re = m
                    .get("regex")
                    .and_then(text)
                    .ok_or_else(|| rule_err(file, i, format!("{brand}: model without regex")))?;
                // model rules are checked when their brand first matches:
                // parsing all 20,000 here would double the start-up time
                models_src.push((
                    re,
                    ModelRule {
                        model: Template::new(&m.get("model").and_then(text).unwrap_or_default()),
                        device: m.get("device").and_then(text),
                        brand: m.get("brand").and_then(text),
                    },
                ));
            }
        }
        brands.push(BrandRule {
            brand: if brand == "Unknown" {
                String::new()
            } else {
                brand
            },
            device: spec.get("device").and_then(text),
            model: spec.get("model").and_then(text).map(|t| Template::new(&t)),
            models_src,
            models: OnceLock::new(),
        });
    }
    Ok(DeviceList {
        list: FirstMatch::new(patterns),
        brands,
    })
}

fn vendor_fragments(file: &str, src: &Source) -> Result<NamedList, RulesError> {
    let v = yaml(file, src)?;
    let Value::Mapping(m) = v else {
        return Err(rule_err(file, 0, "expected a mapping of brands"));
    };
    let mut patterns = Vec::new();
    let mut rules = Vec::new();
    for (i, (brand, list)) in m.iter().enumerate() {
        let brand = text(brand).ok_or_else(|| rule_err(file, i, "brand is not text"))?;
        let Value::Sequence(list) = list else {
            return Err(rule_err(file, i, format!("{brand}: expected a list")));
        };
        for re in list.iter().filter_map(text) {
            patterns.push(checked(file, i, &format!("{re}[^a-z0-9]+"))?);
            rules.push(NamedRule {
                name: Template::new(&brand),
                version: Template::default(),
                engine_default: String::new(),
                engine_versions: Vec::new(),
                versions: None,
            });
        }
    }
    Ok(NamedList {
        list: FirstMatch::new(patterns),
        rules,
    })
}

impl RuleFiles {
    /// Parses every file of `src`.
    pub fn load(src: &Source) -> Result<RuleFiles, RulesError> {
        Self::load_timed(src).map(|(files, _)| files)
    }

    /// Parses every file of `src`, timing each (for measurements).
    pub fn load_timed(
        src: &Source,
    ) -> Result<(RuleFiles, Vec<(&'static str, std::time::Duration)>), RulesError> {
        let mut times = Vec::new();
        macro_rules! timed {
            ($load:ident, $file:literal) => {{
                let start = std::time::Instant::now();
                let loaded = $load($file, src)?;
                times.push(($file, start.elapsed()));
                loaded
            }};
        }
        let files = RuleFiles {
            bots: timed!(named_list, "bots.yml"),
            oss: timed!(named_list, "oss.yml"),
            engines: timed!(named_list, "client/browser_engine.yml"),
            feed_readers: timed!(named_list, "client/feed_readers.yml"),
            mobile_apps: timed!(named_list, "client/mobile_apps.yml"),
            media_players: timed!(named_list, "client/mediaplayers.yml"),
            pim: timed!(named_list, "client/pim.yml"),
            browsers: timed!(named_list, "client/browsers.yml"),
            libraries: timed!(named_list, "client/libraries.yml"),
            hint_apps: timed!(string_map, "client/hints/apps.yml"),
            hint_browsers: timed!(string_map, "client/hints/browsers.yml"),
            televisions: timed!(device_list, "device/televisions.yml"),
            shell_tv: timed!(device_list, "device/shell_tv.yml"),
            notebooks: timed!(device_list, "device/notebooks.yml"),
            consoles: timed!(device_list, "device/consoles.yml"),
            car_browsers: timed!(device_list, "device/car_browsers.yml"),
            cameras: timed!(device_list, "device/cameras.yml"),
            portable_media_players: timed!(device_list, "device/portable_media_player.yml"),
            mobiles: timed!(device_list, "device/mobiles.yml"),
            vendor_fragments: timed!(vendor_fragments, "vendorfragments.yml"),
        };
        Ok((files, times))
    }

    /// Compiles every regex now (start-up measurement, warm-up); returns
    /// how many rules neither engine compiles.
    pub fn compile_all(&self) -> usize {
        self.compile_lists() + self.brands().map(BrandRule::compile_models).sum::<usize>()
    }

    /// Every rule list but the brands' model tables, with the file it
    /// comes from (an OS rule's version sub-list counts to `oss.yml`).
    pub fn lists(&self) -> Vec<(&'static str, &FirstMatch)> {
        let named: [(&'static str, &NamedList); 10] = [
            ("bots.yml", &self.bots),
            ("oss.yml", &self.oss),
            ("client/browser_engine.yml", &self.engines),
            ("client/feed_readers.yml", &self.feed_readers),
            ("client/mobile_apps.yml", &self.mobile_apps),
            ("client/mediaplayers.yml", &self.media_players),
            ("client/pim.yml", &self.pim),
            ("client/browsers.yml", &self.browsers),
            ("client/libraries.yml", &self.libraries),
            ("vendorfragments.yml", &self.vendor_fragments),
        ];
        let mut out = Vec::new();
        for (file, n) in named {
            out.push((file, &n.list));
            for r in &n.rules {
                if let Some((l, _)) = &r.versions {
                    out.push((file, l));
                }
            }
        }
        for (file, d) in self.device_lists() {
            out.push((file, &d.list));
        }
        out
    }

    /// The device files, in detection order.
    pub fn device_lists(&self) -> [(&'static str, &DeviceList); 8] {
        [
            ("device/televisions.yml", &self.televisions),
            ("device/shell_tv.yml", &self.shell_tv),
            ("device/notebooks.yml", &self.notebooks),
            ("device/consoles.yml", &self.consoles),
            ("device/car_browsers.yml", &self.car_browsers),
            ("device/cameras.yml", &self.cameras),
            ("device/portable_media_player.yml", &self.portable_media_players),
            ("device/mobiles.yml", &self.mobiles),
        ]
    }

    /// The brands of every device file (each with its model table).
    pub fn brands(&self) -> impl Iterator<Item = &BrandRule> {
        [
            &self.televisions,
            &self.shell_tv,
            &self.notebooks,
            &self.consoles,
            &self.car_browsers,
            &self.cameras,
            &self.portable_media_players,
            &self.mobiles,
        ]
        .into_iter()
        .flat_map(|d| d.brands.iter())
    }

    /// Compiles every rule except the brands' model tables (those build
    /// when their brand first matches); returns how many do not compile.
    pub fn compile_lists(&self) -> usize {
        let named = [
            &self.bots,
            &self.oss,
            &self.engines,
            &self.feed_readers,
            &self.mobile_apps,
            &self.media_players,
            &self.pim,
            &self.browsers,
            &self.libraries,
            &self.vendor_fragments,
        ];
        let devices = [
            &self.televisions,
            &self.shell_tv,
            &self.notebooks,
            &self.consoles,
            &self.car_browsers,
            &self.cameras,
            &self.portable_media_players,
            &self.mobiles,
        ];
        let mut broken = 0;
        for n in named {
            broken += n.list.compile_all();
            for r in &n.rules {
                if let Some((l, _)) = &r.versions {
                    broken += l.compile_all();
                }
            }
        }
        for d in devices {
            broken += d.list.compile_all();
        }
        broken
    }
}

/// The rules directory a config names must exist and hold `oss.yml`.
pub fn check_dir(dir: &Path) -> Result<(), RulesError> {
    let probe = dir.join("oss.yml");
    std::fs::metadata(&probe)
        .map(|_| ())
        .map_err(|source| RulesError::Read {
            path: probe,
            source,
        })
}

//! Loads DeviceDetector's rule files into compiled-on-demand rule lists.
//!
//! The files are data, not code: the binary embeds the vendored copy
//! (`assets/device-detector/regexes/`, turned into a compact form by
//! `build.rs`, see [`super::raw`]), and `[device] rules_dir` points at a
//! newer copy with the same layout (`bots.yml`, `oss.yml`, `client/*.yml`,
//! `client/hints/*.yml`, `device/*.yml`, `vendorfragments.yml`) so
//! detection can be updated without a release. A directory's files are
//! checked at load time (structure, and each rule parses), and errors name
//! the file and the rule; the embedded copy was read by the same code when
//! the binary was built.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use super::pattern::{FirstMatch, Pattern};
use super::raw::{self, RawBrand, RawError, RawFile, RawNamed, RawRegex};

/// The vendored rule files in the compact form (see [`super::raw`]).
static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/device_rules.bin"));

/// The name tables (short codes, families), embedded.
pub const TABLES: &str = include_str!("../../../assets/device-detector/tables.yml");

/// How long each step of a load took (for measurements).
pub type LoadTimes = Vec<(&'static str, std::time::Duration)>;

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
    /// Every rule file of this source, by name.
    fn files(&self) -> Result<FxHashMap<String, RawFile>, RulesError> {
        match self {
            Source::Embedded => {
                let mut reader = raw::Reader::new(EMBEDDED);
                let mut files = FxHashMap::default();
                while !reader.is_empty() {
                    let (name, file) = reader.file().ok_or_else(|| RulesError::Rule {
                        file: "embedded rules".into(),
                        index: files.len(),
                        why: "compact form cut short".into(),
                    })?;
                    files.insert(name, file);
                }
                Ok(files)
            }
            Source::Dir(dir) => raw::FILE_KINDS
                .iter()
                .map(|(name, kind)| {
                    let path = dir.join(name);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| RulesError::Read { path, source })?;
                    let file = raw::from_yaml(*kind, &text).map_err(|e| match e {
                        RawError::Yaml(source) => RulesError::Yaml {
                            file: name.to_string(),
                            source,
                        },
                        RawError::Rule { index, why } => rule_err(name, index, why),
                    })?;
                    check_file(name, &file)?;
                    Ok((name.to_string(), file))
                })
                .collect(),
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

    /// True when the template uses no group (`$1`..`$3`).
    pub fn is_fill_free(&self) -> bool {
        !self.0.contains('$')
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

/// Lazy DFA cache bound of a brand's model table: ~1,450 tables, each
/// tried only for user agents of its brand.
const MODEL_DFA_CACHE: usize = 8 * 1024;

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
    /// Model rules, in file order.
    model_rules: Vec<ModelRule>,
    /// Their regexes and literals until the table is built (then taken:
    /// the built table holds what it needs).
    model_regexes: std::sync::Mutex<Vec<RawRegex>>,
    /// The model table, built on first use.
    models: OnceLock<FirstMatch>,
}

impl BrandRule {
    pub fn has_models(&self) -> bool {
        !self.model_rules.is_empty()
    }

    /// The first model rule that matches.
    pub fn model<'h>(&self, ua: &'h str) -> Option<(&ModelRule, super::pattern::Groups<'h>)> {
        let list = self.models.get_or_init(|| {
            let regexes = std::mem::take(
                &mut *self
                    .model_regexes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            first_match(
                regexes
                    .iter()
                    .zip(&self.model_rules)
                    .map(|(re, m)| (re, !m.model.is_fill_free())),
            )
            .with_dfa_cache(MODEL_DFA_CACHE)
        });
        list.first(ua).map(|(i, g)| (&self.model_rules[i], g))
    }

    /// The model table with its prefilter, built now if it was not (its
    /// regexes still compile on first use); `None` without model rules.
    pub fn model_list(&self) -> Option<&FirstMatch> {
        if self.model_rules.is_empty() {
            return None;
        }
        let _ = self.model("");
        self.models.get()
    }

    /// The model table if it has been built (for measurements).
    pub fn built_models(&self) -> Option<&FirstMatch> {
        self.models.get()
    }

    /// Builds the model table now (what the first user agent of this
    /// brand pays otherwise); returns how many model rules do not compile.
    pub fn compile_models(&self) -> usize {
        if self.model_rules.is_empty() {
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

fn rule_err(file: &str, index: usize, why: impl Into<String>) -> RulesError {
    RulesError::Rule {
        file: file.to_string(),
        index,
        why: why.into(),
    }
}

/// Checks that every regex of a file from a directory parses with one of
/// the engines: they compile on first use, and a broken rule must fail the
/// load, not vanish silently. (Model rules are checked when their brand
/// first matches: parsing all 20,000 here would double the load time.)
fn check_file(file: &str, raw: &RawFile) -> Result<(), RulesError> {
    let check = |index: usize, re: &RawRegex| {
        if raw::automata_parse(&re.regex) || super::pattern::lookaround_parse(&re.regex) {
            Ok(())
        } else {
            Err(rule_err(
                file,
                index,
                format!("regex does not parse: {}", re.regex),
            ))
        }
    };
    match raw {
        RawFile::Named(rules) => {
            for (i, r) in rules.iter().enumerate() {
                check(i, &r.re)?;
                for s in r.versions.iter().flatten() {
                    check(i, &s.re)?;
                }
            }
        }
        RawFile::Devices(brands) => {
            for (i, b) in brands.iter().enumerate() {
                check(i, &b.re)?;
            }
        }
        RawFile::Map(_) => {}
    }
    Ok(())
}

/// A first-match list of `regexes`, with their literals where known, each
/// marked with whether its templates use its groups.
fn first_match<'a>(regexes: impl Iterator<Item = (&'a RawRegex, bool)>) -> FirstMatch {
    FirstMatch::with_literals(
        regexes
            .map(|(re, groups_used)| {
                let p = Pattern::rule(&re.regex);
                let p = if groups_used { p } else { p.without_groups() };
                (p, re.literals.clone())
            })
            .collect(),
    )
}

/// Whether a template as written in the files refers to a group (`$1`, or
/// `\g<1>` as the packaged files write it).
fn uses_groups(template: Option<&str>) -> bool {
    template.is_some_and(|t| t.contains('$') || t.contains(r"\g<"))
}

fn named_list(rules: Vec<RawNamed>) -> NamedList {
    let list = first_match(rules.iter().map(|r| {
        let groups_used = uses_groups(Some(&r.name)) || uses_groups(Some(&r.version));
        (&r.re, groups_used)
    }));
    let rules = rules
        .into_iter()
        .map(|r| NamedRule {
            name: Template::new(&r.name),
            version: Template::new(&r.version),
            engine_default: r.engine_default,
            engine_versions: r.engine_versions,
            versions: r.versions.map(|subs| {
                (
                    first_match(subs.iter().map(|s| {
                        let groups_used =
                            uses_groups(s.name.as_deref()) || uses_groups(s.version.as_deref());
                        (&s.re, groups_used)
                    })),
                    subs.into_iter()
                        .map(|s| {
                            (
                                s.name.as_deref().map(Template::new),
                                s.version.as_deref().map(Template::new),
                            )
                        })
                        .collect(),
                )
            }),
        })
        .collect();
    NamedList { list, rules }
}

fn device_list(brands: Vec<RawBrand>) -> DeviceList {
    let list = first_match(
        brands
            .iter()
            .map(|b| (&b.re, uses_groups(b.model.as_deref()))),
    );
    let brands = brands
        .into_iter()
        .map(|b| BrandRule {
            brand: if b.brand == "Unknown" {
                String::new()
            } else {
                b.brand
            },
            device: b.device,
            model: b.model.as_deref().map(Template::new),
            model_rules: b
                .models
                .iter()
                .map(|m| ModelRule {
                    model: Template::new(&m.model),
                    device: m.device.clone(),
                    brand: m.brand.clone(),
                })
                .collect(),
            model_regexes: std::sync::Mutex::new(b.models.into_iter().map(|m| m.re).collect()),
            models: OnceLock::new(),
        })
        .collect();
    DeviceList { list, brands }
}

/// The rule files of a source, each taken out once by name and kind.
struct Files(FxHashMap<String, RawFile>);

impl Files {
    fn take(&mut self, name: &str) -> Result<RawFile, RulesError> {
        self.0
            .remove(name)
            .ok_or_else(|| rule_err(name, 0, "missing from the rules"))
    }

    fn named(&mut self, name: &str) -> Result<NamedList, RulesError> {
        match self.take(name)? {
            RawFile::Named(rules) => Ok(named_list(rules)),
            _ => Err(rule_err(name, 0, "expected a list of rules")),
        }
    }

    fn devices(&mut self, name: &str) -> Result<DeviceList, RulesError> {
        match self.take(name)? {
            RawFile::Devices(brands) => Ok(device_list(brands)),
            _ => Err(rule_err(name, 0, "expected a mapping of brands")),
        }
    }

    fn map(&mut self, name: &str) -> Result<FxHashMap<String, String>, RulesError> {
        match self.take(name)? {
            RawFile::Map(pairs) => Ok(pairs.into_iter().collect()),
            _ => Err(rule_err(name, 0, "expected a mapping")),
        }
    }
}

impl RuleFiles {
    /// Parses every file of `src`.
    pub fn load(src: &Source) -> Result<RuleFiles, RulesError> {
        Self::load_timed(src).map(|(files, _)| files)
    }

    /// Parses every file of `src`, timing each (for measurements): the
    /// first entry is reading all files (decoding the compact form, or
    /// reading and parsing the YAML of a directory), the others building
    /// each file's lists and prefilters.
    pub fn load_timed(src: &Source) -> Result<(RuleFiles, LoadTimes), RulesError> {
        let start = std::time::Instant::now();
        let mut f = Files(src.files()?);
        let mut times = vec![("(reading every file)", start.elapsed())];
        macro_rules! timed {
            ($kind:ident, $file:literal) => {{
                let start = std::time::Instant::now();
                let built = f.$kind($file)?;
                times.push(($file, start.elapsed()));
                built
            }};
        }
        let files = RuleFiles {
            bots: timed!(named, "bots.yml"),
            oss: timed!(named, "oss.yml"),
            engines: timed!(named, "client/browser_engine.yml"),
            feed_readers: timed!(named, "client/feed_readers.yml"),
            mobile_apps: timed!(named, "client/mobile_apps.yml"),
            media_players: timed!(named, "client/mediaplayers.yml"),
            pim: timed!(named, "client/pim.yml"),
            browsers: timed!(named, "client/browsers.yml"),
            libraries: timed!(named, "client/libraries.yml"),
            hint_apps: timed!(map, "client/hints/apps.yml"),
            hint_browsers: timed!(map, "client/hints/browsers.yml"),
            televisions: timed!(devices, "device/televisions.yml"),
            shell_tv: timed!(devices, "device/shell_tv.yml"),
            notebooks: timed!(devices, "device/notebooks.yml"),
            consoles: timed!(devices, "device/consoles.yml"),
            car_browsers: timed!(devices, "device/car_browsers.yml"),
            cameras: timed!(devices, "device/cameras.yml"),
            portable_media_players: timed!(devices, "device/portable_media_player.yml"),
            mobiles: timed!(devices, "device/mobiles.yml"),
            vendor_fragments: timed!(named, "vendorfragments.yml"),
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
            (
                "device/portable_media_player.yml",
                &self.portable_media_players,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The compact form the build embeds says exactly what the vendored
    /// YAML says, literals included.
    #[test]
    fn embedded_form_equals_the_vendored_yaml() {
        let embedded = Source::Embedded.files().unwrap();
        assert_eq!(embedded.len(), raw::FILE_KINDS.len());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/device-detector/regexes");
        for (name, kind) in raw::FILE_KINDS {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let mut yaml = raw::from_yaml(*kind, &text).unwrap();
            for re in yaml.regexes_mut() {
                re.literals = Some(raw::required_literals(&re.regex));
            }
            assert_eq!(
                format!("{yaml:?}"),
                format!("{:?}", embedded[*name]),
                "{name}"
            );
        }
    }
}

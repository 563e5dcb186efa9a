//! Matomo DeviceDetector's detection, on sparsam's own regex engine:
//! DeviceDetector's rule files (bots, operating systems, clients, engines,
//! devices with their brand → model tables, client-hint maps), evaluated
//! in DeviceDetector's order and with its rules for what the files do not
//! say (the post-rules of `DeviceDetector::parseDevice`, the merge of
//! client hints into OS and browser).
//!
//! Why: Matomo users read reports in DeviceDetector's terms (device types
//! such as "smartphone" or "phablet", brands, models, "Chrome Mobile",
//! OS families). Its rules are the most complete public set and are
//! refreshed monthly; keeping them as data (see [`rules`]) lets operators
//! update detection without a release.
//!
//! Order (as `DeviceDetector::parse`): bot (a bot ends detection), OS
//! (user agent and `Sec-CH-UA-Platform[-Version]`), client (feed reader,
//! mobile app, media player, PIM, browser, library; browsers with
//! `Sec-CH-UA-Full-Version-List` and `X-Requested-With`), device (HbbTV,
//! shell TV, notebook, console, car, camera, portable media player,
//! mobile; `Sec-CH-UA-Model` restores the model Chromium's reduced user
//! agent hides), then the post-rules.
//!
//! Versions come back as the rules build them (no truncation); callers
//! truncate (see [`truncate_version`]).

pub mod pattern;
pub mod raw;
pub mod rules;
pub mod tables;

use std::sync::OnceLock;

use pattern::Pattern;
use rules::{DeviceList, NamedRule, RuleFiles, RulesError, Source};
use tables::Tables;

use super::client_hints::ClientHints;

/// Errors building the detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("assets/device-detector/tables.yml: {0}")]
    Tables(#[from] serde_yaml::Error),
}

/// DeviceDetector's device types, with its names.
pub const DEVICE_TYPES: &[&str] = &[
    "desktop",
    "smartphone",
    "tablet",
    "feature phone",
    "console",
    "tv",
    "car browser",
    "smart display",
    "camera",
    "portable media player",
    "phablet",
    "smart speaker",
    "wearable",
    "peripheral",
];

/// What DeviceDetector reports for one request. Empty strings are unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    /// The bot's name when the request is a bot (all else is then empty).
    pub bot: Option<String>,
    pub os: String,
    pub os_version: String,
    /// "browser", "feed reader", "mobile app", "mediaplayer", "pim",
    /// "library", or "".
    pub client_type: &'static str,
    pub client: String,
    pub client_version: String,
    pub engine: String,
    pub engine_version: String,
    /// One of [`DEVICE_TYPES`], or `None` when unknown.
    pub device_type: Option<&'static str>,
    pub brand: String,
    pub model: String,
}

/// A browser found by user agent or client hints.
#[derive(Clone, Debug, Default)]
struct BrowserHit {
    name: String,
    code: String,
    version: String,
    engine: String,
    engine_version: String,
}

/// A device found by one device parser.
#[derive(Clone, Debug, Default)]
struct DeviceHit {
    device_type: Option<&'static str>,
    brand: String,
    model: String,
}

/// Helper patterns DeviceDetector runs in code (not in its files).
struct Helpers {
    hbbtv: Pattern,
    shell_tv: Pattern,
    notebook: Pattern,
    chrome: Pattern,
    mobile_word: Pattern,
    pad_apad: Pattern,
    android_tablet: Pattern,
    opera_tablet: Pattern,
    android_mobile: Pattern,
    touch: Pattern,
    opera_tv_store: Pattern,
    android_tv: Pattern,
    smart_tv: Pattern,
    tv_fragment: Pattern,
    desktop_fragment: Pattern,
    not_desktop: Pattern,
    frozen_android: Pattern,
    chrome_safari: Pattern,
    gecko_version: Pattern,
    puffin_desktop: Pattern,
    puffin_phone: Pattern,
    puffin_tablet: Pattern,
}

impl Helpers {
    fn new() -> Helpers {
        Helpers {
            hbbtv: Pattern::rule(r"(?:HbbTV|SmartTvA)/([1-9]{1}(?:\.[0-9]{1}){1,2})"),
            shell_tv: Pattern::rule(r"[a-z]+[ _]Shell[ _]\w{6}|tclwebkit(\d+[.\d]*)"),
            notebook: Pattern::rule("FBMD/"),
            chrome: Pattern::rule(r"Chrome/[.0-9]*"),
            mobile_word: Pattern::rule("(?:Mobile|eliboM)"),
            pad_apad: Pattern::rule("Pad/APad"),
            android_tablet: Pattern::rule(r"Android( [.0-9]+)?; Tablet;|Tablet(?! PC)|.*-tablet$"),
            opera_tablet: Pattern::rule("Opera Tablet"),
            android_mobile: Pattern::rule(r"Android( [.0-9]+)?; Mobile;|.*-mobile$"),
            touch: Pattern::rule("Touch"),
            opera_tv_store: Pattern::rule("Opera TV Store| OMI/"),
            android_tv: Pattern::rule(
                r"Andr0id|(?:Android(?: UHD)?|Google) TV|\(lite\) TV|BRAVIA|Firebolt| TV$",
            ),
            smart_tv: Pattern::rule(r"SmartTV|Tizen.+ TV .+$"),
            tv_fragment: Pattern::rule(r"\(TV;"),
            desktop_fragment: Pattern::rule(r"(?:Windows (?:NT|IoT)|X11; Linux x86_64)"),
            not_desktop: Pattern::rule(
                r"CE-HTML| Mozilla/|Andr[o0]id|Tablet|Mobile|iPhone|Windows Phone|ricoh|OculusBrowser|PicoBrowser|Lenovo|compatible; MSIE|Trident/|Tesla/|XBOX|FBMD/|ARM; ?([^)]+)",
            ),
            frozen_android: Pattern::plain(
                r"Android (?:10[.\d]*; K(?: Build/|[;)])|1[1-5]\)) AppleWebKit",
            ),
            chrome_safari: Pattern::plain(r"Chrome/.+ Safari/537\.36"),
            gecko_version: Pattern::plain(r"[ ](?:rv[: ]([0-9.]+)).*(?:g|cl)ecko/[0-9]{8,10}"),
            puffin_desktop: Pattern::rule(r"Puffin/(?:\d+[.\d]+)[LMW]D"),
            puffin_phone: Pattern::rule(r"Puffin/(?:\d+[.\d]+)[AIFLW]P"),
            puffin_tablet: Pattern::rule(r"Puffin/(?:\d+[.\d]+)[AILW]T"),
        }
    }
}

/// The compiled rules and tables.
pub struct Detector {
    files: RuleFiles,
    tables: Tables,
    helpers: Helpers,
    /// Engine name → its version pattern, built on first use.
    engine_versions: std::sync::Mutex<rustc_hash::FxHashMap<String, std::sync::Arc<Pattern>>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").finish_non_exhaustive()
    }
}

/// DeviceDetector's `buildVersion` without truncation: `_` → `.`, outer
/// spaces and dots trimmed.
fn build_version(v: String) -> String {
    let v = if v.contains('_') {
        v.replace('_', ".")
    } else {
        v
    };
    v.trim_matches(|c| c == ' ' || c == '.').to_string()
}

/// DeviceDetector's version truncation: keep `minor_parts` parts after the
/// major version (Matomo's reports use 1: "120.0").
pub fn truncate_version(v: &str, minor_parts: usize) -> &str {
    match v.match_indices('.').nth(minor_parts) {
        Some((at, _)) => &v[..at],
        None => v,
    }
}

/// PHP's `version_compare` for dotted numeric versions: negative, zero or
/// positive. Non-numeric parts count as 0 (the files compare numbers).
pub fn version_compare(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        // PHP: a missing part is lower than any present one
        match (pa.get(i), pb.get(i)) {
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            _ => {}
        }
    }
    std::cmp::Ordering::Equal
}

fn leading_int(v: &str) -> u64 {
    v.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

fn device_type_named(name: &str) -> Option<&'static str> {
    DEVICE_TYPES.iter().copied().find(|t| *t == name)
}

/// DeviceDetector's `buildModel`.
fn build_model(model: String) -> String {
    let mut m = model.replace('_', " ");
    // byte comparison: the model may end in any UTF-8 character
    if m.len() >= 3 && m.as_bytes()[m.len() - 3..].eq_ignore_ascii_case(b" TD") {
        m.truncate(m.len() - 3);
    }
    let m = m.trim();
    if m == "Build" {
        String::new()
    } else {
        m.to_string()
    }
}

impl Detector {
    /// Loads rules from `source` and the embedded tables.
    pub fn load(source: &Source) -> Result<Detector, DetectorError> {
        Self::from_files(RuleFiles::load(source)?)
    }

    /// A detector on rule files already loaded, with the embedded tables.
    pub fn from_files(files: RuleFiles) -> Result<Detector, DetectorError> {
        Ok(Detector {
            files,
            tables: Tables::parse(rules::TABLES)?,
            helpers: Helpers::new(),
            engine_versions: Default::default(),
        })
    }

    /// Builds every list's automata now (lists in detection order, then
    /// the brands' model tables); returns how many rules do not compile.
    pub fn compile_all(&self) -> usize {
        self.files.compile_all()
    }

    /// The parsed rule files (for measurements and warm-up).
    pub fn files(&self) -> &RuleFiles {
        &self.files
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Detects bot, OS, client and device of one request.
    pub fn detect(&self, ua: &str, hints: &ClientHints) -> Detection {
        let mut d = Detection::default();
        if !ua.bytes().any(|b| b.is_ascii_alphabetic()) && hints.is_empty() {
            return d;
        }
        if let Some((rule, g)) = self.files.bots.first(ua) {
            let name = rule.name.fill(&g);
            d.bot = Some(if name.is_empty() { "Bot".into() } else { name });
            return d;
        }
        let (os, os_version) = self.os(ua, hints);
        d.os = os;
        d.os_version = os_version;
        let mobile_only = self.client(ua, hints, &mut d);
        self.device(ua, hints, mobile_only, &mut d);
        d
    }

    // --- operating system ----------------------------------------------

    fn canonical_os(&self, name: String) -> String {
        self.tables.os(&name).map_or(name, |n| n.name.clone())
    }

    fn os_from_ua(&self, ua: &str) -> (String, String) {
        let Some((rule, g)) = self.files.oss.first(ua) else {
            return Default::default();
        };
        let mut name = self.canonical_os(rule.name.fill(&g));
        let mut version = build_version(rule.version.fill(&g));
        if let Some((list, subs)) = &rule.versions {
            if let Some((i, g)) = list.first(ua) {
                let (n, v) = &subs[i];
                if let Some(n) = n {
                    name = self.canonical_os(n.fill(&g));
                }
                if let Some(v) = v {
                    version = build_version(v.fill(&g));
                }
            }
        }
        (name, version)
    }

    fn os_from_hints(&self, hints: &ClientHints) -> (String, String) {
        let Some(platform) = hints.platform.as_deref().filter(|p| !p.is_empty()) else {
            return Default::default();
        };
        let platform = tables::OS_HINT_ALIASES
            .iter()
            .find(|(hint, _)| *hint == platform)
            .map_or(platform, |(_, name)| name);
        let key = tables::squash(platform);
        let Some(os) = self
            .tables
            .oss
            .iter()
            .find(|o| tables::squash(&o.name) == key)
        else {
            return Default::default();
        };
        let mut version = hints.platform_version.clone().unwrap_or_default();
        if os.name == "Windows" {
            let mut parts = version.split('.');
            let major = parts.next().map_or(0, leading_int);
            let minor = parts.next().map_or(0, leading_int);
            version = match (major, minor) {
                (0, 1) => "7".into(),
                (0, 2) => "8".into(),
                (0, 3) => "8.1".into(),
                (0, _) => version,
                (1..=12, _) => "10".into(),
                _ => "11".into(),
            };
        } else if version != "0.0.0" && leading_int(&version) == 0 {
            version.clear();
        }
        (os.name.clone(), build_version(version))
    }

    fn os(&self, ua: &str, hints: &ClientHints) -> (String, String) {
        let (ua_name, ua_version) = self.os_from_ua(ua);
        let (hint_name, hint_version) = self.os_from_hints(hints);
        if hint_name.is_empty() {
            return (ua_name, ua_version);
        }
        let family = |n: &str| self.tables.os_family(n).to_string();
        let mut name = hint_name;
        let mut version = hint_version.clone();
        if version.is_empty() && family(&name) == family(&ua_name) {
            version = ua_version.clone();
        }
        if name == "Windows" && version == "0.0.0" {
            version = if ua_version == "10" {
                String::new()
            } else {
                ua_version.clone()
            };
        }
        if !ua_name.is_empty() && family(&ua_name) == name && ua_name != name {
            name = ua_name.clone();
            if name == "LeafOS" || name == "HarmonyOS" {
                version.clear();
            }
            if name == "PICO OS" {
                version = ua_version.clone();
            }
            if name == "Fire OS" {
                // the Android version in the hints says nothing of Fire OS's
                version = ua_version.clone();
            }
        }
        if name == "GNU/Linux" && ua_name == "Chrome OS" && hint_version == ua_version {
            name = ua_name.clone();
        }
        if name == "Android" && ua_name == "Chrome OS" {
            name = ua_name.clone();
            version.clear();
        }
        if name == "GNU/Linux" && ua_name == "Meta Horizon" {
            name = ua_name;
        }
        (name, version)
    }

    // --- clients ---------------------------------------------------------

    /// Fills the client fields; returns whether the client is a browser
    /// that exists on mobile devices only.
    fn client(&self, ua: &str, hints: &ClientHints, d: &mut Detection) -> bool {
        let simple = |list: &rules::NamedList| {
            list.first(ua)
                .map(|(r, g)| (r.name.fill(&g), build_version(r.version.fill(&g))))
        };
        if let Some((name, version)) = simple(&self.files.feed_readers) {
            d.client_type = "feed reader";
            d.client = name;
            d.client_version = version;
            return false;
        }
        // mobile apps: the app named by X-Requested-With wins
        let app = hints
            .app
            .as_deref()
            .and_then(|a| self.files.hint_apps.get(a));
        let from_ua = simple(&self.files.mobile_apps);
        if app.is_some() || from_ua.is_some() {
            let (mut name, mut version) = from_ua.unwrap_or_default();
            if let Some(app) = app {
                if *app != name {
                    name = app.clone();
                    version.clear();
                }
            }
            if !name.is_empty() {
                d.client_type = "mobile app";
                d.client = name;
                d.client_version = version;
                return false;
            }
        }
        for (kind, list) in [
            ("mediaplayer", &self.files.media_players),
            ("pim", &self.files.pim),
        ] {
            if let Some((name, version)) = simple(list) {
                d.client_type = kind;
                d.client = name;
                d.client_version = version;
                return false;
            }
        }
        if let Some(b) = self.browser(ua, hints) {
            let mobile_only = self.tables.is_mobile_only_browser(&b.code);
            d.client_type = "browser";
            d.client = b.name;
            d.client_version = b.version;
            d.engine = b.engine;
            d.engine_version = b.engine_version;
            return mobile_only;
        }
        if let Some((name, version)) = simple(&self.files.libraries) {
            d.client_type = "library";
            d.client = name;
            d.client_version = version;
        }
        false
    }

    fn engine_for(&self, rule: &NamedRule, version: &str, ua: &str) -> String {
        let mut engine = rule.engine_default.clone();
        for (from, e) in &rule.engine_versions {
            if version_compare(version, from).is_ge() {
                engine = e.clone();
            }
        }
        if engine.is_empty() {
            if let Some((r, g)) = self.files.engines.first(ua) {
                engine = r.name.fill(&g);
            }
        }
        engine
    }

    /// DeviceDetector's `Engine\Version`.
    fn engine_version(&self, ua: &str, engine: &str) -> String {
        if engine.is_empty() {
            return String::new();
        }
        if engine == "Gecko" || engine == "Clecko" {
            if let Some(g) = self.helpers.gecko_version.captures(ua) {
                return g.get(1).to_string();
            }
        }
        let pattern = {
            let mut map = self
                .engine_versions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(engine.to_string())
                .or_insert_with(|| {
                    let token = match engine {
                        "Blink" => "Chr[o0]me|Chromium|Cronet".to_string(),
                        "Arachne" => r"Arachne\/5\.".to_string(),
                        "LibWeb" => r"LibWeb\+LibJs".to_string(),
                        other => regex_syntax::escape(other),
                    };
                    std::sync::Arc::new(Pattern::plain(&format!(
                        r"(?:{token})\s*[/_]?\s*(\d[.\d]*)"
                    )))
                })
                .clone()
        };
        // PCRE's `(?(?=\d+\.\d)\d+[.\d]*|\d{1,7}(?=(?:\D|$)))`: a dotted
        // version as is; else a bare number of at most seven digits.
        let mut from = 0;
        while from < ua.len() {
            let hay = &ua[from..];
            let Some(g) = pattern.captures(hay) else {
                break;
            };
            let v = g.get(1);
            let digits = v.bytes().take_while(u8::is_ascii_digit).count();
            if v[digits..].starts_with('.')
                && v[digits + 1..].starts_with(|c: char| c.is_ascii_digit())
            {
                return v.to_string();
            }
            if digits <= 7 {
                return v[..digits].to_string();
            }
            let at = v.as_ptr() as usize - hay.as_ptr() as usize;
            from += at + digits;
        }
        String::new()
    }

    fn browser_from_ua(&self, ua: &str) -> Option<BrowserHit> {
        let (rule, g) = self.files.browsers.first(ua)?;
        let named = self.tables.browser(&rule.name.fill(&g))?;
        let version = build_version(rule.version.fill(&g));
        let engine = self.engine_for(rule, &version, ua);
        let engine_version = self.engine_version(ua, &engine);
        Some(BrowserHit {
            name: named.name.clone(),
            code: named.code.clone(),
            version,
            engine,
            engine_version,
        })
    }

    fn browser_from_hints(&self, hints: &ClientHints) -> Option<BrowserHit> {
        let list = if hints.full_version_list.is_empty() {
            &hints.brands
        } else {
            &hints.full_version_list
        };
        let mut hit: Option<BrowserHit> = None;
        for b in list {
            let brand = tables::BROWSER_HINT_ALIASES
                .iter()
                .find(|(hint, _)| *hint == b.brand)
                .map_or(b.brand.as_str(), |(_, name)| name);
            let key = tables::squash(brand);
            let found = self
                .tables
                .browser_fuzzy(&key)
                .or_else(|| self.tables.browser_fuzzy(&format!("{key}browser")))
                .or_else(|| {
                    key.strip_suffix("browser")
                        .and_then(|k| self.tables.browser_fuzzy(k))
                });
            if let Some(n) = found {
                hit = Some(BrowserHit {
                    name: n.name.clone(),
                    code: n.code.clone(),
                    version: b.version.clone(),
                    ..Default::default()
                });
                if n.name != "Chromium" && n.name != "Microsoft Edge" {
                    break;
                }
            }
        }
        let mut hit = hit?;
        if let Some(full) = hints.full_version.as_deref().filter(|v| !v.is_empty()) {
            hit.version = full.to_string();
        }
        hit.version = build_version(hit.version);
        Some(hit)
    }

    fn browser(&self, ua: &str, hints: &ClientHints) -> Option<BrowserHit> {
        let from_ua = self.browser_from_ua(ua).unwrap_or_default();
        let from_hints = self.browser_from_hints(hints);
        let mut b = match from_hints {
            Some(h) if !h.name.is_empty() && !h.version.is_empty() => {
                let mut b = h;
                if b.version.starts_with("202")
                    && b.version[3..].starts_with(|c: char| ('0'..='4').contains(&c))
                {
                    b.name = "Iridium".into();
                    b.code = "I1".into();
                    b.engine = from_ua.engine.clone();
                    b.engine_version = from_ua.engine_version.clone();
                }
                if b.version.starts_with("15") && from_ua.version.starts_with("114") {
                    b.name = "360 Secure Browser".into();
                    b.code = "3B".into();
                    b.engine = from_ua.engine.clone();
                    b.engine_version = from_ua.engine_version.clone();
                }
                if !from_ua.version.is_empty()
                    && ["A0", "AL", "HP", "JP", "NI", "OP", "VN"].contains(&b.code.as_str())
                {
                    b.version = from_ua.version.clone();
                }
                if b.code == "VV" {
                    b.version = from_ua.version.clone();
                }
                if (b.name == "Chromium" || b.name == "Chrome Webview")
                    && !from_ua.name.is_empty()
                    && !["CR", "CV", "AN"].contains(&from_ua.code.as_str())
                {
                    b.name = from_ua.name.clone();
                    b.code = from_ua.code.clone();
                    b.version = from_ua.version.clone();
                }
                if format!("{} Mobile", b.name) == from_ua.name {
                    b.name = from_ua.name.clone();
                    b.code = from_ua.code.clone();
                }
                if b.name != from_ua.name
                    && self.tables.browser_family(&b.code)
                        == self.tables.browser_family(&from_ua.code)
                {
                    b.engine = from_ua.engine.clone();
                    b.engine_version = from_ua.engine_version.clone();
                }
                if b.name == from_ua.name {
                    b.engine = from_ua.engine.clone();
                    b.engine_version = from_ua.engine_version.clone();
                }
                if !from_ua.version.is_empty()
                    && from_ua.version.starts_with(&b.version)
                    && version_compare(&b.version, &from_ua.version).is_lt()
                {
                    b.version = from_ua.version.clone();
                }
                if b.name == "DuckDuckGo Privacy Browser" {
                    b.version.clear();
                }
                if b.name == "Vewd Browser" {
                    b.engine = from_ua.engine.clone();
                    b.engine_version = from_ua.engine_version.clone();
                }
                if b.name == "Atom" || b.name == "Huawei Browser" {
                    b.version = from_ua.version.clone();
                }
                b
            }
            _ => from_ua,
        };
        let app = hints
            .app
            .as_deref()
            .and_then(|a| self.files.hint_browsers.get(a));
        if let Some(app) = app {
            if *app != b.name {
                b.name = app.clone();
                b.version.clear();
                b.code = self
                    .tables
                    .browser(app)
                    .map(|n| n.code.clone())
                    .unwrap_or_default();
                if self.helpers.chrome_safari.is_match(ua) {
                    b.engine = "Blink".into();
                    b.engine_version = self.engine_version(ua, "Blink");
                }
            }
        }
        if b.name.is_empty() || b.name.contains("Cypress") || b.name.contains("PhantomJS") {
            return None;
        }
        if b.engine == "Blink" && b.name == "Flow Browser" {
            b.engine_version.clear();
        }
        Some(b)
    }

    // --- device ----------------------------------------------------------

    fn device_from(&self, list: &DeviceList, ua: &str) -> Option<DeviceHit> {
        let (brand_rule, g) = list.first(ua)?;
        let mut hit = DeviceHit {
            device_type: brand_rule.device.as_deref().and_then(device_type_named),
            brand: brand_rule.brand.clone(),
            model: brand_rule
                .model
                .as_ref()
                .map(|t| build_model(t.fill(&g)))
                .unwrap_or_default(),
        };
        if brand_rule.has_models() {
            let Some((m, g)) = brand_rule.model(ua) else {
                return Some(hit);
            };
            hit.model = build_model(m.model.fill(&g));
            if let Some(b) = &m.brand {
                hit.brand = if b == "Unknown" {
                    String::new()
                } else {
                    b.clone()
                };
            }
            if let Some(t) = m.device.as_deref().and_then(device_type_named) {
                hit.device_type = Some(t);
            }
        }
        Some(hit)
    }

    fn has_desktop_fragment(&self, ua: &str) -> bool {
        self.helpers.desktop_fragment.is_match(ua) && !self.helpers.not_desktop.is_match(ua)
    }

    /// The user agent with the model from `Sec-CH-UA-Model` put back where
    /// Chromium's reduced user agent removed it.
    fn restored_ua<'a>(&self, ua: &'a str, hints: &ClientHints) -> std::borrow::Cow<'a, str> {
        let model = hints.model.as_deref().unwrap_or("").trim();
        if model.is_empty() {
            return ua.into();
        }
        if self.helpers.frozen_android.is_match(ua) {
            if let Some(at) = ua.find("Android ") {
                if let Some(end) = ua[at..].find(" AppleWebKit") {
                    let version = hints
                        .platform_version
                        .as_deref()
                        .filter(|v| !v.is_empty())
                        .unwrap_or("10");
                    return format!(
                        "{}Android {version}; {model}) AppleWebKit{}",
                        &ua[..at],
                        &ua[at + end + " AppleWebKit".len()..]
                    )
                    .into();
                }
            }
        }
        if self.has_desktop_fragment(ua) {
            if let Some(at) = ua.find("X11; Linux x86_64") {
                let end = at + "X11; Linux x86_64".len();
                return format!("{}; {model}{}", &ua[..end], &ua[end..]).into();
            }
        }
        ua.into()
    }

    fn device(&self, ua: &str, hints: &ClientHints, mobile_only_browser: bool, d: &mut Detection) {
        let restored = self.restored_ua(ua, hints);
        let ua: &str = &restored;
        let f = &self.files;
        let h = &self.helpers;
        let mut hit = None;
        if h.hbbtv.is_match(ua) {
            let mut tv = self.device_from(&f.televisions, ua).unwrap_or_default();
            tv.device_type = Some("tv");
            hit = Some(tv);
        } else if h.shell_tv.is_match(ua) {
            let mut tv = self.device_from(&f.shell_tv, ua).unwrap_or_default();
            tv.device_type = Some("tv");
            hit = Some(tv);
        }
        if hit.is_none() && h.notebook.is_match(ua) {
            hit = self.device_from(&f.notebooks, ua);
        }
        for list in [
            &f.consoles,
            &f.car_browsers,
            &f.cameras,
            &f.portable_media_players,
            &f.mobiles,
        ] {
            if hit.is_some() {
                break;
            }
            hit = self.device_from(list, ua);
        }
        let hit = hit.unwrap_or_default();
        let mut device = hit.device_type;
        let mut brand = hit.brand;
        let mut model = hit.model;

        if model.is_empty() {
            if let Some(m) = hints.model.as_deref() {
                model = m.trim().to_string();
            }
        }
        if brand.is_empty() {
            if let Some((r, g)) = f.vendor_fragments.first(ua) {
                brand = r.name.fill(&g);
            }
        }
        let os = d.os.as_str();
        let os_family = self.tables.os_family(os);
        let os_version = d.os_version.as_str();
        if brand.is_empty() && tables::APPLE_OS_NAMES.contains(&os) {
            brand = "Apple".into();
        }
        if d.client.starts_with("Puffin") {
            if h.puffin_desktop.is_match(ua) {
                device = Some("desktop");
            } else if h.puffin_phone.is_match(ua) {
                device = Some("smartphone");
            } else if h.puffin_tablet.is_match(ua) {
                device = Some("tablet");
            }
        }
        // Chrome on Android says "Mobile" on phones only
        if device.is_none() && os_family == "Android" && h.chrome.is_match(ua) {
            device = Some(if h.mobile_word.is_match(ua) {
                "smartphone"
            } else {
                "tablet"
            });
        }
        if device == Some("smartphone") && h.pad_apad.is_match(ua) {
            device = Some("tablet");
        }
        if device.is_none() && (h.android_tablet.is_match(ua) || h.opera_tablet.is_match(ua)) {
            device = Some("tablet");
        }
        if device.is_none() && h.android_mobile.is_match(ua) {
            device = Some("smartphone");
        }
        // Android before 2.0 ran on phones only, 3.x on tablets only
        if device.is_none() && os == "Android" && !os_version.is_empty() {
            if version_compare(os_version, "2.0").is_lt() {
                device = Some("smartphone");
            } else if version_compare(os_version, "3.0").is_ge()
                && version_compare(os_version, "4.0").is_lt()
            {
                device = Some("tablet");
            }
        }
        if device == Some("feature phone") && os_family == "Android" {
            device = Some("smartphone");
        }
        if device.is_none() && os == "Java ME" {
            device = Some("feature phone");
        }
        if os == "KaiOS" {
            device = Some("feature phone");
        }
        // Windows 8 and later with a touch screen: most are tablets
        if device.is_none()
            && (os == "Windows RT" || (os == "Windows" && version_compare(os_version, "8").is_ge()))
            && h.touch.is_match(ua)
        {
            device = Some("tablet");
        }
        if h.opera_tv_store.is_match(ua) {
            device = Some("tv");
        }
        if h.android_tv.is_match(ua) {
            device = Some("tv");
        }
        if device.is_none() && h.smart_tv.is_match(ua) {
            device = Some("tv");
        }
        if tables::TV_CLIENTS.contains(&d.client.as_str()) {
            device = Some("tv");
        }
        if os == "Coolita OS" {
            device = Some("tv");
            brand = "coocaa".into();
        }
        if device.is_none() && h.tv_fragment.is_match(ua) {
            device = Some("tv");
        }
        if device != Some("desktop") && ua.contains("Desktop") && self.has_desktop_fragment(ua) {
            device = Some("desktop");
        }
        if device.is_none() {
            device = form_factor_type(hints);
        }
        if device.is_none()
            && !os.is_empty()
            && os != "UNK"
            && !mobile_only_browser
            && tables::DESKTOP_OS_FAMILIES.contains(&os_family)
        {
            device = Some("desktop");
        }
        d.device_type = device;
        d.brand = brand;
        d.model = model;
    }
}

/// `Sec-CH-UA-Form-Factors`: the browser's own word on the device class.
fn form_factor_type(hints: &ClientHints) -> Option<&'static str> {
    hints.form_factors.iter().find_map(|f| {
        Some(match f.to_ascii_lowercase().as_str() {
            "automotive" => "car browser",
            "watch" => "wearable",
            "tablet" | "eink" => "tablet",
            "mobile" => "smartphone",
            "desktop" => "desktop",
            _ => return None,
        })
    })
}

/// Builds every list's automata on a thread of its own (see
/// [`Detector::compile_all`]), so that start-up pays only for loading the
/// rules. A request that needs a list before the thread has built it
/// builds it itself, or waits for the thread if it is building that list
/// (each list is built once, behind a `OnceLock`): the first requests get
/// the same answers, later.
pub fn compile_in_background(
    detector: impl std::ops::Deref<Target = Detector> + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name("device-rules".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let broken = detector.compile_all();
            release_freed_memory();
            tracing::debug!(
                took_ms = start.elapsed().as_millis() as u64,
                broken,
                "device rules built"
            );
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            // the rules still build on first use
            tracing::warn!(error = %e, "cannot start the device rules' build thread");
            None
        }
    }
}

/// Returns the heap memory freed by loading and building the rules to the
/// system (glibc keeps freed small allocations in its arenas, where the
/// compilers' scratch space stays counted in the resident set).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heap to the
    // system; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The rules embedded in the binary, loaded on first use in the process;
/// their automata are then built in the background.
pub fn embedded() -> Result<&'static Detector, &'static str> {
    static DETECTOR: OnceLock<Result<Detector, String>> = OnceLock::new();
    let mut loaded_now = false;
    let detector = DETECTOR
        .get_or_init(|| {
            loaded_now = true;
            Detector::load(&Source::Embedded).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(String::as_str)?;
    if loaded_now {
        let _build = compile_in_background(StaticRef(detector));
    }
    Ok(detector)
}

/// A `&'static Detector` that can move to the build thread.
struct StaticRef(&'static Detector);

impl std::ops::Deref for StaticRef {
    type Target = Detector;
    fn deref(&self) -> &Detector {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(truncate_version("120.0.6099.1", 1), "120.0");
        assert_eq!(truncate_version("120", 1), "120");
        assert_eq!(truncate_version("1.2.3", 0), "1");
        assert!(version_compare("8.1", "8").is_gt());
        assert!(version_compare("10", "8").is_gt());
        assert!(version_compare("2.3.4", "3.0").is_lt());
        assert_eq!(build_version("10_15_7".into()), "10.15.7");
        assert_eq!(build_model("SM_G900F TD".into()), "SM G900F");
        assert_eq!(build_model("Build".into()), "");
    }

    #[test]
    fn embedded_rules_detect_a_phone() {
        let d = embedded().unwrap();
        let ua = "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
        let r = d.detect(ua, &ClientHints::default());
        assert_eq!(r.os, "Android");
        assert_eq!(r.os_version, "13");
        assert_eq!(r.client, "Chrome Mobile");
        assert_eq!(r.engine, "Blink");
        assert_eq!(r.device_type, Some("smartphone"));
        assert_eq!(r.brand, "Samsung");
        assert_eq!(r.model, "Galaxy S23 Ultra");
    }
}

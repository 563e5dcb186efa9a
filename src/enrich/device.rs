//! Device detection: user agent + client hints → [`Device`].
//!
//! Why this shape: the disclosure promises device type, brand and model, OS
//! version, browser and engine. No single source gives all of them:
//!
//! * **uap-core** (`regexes.yaml`, maintained by the ua-parser project)
//!   gives browser, OS and device brand/model, and flags bots (device family
//!   "Spider"). It comes from the `ua-parser` crates.io package through
//!   `build.rs`, embedded as JSON, and runs on [`super::uap`] (same rules
//!   as the `ua-parser` crate, compiled as byte regexes for a fast start).
//! * **woothee** gives a coarse category (pc, smartphone, mobilephone,
//!   appliance, crawler) in ~1.5 µs and is the fallback for names that
//!   uap-core does not know.
//! * **Rules in this file** add what neither has: the device type (tablet,
//!   TV, console, car, wearable), the engine, newer bots and HTTP clients,
//!   and brand from a model code.
//! * **Client hints** win wherever they are given (browser and full version
//!   from the brand list, OS version from `platformVersion`, model from
//!   `Sec-CH-UA-Model`, type from mobile / form factors).
//!
//! Naming scheme (stable, used in reports):
//! * Browsers: the product name without platform suffix: "Chrome" (also on
//!   Android and iOS), "Firefox", "Safari" (also Mobile Safari), "Edge",
//!   "Opera", "Samsung Internet", "Internet Explorer"; web views are
//!   "Chrome WebView" and "Safari WebView". Unknown → "".
//! * OS: "Windows", "macOS", "iOS" (iPads too; the type says tablet),
//!   "Android", "Linux", "ChromeOS", "Ubuntu", ...; Windows versions are
//!   "11", "10", "8.1", "7", "XP", ...
//! * Engines: "Blink", "WebKit", "Gecko", "Trident", "EdgeHTML", "Presto".
//!
//! User agents are attacker-controlled: only the first [`MAX_UA_LEN`] bytes
//! are looked at, and no input makes detection panic.

use std::sync::{Arc, OnceLock};

use quick_cache::{sync::Cache, Equivalent};

use super::client_hints::{cap, Brand, ClientHints};
use super::uap::{Uap, UapError};
use crate::model::{Device, DeviceType};

/// Bytes of a user agent that are looked at; the rest is ignored.
pub const MAX_UA_LEN: usize = 512;

/// uap-core `regexes.yaml`, converted to JSON by `build.rs`.
static UAP_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/uap_regexes.json"));

/// Errors at this module's boundary.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The embedded uap-core dataset did not load.
    #[error(transparent)]
    Dataset(#[from] UapError),
}

/// The compiled uap-core rules, built once per process and shared by
/// every detector.
fn uap() -> Result<&'static Uap, &'static str> {
    static UAP: OnceLock<Result<Uap, String>> = OnceLock::new();
    UAP.get_or_init(|| Uap::from_json(UAP_JSON).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.as_str())
}

/// Thread-safe device detector with a bounded cache keyed on
/// (user agent, client hints).
pub struct DeviceDetector {
    cache: Option<Cache<(String, ClientHints), Arc<Device>>>,
    woothee: woothee::parser::Parser,
}

impl std::fmt::Debug for DeviceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceDetector")
            .field("cache_capacity", &self.cache.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

/// Borrowed form of the cache key, so a lookup allocates nothing.
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a ClientHints);

impl Equivalent<(String, ClientHints)> for KeyRef<'_> {
    fn equivalent(&self, key: &(String, ClientHints)) -> bool {
        self.0 == key.0 && *self.1 == key.1
    }
}

impl DeviceDetector {
    /// A detector caching up to `cache_capacity` results (0 disables the
    /// cache). Compiles the uap-core dataset on first use in the process;
    /// if that ever failed, detection falls back to woothee and rules.
    pub fn new(cache_capacity: usize) -> DeviceDetector {
        if let Err(e) = uap() {
            tracing::error!(
                error = e,
                "uap-core dataset unavailable; using woothee only"
            );
        }
        DeviceDetector {
            cache: (cache_capacity > 0).then(|| Cache::new(cache_capacity)),
            woothee: woothee::parser::Parser::new(),
        }
    }

    /// Like [`DeviceDetector::new`], but reports a broken dataset.
    pub fn try_new(cache_capacity: usize) -> Result<DeviceDetector, DeviceError> {
        if uap().is_err() {
            // compile again to return the typed error
            Uap::from_json(UAP_JSON)?;
        }
        Ok(DeviceDetector::new(cache_capacity))
    }

    /// Classifies one request. Never panics; unknown fields are "".
    pub fn detect(&self, ua: &str, hints: &ClientHints) -> Device {
        let ua = cap_ua(ua);
        let Some(cache) = &self.cache else {
            return self.detect_uncached(ua, hints);
        };
        if let Some(d) = cache.get(&KeyRef(ua, hints)) {
            return (*d).clone();
        }
        let d = self.detect_uncached(ua, hints);
        cache.insert((ua.to_string(), hints.clone()), Arc::new(d.clone()));
        d
    }

    fn detect_uncached(&self, ua: &str, hints: &ClientHints) -> Device {
        let ua = ua.trim();
        let lower = ua.to_ascii_lowercase();
        let mut d = Device::default();

        let w = self.woothee.parse(ua);
        let (w_name, w_cat, w_os, w_os_ver, w_ver) = match &w {
            Some(w) => (w.name, w.category, w.os, w.os_version.as_ref(), w.version),
            None => ("", "", "", "", ""),
        };
        let known = |s: &str| !s.is_empty() && s != "UNKNOWN";

        // --- uap-core: browser, OS, device --------------------------------
        let mut uap_spider = false;
        let mut uap_tablet = false;
        if let Ok(x) = uap() {
            if let Some(b) = x.browser(ua) {
                if b.family != "Other" {
                    d.browser = browser_name(&b.family).to_string();
                    d.browser_version =
                        join_version(&[b.major.as_deref(), b.minor.as_deref(), b.patch.as_deref()]);
                }
            }
            if let Some(o) = x.os(ua) {
                if o.os != "Other" {
                    d.os = os_name(&o.os).to_string();
                    d.os_version = join_version(&[
                        o.major.as_deref(),
                        o.minor.as_deref(),
                        o.patch.as_deref(),
                        o.patch_minor.as_deref(),
                    ]);
                }
            }
            if let Some(dev) = x.device(ua) {
                if dev.device == "Spider" {
                    uap_spider = true;
                } else {
                    uap_tablet = names_a_tablet(&dev.device)
                        || dev.model.as_deref().is_some_and(names_a_tablet);
                    let brand = dev.brand.as_deref().unwrap_or("");
                    if !brand.is_empty() && !brand.starts_with("Generic") {
                        d.brand = brand.to_string();
                        d.model = dev.model.as_deref().unwrap_or("").to_string();
                    }
                }
            }
        }

        // --- woothee fallback for names -----------------------------------
        if d.browser.is_empty() && known(w_name) && w_cat != "crawler" {
            d.browser = browser_name(w_name).to_string();
            if known(w_ver) {
                d.browser_version = w_ver.to_string();
            }
        }
        if d.os.is_empty() && known(w_os) {
            let (os, ver) = woothee_os(w_os, w_os_ver);
            d.os = os.to_string();
            d.os_version = ver;
        }
        if d.os == "Windows" && d.os_version.is_empty() && w_os.starts_with("Windows ") {
            d.os_version = woothee_os(w_os, w_os_ver).1;
        }

        // --- bots ---------------------------------------------------------
        d.bot = uap_spider || w_cat == "crawler" || is_bot_ua(&lower);

        // --- client hints win where given ---------------------------------
        apply_hints(&mut d, hints);

        // --- engine -------------------------------------------------------
        let (engine, engine_version) = engine(&lower, ua, &d);
        d.engine = engine.to_string();
        d.engine_version = engine_version;

        // --- device type ----------------------------------------------------
        d.device_type = if d.bot {
            DeviceType::Bot
        } else {
            device_type(&lower, hints, w_cat, uap_tablet, &d)
        };

        // Android model code without a uap-core brand (e.g. no "Build/"):
        // brand from the model code.
        if d.brand.is_empty() && !d.bot {
            if let Some(m) = android_model(ua) {
                let b = brand_for_model(m);
                if !b.is_empty() {
                    d.brand = b;
                    d.model = m.to_string();
                }
            }
        }
        // Brand/model for Apple devices that uap leaves generic.
        if d.brand.is_empty() {
            if let Some((brand, model)) = apple_device(&lower) {
                d.brand = brand.to_string();
                d.model = model.to_string();
            }
        }
        if d.bot {
            d.brand.clear();
            d.model.clear();
        }
        d
    }
}

/// Cuts a user agent to [`MAX_UA_LEN`] bytes on a char boundary.
fn cap_ua(ua: &str) -> &str {
    if ua.len() <= MAX_UA_LEN {
        return ua;
    }
    let mut end = MAX_UA_LEN;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

fn join_version(parts: &[Option<&str>]) -> String {
    let mut v = String::new();
    for p in parts {
        match p {
            Some(p) if !p.is_empty() => {
                if !v.is_empty() {
                    v.push('.');
                }
                v.push_str(p);
            }
            _ => break,
        }
    }
    v
}

/// Maps uap-core and woothee browser families onto this module's scheme.
pub fn browser_name(family: &str) -> &str {
    match family {
        "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome Frame" => "Chrome",
        "Chrome Mobile WebView" | "Webview" => "Chrome WebView",
        "Mobile Safari" => "Safari",
        "Mobile Safari UI/WKWebView" => "Safari WebView",
        "Firefox Mobile" | "Firefox iOS" => "Firefox",
        "Edge Mobile" | "Edge iOS" => "Edge",
        "Opera Mobile" => "Opera",
        "IE" | "IE Mobile" => "Internet Explorer",
        "Samsung Internet" | "SamsungBrowser" => "Samsung Internet",
        "Yandex Browser" | "YaBrowser" => "Yandex Browser",
        other => other,
    }
}

/// Maps uap-core OS families onto this module's scheme.
pub fn os_name(family: &str) -> &str {
    match family {
        "Mac OS X" | "Mac OS" | "Mac OSX" => "macOS",
        "Chrome OS" | "Chromium OS" => "ChromeOS",
        "WatchOS" => "watchOS",
        other => other,
    }
}

/// woothee OS names ("Windows 10", "Mac OSX", "iPhone") → (os, version).
fn woothee_os(os: &str, version: &str) -> (&'static str, String) {
    let version = if version == "UNKNOWN" { "" } else { version };
    if let Some(v) = os.strip_prefix("Windows ") {
        let v = match v {
            "UNKNOWN Ver" | "" => "",
            other => other,
        };
        return match v {
            "Phone OS" => ("Windows Phone", version.to_string()),
            "CE" => ("Windows CE", String::new()),
            _ => ("Windows", v.to_string()),
        };
    }
    let name = match os {
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Android" => "Android",
        "Linux" => "Linux",
        "ChromeOS" => "ChromeOS",
        "BlackBerry" | "BlackBerry 10" => "BlackBerry OS",
        "FreeBSD" => "FreeBSD",
        "NetBSD" => "NetBSD",
        "OpenBSD" => "OpenBSD",
        "SunOS" => "Solaris",
        "Firefox OS" => "Firefox OS",
        "PlayStation 4" | "PlayStation Vita" | "PlayStation 3" | "PSP" => "PlayStation",
        "Nintendo Switch" | "Nintendo Wii" | "Nintendo Wii U" | "Nintendo 3DS" | "Nintendo DSi"
        | "Nintendo DS" => "Nintendo",
        "Xbox" | "Xbox 360" | "Xbox One" => "Xbox",
        _ => return ("", String::new()),
    };
    (name, version.to_string())
}

/// HTTP clients, headless browsers and crawlers that uap-core or woothee
/// miss (matched as lower-case substrings). Kept specific: a bare "bot"
/// would also match phone brands such as "Cubot".
const BOT_TOKENS: &[&str] = &[
    // headless browsers and automation
    "headlesschrome",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "lighthouse",
    "pagespeed",
    "electron/",
    // HTTP libraries and command-line tools
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "java/1.",
    "apache-httpclient",
    "libwww-perl",
    "lwp::",
    "guzzlehttp",
    "ruby/",
    "httpie",
    "postmanruntime",
    "insomnia",
    "scrapy",
    "reqwest",
    "hyper/",
    // AI crawlers and assistants
    "gptbot",
    "chatgpt-user",
    "oai-searchbot",
    "claudebot",
    "claude-web",
    "claude-user",
    "anthropic-ai",
    "perplexitybot",
    "perplexity-user",
    "ccbot",
    "bytespider",
    "amazonbot",
    "google-extended",
    "meta-externalagent",
    "meta-externalfetcher",
    "cohere-ai",
    "diffbot",
    "imagesiftbot",
    "youbot",
    "timpibot",
    "omgili",
    // search engines, SEO and monitoring
    "googlebot",
    "google-inspectiontool",
    "adsbot-google",
    "mediapartners-google",
    "bingbot",
    "bingpreview",
    "applebot",
    "duckduckbot",
    "yandexbot",
    "yandex.com/bots",
    "baiduspider",
    "petalbot",
    "seznambot",
    "ahrefsbot",
    "semrushbot",
    "mj12bot",
    "dotbot",
    "dataforseobot",
    "blexbot",
    "serpstatbot",
    "facebookexternalhit",
    "facebookcatalog",
    "twitterbot",
    "linkedinbot",
    "slackbot",
    "discordbot",
    "telegrambot",
    "embedly",
    "uptimerobot",
    "pingdom",
    "statuscake",
    "site24x7",
    "datadog",
    "newrelicpinger",
    // generic markers
    "crawler",
    "spider",
    "slurp",
    "scraper",
    "headless",
    "bot/",
    "bot;",
    "bot)",
    "bot-",
    "-bot",
    "_bot",
    "+http",
];

/// True when a lower-cased user agent names a bot or HTTP client, or is
/// empty (real browsers always send one).
pub fn is_bot_ua(lower: &str) -> bool {
    let t = lower.trim();
    t.is_empty() || BOT_TOKENS.iter().any(|tok| t.contains(tok))
}

/// Applies client hints on top of what the user agent said.
fn apply_hints(d: &mut Device, h: &ClientHints) {
    // Browser: the most specific non-GREASE brand; full versions preferred.
    let pick = |list: &[Brand]| -> Option<(String, String)> {
        let mut best: Option<(u8, &Brand)> = None;
        for b in list {
            let (name, rank) = hint_brand(&b.brand);
            if name.is_empty() {
                continue;
            }
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, b));
            }
        }
        best.map(|(_, b)| (hint_brand(&b.brand).0.to_string(), b.version.clone()))
    };
    if let Some((name, version)) = pick(&h.full_version_list).or_else(|| pick(&h.brands)) {
        // Chromium's brand list never distinguishes WebViews or mobile;
        // keep the UA's name when it is the same product.
        if browser_family_key(&d.browser) != browser_family_key(&name) {
            d.browser = name;
        }
        if !version.is_empty() {
            let keep_longer =
                d.browser_version.starts_with(&version) && d.browser_version.len() > version.len();
            if !keep_longer {
                d.browser_version = version;
            }
        }
    }

    if let Some(p) = h.platform.as_deref() {
        let os = match p {
            "Windows" => "Windows",
            "macOS" | "Mac OS X" => "macOS",
            "Android" => "Android",
            "Linux" => "Linux",
            "Chrome OS" | "Chromium OS" | "ChromeOS" => "ChromeOS",
            "iOS" => "iOS",
            "Fuchsia" => "Fuchsia",
            _ => "",
        };
        if !os.is_empty() {
            if d.os != os {
                d.os_version.clear();
            }
            d.os = os.to_string();
        }
    }
    if let Some(v) = h.platform_version.as_deref() {
        let v = v.trim();
        if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            if d.os == "Windows" {
                d.os_version = windows_from_platform_version(v).to_string();
            } else if !d.os.is_empty() && !v.starts_with("0") {
                d.os_version = v.trim_end_matches(".0").to_string();
            }
        }
    }
    if let Some(m) = h.model.as_deref() {
        let m = m.trim();
        if !m.is_empty() {
            d.model = m.to_string();
            d.brand = brand_for_model(m);
        }
    }
}

/// `Sec-CH-UA-Platform-Version` on Windows: 13+ is Windows 11, 1-12 is
/// Windows 10, 0.x is Windows 7 / 8 / 8.1.
pub fn windows_from_platform_version(v: &str) -> &'static str {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    match (major, minor) {
        (13.., _) => "11",
        (1..=12, _) => "10",
        (0, 3) => "8.1",
        (0, 2) => "8",
        (0, 1) => "7",
        _ => "",
    }
}

/// Client-hint brand → (name in this scheme, specificity rank).
fn hint_brand(brand: &str) -> (&str, u8) {
    match brand {
        "Google Chrome" => ("Chrome", 2),
        "Microsoft Edge" => ("Edge", 3),
        "Opera" | "Opera GX" => ("Opera", 3),
        "Samsung Internet" => ("Samsung Internet", 3),
        "Chromium" => ("Chromium", 1),
        "HeadlessChrome" => ("HeadlessChrome", 3),
        "Android WebView" => ("Chrome WebView", 3),
        "" => ("", 0),
        b => (b, 3),
    }
}

fn browser_family_key(name: &str) -> &str {
    match name {
        "Chrome WebView" | "Chromium" => "Chrome",
        n => n,
    }
}

/// Brand for a model code from `Sec-CH-UA-Model`: asks uap-core with a
/// synthetic Android user agent, then falls back to known prefixes.
pub fn brand_for_model(model: &str) -> String {
    const PREFIXES: &[(&str, &str)] = &[
        ("SM-", "Samsung"),
        ("GT-", "Samsung"),
        ("Galaxy", "Samsung"),
        ("Pixel", "Google"),
        ("Nexus", "Google"),
        ("Redmi", "Xiaomi"),
        ("POCO", "Xiaomi"),
        ("Mi ", "Xiaomi"),
        ("M2", "Xiaomi"),
        ("2201", "Xiaomi"),
        ("CPH", "OPPO"),
        ("RMX", "Realme"),
        ("moto", "Motorola"),
        ("XT", "Motorola"),
        ("LM-", "LG"),
        ("ONEPLUS", "OnePlus"),
        ("IN20", "OnePlus"),
        ("KB20", "OnePlus"),
        ("NE2", "OnePlus"),
        ("CPH2", "OnePlus"),
        ("V2", "vivo"),
        ("vivo", "vivo"),
        ("Nokia", "Nokia"),
        ("TA-", "Nokia"),
        ("HUAWEI", "Huawei"),
        ("ELE-", "Huawei"),
        ("VOG-", "Huawei"),
        ("Lenovo", "Lenovo"),
        ("TB-", "Lenovo"),
        ("KF", "Amazon"),
        ("AFT", "Amazon"),
        ("Fairphone", "Fairphone"),
        ("FP", "Fairphone"),
        ("ASUS", "Asus"),
        ("Xperia", "Sony"),
        ("iPhone", "Apple"),
        ("iPad", "Apple"),
    ];
    let model = cap(model);
    if let Ok(x) = uap() {
        let synthetic = format!("Mozilla/5.0 (Linux; Android 14; {model} Build/UP1A) Mobile");
        if let Some(dev) = x.device(&synthetic) {
            if let Some(b) = dev.brand.as_deref() {
                if !b.is_empty() && !b.starts_with("Generic") {
                    return b.to_string();
                }
            }
        }
    }
    PREFIXES
        .iter()
        .find(|(p, _)| model.starts_with(p))
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The model token of an Android UA: `(Linux; Android 13; SM-X710)` or
/// `...; SM-X710 Build/...`. Chromium's reduced placeholder "K" is ignored.
fn android_model(ua: &str) -> Option<&str> {
    let start = ua.find("Android")?;
    let paren_end = ua[start..].find(')').map(|i| start + i)?;
    let inside = &ua[start..paren_end];
    let last = inside.rsplit(';').next()?.trim();
    let model = last.split(" Build/").next()?.trim();
    let valid = model.len() >= 2
        && model.len() <= 40
        && !model.starts_with("Android")
        && model != "K"
        && !model.eq_ignore_ascii_case("mobile")
        && !model.eq_ignore_ascii_case("tablet")
        && !model.contains('/')
        && model.chars().any(|c| c.is_ascii_alphabetic());
    valid.then_some(model)
}

/// Apple hardware named in the user agent, when uap-core left it generic.
fn apple_device(lower: &str) -> Option<(&'static str, &'static str)> {
    if lower.contains("ipad") {
        Some(("Apple", "iPad"))
    } else if lower.contains("iphone") {
        Some(("Apple", "iPhone"))
    } else if lower.contains("ipod") {
        Some(("Apple", "iPod"))
    } else if lower.contains("apple tv") || lower.contains("appletv") {
        Some(("Apple", "AppleTV"))
    } else if lower.contains("watchos") || lower.contains("apple watch") {
        Some(("Apple", "Watch"))
    } else {
        None
    }
}

/// The version that follows `token` (e.g. "chrome/") in `ua`, up to the
/// next character that is not a digit or dot.
fn version_after(lower: &str, ua: &str, token: &str) -> Option<String> {
    let start = lower.find(token)? + token.len();
    let rest = ua.get(start..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let v = rest[..end].trim_end_matches('.');
    (!v.is_empty()).then(|| v.to_string())
}

fn major(v: &str) -> u32 {
    v.split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Rendering engine and its version. Blink's version follows Chromium's
/// (taken from `Chrome/`); WebKit's from `AppleWebKit/`; Gecko's from `rv:`.
fn engine(lower: &str, ua: &str, d: &Device) -> (&'static str, String) {
    let v = |tok: &str| version_after(lower, ua, tok).unwrap_or_default();
    // iOS and iPadOS browsers (also when they ask for the desktop site and
    // say "Macintosh") must use WebKit.
    let ios = lower.contains("iphone")
        || lower.contains("ipad")
        || lower.contains("ipod")
        || lower.contains("crios/")
        || lower.contains("fxios/")
        || lower.contains("edgios/");
    if lower.contains("trident/") {
        return ("Trident", v("trident/"));
    }
    if lower.contains("msie ") && !lower.contains("opera") {
        return ("Trident", String::new());
    }
    if lower.contains(" edge/") && !ios && !lower.contains("android") {
        return ("EdgeHTML", v(" edge/"));
    }
    if lower.contains("presto/") {
        return ("Presto", v("presto/"));
    }
    if lower.contains("opera") && !lower.contains("applewebkit") && !lower.contains("gecko/") {
        return ("Presto", String::new());
    }
    if lower.contains("applewebkit/") {
        // All iOS browsers must use WebKit.
        if !ios {
            if let Some(cv) = version_after(lower, ua, "chrome/")
                .or_else(|| version_after(lower, ua, "chromium/"))
                .or_else(|| version_after(lower, ua, "headlesschrome/"))
            {
                if major(&cv) >= 28 {
                    return ("Blink", cv);
                }
                return ("WebKit", v("applewebkit/"));
            }
            // Chromium-based browsers that drop Chrome/ (rare) — trust hints.
            if matches!(
                d.browser.as_str(),
                "Chrome" | "Edge" | "Opera" | "Samsung Internet"
            ) && major(&d.browser_version) >= 28
            {
                return ("Blink", d.browser_version.clone());
            }
        }
        return ("WebKit", v("applewebkit/"));
    }
    if lower.contains("gecko/") && !lower.contains("like gecko") {
        return ("Gecko", v("rv:"));
    }
    if lower.contains("khtml") {
        return ("KHTML", v("khtml/"));
    }
    ("", String::new())
}

/// Device class from (in order) form-factor hints, explicit UA tokens,
/// the mobile hint, woothee's category, and the OS.
fn device_type(
    lower: &str,
    hints: &ClientHints,
    w_cat: &str,
    uap_tablet: bool,
    d: &Device,
) -> DeviceType {
    let has = |tokens: &[&str]| tokens.iter().any(|t| lower.contains(t));

    // Form factors are the browser's own word on the device.
    for f in &hints.form_factors {
        match f.to_ascii_lowercase().as_str() {
            "automotive" => return DeviceType::Car,
            "watch" => return DeviceType::Wearable,
            "tablet" | "eink" => return DeviceType::Tablet,
            "xr" => return DeviceType::Other,
            _ => {}
        }
    }

    // Cars: Tesla's QtCarBrowser, Android Automotive.
    if has(&[
        "tesla",
        "qtcarbrowser",
        "android automotive",
        "; automotive",
        "carplay",
    ]) {
        return DeviceType::Car;
    }
    // Game consoles (handhelds included).
    if has(&[
        "playstation",
        "xbox",
        "nintendo",
        "ouya",
        "(wii;",
        "wiiu",
        "steam deck",
        "valve steam gamepad",
    ]) {
        return DeviceType::Console;
    }
    // TVs and streaming sticks: SmartTV, Tizen/webOS TV, HbbTV, Apple TV,
    // Chromecast (CrKey), Sony BRAVIA, Amazon Fire TV (AFT*), Roku, ...
    if has(&[
        "smarttv",
        "smart-tv",
        "smart tv",
        "hbbtv",
        "appletv",
        "apple tv",
        "tvos",
        "crkey",
        "bravia",
        "googletv",
        "google tv",
        "android tv",
        "androidtv",
        "roku",
        "netcast",
        "viera",
        "aquos",
        "philipstv",
        "nettv",
        "fire tv",
        "firetv",
        "; tv;",
        "tv safari",
        "large screen",
        "dtv",
        "sonydtv",
        "shield android tv",
        "tizen tv",
        "web0s",
        "vidaa",
        "opera tv",
        "inettvbrowser",
        "maple",
    ]) || (lower.contains("tizen") && lower.contains("tv"))
        || (lower.contains("webos") && lower.contains("tv"))
        || is_fire_tv(lower)
    {
        return DeviceType::Tv;
    }
    // Wearables: Apple Watch, Wear OS, Galaxy Watch, Tizen wearables.
    if has(&[
        "watchos",
        "watch os",
        "apple watch",
        "model/watch",
        "wear os",
        "wearos",
        "; wear ",
        "smartwatch",
        "galaxy watch",
        "sm-r8",
        "sm-r9",
        "tizen wearable",
    ]) {
        return DeviceType::Wearable;
    }
    // Tablets: iPad, Kindle / Silk, "Tablet", Samsung SM-T/SM-X/SM-P, and
    // Android without "Mobile" (Chrome and Firefox add it on phones only).
    if has(&[
        "ipad",
        "tablet",
        "kindle",
        "silk/",
        "playbook",
        "galaxy tab",
        "; sm-t",
        "; sm-x",
        "; sm-p",
        "; gt-p",
        "lenovo tab",
        "; tb-",
        "mediapad",
        "xoom",
        "nexus 7",
        "nexus 9",
        "nexus 10",
        "; kf",
        "touchpad",
    ]) {
        return DeviceType::Tablet;
    }
    // The device name uap-core found says tablet ("Galaxy Tab", "MI PAD",
    // "Transformer Pad", "GOCLEVER TAB 9300"): many Android tablets'
    // browsers put "Mobile" in the user agent all the same.
    if uap_tablet {
        return DeviceType::Tablet;
    }
    let android = lower.contains("android");
    let mobile_token = has(&["mobile", "iphone", "ipod", "phone", "opera mini"]);
    if hints
        .form_factors
        .iter()
        .any(|f| f.eq_ignore_ascii_case("tablet"))
    {
        return DeviceType::Tablet;
    }
    match hints.mobile {
        Some(true) => return DeviceType::Smartphone,
        Some(false) if android => return DeviceType::Tablet,
        _ => {}
    }
    if android && !mobile_token {
        return DeviceType::Tablet;
    }
    if mobile_token || android {
        return DeviceType::Smartphone;
    }
    match w_cat {
        "smartphone" | "mobilephone" => return DeviceType::Smartphone,
        "pc" => return DeviceType::Desktop,
        "appliance" => return DeviceType::Other,
        _ => {}
    }
    if hints
        .form_factors
        .iter()
        .any(|f| f.eq_ignore_ascii_case("desktop"))
    {
        return DeviceType::Desktop;
    }
    match d.os.as_str() {
        "Windows" | "macOS" | "Linux" | "ChromeOS" | "Ubuntu" | "Fedora" | "Debian" | "FreeBSD"
        | "OpenBSD" | "NetBSD" | "Solaris" => DeviceType::Desktop,
        "iOS" | "Windows Phone" | "BlackBerry OS" | "Symbian OS" | "Firefox OS" => {
            DeviceType::Smartphone
        }
        _ => DeviceType::Other,
    }
}

/// True when a device family or model named by uap-core calls itself a
/// tablet: a word "tab", "tablet", "pad" or "kindle" (split at anything
/// that is not a letter or digit, so "ThinkPad" and "Notepad" do not
/// count). "iPad" is recognised from the user agent itself.
fn names_a_tablet(name: &str) -> bool {
    name.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.eq_ignore_ascii_case("tab")
            || w.eq_ignore_ascii_case("tablet")
            || w.eq_ignore_ascii_case("pad")
            || w.eq_ignore_ascii_case("kindle")
    })
}

/// Amazon Fire TV models are "AFT" + capitals, e.g. "; AFTMM Build/".
fn is_fire_tv(lower: &str) -> bool {
    lower.match_indices("; aft").any(|(i, _)| {
        lower[i + 5..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_platform_versions() {
        assert_eq!(windows_from_platform_version("15.0.0"), "11");
        assert_eq!(windows_from_platform_version("13.0.0"), "11");
        assert_eq!(windows_from_platform_version("10.0.0"), "10");
        assert_eq!(windows_from_platform_version("0.3.0"), "8.1");
        assert_eq!(windows_from_platform_version("garbage"), "");
    }

    #[test]
    fn tablet_words() {
        assert!(names_a_tablet("GOCLEVER TAB 9300"));
        assert!(names_a_tablet("POV_TAB-P701"));
        assert!(names_a_tablet("Transformer Pad TF300TL"));
        assert!(names_a_tablet("Kindle Fire"));
        assert!(!names_a_tablet("ThinkPad"));
        assert!(!names_a_tablet("Tablo"));
        assert!(!names_a_tablet(""));
    }

    #[test]
    fn cap_ua_respects_char_boundaries() {
        let s = "é".repeat(600);
        let c = cap_ua(&s);
        assert!(c.len() <= MAX_UA_LEN);
        assert!(c.is_char_boundary(c.len()));
    }

    #[test]
    fn brand_from_model() {
        assert_eq!(brand_for_model("SM-S918B"), "Samsung");
        assert_eq!(brand_for_model("Pixel 8"), "Google");
        assert_eq!(brand_for_model(""), "");
    }
}

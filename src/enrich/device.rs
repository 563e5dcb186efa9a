//! Device detection: user agent + client hints → [`Device`], in Matomo's
//! terms.
//!
//! Detection itself is Matomo DeviceDetector's rules on sparsam's engine
//! ([`super::device_rules`]): device type, brand and model, OS and
//! version, browser (client) and version, engine and version, bots, with
//! the names Matomo reports ("smartphone", "phablet", "Chrome Mobile",
//! "Mac", "GNU/Linux", brand names from DeviceDetector's brand table).
//! This module adds what a collector needs on top:
//!
//! * a bounded cache keyed on (user agent, client hints), so a repeated
//!   user agent costs one hash lookup;
//! * versions cut to major.minor, as Matomo's reports show them
//!   ([`VERSION_MINOR_PARTS`]), which also keeps report cardinality low;
//! * what counts as a bot for counting: DeviceDetector's bots, plus HTTP
//!   libraries (DeviceDetector's client type "library") and the automation
//!   and crawler markers in [`BOT_TOKENS`], which DeviceDetector reports
//!   as ordinary clients (Matomo never sees them: its tracker needs
//!   JavaScript, while sparsam also takes plain HTTP hits).
//!
//! User agents are attacker-controlled: only the first [`MAX_UA_LEN`] bytes
//! are looked at, and no input makes detection panic.

use std::path::Path;
use std::sync::Arc;

use quick_cache::{sync::Cache, Equivalent};

use super::client_hints::ClientHints;
use super::device_rules::{self, truncate_version, Detection, Detector, DetectorError};
use crate::model::{Device, DeviceType};

/// Bytes of a user agent that are looked at; the rest is ignored.
pub const MAX_UA_LEN: usize = 512;

/// Brand and model of a device that names none (Matomo's label).
pub const UNKNOWN: &str = "Unknown";

/// Version parts kept after the major version (Matomo's default
/// truncation: "120.0", "17.1", "10").
pub const VERSION_MINOR_PARTS: usize = 1;

/// Errors at this module's boundary.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The rule files did not load.
    #[error("device rules: {0}")]
    Rules(String),
}

impl From<DetectorError> for DeviceError {
    fn from(e: DetectorError) -> Self {
        DeviceError::Rules(e.to_string())
    }
}

/// Where the detector's rules come from.
enum Rules {
    Embedded(&'static Detector),
    Loaded(Arc<Detector>),
}

/// Thread-safe device detector with a bounded cache keyed on
/// (user agent, client hints).
pub struct DeviceDetector {
    cache: Option<Cache<(String, ClientHints), Arc<Device>>>,
    rules: Rules,
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
    /// A detector on the embedded rules, caching up to `cache_capacity`
    /// results (0 disables the cache).
    ///
    /// # Panics
    /// Only if the embedded rules do not load, which the test suite rules
    /// out; use [`DeviceDetector::try_new`] to get the error instead.
    pub fn new(cache_capacity: usize) -> DeviceDetector {
        match DeviceDetector::try_new(cache_capacity) {
            Ok(d) => d,
            Err(e) => panic!("embedded device rules: {e}"),
        }
    }

    /// A detector on the embedded rules.
    pub fn try_new(cache_capacity: usize) -> Result<DeviceDetector, DeviceError> {
        let rules = device_rules::embedded().map_err(|e| DeviceError::Rules(e.to_string()))?;
        Ok(DeviceDetector {
            cache: (cache_capacity > 0).then(|| Cache::new(cache_capacity)),
            rules: Rules::Embedded(rules),
        })
    }

    /// A detector on the rule files in `dir` (a newer copy of
    /// DeviceDetector's `regexes/` folder, configured as
    /// `device.rules_dir`), or the embedded ones for `None`. Errors name
    /// the config key.
    pub fn with_rules_dir(
        cache_capacity: usize,
        dir: Option<&Path>,
    ) -> Result<DeviceDetector, DeviceError> {
        let Some(dir) = dir else {
            return DeviceDetector::try_new(cache_capacity);
        };
        let keyed = |e: String| {
            DeviceError::Rules(format!(
                "config key `device.rules_dir` ({}): {e}",
                dir.display()
            ))
        };
        device_rules::rules::check_dir(dir).map_err(|e| keyed(e.to_string()))?;
        let detector = Detector::load(&device_rules::rules::Source::Dir(dir.to_path_buf()))
            .map_err(|e| keyed(e.to_string()))?;
        let detector = Arc::new(detector);
        let _build = device_rules::compile_in_background(detector.clone());
        Ok(DeviceDetector {
            cache: (cache_capacity > 0).then(|| Cache::new(cache_capacity)),
            rules: Rules::Loaded(detector),
        })
    }

    /// The rule engine (for tools and the conformance test).
    pub fn rules(&self) -> &Detector {
        match &self.rules {
            Rules::Embedded(d) => d,
            Rules::Loaded(d) => d,
        }
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
        let found = self.rules().detect(ua, hints);
        let automation = is_bot_ua(&ua.to_ascii_lowercase());
        to_device(found, automation)
    }
}

/// The stored form of a detection.
fn to_device(d: Detection, automation: bool) -> Device {
    let bot = d.bot.is_some() || d.client_type == "library" || automation;
    if bot {
        return Device {
            device_type: DeviceType::Bot,
            bot: true,
            ..Device::default()
        };
    }
    // Matomo counts devices of unknown brand or model as "Unknown" in its
    // brand and model reports; stored so, they are counted, not dropped
    // as empty values are.
    let known = |s: String| if s.is_empty() { UNKNOWN.to_string() } else { s };
    Device {
        device_type: d
            .device_type
            .and_then(DeviceType::from_matomo)
            .unwrap_or(DeviceType::Other),
        brand: known(d.brand),
        model: known(d.model),
        os_version: truncate_version(&d.os_version, VERSION_MINOR_PARTS).to_string(),
        os: d.os,
        browser_version: truncate_version(&d.client_version, VERSION_MINOR_PARTS).to_string(),
        browser: d.client,
        engine_version: truncate_version(&d.engine_version, VERSION_MINOR_PARTS).to_string(),
        engine: d.engine,
        bot: false,
    }
}

/// Labels stored before detection used Matomo's names, with the name a
/// Matomo user knows. Only unambiguous ones: a stored "Chrome" may have
/// been Chrome or Chrome Mobile, so it stays.
const LEGACY_OS: &[(&str, &str)] = &[
    ("macOS", "Mac"),
    ("Linux", "GNU/Linux"),
    ("ChromeOS", "Chrome OS"),
];
const LEGACY_BROWSERS: &[(&str, &str)] = &[
    ("Edge", "Microsoft Edge"),
    ("Samsung Internet", "Samsung Browser"),
    ("Chrome WebView", "Chrome Webview"),
];

/// The label a report shows for a value stored under `dimension` (a
/// roll-up dimension name): Matomo's name where the stored label predates
/// it (device types "car" and "other", and the names in `LEGACY_OS` and
/// `LEGACY_BROWSERS`, also in front of a version), else the value as
/// stored. The one place where stored and reported device names differ.
pub fn report_label(dimension: &str, stored: &str) -> Option<String> {
    let table = match dimension {
        "device_type" => {
            return match stored {
                "car" => Some(DeviceType::Car.matomo_label().to_string()),
                "other" => Some(DeviceType::Other.matomo_label().to_string()),
                _ => None,
            }
        }
        "os" | "os_version" => LEGACY_OS,
        "browser" | "browser_version" => LEGACY_BROWSERS,
        _ => return None,
    };
    table.iter().find_map(|(old, new)| {
        let rest = stored.strip_prefix(old)?;
        (rest.is_empty() || rest.starts_with(' ')).then(|| format!("{new}{rest}"))
    })
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

/// HTTP clients, headless browsers and crawlers that DeviceDetector does
/// not call bots
/// (matched as lower-case substrings). Kept specific: a bare "bot"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_ua_respects_char_boundaries() {
        let s = "é".repeat(600);
        let c = cap_ua(&s);
        assert!(c.len() <= MAX_UA_LEN);
        assert!(c.is_char_boundary(c.len()));
    }

    #[test]
    fn matomo_names_and_truncated_versions() {
        let det = DeviceDetector::new(16);
        let ua = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
        let d = det.detect(ua, &ClientHints::default());
        assert_eq!(d.device_type, DeviceType::Smartphone);
        assert_eq!(
            (d.brand.as_str(), d.model.as_str()),
            ("Samsung", "Galaxy S23 Ultra")
        );
        assert_eq!((d.os.as_str(), d.os_version.as_str()), ("Android", "14"));
        assert_eq!(d.browser, "Chrome Mobile");
        assert_eq!(d.browser_version, "124.0");
        assert_eq!(
            (d.engine.as_str(), d.engine_version.as_str()),
            ("Blink", "124.0")
        );
        assert!(!d.bot);
        // the cached answer is the same
        assert_eq!(det.detect(ua, &ClientHints::default()), d);
    }

    #[test]
    fn former_labels_read_as_matomo_names() {
        assert_eq!(report_label("os", "macOS").as_deref(), Some("Mac"));
        assert_eq!(
            report_label("os_version", "macOS 14.4").as_deref(),
            Some("Mac 14.4")
        );
        assert_eq!(report_label("os", "macOSX"), None);
        assert_eq!(
            report_label("browser", "Edge").as_deref(),
            Some("Microsoft Edge")
        );
        assert_eq!(
            report_label("device_type", "car").as_deref(),
            Some("car browser")
        );
        assert_eq!(report_label("device_type", "smartphone"), None);
        assert_eq!(report_label("brand", "Edge"), None);
    }

    #[test]
    fn bots_and_http_libraries_count_as_bots() {
        let det = DeviceDetector::new(0);
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "python-requests/2.31.0",
            "curl/8.5.0",
            "",
        ] {
            let d = det.detect(ua, &ClientHints::default());
            assert!(d.bot, "{ua}");
            assert_eq!(d.device_type, DeviceType::Bot, "{ua}");
        }
    }
}

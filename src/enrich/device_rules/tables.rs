//! DeviceDetector's name tables: short codes and canonical names of
//! operating systems, browsers and device brands, OS and browser families,
//! browsers that exist on mobile devices only. Loaded from
//! `assets/device-detector/tables.yml` (generated from the same package as
//! the rule files by `scripts/refresh-device-detector.sh`).
//!
//! The few short lists that DeviceDetector keeps in code rather than in
//! its tables (desktop OS families, TV clients, Apple OS names, client-hint
//! name aliases) are constants here, next to their use.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

/// OS families that DeviceDetector counts as desktop.
pub const DESKTOP_OS_FAMILIES: &[&str] = &[
    "AmigaOS",
    "IBM",
    "GNU/Linux",
    "Mac",
    "Unix",
    "Windows",
    "BeOS",
    "Chrome OS",
    "OpenVMS",
];

/// Clients that only run on TVs.
pub const TV_CLIENTS: &[&str] = &[
    "Kylo",
    "Espial TV Browser",
    "LUJO TV Browser",
    "LogicUI TV Browser",
    "Open TV Browser",
    "Seraphic Sraf",
    "Opera Devices",
    "Crow Browser",
    "Vewd Browser",
    "TiviMate",
    "Quick Search TV",
    "QJY TV Browser",
    "TV Bro",
];

/// Operating systems on Apple hardware only.
pub const APPLE_OS_NAMES: &[&str] = &["iPadOS", "tvOS", "watchOS", "iOS", "Mac"];

/// Client-hint platform names → DeviceDetector's OS name.
pub const OS_HINT_ALIASES: &[(&str, &str)] = &[
    ("Linux", "GNU/Linux"),
    ("MacOS", "Mac"),
    ("macOS", "Mac"),
    ("Mac OS X", "Mac"),
    ("Cloud Phone 2.4", "Puffin OS"),
];

/// Client-hint brand names → DeviceDetector's browser name.
pub const BROWSER_HINT_ALIASES: &[(&str, &str)] = &[
    ("Google Chrome", "Chrome"),
    ("Android WebView", "Chrome Webview"),
    ("DuckDuckGo", "DuckDuckGo Privacy Browser"),
    ("Microsoft Edge WebView2", "Edge WebView"),
    ("Miui Browser", "Mi Browser"),
    ("XiaoMiBrowser", "Mi Browser"),
    ("Edge", "Microsoft Edge"),
    ("Norton Secure Browser", "Norton Private Browser"),
    ("Vewd Core", "Vewd Browser"),
];

#[derive(Deserialize)]
struct Raw {
    operating_systems: indexmap_like::Ordered,
    os_families: FxHashMap<String, Vec<String>>,
    available_browsers: indexmap_like::Ordered,
    browser_families: FxHashMap<String, Vec<String>>,
    mobile_only_browsers: Vec<String>,
    device_brands: indexmap_like::Ordered,
}

/// A JSON object read in order (the OS table is searched in order when
/// matching client-hint platforms, as DeviceDetector does).
mod indexmap_like {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    pub struct Ordered(pub Vec<(String, String)>);

    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a mapping of code to name")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, String>()? {
                        out.push((k, v));
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V)
        }
    }
}

/// Code and canonical name.
#[derive(Debug, Clone)]
pub struct Named {
    pub code: String,
    pub name: String,
}

/// The tables, indexed for the lookups detection makes.
#[derive(Debug, Default)]
pub struct Tables {
    /// OS in table order (client hints are matched in this order).
    pub oss: Vec<Named>,
    os_by_lower: FxHashMap<String, usize>,
    os_family_by_code: FxHashMap<String, String>,
    browsers: Vec<Named>,
    browser_by_lower: FxHashMap<String, usize>,
    browser_by_squashed: FxHashMap<String, usize>,
    browser_family_by_code: FxHashMap<String, String>,
    mobile_only: FxHashSet<String>,
    brand_by_lower: FxHashMap<String, Named>,
}

/// DeviceDetector's `fuzzyCompare` key: lower case without spaces.
pub fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Tables {
    pub fn parse(yaml: &str) -> Result<Tables, serde_yaml::Error> {
        let raw: Raw = serde_yaml::from_str(yaml)?;
        let mut t = Tables::default();
        for (code, name) in raw.operating_systems.0 {
            t.os_by_lower.insert(name.to_lowercase(), t.oss.len());
            t.oss.push(Named { code, name });
        }
        for (family, codes) in raw.os_families {
            for c in codes {
                t.os_family_by_code.insert(c, family.clone());
            }
        }
        for (code, name) in raw.available_browsers.0 {
            let i = t.browsers.len();
            t.browser_by_lower.entry(name.to_lowercase()).or_insert(i);
            t.browser_by_squashed.entry(squash(&name)).or_insert(i);
            t.browsers.push(Named { code, name });
        }
        for (family, codes) in raw.browser_families {
            for c in codes {
                t.browser_family_by_code.insert(c, family.clone());
            }
        }
        t.mobile_only = raw.mobile_only_browsers.into_iter().collect();
        for (code, name) in raw.device_brands.0 {
            t.brand_by_lower
                .entry(name.to_lowercase())
                .or_insert(Named { code, name });
        }
        Ok(t)
    }

    /// The OS named `name` (any case): code and canonical name.
    pub fn os(&self, name: &str) -> Option<&Named> {
        self.os_by_lower
            .get(&name.to_lowercase())
            .map(|&i| &self.oss[i])
    }

    /// The family of an OS given by name or code ("" when none).
    pub fn os_family(&self, name_or_code: &str) -> &str {
        let code = self
            .os(name_or_code)
            .map_or(name_or_code, |n| n.code.as_str());
        self.os_family_by_code.get(code).map_or("", String::as_str)
    }

    /// The browser named `name` (any case).
    pub fn browser(&self, name: &str) -> Option<&Named> {
        self.browser_by_lower
            .get(&name.to_lowercase())
            .map(|&i| &self.browsers[i])
    }

    /// The browser whose squashed name equals `squashed` (client hints).
    pub fn browser_fuzzy(&self, squashed: &str) -> Option<&Named> {
        self.browser_by_squashed
            .get(squashed)
            .map(|&i| &self.browsers[i])
    }

    /// The family of a browser code ("" when none).
    pub fn browser_family(&self, code: &str) -> &str {
        self.browser_family_by_code
            .get(code)
            .map_or("", String::as_str)
    }

    pub fn is_mobile_only_browser(&self, code: &str) -> bool {
        self.mobile_only.contains(code)
    }

    /// A device brand by name (any case): code and canonical name.
    pub fn brand(&self, name: &str) -> Option<&Named> {
        self.brand_by_lower.get(&name.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_load() {
        let t = Tables::parse(super::super::rules::TABLES).unwrap();
        assert_eq!(t.os("android").unwrap().code, "AND");
        assert_eq!(t.os_family("Android"), "Android");
        assert_eq!(t.os_family("Ubuntu"), "GNU/Linux");
        let chrome = t.browser("chrome mobile").unwrap();
        assert_eq!(t.browser_family(&chrome.code), "Chrome");
        assert!(!t.is_mobile_only_browser(&chrome.code));
        assert!(t.is_mobile_only_browser(&t.browser("Opera Mini").unwrap().code));
        assert_eq!(t.brand("samsung").unwrap().name, "Samsung");
        assert_eq!(squash("Opera GX"), "operagx");
    }
}

//! User-agent client hints: the `Sec-CH-UA-*` request headers and the
//! JSON that `navigator.userAgentData.getHighEntropyValues()` returns.
//!
//! Why: Chromium's reduced user agent freezes the OS version and replaces
//! the device model with "K"; the real values only arrive as client hints.
//! The tracker posts the JavaScript form, Matomo's tracker sends the same
//! shape as `uadata`, and browsers send the headers after `Accept-CH`.
//! Both forms end up in one [`ClientHints`] value that device detection
//! (`super::device`) prefers over the user-agent string.
//!
//! Everything here is attacker-controlled: values are capped in length,
//! lists in size, and parsing never panics (malformed input is dropped).

use serde::{Deserialize, Serialize};

/// Longest header value (bytes) that is looked at; longer ones are cut.
pub const MAX_VALUE_LEN: usize = 512;
/// Most brands kept from one list.
pub const MAX_BRANDS: usize = 16;

/// One `(brand, version)` pair of `Sec-CH-UA` or `Sec-CH-UA-Full-Version-List`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Brand {
    pub brand: String,
    pub version: String,
}

/// Client hints of one request. Every field is optional: an empty `Vec` or
/// `None` means the hint was not sent. GREASE brands are already removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ClientHints {
    /// `Sec-CH-UA`: brands with major versions.
    pub brands: Vec<Brand>,
    /// `Sec-CH-UA-Full-Version-List`: brands with full versions.
    pub full_version_list: Vec<Brand>,
    /// `Sec-CH-UA-Mobile` (`?1` / `?0`).
    pub mobile: Option<bool>,
    /// `Sec-CH-UA-Platform`, e.g. "Windows", "Android", "macOS".
    pub platform: Option<String>,
    /// `Sec-CH-UA-Platform-Version`, e.g. "15.0.0".
    pub platform_version: Option<String>,
    /// `Sec-CH-UA-Model`, e.g. "SM-S918B" (empty on desktops: kept as `None`).
    pub model: Option<String>,
    /// `Sec-CH-UA-Form-Factors`, e.g. ["Desktop"], ["Mobile"], ["Tablet"].
    pub form_factors: Vec<String>,
    /// `Sec-CH-UA-Arch`, e.g. "x86", "arm".
    pub arch: Option<String>,
    /// `Sec-CH-UA-Bitness`, e.g. "64".
    pub bitness: Option<String>,
    /// `Sec-CH-UA-Full-Version` (deprecated by browsers, still sent by
    /// some), e.g. "120.0.6099.71".
    pub full_version: Option<String>,
    /// `X-Requested-With`: the Android app that hosts a web view, e.g.
    /// "org.telegram.messenger" ("XMLHttpRequest", which scripts send, is
    /// dropped).
    pub app: Option<String>,
}

impl ClientHints {
    /// True when no hint at all was given.
    pub fn is_empty(&self) -> bool {
        self == &ClientHints::default()
    }

    /// Builds hints from request headers; names are matched
    /// case-insensitively, unknown headers are ignored, and a malformed
    /// value leaves its field unset.
    pub fn from_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> ClientHints {
        let mut h = ClientHints::default();
        for (name, value) in headers {
            let value = cap(value);
            let name = name.trim();
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("sec-ch-ua") {
                h.brands = parse_brand_list(value);
            } else if is("sec-ch-ua-full-version-list") {
                h.full_version_list = parse_brand_list(value);
            } else if is("sec-ch-ua-mobile") {
                h.mobile = match value.trim() {
                    "?1" => Some(true),
                    "?0" => Some(false),
                    _ => None,
                };
            } else if is("sec-ch-ua-platform") {
                h.platform = sf_string(value);
            } else if is("sec-ch-ua-platform-version") {
                h.platform_version = sf_string(value);
            } else if is("sec-ch-ua-model") {
                h.model = sf_string(value);
            } else if is("sec-ch-ua-form-factors") || is("sec-ch-ua-form-factor") {
                h.form_factors = parse_sf_list(value)
                    .into_iter()
                    .filter_map(|(item, _)| non_empty(item))
                    .take(MAX_BRANDS)
                    .collect();
            } else if is("sec-ch-ua-arch") {
                h.arch = sf_string(value);
            } else if is("sec-ch-ua-bitness") {
                h.bitness = sf_string(value);
            } else if is("sec-ch-ua-full-version") {
                h.full_version = sf_string(value);
            } else if is("x-requested-with") || is("http-x-requested-with") {
                h.app = sf_string(value).filter(|a| !a.eq_ignore_ascii_case("xmlhttprequest"));
            }
        }
        h
    }

    /// These hints with gaps filled from `base`: per field, a value given
    /// here wins and `base` supplies the fields not given here. Used for
    /// hints sent in an event body (here) over the request headers' (base).
    pub fn or(&self, base: &ClientHints) -> ClientHints {
        fn list<T: Clone>(mine: &[T], theirs: &[T]) -> Vec<T> {
            if mine.is_empty() { theirs } else { mine }.to_vec()
        }
        ClientHints {
            brands: list(&self.brands, &base.brands),
            full_version_list: list(&self.full_version_list, &base.full_version_list),
            mobile: self.mobile.or(base.mobile),
            platform: self.platform.clone().or_else(|| base.platform.clone()),
            platform_version: self
                .platform_version
                .clone()
                .or_else(|| base.platform_version.clone()),
            model: self.model.clone().or_else(|| base.model.clone()),
            form_factors: list(&self.form_factors, &base.form_factors),
            arch: self.arch.clone().or_else(|| base.arch.clone()),
            bitness: self.bitness.clone().or_else(|| base.bitness.clone()),
            full_version: self
                .full_version
                .clone()
                .or_else(|| base.full_version.clone()),
            app: self.app.clone().or_else(|| base.app.clone()),
        }
    }

    /// Parses the tracker's JSON (`getHighEntropyValues` output, or Matomo's
    /// `uadata` parameter, which has the same shape).
    pub fn from_json(json: &str) -> Result<ClientHints, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// The JavaScript shape: `{brands: [{brand, version}], mobile, platform,
/// platformVersion, model, fullVersionList, formFactors, architecture,
/// bitness}`. Unknown fields are ignored; every field may be missing.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UaDataJson {
    brands: Vec<Brand>,
    full_version_list: Vec<Brand>,
    mobile: Option<bool>,
    platform: Option<String>,
    platform_version: Option<String>,
    model: Option<String>,
    form_factors: Vec<String>,
    #[serde(alias = "arch")]
    architecture: Option<String>,
    bitness: Option<String>,
    #[serde(alias = "uaFullVersion")]
    full_version: Option<String>,
}

impl From<UaDataJson> for ClientHints {
    fn from(j: UaDataJson) -> ClientHints {
        let opt = |s: Option<String>| s.and_then(|s| non_empty(cap(&s).to_string()));
        ClientHints {
            brands: clean_brands(j.brands),
            full_version_list: clean_brands(j.full_version_list),
            mobile: j.mobile,
            platform: opt(j.platform),
            platform_version: opt(j.platform_version),
            model: opt(j.model),
            form_factors: j
                .form_factors
                .into_iter()
                .filter_map(|s| non_empty(cap(&s).to_string()))
                .take(MAX_BRANDS)
                .collect(),
            arch: opt(j.architecture),
            bitness: opt(j.bitness),
            full_version: opt(j.full_version),
            app: None,
        }
    }
}

impl<'de> Deserialize<'de> for ClientHints {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UaDataJson::deserialize(d).map(ClientHints::from)
    }
}

/// True for the made-up "GREASE" brands Chromium adds so that servers do
/// not match on exact lists: "Not A;Brand", "Not-A.Brand", "Not/A)Brand",
/// ")Not;A=Brand", "Not_A Brand", ... They all spell "Not", "A", "Brand"
/// with punctuation in between.
pub fn is_grease(brand: &str) -> bool {
    let lower = brand.to_ascii_lowercase();
    match (lower.find("not"), lower.rfind("brand")) {
        (Some(n), Some(b)) => n < b,
        _ => false,
    }
}

fn clean_brands(brands: Vec<Brand>) -> Vec<Brand> {
    brands
        .into_iter()
        .filter(|b| !b.brand.trim().is_empty() && !is_grease(&b.brand))
        // Trimmed again after the cut, which can end on whitespace; else a
        // kept brand would change when cleaned a second time.
        .map(|b| Brand {
            brand: cap(b.brand.trim()).trim_end().to_string(),
            version: cap(b.version.trim()).trim_end().to_string(),
        })
        .take(MAX_BRANDS)
        .collect()
}

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Cuts a value to at most [`MAX_VALUE_LEN`] bytes on a char boundary.
pub(crate) fn cap(s: &str) -> &str {
    if s.len() <= MAX_VALUE_LEN {
        return s;
    }
    let mut end = MAX_VALUE_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses `"Chromium";v="124", "Google Chrome";v="124"` into brands.
fn parse_brand_list(value: &str) -> Vec<Brand> {
    let items = parse_sf_list(value)
        .into_iter()
        .map(|(brand, params)| Brand {
            brand,
            version: params
                .into_iter()
                .find(|(k, _)| k == "v")
                .map(|(_, v)| v)
                .unwrap_or_default(),
        })
        .collect();
    clean_brands(items)
}

/// A structured-field string (`"Pixel 8"`, as browsers send it), or a
/// bare value as people type it (`Pixel 8`), which is taken whole. Empty
/// strings give `None`.
fn sf_string(value: &str) -> Option<String> {
    let value = value.trim();
    if !value.starts_with('"') {
        return non_empty(value.to_string());
    }
    let mut items = parse_sf_list(value);
    if items.len() != 1 {
        return None;
    }
    non_empty(items.swap_remove(0).0)
}

/// A small, forgiving parser for RFC 8941 lists of strings or tokens with
/// parameters: `"a";v="1", "b";v="2"`. Returns (item, [(key, value)]).
/// Malformed input never panics; it yields whatever parsed cleanly.
fn parse_sf_list(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() || out.len() >= MAX_BRANDS * 2 {
            break;
        }
        let item = parse_bare_item(&mut chars);
        let mut params = Vec::new();
        loop {
            skip_ws(&mut chars);
            if chars.peek() != Some(&';') {
                break;
            }
            chars.next();
            skip_ws(&mut chars);
            let key: String = take_token(&mut chars);
            let val = if chars.peek() == Some(&'=') {
                chars.next();
                parse_bare_item(&mut chars)
            } else {
                String::new()
            };
            if params.len() < 8 {
                params.push((key, val));
            }
        }
        out.push((item, params));
        // Skip anything up to the next comma (garbage is ignored).
        for c in chars.by_ref() {
            if c == ',' {
                break;
            }
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_ws(chars: &mut Chars<'_>) {
    while matches!(chars.peek(), Some(' ' | '\t')) {
        chars.next();
    }
}

fn take_token(chars: &mut Chars<'_>) -> String {
    let mut s = String::new();
    while let Some(&c) = chars.peek() {
        if c == ',' || c == ';' || c == '=' || c == '"' || c.is_whitespace() {
            break;
        }
        s.push(c);
        chars.next();
    }
    s
}

fn parse_bare_item(chars: &mut Chars<'_>) -> String {
    if chars.peek() != Some(&'"') {
        return take_token(chars);
    }
    chars.next();
    let mut s = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    s.push(n);
                }
            }
            '"' => break,
            _ => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sec_ch_ua_and_strips_grease() {
        let h = ClientHints::from_headers(
            [
                (
                    "Sec-CH-UA",
                    r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
                ),
                ("sec-ch-ua-mobile", "?1"),
                ("SEC-CH-UA-PLATFORM", r#""Android""#),
                ("Sec-CH-UA-Model", r#""SM-S918B""#),
                ("Sec-CH-UA-Form-Factors", r#""Mobile""#),
            ]
            .into_iter(),
        );
        assert_eq!(h.brands.len(), 2);
        assert_eq!(h.brands[1].brand, "Google Chrome");
        assert_eq!(h.brands[1].version, "124");
        assert_eq!(h.mobile, Some(true));
        assert_eq!(h.platform.as_deref(), Some("Android"));
        assert_eq!(h.model.as_deref(), Some("SM-S918B"));
        assert_eq!(h.form_factors, vec!["Mobile".to_string()]);
    }

    #[test]
    fn string_hints_quoted_or_bare() {
        let h = |v: &str| {
            ClientHints::from_headers(
                [("Sec-CH-UA-Model", v), ("Sec-CH-UA-Platform-Version", v)].into_iter(),
            )
        };
        for (value, want) in [
            (r#""Pixel 8""#, Some("Pixel 8")),
            ("Pixel 8", Some("Pixel 8")),
            ("  Pixel 8 Pro ", Some("Pixel 8 Pro")),
            (r#""SM-S918B""#, Some("SM-S918B")),
            ("SM-S918B", Some("SM-S918B")),
            (r#""""#, None),
            ("", None),
            (r#""a", "b""#, None),
        ] {
            let got = h(value);
            assert_eq!(got.model.as_deref(), want, "{value:?}");
            assert_eq!(got.platform_version.as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn body_hints_fill_gaps_from_header_hints() {
        let header = ClientHints::from_headers(
            [
                (
                    "Sec-CH-UA",
                    r#""Chromium";v="124", "Google Chrome";v="124""#,
                ),
                ("Sec-CH-UA-Mobile", "?1"),
                ("Sec-CH-UA-Platform", r#""Android""#),
                ("Sec-CH-UA-Model", r#""Pixel 7""#),
            ]
            .into_iter(),
        );
        let body =
            ClientHints::from_json(r#"{"model":"Pixel 8","platformVersion":"14.0.0"}"#).unwrap();
        let merged = body.or(&header);
        assert_eq!(merged.model.as_deref(), Some("Pixel 8"), "body wins");
        assert_eq!(merged.platform_version.as_deref(), Some("14.0.0"));
        assert_eq!(merged.platform.as_deref(), Some("Android"), "header fills");
        assert_eq!(merged.mobile, Some(true));
        assert_eq!(merged.brands, header.brands);
        assert_eq!(ClientHints::default().or(&header), header);
        assert_eq!(body.or(&ClientHints::default()), body);
    }

    #[test]
    fn grease_variants() {
        for g in [
            "Not A;Brand",
            "Not-A.Brand",
            "Not/A)Brand",
            ")Not;A=Brand",
            "Not_A Brand",
            "Not?A_Brand",
        ] {
            assert!(is_grease(g), "{g}");
        }
        for b in ["Google Chrome", "Chromium", "Microsoft Edge", "Brave"] {
            assert!(!is_grease(b), "{b}");
        }
    }

    #[test]
    fn json_form_and_matomo_uadata() {
        let h = ClientHints::from_json(
            r#"{"brands":[{"brand":"Not A(Brand","version":"99"},{"brand":"Microsoft Edge","version":"121"}],
                "mobile":false,"platform":"Windows","platformVersion":"15.0.0","model":"",
                "fullVersionList":[{"brand":"Microsoft Edge","version":"121.0.2277.83"}],
                "formFactors":["Desktop"],"architecture":"x86","bitness":"64","extra":1}"#,
        )
        .unwrap();
        assert_eq!(h.brands.len(), 1);
        assert_eq!(h.full_version_list[0].version, "121.0.2277.83");
        assert_eq!(h.platform_version.as_deref(), Some("15.0.0"));
        assert_eq!(h.model, None);
        assert_eq!(h.arch.as_deref(), Some("x86"));
        assert!(ClientHints::from_json("{}").unwrap().is_empty());
        assert!(ClientHints::from_json("[1,2]").is_err());
    }

    /// Found by the client_hints round-trip property: a long brand cut at
    /// MAX_VALUE_LEN right after a space kept the trailing space, so the
    /// cleaned hints were not stable under a second cleaning.
    #[test]
    fn cut_brands_are_trimmed_again() {
        let long = format!("{} {}", "a".repeat(MAX_VALUE_LEN - 1), "b".repeat(10));
        let json = serde_json::json!({"brands": [{"brand": long, "version": "1"}]});
        let h = ClientHints::from_json(&json.to_string()).unwrap();
        assert_eq!(h.brands[0].brand, "a".repeat(MAX_VALUE_LEN - 1));
        let header = format!("\"{long}\";v=\"1\"");
        let h = ClientHints::from_headers([("sec-ch-ua", header.as_str())].into_iter());
        assert!(!h.brands[0].brand.ends_with(' '));
    }

    #[test]
    fn malformed_headers_never_panic() {
        let long = "\"".repeat(10_000) + "é;v=\\";
        for v in [
            "",
            "\"",
            ";;;,,,",
            "\"a\\",
            "?2",
            "\"x\";v",
            "é\"ü\";v=\"",
            long.as_str(),
        ] {
            let _ = ClientHints::from_headers(
                [
                    ("sec-ch-ua", v),
                    ("sec-ch-ua-mobile", v),
                    ("sec-ch-ua-platform", v),
                    ("sec-ch-ua-form-factors", v),
                ]
                .into_iter(),
            );
        }
    }
}

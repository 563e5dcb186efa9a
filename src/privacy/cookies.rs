//! Which cookies sparsam causes, read from the code and the config that
//! set them instead of being asserted.
//!
//! - The collector's opt-out cookie: its name and lifetime come from the
//!   config (`privacy.optout_cookie`, `optout_cookie_days`); the opt-out
//!   form (`POST /optout`) is the one route that sets it, and the server
//!   watches every response for any other `Set-Cookie`
//!   (`http::cookie_watch`).
//! - The tracker script: its cookie writes are found by reading the
//!   embedded script ([`scan_script`]). A write inside the `optOut`/`optIn`
//!   functions is the opt-out cookie on the website's own domain; any other
//!   write, a write that cannot be read, or the use of web storage counts
//!   as tracking.
//!
//! The privacy notice and the audit view both describe cookies from
//! [`tracker_scan`] and the config, so a tracker that started writing a cookie would be
//! reported as tracking by both, not contradicted by a fixed sentence.

use serde::Serialize;

/// Functions of the tracker that may write its opt-out cookie.
const OPTOUT_FUNCTIONS: [&str; 2] = ["optOut", "optIn"];
/// Web storage a tracker could use instead of cookies.
const STORAGE_APIS: [&str; 3] = ["localStorage", "sessionStorage", "indexedDB"];
const SECS_PER_DAY: u64 = 86_400;

/// A cookie the tracker script sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScriptCookie {
    pub name: String,
    /// Lifetime in whole days (rounded up; 0 = until the browser closes).
    pub days: u32,
    /// The script function that writes it, e.g. `optOut`.
    pub set_by: String,
}

/// What the tracker script does with cookies and storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScriptScan {
    /// Cookies its opt-out functions set (a write with a lifetime above 0).
    pub optout_cookies: Vec<ScriptCookie>,
    /// Cookies written anywhere else, by name (`?` when the write could
    /// not be read). Each one is a tracking cookie.
    pub other_cookie_writes: Vec<String>,
    /// Web storage APIs the script mentions.
    pub web_storage: Vec<String>,
}

impl ScriptScan {
    /// True when the script stores anything in the browser beyond the
    /// opt-out cookie.
    pub fn tracks(&self) -> bool {
        !self.other_cookie_writes.is_empty() || !self.web_storage.is_empty()
    }
}

/// Reads `script` for cookie writes (`….cookie = '…'`) and web storage.
pub fn scan_script(script: &str) -> ScriptScan {
    let mut scan = ScriptScan::default();
    for (at, _) in script.match_indices(".cookie") {
        let after = script[at + ".cookie".len()..].trim_start();
        // A read (`d.cookie)`, `d.cookie ==`) is not a write.
        if !after.starts_with('=') || after.starts_with("==") {
            continue;
        }
        let value = after[1..].trim_start();
        let written = literal(value).and_then(parse_cookie);
        let line_start = script[..at].rfind('\n').map_or(0, |i| i + 1);
        let function = function_name(&script[line_start..at]);
        match (written, function) {
            (Some((name, max_age)), Some(f)) if OPTOUT_FUNCTIONS.contains(&f) => {
                if max_age.is_some_and(|s| s > 0) && f == "optOut" {
                    let secs = max_age.unwrap_or(0);
                    scan.optout_cookies.push(ScriptCookie {
                        name,
                        days: u32::try_from(secs.div_ceil(SECS_PER_DAY)).unwrap_or(u32::MAX),
                        set_by: f.to_string(),
                    });
                }
            }
            (Some((name, _)), _) => scan.other_cookie_writes.push(name),
            (None, _) => scan.other_cookie_writes.push("?".into()),
        }
    }
    for api in STORAGE_APIS {
        if script.contains(api) {
            scan.web_storage.push(api.to_string());
        }
    }
    scan
}

/// The text of a quoted string literal at the start of `s` (no template
/// substitutions, no escapes).
fn literal(s: &str) -> Option<&str> {
    let q = s.chars().next().filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let body = &s[1..];
    let end = body.find(q)?;
    let text = &body[..end];
    (!text.contains('\\') && !text.contains("${")).then_some(text)
}

/// `name=value; max-age=N; …` → name and max-age in seconds.
fn parse_cookie(text: &str) -> Option<(String, Option<u64>)> {
    let mut parts = text.split(';');
    let (name, _) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let max_age = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().parse::<u64>().ok())
            .flatten()
    });
    Some((name.to_string(), max_age))
}

/// The object-literal function a line defines (`  optOut: () => …`):
/// the identifier before the line's last `:`.
fn function_name(line_before: &str) -> Option<&str> {
    let (left, _) = line_before.rsplit_once(':')?;
    let name = left
        .trim_end()
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()?;
    (!name.is_empty()).then_some(name)
}

/// The scan of the tracker script embedded in this binary, made once. With
/// `privacy.optout_cookie` (the collector's own opt-out cookie, set by
/// `POST /optout`) it is every cookie sparsam causes, for the notice and the
/// audit view; the server's responses are watched separately while it runs.
pub fn tracker_scan() -> &'static ScriptScan {
    static SCAN: std::sync::OnceLock<ScriptScan> = std::sync::OnceLock::new();
    SCAN.get_or_init(|| scan_script(crate::http::tracker::SOURCE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tracker_sets_only_its_optout_cookie() {
        let scan = scan_script(crate::http::tracker::SOURCE);
        assert!(!scan.tracks(), "{scan:?}");
        assert_eq!(
            scan.optout_cookies,
            vec![ScriptCookie {
                name: "sparsam_optout".into(),
                days: 400,
                set_by: "optOut".into(),
            }]
        );
    }

    #[test]
    fn other_writes_storage_and_unreadable_writes_count_as_tracking() {
        let s = scan_script(
            "w.x = { optOut: () => (d.cookie = 'o=1; max-age=86400') }\n\
             const id = () => (d.cookie = 'uid=abc; max-age=999')\n",
        );
        assert_eq!(s.optout_cookies[0].name, "o");
        assert_eq!(s.optout_cookies[0].days, 1);
        assert_eq!(s.other_cookie_writes, vec!["uid".to_string()]);
        assert!(s.tracks());

        let s = scan_script("  optOut: () => (document.cookie = `o=${v}`)\n");
        assert_eq!(s.other_cookie_writes, vec!["?".to_string()]);
        assert!(s.tracks());

        let s = scan_script("localStorage.setItem('a', 1); if (d.cookie == '') {}");
        assert!(s.other_cookie_writes.is_empty());
        assert_eq!(s.web_storage, vec!["localStorage".to_string()]);
        assert!(s.tracks());

        let s = scan_script("  optIn: () => (d.cookie = 'o=; max-age=0')\n");
        assert!(!s.tracks() && s.optout_cookies.is_empty(), "{s:?}");
    }
}

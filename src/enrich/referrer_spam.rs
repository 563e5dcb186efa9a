//! Referrer spam: hits whose referrer names a host of a known spam list.
//!
//! Why: spam bots fake referrers so their sites show up in analytics
//! reports; their hits are no visits and would distort every figure. The
//! maintained list Matomo uses (`assets/referrer-spam/`, public domain,
//! provenance in its README) is embedded in the binary; operators add hosts
//! of their own with `referrer_spam.extra_hosts`. A referrer matches when
//! its host is listed or is a subdomain of a listed host.
//!
//! Lookup walks the referrer host's suffixes at label boundaries
//! (`a.b.spam.example`, `b.spam.example`, `spam.example`, `example`) and
//! looks each up in a hash set, so its cost depends on the number of
//! labels, not on the length of the list. Hosts are compared in their
//! ASCII (punycode) form: that is how a parsed URL names them, and listed
//! or configured Unicode names are converted once when the sets are built.

use std::sync::OnceLock;

use rustc_hash::FxHashSet;
use serde::Deserialize;

/// The embedded list, one host per line.
const LIST: &str = include_str!("../../assets/referrer-spam/referrer-spam.txt");

/// `[referrer_spam]` in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferrerSpamConfig {
    /// Further spam hosts (subdomains match too), in addition to the
    /// embedded list.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `extra_hosts` in their ASCII form, built on first use.
    #[serde(skip)]
    extra: OnceLock<FxHashSet<Box<str>>>,
}

/// The problem with one configured host, for the config error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{host:?} must be a hostname without scheme, port or path, such as \"spam.example\"")]
pub struct BadHost {
    pub host: String,
}

/// The ASCII (punycode) lower-case form of a hostname, or `None` when it
/// is no domain name (an address, or something with a scheme, port, path
/// or wildcard).
fn ascii_host(raw: &str) -> Option<String> {
    let raw = raw.trim().trim_end_matches('.');
    if raw.is_empty() || raw.contains(['/', ':', ' ', '*', '@', '?', '#']) {
        return None;
    }
    // Plain ASCII names are taken as written (lower-cased): some listed
    // punycode names are not valid IDNA, yet browsers send them.
    let lower = raw.to_ascii_lowercase();
    if lower
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return lower
            .parse::<std::net::Ipv4Addr>()
            .is_err()
            .then_some(lower);
    }
    match url::Host::parse(raw).ok()? {
        url::Host::Domain(d) => Some(d),
        _ => None,
    }
}

fn builtin() -> &'static FxHashSet<Box<str>> {
    static SET: OnceLock<FxHashSet<Box<str>>> = OnceLock::new();
    SET.get_or_init(|| {
        LIST.lines()
            .filter_map(ascii_host)
            .map(String::into_boxed_str)
            .collect()
    })
}

/// The host of a referrer URL in ASCII form, when it has a domain name.
/// A URL the `url` crate refuses (some spam hosts are not valid IDNA) is
/// read by hand: the authority after `://` without credentials and port.
fn referrer_host(referrer: &str) -> Option<String> {
    let referrer = referrer.trim();
    match url::Url::parse(referrer) {
        Ok(url) => match url.host()? {
            url::Host::Domain(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        },
        Err(_) => {
            let rest = referrer.split_once("://")?.1;
            let authority = rest.split(['/', '?', '#']).next()?;
            let host_port = authority.rsplit('@').next()?;
            ascii_host(host_port.split(':').next()?)
        }
    }
}

/// `host` and each of its parent domains, longest first.
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(host.match_indices('.').map(move |(i, _)| &host[i + 1..]))
}

impl ReferrerSpamConfig {
    /// Checks every configured host; the error carries the index of the
    /// first bad one.
    pub fn validate(&self) -> Result<(), (usize, BadHost)> {
        for (i, h) in self.extra_hosts.iter().enumerate() {
            if ascii_host(h).is_none() {
                return Err((i, BadHost { host: h.clone() }));
            }
        }
        Ok(())
    }

    fn extra(&self) -> &FxHashSet<Box<str>> {
        self.extra.get_or_init(|| {
            self.extra_hosts
                .iter()
                .filter_map(|h| ascii_host(h))
                .map(String::into_boxed_str)
                .collect()
        })
    }

    /// True when the referrer's host, or a domain it belongs to, is on the
    /// embedded list or among `extra_hosts`. Referrers without a host name
    /// (empty, not a URL, an address) are never spam.
    pub fn is_spam(&self, referrer: &str) -> bool {
        referrer_host(referrer).is_some_and(|host| self.is_spam_host(&host))
    }

    /// [`Self::is_spam`] for a host already read from a parsed URL (lower
    /// case, ASCII form), so the pipeline parses a referrer only once.
    /// Addresses are never spam.
    pub fn is_spam_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        if host.is_empty() || host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
            return false;
        }
        let (listed, extra) = (builtin(), self.extra());
        suffixes(host).any(|s| listed.contains(s) || extra.contains(s))
    }

    /// Builds the embedded list's set and the configured hosts' set now,
    /// at start-up, instead of on the first hit (which would pay for it).
    pub fn prepare(&self) {
        builtin();
        self.extra();
    }

    /// Number of hosts on the embedded list.
    pub fn builtin_len() -> usize {
        builtin().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> ReferrerSpamConfig {
        ReferrerSpamConfig {
            extra_hosts: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_embedded_list_is_complete_and_matches_subdomains() {
        // 2,347 lines, 2,347 hosts.
        assert_eq!(ReferrerSpamConfig::builtin_len(), 2347);
        let c = config(&[]);
        assert!(c.is_spam("https://0-0.fr/"));
        assert!(c.is_spam("http://www.0-0.fr/page?x=1"));
        assert!(c.is_spam("https://a.b.zvuker.net"));
        assert!(c.is_spam("https://qiwi.xyz/"), "listed as QIWI.xyz");
        assert!(c.is_spam("https://ZVUKER.NET./"));
        assert!(!c.is_spam("https://zvuker.net.example.org/"));
        assert!(!c.is_spam("https://notzvuker.net/"));
        assert!(!c.is_spam("https://www.google.com/"));
        assert!(!c.is_spam(""));
        assert!(!c.is_spam("not a url"));
        assert!(!c.is_spam("http://192.0.2.1/"));
    }

    #[test]
    fn punycode_hosts_match_in_either_form() {
        let c = config(&["bücher-spam.example"]);
        assert!(c.is_spam("https://xn--bcher-spam-9db.example/"));
        assert!(c.is_spam("https://www.bücher-spam.example/"));
        // An internationalised host on the embedded list, named in Unicode.
        let listed = LIST
            .lines()
            .find(|l| l.starts_with("xn--"))
            .expect("a punycode host on the list");
        let (unicode, _) = idna::domain_to_unicode(listed);
        assert!(!unicode.contains("xn--"), "{unicode}");
        assert!(c.is_spam(&format!("https://{unicode}/")), "{unicode}");
    }

    #[test]
    fn extra_hosts_are_checked_and_used() {
        let c = config(&["spam.example", "Mixed.Example"]);
        assert!(c.validate().is_ok());
        assert!(c.is_spam("https://spam.example/"));
        assert!(c.is_spam("https://cdn.spam.example/x"));
        assert!(c.is_spam("https://mixed.example/"));
        assert!(!c.is_spam("https://example/"));
        for bad in [
            "https://spam.example",
            "spam.example/path",
            "spam.example:80",
            "",
            "*.x.org",
        ] {
            let (i, e) = config(&["ok.example", bad]).validate().unwrap_err();
            assert_eq!((i, e.host.as_str()), (1, bad));
        }
    }
}

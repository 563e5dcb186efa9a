//! Referrer classification: direct, internal, search engine, social
//! network, other website, or campaign (`utm_*` on the landing URL).
//! Website names are hosts as people read them (internationalised names in
//! Unicode); search engines and networks are matched on the ASCII host.
//!
//! The lists of search engines and social networks are short, hand-kept
//! tables of host patterns: the classification needs only a name per host,
//! and no registry package carries a maintained list in a form worth a
//! dependency.

use crate::model::{Campaign, Referrer, ReferrerType};
use crate::privacy::strip_url;
use crate::privacy::url_strip::{unicode_domain, CleanUrl};

/// (host fragment, display name). A referrer host matches when it equals the
/// fragment or ends with `.fragment`, or for fragments ending in `.` (e.g.
/// `google.`), when it contains the fragment as a label sequence.
const SEARCH_ENGINES: &[(&str, &str)] = &[
    ("google.", "Google"),
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("ecosia.org", "Ecosia"),
    ("search.yahoo.com", "Yahoo"),
    ("yahoo.com", "Yahoo"),
    ("yandex.", "Yandex"),
    ("baidu.com", "Baidu"),
    ("qwant.com", "Qwant"),
    ("startpage.com", "Startpage"),
    ("search.brave.com", "Brave Search"),
    ("metager.de", "MetaGer"),
    ("web.de", "WEB.DE"),
    ("t-online.de", "T-Online"),
    ("gmx.net", "GMX"),
    ("ask.com", "Ask"),
    ("kagi.com", "Kagi"),
    ("perplexity.ai", "Perplexity"),
    ("chatgpt.com", "ChatGPT"),
];

const SOCIAL: &[(&str, &str)] = &[
    ("facebook.com", "Facebook"),
    ("fb.com", "Facebook"),
    ("instagram.com", "Instagram"),
    ("twitter.com", "X"),
    ("x.com", "X"),
    ("t.co", "X"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("xing.com", "XING"),
    ("reddit.com", "Reddit"),
    ("youtube.com", "YouTube"),
    ("tiktok.com", "TikTok"),
    ("pinterest.com", "Pinterest"),
    ("mastodon.social", "Mastodon"),
    ("bsky.app", "Bluesky"),
    ("threads.net", "Threads"),
    ("whatsapp.com", "WhatsApp"),
    ("t.me", "Telegram"),
];

fn matches(host: &str, pattern: &str) -> bool {
    if pattern.ends_with('.') {
        host.starts_with(pattern) || host.contains(&format!(".{pattern}"))
    } else {
        host == pattern || host.ends_with(&format!(".{pattern}"))
    }
}

fn lookup(host: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .find(|(p, _)| matches(host, p))
        .map(|(_, name)| *name)
}

/// Classifies a referrer for a page on a site whose own hosts are tested by
/// `is_own_host`. `campaign` comes from the landing page's `utm_*`
/// parameters and wins over the referrer's own class.
pub fn classify(
    raw_referrer: Option<&str>,
    is_own_host: impl Fn(&str) -> bool,
    campaign: &Campaign,
) -> Referrer {
    let parsed = raw_referrer
        .filter(|r| !r.trim().is_empty())
        .and_then(|r| strip_url(r, |_| false).ok());
    classify_stripped(parsed, is_own_host, campaign)
}

/// [`classify`] for a referrer already stripped with `strip_url` (no
/// query parameter kept), or `None` when there is none or it is no
/// http(s) URL: the pipeline strips it once and uses it twice.
pub fn classify_stripped(
    parsed: Option<CleanUrl>,
    is_own_host: impl Fn(&str) -> bool,
    campaign: &Campaign,
) -> Referrer {
    let mut referrer = match parsed {
        None => Referrer::default(),
        Some(clean) if is_own_host(&clean.host) => Referrer {
            kind: ReferrerType::Internal,
            name: unicode_domain(&clean.host),
            url: clean.url,
        },
        Some(clean) => {
            let host = unicode_domain(clean.host.strip_prefix("www.").unwrap_or(&clean.host));
            let (kind, name) = if let Some(n) = lookup(&host, SEARCH_ENGINES) {
                (ReferrerType::Search, n.to_string())
            } else if let Some(n) = lookup(&host, SOCIAL) {
                (ReferrerType::Social, n.to_string())
            } else {
                (ReferrerType::Website, host)
            };
            Referrer {
                kind,
                name,
                url: clean.url,
            }
        }
    };
    let has_campaign =
        !campaign.source.is_empty() || !campaign.medium.is_empty() || !campaign.campaign.is_empty();
    if has_campaign && referrer.kind != ReferrerType::Internal {
        referrer.kind = ReferrerType::Campaign;
        if referrer.name.is_empty() {
            referrer.name = campaign.source.clone();
        }
    }
    referrer
}

/// Campaign parameters from a page URL's kept parameters.
pub fn campaign_from_params(params: &[(String, String)], max_len: usize) -> Campaign {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| truncate(v.trim(), max_len))
            .unwrap_or_default()
    };
    Campaign {
        source: get("utm_source"),
        medium: get("utm_medium"),
        campaign: get("utm_campaign"),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(h: &str) -> bool {
        h == "example.org"
    }

    fn kind(r: Option<&str>) -> (ReferrerType, String) {
        let c = classify(r, own, &Campaign::default());
        (c.kind, c.name)
    }

    #[test]
    fn classes() {
        assert_eq!(kind(None), (ReferrerType::Direct, String::new()));
        assert_eq!(
            kind(Some("https://example.org/a?x=1")).0,
            ReferrerType::Internal
        );
        assert_eq!(
            kind(Some("https://www.google.de/search?q=secret")),
            (ReferrerType::Search, "Google".into())
        );
        assert_eq!(
            kind(Some("https://duckduckgo.com/")),
            (ReferrerType::Search, "DuckDuckGo".into())
        );
        assert_eq!(
            kind(Some("https://l.facebook.com/l.php?u=x")),
            (ReferrerType::Social, "Facebook".into())
        );
        assert_eq!(
            kind(Some("https://t.co/abc")),
            (ReferrerType::Social, "X".into())
        );
        assert_eq!(
            kind(Some("https://www.bund.de/x")),
            (ReferrerType::Website, "bund.de".into())
        );
        assert_eq!(
            kind(Some("https://notgoogle.com/")).0,
            ReferrerType::Website
        );
    }

    #[test]
    fn internationalised_referrers_read_in_unicode() {
        for raw in [
            "https://www.xn--mnchen-3ya.example/x",
            "https://www.münchen.example/x",
        ] {
            let c = classify(Some(raw), own, &Campaign::default());
            assert_eq!(
                (c.kind, c.name.as_str(), c.url.as_str()),
                (
                    ReferrerType::Website,
                    "münchen.example",
                    "https://www.münchen.example/x"
                )
            );
        }
    }

    #[test]
    fn referrer_query_is_never_kept() {
        let c = classify(
            Some("https://www.google.de/search?q=secret#x"),
            own,
            &Campaign::default(),
        );
        assert_eq!(c.url, "https://www.google.de/search");
    }

    #[test]
    fn campaign_wins_over_referrer() {
        let camp = Campaign {
            source: "newsletter".into(),
            ..Default::default()
        };
        let c = classify(None, own, &camp);
        assert_eq!(
            (c.kind, c.name.as_str()),
            (ReferrerType::Campaign, "newsletter")
        );
    }
}

//! The opt-out decision, made before any part of a hit is parsed, so an
//! opted-out visitor's data is never even read.
//!
//! The rule, the same on every ingest route:
//! 1. The collector's opt-out cookie drops the request, on headers alone.
//! 2. `DNT: 1` / `Sec-GPC: 1` drop it when the site it is for honours that
//!    signal. Without looking at the request: if every configured site
//!    honours a signal the request carries, it is dropped; if none does, it
//!    is not. Otherwise the sites the request names are read cheaply
//!    (`crate::ingest::site_ref`): if any named site honours a signal it
//!    carries, the whole request is dropped (a batch naming several sites
//!    included: the signal is the visitor's, not the site's); if the
//!    request names no configured site it is parsed and refused as usual.
//!
//! After parsing, each hit's own site is checked once more, as a safety
//! net for a site reference the cheap reading could not see.

use crate::config::SiteConfig;

/// What the request says about the visitor's wishes.
#[derive(Clone, Copy, Debug, Default)]
pub struct OptOutSignals {
    /// The collector's opt-out cookie is present.
    pub cookie: bool,
    /// `DNT: 1`.
    pub dnt: bool,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
}

impl OptOutSignals {
    /// Reads the signals from raw header values.
    pub fn from_headers(
        cookie_header: Option<&str>,
        cookie_name: &str,
        dnt: Option<&str>,
        gpc: Option<&str>,
    ) -> Self {
        OptOutSignals {
            cookie: cookie_header.is_some_and(|h| has_cookie(h, cookie_name)),
            dnt: dnt.is_some_and(|v| v.trim() == "1"),
            gpc: gpc.is_some_and(|v| v.trim() == "1"),
        }
    }

    /// True when the hit must be dropped. The cookie always counts; DNT and
    /// GPC count where the site is configured to honour them.
    pub fn opted_out(&self, honour_dnt: bool, honour_gpc: bool) -> bool {
        self.cookie || (honour_dnt && self.dnt) || (honour_gpc && self.gpc)
    }

    /// The decision before parsing (see the module comment). `sites` is
    /// every configured site; `named` reads the sites the request names and
    /// is called only when the answer depends on them.
    pub fn drops_request<'c>(
        &self,
        sites: &'c [SiteConfig],
        named: impl FnOnce() -> Vec<&'c SiteConfig>,
    ) -> bool {
        if self.cookie {
            return true;
        }
        if !self.dnt && !self.gpc {
            return false;
        }
        let honours = |s: &SiteConfig| self.opted_out(s.honour_dnt, s.honour_gpc);
        if !sites.is_empty() && sites.iter().all(honours) {
            return true;
        }
        if !sites.iter().any(honours) {
            return false;
        }
        named().into_iter().any(honours)
    }
}

/// True when a `Cookie` header carries a cookie named `name` (any value).
pub fn has_cookie(header: &str, name: &str) -> bool {
    header
        .split(';')
        .filter_map(|c| c.split_once('=').map(|(k, _)| k).or(Some(c)))
        .any(|k| k.trim() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sites(text: &str) -> Vec<SiteConfig> {
        Config::parse(text).unwrap().sites
    }

    #[test]
    fn cookie_is_found_among_others() {
        assert!(has_cookie("a=1; sparsam_optout=1; b=2", "sparsam_optout"));
        assert!(!has_cookie("a=1; xsparsam_optout=1", "sparsam_optout"));
    }

    #[test]
    fn dnt_and_gpc_only_where_honoured() {
        let s = OptOutSignals::from_headers(None, "x", Some("1"), Some("1"));
        assert!(!s.opted_out(false, false));
        assert!(s.opted_out(true, false));
        assert!(s.opted_out(false, true));
        let c = OptOutSignals::from_headers(Some("x=1"), "x", None, None);
        assert!(c.opted_out(false, false));
    }

    #[test]
    fn decision_before_parsing() {
        let mixed = sites(
            "[[sites]]\nid=\"a\"\nhostnames=[\"a.org\"]\nhonour_dnt=true\n\
             [[sites]]\nid=\"b\"\nhostnames=[\"b.org\"]\nhonour_dnt=false\nhonour_gpc=false\n",
        );
        let (a, b) = (&mixed[0], &mixed[1]);
        let dnt = OptOutSignals::from_headers(None, "x", Some("1"), None);
        let cookie = OptOutSignals::from_headers(Some("x=1"), "x", None, None);
        let none = OptOutSignals::default();
        let never = || -> Vec<&SiteConfig> { panic!("the request was read") };
        assert!(cookie.drops_request(&mixed, never));
        assert!(!none.drops_request(&mixed, never));
        assert!(dnt.drops_request(&mixed, || vec![a]));
        assert!(dnt.drops_request(&mixed, || vec![b, a]), "any named site");
        assert!(!dnt.drops_request(&mixed, || vec![b]));
        assert!(
            !dnt.drops_request(&mixed, Vec::new),
            "names no site: parsed"
        );

        // Every site honours DNT: no need to read the request.
        let all = sites("[[sites]]\nid=\"a\"\nhostnames=[\"a.org\"]\nhonour_dnt=true\n");
        assert!(dnt.drops_request(&all, never));
        // No site honours DNT (GPC is honoured by default): not dropped.
        let gpc_only = sites("[[sites]]\nid=\"a\"\nhostnames=[\"a.org\"]\n");
        assert!(!dnt.drops_request(&gpc_only, never));
        let gpc = OptOutSignals::from_headers(None, "x", None, Some("1"));
        assert!(gpc.drops_request(&gpc_only, never));
    }
}

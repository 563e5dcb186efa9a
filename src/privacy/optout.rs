//! The opt-out decision: made from request headers alone, before any part
//! of a hit is parsed, so an opted-out visitor's data is never even read.

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
}

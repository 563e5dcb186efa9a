//! Roll-ups: hourly totals and per-dimension counters.
//!
//! Dashboards read these instead of raw events. They hold counts per site,
//! hour or local day, dimension and value, no addresses or visitor values,
//! and are not dropped with raw partitions. Values that carry free text
//! (search terms, URL queries; see [`FREE_TEXT_DIMS`]) are, though: the
//! sweep cuts them once their day is past the raw retention
//! (`store::sweep`). The writer updates them in the same
//! transaction as the events it stores (see `apply`), so a restart never
//! double counts and a failed commit leaves nothing.
//!
//! Definitions (a recount from raw events must agree with these):
//! - A *visit* is a run of events of one visitor hash on one site with gaps
//!   under 30 minutes. Any event kind except `Ping` can start a visit; a
//!   ping only extends a visit that is still live (heartbeats do not create
//!   visits). Visits count in the hour and local day where they start.
//!   Visitor hashes change at UTC midnight (the salt rotates), so in
//!   practice a visit ends there.
//! - A *bounce* is a visit with at most one page view: a starting visit adds
//!   one bounce to its start hour, its second page view takes it back.
//! - *Visitors* are unique per site and UTC day (the hash's salt rotates
//!   daily), counted in the hour of their first event that day. A sum over a
//!   range of days is therefore a sum of daily uniques.
//! - *Dwell* of a page view is the largest `engaged_ms` its pings reported;
//!   each ping adds only the increase over the previous maximum, in the
//!   ping's hour. `dwell_pageviews` counts page views with any dwell data.
//!   A ping that reports no engaged time (Matomo's heartbeat) is timed by
//!   the server: the time since its page view was received.
//! - Page-level dimensions (`page`, `title`) count page views on the
//!   event's local day. Visit-level dimensions (entry page, referrer,
//!   campaign, device fields, plugins) count a visit once on the local day the
//!   visit started, and every page view of the visit on the page view's local
//!   day, attributed to the visit's referrer and campaign. `exit_page` counts
//!   visits only, moved from the old to the new last page as the visit goes
//!   on. Event dimensions (`download`, `outbound`, `search_term`) count
//!   events. Empty values are not counted.
//!
//! Dimension values are numbers into the roll-up dictionary. A closed day
//! of one dimension is stored *sealed*: one value listing every (value,
//! counters) pair, sorted by value number (see [`encode_sealed`]).

use super::ids::DimValueId;
use std::fmt;
use std::str::FromStr;

use super::codec::{put_ivarint, put_varint, Reader};
use super::schema::MS_PER_HOUR;
use super::StoreError;

/// Gap that ends a visit.
pub const VISIT_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// A reporting dimension of the `dims` roll-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Dimension {
    /// Page URL (page views).
    Page = 0,
    /// Page title (page views).
    Title = 1,
    /// First page of a visit (visits; page views of visits entering there).
    EntryPage = 2,
    /// Last page of a visit (visits only).
    ExitPage = 3,
    /// Referrer host (or the URL when it has no host).
    Referrer = 4,
    /// [`ReferrerType::as_str`] of the visit's referrer.
    ReferrerType = 5,
    /// Search engine name, for search referrers.
    SearchEngine = 6,
    UtmSource = 7,
    UtmMedium = 8,
    UtmCampaign = 9,
    /// Download target (events).
    Download = 10,
    /// Outbound link target (events).
    Outbound = 11,
    /// Site-search term (events).
    SearchTerm = 12,
    /// [`crate::model::DeviceType::as_str`].
    DeviceType = 13,
    Brand = 14,
    Model = 15,
    Os = 16,
    /// `"{os} {os_version}"`, since a version alone says little.
    OsVersion = 17,
    Browser = 18,
    /// `"{browser} {browser_version}"`.
    BrowserVersion = 19,
    Engine = 20,
    /// One row per set plugin bit, named as in [`plugins::NAMES`].
    Plugin = 21,
}

/// Which counter orders a dimension's values in [`crate::store::Store::top`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Pageviews,
    Visits,
    Events,
}

impl Dimension {
    pub const ALL: [Dimension; 22] = [
        Dimension::Page,
        Dimension::Title,
        Dimension::EntryPage,
        Dimension::ExitPage,
        Dimension::Referrer,
        Dimension::ReferrerType,
        Dimension::SearchEngine,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Download,
        Dimension::Outbound,
        Dimension::SearchTerm,
        Dimension::DeviceType,
        Dimension::Brand,
        Dimension::Model,
        Dimension::Os,
        Dimension::OsVersion,
        Dimension::Browser,
        Dimension::BrowserVersion,
        Dimension::Engine,
        Dimension::Plugin,
    ];

    pub fn from_u8(v: u8) -> Option<Dimension> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// Stable name, for APIs and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Page => "page",
            Dimension::Title => "title",
            Dimension::EntryPage => "entry_page",
            Dimension::ExitPage => "exit_page",
            Dimension::Referrer => "referrer",
            Dimension::ReferrerType => "referrer_type",
            Dimension::SearchEngine => "search_engine",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::Download => "download",
            Dimension::Outbound => "outbound",
            Dimension::SearchTerm => "search_term",
            Dimension::DeviceType => "device_type",
            Dimension::Brand => "brand",
            Dimension::Model => "model",
            Dimension::Os => "os",
            Dimension::OsVersion => "os_version",
            Dimension::Browser => "browser",
            Dimension::BrowserVersion => "browser_version",
            Dimension::Engine => "engine",
            Dimension::Plugin => "plugin",
        }
    }

    /// The counter that ranks values of this dimension.
    pub fn sort_by(self) -> SortBy {
        match self {
            Dimension::Download | Dimension::Outbound | Dimension::SearchTerm => SortBy::Events,
            Dimension::EntryPage | Dimension::ExitPage => SortBy::Visits,
            _ => SortBy::Pageviews,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown dimension name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dimension {0:?}")]
pub struct UnknownDimension(pub String);

impl FromStr for Dimension {
    type Err = UnknownDimension;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDimension(s.to_owned()))
    }
}

/// Counters of one dimension value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pageviews: u64,
    pub visits: u64,
    pub events: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.pageviews += o.pageviews;
        self.visits += o.visits;
        self.events += o.events;
    }

    /// Signed counters as counts (a negative sum, which only a partial
    /// view can show, counts as 0).
    pub(crate) fn from_signed(c: [i64; 3]) -> Counters {
        let u = |x: i64| u64::try_from(x).unwrap_or(0);
        Counters {
            pageviews: u(c[0]),
            visits: u(c[1]),
            events: u(c[2]),
        }
    }

    pub(crate) fn get(&self, by: SortBy) -> u64 {
        match by {
            SortBy::Pageviews => self.pageviews,
            SortBy::Visits => self.visits,
            SortBy::Events => self.events,
        }
    }
}

/// Totals of one hour (or, summed, of a range).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub pageviews: u64,
    pub visits: u64,
    pub visitors: u64,
    pub bounces: u64,
    pub dwell_ms_sum: u64,
    pub dwell_pageviews: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

impl Totals {
    pub(crate) const FIELDS: usize = 9;

    pub(crate) fn as_array(&self) -> [u64; Self::FIELDS] {
        [
            self.pageviews,
            self.visits,
            self.visitors,
            self.bounces,
            self.dwell_ms_sum,
            self.dwell_pageviews,
            self.downloads,
            self.outbound,
            self.searches,
        ]
    }

    pub(crate) fn from_array(a: [u64; Self::FIELDS]) -> Totals {
        Totals {
            pageviews: a[0],
            visits: a[1],
            visitors: a[2],
            bounces: a[3],
            dwell_ms_sum: a[4],
            dwell_pageviews: a[5],
            downloads: a[6],
            outbound: a[7],
            searches: a[8],
        }
    }

    pub fn add(&mut self, o: &Totals) {
        let mut a = self.as_array();
        for (x, y) in a.iter_mut().zip(o.as_array()) {
            *x += y;
        }
        *self = Totals::from_array(a);
    }
}

// ------------------------------------------------------------ encodings

fn encode_u64s(vals: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vals.len() * 2);
    for &v in vals {
        put_varint(&mut out, v);
    }
    out
}

fn decode_u64s<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u64; N], StoreError> {
    let mut r = Reader::new(bytes, what);
    let mut a = [0u64; N];
    for x in a.iter_mut() {
        *x = r.varint()?;
    }
    r.finish()?;
    Ok(a)
}

pub(crate) fn encode_totals(t: &Totals) -> Vec<u8> {
    encode_u64s(&t.as_array())
}

pub(crate) fn decode_totals(bytes: &[u8]) -> Result<Totals, StoreError> {
    decode_u64s::<{ Totals::FIELDS }>(bytes, "hourly totals").map(Totals::from_array)
}

/// Counters of a `dims_open` row: signed, because a row for a day that is
/// already sealed may hold a correction (an exit page that moved on).
pub(crate) fn encode_signed(c: [i64; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    for v in c {
        put_ivarint(&mut out, v);
    }
    out
}

/// Adds signed counters `d` to `x`, saturating.
pub(crate) fn add_signed(x: &mut [i64; 3], d: [i64; 3]) {
    for (x, dx) in x.iter_mut().zip(d) {
        *x = x.saturating_add(dx);
    }
}

pub(crate) fn decode_signed(bytes: &[u8]) -> Result<[i64; 3], StoreError> {
    let mut r = Reader::new(bytes, "dimension counters");
    let c = [r.ivarint()?, r.ivarint()?, r.ivarint()?];
    r.finish()?;
    Ok(c)
}

/// The dimensions a referrer entry counts for, in the order of
/// [`referrer_values`]; the same for campaigns and devices below. The
/// writer's roll-ups and the filtered scans both take an entry's values
/// from these, so a recount from raw events matches the roll-ups.
pub const REFERRER_DIMS: [Dimension; 3] = [
    Dimension::Referrer,
    Dimension::ReferrerType,
    Dimension::SearchEngine,
];
pub const CAMPAIGN_DIMS: [Dimension; 3] = [
    Dimension::UtmSource,
    Dimension::UtmMedium,
    Dimension::UtmCampaign,
];
pub const DEVICE_DIMS: [Dimension; 8] = [
    Dimension::DeviceType,
    Dimension::Brand,
    Dimension::Model,
    Dimension::Os,
    Dimension::OsVersion,
    Dimension::Browser,
    Dimension::BrowserVersion,
    Dimension::Engine,
];

/// A referrer's values for [`REFERRER_DIMS`] ("" = no value): host, type,
/// and the search engine's name for search referrers.
pub fn referrer_values(r: &crate::model::Referrer) -> [&str; 3] {
    let host = if r.url.is_empty() {
        ""
    } else {
        referrer_value(&r.url)
    };
    let engine = if r.kind == crate::model::ReferrerType::Search {
        r.name.as_str()
    } else {
        ""
    };
    [host, r.kind.as_str(), engine]
}

/// Campaign parameters' values for [`CAMPAIGN_DIMS`].
pub fn campaign_values(c: &crate::model::Campaign) -> [&str; 3] {
    [&c.source, &c.medium, &c.campaign]
}

/// A device's values for [`DEVICE_DIMS`]; versions are joined to their
/// OS or browser name.
pub fn device_values(d: &crate::model::Device) -> [String; 8] {
    [
        d.device_type.as_str().to_owned(),
        d.brand.clone(),
        d.model.clone(),
        d.os.clone(),
        joined(&d.os, &d.os_version),
        d.browser.clone(),
        joined(&d.browser, &d.browser_version),
        d.engine.clone(),
    ]
}

/// Dimensions whose values can carry free text: text a visitor typed or
/// that a link put into a URL for one visitor (site-search terms, values of
/// kept query parameters such as `q=` or `utm_term=`, a referrer kept as a
/// URL). Free text expires with the raw events (`retention.raw_days`),
/// whatever `rollup_days` says; the counts stay (see [`without_free_text`]).
/// Titles are the site's own text, device names come from the browser's
/// user agent, campaign source, medium and name from the site's links:
/// none of them is free text.
pub const FREE_TEXT_DIMS: [Dimension; 7] = [
    Dimension::Page,
    Dimension::EntryPage,
    Dimension::ExitPage,
    Dimension::Referrer,
    Dimension::Download,
    Dimension::Outbound,
    Dimension::SearchTerm,
];

/// What a value of `dim` keeps once its free text has expired: `None` when
/// it carries none (it stays as it is); `Some("")` when nothing of it may
/// stay (its row goes, the day's totals keep the count); otherwise the
/// value cut before its query or path parameters (`https://host/path`),
/// into which its counters are merged. Page URLs thus keep their path: the
/// path is the site's own structure, the query is what a visitor sent.
pub fn without_free_text(dim: Dimension, value: &str) -> Option<&str> {
    match dim {
        Dimension::SearchTerm => Some(""),
        Dimension::Page
        | Dimension::EntryPage
        | Dimension::ExitPage
        | Dimension::Download
        | Dimension::Outbound => value.find(['?', ';', '#']).map(|i| &value[..i]),
        // a host has none of these; a value with them is a URL
        Dimension::Referrer => value
            .contains(|c: char| matches!(c, '/' | '?' | '#' | ';' | '@') || c.is_whitespace())
            .then_some(""),
        _ => None,
    }
}

/// The value of the `referrer` dimension: the referrer's host, or its URL
/// when no host can be cut out.
pub fn referrer_value(url: &str) -> &str {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => return url,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() {
        url
    } else {
        host
    }
}

// ------------------------------------------------------------ sealed days

const SEALED_VERSION: u8 = 1;

/// Packs one day of one dimension: `(value id, counters)` sorted by id.
pub(crate) fn encode_sealed(rows: &[(DimValueId, Counters)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + rows.len() * 5);
    out.push(SEALED_VERSION);
    put_varint(&mut out, rows.len() as u64);
    let mut prev = 0u32;
    for (id, c) in rows {
        put_varint(&mut out, u64::from(id.stored().wrapping_sub(prev)));
        prev = id.stored();
        put_varint(&mut out, c.pageviews);
        put_varint(&mut out, c.visits);
        put_varint(&mut out, c.events);
    }
    out
}

/// Calls `f` for each `(value id, counters)` of a sealed day.
pub(crate) fn for_each_sealed(
    bytes: &[u8],
    mut f: impl FnMut(DimValueId, Counters),
) -> Result<(), StoreError> {
    let mut r = Reader::new(bytes, "sealed roll-up");
    if r.u8()? != SEALED_VERSION {
        return Err(r.err("unknown version"));
    }
    let n = r.varint()?;
    let mut id = 0u32;
    for i in 0..n {
        let delta = r.u32()?;
        if i > 0 && delta == 0 {
            return Err(r.err("values not strictly increasing"));
        }
        id = id
            .checked_add(delta)
            .ok_or_else(|| r.err("value id overflows"))?;
        let c = Counters {
            pageviews: r.varint()?,
            visits: r.varint()?,
            events: r.varint()?,
        };
        f(DimValueId::from_stored(id), c);
    }
    r.finish()
}

/// `"{a} {b}"`, or empty when `b` is empty (a version without its product
/// is not worth a row; a product without a version still is, under its own
/// dimension).
pub(crate) fn joined(a: &str, b: &str) -> String {
    if b.is_empty() {
        String::new()
    } else if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a} {b}")
    }
}

/// Whole hours whose start lies in `[from_ms, to_ms)`.
pub(crate) fn hour_range(from_ms: i64, to_ms: i64) -> (i64, i64) {
    let ceil = |ms: i64| -(-ms).div_euclid(MS_PER_HOUR);
    (ceil(from_ms), ceil(to_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_names_round_trip() {
        for (i, d) in Dimension::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
            assert_eq!(Dimension::from_u8(i as u8), Some(*d));
            assert_eq!(d.as_str().parse::<Dimension>(), Ok(*d));
        }
        assert!("nope".parse::<Dimension>().is_err());
        assert_eq!(Dimension::from_u8(22), None);
        let names: std::collections::HashSet<_> =
            Dimension::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Dimension::ALL.len());
    }

    #[test]
    fn sealed_days_round_trip_and_reject_garbage() {
        let rows = vec![
            (
                DimValueId::from_stored(1),
                Counters {
                    pageviews: 5,
                    visits: 0,
                    events: 0,
                },
            ),
            (
                DimValueId::from_stored(2),
                Counters {
                    pageviews: 0,
                    visits: 3,
                    events: 0,
                },
            ),
            (
                DimValueId::from_stored(900_000),
                Counters {
                    pageviews: u64::MAX,
                    visits: 1,
                    events: 7,
                },
            ),
        ];
        let b = encode_sealed(&rows);
        let mut got = Vec::new();
        for_each_sealed(&b, |id, c| got.push((id, c))).unwrap();
        assert_eq!(got, rows);
        for n in 0..b.len() {
            assert!(for_each_sealed(&b[..n], |_, _| {}).is_err(), "prefix {n}");
        }
        // repeated ids are refused
        let four = DimValueId::from_stored(4);
        let dup = encode_sealed(&[(four, Counters::default()), (four, Counters::default())]);
        assert!(for_each_sealed(&dup, |_, _| {}).is_err());
    }

    #[test]
    fn totals_and_counters_round_trip() {
        let t = Totals {
            pageviews: 1,
            visits: 2,
            visitors: 3,
            bounces: 0,
            dwell_ms_sum: u64::MAX,
            dwell_pageviews: 5,
            downloads: 6,
            outbound: 7,
            searches: 8,
        };
        assert_eq!(decode_totals(&encode_totals(&t)).unwrap(), t);
        let c = [9, -1, 300];
        assert_eq!(decode_signed(&encode_signed(c)).unwrap(), c);
        assert!(decode_signed(&[1, 2]).is_err());
        assert!(decode_totals(&[0xff]).is_err());
    }

    #[test]
    fn referrer_value_takes_the_host() {
        assert_eq!(
            referrer_value("https://www.google.de/search"),
            "www.google.de"
        );
        assert_eq!(referrer_value("https://t.co"), "t.co");
        assert_eq!(referrer_value("android-app://x"), "x");
        assert_eq!(referrer_value("weird"), "weird");
        assert_eq!(referrer_value("file:///x"), "file:///x");
    }

    #[test]
    fn free_text_is_cut_to_the_path_or_dropped() {
        use Dimension::*;
        assert_eq!(
            without_free_text(Page, "https://example.org/suche?q=geheim"),
            Some("https://example.org/suche")
        );
        assert_eq!(
            without_free_text(ExitPage, "https://example.org/a;jsessionid=1"),
            Some("https://example.org/a")
        );
        assert_eq!(without_free_text(Page, "https://example.org/a"), None);
        assert_eq!(without_free_text(SearchTerm, "anything"), Some(""));
        assert_eq!(without_free_text(Referrer, "www.google.de"), None);
        assert_eq!(without_free_text(Referrer, "https://x.example/p"), Some(""));
        assert_eq!(without_free_text(Title, "Suche: geheim?"), None);
        assert_eq!(without_free_text(UtmCampaign, "herbst?x"), None);
        for d in Dimension::ALL {
            let probe = without_free_text(d, "https://h/p?q=1 x/");
            assert_eq!(probe.is_some(), FREE_TEXT_DIMS.contains(&d), "{d}");
        }
    }

    #[test]
    fn hour_range_takes_whole_hours_starting_inside() {
        assert_eq!(hour_range(0, MS_PER_HOUR), (0, 1));
        assert_eq!(hour_range(1, MS_PER_HOUR + 1), (1, 2));
        assert_eq!(hour_range(-MS_PER_HOUR, 0), (-1, 0));
    }
}

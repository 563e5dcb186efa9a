//! The event model shared by every stage after ingest.
//!
//! `Event` is what the enrichment stage hands to the store writer: already
//! anonymised (no full address, URLs stripped), classified (device,
//! referrer), and stamped with the server's clock. Nothing in here can hold
//! a full client address.

use serde::{Deserialize, Serialize};

use crate::privacy::AnonIp;

/// What kind of interaction an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EventKind {
    PageView = 0,
    /// Engaged-time report for an earlier page view (same `pageview_id`).
    Ping = 1,
    Download = 2,
    Outbound = 3,
    Search = 4,
    /// A custom event the site declared (`Event::custom` says which).
    Custom = 5,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::PageView,
        EventKind::Ping,
        EventKind::Download,
        EventKind::Outbound,
        EventKind::Search,
        EventKind::Custom,
    ];

    pub fn from_u8(v: u8) -> Option<EventKind> {
        Self::ALL.get(v as usize).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PageView => "pageview",
            EventKind::Ping => "ping",
            EventKind::Download => "download",
            EventKind::Outbound => "outbound",
            EventKind::Search => "search",
            EventKind::Custom => "event",
        }
    }
}

/// Device class, as Matomo's DeviceDetector names it (plus `Bot`, which is
/// never stored because bots are not counted, and `Other` for unknown).
///
/// The numbers are the stored form: new classes take new numbers, so
/// events written before they existed read back unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum DeviceType {
    Desktop = 0,
    Smartphone = 1,
    Tablet = 2,
    Tv = 3,
    Console = 4,
    Car = 5,
    Wearable = 6,
    Bot = 7,
    #[default]
    Other = 8,
    FeaturePhone = 9,
    Phablet = 10,
    SmartDisplay = 11,
    Camera = 12,
    PortableMediaPlayer = 13,
    SmartSpeaker = 14,
    Peripheral = 15,
}

impl DeviceType {
    pub const ALL: [DeviceType; 16] = [
        DeviceType::Desktop,
        DeviceType::Smartphone,
        DeviceType::Tablet,
        DeviceType::Tv,
        DeviceType::Console,
        DeviceType::Car,
        DeviceType::Wearable,
        DeviceType::Bot,
        DeviceType::Other,
        DeviceType::FeaturePhone,
        DeviceType::Phablet,
        DeviceType::SmartDisplay,
        DeviceType::Camera,
        DeviceType::PortableMediaPlayer,
        DeviceType::SmartSpeaker,
        DeviceType::Peripheral,
    ];

    pub fn from_u8(v: u8) -> Option<DeviceType> {
        Self::ALL.get(v as usize).copied()
    }

    /// The label in reports and roll-ups: Matomo's name of the class.
    /// ("car" and "other" predate the Matomo names and stay as they are,
    /// so roll-ups written before keep adding up; reports show them as
    /// Matomo does through [`DeviceType::matomo_label`].)
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Smartphone => "smartphone",
            DeviceType::Tablet => "tablet",
            DeviceType::Tv => "tv",
            DeviceType::Console => "console",
            DeviceType::Car => "car",
            DeviceType::Wearable => "wearable",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
            DeviceType::FeaturePhone => "feature phone",
            DeviceType::Phablet => "phablet",
            DeviceType::SmartDisplay => "smart display",
            DeviceType::Camera => "camera",
            DeviceType::PortableMediaPlayer => "portable media player",
            DeviceType::SmartSpeaker => "smart speaker",
            DeviceType::Peripheral => "peripheral",
        }
    }

    /// DeviceDetector's name of a class → the class.
    pub fn from_matomo(name: &str) -> Option<DeviceType> {
        Some(match name {
            "car browser" => DeviceType::Car,
            "unknown" | "" => DeviceType::Other,
            other => return Self::ALL.into_iter().find(|t| t.as_str() == other),
        })
    }

    /// Matomo's label of a class: [`DeviceType::as_str`] except "car
    /// browser" for `Car` and "unknown" for `Other`.
    pub fn matomo_label(self) -> &'static str {
        match self {
            DeviceType::Car => "car browser",
            DeviceType::Other => "unknown",
            other => other.as_str(),
        }
    }
}

/// Result of device detection. Empty strings mean "unknown".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    pub device_type: DeviceType,
    pub brand: String,
    pub model: String,
    pub os: String,
    pub os_version: String,
    pub browser: String,
    pub browser_version: String,
    pub engine: String,
    pub engine_version: String,
    pub bot: bool,
}

/// How a visitor arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ReferrerType {
    #[default]
    Direct = 0,
    Internal = 1,
    Search = 2,
    Social = 3,
    Website = 4,
    Campaign = 5,
}

impl ReferrerType {
    pub const ALL: [ReferrerType; 6] = [
        ReferrerType::Direct,
        ReferrerType::Internal,
        ReferrerType::Search,
        ReferrerType::Social,
        ReferrerType::Website,
        ReferrerType::Campaign,
    ];

    pub fn from_u8(v: u8) -> Option<ReferrerType> {
        Self::ALL.get(v as usize).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerType::Direct => "direct",
            ReferrerType::Internal => "internal",
            ReferrerType::Search => "search",
            ReferrerType::Social => "social",
            ReferrerType::Website => "website",
            ReferrerType::Campaign => "campaign",
        }
    }
}

/// Classified referrer. `url` is stripped like page URLs (no query unless
/// allow-listed, no fragment); `name` is e.g. "Google" for a search engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub kind: ReferrerType,
    pub name: String,
    pub url: String,
}

/// Campaign parameters (`utm_*`), empty when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub source: String,
    pub medium: String,
    pub campaign: String,
}

/// `engaged_ms` of a ping that carries no measurement of its own (Matomo's
/// heartbeat): the store times it as the time since its page view was
/// received. Never stored as such, and above any engaged time a client may
/// report.
pub const ENGAGED_SERVER_TIMED: u32 = u32::MAX;

/// Browser capabilities the disclosure allows, as bit flags.
pub mod plugins {
    pub const PDF: u16 = 1 << 0;
    pub const JAVA: u16 = 1 << 1;
    pub const FLASH: u16 = 1 << 2;
    pub const SILVERLIGHT: u16 = 1 << 3;
    pub const QUICKTIME: u16 = 1 << 4;
    pub const REALPLAYER: u16 = 1 << 5;
    pub const WINDOWS_MEDIA: u16 = 1 << 6;
    pub const DIRECTOR: u16 = 1 << 7;
    pub const GEARS: u16 = 1 << 8;
    pub const COOKIES: u16 = 1 << 9;

    pub const NAMES: [(u16, &str); 10] = [
        (PDF, "pdf"),
        (JAVA, "java"),
        (FLASH, "flash"),
        (SILVERLIGHT, "silverlight"),
        (QUICKTIME, "quicktime"),
        (REALPLAYER, "realplayer"),
        (WINDOWS_MEDIA, "windowsmedia"),
        (DIRECTOR, "director"),
        (GEARS, "gears"),
        (COOKIES, "cookies"),
    ];
}

/// One enriched, anonymised event, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Configured site id.
    pub site: String,
    /// Server receipt time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub kind: EventKind,
    /// Keyed hash of (daily salt, site, anonymised address, user agent).
    pub visitor: u64,
    /// Random id made in the page for one page view; ties pings, downloads
    /// and outbound clicks to it. 0 when the client sent none.
    pub pageview_id: u64,
    /// Page URL, stripped: scheme, host, path and allow-listed query only.
    pub url: String,
    pub title: String,
    pub referrer: Referrer,
    pub campaign: Campaign,
    /// Download or outbound link target (stripped), empty otherwise.
    pub target: String,
    /// Site-search term, empty when none.
    pub search_term: String,
    /// Number of search results when the page reported it.
    pub search_results: Option<u32>,
    /// Engaged time in milliseconds so far for this page view (pings).
    pub engaged_ms: u32,
    pub device: Device,
    /// Bit set of [`plugins`].
    pub plugins: u16,
    pub anon_ip: AnonIp,
    /// For [`EventKind::Custom`]: the declared event, its declared
    /// properties and revenue (`None` for every other kind).
    pub custom: Option<crate::goals::CustomEvent>,
}

//! Typed configuration, loaded from TOML and validated before anything
//! listens.
//!
//! Every error names the offending key (e.g. `sites[0].timezone`) and what is
//! wrong with it, so an operator can fix a file without reading code. Unknown
//! keys are errors too: a misspelt privacy setting must not silently fall
//! back to a default.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::privacy::{ClientIpHeader, IpMasks};

/// A configuration problem, always tied to a key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub notice: NoticeConfig,
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    /// Referrer spam dropped before storing, besides the embedded list.
    #[serde(default)]
    pub referrer_spam: crate::enrich::referrer_spam::ReferrerSpamConfig,
    /// The bundled demo site, served on a port of its own; off when absent.
    #[serde(default)]
    pub demo: Option<DemoConfig>,
    #[serde(default)]
    pub device: DeviceConfig,
    /// `[clickhouse]`: used when `store.backend = "clickhouse"`.
    #[serde(default)]
    pub clickhouse: crate::storage::clickhouse::settings::ClickHouseConfig,
}

/// `[device]`: device detection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// A folder with a newer copy of Matomo DeviceDetector's rule files
    /// (its `regexes/` folder: `bots.yml`, `oss.yml`, `client/`, `device/`,
    /// `vendorfragments.yml`), used instead of the copy built into the
    /// binary. Unset: the built-in copy.
    pub rules_dir: Option<PathBuf>,
}

/// `[demo]`: serves the pages in `demo/` (embedded in the binary) so a
/// newcomer can watch sparsam count their own clicks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Address and port for the demo site; pick another port than
    /// `server.listen`, so the demo is cross-origin like a real site.
    #[serde(deserialize_with = "demo_listen")]
    pub listen: SocketAddr,
}

/// When the opt-out cookie is marked `Secure` with `SameSite=None` (the
/// only form that browsers send along with cross-site pixel and beacon
/// requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// When the request came over HTTPS (as said by a trusted proxy), or
    /// straight from a browser on this machine to a loopback address
    /// (browsers treat `http://localhost` as secure); `SameSite=Lax`
    /// without `Secure` otherwise.
    #[default]
    Auto,
    /// Always: for TLS ended by a proxy that is not listed or does not say
    /// so. Over plain HTTP to another host, browsers then refuse the cookie.
    Always,
}

/// Largest byte budget the per-prefix limiter counts in (`u32` bytes).
pub const MAX_RATE_LIMIT_BYTES: ByteSize = ByteSize::b(u32::MAX as u64);

/// Bounds of `server.max_engaged_seconds`: one minute to one week.
pub const MIN_ENGAGED_SECONDS: u32 = 60;
pub const MAX_ENGAGED_SECONDS: u32 = 7 * 86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    #[serde(deserialize_with = "server_listen")]
    pub listen: SocketAddr,
    /// Directory holding the redb store and the daily salt.
    pub data_dir: PathBuf,
    /// Peers whose client-address header is believed, as networks (a
    /// single address is a network of one).
    #[serde(deserialize_with = "proxy_networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write the client address into:
    /// "x-forwarded-for" (default), "forwarded" or "x-real-ip". No other
    /// forwarding header is read.
    pub client_ip_header: ClientIpHeader,
    /// Largest accepted request body (beacons, Matomo bulk posts): a
    /// number of bytes or a size such as "64 KiB".
    pub max_body_bytes: ByteSize,
    /// Largest accepted URL, referrer, title or search term.
    pub max_field_bytes: ByteSize,
    /// Largest number of events in one beacon or bulk request.
    pub max_batch_events: usize,
    /// Most engaged time one page view may report, in seconds; a ping
    /// reporting more is refused.
    pub max_engaged_seconds: u32,
    /// How long a client may take to send its request head, from whole
    /// seconds in the file.
    #[serde(rename = "client_timeout_secs", deserialize_with = "whole_seconds")]
    pub client_timeout: Duration,
    /// How long an idle keep-alive connection stays open (zero = no
    /// keep-alive), from whole seconds in the file.
    #[serde(rename = "keep_alive_secs", deserialize_with = "whole_seconds")]
    pub keep_alive: Duration,
    /// Ingest requests allowed per minute from one shortened address
    /// prefix (0 = no limit).
    pub rate_limit_per_minute: u32,
    /// Requests one prefix may send at once before the per-minute rate
    /// applies.
    pub rate_limit_burst: u32,
    /// Worker threads for HTTP (0 = one per core).
    pub workers: usize,
    /// Log format: "text" or "json".
    pub log_format: LogFormat,
    /// Ingest events allowed per minute from one shortened address prefix
    /// (a bulk request of 100 events counts 100; 0 = no limit).
    pub rate_limit_events_per_minute: u32,
    /// Events one prefix may send at once before the per-minute rate
    /// applies (at least `max_batch_events` while the limit is on).
    pub rate_limit_events_burst: u32,
    /// Ingest bytes (query string and body) allowed per minute from one
    /// prefix (0 = no limit).
    pub rate_limit_bytes_per_minute: ByteSize,
    /// Bytes one prefix may send at once before the per-minute rate
    /// applies (at least `max_body_bytes` while the limit is on).
    pub rate_limit_bytes_burst: ByteSize,
    /// A separate address serving only `/metrics`, without a token (for a
    /// scraper on an internal network); empty in the file: none, and
    /// `/metrics` on `listen` needs the admin token either way.
    #[serde(deserialize_with = "metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `server.log_format`: how log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            max_body_bytes: ByteSize::kib(64),
            max_field_bytes: ByteSize::b(2048),
            max_batch_events: 100,
            max_engaged_seconds: 86_400,
            client_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(30),
            rate_limit_per_minute: 6000,
            rate_limit_burst: 600,
            workers: 0,
            log_format: LogFormat::Text,
            rate_limit_events_per_minute: 6000,
            rate_limit_events_burst: 600,
            rate_limit_bytes_per_minute: ByteSize::mib(16),
            rate_limit_bytes_burst: ByteSize::mib(2),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Leading bits of an IPv4 address kept (16 = a.b.0.0).
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address kept (32 = an ISP's allocation).
    pub ipv6_prefix: u8,
    /// Must be true to keep more bits than the defaults above.
    pub allow_weaker_masks: bool,
    /// Name of the opt-out cookie; the only cookie sparsam ever sets.
    pub optout_cookie: String,
    /// Opt-out cookie lifetime in days (browsers keep a cookie at most 400).
    pub optout_cookie_days: u32,
    /// When the opt-out cookie gets `SameSite=None; Secure`.
    pub optout_cookie_secure: CookieSecure,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            ipv4_prefix: IpMasks::DEFAULT.v4_prefix,
            ipv6_prefix: IpMasks::DEFAULT.v6_prefix,
            allow_weaker_masks: false,
            optout_cookie: "sparsam_optout".into(),
            optout_cookie_days: 400,
            optout_cookie_secure: CookieSecure::Auto,
        }
    }
}

impl PrivacyConfig {
    pub fn masks(&self) -> IpMasks {
        IpMasks {
            v4_prefix: self.ipv4_prefix,
            v6_prefix: self.ipv6_prefix,
        }
    }
}

/// Fewest distinct visitors `retention.free_text_min_visitors` may ask for:
/// a value fewer people typed can point at one of them.
pub const MIN_FREE_TEXT_VISITORS: u32 = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days raw events (with shortened addresses) are kept.
    pub raw_days: u32,
    /// Days roll-ups (aggregates, no personal data) are kept; 0 = forever.
    pub rollup_days: u32,
    /// When the sweeper runs: a cron expression with seconds first
    /// (its text is kept: `Schedule` displays as written).
    #[serde(deserialize_with = "cron_schedule")]
    pub sweep_schedule: cron::Schedule,
    /// Rewrite the store file after a sweep that deleted something, so the
    /// deleted bytes are gone from the disk file too (on by default; ingest
    /// waits only for the catch-up at its end, see `store/vacuum.rs`).
    pub vacuum_after_sweep: bool,
    /// Free text (site-search terms, kept query-parameter values, full
    /// referrer URLs) expires with the raw events after `raw_days`. When
    /// set (at least 10), a value seen from at least this many distinct
    /// visitors on a day may stay in that day's roll-ups; 0 (the default)
    /// keeps none.
    pub free_text_min_visitors: u32,
}

/// Every night at 03:30 in the server's time zone.
const DEFAULT_SWEEP_SCHEDULE: &str = "0 30 3 * * *";

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_days: 90,
            rollup_days: 0,
            sweep_schedule: cron::Schedule::from_str(DEFAULT_SWEEP_SCHEDULE)
                .expect("the default sweep schedule is a valid cron expression"),
            vacuum_after_sweep: true,
            free_text_min_visitors: 0,
        }
    }
}

/// Where events are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded store file in `server.data_dir`.
    #[default]
    Redb,
    /// A ClickHouse server or cluster (`[clickhouse]`).
    ClickHouse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// "redb" (default) or "clickhouse".
    pub backend: StoreBackend,
    /// redb page cache in MiB.
    pub cache_mb: usize,
    /// Batches that may wait for the writer before ingest answers 503.
    pub queue_capacity: usize,
    /// Most queued requests committed in one transaction.
    pub max_batch: usize,
    /// Distinct user agents whose classification is cached.
    pub ua_cache_entries: usize,
    /// Different values (URLs, titles, referrers, ...) one site may add
    /// per UTC day; past it, new values are stored as "(other)".
    pub max_new_strings_per_site_day: usize,
    /// Events one site may add per UTC day; past it, events are dropped
    /// (this bounds the writer's memory per open day).
    pub max_events_per_site_day: u64,
    /// Longest time the roll-up changes of committed events are held in
    /// the writer's memory before they are folded into the roll-up
    /// tables, from whole seconds in the file.
    #[serde(rename = "rollup_fold_secs", deserialize_with = "whole_seconds")]
    pub rollup_fold_interval: Duration,
    /// Most committed events whose roll-up changes are held in memory
    /// (what a start-up after a crash replays at most).
    pub rollup_fold_events: u64,
    /// Most roll-up rows (hours and dimension values) held in memory; past
    /// it they are folded early.
    pub rollup_max_rows: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Redb,
            cache_mb: 64,
            queue_capacity: 10_000,
            max_batch: 1024,
            ua_cache_entries: 10_000,
            max_new_strings_per_site_day: 100_000,
            max_events_per_site_day: 2_000_000,
            rollup_fold_interval: Duration::from_secs(1),
            rollup_fold_events: 50_000,
            rollup_max_rows: 200_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Reads every site, the audit view and `/metrics`.
    pub admin_token: String,
    /// Wrong tokens one shortened address prefix may send per minute
    /// before it gets 429 for every wrong or missing token until the
    /// minute is over (a right token still works).
    pub max_failed_tokens_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_token: String::new(),
            max_failed_tokens_per_minute: 10,
        }
    }
}

/// Marks a token copied from the shipped example configuration.
const PLACEHOLDER_TOKEN: &str = "change-me";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticeConfig {
    /// Who runs the service, as named in the privacy notice.
    pub controller: String,
    /// Where the data is processed.
    pub processing_location: String,
    /// Legal basis, German and English.
    pub legal_basis_de: String,
    pub legal_basis_en: String,
}

impl Default for NoticeConfig {
    fn default() -> Self {
        Self {
            controller: "the operator of this website".into(),
            processing_location: "on the operator's own server".into(),
            legal_basis_de: "Einwilligung, Art. 6 Abs. 1 lit. a DSGVO".into(),
            legal_basis_en: "consent, Art. 6(1)(a) GDPR".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Short id used in tracking snippets and API paths.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Numeric id for Matomo clients (`idsite`).
    #[serde(default)]
    pub matomo_id: Option<u32>,
    /// Hostnames whose pages may be counted for this site, in Unicode or
    /// punycode in the file; held in the ASCII (punycode) form.
    pub hostnames: Vec<String>,
    /// IANA time zone for days in reports.
    #[serde(default = "default_timezone", deserialize_with = "time_zone")]
    pub timezone: Tz,
    /// Drop hits that carry `DNT: 1`.
    #[serde(default)]
    pub honour_dnt: bool,
    /// Drop hits that carry `Sec-GPC: 1`.
    #[serde(default = "yes")]
    pub honour_gpc: bool,
    /// URL parameters that carry a site-search term.
    #[serde(default = "default_search_params")]
    pub search_params: Vec<String>,
    /// Link targets with these extensions count as downloads.
    #[serde(default = "default_download_extensions")]
    pub download_extensions: Vec<String>,
    /// Query parameters kept in stored URLs (search parameters and the five
    /// standard campaign parameters `utm_source`, `utm_medium`,
    /// `utm_campaign`, `utm_term`, `utm_content` are always kept).
    #[serde(default)]
    pub keep_query_params: Vec<String>,
    /// Bearer tokens that may read this site's reports.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Custom events the site may send (`[[sites.events]]`); nothing
    /// undeclared is stored. See `crate::goals::config`.
    #[serde(default)]
    pub events: Vec<crate::goals::EventDecl>,
    /// `[[sites.goals]]`: page and event goals.
    #[serde(default)]
    pub goals: Vec<crate::goals::GoalDecl>,
    /// `[[sites.funnels]]`: ordered steps within a visit.
    #[serde(default)]
    pub funnels: Vec<crate::goals::FunnelDecl>,
}

/// A configured or sent hostname in the ASCII form URLs carry
/// (internationalised names in punycode, `bücher.example` becomes
/// `xn--bcher-kva.example`), so either spelling matches; a `*.` prefix is
/// kept. Names IDNA refuses are left as written (validation then judges
/// them).
fn ascii_hostname(h: &str) -> String {
    let (wildcard, bare) = match h.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", h),
    };
    if bare.is_ascii() {
        return h.to_string();
    }
    match idna::domain_to_ascii(bare) {
        Ok(ascii) => format!("{wildcard}{ascii}"),
        Err(_) => h.to_string(),
    }
}

fn default_timezone() -> Tz {
    Tz::UTC
}

// Parsers for settings given as text in the file. Each runs once, while the
// file is read, so later code holds the parsed value and never checks it
// again; its message lands under the key `serde_path_to_error` tracks.

fn server_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    socket_addr(d, "127.0.0.1:8080")
}

fn demo_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    socket_addr(d, "127.0.0.1:8000")
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D, example: &str) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address and port such as \"{example}\""
        ))
    })
}

/// Empty text means "no metrics-only listener".
fn metrics_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address and port such as \"127.0.0.1:9090\""
        ))
    })
}

/// One entry of `server.trusted_proxies`; a newtype so that an error names
/// the entry's index in the list.
struct ProxyNetwork(IpNet);

impl<'de> Deserialize<'de> for ProxyNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map(|net| ProxyNetwork(net.trunc()))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an address or CIDR such as \"10.0.0.0/8\""
                ))
            })
    }
}

fn proxy_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let networks = Vec::<ProxyNetwork>::deserialize(d)?;
    Ok(networks.into_iter().map(|ProxyNetwork(net)| net).collect())
}

fn cron_schedule<'de, D: Deserializer<'de>>(d: D) -> Result<cron::Schedule, D::Error> {
    let text = String::deserialize(d)?;
    cron::Schedule::from_str(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a cron expression with seconds first (e.g. \"0 30 3 * * *\"): {e}"
        ))
    })
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let text = String::deserialize(d)?;
    Tz::from_str(&text).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an IANA time zone (e.g. \"Europe/Berlin\")"
        ))
    })
}

fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}
fn yes() -> bool {
    true
}
fn default_search_params() -> Vec<String> {
    ["q", "query", "search", "s"].map(String::from).to_vec()
}
fn default_download_extensions() -> Vec<String> {
    [
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "csv", "txt",
        "rtf", "zip", "gz", "7z", "rar", "epub", "mp3", "mp4",
    ]
    .map(String::from)
    .to_vec()
}

impl SiteConfig {
    pub fn tz(&self) -> Tz {
        self.timezone
    }

    /// True when `host` (lower-case, no port) may be counted for this site.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hostnames.iter().any(|h| {
            if let Some(suffix) = h.strip_prefix("*.") {
                host == suffix || host.ends_with(&format!(".{suffix}"))
            } else {
                h == host
            }
        })
    }

    /// Query parameters that survive URL stripping.
    pub fn is_kept_param(&self, name: &str) -> bool {
        crate::privacy::url_strip::CAMPAIGN_PARAMS.contains(&name)
            || self.search_params.iter().any(|p| p == name)
            || self.keep_query_params.iter().any(|p| p == name)
    }

    pub fn is_download(&self, path: &str) -> bool {
        let last = path.rsplit('/').next().unwrap_or("");
        match last.rsplit_once('.') {
            Some((_, ext)) => self
                .download_extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(ext)),
            None => false,
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| invalid("(file)", e.to_string()))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let problem = e.inner().message().to_string();
            invalid(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                problem,
            )
        })?;
        for site in &mut config.sites {
            for h in &mut site.hostnames {
                *h = ascii_hostname(h);
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(dir) = &self.device.rules_dir {
            if !dir.join("oss.yml").is_file() {
                return Err(invalid(
                    "device.rules_dir",
                    format!(
                        "{} holds no oss.yml; expected a copy of DeviceDetector's regexes/ folder",
                        dir.display()
                    ),
                ));
            }
        }
        self.validate_clickhouse()?;
        self.referrer_spam
            .validate()
            .map_err(|(i, e)| invalid(format!("referrer_spam.extra_hosts[{i}]"), e.to_string()))?;
        self.refuse_shared_listeners()?;
        self.validate_server()?;
        self.validate_privacy()?;
        self.validate_retention()?;
        self.validate_store()?;
        self.validate_auth()?;
        self.validate_sites()
    }

    /// `[server]`: body and field sizes, batch and timing limits, rate limits.
    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if !(ByteSize::kib(1)..=ByteSize::mib(16)).contains(&s.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 1024 and 16777216 (1 KiB to 16 MiB)",
            ));
        }
        if !(ByteSize::b(64)..=ByteSize::kib(64)).contains(&s.max_field_bytes) {
            return Err(invalid(
                "server.max_field_bytes",
                "must be between 64 and 65536 (64 B to 64 KiB)",
            ));
        }
        if s.max_batch_events == 0 || s.max_batch_events > 10_000 {
            return Err(invalid(
                "server.max_batch_events",
                "must be between 1 and 10000",
            ));
        }
        if !(MIN_ENGAGED_SECONDS..=MAX_ENGAGED_SECONDS).contains(&s.max_engaged_seconds) {
            return Err(invalid(
                "server.max_engaged_seconds",
                format!("must be between {MIN_ENGAGED_SECONDS} and {MAX_ENGAGED_SECONDS} (one minute to one week)"),
            ));
        }
        if s.client_timeout.is_zero() {
            return Err(invalid("server.client_timeout_secs", "must be at least 1"));
        }
        if s.keep_alive > Duration::from_secs(3600) {
            return Err(invalid("server.keep_alive_secs", "must be 0 to 3600"));
        }
        if s.rate_limit_per_minute > 0 && s.rate_limit_burst == 0 {
            return Err(invalid(
                "server.rate_limit_burst",
                "must be at least 1 while server.rate_limit_per_minute is above 0",
            ));
        }
        self.validate_rate_limits()?;
        Ok(())
    }

    /// `[privacy]`: address masks no weaker than the defaults unless allowed, the opt-out cookie.
    fn validate_privacy(&self) -> Result<(), ConfigError> {
        let p = &self.privacy;
        if p.ipv4_prefix > 32 {
            return Err(invalid("privacy.ipv4_prefix", "must be 0 to 32"));
        }
        if p.ipv6_prefix > 128 {
            return Err(invalid("privacy.ipv6_prefix", "must be 0 to 128"));
        }
        if !p.allow_weaker_masks {
            if p.ipv4_prefix > IpMasks::DEFAULT.v4_prefix {
                return Err(invalid(
                    "privacy.ipv4_prefix",
                    format!(
                        "{} keeps more of the address than the default {}; set privacy.allow_weaker_masks = true to allow this",
                        p.ipv4_prefix,
                        IpMasks::DEFAULT.v4_prefix
                    ),
                ));
            }
            if p.ipv6_prefix > IpMasks::DEFAULT.v6_prefix {
                return Err(invalid(
                    "privacy.ipv6_prefix",
                    format!(
                        "{} keeps more of the address than the default {}; set privacy.allow_weaker_masks = true to allow this",
                        p.ipv6_prefix,
                        IpMasks::DEFAULT.v6_prefix
                    ),
                ));
            }
        }
        let cookie = &p.optout_cookie;
        if cookie.is_empty()
            || !cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "privacy.optout_cookie",
                "must be non-empty and use only letters, digits, '_' and '-'",
            ));
        }
        if p.optout_cookie_days == 0 || p.optout_cookie_days > 400 {
            return Err(invalid(
                "privacy.optout_cookie_days",
                "must be 1 to 400 (browsers cut longer cookie lifetimes to 400 days)",
            ));
        }
        Ok(())
    }

    /// `[retention]`: raw and roll-up lifetimes, the free-text rule.
    fn validate_retention(&self) -> Result<(), ConfigError> {
        let r = &self.retention;
        if r.raw_days == 0 {
            return Err(invalid("retention.raw_days", "must be at least 1"));
        }
        if r.rollup_days != 0 && r.rollup_days < r.raw_days {
            return Err(invalid(
                "retention.rollup_days",
                "must be 0 (keep) or at least retention.raw_days",
            ));
        }
        if r.free_text_min_visitors != 0 && r.free_text_min_visitors < MIN_FREE_TEXT_VISITORS {
            return Err(invalid(
                "retention.free_text_min_visitors",
                format!(
                    "must be 0 (free text expires with the raw events) or at least {MIN_FREE_TEXT_VISITORS}"
                ),
            ));
        }
        Ok(())
    }

    /// `[store]`: cache, queue, batch and roll-up folding limits.
    fn validate_store(&self) -> Result<(), ConfigError> {
        if self.store.cache_mb == 0 {
            return Err(invalid("store.cache_mb", "must be at least 1"));
        }
        if self.store.queue_capacity == 0 {
            return Err(invalid("store.queue_capacity", "must be at least 1"));
        }
        if self.store.max_batch == 0 || self.store.max_batch > 100_000 {
            return Err(invalid("store.max_batch", "must be between 1 and 100000"));
        }
        if self.store.max_new_strings_per_site_day == 0 {
            return Err(invalid(
                "store.max_new_strings_per_site_day",
                "must be at least 1",
            ));
        }
        if self.store.max_events_per_site_day == 0 {
            return Err(invalid(
                "store.max_events_per_site_day",
                "must be at least 1",
            ));
        }
        if self.store.rollup_fold_interval.is_zero()
            || self.store.rollup_fold_interval > Duration::from_secs(3600)
        {
            return Err(invalid(
                "store.rollup_fold_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.store.rollup_fold_events == 0 {
            return Err(invalid("store.rollup_fold_events", "must be at least 1"));
        }
        if self.store.rollup_max_rows < 1000 {
            return Err(invalid("store.rollup_max_rows", "must be at least 1000"));
        }
        Ok(())
    }

    /// `[auth]`: token lengths, the lock-out rate, no placeholder tokens.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        if !self.auth.admin_token.is_empty() && self.auth.admin_token.len() < 16 {
            return Err(invalid(
                "auth.admin_token",
                "must be at least 16 characters (or empty to disable admin access)",
            ));
        }
        if self.auth.max_failed_tokens_per_minute == 0 {
            return Err(invalid(
                "auth.max_failed_tokens_per_minute",
                "must be at least 1",
            ));
        }
        self.refuse_placeholder_tokens()?;
        Ok(())
    }

    /// `[[sites]]`: at least one; ids, Matomo ids and tokens unique across
    /// sites; each site valid on its own.
    fn validate_sites(&self) -> Result<(), ConfigError> {
        if self.sites.is_empty() {
            return Err(invalid("sites", "at least one [[sites]] entry is required"));
        }
        let mut ids = HashSet::new();
        let mut matomo_ids = HashSet::new();
        let mut tokens: HashMap<&str, &str> = HashMap::new();
        for (i, site) in self.sites.iter().enumerate() {
            self.validate_site(i, site, &mut ids, &mut matomo_ids, &mut tokens)?;
        }
        Ok(())
    }

    /// One `[[sites]]` entry (number `i`), recording its id, Matomo id and
    /// tokens in the sets shared across sites.
    fn validate_site<'a>(
        &'a self,
        i: usize,
        site: &'a SiteConfig,
        ids: &mut HashSet<&'a str>,
        matomo_ids: &mut HashSet<u32>,
        tokens: &mut HashMap<&'a str, &'a str>,
    ) -> Result<(), ConfigError> {
        let key = |k: &str| format!("sites[{i}].{k}");
        if site.id.is_empty()
            || site.id.len() > 64
            || !site
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                key("id"),
                "must be 1-64 characters of letters, digits, '-' or '_'",
            ));
        }
        if !ids.insert(site.id.as_str()) {
            return Err(invalid(
                key("id"),
                format!("{:?} is used by another site", site.id),
            ));
        }
        if let Some(m) = site.matomo_id {
            if !matomo_ids.insert(m) {
                return Err(invalid(
                    key("matomo_id"),
                    format!("{m} is used by another site"),
                ));
            }
        }
        if site.hostnames.is_empty() {
            return Err(invalid(
                key("hostnames"),
                "list at least one hostname whose pages may be counted",
            ));
        }
        for (j, h) in site.hostnames.iter().enumerate() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if bare.is_empty()
                || h != &h.to_ascii_lowercase()
                || bare.contains(['/', ':', ' ', '*'])
            {
                return Err(invalid(
                    format!("sites[{i}].hostnames[{j}]"),
                    format!("{h:?} must be a lower-case hostname without scheme, port or path (\"*.example.org\" allows subdomains)"),
                ));
            }
        }
        for (j, t) in site.tokens.iter().enumerate() {
            if t.len() < 16 {
                return Err(invalid(
                    format!("sites[{i}].tokens[{j}]"),
                    "must be at least 16 characters",
                ));
            }
            if t == &self.auth.admin_token {
                return Err(invalid(
                    format!("sites[{i}].tokens[{j}]"),
                    "must differ from auth.admin_token",
                ));
            }
            if let Some(other) = tokens.insert(t.as_str(), site.id.as_str()) {
                if other != site.id {
                    return Err(invalid(
                        format!("sites[{i}].tokens[{j}]"),
                        format!("is also a token of site {other:?}"),
                    ));
                }
            }
        }
        crate::goals::config::validate(
            &format!("sites[{i}]"),
            &site.events,
            &site.goals,
            &site.funnels,
        )
        .map_err(|(key, problem)| invalid(key, problem))?;
        for (j, e) in site.download_extensions.iter().enumerate() {
            if e.is_empty() || e.starts_with('.') || !e.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid(
                    format!("sites[{i}].download_extensions[{j}]"),
                    format!("{e:?} must be letters and digits without a dot, e.g. \"pdf\""),
                ));
            }
        }
        Ok(())
    }

    /// The demo site and the metrics-only listener each need an address of
    /// their own (port 0, "any free port", never clashes).
    fn refuse_shared_listeners(&self) -> Result<(), ConfigError> {
        let listen = self.server.listen;
        let clashes = |addr: SocketAddr| addr.port() != 0 && addr == listen;
        if self.demo.as_ref().is_some_and(|demo| clashes(demo.listen)) {
            return Err(invalid("demo.listen", "must differ from server.listen"));
        }
        if self.server.metrics_listen.is_some_and(clashes) {
            return Err(invalid(
                "server.metrics_listen",
                "must differ from server.listen",
            ));
        }
        Ok(())
    }

    /// `[clickhouse]` is checked whenever it is present; with
    /// `store.backend = "clickhouse"`, settings that backend cannot serve
    /// yet are refused by name.
    fn validate_clickhouse(&self) -> Result<(), ConfigError> {
        self.clickhouse
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        if self.store.backend != StoreBackend::ClickHouse {
            return Ok(());
        }
        if self.retention.vacuum_after_sweep {
            return Err(invalid(
                "retention.vacuum_after_sweep",
                "must be false with store.backend = \"clickhouse\" (ClickHouse deletes dropped \
                 partitions' files itself after the server's merge_tree.old_parts_lifetime)",
            ));
        }
        if self.retention.free_text_min_visitors > 0 {
            return Err(invalid(
                "retention.free_text_min_visitors",
                "must be 0 with store.backend = \"clickhouse\" (counting free text by visitors \
                 is not built for that backend yet)",
            ));
        }
        Ok(())
    }

    /// Each per-minute limit needs a burst that lets the largest single
    /// request through; otherwise every such request would be refused.
    fn validate_rate_limits(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.rate_limit_events_per_minute > 0
            && (s.rate_limit_events_burst as usize) < s.max_batch_events
        {
            return Err(invalid(
                "server.rate_limit_events_burst",
                format!(
                    "must be at least server.max_batch_events ({}) while \
                     server.rate_limit_events_per_minute is above 0",
                    s.max_batch_events
                ),
            ));
        }
        for (key, size) in [
            (
                "server.rate_limit_bytes_per_minute",
                s.rate_limit_bytes_per_minute,
            ),
            ("server.rate_limit_bytes_burst", s.rate_limit_bytes_burst),
        ] {
            if size > MAX_RATE_LIMIT_BYTES {
                return Err(invalid(
                    key,
                    format!("must be at most {} bytes", MAX_RATE_LIMIT_BYTES.as_u64()),
                ));
            }
        }
        if s.rate_limit_bytes_per_minute.as_u64() > 0 && s.rate_limit_bytes_burst < s.max_body_bytes
        {
            return Err(invalid(
                "server.rate_limit_bytes_burst",
                format!(
                    "must be at least server.max_body_bytes ({}) while \
                     server.rate_limit_bytes_per_minute is above 0",
                    s.max_body_bytes.as_u64()
                ),
            ));
        }
        Ok(())
    }

    /// The example configuration's `change-me` tokens are public; they may
    /// only guard a collector that listens on a loopback address.
    fn refuse_placeholder_tokens(&self) -> Result<(), ConfigError> {
        if self.server.listen.ip().is_loopback() {
            return Ok(());
        }
        let placeholder = |t: &str| t.to_ascii_lowercase().contains(PLACEHOLDER_TOKEN);
        let problem = "is the example configuration's placeholder (it contains \"change-me\"), \
                       allowed only while server.listen is a loopback address; set a secret token";
        if placeholder(&self.auth.admin_token) {
            return Err(invalid("auth.admin_token", problem));
        }
        for (i, site) in self.sites.iter().enumerate() {
            for (j, t) in site.tokens.iter().enumerate() {
                if placeholder(t) {
                    return Err(invalid(format!("sites[{i}].tokens[{j}]"), problem));
                }
            }
        }
        Ok(())
    }

    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }

    pub fn site_by_matomo_id(&self, id: u32) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.matomo_id == Some(id))
    }

    /// The site whose hostnames include `host` (Plausible's `d` field), in
    /// Unicode or punycode.
    pub fn site_by_host(&self, host: &str) -> Option<&SiteConfig> {
        let host = ascii_hostname(&host.to_ascii_lowercase());
        self.sites.iter().find(|s| s.allows_host(&host))
    }

    pub fn store_path(&self) -> PathBuf {
        self.server.data_dir.join("sparsam.redb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[sites]]
id = "demo"
hostnames = ["localhost"]
"#;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_gets_private_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.privacy.masks(), IpMasks::DEFAULT);
        assert_eq!(c.retention.raw_days, 90);
        assert!(c.sites[0].honour_gpc);
    }

    #[test]
    fn type_errors_name_the_key() {
        let e = err("[server]\nlisten = 5\n[[sites]]\nid=\"a\"\nhostnames=[\"x\"]");
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn free_text_threshold_is_off_or_at_least_ten() {
        let with = |k: u32| {
            Config::parse(&format!(
                "[retention]\nfree_text_min_visitors = {k}\n{MINIMAL}"
            ))
        };
        assert_eq!(
            Config::parse(MINIMAL)
                .unwrap()
                .retention
                .free_text_min_visitors,
            0
        );
        assert!(with(0).is_ok());
        assert_eq!(with(10).unwrap().retention.free_text_min_visitors, 10);
        let e = with(9).unwrap_err().to_string();
        assert!(e.contains("retention.free_text_min_visitors"), "{e}");
        assert!(e.contains("at least 10"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = err("[privacy]\nipv4_prefx = 8\n[[sites]]\nid=\"a\"\nhostnames=[\"x\"]");
        assert!(e.contains("ipv4_prefx"), "{e}");
    }

    #[test]
    fn weaker_masks_need_explicit_setting() {
        let e = err(&format!("[privacy]\nipv4_prefix = 24\n{MINIMAL}"));
        assert!(
            e.contains("privacy.ipv4_prefix") && e.contains("allow_weaker_masks"),
            "{e}"
        );
        let ok = format!("[privacy]\nipv4_prefix = 24\nallow_weaker_masks = true\n{MINIMAL}");
        assert!(Config::parse(&ok).is_ok());
        let stricter = format!("[privacy]\nipv4_prefix = 8\nipv6_prefix = 24\n{MINIMAL}");
        assert!(Config::parse(&stricter).is_ok());
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let e = err("[[sites]]\nid=\"a\"\nhostnames=[\"x\"]\ntimezone=\"Mars/Base\"");
        assert!(
            e.contains("sites[0].timezone") && e.contains("Mars/Base"),
            "{e}"
        );
        let e = err(&format!(
            "[retention]\nsweep_schedule = \"0 0 * * 0\"\n{MINIMAL}"
        ));
        assert!(e.contains("retention.sweep_schedule"), "{e}");
        let e = err(&format!(
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{MINIMAL}"
        ));
        assert!(e.contains("server.trusted_proxies[0]"), "{e}");
        let e = err(&format!(
            "[server]\nclient_ip_header = \"x-client-ip\"\n{MINIMAL}"
        ));
        assert!(e.contains("server.client_ip_header"), "{e}");
        let e = err("[[sites]]\nid=\"a\"\nhostnames=[\"https://x.org\"]");
        assert!(e.contains("sites[0].hostnames[0]"), "{e}");
        let e = err("");
        assert!(e.contains("sites"), "{e}");
        for bad in ["0", "59", "604801"] {
            let e = err(&format!("[server]\nmax_engaged_seconds = {bad}\n{MINIMAL}"));
            assert!(e.contains("server.max_engaged_seconds"), "{e}");
        }
        let e = err(&format!("[server]\nmax_engaged_seconds = -1\n{MINIMAL}"));
        assert!(e.contains("server.max_engaged_seconds"), "{e}");
        for bad in ["0", "100001"] {
            let e = err(&format!("[store]\nmax_batch = {bad}\n{MINIMAL}"));
            assert!(e.contains("store.max_batch"), "{e}");
        }
    }

    #[test]
    fn client_ip_header_is_parsed_into_its_kind() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.server.client_ip_header, ClientIpHeader::XForwardedFor);
        for (text, want) in [
            ("x-forwarded-for", ClientIpHeader::XForwardedFor),
            ("forwarded", ClientIpHeader::Forwarded),
            ("x-real-ip", ClientIpHeader::XRealIp),
        ] {
            let c = Config::parse(&format!(
                "[server]\nclient_ip_header = \"{text}\"\n{MINIMAL}"
            ))
            .unwrap();
            assert_eq!(c.server.client_ip_header, want);
        }
    }

    #[test]
    fn hosts_and_downloads() {
        let c =
            Config::parse("[[sites]]\nid=\"a\"\nhostnames=[\"example.org\", \"*.example.net\"]")
                .unwrap();
        let s = &c.sites[0];
        assert!(s.allows_host("example.org"));
        assert!(!s.allows_host("evil-example.org"));
        assert!(s.allows_host("www.example.net"));
        assert!(s.allows_host("example.net"));
        assert!(!s.allows_host("badexample.net"));
        assert!(s.is_download("/files/report.PDF"));
        assert!(!s.is_download("/files.pdf/index.html"));
    }

    #[test]
    fn optout_cookie_secure_and_demo_are_checked() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.privacy.optout_cookie_secure, CookieSecure::Auto);
        assert!(c.demo.is_none());
        let e = err(&format!(
            "[privacy]\noptout_cookie_secure = \"sometimes\"\n{MINIMAL}"
        ));
        assert!(e.contains("privacy.optout_cookie_secure"), "{e}");
        let ok = format!("[privacy]\noptout_cookie_secure = \"always\"\n{MINIMAL}");
        assert_eq!(
            Config::parse(&ok).unwrap().privacy.optout_cookie_secure,
            CookieSecure::Always
        );
        let e = err(&format!("[demo]\nlisten = \"localhost\"\n{MINIMAL}"));
        assert!(e.contains("demo.listen"), "{e}");
        let e = err(&format!("[demo]\nlisten = \"127.0.0.1:8080\"\n{MINIMAL}"));
        assert!(e.contains("demo.listen") && e.contains("differ"), "{e}");
        let c = Config::parse(&format!("[demo]\nlisten = \"127.0.0.1:8000\"\n{MINIMAL}")).unwrap();
        assert_eq!(c.demo.unwrap().listen.port(), 8000);
    }

    #[test]
    fn placeholder_tokens_only_on_loopback() {
        let site =
            "[[sites]]\nid=\"a\"\nhostnames=[\"x.org\"]\ntokens=[\"change-me-site-token-000\"]";
        let admin = "[auth]\nadmin_token = \"change-me-admin-token-0000\"";
        for listen in ["127.0.0.1:8080", "[::1]:8080"] {
            let ok = format!("[server]\nlisten = \"{listen}\"\n{admin}\n{site}");
            assert!(Config::parse(&ok).is_ok(), "{listen}");
        }
        let e = err(&format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n{admin}\n{site}"
        ));
        assert!(
            e.contains("auth.admin_token") && e.contains("change-me"),
            "{e}"
        );
        let e = err(&format!(
            "[server]\nlisten = \"192.0.2.1:8080\"\n[auth]\nadmin_token = \"a-real-secret-0123456\"\n{site}"
        ));
        assert!(e.contains("sites[0].tokens[0]"), "{e}");
    }

    #[test]
    fn rate_limit_bursts_must_fit_the_largest_request() {
        let e = err(&format!(
            "[server]\nrate_limit_events_burst = 99\n{MINIMAL}"
        ));
        assert!(e.contains("server.rate_limit_events_burst"), "{e}");
        let e = err(&format!(
            "[server]\nrate_limit_bytes_burst = 1000\n{MINIMAL}"
        ));
        assert!(e.contains("server.rate_limit_bytes_burst"), "{e}");
        let off = format!(
            "[server]\nrate_limit_events_per_minute = 0\nrate_limit_events_burst = 0\n\
             rate_limit_bytes_per_minute = 0\nrate_limit_bytes_burst = 0\n{MINIMAL}"
        );
        assert!(Config::parse(&off).is_ok());
        let e = err(&format!(
            "[auth]\nmax_failed_tokens_per_minute = 0\n{MINIMAL}"
        ));
        assert!(e.contains("auth.max_failed_tokens_per_minute"), "{e}");
        let e = err(&format!(
            "[server]\nmetrics_listen = \"nowhere\"\n{MINIMAL}"
        ));
        assert!(e.contains("server.metrics_listen"), "{e}");
        let e = err(&format!(
            "[server]\nlisten = \"127.0.0.1:9000\"\nmetrics_listen = \"127.0.0.1:9000\"\n{MINIMAL}"
        ));
        assert!(
            e.contains("server.metrics_listen") && e.contains("differ"),
            "{e}"
        );
    }

    #[test]
    fn text_settings_are_parsed_into_their_types_once() {
        let c = Config::parse(
            "[server]\nlisten = \"[::1]:9000\"\ntrusted_proxies = [\"10.1.2.3/8\", \"192.0.2.7\"]\n\
             metrics_listen = \"127.0.0.1:9090\"\nlog_format = \"json\"\n\
             client_timeout_secs = 7\nkeep_alive_secs = 0\n\
             [retention]\nsweep_schedule = \"0 15 4 * * Sun\"\n\
             [[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\ntimezone = \"Europe/Berlin\"",
        )
        .unwrap();
        let s = &c.server;
        assert_eq!(s.listen, "[::1]:9000".parse::<SocketAddr>().unwrap());
        // networks are held truncated to their prefix; an address alone is a /32
        assert_eq!(
            s.trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "192.0.2.7/32".parse::<IpNet>().unwrap()
            ]
        );
        assert_eq!(
            s.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.client_timeout, Duration::from_secs(7));
        assert_eq!(s.keep_alive, Duration::ZERO);
        assert_eq!(c.retention.sweep_schedule.source(), "0 15 4 * * Sun");
        assert_eq!(c.sites[0].timezone, chrono_tz::Europe::Berlin);
        let defaults = Config::parse(MINIMAL).unwrap();
        assert_eq!(defaults.sites[0].timezone, Tz::UTC);
        assert_eq!(defaults.server.metrics_listen, None);
        assert_eq!(defaults.server.log_format, LogFormat::Text);
        assert_eq!(
            defaults.retention.sweep_schedule.source(),
            DEFAULT_SWEEP_SCHEDULE
        );
    }

    #[test]
    fn byte_sizes_take_numbers_or_units() {
        let with = |line: &str| Config::parse(&format!("[server]\n{line}\n{MINIMAL}"));
        let c = with("max_body_bytes = 65536").unwrap();
        assert_eq!(c.server.max_body_bytes, ByteSize::kib(64));
        let c = with("max_body_bytes = \"64 KiB\"\nmax_field_bytes = \"4 KiB\"").unwrap();
        assert_eq!(c.server.max_body_bytes.as_u64(), 65_536);
        assert_eq!(c.server.max_field_bytes.as_u64(), 4096);
        let c = with("rate_limit_bytes_per_minute = \"1 MB\"").unwrap();
        assert_eq!(c.server.rate_limit_bytes_per_minute.as_u64(), 1_000_000);
        let e = with("max_body_bytes = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("server.max_body_bytes"), "{e}");
        let e = with("max_body_bytes = \"17 MiB\"").unwrap_err().to_string();
        assert!(
            e.contains("server.max_body_bytes") && e.contains("16 MiB"),
            "{e}"
        );
        let e = with("max_field_bytes = -1").unwrap_err().to_string();
        assert!(e.contains("server.max_field_bytes"), "{e}");
        let e = with("rate_limit_bytes_burst = \"5 GiB\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.rate_limit_bytes_burst"), "{e}");
    }

    #[test]
    fn text_setting_errors_name_the_key_and_the_value() {
        for (text, key, value) in [
            (
                "[server]\nlisten = \"localhost:80\"",
                "server.listen",
                "localhost:80",
            ),
            (
                "[server]\nmetrics_listen = \"9090\"",
                "server.metrics_listen",
                "9090",
            ),
            (
                "[server]\ntrusted_proxies = [\"10.0.0.1\", \"proxy.lan\"]",
                "server.trusted_proxies[1]",
                "proxy.lan",
            ),
            (
                "[retention]\nsweep_schedule = \"every night\"",
                "retention.sweep_schedule",
                "every night",
            ),
            ("[server]\nlog_format = \"xml\"", "server.log_format", "xml"),
            (
                "[server]\nkeep_alive_secs = -5",
                "server.keep_alive_secs",
                "-5",
            ),
        ] {
            let e = err(&format!("{text}\n{MINIMAL}"));
            assert!(e.contains(key) && e.contains(value), "{e}");
        }
        let e = err("[[sites]]\nid=\"a\"\nhostnames=[\"x\"]\n[[sites]]\nid=\"b\"\nhostnames=[\"y\"]\ntimezone=\"Europe/Nowhere\"");
        assert!(
            e.contains("sites[1].timezone") && e.contains("Europe/Nowhere"),
            "{e}"
        );
    }

    #[test]
    fn declared_events_goals_and_funnels_are_checked_by_key() {
        let site = |extra: &str| {
            format!(
                "[[sites]]\nid=\"a\"\nhostnames=[\"x.org\"]\n\
                 [[sites.events]]\nname = \"signup\"\n\
                 props = {{ plan = {{ max_len = 16, values = [\"free\", \"pro\"] }} }}\n{extra}"
            )
        };
        let ok = site(
            "[[sites.goals]]\nname = \"Signed up\"\nevent = \"signup\"\n\
             [[sites.goals]]\nname = \"Read the guide\"\npath = \"/guide/*\"\n\
             [[sites.funnels]]\nname = \"Sign-up flow\"\n\
             steps = [\"path:/pricing\", \"path:/signup\", \"event:signup\"]",
        );
        let c = Config::parse(&ok).unwrap();
        assert_eq!(c.sites[0].events[0].props["plan"].max_len, 16);
        assert_eq!(c.sites[0].goals.len(), 2);
        for (extra, key) in [
            ("[[sites.goals]]\nname = \"g\"\nevent = \"nope\"", "sites[0].goals[0].event"),
            ("[[sites.goals]]\nname = \"g\"\npath = \"guide\"", "sites[0].goals[0].path"),
            ("[[sites.goals]]\nname = \"g\"", "sites[0].goals[0]"),
            (
                "[[sites.goals]]\nname = \"g\"\nevent = \"signup\"\nprops = { plan = \"gold\" }",
                "sites[0].goals[0].props.plan",
            ),
            (
                "[[sites.funnels]]\nname = \"f\"\nsteps = [\"path:/a\", \"event:signup\", \"event:gone\"]",
                "sites[0].funnels[0].steps[2]",
            ),
            (
                "[[sites.funnels]]\nname = \"f\"\nsteps = [\"path:/a\", \"page:/b\"]",
                "sites[0].funnels[0].steps[1]",
            ),
            (
                "[[sites.funnels]]\nname = \"f\"\nsteps = [\"path:/1\",\"path:/2\",\"path:/3\",\"path:/4\",\"path:/5\",\"path:/6\",\"path:/7\",\"path:/8\",\"path:/9\"]",
                "sites[0].funnels[0].steps",
            ),
            (
                "[[sites.events]]\nname = \"signup\"",
                "sites[0].events[1].name",
            ),
            (
                "[[sites.events]]\nname = \"x\"\nprops = { p = { max_len = 0 } }",
                "sites[0].events[1].props.p.max_len",
            ),
        ] {
            let e = err(&site(extra));
            assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
        }
        let e = err(&site("[[sites.goals]]\nname = \"g\"\nevnt = \"signup\""));
        assert!(e.contains("evnt"), "{e}");
    }

    #[test]
    fn clickhouse_backend_keys_are_checked_by_name() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.store.backend, StoreBackend::Redb);
        let ch = "[store]\nbackend = \"clickhouse\"\n[retention]\nvacuum_after_sweep = false\n";
        let c = Config::parse(&format!(
            "{ch}[clickhouse]\nurls = [\"http://10.0.0.1:8123\", \"http://10.0.0.2:8123\"]\n\
             cluster = \"analytics\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(c.store.backend, StoreBackend::ClickHouse);
        assert_eq!(c.clickhouse.urls.len(), 2);
        assert_eq!(c.clickhouse.database, "sparsam");
        assert_eq!(c.clickhouse.batch_rows, 50_000);
        let e = err(&format!("[store]\nbackend = \"postgres\"\n{MINIMAL}"));
        assert!(e.contains("store.backend"), "{e}");
        let e = err(&format!("[store]\nbackend = \"clickhouse\"\n{MINIMAL}"));
        assert!(e.contains("retention.vacuum_after_sweep"), "{e}");
        let e = err(&format!("{ch}free_text_min_visitors = 10\n{MINIMAL}"));
        assert!(e.contains("retention.free_text_min_visitors"), "{e}");
        for (key, text) in [
            ("clickhouse.urls", "urls = []"),
            (
                "clickhouse.urls[1]",
                "urls = [\"http://a:8123\", \"a:8123\"]",
            ),
            ("clickhouse.urls[0]", "urls = [\"http://a:8123/?user=x\"]"),
            ("clickhouse.database", "database = \"a-b\""),
            ("clickhouse.cluster", "cluster = \"x y\""),
            ("clickhouse.batch_rows", "batch_rows = 0"),
            ("clickhouse.flush_ms", "flush_ms = 1"),
            ("clickhouse.spool_max_mb", "spool_max_mb = 0"),
            ("clickhouse.report_cache_mb", "report_cache_mb = 65537"),
            ("clickhouse.uls", "uls = []"),
        ] {
            let e = err(&format!("{ch}[clickhouse]\n{text}\n{MINIMAL}"));
            assert!(
                e.contains(key.rsplit('.').next().unwrap()) && e.contains("clickhouse"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sparsam.toml");
        Config::load(&path).unwrap();
    }
}

//! The audit log and the audit view for data protection officers.
//!
//! The log is kept by the store (in the redb engine one table, `audit`;
//! key: record number, value: one small JSON object). It holds sweeps (start, end, cutoff, what was deleted,
//! outcome) and the privacy settings in force at start-up (written only when
//! they changed). Audit records are not raw events and hold no personal
//! data, so the sweeper never deletes them; JSON keeps them readable with
//! any redb tool and lets record kinds grow without a schema bump.
//!
//! The view ([`audit_view`]) adds a verification that runs over the store:
//! every stored address must decode, carry no bits beyond its prefix and
//! have a prefix no longer than the configured mask, no raw event may
//! be older than the retention rule allows, and no free text (search
//! terms, URL queries) may be left in a roll-up of a day older than that,
//! unless `retention.free_text_min_visitors` kept it. What it says about cookies is
//! derived from the config and the embedded tracker (`privacy::cookies`);
//! a running server adds what it saw in its own responses.

use crate::store::ids::DayNumber;
use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::privacy::cookies::{tracker_scan, ScriptCookie};
use crate::privacy::StoredIp;
use crate::storage::{Storage, StorageError};
use crate::store::schema::MS_PER_DAY;

pub use crate::store::schema::AUDIT;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditRecord {
    Sweep(SweepRecord),
    Settings(SettingsRecord),
}

/// A sweep as it ran. `outcome` is `running` while it runs, then `ok`,
/// `error` (with `error` text) or `interrupted` (the process stopped before
/// it finished; the next sweep completes the job).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SweepRecord {
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub cutoff_ms: i64,
    pub rollup_cutoff_ms: Option<i64>,
    pub partitions_dropped: Vec<String>,
    pub events_deleted: u64,
    /// Dictionary strings deleted because no surviving event uses them.
    #[serde(default)]
    pub strings_deleted: u64,
    /// The store file was rewritten after the sweep.
    #[serde(default)]
    pub vacuumed: bool,
    pub rollup_rows_deleted: u64,
    /// Free text in roll-ups: local days before this one hold none any
    /// more, except values the rule kept.
    #[serde(default)]
    pub free_text_before: Option<String>,
    /// Roll-up rows whose free text expired (cut to the path or deleted).
    #[serde(default)]
    pub free_text_rows_expired: u64,
    /// The same, per dimension.
    #[serde(default)]
    pub free_text_expired_by_dimension: BTreeMap<String, u64>,
    /// Roll-up rows whose free text `retention.free_text_min_visitors` kept.
    #[serde(default)]
    pub free_text_rows_kept: u64,
    /// UTC days whose roll-ups were written to outlive their raw events
    /// (ClickHouse), free text cut.
    #[serde(default)]
    pub rollups_kept: Vec<String>,
    /// Rows written for them.
    #[serde(default)]
    pub rollup_rows_written: u64,
    pub duration_ms: Option<u64>,
    pub outcome: String,
    pub error: Option<String>,
}

/// Privacy settings in force, recorded at start-up when they changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub raw_days: u32,
    pub rollup_days: u32,
    /// 0: free text expires with the raw events.
    #[serde(default)]
    pub free_text_min_visitors: u32,
    pub sweep_schedule: String,
    pub tracking_cookies: bool,
    pub optout_cookie: String,
    pub optout_cookie_days: u32,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            ipv4_prefix: c.privacy.ipv4_prefix,
            ipv6_prefix: c.privacy.ipv6_prefix,
            raw_days: c.retention.raw_days,
            rollup_days: c.retention.rollup_days,
            free_text_min_visitors: c.retention.free_text_min_visitors,
            sweep_schedule: c.retention.sweep_schedule.source().to_string(),
            tracking_cookies: tracker_scan().tracks(),
            optout_cookie: c.privacy.optout_cookie.clone(),
            optout_cookie_days: c.privacy.optout_cookie_days,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub at_ms: i64,
    #[serde(flatten)]
    pub settings: Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("audit record {0} is not valid: {1}")]
    Record(u64, String),
}

fn to_json(r: &AuditRecord) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string(r).unwrap_or_else(|_| "{}".into())
}

fn parse(id: u64, s: &str) -> Result<AuditRecord, AuditError> {
    serde_json::from_str(s).map_err(|e| AuditError::Record(id, e.to_string()))
}

/// Appends `rec` and returns its number.
pub fn append(store: &dyn Storage, rec: &AuditRecord) -> Result<u64, AuditError> {
    Ok(store.audit_append(&to_json(rec))?)
}

/// Replaces record `id`.
pub fn update(store: &dyn Storage, id: u64, rec: &AuditRecord) -> Result<(), AuditError> {
    Ok(store.audit_replace(id, &to_json(rec))?)
}

/// Every record, oldest first.
pub fn records(store: &dyn Storage) -> Result<Vec<(u64, AuditRecord)>, AuditError> {
    store
        .audit_records()?
        .into_iter()
        .map(|(id, json)| Ok((id, parse(id, &json)?)))
        .collect()
}

/// The last `n` sweeps, newest first.
pub fn last_sweeps(store: &dyn Storage, n: usize) -> Result<Vec<SweepRecord>, AuditError> {
    Ok(records(store)?
        .into_iter()
        .rev()
        .filter_map(|(_, r)| match r {
            AuditRecord::Sweep(s) => Some(s),
            AuditRecord::Settings(_) => None,
        })
        .take(n)
        .collect())
}

/// Marks sweeps left `running` by a process that stopped mid-sweep as
/// `interrupted`. Only call while holding the store exclusively (redb's
/// file lock guarantees no other process runs a sweep on it).
pub fn mark_interrupted(store: &dyn Storage) -> Result<usize, AuditError> {
    let mut n = 0;
    for (id, r) in records(store)? {
        if let AuditRecord::Sweep(mut s) = r {
            if s.outcome == "running" {
                s.outcome = "interrupted".into();
                update(store, id, &AuditRecord::Sweep(s))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Records the privacy settings of `config` unless the last settings record
/// says the same. Returns whether a record was written.
pub fn record_settings(
    store: &dyn Storage,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<bool, AuditError> {
    let settings = Settings::from_config(config);
    let last = records(store)?
        .into_iter()
        .rev()
        .find_map(|(_, r)| match r {
            AuditRecord::Settings(s) => Some(s.settings),
            AuditRecord::Sweep(_) => None,
        });
    if last.as_ref() == Some(&settings) {
        return Ok(false);
    }
    append(
        store,
        &AuditRecord::Settings(SettingsRecord {
            at_ms: now.timestamp_millis(),
            settings,
        }),
    )?;
    Ok(true)
}

/// Raw events per age bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgeBuckets {
    #[serde(rename = "0-7d")]
    pub d0_7: u64,
    #[serde(rename = "8-30d")]
    pub d8_30: u64,
    #[serde(rename = "31-60d")]
    pub d31_60: u64,
    #[serde(rename = "61-90d")]
    pub d61_90: u64,
    #[serde(rename = ">90d")]
    pub over_90: u64,
}

impl AgeBuckets {
    fn add(&mut self, age_ms: i64) {
        // Day 0 is the first 24 hours; "0-7d" covers ages below 8 days.
        let days = age_ms.max(0) / MS_PER_DAY;
        match days {
            0..=7 => self.d0_7 += 1,
            8..=30 => self.d8_30 += 1,
            31..=60 => self.d31_60 += 1,
            61..=90 => self.d61_90 += 1,
            _ => self.over_90 += 1,
        }
    }
}

/// The first offending record a check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Offender {
    pub partition: String,
    pub site: String,
    pub ts_ms: i64,
    pub seq: u32,
    pub problem: String,
}

/// The verification over the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub events_checked: u64,
    /// Addresses that did not decode, carry bits beyond their prefix, or
    /// keep more bits than the configured mask.
    pub address_violations: u64,
    /// Events older than the rule allows.
    pub age_violations: u64,
    /// Stored blocks of events that did not decode at all.
    pub undecodable: u64,
    /// Strings in the raw dictionary.
    pub strings_checked: u64,
    /// Dictionary strings kept although every event that could use them is
    /// older than the rule allows.
    pub string_violations: u64,
    /// Roll-up rows with free text (search terms, URL queries) of a day
    /// older than the rule allows, that the free-text rule did not keep.
    pub free_text_violations: u64,
    /// Oldest timestamp the rule allows now (see `docs/retention.md`).
    pub oldest_allowed_ms: i64,
    pub first_offender: Option<Offender>,
}

/// The audit view: what a data protection officer needs to check
/// retention and anonymisation; what the retention sweeper enforces and
/// has done (see the retention docs).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub generated_at: String,
    pub retention: RetentionInForce,
    pub ip_masks: IpMaskView,
    pub cookies: CookieView,
    pub oldest_raw_event: Option<String>,
    /// The earliest UTC day (`YYYY-MM-DD`) the roll-ups hold counts of:
    /// how far back unfiltered reports reach.
    pub oldest_rollup_day: Option<String>,
    pub raw_events: u64,
    pub raw_events_by_age: AgeBuckets,
    pub next_sweep: Option<String>,
    pub last_sweeps: Vec<SweepRecord>,
    pub free_text: FreeTextView,
    pub verification: Verification,
}

/// Where free text (text a visitor typed or a link carried: site-search
/// terms, query-parameter values, full referrer URLs) is stored, how old
/// the oldest is (per table), and the rule that expires it with the raw
/// events (or keeps values seen from at least
/// `retention.free_text_min_visitors` visitors).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FreeTextView {
    /// `expire_with_raw_events`, or `keep_if_seen_by_min_visitors`.
    pub rule: String,
    /// `retention.free_text_min_visitors` when the second rule is in force.
    pub min_visitors: Option<u32>,
    /// The rule in words.
    pub description: String,
    /// Roll-ups of local days before this one were vetted by a sweep.
    pub vetted_before: Option<String>,
    pub tables: Vec<FreeTextTable>,
}

/// Free text in one kind of table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FreeTextTable {
    /// `events_YYYYMMDD` (raw events), `strings` (their dictionary),
    /// `dims_open`, `dims_sealed` (roll-ups).
    pub table: String,
    /// What free text it holds.
    pub holds: String,
    /// Day of the oldest free-text value (UTC day for raw data, the
    /// site's local day for roll-ups), `null` when there is none.
    pub oldest_day: Option<String>,
    /// Values (events, strings, roll-up rows) older than the rule allows.
    pub older_than_allowed: u64,
    /// Roll-up rows older than `raw_days` kept by
    /// `retention.free_text_min_visitors`.
    pub kept_by_rule: u64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionInForce {
    pub raw_days: u32,
    /// 0 keeps roll-ups.
    pub rollup_days: u32,
    pub sweep_schedule: String,
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct IpMaskView {
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub ipv4_example: String,
    pub ipv6_example: String,
}

/// What is stored in visitors' browsers, derived from the config, the
/// embedded tracker script and (in a running server) every response sent.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CookieView {
    /// True when anything beyond an opt-out cookie is stored in the browser:
    /// the tracker script writes another cookie or uses web storage, or
    /// (server only) a response set an unexpected cookie since start-up.
    pub tracking_cookies: bool,
    /// The collector's opt-out cookie (`privacy.optout_cookie`), set only by
    /// the opt-out form, `POST /optout`, on the collector's host.
    pub optout_cookie: String,
    pub optout_cookie_days: u32,
    /// Opt-out cookies the tracker script sets on the website's own domain
    /// (`sparsam.optOut()`), as read from the embedded script.
    pub tracker_optout_cookies: Vec<ScriptCookie>,
    /// Other cookie writes in the tracker script (each one tracks).
    pub tracker_other_cookies: Vec<String>,
    /// Web storage APIs the tracker script uses.
    pub tracker_web_storage: Vec<String>,
    /// Responses since start-up that set a cookie other than the opt-out
    /// cookie on `POST /optout`; `null` when no server runs (the CLI).
    pub unexpected_set_cookie_responses: Option<u64>,
    /// `METHOD route: cookie` of those responses (the first few).
    pub unexpected_set_cookie_routes: Vec<String>,
}

impl CookieView {
    fn derive(config: &Config) -> CookieView {
        let scan = tracker_scan();
        CookieView {
            tracking_cookies: scan.tracks(),
            optout_cookie: config.privacy.optout_cookie.clone(),
            optout_cookie_days: config.privacy.optout_cookie_days,
            tracker_optout_cookies: scan.optout_cookies.clone(),
            tracker_other_cookies: scan.other_cookie_writes.clone(),
            tracker_web_storage: scan.web_storage.clone(),
            unexpected_set_cookie_responses: None,
            unexpected_set_cookie_routes: Vec::new(),
        }
    }

    /// Adds what a running server saw: `count` responses that set an
    /// unexpected cookie, on `routes`.
    pub fn observed(&mut self, count: u64, routes: Vec<String>) {
        self.unexpected_set_cookie_responses = Some(count);
        self.unexpected_set_cookie_routes = routes;
        self.tracking_cookies |= count > 0;
    }
}

pub(crate) fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// How old a raw event may be at `now`: `raw_days` plus one sweep interval
/// (the gap between the scheduled sweeps around `now`), in milliseconds.
pub fn oldest_allowed_ms(config: &Config, now: DateTime<Utc>) -> i64 {
    let raw = i64::from(config.retention.raw_days) * MS_PER_DAY;
    let schedule = &config.retention.sweep_schedule;
    let interval = schedule
        .after(&now)
        .next()
        .zip(schedule.after(&now).next_back())
        .map_or(MS_PER_DAY, |(next, prev)| (next - prev).num_milliseconds());
    now.timestamp_millis() - raw - interval
}

/// Scans every raw event: age buckets and the verification.
pub fn verify(
    store: &dyn Storage,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(Verification, AgeBuckets), AuditError> {
    let masks = config.privacy.masks();
    let now_ms = now.timestamp_millis();
    let mut v = Verification {
        oldest_allowed_ms: oldest_allowed_ms(config, now),
        ..Verification::default()
    };
    let mut ages = AgeBuckets::default();
    store.for_each_stored_event(&mut |fact| {
        let ts = match fact.ts_ms {
            Ok(ts) => ts,
            Err(problem) => {
                v.undecodable += 1;
                if v.first_offender.is_none() {
                    v.first_offender = Some(Offender {
                        partition: fact.partition,
                        site: fact.site,
                        ts_ms: 0,
                        seq: fact.seq,
                        problem,
                    });
                }
                return;
            }
        };
        v.events_checked += 1;
        ages.add(now_ms - ts);
        let mut problem = None;
        if ts < v.oldest_allowed_ms {
            v.age_violations += 1;
            problem = Some(format!("older than allowed ({})", iso(ts)));
        }
        match fact.ip {
            Some(ip) => {
                if let Some(p) = address_problem(&ip, masks.v4_prefix, masks.v6_prefix) {
                    v.address_violations += 1;
                    problem.get_or_insert(p);
                }
            }
            None => {
                v.address_violations += 1;
                problem.get_or_insert("address does not decode".to_owned());
            }
        }
        if let (Some(p), None) = (problem, &v.first_offender) {
            v.first_offender = Some(Offender {
                partition: fact.partition,
                site: fact.site,
                ts_ms: ts,
                seq: fact.seq,
                problem: p,
            });
        }
    })?;
    // Dictionary strings must not outlive the events that may use them.
    store.for_each_string_bound(&mut |bound| {
        v.strings_checked += 1;
        if bound <= v.oldest_allowed_ms {
            v.string_violations += 1;
        }
    })?;
    v.ok = v.address_violations == 0
        && v.age_violations == 0
        && v.undecodable == 0
        && v.string_violations == 0;
    Ok((v, ages))
}

/// The free-text part of the view; adds roll-up violations to `v`.
pub fn free_text_view(
    store: &dyn Storage,
    config: &Config,
    v: &mut Verification,
) -> Result<FreeTextView, AuditError> {
    use crate::store::schema::utc_day;
    let k = config.retention.free_text_min_visitors;
    let vetted = store.free_text_vetted()?;
    let allowed_day = DayNumber::of(utc_day(v.oldest_allowed_ms));
    let mut tables: Vec<FreeTextTable> = Vec::new();
    // Raw events and their dictionary: every one carries free text.
    let mut oldest_string: Option<i64> = None;
    store.for_each_string_bound(&mut |bound| {
        oldest_string = Some(oldest_string.map_or(bound, |o| o.min(bound)));
    })?;
    tables.push(FreeTextTable {
        table: "events_YYYYMMDD".into(),
        holds: "page and referrer URLs with their kept query, search terms, link targets".into(),
        oldest_day: store.oldest_event_ms()?.map(|ts| utc_day(ts).to_string()),
        older_than_allowed: v.age_violations,
        kept_by_rule: 0,
    });
    tables.push(FreeTextTable {
        table: "strings".into(),
        holds: "the raw events' text".into(),
        // a bound is the end of the hour of the last use
        oldest_day: oldest_string.map(|b| utc_day(b - 1).to_string()),
        older_than_allowed: v.string_violations,
        kept_by_rule: 0,
    });
    let mut rollups: BTreeMap<&'static str, (Option<DayNumber>, u64, u64)> = BTreeMap::new();
    for table in store.rollup_tables() {
        rollups.insert(table, (None, 0, 0));
    }
    store.for_each_free_text_row(&mut |row| {
        let day = row.day;
        let e = rollups.entry(row.table).or_insert((None, 0, 0));
        e.0 = Some(e.0.map_or(day, |o| o.min(day)));
        if day < allowed_day {
            let kept = k != 0 && vetted.is_some_and(|w| day < w.before_day && w.min_visitors >= k);
            if kept {
                e.2 += 1;
            } else {
                e.1 += 1;
            }
        }
    })?;
    for (table, (oldest, old, kept)) in rollups {
        v.free_text_violations += old;
        tables.push(FreeTextTable {
            table: table.into(),
            holds: "counts per search term and per page or link URL with its query".into(),
            oldest_day: oldest.map(|d| d.date().to_string()),
            older_than_allowed: old,
            kept_by_rule: kept,
        });
    }
    v.ok &= v.free_text_violations == 0;
    let days = config.retention.raw_days;
    let (rule, description) = if k == 0 {
        (
            "expire_with_raw_events",
            format!(
                "free text (search terms, query-parameter values, full referrer URLs) is deleted from raw events, their dictionary and every roll-up after {days} days, by the same sweep; counts without free text (per day, per page path, per device class, per referrer host) stay as retention.rollup_days says"
            ),
        )
    } else {
        (
            "keep_if_seen_by_min_visitors",
            format!(
                "free text is deleted from raw events and their dictionary after {days} days; in the roll-ups of a day it stays past {days} days only when at least {k} distinct visitors produced it that day, all other free text is deleted; counts without free text stay as retention.rollup_days says"
            ),
        )
    };
    Ok(FreeTextView {
        rule: rule.into(),
        min_visitors: (k != 0).then_some(k),
        description,
        vetted_before: vetted.map(|w| w.before_day.date().to_string()),
        tables,
    })
}

fn address_problem(ip: &StoredIp, v4: u8, v6: u8) -> Option<String> {
    let mask = if ip.addr.is_ipv4() { v4 } else { v6 };
    if !ip.is_truncated() {
        Some(format!(
            "address carries bits beyond its /{} prefix",
            ip.prefix_len
        ))
    } else if ip.prefix_len > mask {
        Some(format!(
            "address keeps {} bits, the configured mask allows {mask}",
            ip.prefix_len
        ))
    } else {
        None
    }
}

/// Builds the audit view of `store` under `config` at `now`.
pub fn audit_view(
    store: &dyn Storage,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<AuditView, AuditError> {
    use crate::privacy::AnonIp;
    let masks = config.privacy.masks();
    // Sweeps are read before the store is verified: a sweep listed as
    // finished has committed its deletions before the verification's
    // snapshot, so the two parts of the view never contradict each other.
    let sweeps = last_sweeps(store, 10)?;
    let (mut verification, ages) = verify(store, config, now)?;
    let free_text = free_text_view(store, config, &mut verification)?;
    let ex4 = AnonIp::truncate(std::net::Ipv4Addr::new(181, 153, 27, 94).into(), &masks);
    let ex6 = AnonIp::truncate(
        "2001:db8:85a3:8d3:1319:8a2e:370:7348"
            .parse::<std::net::Ipv6Addr>()
            .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED)
            .into(),
        &masks,
    );
    let next_sweep = config
        .retention
        .sweep_schedule
        .after(&now)
        .next()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(AuditView {
        generated_at: iso(now.timestamp_millis()),
        retention: RetentionInForce {
            raw_days: config.retention.raw_days,
            rollup_days: config.retention.rollup_days,
            sweep_schedule: config.retention.sweep_schedule.source().to_string(),
            rule: format!(
                "each sweep deletes every raw event older than {} days; between sweeps no raw event is older than {} days plus one sweep interval",
                config.retention.raw_days, config.retention.raw_days
            ),
        },
        ip_masks: IpMaskView {
            ipv4_prefix: masks.v4_prefix,
            ipv6_prefix: masks.v6_prefix,
            ipv4_example: ex4.masked_display(),
            ipv6_example: ex6.masked_display(),
        },
        cookies: CookieView::derive(config),
        oldest_raw_event: store.oldest_event_ms()?.map(iso),
        oldest_rollup_day: store.oldest_rollup_day()?.map(|d| d.to_string()),
        raw_events: verification.events_checked,
        raw_events_by_age: ages,
        next_sweep,
        last_sweeps: sweeps,
        free_text,
        verification,
    })
}

/// The view as text for `sparsam audit`.
pub fn render_text(v: &AuditView) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "sparsam audit, {}", v.generated_at);
    let _ = writeln!(
        s,
        "retention:      raw events {} days, roll-ups {}; schedule \"{}\"",
        v.retention.raw_days,
        if v.retention.rollup_days == 0 {
            "kept".to_string()
        } else {
            format!("{} days", v.retention.rollup_days)
        },
        v.retention.sweep_schedule
    );
    let _ = writeln!(s, "rule:           {}", v.retention.rule);
    let _ = writeln!(
        s,
        "address masks:  IPv4 /{} (e.g. {}), IPv6 /{} (e.g. {})",
        v.ip_masks.ipv4_prefix,
        v.ip_masks.ipv4_example,
        v.ip_masks.ipv6_prefix,
        v.ip_masks.ipv6_example
    );
    let c = &v.cookies;
    if c.tracking_cookies {
        let _ = writeln!(
            s,
            "cookies:        TRACKING: tracker cookies [{}], web storage [{}], unexpected Set-Cookie responses {} [{}]",
            c.tracker_other_cookies.join(", "),
            c.tracker_web_storage.join(", "),
            c.unexpected_set_cookie_responses.unwrap_or(0),
            c.unexpected_set_cookie_routes.join("; ")
        );
    } else {
        let _ = writeln!(s, "cookies:        none for tracking");
    }
    let _ = writeln!(
        s,
        "                opt-out cookie \"{}\" ({} days) on the collector's host, set only by POST /optout",
        c.optout_cookie, c.optout_cookie_days
    );
    for t in &c.tracker_optout_cookies {
        let _ = writeln!(
            s,
            "                opt-out cookie \"{}\" ({} days) on the website's domain, set only by the tracker's sparsam.{}()",
            t.name, t.days, t.set_by
        );
    }
    let _ = writeln!(
        s,
        "                responses that set an unexpected cookie since start-up: {}",
        c.unexpected_set_cookie_responses
            .map_or("not observed (no server running)".to_string(), |n| n
                .to_string())
    );
    let _ = writeln!(s, "raw events:     {}", v.raw_events);
    let _ = writeln!(
        s,
        "oldest:         {}",
        v.oldest_raw_event.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        s,
        "roll-ups from:  {}",
        v.oldest_rollup_day.as_deref().unwrap_or("-")
    );
    let a = &v.raw_events_by_age;
    let _ = writeln!(
        s,
        "by age:         0-7d {}  8-30d {}  31-60d {}  61-90d {}  >90d {}",
        a.d0_7, a.d8_30, a.d31_60, a.d61_90, a.over_90
    );
    let _ = writeln!(
        s,
        "next sweep:     {}",
        v.next_sweep.as_deref().unwrap_or("-")
    );
    let _ = writeln!(s, "last sweeps:");
    if v.last_sweeps.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for w in &v.last_sweeps {
        let _ = writeln!(
            s,
            "  {}  cutoff {}  {} partitions, {} events, {} roll-up rows  {} ms  {}{}",
            iso(w.started_ms),
            iso(w.cutoff_ms),
            w.partitions_dropped.len(),
            w.events_deleted,
            w.rollup_rows_deleted,
            w.duration_ms.map_or("-".into(), |d| d.to_string()),
            w.outcome,
            w.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let f = &v.free_text;
    let _ = writeln!(s, "free text:      {}", f.description);
    for t in &f.tables {
        let _ = writeln!(
            s,
            "  {:<16} oldest {}  older than allowed {}  kept by the rule {}",
            t.table,
            t.oldest_day.as_deref().unwrap_or("-"),
            t.older_than_allowed,
            t.kept_by_rule
        );
    }
    let c = &v.verification;
    let _ = writeln!(
        s,
        "verification:   {} ({} events checked, {} address violations, {} too old, {} undecodable, {} free-text values too old)",
        if c.ok { "OK" } else { "FAILED" },
        c.events_checked,
        c.address_violations,
        c.age_violations,
        c.undecodable,
        c.free_text_violations
    );
    if let Some(o) = &c.first_offender {
        let _ = writeln!(
            s,
            "first offender: {} site {:?} ts {} seq {}: {}",
            o.partition,
            o.site,
            iso(o.ts_ms),
            o.seq,
            o.problem
        );
    }
    s
}

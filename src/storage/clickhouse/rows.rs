//! Events as ClickHouse rows (`JSONEachRow`, which servers from 2018 and
//! today read and write alike; `serde_json` escapes every string, so no
//! value can break out of its field), and rows back as the events the
//! report replay reads (`crate::store::replay`).

use chrono::{DateTime, NaiveDate};
use serde::Serialize;

use crate::model::Event;
use crate::store::replay::ReplayEvent;

/// One row of the `events` table (see `schema.rs` for the columns).
#[derive(Serialize)]
struct Row<'a> {
    day: String,
    site: &'a str,
    ts_ms: u64,
    kind: u8,
    visitor: u64,
    pageview_id: u64,
    url: &'a str,
    title: &'a str,
    referrer_kind: u8,
    referrer_name: &'a str,
    referrer_url: &'a str,
    utm_source: &'a str,
    utm_medium: &'a str,
    utm_campaign: &'a str,
    target: &'a str,
    search_term: &'a str,
    search_results: Option<u32>,
    engaged_ms: u32,
    device_type: u8,
    device_brand: &'a str,
    device_model: &'a str,
    os: &'a str,
    os_version: &'a str,
    browser: &'a str,
    browser_version: &'a str,
    engine: &'a str,
    engine_version: &'a str,
    plugins: u16,
    ip: String,
    batch: u64,
    custom: u8,
    custom_name: &'a str,
    custom_props: String,
    revenue_cents: i64,
    seq: u64,
}

/// The UTC day an event belongs to (its partition).
pub fn utc_day(ts_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ts_ms.max(0))
        .unwrap_or_default()
        .date_naive()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `event` as one JSON line with insert id `batch`; `seq` orders
/// it after the events this collector received before it.
pub fn push_row(out: &mut Vec<u8>, event: &Event, batch: u64, seq: u64) {
    let d = &event.device;
    let custom = event.custom.as_ref();
    let row = Row {
        day: utc_day(event.ts_ms).format("%Y-%m-%d").to_string(),
        site: &event.site,
        ts_ms: u64::try_from(event.ts_ms).unwrap_or(0),
        kind: event.kind as u8,
        visitor: event.visitor,
        pageview_id: event.pageview_id,
        url: &event.url,
        title: &event.title,
        referrer_kind: event.referrer.kind as u8,
        referrer_name: &event.referrer.name,
        referrer_url: &event.referrer.url,
        utm_source: &event.campaign.source,
        utm_medium: &event.campaign.medium,
        utm_campaign: &event.campaign.campaign,
        target: &event.target,
        search_term: &event.search_term,
        search_results: event.search_results,
        engaged_ms: event.engaged_ms,
        device_type: d.device_type as u8,
        device_brand: &d.brand,
        device_model: &d.model,
        os: &d.os,
        os_version: &d.os_version,
        browser: &d.browser,
        browser_version: &d.browser_version,
        engine: &d.engine,
        engine_version: &d.engine_version,
        plugins: event.plugins,
        ip: hex(&event.anon_ip.to_bytes()),
        batch,
        custom: u8::from(custom.is_some()),
        custom_name: custom.map_or("", |c| c.name.as_str()),
        // pairs in the stored (key-sorted) order
        custom_props: custom.map_or_else(String::new, |c| {
            serde_json::to_string(&c.props).expect("pairs of strings serialize")
        }),
        revenue_cents: custom.map_or(0, |c| c.revenue_cents),
        seq,
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    serde_json::to_writer(&mut *out, &row).expect("a row serializes");
    out.push(b'\n');
}

/// Decodes a stored `ip` value back into the bytes it was made from.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The columns the report replay reads, in [`StoredRow`]'s order.
pub const REPLAY_COLUMNS: &str = "ts_ms, kind, visitor, pageview_id, url, title, \
    referrer_kind, referrer_name, referrer_url, utm_source, utm_medium, utm_campaign, \
    target, search_term, search_results, engaged_ms, device_type, device_brand, device_model, \
    os, os_version, browser, browser_version, engine, engine_version, plugins, custom, \
    custom_name, custom_props, revenue_cents, seq, batch";

/// One row as `SELECT REPLAY_COLUMNS ... FORMAT JSONEachRow` gives it
/// (64-bit integers unquoted: `output_format_json_quote_64bit_integers=0`).
#[derive(serde::Deserialize)]
struct StoredRow {
    ts_ms: u64,
    kind: u8,
    visitor: u64,
    pageview_id: u64,
    url: String,
    title: String,
    referrer_kind: u8,
    referrer_name: String,
    referrer_url: String,
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
    target: String,
    search_term: String,
    search_results: Option<u32>,
    engaged_ms: u32,
    device_type: u8,
    device_brand: String,
    device_model: String,
    os: String,
    os_version: String,
    browser: String,
    browser_version: String,
    engine: String,
    engine_version: String,
    plugins: u16,
    custom: u8,
    custom_name: String,
    custom_props: String,
    revenue_cents: i64,
    seq: u64,
    batch: u64,
}

/// What went wrong in a row, without the row's text: serde_json's own
/// message can quote the value it choked on (a URL, a search term), and
/// this message ends up in the server's log.
fn json_failure(e: serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// Decodes one `JSONEachRow` line of [`REPLAY_COLUMNS`].
pub fn parse_replay_row(line: &str) -> Result<ReplayEvent, String> {
    parse_replay_row_with_id(line).map(|(event, _)| event)
}

/// Where a stored row came from: the receiving collector's number (`seq`)
/// and the insert id (`batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowId {
    pub seq: u64,
    pub batch: u64,
}

/// Like [`parse_replay_row`], with the row's [`RowId`].
pub fn parse_replay_row_with_id(line: &str) -> Result<(ReplayEvent, RowId), String> {
    use crate::model::{Campaign, Device, DeviceType, EventKind, Referrer, ReferrerType};
    let r: StoredRow = serde_json::from_str(line).map_err(json_failure)?;
    let id = RowId {
        seq: r.seq,
        batch: r.batch,
    };
    let kind = EventKind::from_u8(r.kind).ok_or_else(|| format!("event kind {}", r.kind))?;
    let custom = if r.custom == 0 {
        None
    } else {
        let props: Vec<(String, String)> = if r.custom_props.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&r.custom_props)
                .map_err(|e| format!("custom_props: {}", json_failure(e)))?
        };
        Some(crate::goals::CustomEvent {
            name: r.custom_name,
            props,
            revenue_cents: r.revenue_cents,
        })
    };
    let event = ReplayEvent {
        ts_ms: i64::try_from(r.ts_ms).map_err(|_| format!("ts_ms {}", r.ts_ms))?,
        kind,
        visitor: r.visitor,
        pageview_id: r.pageview_id,
        url: r.url,
        title: r.title,
        referrer: Referrer {
            kind: ReferrerType::from_u8(r.referrer_kind)
                .ok_or_else(|| format!("referrer kind {}", r.referrer_kind))?,
            name: r.referrer_name,
            url: r.referrer_url,
        },
        campaign: Campaign {
            source: r.utm_source,
            medium: r.utm_medium,
            campaign: r.utm_campaign,
        },
        target: r.target,
        search_term: r.search_term,
        search_results: r.search_results,
        engaged_ms: r.engaged_ms,
        device: Device {
            device_type: DeviceType::from_u8(r.device_type)
                .ok_or_else(|| format!("device type {}", r.device_type))?,
            brand: r.device_brand,
            model: r.device_model,
            os: r.os,
            os_version: r.os_version,
            browser: r.browser,
            browser_version: r.browser_version,
            engine: r.engine,
            engine_version: r.engine_version,
            bot: false,
        },
        plugins: r.plugins,
        custom,
    };
    Ok((event, id))
}

#[cfg(test)]
mod tests {
    use super::parse_replay_row;

    #[test]
    fn a_row_that_does_not_parse_is_described_without_its_text() {
        // a search term where a number belongs: serde_json's own message
        // quotes it
        let Err(failure) = parse_replay_row(r#"{"ts_ms":"impfung-marker-4711"}"#) else {
            panic!("a bad row is refused");
        };
        assert!(!failure.contains("impfung-marker-4711"), "{failure}");
        assert!(failure.contains("column"), "{failure}");
    }
}

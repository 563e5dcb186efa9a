//! Events as ClickHouse rows (`JSONEachRow`, which servers from 2018 and
//! today read alike; `serde_json` escapes every string, so no value can
//! break out of its field).

use chrono::{DateTime, NaiveDate};
use serde::Serialize;

use crate::model::Event;

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

/// Appends `event` as one JSON line with insert id `batch`.
pub fn push_row(out: &mut Vec<u8>, event: &Event, batch: u64) {
    let d = &event.device;
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

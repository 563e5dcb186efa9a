//! Compact binary encoding of events and counters for the store.
//!
//! Values in redb are plain bytes written here: a version byte, then fixed
//! fields, LEB128 varints and length-prefixed UTF-8 strings. There is no
//! JSON or serde in the store: a typical page view is well under 200 bytes
//! and decoding allocates only the strings it returns. The site and the
//! timestamp live in the key, so they are not repeated in the value.
//!
//! Everything read back from disk is checked: a truncated value, an unknown
//! version or enum tag, invalid UTF-8 or trailing bytes is a
//! [`StoreError::Decode`], never a panic. The anonymised address comes back
//! as a [`StoredIp`], not an `AnonIp`: an `AnonIp` can only be made by
//! truncating a full address, so the store cannot (and must not) rebuild one.

use crate::model::{Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType};
use crate::privacy::StoredIp;

use super::StoreError;

/// Version byte at the start of every encoded event.
pub const EVENT_CODEC_VERSION: u8 = 1;

/// An event as read back from the store. Like [`Event`], except that the
/// address is a checked [`StoredIp`] and the key's sequence number is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub site: String,
    pub ts_ms: i64,
    /// Per-process sequence number that made the key unique.
    pub seq: u32,
    pub kind: EventKind,
    pub visitor: u64,
    pub pageview_id: u64,
    pub url: String,
    pub title: String,
    pub referrer: Referrer,
    pub campaign: Campaign,
    pub target: String,
    pub search_term: String,
    pub search_results: Option<u32>,
    pub engaged_ms: u32,
    pub device: Device,
    pub plugins: u16,
    pub anon_ip: StoredIp,
}

// ---------------------------------------------------------------- writing

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    // zig-zag, so small negative numbers stay small
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encodes everything of `event` except the site and timestamp (which are
/// in the key).
pub fn encode_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + event.url.len() + event.title.len());
    out.push(EVENT_CODEC_VERSION);
    out.push(event.kind as u8);
    out.extend_from_slice(&event.visitor.to_le_bytes());
    put_varint(&mut out, event.pageview_id);
    put_str(&mut out, &event.url);
    put_str(&mut out, &event.title);
    out.push(event.referrer.kind as u8);
    put_str(&mut out, &event.referrer.name);
    put_str(&mut out, &event.referrer.url);
    put_str(&mut out, &event.campaign.source);
    put_str(&mut out, &event.campaign.medium);
    put_str(&mut out, &event.campaign.campaign);
    put_str(&mut out, &event.target);
    put_str(&mut out, &event.search_term);
    put_varint(
        &mut out,
        event.search_results.map_or(0, |n| u64::from(n) + 1),
    );
    put_varint(&mut out, u64::from(event.engaged_ms));
    let d = &event.device;
    out.push(d.device_type as u8);
    out.push(u8::from(d.bot));
    for s in [
        &d.brand,
        &d.model,
        &d.os,
        &d.os_version,
        &d.browser,
        &d.browser_version,
        &d.engine,
        &d.engine_version,
    ] {
        put_str(&mut out, s);
    }
    put_varint(&mut out, u64::from(event.plugins));
    put_bytes(&mut out, &event.anon_ip.to_bytes());
    out
}

// ---------------------------------------------------------------- reading

/// A cursor over bytes read from disk; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn err(&self, why: &str) -> StoreError {
        StoreError::Decode(format!("{}: {why}", self.what))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.err("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        if self.buf.len() < N {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, StoreError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err("value exceeds u32"))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
        if self.buf.len() < len {
            return Err(self.err("truncated string"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| self.err("invalid UTF-8"))
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Decodes a value written by [`encode_event`]; `site` and `ts_ms` come
/// from the key. `seq` is set to 0; [`decode_stored`] fills it in.
pub fn decode_event(site: &str, ts_ms: i64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    decode_stored(site, ts_ms, 0, bytes)
}

/// Like [`decode_event`], also recording the key's sequence number.
pub fn decode_stored(
    site: &str,
    ts_ms: i64,
    seq: u32,
    bytes: &[u8],
) -> Result<StoredEvent, StoreError> {
    let mut r = Reader::new(bytes, "event");
    let version = r.u8()?;
    if version != EVENT_CODEC_VERSION {
        return Err(r.err(&format!("unknown codec version {version}")));
    }
    let kind = EventKind::from_u8(r.u8()?).ok_or_else(|| r.err("unknown event kind"))?;
    let visitor = u64::from_le_bytes(r.array::<8>()?);
    let pageview_id = r.varint()?;
    let url = r.string()?;
    let title = r.string()?;
    let ref_kind = ReferrerType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown referrer type"))?;
    let referrer = Referrer {
        kind: ref_kind,
        name: r.string()?,
        url: r.string()?,
    };
    let campaign = Campaign {
        source: r.string()?,
        medium: r.string()?,
        campaign: r.string()?,
    };
    let target = r.string()?;
    let search_term = r.string()?;
    let search_results = match r.varint()? {
        0 => None,
        n => Some(u32::try_from(n - 1).map_err(|_| r.err("search results exceed u32"))?),
    };
    let engaged_ms = r.u32()?;
    let device_type = DeviceType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown device type"))?;
    let bot = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.err("bad bool")),
    };
    let device = Device {
        device_type,
        brand: r.string()?,
        model: r.string()?,
        os: r.string()?,
        os_version: r.string()?,
        browser: r.string()?,
        browser_version: r.string()?,
        engine: r.string()?,
        engine_version: r.string()?,
        bot,
    };
    let plugins = u16::try_from(r.varint()?).map_err(|_| r.err("plugins exceed u16"))?;
    let ip_bytes = r.bytes()?;
    let anon_ip = StoredIp::decode(ip_bytes).ok_or_else(|| r.err("bad address bytes"))?;
    r.finish()?;
    Ok(StoredEvent {
        site: site.to_owned(),
        ts_ms,
        seq,
        kind,
        visitor,
        pageview_id,
        url,
        title,
        referrer,
        campaign,
        target,
        search_term,
        search_results,
        engaged_ms,
        device,
        plugins,
        anon_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{AnonIp, IpMasks};

    fn full_event() -> Event {
        Event {
            site: "site-ä".into(),
            ts_ms: 1_700_000_000_123,
            kind: EventKind::Search,
            visitor: u64::MAX - 7,
            pageview_id: 0x1234_5678_9abc_def0,
            url: "https://example.org/suche?q=Grüße".into(),
            title: "Übersicht — 日本語 🎉".into(),
            referrer: Referrer {
                kind: ReferrerType::Search,
                name: "Google".into(),
                url: "https://www.google.de/".into(),
            },
            campaign: Campaign {
                source: "newsletter".into(),
                medium: "email".into(),
                campaign: "frühling".into(),
            },
            target: "https://example.org/a.pdf".into(),
            search_term: "grüße".into(),
            search_results: Some(0),
            engaged_ms: u32::MAX,
            device: Device {
                device_type: DeviceType::Tablet,
                brand: "Samsung".into(),
                model: "SM-X200".into(),
                os: "Android".into(),
                os_version: "14".into(),
                browser: "Chrome".into(),
                browser_version: "131.0".into(),
                engine: "Blink".into(),
                engine_version: "131".into(),
                bot: true,
            },
            plugins: crate::model::plugins::PDF | crate::model::plugins::COOKIES,
            anon_ip: AnonIp::truncate("2001:db8:1:2::5".parse().unwrap(), &IpMasks::DEFAULT),
        }
    }

    fn check_round_trip(e: &Event) {
        let bytes = encode_event(e);
        let d = decode_stored(&e.site, e.ts_ms, 9, &bytes).unwrap();
        assert_eq!(d.site, e.site);
        assert_eq!(d.ts_ms, e.ts_ms);
        assert_eq!(d.seq, 9);
        assert_eq!(d.kind, e.kind);
        assert_eq!(d.visitor, e.visitor);
        assert_eq!(d.pageview_id, e.pageview_id);
        assert_eq!(d.url, e.url);
        assert_eq!(d.title, e.title);
        assert_eq!(d.referrer, e.referrer);
        assert_eq!(d.campaign, e.campaign);
        assert_eq!(d.target, e.target);
        assert_eq!(d.search_term, e.search_term);
        assert_eq!(d.search_results, e.search_results);
        assert_eq!(d.engaged_ms, e.engaged_ms);
        assert_eq!(d.device, e.device);
        assert_eq!(d.plugins, e.plugins);
        assert_eq!(d.anon_ip.addr, e.anon_ip.addr());
        assert_eq!(d.anon_ip.prefix_len, e.anon_ip.prefix_len());
        assert!(d.anon_ip.is_truncated());
    }

    #[test]
    fn round_trips_every_field() {
        check_round_trip(&full_event());
        let mut e = full_event();
        e.search_results = Some(u32::MAX);
        e.kind = EventKind::Ping;
        check_round_trip(&e);
    }

    #[test]
    fn round_trips_empty_strings_and_defaults() {
        let e = Event {
            site: String::new(),
            ts_ms: -5,
            kind: EventKind::PageView,
            visitor: 0,
            pageview_id: 0,
            url: String::new(),
            title: String::new(),
            referrer: Referrer::default(),
            campaign: Campaign::default(),
            target: String::new(),
            search_term: String::new(),
            search_results: None,
            engaged_ms: 0,
            device: Device::default(),
            plugins: 0,
            anon_ip: AnonIp::truncate("181.153.77.201".parse().unwrap(), &IpMasks::DEFAULT),
        };
        check_round_trip(&e);
        // version, kind, 8 visitor bytes, 19 one-byte fields, 4 address bytes + len
        assert!(encode_event(&e).len() < 40, "{}", encode_event(&e).len());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_event(&full_event());
        for n in 0..bytes.len() {
            assert!(
                decode_event("s", 0, &bytes[..n]).is_err(),
                "prefix of {n} bytes decoded"
            );
        }
    }

    #[test]
    fn trailing_bytes_and_bad_tags_are_errors() {
        let mut bytes = encode_event(&full_event());
        bytes.push(0);
        assert!(decode_event("s", 0, &bytes).is_err());
        let mut bytes = encode_event(&full_event());
        bytes[0] = 99; // version
        let err = decode_event("s", 0, &bytes).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
        let mut bytes = encode_event(&full_event());
        bytes[1] = 200; // kind
        assert!(decode_event("s", 0, &bytes).is_err());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut e = full_event();
        e.url = "abc".into();
        let mut bytes = encode_event(&e);
        // version, kind, visitor (8), pageview_id varint (9 bytes for this id), len, "abc"
        let pos = bytes.iter().position(|&b| b == b'a').unwrap();
        bytes[pos] = 0xff;
        let err = decode_event("s", 0, &bytes).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        // deterministic pseudo-random garbage (xorshift)
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            if let Some(b) = buf.first_mut() {
                *b = EVENT_CODEC_VERSION;
            }
            let _ = decode_event("s", 0, &buf);
        }
        // a huge length prefix must not allocate or panic
        let mut bytes = vec![EVENT_CODEC_VERSION, 0];
        bytes.extend_from_slice(&[0u8; 8]);
        bytes.push(0); // pageview id
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(decode_event("s", 0, &bytes).is_err());
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out, "t");
            assert_eq!(r.varint().unwrap(), v);
            r.finish().unwrap();
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -1_700_000_000_000] {
            let mut out = Vec::new();
            put_ivarint(&mut out, v);
            let mut r = Reader::new(&out, "t");
            assert_eq!(r.ivarint().unwrap(), v);
        }
        // 11 continuation bytes
        let mut r = Reader::new(&[0x80; 11], "t");
        assert!(r.varint().is_err());
    }
}

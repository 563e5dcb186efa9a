//! Store benchmarks: event block encode/decode (all columns, and the few a
//! filtered report reads), and batches of 1, 64 and 1,000 events through
//! the writer (one group commit each, fsynced) on a real redb file.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sparsam::model::{Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType};
use sparsam::privacy::{AnonIp, IpMasks};
use sparsam::store::codec::{decode_block, BlockBuilder, BLOCK_MAX_EVENTS};
use sparsam::store::ids::StringId;
use sparsam::store::{Col, Cols, RawEvent, Store, StoreOptions, Writer, WriterOptions};

fn event(ts_ms: i64, visitor: u64) -> Event {
    Event {
        site: "example".into(),
        ts_ms,
        kind: EventKind::PageView,
        visitor,
        pageview_id: visitor.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        url: "https://example.org/produkte/uebersicht".into(),
        title: "Produktübersicht – Example".into(),
        referrer: Referrer {
            kind: ReferrerType::Search,
            name: "Google".into(),
            url: "https://www.google.de/".into(),
        },
        campaign: Campaign::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Device {
            device_type: DeviceType::Smartphone,
            brand: "Apple".into(),
            model: "iPhone".into(),
            os: "iOS".into(),
            os_version: "18.1".into(),
            browser: "Safari".into(),
            browser_version: "18.1".into(),
            engine: "WebKit".into(),
            engine_version: "605.1.15".into(),
            bot: false,
        },
        plugins: 1,
        anon_ip: AnonIp::truncate("181.153.77.201".parse().unwrap(), &IpMasks::DEFAULT),
        custom: None,
    }
}

/// A full block of realistic-looking events: ids as a dictionary hands
/// them out (skewed), a third of the visitors new, most with page-view ids.
fn full_block() -> BlockBuilder {
    let mut b = BlockBuilder::new(0, 0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ts = 1_790_000_000_000i64;
    for i in 0..BLOCK_MAX_EVENTS as u32 {
        // a block also closes at BLOCK_MAX_BYTES, before 1024 events when
        // the columns are wide
        if b.is_full() {
            break;
        }
        ts += (next() % 3000) as i64;
        let new_visitor = i % 3 == 0;
        let raw = RawEvent {
            ts_ms: ts,
            visitor: if new_visitor {
                b.next_visitor()
            } else {
                (next() % u64::from(b.next_visitor().max(1))) as u32
            },
            pageview: b.next_pageview() + 1,
            url: StringId::from_stored((next() % 2000) as u32 + 1),
            title: StringId::from_stored((next() % 2000) as u32 + 1),
            referrer: StringId::from_stored((next() % 50) as u32 + 1),
            device: StringId::from_stored((next() % 300) as u32 + 1),
            plugins: 513,
            ..RawEvent::default()
        };
        let visitor = if raw.visitor == b.next_visitor() {
            Some(next())
        } else {
            None
        };
        let ip = [4, 16, (next() % 256) as u8, (next() % 256) as u8];
        b.push(&raw, visitor, Some(next()), &ip);
    }
    b
}

fn codec(c: &mut Criterion) {
    let block = full_block();
    let bytes = block.encode();
    let events = block.len();
    println!(
        "block of {} events: {} bytes ({:.1} bytes/event)",
        events,
        bytes.len(),
        bytes.len() as f64 / events as f64
    );
    c.bench_function("block/encode_full", |b| {
        b.iter(|| black_box(&block).encode())
    });
    c.bench_function("block/decode_full_all_columns", |b| {
        b.iter(|| decode_block(black_box(&bytes), Cols::ALL).unwrap())
    });
    let few = Cols::NONE
        .with(Col::Visitor)
        .with(Col::Url)
        .with(Col::Referrer)
        .with(Col::Device);
    c.bench_function("block/decode_full_four_columns", |b| {
        b.iter(|| decode_block(black_box(&bytes), few).unwrap())
    });
}

fn writer_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(dir.path().join("bench.redb"), &StoreOptions::default()).unwrap());
    let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    let mut ts = 1_790_000_000_000i64;
    let mut group = c.benchmark_group("writer");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for n in [1u64, 64, 1000] {
        group.bench_function(format!("commit_{n}_events"), |b| {
            b.iter(|| {
                let batch: Vec<Event> = (0..n)
                    .map(|i| {
                        ts += 7;
                        event(ts, (ts as u64 / 7 + i) % 5000)
                    })
                    .collect();
                writer
                    .submit(batch)
                    .unwrap()
                    .blocking_recv()
                    .unwrap()
                    .unwrap();
            })
        });
    }
    group.finish();
    writer.shutdown_blocking().unwrap();
}

criterion_group!(benches, codec, writer_batch);
criterion_main!(benches);

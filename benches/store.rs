//! Store benchmarks: event encode/decode, and a 1,000-event batch through
//! the writer (one group commit, fsynced) on a real redb file.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sparsam::model::{Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType};
use sparsam::privacy::{AnonIp, IpMasks};
use sparsam::store::{decode_event, encode_event, Store, StoreOptions, Writer, WriterOptions};

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
    }
}

fn codec(c: &mut Criterion) {
    let e = event(1_790_000_000_000, 42);
    let bytes = encode_event(&e);
    c.bench_function("encode_event", |b| b.iter(|| encode_event(black_box(&e))));
    c.bench_function("decode_event", |b| {
        b.iter(|| decode_event("example", 1_790_000_000_000, black_box(&bytes)).unwrap())
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
    group.bench_function("insert_1000_events_one_batch", |b| {
        b.iter(|| {
            let batch: Vec<Event> = (0..1000u64)
                .map(|i| {
                    ts += 7;
                    event(ts, i % 200)
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
    group.finish();
    writer.shutdown_blocking().unwrap();
}

criterion_group!(benches, codec, writer_batch);
criterion_main!(benches);

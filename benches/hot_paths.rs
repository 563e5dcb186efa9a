//! Per-hit hot paths outside the store: address shortening, URL stripping,
//! the referrer-spam lookup, pixel and beacon parsing, the visitor hash, and the whole
//! `Pipeline::process` for one hit with its user agent already in the
//! device cache (the steady state of a busy site). Each bench is kept short
//! so `cargo bench` finishes in minutes; compare figures from one run only.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsam::config::Config;
use sparsam::enrich::client_hints::ClientHints;
use sparsam::enrich::device::DeviceDetector;
use sparsam::ingest::beacon::parse_beacon;
use sparsam::ingest::pixel::parse_pixel;
use sparsam::ingest::{Pipeline, RequestMeta};
use sparsam::privacy::{strip_url, visitor_hash, AnonIp, IpMasks, SaltKeeper};

const UA: &str = "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

const PIXEL_QUERY: &str = "site=demo&url=https%3A%2F%2Fwww.example.org%2Fprodukte%2Fuebersicht%3Fq%3Dschuhe%26sessionid%3Dabc123%26utm_source%3Dnewsletter&ref=https%3A%2F%2Fwww.google.de%2Fsearch%3Fq%3Dschuhe&title=Produkt%C3%BCbersicht&pv=k3j2h1&plugins=pdf";

const BEACON_BODY: &[u8] = br#"{"site":"demo","kind":"pageview","url":"https://www.example.org/produkte/uebersicht?q=schuhe&sessionid=abc123","ref":"https://www.google.de/","title":"Produktuebersicht","pv":"k3j2h1","engaged_ms":1200,"plugins":["pdf"],"hints":{"model":"Pixel 8"}}"#;

fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    g
}

fn privacy(c: &mut Criterion) {
    let addrs: Vec<IpAddr> = (0..256u32)
        .map(|i| {
            if i % 4 == 0 {
                format!("2001:db8:{:x}::{:x}", i, i * 7).parse().unwrap()
            } else {
                IpAddr::from([81, (i * 13) as u8, i as u8, 201])
            }
        })
        .collect();
    let mut g = quick(c, "privacy");
    g.throughput(Throughput::Elements(addrs.len() as u64));
    g.bench_function("anon_ip_truncate_256", |b| {
        b.iter(|| {
            for a in &addrs {
                black_box(AnonIp::truncate(black_box(*a), &IpMasks::DEFAULT));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    let url = "https://www.example.org/produkte/uebersicht?q=schuhe&sessionid=abc123&utm_source=newsletter#top";
    g.bench_function("strip_url", |b| {
        b.iter(|| strip_url(black_box(url), |p| p == "q").unwrap())
    });
    // Referrer spam: a miss walks every suffix of a four-label host
    // through the embedded list's hash set (the common case), a hit stops
    // at a listed parent domain; compare with strip_url above.
    let spam = sparsam::enrich::referrer_spam::ReferrerSpamConfig::default();
    assert!(spam.is_spam("https://cdn.www.zvuker.net/x"));
    let legit = "https://news.regional.example.de/artikel/123";
    assert!(!spam.is_spam(legit));
    g.bench_function("referrer_spam_miss", |b| {
        b.iter(|| spam.is_spam(black_box(legit)))
    });
    g.bench_function("referrer_spam_hit", |b| {
        b.iter(|| spam.is_spam(black_box("https://cdn.www.zvuker.net/x")))
    });
    let salt = [7u8; 32];
    let ip = AnonIp::truncate(addrs[1], &IpMasks::DEFAULT);
    g.bench_function("visitor_hash", |b| {
        b.iter(|| visitor_hash(&salt, "demo", black_box(&ip), black_box(UA)))
    });
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let mut g = quick(c, "parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pixel", |b| {
        b.iter(|| parse_pixel(black_box(PIXEL_QUERY), None).unwrap())
    });
    g.bench_function("beacon", |b| {
        b.iter(|| parse_beacon(black_box(BEACON_BODY), 100).unwrap())
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let config = Config::parse(
        r#"
[[sites]]
id = "demo"
hostnames = ["www.example.org"]
timezone = "Europe/Berlin"
tokens = ["bench-token-000000000000"]
"#,
    )
    .expect("bench config");
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let salts = SaltKeeper::open(dir.path(), now.timestamp().div_euclid(86_400)).unwrap();
    let pipeline = Pipeline::new(Arc::new(config), DeviceDetector::new(1024), salts);
    let meta = RequestMeta {
        anon_ip: AnonIp::truncate("81.12.34.56".parse().unwrap(), &IpMasks::DEFAULT),
        user_agent: UA.into(),
        header_hints: ClientHints::default(),
    };
    let hit = parse_pixel(PIXEL_QUERY, None).unwrap();
    // Warm the device cache: the steady state is a cached user agent.
    pipeline.process(hit.clone(), &meta, now).unwrap();

    let mut g = quick(c, "pipeline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("process_pixel_cached_ua", |b| {
        b.iter(|| {
            pipeline
                .process(black_box(hit.clone()), &meta, now)
                .unwrap()
        })
    });
    g.bench_function("parse_and_process_pixel_cached_ua", |b| {
        b.iter(|| {
            let hit = parse_pixel(black_box(PIXEL_QUERY), None).unwrap();
            pipeline.process(hit, &meta, now).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, privacy, parsing, pipeline);
criterion_main!(benches);

//! Device detection cost: cold (cache disabled, every call parses) and
//! cached (steady state: the same user agents again), over a few hundred
//! user agents from the uap-core test corpus in `../shared/corpora/`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsam::enrich::client_hints::ClientHints;
use sparsam::enrich::device::DeviceDetector;

fn corpus_uas(n: usize) -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/uap-core/test_ua.yaml");
    let text = std::fs::read_to_string(&path).expect("uap-core test_ua.yaml");
    let mut uas: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- user_agent_string: "))
        .map(|s| s.trim_matches(|c| c == '\'' || c == '"').to_string())
        .collect();
    uas.sort();
    uas.dedup();
    // Spread the sample over the whole file.
    let step = (uas.len() / n).max(1);
    uas.into_iter().step_by(step).take(n).collect()
}

fn bench(c: &mut Criterion) {
    let uas = corpus_uas(300);
    let hints = ClientHints::default();
    let mut g = c.benchmark_group("device");
    g.throughput(Throughput::Elements(uas.len() as u64));

    let cold = DeviceDetector::new(0);
    g.bench_function("cold", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(cold.detect(black_box(ua), &hints));
            }
        })
    });

    let cached = DeviceDetector::new(4096);
    for ua in &uas {
        cached.detect(ua, &hints);
    }
    g.bench_function("cached", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(cached.detect(black_box(ua), &hints));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

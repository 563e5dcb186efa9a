//! Device detection cost, over the user agents of Matomo DeviceDetector's
//! fixtures (vendored in `tests/data/device-detector/`):
//!
//! * criterion: `cold` (cache disabled, every call detects) and `cached`
//!   (steady state: the same user agents again), per call over a sample of
//!   300 user agents spread over the corpus;
//! * printed once before criterion runs: start-up (load the rule files and
//!   compile every rule), cold latency percentiles over every distinct user
//!   agent of the corpus (after one warm-up pass, so the lazily compiled
//!   rules are built), and the resident memory the rules add. Each is put
//!   next to a baseline measured in the same run (a keyed BLAKE3 hash of
//!   the same user agents, and the process's resident memory before
//!   loading), so figures from different machines compare as ratios.

use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsam::enrich::client_hints::ClientHints;
use sparsam::enrich::device::DeviceDetector;

/// Every distinct user agent of the fixture files.
fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/device-detector");
    let mut uas = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/device-detector")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".yml.gz"))
        .collect();
    files.sort();
    for path in files {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("fixture"))
            .read_to_string(&mut text)
            .expect("gzip");
        for line in text.lines() {
            if let Some(ua) = line.trim().strip_prefix("user_agent: ") {
                let ua = ua.trim();
                let ua = ua
                    .strip_prefix('\'')
                    .and_then(|u| u.strip_suffix('\''))
                    .map(|u| u.replace("''", "'"))
                    .or_else(|| {
                        ua.strip_prefix('"')
                            .and_then(|u| u.strip_suffix('"'))
                            .map(|u| u.replace("\\\"", "\"").replace("\\\\", "\\"))
                    })
                    .unwrap_or_else(|| ua.to_string());
                uas.push(ua);
            }
        }
    }
    uas.sort();
    uas.dedup();
    uas
}

fn sample(uas: &[String], n: usize) -> Vec<String> {
    let step = (uas.len() / n).max(1);
    uas.iter().step_by(step).take(n).cloned().collect()
}

/// Resident set size of this process in KiB (Linux), or 0.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted_ns: &[u64], p: f64) -> u64 {
    let i = ((sorted_ns.len() as f64 - 1.0) * p).round() as usize;
    sorted_ns[i]
}

/// Start-up, cold percentiles and memory, printed once.
fn figures(uas: &[String]) {
    let hints = ClientHints::default();
    let before = rss_kib();
    let t = Instant::now();
    let det = DeviceDetector::new(0);
    let broken = det.rules().compile_all();
    let startup = t.elapsed();
    let rules_kib = rss_kib().saturating_sub(before);

    // warm-up: every lazily built model list is built once
    for ua in uas {
        black_box(det.detect(ua, &hints));
    }
    let mut ns = Vec::with_capacity(uas.len());
    for ua in uas {
        let t = Instant::now();
        black_box(det.detect(black_box(ua), &hints));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    // baseline: a keyed hash of the same user agents
    let key = [7u8; 32];
    let mut base = Vec::with_capacity(uas.len());
    for ua in uas {
        let t = Instant::now();
        black_box(blake3::keyed_hash(&key, black_box(ua.as_bytes())));
        base.push(t.elapsed().as_nanos() as u64);
    }
    base.sort_unstable();
    let rss_after = rss_kib();
    println!(
        "device figures over {} distinct fixture user agents",
        uas.len()
    );
    println!(
        "  start-up (load + compile all rules): {:.0} ms, rules that do not compile: {broken}",
        startup.as_secs_f64() * 1e3
    );
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        let v = percentile(&ns, p);
        let b = percentile(&base, p).max(1);
        println!(
            "  cold {name}: {:.2} µs ({:.0}x a keyed BLAKE3 hash of the user agent, {:.3} µs)",
            v as f64 / 1e3,
            v as f64 / b as f64,
            b as f64 / 1e3
        );
    }
    println!(
        "  resident memory: rules compiled {:.1} MB, after the corpus {:.1} MB (process before loading {:.1} MB)",
        rules_kib as f64 / 1024.0,
        rss_after.saturating_sub(before) as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

fn bench(c: &mut Criterion) {
    let all = corpus();
    figures(&all);
    let uas = sample(&all, 300);
    let hints = ClientHints::default();
    let mut g = c.benchmark_group("device");
    g.throughput(Throughput::Elements(uas.len() as u64));

    let cold = DeviceDetector::new(0);
    for ua in &all {
        cold.detect(ua, &hints);
    }
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

//! Device detection cost, over the user agents of Matomo DeviceDetector's
//! fixtures (vendored in `tests/data/device-detector/`):
//!
//! * criterion: `cold` (cache disabled, every call detects) and `cached`
//!   (steady state: the same user agents again), per call over a sample of
//!   300 user agents spread over the corpus;
//! * printed once before criterion runs: start-up (load the rule files,
//!   compile the lists, build every brand's model table, each timed),
//!   cold latency percentiles over every distinct user agent of the corpus
//!   (after one warm-up pass, so every rule is built), the resident memory
//!   (`VmRSS`) each step adds, and the latency of a first pass on a freshly
//!   loaded detector (what the first requests after start-up pay, rules
//!   compiling on first use). Latencies are put next to a keyed BLAKE3
//!   hash of the same user agents measured in the same run, so figures
//!   from different machines compare as ratios;
//! * a breakdown of start-up and memory per rule file: the time each file
//!   takes to load, the time its lists' automata take to build and the
//!   heap they add (counted exactly by a counting allocator, where `VmRSS`
//!   also holds freed but unreturned memory), and what the automata hold.
//!
//! `cargo bench --bench device -- figures-only` prints the figures and
//! runs no criterion benchmark (the filter matches none).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparsam::enrich::client_hints::ClientHints;
use sparsam::enrich::device::DeviceDetector;
use sparsam::enrich::device_rules::pattern::{FirstMatch, ListMemory};
use sparsam::enrich::device_rules::rules::{RuleFiles, Source};
use sparsam::enrich::device_rules::{compile_in_background, release_freed_memory, Detector};

/// The system allocator, counting the bytes in use (so a breakdown can
/// say exactly what each rule's compiled form holds).
struct Counting;

static HEAP_IN_USE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP_IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes in use now.
fn heap() -> isize {
    HEAP_IN_USE.load(Ordering::Relaxed)
}

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

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn heap_mb(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Lists, compile time and heap added, for one rule file.
#[derive(Default)]
struct Cost {
    lists: usize,
    rules: usize,
    time: Duration,
    heap: isize,
    slowest: Duration,
}

impl Cost {
    fn add(&mut self, rules: usize, time: Duration, heap: isize) {
        self.lists += 1;
        self.rules += rules;
        self.time += time;
        self.heap += heap;
        self.slowest = self.slowest.max(time);
    }
}

/// Builds `list`'s automata now, charging time and heap to `cost`.
fn charge(list: &FirstMatch, cost: &mut Cost) {
    let before = heap();
    let t = Instant::now();
    list.compile_all();
    cost.add(list.len(), t.elapsed(), heap() - before);
}

/// What every list of `files` holds (shared automata, own engines,
/// prefilters), summed.
fn memory_of(files: &RuleFiles) -> ListMemory {
    let mut sum = ListMemory::default();
    let models = files.brands().filter_map(|b| b.built_models());
    for list in files.lists().into_iter().map(|(_, l)| l).chain(models) {
        let m = list.memory();
        sum.in_set += m.in_set;
        sum.own_engines += m.own_engines;
        sum.set_bytes += m.set_bytes;
        sum.prefilter_bytes += m.prefilter_bytes;
    }
    sum
}

fn print_memory(when: &str, m: ListMemory) {
    println!(
        "  {when}: {} rules in shared automata ({:.1} MB of NFAs), {} rules with an engine of their own, prefilters {:.1} MB",
        m.in_set,
        heap_mb(m.set_bytes as isize),
        m.own_engines,
        heap_mb(m.prefilter_bytes as isize)
    );
}

/// Start-up and memory per rule file, on rules of their own.
fn breakdown(uas: &[String]) {
    let heap_start = heap();
    let (files, load_times) = RuleFiles::load_timed(&Source::Embedded).expect("embedded rules");
    let heap_loaded = heap() - heap_start;
    let load_total: Duration = load_times.iter().map(|(_, t)| *t).sum();
    println!(
        "  breakdown: load {:.0} ms, heap {:.1} MB after loading (automata not built)",
        ms(load_total),
        heap_mb(heap_loaded)
    );
    let mut by_file: BTreeMap<&'static str, Cost> = BTreeMap::new();
    let mut tables: BTreeMap<&'static str, Cost> = BTreeMap::new();
    for (file, list) in files.lists() {
        charge(list, by_file.entry(file).or_default());
    }
    for (file, devices) in files.device_lists() {
        for brand in &devices.brands {
            let before = heap();
            let t = Instant::now();
            if brand.compile_models() > 0 || brand.has_models() {
                let rules = brand.model_list().map_or(0, FirstMatch::len);
                tables
                    .entry(file)
                    .or_default()
                    .add(rules, t.elapsed(), heap() - before);
            }
        }
    }
    let heap_compiled = heap() - heap_start;
    println!("  | rule file | load ms | lists | rules | build ms | heap MB | model tables: rules, ms, MB (slowest table ms) |");
    println!("  | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (file, load) in &load_times {
        let c = by_file.remove(file).unwrap_or_default();
        let t = tables.remove(file).unwrap_or_default();
        println!(
            "  | {file} | {:.1} | {} | {} | {:.1} | {:.2} | {} |",
            ms(*load),
            c.lists,
            c.rules,
            ms(c.time),
            heap_mb(c.heap),
            if t.lists == 0 {
                String::new()
            } else {
                format!(
                    "{} tables, {} rules: {:.1} ms, {:.2} MB ({:.1} ms)",
                    t.lists,
                    t.rules,
                    ms(t.time),
                    heap_mb(t.heap),
                    ms(t.slowest)
                )
            }
        );
    }
    print_memory("every list built", memory_of(&files));
    // what searching adds (caches, engines for groups), over two passes
    let det = Detector::from_files(files).expect("tables");
    let before = heap();
    pass(&det, uas);
    pass(&det, uas);
    print_memory("after two passes", memory_of(det.files()));
    println!(
        "  heap: loaded {:.1} MB, every list built {:.1} MB, after two passes over the corpus {:.1} MB (search caches and engines for groups {:+.1} MB)",
        heap_mb(heap_loaded),
        heap_mb(heap_compiled),
        heap_mb(heap() - heap_start),
        heap_mb(heap() - before)
    );
}

/// One cold detection of every user agent; sorted nanoseconds.
fn pass(det: &Detector, uas: &[String]) -> Vec<u64> {
    let hints = ClientHints::default();
    let mut ns = Vec::with_capacity(uas.len());
    for ua in uas {
        let t = Instant::now();
        black_box(det.detect(black_box(ua), &hints));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    ns
}

fn print_percentiles(label: &str, ns: &[u64], base: &[u64]) {
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        let v = percentile(ns, p);
        let b = percentile(base, p).max(1);
        println!(
            "  {label} {name}: {:.2} µs ({:.0}x a keyed BLAKE3 hash of the user agent, {:.3} µs)",
            v as f64 / 1e3,
            v as f64 / b as f64,
            b as f64 / 1e3
        );
    }
}

/// Start-up, cold percentiles and memory, printed once. Each figure is
/// taken on a detector of its own (the embedded rules, loaded afresh), so
/// memory deltas and first-use costs are not hidden by an earlier phase.
fn figures(uas: &[String]) {
    // baseline: a keyed hash of the same user agents
    let key = [7u8; 32];
    let mut base = Vec::with_capacity(uas.len());
    for ua in uas {
        let t = Instant::now();
        black_box(blake3::keyed_hash(&key, black_box(ua.as_bytes())));
        base.push(t.elapsed().as_nanos() as u64);
    }
    base.sort_unstable();
    println!(
        "device figures over {} distinct fixture user agents",
        uas.len()
    );

    // 1. start-up: load, then compile in the two steps the server takes
    // (lists on first use, a brand's model table when the brand first
    // matches), and the resident memory each step adds
    let rss_start = rss_kib();
    let t = Instant::now();
    let det = Detector::load(&Source::Embedded).expect("embedded rules");
    let load = t.elapsed();
    let rss_loaded = rss_kib();
    let t = Instant::now();
    let mut broken = det.files().compile_lists();
    let lists = t.elapsed();
    let mut brands = 0;
    let mut slowest = (std::time::Duration::ZERO, String::new());
    let t = Instant::now();
    for brand in det.files().brands().filter(|b| b.has_models()) {
        let one = Instant::now();
        broken += brand.compile_models();
        let took = one.elapsed();
        brands += 1;
        if took > slowest.0 {
            slowest = (took, brand.brand.clone());
        }
    }
    let models = t.elapsed();
    // as the server's build thread does when it is done
    release_freed_memory();
    let rss_compiled = rss_kib();
    println!(
        "  start-up: load rule files {:.0} ms; compile every list but the model tables {:.0} ms; \
         {brands} brands' model tables {:.0} ms (largest: {} {:.1} ms); all compiled {:.0} ms; \
         rules that do not compile: {broken}",
        ms(load),
        ms(lists),
        ms(models),
        slowest.1,
        ms(slowest.0),
        ms(load + lists + models),
    );

    // 2. cold detection with every rule compiled (one warm-up pass first)
    pass(&det, uas);
    let warm = pass(&det, uas);
    print_percentiles("cold", &warm, &base);
    let rss_used = rss_kib();
    println!(
        "  resident memory added: loaded {:.1} MB, every rule compiled {:.1} MB, after two passes over the corpus {:.1} MB (process before loading {:.1} MB)",
        mb(rss_loaded.saturating_sub(rss_start)),
        mb(rss_compiled.saturating_sub(rss_start)),
        mb(rss_used.saturating_sub(rss_start)),
        mb(rss_start)
    );
    drop(det);

    // 3. what the first requests pay: a freshly loaded detector, nothing
    // compiled, one pass over the corpus in its (sorted) order
    let fresh = Detector::load(&Source::Embedded).expect("embedded rules");
    let t = Instant::now();
    let first = pass(&fresh, uas);
    let first_total = t.elapsed();
    print_percentiles("first pass (rules compile on first use)", &first, &base);
    println!(
        "  first pass total {:.0} ms for {} user agents",
        ms(first_total),
        uas.len()
    );
    drop(fresh);

    // 4. the server's way: load, build every list on a thread of its own,
    // and answer requests at once (200 user agents spread over the corpus,
    // one after the other, from the moment the load returns)
    let t = Instant::now();
    let served = Arc::new(Detector::load(&Source::Embedded).expect("embedded rules"));
    let load = t.elapsed();
    let build = compile_in_background(served.clone());
    let hints = ClientHints::default();
    let requests = sample(uas, 200);
    let mut latencies = Vec::with_capacity(requests.len());
    let t = Instant::now();
    for ua in &requests {
        let one = Instant::now();
        black_box(served.detect(black_box(ua), &hints));
        latencies.push(one.elapsed());
    }
    let all_served = t.elapsed();
    if let Some(build) = build {
        build.join().expect("build thread");
    }
    let built = t.elapsed();
    println!(
        "  start-up as served: load {:.0} ms, then {} requests at once: first {:.2} ms, worst {:.2} ms, all answered {:.0} ms after the load; background build done {:.0} ms after the load",
        ms(load),
        requests.len(),
        ms(latencies[0]),
        ms(latencies.iter().copied().max().unwrap_or_default()),
        ms(all_served),
        ms(built)
    );
    drop(served);

    // 5. where start-up and memory go
    breakdown(uas);
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

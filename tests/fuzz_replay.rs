//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`) and the
//! inputs of fixed fuzz findings (`fuzz/regressions/TARGET/`) through the
//! same property checks the cargo-fuzz targets run (`tests/fuzz_checks/`),
//! on the stable toolchain. Fails, naming the file, if any input panics.
//! `docs/fuzzing.md` describes the targets.

mod fuzz_checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

/// The last panic's message and location, recorded by a quiet hook.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn fuzz_corpora_replay_without_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    let mut total = 0;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = info.to_string();
    }));
    for (name, check) in fuzz_checks::TARGETS {
        let mut files = inputs(&root.join("corpus").join(name));
        if files.is_empty() {
            failures.push(format!("fuzz/corpus/{name} is empty or missing"));
        }
        files.extend(inputs(&root.join("regressions").join(name)));
        for file in files {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{}: cannot read: {e}", file.display()));
                    continue;
                }
            };
            total += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                let msg = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
                failures.push(format!("{}: {msg}", file.display()));
            }
        }
    }
    std::panic::set_hook(default_hook);
    assert!(
        failures.is_empty(),
        "{} of {total} fuzz inputs violate a property:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("replayed {total} fuzz inputs");
}

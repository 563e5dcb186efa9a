//! Build script: turns the uap-core `regexes.yaml` that ships inside the
//! `ua-parser` crates.io package into compact JSON in `OUT_DIR`.
//!
//! Why: the `ua-parser` crate implements the uap-core matching rules but
//! deliberately leaves loading the dataset to the caller. Its *published
//! package* does carry the dataset (`uap-core/regexes.yaml`), so we take it
//! from there through the normal cargo build: the repository holds no copy,
//! and no step beyond `cargo build` is needed. JSON (instead of YAML) keeps
//! the runtime on `serde_json`, which the crate already depends on.
//!
//! The package is located in cargo's registry cache (`$CARGO_HOME/registry/
//! src/*/ua-parser-<locked version>`, which cargo has unpacked before any
//! build script runs); failing that, with `cargo metadata` (the `CARGO` that
//! runs this script, for the host platform only, so it needs no package that
//! the build did not download). `SPARSAM_UAP_REGEXES=/path/regexes.yaml`
//! overrides both.

use std::{env, fs, path::PathBuf, process::Command};

const UAP_PACKAGE: &str = "ua-parser";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-env-changed=SPARSAM_UAP_REGEXES");

    let yaml_path = match env::var_os("SPARSAM_UAP_REGEXES") {
        Some(p) => PathBuf::from(p),
        None => locate_in_registry()
            .or_else(|registry_err| {
                locate_with_metadata().map_err(|meta_err| format!("{registry_err}; {meta_err}"))
            })
            .unwrap_or_else(|e| panic!("cannot find uap-core regexes.yaml: {e}")),
    };
    println!("cargo:rerun-if-changed={}", yaml_path.display());

    let yaml = fs::read_to_string(&yaml_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", yaml_path.display()));
    let value: serde_json::Value = serde_yaml::from_str(&yaml)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", yaml_path.display()));
    let json = serde_json::to_string(&value).expect("re-encode regexes as JSON");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("uap_regexes.json");
    fs::write(&out, json).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Finds `uap-core/regexes.yaml` in the unpacked registry copy of the
/// `ua-parser` version that `Cargo.lock` pins.
fn locate_in_registry() -> Result<PathBuf, String> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?);
    let lock = fs::read_to_string(manifest_dir.join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let version = locked_version(&lock, UAP_PACKAGE)
        .ok_or_else(|| format!("{UAP_PACKAGE} not in Cargo.lock"))?;
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = cargo_home.join("registry").join("src");
    let registries = fs::read_dir(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    for registry in registries.flatten() {
        let path = registry
            .path()
            .join(format!("{UAP_PACKAGE}-{version}"))
            .join("uap-core")
            .join("regexes.yaml");
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(format!(
        "{UAP_PACKAGE}-{version}/uap-core/regexes.yaml not under {}",
        src.display()
    ))
}

/// The version of `package` in a `Cargo.lock` text.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_string());
        }
    }
    None
}

/// Finds `uap-core/regexes.yaml` in the resolved `ua-parser` package.
fn locate_with_metadata() -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?)
        .join("Cargo.toml");
    let target = env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(&target)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata output: {e}"))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("no packages in metadata")?;
    for p in packages {
        if p["name"] == UAP_PACKAGE {
            let manifest_path =
                PathBuf::from(p["manifest_path"].as_str().ok_or("no manifest_path")?);
            let dir = manifest_path.parent().ok_or("manifest has no parent")?;
            let path = dir.join("uap-core").join("regexes.yaml");
            if path.is_file() {
                return Ok(path);
            }
            return Err(format!("{} not found", path.display()));
        }
    }
    Err(format!("package {UAP_PACKAGE} not in the dependency graph"))
}

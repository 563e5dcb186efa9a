//! Compiles DeviceDetector's vendored rule files (YAML, under
//! `assets/device-detector/regexes/`) into the compact form the binary
//! embeds: parsed once here instead of at every start, with each rule's
//! prefilter literals already extracted (see `src/enrich/device_rules/raw.rs`,
//! which this script shares with the crate).

use std::path::Path;

#[path = "src/enrich/device_rules/raw.rs"]
#[allow(dead_code)]
mod raw;

fn main() {
    let dir = Path::new("assets/device-detector/regexes");
    println!("cargo:rerun-if-changed=assets/device-detector/regexes");
    println!("cargo:rerun-if-changed=src/enrich/device_rules/raw.rs");
    let mut out = raw::Writer::default();
    for (name, kind) in raw::FILE_KINDS {
        let path = dir.join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut file =
            raw::from_yaml(*kind, &text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        for re in file.regexes_mut() {
            re.literals = Some(raw::required_literals(&re.regex));
        }
        out.file(name, &file);
    }
    let target = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("device_rules.bin");
    std::fs::write(&target, &out.0).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}

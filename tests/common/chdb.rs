//! A current ClickHouse for tests without a server: chDB (the ClickHouse
//! engine in-process, from PyPI) behind the part of ClickHouse's HTTP
//! interface sparsam uses (`tests/chdb/clickhouse_http.py`), on a free
//! loopback port with its data under a temporary directory. sparsam's
//! ClickHouse backend talks to it unchanged, so the schema, migrations,
//! inserts and report reads run on the current engine, while Debian's
//! 18.16 (`common/clickhouse.rs`) covers 2018's and the cluster.
//!
//! Where the Python with chDB is: `SPARSAM_CHDB_PYTHON`, or the
//! virtual environment `scripts/test.sh` installs
//! (`$XDG_CACHE_HOME` or `~/.cache`, then `sparsam-test/chdb-<version>`).
//! When neither exists the test is skipped with a message, except under
//! `CI=true`, where it fails: the suite must not pass without it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The chDB release `scripts/test.sh` installs (keep both in step).
pub const CHDB_VERSION: &str = "4.4.0";

/// A running chDB behind the HTTP interface; killed when dropped.
pub struct Chdb {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The Python that has chDB, if any (see the module comment).
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SPARSAM_CHDB_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    let python = cache
        .join("sparsam-test")
        .join(format!("chdb-{CHDB_VERSION}"))
        .join("bin/python");
    python.exists().then_some(python)
}

impl Chdb {
    /// Starts chDB, or `None` (with a message) when it is not installed
    /// and this is not CI.
    pub fn start() -> Option<Chdb> {
        let Some(python) = python() else {
            let why = "chDB is not installed: run scripts/test.sh (it installs chdb into \
                       ~/.cache/sparsam-test) or set SPARSAM_CHDB_PYTHON to a Python that has it";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port_file = dir.path().join("port");
        let log = dir.path().join("statements.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb/clickhouse_http.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--path")
            .arg(dir.path().join("db"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        // importing chDB takes a few seconds on a busy machine
        let deadline = Instant::now() + Duration::from_secs(120);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err =
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                panic!("chDB's HTTP interface exited ({status}):\n{err}");
            }
            assert!(
                Instant::now() < deadline,
                "chDB's HTTP interface did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Some(Chdb {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `sql` and returns the answer (panics on an error).
    pub fn query(&self, sql: &str) -> String {
        let res = reqwest::blocking::Client::new()
            .post(self.url())
            .body(sql.to_string())
            .send()
            .expect("chDB answers");
        let status = res.status();
        let text = res.text().expect("chDB's answer");
        assert!(status.is_success(), "{sql}: {text}");
        text
    }

    /// Every statement run so far, in order.
    pub fn statements(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let entry: serde_json::Value = serde_json::from_str(l).expect("a logged statement");
                entry["sql"].as_str().expect("its text").to_string()
            })
            .collect()
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Starts the real `sparsam` binary for integration tests: a temporary
//! data directory, a config with a `demo` site for `127.0.0.1` and
//! `localhost` (Matomo id 1), port 0. `stop()` sends SIGTERM (graceful
//! shutdown commits accepted events) so the redb file can then be opened.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sparsam::store::{Store, StoreOptions, StoredEvent};

pub const TOKEN: &str = "test-demo-token-0123456789";

pub struct Collector {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// Where the built-in demo site listens, when `[demo]` was configured.
    pub demo: Option<SocketAddr>,
    child: Option<Child>,
}

impl Collector {
    /// Starts a collector; `site_extra` is appended to the demo site's table.
    pub fn start(site_extra: &str) -> Collector {
        Collector::start_with("", site_extra)
    }

    /// Starts a collector; `top` goes before `[server]` (whole tables such
    /// as `[demo]` or `[privacy]`), `site_extra` after the demo site's
    /// table. With a `[demo]` table, waits for the demo site's address too.
    pub fn start_with(top: &str, site_extra: &str) -> Collector {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = format!(
            r#"
{top}
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2

[[sites]]
id = "demo"
matomo_id = 1
hostnames = ["127.0.0.1", "localhost"]
timezone = "UTC"
tokens = ["{TOKEN}"]
{site_extra}
"#,
            data = data.display()
        );
        let path = dir.path().join("sparsam.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sparsam"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .env("SPARSAM_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sparsam");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let (demo_tx, demo_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut demo_tx = Some(demo_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let (Some(tx), Ok(addr)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                        let _ = tx.send(addr);
                    }
                }
                // "demo site on http://localhost:PORT/ (...)"
                if let Some(rest) = line.split("demo site on http://localhost:").nth(1) {
                    let port = rest.split('/').next().unwrap_or_default();
                    if let (Some(tx), Ok(port)) = (demo_tx.take(), port.parse::<u16>()) {
                        let _ = tx.send(SocketAddr::from(([127, 0, 0, 1], port)));
                    }
                }
                eprintln!("[sparsam] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("sparsam did not report its address");
        let demo = top.contains("[demo]").then(|| {
            demo_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("sparsam did not report the demo site")
        });
        Collector {
            addr,
            dir,
            demo,
            child: Some(child),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Today's summary for the demo site, through the reporting API.
    pub fn summary(&self) -> serde_json::Value {
        reqwest::blocking::Client::new()
            .get(self.url("/api/v1/sites/demo/summary?period=today"))
            .bearer_auth(TOKEN)
            .send()
            .expect("summary request")
            .json()
            .expect("summary json")
    }

    /// Stops the server gracefully and returns every stored event.
    pub fn stop_and_scan(self) -> Vec<StoredEvent> {
        self.stop_and_scan_sites(&["demo"])
    }

    /// Stops the server gracefully and returns every event stored for
    /// these sites, site by site.
    pub fn stop_and_scan_sites(mut self, sites: &[&str]) -> Vec<StoredEvent> {
        self.stop();
        let store = Store::open(self.store_path(), &StoreOptions::default()).expect("open store");
        let mut out = Vec::new();
        for site in sites {
            store
                .scan_events(site, 0, i64::MAX, |e| {
                    out.push(e);
                    ControlFlow::Continue(())
                })
                .expect("scan");
        }
        out
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("data").join("sparsam.redb")
    }

    /// Today's visitor salt, from the salt file (page-view ids are stored
    /// keyed with it).
    pub fn salt(&self) -> [u8; 32] {
        let file = std::fs::read(self.dir.path().join("data").join("salt")).expect("salt file");
        file[8..].try_into().expect("32-byte salt")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `node tests/node/<script>` with arguments; panics with its output
/// when it fails.
pub fn node(script: &str, args: &[&str]) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules").exists(),
        "run `npm ci` in tests/node first (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "node {script} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

//! The protocol and browser tests' view of a collector: the real
//! `sparsam` binary, started by the one test harness (`tests/common`),
//! with a `demo` site for `127.0.0.1` and `localhost` (Matomo id 1) and,
//! when the config has a `[demo]` table, the demo site's own address.
//! `stop()` sends SIGTERM (graceful shutdown commits accepted events) so
//! the redb file can then be opened.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sparsam::store::{Store, StoreOptions, StoredEvent};

#[path = "../common/mod.rs"]
mod common;

pub const TOKEN: &str = "test-demo-token-0123456789";

pub struct Collector {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// Where the built-in demo site listens, when `[demo]` was configured.
    pub demo: Option<SocketAddr>,
    server: Option<common::Server>,
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
        let server = common::Server::start_config(dir.path(), &config);
        let addr = server
            .base
            .trim_start_matches("http://")
            .parse::<SocketAddr>()
            .expect("server address");
        let demo = top.contains("[demo]").then(|| demo_address(&server));
        Collector {
            addr,
            dir,
            demo,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.server.as_ref().map(|s| s.log()).unwrap_or_default()
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

    /// SIGTERM and wait (the graceful path; the harness checks the exit).
    /// Today's visitor salt, from the salt file (page-view ids are stored
    /// keyed with it).
    pub fn salt(&self) -> [u8; 32] {
        let file = std::fs::read(self.dir.path().join("data").join("salt")).expect("salt file");
        file[8..].try_into().expect("32-byte salt")
    }

    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }
}

/// The demo site's address from the line the server logs when it starts
/// it: "demo site on http://localhost:PORT/ (...)".
fn demo_address(server: &common::Server) -> SocketAddr {
    const MARKER: &str = "demo site on http://localhost:";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if let Some(rest) = log.split(MARKER).nth(1) {
            let port = rest.split('/').next().unwrap_or_default();
            if let Ok(port) = port.parse::<u16>() {
                return SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
        assert!(
            Instant::now() < deadline,
            "sparsam did not report the demo site; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
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

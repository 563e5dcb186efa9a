//! Test helpers: start the real `sparsam` binary on a free loopback port
//! with a temporary data directory, talk HTTP to it, and read its logs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const SITE_TOKEN: &str = "test-site-token-0123456789";
pub const OTHER_TOKEN: &str = "test-other-token-0123456789";
pub const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const FIREFOX_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

/// A config for tests: site `demo` (hosts example.org, localhost,
/// 127.0.0.1) and site `other`; `extra` is appended to `[server]`.
pub fn test_config(data_dir: &Path, server_extra: &str, privacy_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2
{server_extra}

[privacy]
{privacy_extra}

[auth]
admin_token = "{ADMIN_TOKEN}"
# tests send many wrong tokens on purpose from one address
max_failed_tokens_per_minute = 10000

[[sites]]
id = "demo"
name = "Demo"
matomo_id = 1
hostnames = ["example.org", "localhost", "127.0.0.1"]
timezone = "Europe/Berlin"
honour_dnt = true
honour_gpc = true
tokens = ["{SITE_TOKEN}"]

[[sites]]
id = "other"
hostnames = ["other.example"]
honour_dnt = false
honour_gpc = false
tokens = ["{OTHER_TOKEN}"]
"#,
        data = data_dir.display()
    )
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    log: Arc<Mutex<String>>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sparsam")
}

impl Server {
    /// Starts a server with the default test config in a new temp dir.
    pub fn start() -> Server {
        Self::start_with("", "")
    }

    pub fn start_with(server_extra: &str, privacy_extra: &str) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let config = test_config(&dir.join("data"), server_extra, privacy_extra);
        let mut s = Self::start_config(&dir, &config);
        s._tmp = Some(tmp);
        s
    }

    /// Starts the binary with `config` written into `dir`.
    pub fn start_config(dir: &Path, config: &str) -> Server {
        Self::start_config_env(dir, config, &[])
    }

    /// Like [`Server::start_config`], with extra environment variables.
    pub fn start_config_env(dir: &Path, config: &str, env: &[(&str, &Path)]) -> Server {
        let config_path = dir.join("sparsam.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&config_path)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("SPARSAM_LOG", "debug,actix_server=info,h2=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sparsam");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                if let Some(pos) = line.find("listening on http://") {
                    let addr = line[pos + "listening on http://".len()..]
                        .trim()
                        .to_string();
                    if let Some(t) = tx.take() {
                        let _ = t.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            config_path,
            log,
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.join("data").join("sparsam.redb")
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "server exited with {status}; log:\n{}",
            self.log()
        );
    }

    /// Keeps the temp dir alive beyond this server (for restarts).
    pub fn take_tempdir(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `config` into `dir`, starts the binary with it and expects a
/// refusal: a failed exit before listening. Returns what it wrote to
/// stderr, where a config error names its key.
pub fn start_fails(dir: &Path, config: &str) -> String {
    let path = dir.join("sparsam.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(bin())
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run sparsam");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started with a bad config:\n{err}");
    assert!(!err.contains("listening"), "{err}");
    err
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The server's metrics (Prometheus text; the admin token reads them).
pub fn metrics(s: &Server) -> String {
    client()
        .get(s.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("GET /metrics")
        .text()
        .expect("metrics text")
}

/// Whether `needle` occurs in `hay` (scans of store files, logs, bodies).
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A GET with the admin token that must answer 200; its JSON.
pub fn admin_json(server: &Server, path: &str) -> serde_json::Value {
    let res = client()
        .get(server.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(res.status(), 200, "{path}");
    res.json()
        .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"))
}

/// `GET /api/v1/sites/{site}/summary` for today (site time) as JSON.
pub fn summary(server: &Server, site: &str) -> serde_json::Value {
    admin_json(
        server,
        &format!("/api/v1/sites/{site}/summary?period=today"),
    )
}

pub fn pageviews(server: &Server, site: &str) -> i64 {
    summary(server, site)["pageviews"]
        .as_i64()
        .expect("pageviews")
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    url_encode(s)
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything a page can observe of an answer: status, every header except
/// `Date` (sorted, lower-case names) and the body bytes.
pub type Observed = (u16, Vec<(String, String)>, Vec<u8>);

pub fn observe(res: reqwest::blocking::Response) -> Observed {
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    (status, headers, res.bytes().expect("body").to_vec())
}

/// Every stored event of sites `demo` and `other`, read from the redb file
/// (the server must be stopped).
pub fn stored_events(store_path: &Path) -> Vec<sparsam::store::StoredEvent> {
    let store = sparsam::store::Store::open(store_path, &sparsam::store::StoreOptions::default())
        .expect("open store");
    let mut out = Vec::new();
    for site in ["demo", "other"] {
        store
            .scan_events(site, 0, i64::MAX, |e| {
                out.push(e);
                std::ops::ControlFlow::Continue(())
            })
            .expect("scan");
    }
    out
}

/// A page view of site `demo` as the pipeline would hand it to the store
/// (visitor `n`, page-view id `n + 1`, address 181.153.0.0/16), for tests
/// that write events straight into a store.
pub fn stored_pageview(ts_ms: i64, n: u64, url: &str) -> sparsam::model::Event {
    use sparsam::privacy::{AnonIp, IpMasks};
    sparsam::model::Event {
        site: "demo".into(),
        ts_ms,
        kind: sparsam::model::EventKind::PageView,
        visitor: n,
        pageview_id: n + 1,
        url: url.into(),
        title: "Page".into(),
        referrer: Default::default(),
        campaign: Default::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Default::default(),
        plugins: 0,
        anon_ip: AnonIp::truncate("181.153.27.94".parse().unwrap(), &IpMasks::DEFAULT),
        custom: None,
    }
}

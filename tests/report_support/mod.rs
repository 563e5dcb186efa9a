//! Shared by the reporting tests: starts the real `sparsam` binary (via
//! `tests/common`) with two sites and known tokens, optionally over a store
//! seeded with a generated workload of past days (`workload`), and sends
//! hits.

#![allow(dead_code)]

pub mod workload;

pub const ADMIN: &str = "admin-token-for-tests-000000";
pub const DEMO: &str = "demo-token-for-tests-0000000";
pub const OTHER: &str = "other-token-for-tests-000000";

#[path = "../common/mod.rs"]
mod common;

/// A running server (see `tests/common`) with sites `demo`
/// (Europe/Berlin) and `other` (UTC) and the tokens above.
pub struct Server {
    inner: common::Server,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Self::start_seeded(Vec::new())
    }

    /// Writes `events` (of any site, in time order) into a new store
    /// through the store's own writer, so roll-ups are built exactly as for
    /// live events, then starts the server over that store.
    pub fn start_seeded(events: Vec<sparsam::model::Event>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
data_dir = {data:?}
workers = 2

[auth]
admin_token = "{ADMIN}"
# wrong tokens are sent on purpose, many from one address
max_failed_tokens_per_minute = 10000

[[sites]]
id = "demo"
name = "Demo site"
hostnames = ["example.org"]
timezone = "Europe/Berlin"
tokens = ["{DEMO}"]

[[sites]]
id = "other"
name = "Other site"
hostnames = ["other.example", "www.other.example"]
timezone = "UTC"
tokens = ["{OTHER}"]
"#
        );
        if !events.is_empty() {
            let parsed = sparsam::Config::parse(&config).expect("test config");
            let storage = sparsam::app::open_storage(&parsed).expect("open store");
            for chunk in events.chunks(2_000) {
                sparsam::storage::Storage::submit(&*storage, chunk.to_vec())
                    .expect("queue")
                    .blocking_recv()
                    .expect("answer")
                    .expect("commit");
            }
            sparsam::storage::Storage::close(&*storage).expect("writer shutdown");
            drop(storage);
        }
        let inner = common::Server::start_config(dir.path(), &config);
        Server {
            base: inner.base.clone(),
            inner,
            _dir: dir,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.inner.log()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends one pixel hit with the given query pairs and user agent.
    pub fn hit(&self, pairs: &[(&str, &str)], ua: &str) {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let res = reqwest::blocking::Client::new()
            .get(self.url(&format!("/p.gif?{q}")))
            .header("user-agent", ua)
            .send()
            .expect("send hit");
        assert!(
            res.status().is_success(),
            "hit refused: {} {:?}",
            res.status(),
            res.text()
        );
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::blocking::Response {
        let mut r = reqwest::blocking::Client::new().get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("request")
    }

    pub fn json(&self, path: &str, token: &str) -> serde_json::Value {
        let res = self.get(path, Some(token));
        let status = res.status();
        let body = res.text().expect("body");
        assert!(status.is_success(), "{path}: {status} {body}");
        serde_json::from_str(&body).expect("json")
    }
}

pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

pub const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// Known data: two visitors (Firefox desktop, iPhone), page views incl.
/// hostile title/path/search term, a download, an outbound click, a search.
pub fn seed(s: &Server) {
    let fx = FIREFOX;
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/"),
            ("title", "Home"),
            ("ref", "https://www.google.com/search?q=x"),
        ],
        fx,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/docs"),
            ("title", HOSTILE),
        ],
        fx,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/docs"),
            ("kind", "download"),
            ("target", "https://example.org/guide.pdf"),
        ],
        fx,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/<script>alert(2)</script>"),
            ("title", "=cmd|' /C calc'!A0"),
        ],
        fx,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/"),
            ("title", "Home"),
        ],
        IPHONE,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/"),
            ("kind", "search"),
            ("search", HOSTILE),
        ],
        IPHONE,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/"),
            ("kind", "outbound"),
            ("target", "https://elsewhere.example/"),
        ],
        IPHONE,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/docs"),
            ("kind", "search"),
            ("search", "+no such thing"),
            ("results", "0"),
        ],
        fx,
    );
    s.hit(
        &[
            ("site", "other"),
            ("url", "https://other.example/x"),
            ("title", "Other"),
        ],
        fx,
    );
}

/// Strings a visitor could send that would run if a page inserted them as
/// HTML: each sets `window.__sparsamPwned` (the first also opens a
/// dialog). The `<img>` and `<details>` ones run through `innerHTML`; the
/// `<script>` one through the APIs that run scripts (`document.write`,
/// `createContextualFragment`).
pub const PAYLOADS: [&str; 3] = [
    "<img src=x onerror=\"window.__sparsamPwned=1;alert(3)\">",
    "<script>window.__sparsamPwned=2;alert(4)</script>",
    "\"><details open ontoggle=\"window.__sparsamPwned=3\">",
];

/// The generated past of both sites and what the reports must say.
pub struct Seeded {
    pub events: Vec<sparsam::model::Event>,
    pub demo: workload::Ledger,
    pub other: workload::Ledger,
}

/// Two weeks (or `days`) of generated traffic before today on `demo`
/// (Europe/Berlin, with hostile strings among the values) and a smaller,
/// different workload on `other` (UTC).
pub fn seeded(days: i64, persons: usize, seed: u64) -> Seeded {
    use workload::{generate, Spec};
    let (mut events, demo) = generate(&Spec {
        site: "demo",
        tz: "Europe/Berlin".parse().expect("tz"),
        host: "example.org",
        seed,
        persons,
        first_back: 1,
        last_back: days,
        activity: 0.7,
        hostile: PAYLOADS.iter().map(|s| s.to_string()).collect(),
    });
    let (more, other) = generate(&Spec {
        site: "other",
        tz: chrono_tz::UTC,
        host: "other.example",
        seed: seed ^ 0x5eed,
        persons: 3,
        first_back: 1,
        last_back: days,
        activity: 0.5,
        hostile: Vec::new(),
    });
    events.extend(more);
    events.sort_by_key(|e| e.ts_ms);
    Seeded {
        events,
        demo,
        other,
    }
}

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// Today's hits carrying [`PAYLOADS`] wherever a visitor can put text: the
/// page path, the title, the site-search term and the campaign parameters
/// (a third visitor, Chrome on Windows).
pub fn seed_hostile(s: &Server) {
    let [a, b, c] = PAYLOADS;
    let campaign = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("utm_source", a),
            ("utm_medium", "web"),
            ("utm_campaign", b),
        ])
        .finish();
    s.hit(
        &[
            ("site", "demo"),
            ("url", &format!("https://example.org/landing?{campaign}")),
            ("title", a),
            ("ref", "https://news.example.net/story"),
        ],
        CHROME,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", &format!("https://example.org/{b}")),
            ("title", c),
        ],
        CHROME,
    );
    s.hit(
        &[
            ("site", "demo"),
            ("url", "https://example.org/search"),
            ("kind", "search"),
            ("search", c),
            ("results", "0"),
        ],
        CHROME,
    );
}

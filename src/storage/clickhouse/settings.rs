//! `[clickhouse]`: where the ClickHouse backend finds its servers, and how
//! it batches and spools writes. Parsed and checked with the rest of the
//! configuration; every problem names its key.

use std::path::PathBuf;

use serde::Deserialize;

/// Environment variable that carries the password when no
/// `clickhouse.password_file` is set.
pub const PASSWORD_ENV: &str = "SPARSAM_CLICKHOUSE_PASSWORD";

/// Largest `clickhouse.report_cache_mb` (64 GiB): more is a typo.
pub const MAX_REPORT_CACHE_MB: u64 = 65_536;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interfaces; several = failover, tried in order.
    pub urls: Vec<String>,
    /// Database holding sparsam's tables (created when missing).
    pub database: String,
    /// Name of the cluster in the servers' `remote_servers`; empty = one
    /// server, plain MergeTree tables, no `ON CLUSTER`.
    pub cluster: String,
    pub user: String,
    /// File holding the password (its first line); empty: the environment
    /// variable `SPARSAM_CLICKHOUSE_PASSWORD`, or no password.
    pub password_file: PathBuf,
    /// Most events in one insert.
    pub batch_rows: usize,
    /// Longest an accepted event waits before its batch is written, in
    /// milliseconds.
    pub flush_ms: u64,
    /// Folder of the local spool that holds accepted batches until
    /// ClickHouse confirms them; empty: `clickhouse-spool` in
    /// `server.data_dir`.
    pub spool_dir: PathBuf,
    /// Most bytes the spool may hold; past it, ingest answers 503.
    pub spool_max_mb: u64,
    /// Seconds one request to ClickHouse may take.
    pub request_timeout_secs: u64,
    /// Most memory, in MiB, the collector holds closed days' roll-ups in
    /// for reports (`report_cache.rs`); 0 = keep none, replay every day.
    pub report_cache_mb: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            urls: vec!["http://127.0.0.1:8123".into()],
            database: "sparsam".into(),
            cluster: String::new(),
            user: "default".into(),
            password_file: PathBuf::new(),
            batch_rows: 50_000,
            flush_ms: 1000,
            spool_dir: PathBuf::new(),
            spool_max_mb: 1024,
            request_timeout_secs: 30,
            report_cache_mb: 128,
        }
    }
}

/// True for a name ClickHouse takes without quoting (and that needs no
/// escaping inside SQL): a letter or `_`, then letters, digits or `_`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ClickHouseConfig {
    /// Checks every key; `(key, problem)` on the first bad one.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, problem: String| Err((format!("clickhouse.{key}"), problem));
        if self.urls.is_empty() {
            return bad("urls", "must name at least one server".into());
        }
        for (i, u) in self.urls.iter().enumerate() {
            match url::Url::parse(u) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https")
                        && parsed.host().is_some()
                        && parsed.query().is_none()
                        && parsed.path() == "/" => {}
                _ => {
                    return bad(
                        &format!("urls[{i}]"),
                        format!(
                        "{u:?} is not a server's HTTP interface such as \"http://127.0.0.1:8123\""
                    ),
                    )
                }
            }
        }
        if !is_identifier(&self.database) {
            return bad(
                "database",
                format!(
                    "{:?} must be letters, digits and _, starting with a letter",
                    self.database
                ),
            );
        }
        if !self.cluster.is_empty() && !is_identifier(&self.cluster) {
            return bad(
                "cluster",
                format!("{:?} must be empty or letters, digits and _", self.cluster),
            );
        }
        if self.user.is_empty() || self.user.chars().any(|c| c.is_control() || c == ':') {
            return bad("user", "must be a user name without ':'".into());
        }
        if !(1..=1_000_000).contains(&self.batch_rows) {
            return bad("batch_rows", "must be between 1 and 1000000".into());
        }
        if !(10..=60_000).contains(&self.flush_ms) {
            return bad("flush_ms", "must be between 10 and 60000".into());
        }
        if self.spool_max_mb == 0 {
            return bad("spool_max_mb", "must be at least 1".into());
        }
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return bad("request_timeout_secs", "must be between 1 and 3600".into());
        }
        if self.report_cache_mb > MAX_REPORT_CACHE_MB {
            return bad(
                "report_cache_mb",
                format!("must be at most {MAX_REPORT_CACHE_MB} (0 turns the cache off)"),
            );
        }
        Ok(())
    }

    /// The password: the first line of `password_file`, else the
    /// environment variable, else none. Both at once is refused, so that
    /// an operator never wonders which one counts.
    pub fn password(&self) -> Result<Option<String>, (String, String)> {
        let from_env = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        if self.password_file.as_os_str().is_empty() {
            return Ok(from_env);
        }
        if from_env.is_some() {
            return Err((
                "clickhouse.password_file".into(),
                format!("is set and so is {PASSWORD_ENV}; use one of them"),
            ));
        }
        let text = std::fs::read_to_string(&self.password_file).map_err(|e| {
            (
                "clickhouse.password_file".into(),
                format!("cannot read {}: {e}", self.password_file.display()),
            )
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }
}

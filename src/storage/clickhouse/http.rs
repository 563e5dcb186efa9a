//! The ClickHouse HTTP interface: statements go as POST bodies (servers
//! from 2018 refuse DDL over GET), settings as URL parameters, answers come
//! back as text. Several URLs are failover: a request that cannot reach a
//! server, or that the server answers with a 5xx while it is starting or
//! shutting down, goes to the next one; the last server that answered is
//! tried first next time.
//!
//! Why `reqwest`'s blocking client: the store boundary's methods block
//! anyway, the writer runs on its own threads, and the crate is already
//! built for the tests. Its blocking client must not wait on a thread that
//! drives async tasks, so a call made from one (start-up runs inside the
//! runtime) is moved to a short-lived thread of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A request ClickHouse did not carry out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// No server could be reached (or every one answered 5xx while not
    /// ready): worth retrying later.
    #[error("no ClickHouse server answers: {0}")]
    Unreachable(String),
    /// A server answered with an error: the statement is wrong for it.
    #[error("ClickHouse refused the statement ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl HttpError {
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Unreachable(_) => true,
            // 18.16 answers 500 for everything, also for a replica that
            // lost ZooKeeper or a shard that is down; these codes mean
            // "try again later": table is read-only (242), ZooKeeper
            // session expired or unreachable (999, 225), network errors
            // (209, 210), timeouts (159), too many parts (252), all
            // connection tries failed (279), insert outcome unknown (319).
            HttpError::Refused { message, .. } => {
                const TRANSIENT: [u32; 9] = [242, 999, 225, 209, 210, 159, 252, 279, 319];
                error_code(message).is_some_and(|code| TRANSIENT.contains(&code))
            }
        }
    }
}

/// The error code a ClickHouse error message starts with: 18.16 writes
/// `Code: 159, e.displayText() = DB::Exception: …`, current servers
/// `Code: 159. DB::Exception: …`.
fn error_code(message: &str) -> Option<u32> {
    let rest = message.strip_prefix("Code: ")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if !matches!(rest[digits..].chars().next(), Some(',' | '.')) {
        return None;
    }
    rest[..digits].parse().ok()
}

/// Settings sent with a statement, as URL parameters.
pub type Params<'a> = &'a [(&'a str, &'a str)];

/// Talks to the configured servers.
pub struct Client {
    http: reqwest::blocking::Client,
    urls: Vec<String>,
    user: String,
    password: Option<String>,
    /// Index of the server that answered last.
    preferred: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the password
        f.debug_struct("Client").field("urls", &self.urls).finish()
    }
}

impl Client {
    pub fn new(
        urls: Vec<String>,
        user: String,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Client, HttpError> {
        let http = off_runtime(|| {
            reqwest::blocking::Client::builder()
                .connect_timeout(Duration::from_secs(2).min(timeout))
                // below ClickHouse's keep_alive_timeout (3 s by default), so
                // an idle connection is never reused just as the server
                // closes it
                .pool_idle_timeout(Duration::from_millis(1500))
                .timeout(timeout)
                .build()
        })
        .map_err(|e| HttpError::Unreachable(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            urls,
            user,
            password,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Runs `sql` with `body` appended (insert data), returns the answer.
    pub fn execute(
        &self,
        sql: &str,
        body: Vec<u8>,
        params: Params<'_>,
    ) -> Result<String, HttpError> {
        off_runtime(|| self.execute_here(sql, &body, params))
    }

    /// A statement without data.
    pub fn query(&self, sql: &str, params: Params<'_>) -> Result<String, HttpError> {
        self.execute(sql, Vec::new(), params)
    }

    fn execute_here(
        &self,
        sql: &str,
        body: &[u8],
        params: Params<'_>,
    ) -> Result<String, HttpError> {
        let first = self.preferred.load(Ordering::Relaxed) % self.urls.len();
        let mut failures = Vec::new();
        for k in 0..self.urls.len() {
            let i = (first + k) % self.urls.len();
            let url = &self.urls[i];
            // The statement goes into the URL when there is data, so the
            // body can be the data as is; otherwise it is the body.
            let mut query: Vec<(&str, &str)> = params.to_vec();
            let payload = if body.is_empty() {
                sql.as_bytes().to_vec()
            } else {
                query.push(("query", sql));
                body.to_vec()
            };
            let mut request = self.http.post(url).query(&query).body(payload);
            request = request.basic_auth(&self.user, self.password.as_deref());
            match request.send() {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().unwrap_or_default();
                    if status.is_success() {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(text);
                    }
                    let refused = HttpError::Refused {
                        status: status.as_u16(),
                        message: text.trim().to_string(),
                    };
                    // A server that cannot serve now (no ZooKeeper, a shard
                    // down) may be fine elsewhere; a wrong statement is
                    // wrong everywhere.
                    if refused.is_transient() {
                        failures.push(format!("{url}: {refused}"));
                        continue;
                    }
                    return Err(refused);
                }
                Err(e) => failures.push(format!("{url}: {}", with_causes(&e))),
            }
        }
        Err(HttpError::Unreachable(failures.join("; ")))
    }
}

/// An error with its causes ("error sending request" alone does not say
/// whether the connection was refused or timed out).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Runs `work` here, or on a thread of its own when this thread drives
/// async tasks (where a blocking wait is not allowed).
fn off_runtime<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(message: &str) -> HttpError {
        HttpError::Refused {
            status: 500,
            message: message.into(),
        }
    }

    #[test]
    fn transient_codes_are_recognised_in_old_and_current_messages() {
        // 18.16
        assert!(
            refused("Code: 242, e.displayText() = DB::Exception: Table is in readonly mode")
                .is_transient()
        );
        // 20.x and later
        assert!(refused(
            "Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)"
        )
        .is_transient());
        assert!(refused(
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 1.0 seconds. (TIMEOUT_EXCEEDED)"
        )
        .is_transient());
        for wrong in [
            "Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)",
            "Code: 62, e.displayText() = DB::Exception: Syntax error",
            "Code: 2420. DB::Exception: not a transient code",
            "Code: 242 without punctuation",
            "Timeout exceeded",
            "",
        ] {
            assert!(!refused(wrong).is_transient(), "{wrong}");
        }
        assert_eq!(error_code("Code: 1. x"), Some(1));
    }
}

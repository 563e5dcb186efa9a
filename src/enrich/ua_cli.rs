//! `sparsam ua`: classify user agents from JSON lines, for operators and
//! for checking detection against samples from real logs.
//!
//! Input: one JSON object per line, `{"ua": "...", "headers": {"Sec-CH-UA-Model": "..."}}`
//! (`headers` optional; any client-hint header names, case-insensitive; a
//! string hint may be written as browsers send it, `"\"Pixel 8\""`, or bare,
//! `"Pixel 8"`).
//! Output: one JSON object per line with exactly the fields `device_type,
//! brand, model, os, os_version, browser, browser_version, engine,
//! engine_version, bot`. A bad line prints `{"error": "...", "line": N}`
//! and processing continues; only I/O errors stop it.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::client_hints::ClientHints;
use super::device::DeviceDetector;

/// Longest input line (bytes) that is parsed; longer lines are errors.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Errors that stop the run (bad lines do not).
#[derive(Debug, thiserror::Error)]
pub enum UaCliError {
    #[error("reading input: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing output: {0}")]
    Write(#[source] std::io::Error),
}

/// Counts of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Lines classified.
    pub ok: u64,
    /// Lines answered with `{"error": ...}`.
    pub errors: u64,
}

#[derive(Deserialize)]
struct InLine {
    ua: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct OutLine<'a> {
    device_type: &'a str,
    brand: &'a str,
    model: &'a str,
    os: &'a str,
    os_version: &'a str,
    browser: &'a str,
    browser_version: &'a str,
    engine: &'a str,
    engine_version: &'a str,
    bot: bool,
}

#[derive(Serialize)]
struct ErrLine {
    error: String,
    line: u64,
}

/// Reads JSON lines from `input`, writes one JSON result per line.
/// Blank lines are skipped.
pub fn run(
    input: impl BufRead,
    mut output: impl Write,
    detector: &DeviceDetector,
) -> Result<Stats, UaCliError> {
    let mut stats = Stats::default();
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    let mut input = input;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(UaCliError::Read)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let json = match classify_line(&buf, detector) {
            Ok(Some(out)) => {
                stats.ok += 1;
                out
            }
            Ok(None) => continue,
            Err(error) => {
                stats.errors += 1;
                serde_json::to_string(&ErrLine {
                    error,
                    line: line_no,
                })
                .unwrap_or_else(|_| String::from(r#"{"error":"unprintable"}"#))
            }
        };
        writeln!(output, "{json}").map_err(UaCliError::Write)?;
    }
    output.flush().map_err(UaCliError::Write)?;
    Ok(stats)
}

fn classify_line(raw: &[u8], detector: &DeviceDetector) -> Result<Option<String>, String> {
    if raw.len() > MAX_LINE_LEN {
        return Err(format!("line longer than {MAX_LINE_LEN} bytes"));
    }
    let text = std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let line: InLine = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let hints =
        ClientHints::from_headers(line.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let d = detector.detect(&line.ua, &hints);
    let out = OutLine {
        device_type: d.device_type.as_str(),
        brand: &d.brand,
        model: &d.model,
        os: &d.os,
        os_version: &d.os_version,
        browser: &d.browser,
        browser_version: &d.browser_version,
        engine: &d.engine,
        engine_version: &d.engine_version,
        bot: d.bot,
    };
    serde_json::to_string(&out)
        .map(Some)
        .map_err(|e| format!("encoding result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lines_and_reports_bad_ones() {
        let det = DeviceDetector::new(16);
        let input = concat!(
            r#"{"ua": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "headers": {"Sec-CH-UA-Model": "\"Pixel 8\""}}"#,
            "\n",
            "not json\n",
            "\n",
            r#"{"ua": "curl/8.5.0"}"#,
            "\n",
            r#"{"ua": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "headers": {"sec-ch-ua-model": "Pixel 8"}}"#,
            "\n"
        );
        let mut out = Vec::new();
        let stats = run(input.as_bytes(), &mut out, &det).unwrap();
        assert_eq!(stats, Stats { ok: 3, errors: 1 });
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["model"], "Pixel 8");
        assert_eq!(lines[0]["brand"], "Google");
        let keys: Vec<&str> = lines[0]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.len(), 10);
        assert_eq!(lines[1]["line"], 2);
        assert!(lines[1]["error"].as_str().unwrap().contains("JSON"));
        assert_eq!(lines[2]["bot"], true);
        assert_eq!(lines[2]["device_type"], "bot");
        // The model typed bare, not as a quoted structured-field string.
        assert_eq!(lines[3]["model"], "Pixel 8");
        assert_eq!(lines[3]["brand"], "Google");
    }
}

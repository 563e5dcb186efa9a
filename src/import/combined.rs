//! Parser for NCSA combined log lines (Apache `combined`, nginx's default
//! `log_format`):
//!
//! `IP - user [10/Oct/2026:13:55:36 +0200] "GET /path?x HTTP/1.1" 200 2326 "referer" "user agent"`
//!
//! The client address is shortened with the configured masks inside
//! [`parse_line`], before anything else reads the line: the full address
//! never leaves this function. Malformed lines give an error, never a panic.

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset};

use crate::privacy::{AnonIp, IpMasks};

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("no client address")]
    Address,
    #[error("no valid [time]")]
    Time,
    #[error("no quoted request")]
    Request,
    #[error("no valid status")]
    Status,
}

/// One parsed log line, address already shortened.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub anon_ip: AnonIp,
    pub time: DateTime<FixedOffset>,
    /// Method and request target; `None` when the request field was not
    /// `METHOD TARGET [PROTOCOL]` (e.g. `"-"` for a dropped connection).
    pub request: Option<(String, String)>,
    pub status: u16,
    /// `None` when absent or `-`.
    pub referrer: Option<String>,
    pub user_agent: String,
}

/// Reads a double-quoted field starting at `s[0] == '"'`, honouring `\"`
/// and `\\`; returns the unescaped text and the rest after the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => return None,
            },
            '"' => return Some((out, &body[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn dash_none(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t != "-").then_some(s)
}

/// Parses one line, shortening the address with `masks` at once.
pub fn parse_line(line: &str, masks: &IpMasks) -> Result<LogLine, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (addr, rest) = line.split_once(' ').ok_or(LineError::Address)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let anon_ip = match addr.parse::<IpAddr>() {
        Ok(full) => AnonIp::truncate(full, masks),
        Err(_) => return Err(LineError::Address),
    };

    let open = rest.find('[').ok_or(LineError::Time)?;
    let close = rest[open..].find(']').ok_or(LineError::Time)? + open;
    let time = DateTime::parse_from_str(&rest[open + 1..close], "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|_| LineError::Time)?;
    let rest = rest[close + 1..].trim_start();

    let (request, rest) = quoted(rest).ok_or(LineError::Request)?;
    let mut parts = request.split_whitespace();
    let request = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => Some((m.to_string(), t.to_string())),
        _ => None,
    };

    let mut fields = rest.trim_start().splitn(3, ' ');
    let status: u16 = fields
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(LineError::Status)?;
    let _bytes = fields.next();
    let rest = fields.next().unwrap_or("").trim_start();

    let (referrer, user_agent) = match quoted(rest) {
        Some((r, rest)) => {
            let ua = quoted(rest.trim_start())
                .map(|(u, _)| u)
                .unwrap_or_default();
            (dash_none(r), dash_none(ua).unwrap_or_default())
        }
        None => (None, String::new()),
    };

    Ok(LogLine {
        anon_ip,
        time,
        request,
        status,
        referrer,
        user_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"181.153.77.201 - frank [10/Oct/2026:13:55:36 +0200] "GET /path?x=1 HTTP/1.1" 200 2326 "https://www.google.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0""#;

    #[test]
    fn parses_combined_and_shortens_address() {
        let l = parse_line(LINE, &IpMasks::DEFAULT).unwrap();
        assert_eq!(l.anon_ip.masked_display(), "181.153.xxx.xxx");
        assert!(!format!("{l:?}").contains("77.201"));
        assert_eq!(l.time.to_rfc3339(), "2026-10-10T13:55:36+02:00");
        assert_eq!(l.request, Some(("GET".into(), "/path?x=1".into())));
        assert_eq!(l.status, 200);
        assert_eq!(l.referrer.as_deref(), Some("https://www.google.com/"));
        assert!(l.user_agent.contains("Firefox/126.0"));
    }

    #[test]
    fn escaped_quotes_ipv6_and_dashes() {
        let l = parse_line(
            r#"2001:db8::1 - - [01/Jan/2026:00:00:00 +0000] "GET /a\"b HTTP/1.1" 304 - "-" "-""#,
            &IpMasks::DEFAULT,
        )
        .unwrap();
        assert_eq!(l.request, Some(("GET".into(), "/a\"b".into())));
        assert_eq!(l.status, 304);
        assert_eq!(l.referrer, None);
        assert_eq!(l.user_agent, "");
        let l = parse_line(
            r#"10.1.2.3 - - [01/Jan/2026:00:00:00 +0000] "-" 400 0 "-" "-""#,
            &IpMasks::DEFAULT,
        )
        .unwrap();
        assert_eq!(l.request, None);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let m = IpMasks::DEFAULT;
        for bad in [
            "",
            "garbage",
            "999.1.1.1 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1",
            "1.2.3.4 - - [32/Foo/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1",
            "1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1 200 1",
            "1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" abc 1",
            "1.2.3.4 - - [01/Jan/2026:00:00:00 +0000",
            "1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"\\",
        ] {
            assert!(parse_line(bad, &m).is_err(), "{bad}");
        }
    }
}

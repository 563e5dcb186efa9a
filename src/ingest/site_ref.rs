//! The sites a request names, read cheaply and leniently for the opt-out
//! decision that comes before any parsing.
//!
//! Why: an opted-out hit is dropped before anything of it is parsed, but
//! `DNT` / `Sec-GPC` count only for sites configured to honour them, so the
//! site has to be known first. The functions here look only at the fields
//! that name a site (pixel `site`, Matomo `idsite`, beacon `site`,
//! Plausible `d` and the host of `u` / `url`), never fail and never build
//! a hit: malformed input yields whatever names could be read, possibly
//! none. JSON bodies are only tokenised (strings, punctuation), so a body
//! cut off half-way or holding invalid values still gives up its site. The
//! number of entries of a Matomo bulk `requests` list is read the same way,
//! because it shapes the answer a dropped bulk gets.

use super::plausible;
use crate::config::{Config, SiteConfig};

/// Configured sites named by a pixel query string (`site=…`, every
/// occurrence).
pub fn pixel_sites<'c>(query: &str, config: &'c Config) -> Vec<&'c SiteConfig> {
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "site" {
            push(&mut out, config.site(&v));
        }
    }
    out
}

/// Configured sites named by Matomo parameters (`idsite=…` in a query
/// string or form body; bytes that are not UTF-8 are read leniently).
pub fn matomo_sites<'c>(params: &[u8], config: &'c Config) -> Vec<&'c SiteConfig> {
    let params = params.strip_prefix(b"?").unwrap_or(params);
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(params) {
        if k == "idsite" {
            if let Ok(id) = v.trim().parse::<u32>() {
                push(&mut out, config.site_by_matomo_id(id));
            }
        }
    }
    out
}

/// Configured sites named by a Matomo bulk body: the `idsite` of every
/// string in it.
pub fn bulk_sites<'c>(body: &[u8], config: &'c Config) -> Vec<&'c SiteConfig> {
    let mut out = Vec::new();
    for token in Lexer::new(body) {
        if let Token::Str(s) = token {
            for site in matomo_sites(s.as_bytes(), config) {
                push(&mut out, Some(site));
            }
        }
    }
    out
}

/// Number of strings in the `requests` list of a Matomo bulk body (up to
/// where the body ends or stops making sense).
pub fn bulk_request_count(body: &[u8]) -> usize {
    let mut tokens = Lexer::new(body);
    let mut prev: [Option<Token>; 2] = [None, None];
    // Find `"requests" : [`.
    loop {
        let Some(t) = tokens.next() else { return 0 };
        let found = matches!(&prev, [Some(Token::Str(k)), Some(Token::Punct(b':'))] if k == "requests")
            && t == Token::Punct(b'[');
        if found {
            break;
        }
        prev = [prev[1].take(), Some(t)];
    }
    let mut depth = 0usize;
    let mut count = 0;
    for t in tokens {
        match t {
            Token::Punct(b'[' | b'{') => depth += 1,
            Token::Punct(b']' | b'}') if depth == 0 => break,
            Token::Punct(b']' | b'}') => depth -= 1,
            Token::Str(_) if depth == 0 => count += 1,
            _ => {}
        }
    }
    count
}

/// Configured sites named by a body posted to `/api/event`: sparsam's
/// `site`, Plausible's `d` / `domain` (a comma-separated list), and the
/// host of `u` / `url`, wherever they occur.
pub fn beacon_sites<'c>(body: &[u8], config: &'c Config) -> Vec<&'c SiteConfig> {
    let mut out = Vec::new();
    let mut prev: [Option<Token>; 2] = [None, None];
    for t in Lexer::new(body) {
        if let ([Some(Token::Str(key)), Some(Token::Punct(b':'))], Token::Str(value)) = (&prev, &t)
        {
            match key.as_str() {
                "site" => push(&mut out, config.site(value)),
                "d" | "domain" => {
                    for s in plausible::domain_sites(value, config) {
                        push(&mut out, Some(s));
                    }
                }
                "u" | "url" => push(&mut out, plausible::url_site(value, config)),
                _ => {}
            }
        }
        prev = [prev[1].take(), Some(t)];
    }
    out
}

fn push<'c>(out: &mut Vec<&'c SiteConfig>, site: Option<&'c SiteConfig>) {
    if let Some(s) = site {
        if !out.iter().any(|o| o.id == s.id) {
            out.push(s);
        }
    }
}

/// A JSON token, as far as the site reading needs it.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A string literal, unescaped (lossy: broken escapes and bytes that
    /// are not UTF-8 become U+FFFD).
    Str(String),
    /// One of `{ } [ ] : ,`.
    Punct(u8),
    /// Anything else (numbers, literals, junk), skipped as a run.
    Other,
}

/// A forgiving JSON tokeniser: never fails, stops at the end of input.
struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lexer { bytes, pos: 0 }
    }

    fn string(&mut self) -> String {
        let mut out: Vec<u8> = Vec::new();
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.bytes.get(self.pos) else {
                        break;
                    };
                    self.pos += 1;
                    match e {
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape();
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(text, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    /// The character of a `\uXXXX` escape (the `\u` already read),
    /// joining surrogate pairs.
    fn unicode_escape(&mut self) -> char {
        let Some(hi) = self.hex4() else {
            return char::REPLACEMENT_CHARACTER;
        };
        if (0xD800..0xDC00).contains(&hi) && self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u")
        {
            let save = self.pos;
            self.pos += 2;
            match self.hex4() {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
                }
                _ => self.pos = save,
            }
        }
        char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        while self.bytes.get(self.pos)?.is_ascii_whitespace() {
            self.pos += 1;
        }
        let b = self.bytes[self.pos];
        self.pos += 1;
        Some(match b {
            b'"' => Token::Str(self.string()),
            b'{' | b'}' | b'[' | b']' | b':' | b',' => Token::Punct(b),
            _ => {
                while let Some(&c) = self.bytes.get(self.pos) {
                    if c.is_ascii_whitespace() || b"\"{}[]:,".contains(&c) {
                        break;
                    }
                    self.pos += 1;
                }
                Token::Other
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"
[[sites]]
id = "demo"
matomo_id = 1
hostnames = ["example.org"]
[[sites]]
id = "other"
matomo_id = 2
hostnames = ["other.example"]
"#,
        )
        .unwrap()
    }

    fn ids(sites: Vec<&SiteConfig>) -> Vec<&str> {
        sites.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn pixel_and_matomo_parameters() {
        let c = config();
        assert_eq!(ids(pixel_sites("url=%FF&site=demo", &c)), ["demo"]);
        assert_eq!(
            ids(pixel_sites("site=other&site=demo&site=nope", &c)),
            ["other", "demo"],
            "every occurrence counts"
        );
        assert!(pixel_sites("url=x", &c).is_empty());
        assert_eq!(ids(matomo_sites(b"?rec=1&idsite=2", &c)), ["other"]);
        assert_eq!(ids(matomo_sites(b"idsite=%31&url=\xff\xfe", &c)), ["demo"]);
        assert!(matomo_sites(b"idsite=-1", &c).is_empty());
    }

    #[test]
    fn json_bodies_valid_or_not() {
        let c = config();
        assert_eq!(
            ids(beacon_sites(
                br#"{"site":"demo","url":"https://example.org/","engaged_ms":-1"#,
                &c
            )),
            ["demo"]
        );
        assert_eq!(
            ids(beacon_sites(
                br#"[{"site":"other"},{"s\u0069te":"demo"}]"#,
                &c
            )),
            ["other", "demo"]
        );
        assert_eq!(
            ids(beacon_sites(
                br#"{"n":"pageview","d":"nope.io, example.org","u":"#,
                &c
            )),
            ["demo"]
        );
        assert_eq!(
            ids(beacon_sites(
                br#"{"n":"pageview","u":"https://other.example/a"}"#,
                &c
            )),
            ["other"]
        );
        // A key only counts when a string value follows it.
        assert!(beacon_sites(br#"{"title":"site","x":"demo"}"#, &c).is_empty());
        assert!(beacon_sites(b"\xff\xfe{{{", &c).is_empty());
        // A body cut off inside the value still names the site.
        assert_eq!(ids(beacon_sites(br#"{"site":"demo"#, &c)), ["demo"]);
        assert!(beacon_sites(br#"{"site":"dem"#, &c).is_empty());
    }

    #[test]
    fn bulk_bodies() {
        let c = config();
        let body = br#"{"requests":["?idsite=2&rec=1","?idsite=1&url=%FF"],"token_auth":"x"}"#;
        assert_eq!(ids(bulk_sites(body, &c)), ["other", "demo"]);
        assert_eq!(bulk_request_count(body), 2);
        assert_eq!(bulk_request_count(br#"{"requests":["?idsite=1&rec=1""#), 1);
        assert_eq!(bulk_request_count(br#"{"x":["a"],"requests":[]}"#), 0);
        assert_eq!(
            bulk_request_count(br#"{"requests":[["a"],"b",{"c":"d"}]}"#),
            1
        );
        assert_eq!(bulk_request_count(b"garbage"), 0);
    }

    #[test]
    fn lexer_never_panics_on_junk() {
        for junk in [
            &b"\"\\"[..],
            b"\"\\u12",
            b"\"\\ud800\\u",
            b"\"\\ud800\\uzzzz\"",
            b"\xff\"\xc3\"",
            b"::::,,,{",
        ] {
            let _ = Lexer::new(junk).count();
        }
        let s: Vec<Token> = Lexer::new(br#""\ud83d\ude00""#).collect();
        assert_eq!(s, [Token::Str("\u{1F600}".into())]);
    }
}

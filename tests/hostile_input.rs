//! Hostile input, one case a row, against one running server that holds
//! known data: every row gets its documented answer (a 4xx with a reason,
//! or a 2xx where the hostile part is ignored on purpose), and after the
//! whole table the server still serves and the stored data of site `demo`
//! is exactly what it was before. Requests are written as raw HTTP/1.1 so
//! that bytes a polite client would clean up (`..` segments, raw invalid
//! UTF-8, CR/LF) reach the server unchanged.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sparsam::model::EventKind;
use sparsam::store::{Store, StoreOptions, StoredEvent};

/// Site `demo` holds the known data; site `sink` takes the rows whose
/// hostile part is ignored on purpose (they store a harmless event there).
fn config(data: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2
# The test client is the proxy; it writes X-Forwarded-For.
trusted_proxies = ["127.0.0.1/32"]
client_ip_header = "x-forwarded-for"
# the slow-body row waits this long for its answer
client_timeout_secs = 1

[auth]
admin_token = "{ADMIN_TOKEN}"

[[sites]]
id = "demo"
matomo_id = 1
hostnames = ["example.org"]
tokens = ["{SITE_TOKEN}"]

[[sites]]
id = "sink"
matomo_id = 2
hostnames = ["sink.example"]
"#,
        data = data.display()
    )
}

/// One answer, read off the wire.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

/// Sends `raw` on a fresh connection and reads the answer until close.
fn send_raw(addr: &str, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may answer and close before it has read an oversized
    // request; a write error then is part of the expected outcome.
    let _ = stream.write_all(raw);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.get(split + 4..).unwrap_or_default().to_vec();
    Reply { status, head, body }
}

fn get(target: &[u8], headers: &[(&str, &[u8])]) -> Vec<u8> {
    request(b"GET", target, headers, b"")
}

fn post(target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    request(b"POST", target, headers, body)
}

fn request(method: &[u8], target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method);
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        r.extend_from_slice(format!("User-Agent: {CHROME_UA}\r\n").as_bytes());
    }
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    if method == b"POST" {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// What a row must get back.
enum Expect {
    /// This status and, in the body, this text (a JSON reason for 4xx
    /// answered by the application).
    Status(u16, &'static str),
    /// One of these statuses (protocol-level limits answered by the HTTP
    /// layer before any handler runs).
    OneOf(&'static [u16]),
    /// A success: the hostile part is ignored on purpose, or stored to
    /// site `sink` where it is harmless (a huge but valid result count).
    Ignored,
}

type Check = fn(&Reply) -> Result<(), String>;

struct Row {
    name: &'static str,
    raw: Vec<u8>,
    expect: Expect,
    check: Option<Check>,
}

fn row(name: &'static str, raw: Vec<u8>, expect: Expect) -> Row {
    Row {
        name,
        raw,
        expect,
        check: None,
    }
}

fn checked(name: &'static str, raw: Vec<u8>, expect: Expect, check: Check) -> Row {
    Row {
        name,
        raw,
        expect,
        check: Some(check),
    }
}

const JSON_CT: (&str, &[u8]) = ("Content-Type", b"application/json");
const ADMIN: &str = "Bearer test-admin-token-0123456789";

fn admin() -> (&'static str, &'static [u8]) {
    ("Authorization", ADMIN.as_bytes())
}

/// Script payloads stored as text by the known data.
const SCRIPT_TITLE: &str = "<script>alert('title')</script>";
const SCRIPT_PATH: &str = "/\"><img src=x onerror=alert(1)>";
/// A host may hold quotes and parentheses (markup characters make the URL
/// invalid, and an invalid referrer counts as direct), the path anything.
const SCRIPT_REF: &str = "https://x'-alert('ref')-'.example/<script>alert('ref')</script>";
const FORMULA_TERMS: [&str; 6] = [
    "=HYPERLINK(\"https://evil.example\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTAB",
    "\rCR",
];

/// Text put into bad parameters, names and paths; no answer may contain it.
const MARKER: &str = "echomarker4711";

fn no_marker(r: &Reply) -> Result<(), String> {
    let all = format!("{}{}", r.head, r.body_text()).to_lowercase();
    if all.contains(MARKER) {
        return Err(format!("the caller's input is echoed: {:?}", r.body_text()));
    }
    Ok(())
}

/// A request whose head announces a body of `announced` bytes and that
/// sends only `sent` of them.
fn post_short_body(target: &[u8], auth: Option<&str>, announced: usize, sent: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"POST ");
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    r.extend_from_slice(format!("User-Agent: {CHROME_UA}\r\n").as_bytes());
    if let Some(a) = auth {
        r.extend_from_slice(format!("Authorization: {a}\r\n").as_bytes());
    }
    r.extend_from_slice(format!("Content-Length: {announced}\r\n\r\n").as_bytes());
    r.extend_from_slice(sent);
    r
}

fn no_set_cookie_but_optout(r: &Reply) -> Result<(), String> {
    for c in r.header("set-cookie") {
        if !c.starts_with("sparsam_optout=") {
            return Err(format!("unexpected cookie {c:?}"));
        }
        if c.contains("evil") || c.contains("injected") {
            return Err(format!("attribute injected into {c:?}"));
        }
    }
    if r.head.to_lowercase().contains("injected") {
        return Err("injected header echoed".into());
    }
    Ok(())
}

fn no_cookie_at_all(r: &Reply) -> Result<(), String> {
    match r.header("set-cookie").as_slice() {
        [] => Ok(()),
        set => Err(format!("refused, yet set {set:?}")),
    }
}

/// Identifiers in URLs, titles and referrers of the rows for site `sink`:
/// none may be stored.
const ID_MAIL: &str = "hostile.mailmarker@example.com";
const ID_SESSION: &str = "sessionmarker0815";
const ID_HEX: &str = "c0ffee00c0ffee00c0ffee00";
const ID_UUID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const ID_BASE64: &str = "aGVsbG8xMjM0NTY3ODkwd29ybGQ";

fn no_injected_header(r: &Reply) -> Result<(), String> {
    if r.head.to_lowercase().contains("injected") {
        return Err(format!("injected text in head {:?}", r.head));
    }
    no_set_cookie_but_optout(r)
}

fn json_with_script_as_string(r: &Reply) -> Result<(), String> {
    if !r.header("content-type").iter().any(|c| c.contains("json")) {
        return Err("not JSON".into());
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let text = v.to_string();
    if !text.contains(SCRIPT_TITLE) {
        return Err(format!("title not returned as a JSON string: {text}"));
    }
    Ok(())
}

/// What the referrer report shows of `SCRIPT_REF`: its host, quotes and
/// all, as a value.
fn is_script_ref(s: &str) -> bool {
    s.trim_matches('"') == "x'-alert('ref')-'.example"
}

fn json_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(json_strings).collect(),
        Value::Object(o) => o.values().flat_map(json_strings).collect(),
        _ => Vec::new(),
    }
}

/// A report holding the script payload is data a browser never runs: a
/// JSON or CSV content type, `nosniff`, and no raw markup outside the
/// value.
fn script_ref_as_data(r: &Reply, kind: &str) -> Result<(), String> {
    if !r.header("content-type").iter().any(|c| c.contains(kind)) {
        return Err(format!("not {kind}: {:?}", r.header("content-type")));
    }
    if r.header("x-content-type-options") != ["nosniff"] {
        return Err("no X-Content-Type-Options: nosniff".into());
    }
    if r.body_text().contains("<script>alert('ref')") {
        return Err("the referrer's markup came back unescaped".into());
    }
    Ok(())
}

fn csv_neutralises_formulas(r: &Reply) -> Result<(), String> {
    let body = r.body_text();
    if !r.header("content-type").iter().any(|c| c.contains("csv")) {
        return Err("not CSV".into());
    }
    for term in FORMULA_TERMS {
        let start: String = term
            .trim_start_matches(['\t', '\r'])
            .chars()
            .take(4)
            .collect();
        if !body.contains(&start) {
            return Err(format!("term {term:?} missing from CSV {body:?}"));
        }
    }
    for field in body.split(['\n', ',']) {
        let field = field.trim_start_matches('"');
        if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            return Err(format!("field {field:?} starts with a formula character"));
        }
    }
    Ok(())
}

fn no_repo_file(r: &Reply) -> Result<(), String> {
    let body = r.body_text();
    for leak in ["[package]", "root:x:0", "admin_token", "fn main"] {
        if body.contains(leak) {
            return Err(format!("served a file outside the assets: {leak:?}"));
        }
    }
    Ok(())
}

fn table() -> Vec<Row> {
    use Expect::*;
    let big_field = "a".repeat(5000);
    let event = |extra: &str| {
        format!(r#"{{"site":"demo","url":"https://example.org/x"{extra}}}"#).into_bytes()
    };
    let sink = |extra: &str| {
        format!(r#"{{"site":"sink","url":"https://sink.example/x"{extra}}}"#).into_bytes()
    };
    let mut bad_utf8_json = br#"{"site":"demo","url":"https://example.org/"#.to_vec();
    bad_utf8_json.extend_from_slice(&[0xff, 0xc3]);
    bad_utf8_json.extend_from_slice(br#"","title":"x"}"#);
    let mut raw_bad_utf8_target = b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F".to_vec();
    raw_bad_utf8_target.extend_from_slice(&[0xff, 0xfe]);

    vec![
        // ---------------------------------------------------------- sizes
        row(
            "oversized beacon body",
            post(b"/api/event", &[JSON_CT], &vec![b' '; 200 * 1024]),
            Status(413, "body"),
        ),
        row(
            "oversized Matomo bulk body",
            post(b"/matomo.php", &[JSON_CT], &vec![b' '; 200 * 1024]),
            Status(413, "body"),
        ),
        row(
            "oversized URL field in pixel",
            get(
                format!("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F{big_field}").as_bytes(),
                &[],
            ),
            Status(413, "url"),
        ),
        row(
            "oversized request line",
            get(format!("/p.gif?site=demo&x={}", "a".repeat(200_000)).as_bytes(), &[]),
            OneOf(&[414, 431]),
        ),
        row(
            "oversized user agent",
            get(
                b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fua",
                &[("User-Agent", "Mozilla/5.0 ".repeat(1000).as_bytes())],
            ),
            Status(413, "user agent"),
        ),
        row(
            "oversized header",
            get(b"/healthz", &[("X-Junk", "j".repeat(200_000).as_bytes())]),
            OneOf(&[431]),
        ),
        row(
            "too many headers",
            {
                let mut r = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n".to_vec();
                for i in 0..200 {
                    r.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
                }
                r.extend_from_slice(b"\r\n");
                r
            },
            OneOf(&[400, 431]),
        ),
        // ------------------------------------------- encoding and UTF-8
        row(
            "pixel: percent-encoded invalid UTF-8",
            get(b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F%FF%FE", &[]),
            Status(400, "url"),
        ),
        row(
            "pixel: raw invalid UTF-8 in the query",
            get(&raw_bad_utf8_target, &[]),
            OneOf(&[400]),
        ),
        row(
            "pixel: broken percent-encoding",
            get(b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F%E0%A4%A", &[]),
            Status(400, "url"),
        ),
        row(
            "beacon: invalid UTF-8 in a JSON string",
            post(b"/api/event", &[JSON_CT], &bad_utf8_json),
            Status(400, "malformed"),
        ),
        row(
            "beacon: lone surrogate escape",
            post(b"/api/event", &[JSON_CT], &event(r#","title":"\ud800""#)),
            Status(400, "malformed"),
        ),
        row(
            "Matomo: percent-encoded invalid UTF-8",
            get(
                b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F%FF%FE",
                &[],
            ),
            Status(400, "utf-8"),
        ),
        row(
            "Matomo: broken percent-encoding",
            get(
                b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F%E0%A4%A",
                &[],
            ),
            Status(400, "utf-8"),
        ),
        row(
            "Matomo bulk: invalid UTF-8 in a request",
            post(
                b"/matomo.php",
                &[JSON_CT],
                br#"{"requests":["?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F%FF"]}"#,
            ),
            // The bulk answer reports each refused request, as Matomo does.
            Status(200, "\"invalid\":1"),
        ),
        // -------------------------------------------------------- numbers
        row(
            "beacon: huge dwell time",
            post(b"/api/event", &[JSON_CT], &event(r#","engaged_ms":1e30"#)),
            Status(400, "engaged_ms"),
        ),
        row(
            "beacon: negative search count",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","search":"x","results":-1"#),
            ),
            Status(400, "results"),
        ),
        row(
            "pixel: negative dwell time",
            get(b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F&engaged_ms=-5", &[]),
            Status(400, "engaged_ms"),
        ),
        row(
            "pixel: huge search count",
            get(
                b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F&search=x&results=99999999999999999999",
                &[],
            ),
            Status(400, "results"),
        ),
        row(
            "Matomo: huge search count",
            get(
                b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search=x&search_count=99999999999999",
                &[],
            ),
            Status(400, "search_count"),
        ),
        row(
            "beacon: dwell time at u32::MAX",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","kind":"ping","pv":"p1","engaged_ms":4294967295"#),
            ),
            Status(400, "engaged_ms"),
        ),
        row(
            "beacon: dwell time just above server.max_engaged_seconds",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","kind":"ping","pv":"p1","engaged_ms":86400001"#),
            ),
            Status(400, "engaged_ms"),
        ),
        row(
            "beacon: dwell time above u32::MAX",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","kind":"ping","pv":"p1","engaged_ms":4294967296"#),
            ),
            Status(400, "engaged_ms"),
        ),
        row(
            "beacon: negative dwell time",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","kind":"ping","pv":"p1","engaged_ms":-1"#),
            ),
            Status(400, "engaged_ms"),
        ),
        row(
            "pixel: dwell time at u32::MAX",
            get(
                b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F&kind=ping&pv=p1&engaged_ms=4294967295",
                &[],
            ),
            Status(400, "engaged_ms"),
        ),
        row(
            "Matomo bulk: search count above u32::MAX is refused per request",
            post(
                b"/matomo.php",
                &[JSON_CT],
                br#"{"requests":["?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search=x&search_count=4294967296"]}"#,
            ),
            Status(200, "\"invalid\":1"),
        ),
        row(
            "beacon: search count at u32::MAX is kept as a number",
            post(
                b"/api/event",
                &[JSON_CT],
                &sink(r#","kind":"search","search":"big","results":4294967295"#),
            ),
            Ignored,
        ),
        row(
            "beacon: search count above u32::MAX",
            post(
                b"/api/event",
                &[JSON_CT],
                &event(r#","kind":"search","search":"x","results":4294967296"#),
            ),
            Status(400, "results"),
        ),
        row(
            "pixel: search count at u32::MAX is kept as a number",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fbig&search=big&results=4294967295",
                &[],
            ),
            Ignored,
        ),
        row(
            "pixel: negative search count",
            get(
                b"/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F&search=x&results=-1",
                &[],
            ),
            Status(400, "results"),
        ),
        row(
            "Matomo: search count at u32::MAX is kept as a number",
            get(
                b"/matomo.php?idsite=2&rec=1&url=https%3A%2F%2Fsink.example%2Fbig&search=big&search_count=4294967295",
                &[],
            ),
            Ignored,
        ),
        row(
            "Matomo: search count above u32::MAX",
            get(
                b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search=x&search_count=4294967296",
                &[],
            ),
            Status(400, "search_count"),
        ),
        row(
            "Matomo: negative search count",
            get(
                b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search=x&search_count=-1",
                &[],
            ),
            Status(400, "search_count"),
        ),
        row(
            "Matomo: out-of-range h/m/s are ignored",
            get(
                b"/matomo.php?idsite=2&rec=1&url=https%3A%2F%2Fsink.example%2Fhms&h=99999999999&m=-7&s=1e9",
                &[],
            ),
            Ignored,
        ),
        row(
            "Matomo: forged timestamp is ignored (server time)",
            get(
                b"/matomo.php?idsite=2&rec=1&url=https%3A%2F%2Fsink.example%2Fcdt&cdt=-99999999999999&_idts=99999999999999999999",
                &[],
            ),
            Ignored,
        ),
        row(
            "beacon: client timestamp field is ignored (server time)",
            post(b"/api/event", &[JSON_CT], &sink(r#","ts":-1e300"#)),
            Ignored,
        ),
        row(
            "Matomo: huge idsite",
            get(b"/matomo.php?idsite=99999999999999999999&rec=1&url=https%3A%2F%2Fexample.org%2F", &[]),
            Status(400, "idsite"),
        ),
        // ------------------------------------------------- sites and hosts
        row(
            "unknown site (pixel)",
            get(b"/p.gif?site=nope&url=https%3A%2F%2Fexample.org%2F", &[]),
            Status(404, "unknown site"),
        ),
        row(
            "unknown site (Matomo)",
            get(b"/matomo.php?idsite=77&rec=1&url=https%3A%2F%2Fexample.org%2F", &[]),
            Status(404, "unknown site"),
        ),
        row(
            "host not allowed for the site (pixel)",
            get(b"/p.gif?site=demo&url=https%3A%2F%2Fsink.example%2F", &[]),
            Status(403, "not allowed"),
        ),
        row(
            "host not allowed for the site (Matomo)",
            get(b"/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fevil.example%2F", &[]),
            Status(403, "not allowed"),
        ),
        row(
            "spoofed Forwarded, X-Real-IP and X-Forwarded-For entries behind the proxy are ignored",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fxff",
                &[
                    ("Forwarded", b"for=198.51.100.24"),
                    ("X-Real-IP", b"198.51.100.25"),
                    ("X-Forwarded-For", b"198.51.100.23, 192.0.2.50"),
                ],
            ),
            Ignored,
        ),
        row(
            "spoofed X-Forwarded-For line before the proxy's own",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fxff-lines",
                &[
                    ("X-Forwarded-For", b"198.51.100.23"),
                    ("X-Forwarded-For", b"192.0.2.51"),
                ],
            ),
            Ignored,
        ),
        row(
            "garbage nearest hop in X-Forwarded-For: the proxy's peer counts",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fxff-garbage",
                &[("X-Forwarded-For", b"198.51.100.23, unknown, <script>")],
            ),
            Ignored,
        ),
        // ------------------------------------------------ identifying URLs
        row(
            "e-mail, path parameter, tokens and an unlisted utm_ parameter in URL, title, referrer",
            get(
                format!(
                    "/p.gif?site=sink&url={}&title={}&ref={}",
                    enc(&format!("https://sink.example/u/{ID_MAIL};jsessionid={ID_SESSION}/reset/{ID_HEX}?utm_source=nl&utm_id={ID_SESSION}&utm_content={ID_UUID}")),
                    enc(&format!("Konto {ID_MAIL} {ID_BASE64}")),
                    enc(&format!("https://mail.example/{ID_UUID}/{ID_MAIL}")),
                )
                .as_bytes(),
                &[],
            ),
            Ignored,
        ),
        row(
            "identifiers in a download link (beacon)",
            post(
                b"/api/event",
                &[JSON_CT],
                &sink(&format!(
                    r#","kind":"download","target":"https://sink.example/f/{ID_HEX}/{ID_MAIL}/a.pdf;jsessionid={ID_SESSION}""#
                )),
            ),
            Ignored,
        ),
        // ------------------------------------------------ cross-site opt-out
        checked(
            "opt-out post from another origin",
            post(
                b"/optout",
                &[
                    ("Content-Type", b"application/x-www-form-urlencoded"),
                    ("Origin", b"https://evil.example"),
                ],
                b"action=optout&lang=en",
            ),
            Status(403, "opt-out page"),
            no_cookie_at_all,
        ),
        checked(
            "opt-out post naming no origin",
            post(
                b"/optout",
                &[("Content-Type", b"application/x-www-form-urlencoded")],
                b"action=optin",
            ),
            Status(403, "opt-out page"),
            no_cookie_at_all,
        ),
        checked(
            "opt-out post with Origin: null (sandboxed frame, no-referrer page)",
            post(
                b"/optout",
                &[
                    ("Content-Type", b"application/x-www-form-urlencoded"),
                    ("Origin", b"null"),
                    ("Referer", b"http://localhost/optout"),
                ],
                b"action=optout",
            ),
            Status(403, "opt-out page"),
            no_cookie_at_all,
        ),
        // ------------------------------------------------ header injection
        checked(
            "opt-out page: CRLF in lang",
            get(b"/optout?lang=de%0d%0aX-Injected:%201", &[]),
            Ignored,
            no_injected_header,
        ),
        checked(
            "opt-out page: CRLF in Accept-Language",
            get(b"/optout", &[("Accept-Language", b"de;q=1, injected\x0bx")]),
            OneOf(&[200, 400]),
            no_injected_header,
        ),
        checked(
            "opt-out change: return, cookie name and attributes are not taken from params",
            post(
                b"/optout",
                &[
                    ("Content-Type", b"application/x-www-form-urlencoded"),
                    ("Origin", b"http://localhost"),
                ],
                b"action=optout&lang=en%0d%0aSet-Cookie:%20injected=1&return=https%3A%2F%2Fevil.example%2F%0d%0aX-Injected:1&name=injected&domain=evil.example",
            ),
            Ignored,
            |r| {
                no_injected_header(r)?;
                if r.header("location").iter().any(|l| l.contains("evil")) {
                    return Err("redirects to a foreign return URL".into());
                }
                Ok(())
            },
        ),
        checked(
            "pixel: CRLF in every echoed parameter",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fcrlf%0d%0aX-Injected:1&title=a%0d%0aX-Injected:1&callback=x%0d%0aX-Injected:1",
                &[],
            ),
            Ignored,
            no_injected_header,
        ),
        // ------------------------------------------------ script payloads
        checked(
            "API returns stored script payloads as JSON strings",
            get(b"/api/v1/sites/demo/breakdown/title?period=today", &[admin()]),
            Status(200, ""),
            json_with_script_as_string,
        ),
        checked(
            "API returns a script payload in the referrer as a JSON string",
            get(b"/api/v1/sites/demo/breakdown/referrer?period=today", &[admin()]),
            Status(200, ""),
            |r| {
                script_ref_as_data(r, "json")?;
                let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                if !json_strings(&v).iter().any(|s| is_script_ref(s)) {
                    return Err(format!("referrer not returned as a JSON string: {v}"));
                }
                Ok(())
            },
        ),
        checked(
            "CSV returns a script payload in the referrer as a field",
            get(
                b"/api/v1/sites/demo/breakdown/referrer?period=today&format=csv",
                &[admin()],
            ),
            Status(200, ""),
            |r| {
                script_ref_as_data(r, "csv")?;
                if !r.body_text().lines().any(|l| l.split(',').any(is_script_ref)) {
                    return Err(format!("referrer missing from CSV {:?}", r.body_text()));
                }
                Ok(())
            },
        ),
        checked(
            "CSV neutralises formula and control prefixes",
            get(
                b"/api/v1/sites/demo/breakdown/search_term?period=today&format=csv",
                &[admin()],
            ),
            Status(200, ""),
            csv_neutralises_formulas,
        ),
        checked(
            "error reason does not reflect markup unescaped as HTML",
            get(b"/api/v1/sites/%3Cscript%3Ealert(1)%3C%2Fscript%3E/summary", &[admin()]),
            Status(404, ""),
            |r| {
                if r.header("content-type").iter().any(|c| c.contains("html")) {
                    return Err("error answered as HTML".into());
                }
                Ok(())
            },
        ),
        // ------------------------------------------------ limits and secrets
        row(
            "beacon: body never completes within client_timeout_secs",
            post_short_body(b"/api/event", None, 500, br#"{"site":"sink","#),
            Status(408, "did not arrive"),
        ),
        row(
            "sweep without a token: refused before the announced body is read",
            post_short_body(b"/api/v1/sweep", None, 10_000_000, b""),
            Status(401, "authorization"),
        ),
        row(
            "sweep with a wrong token: refused before the announced body is read",
            post_short_body(
                b"/api/v1/sweep",
                Some("Bearer wrong-token-0123456789"),
                10_000_000,
                b"",
            ),
            Status(401, "authorization"),
        ),
        row(
            "metrics without a token",
            get(b"/metrics", &[]),
            Status(401, "authorization"),
        ),
        row(
            "metrics with a site's token",
            get(b"/metrics", &[("Authorization", format!("Bearer {SITE_TOKEN}").as_bytes())]),
            Status(403, "admin token"),
        ),
        checked(
            "marker as unknown site (pixel) is not echoed",
            get(b"/p.gif?site=echomarker4711&url=https%3A%2F%2Fexample.org%2F", &[]),
            Status(404, "unknown site"),
            no_marker,
        ),
        checked(
            "marker as unknown site (beacon) is not echoed",
            post(
                b"/api/event",
                &[JSON_CT],
                br#"{"site":"echomarker4711","url":"https://example.org/"}"#,
            ),
            Status(404, "unknown site"),
            no_marker,
        ),
        checked(
            "marker as Plausible domain is not echoed",
            post(
                b"/api/event",
                &[JSON_CT],
                br#"{"n":"pageview","u":"https://echomarker4711.example/","d":"echomarker4711.example"}"#,
            ),
            Status(404, "unknown site"),
            no_marker,
        ),
        checked(
            "marker as parameter name with invalid UTF-8 is not echoed",
            get(b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2F&echomarker4711=%FF", &[]),
            Status(400, "utf-8"),
            no_marker,
        ),
        checked(
            "marker as report period is not echoed",
            get(b"/api/v1/sites/demo/summary?period=echomarker4711", &[admin()]),
            Status(400, "unknown period"),
            no_marker,
        ),
        checked(
            "marker as report parameter name is not echoed",
            get(b"/api/v1/sites/demo/summary?echomarker4711=1", &[admin()]),
            Status(400, "unknown query parameter"),
            no_marker,
        ),
        checked(
            "marker as compare value is not echoed",
            get(b"/api/v1/sites/demo/summary?period=today&compare=echomarker4711", &[admin()]),
            Status(400, "compare"),
            no_marker,
        ),
        checked(
            "marker as timeseries interval is not echoed",
            get(
                b"/api/v1/sites/demo/timeseries?period=today&interval=echomarker4711",
                &[admin()],
            ),
            Status(400, "unknown interval"),
            no_marker,
        ),
        checked(
            "marker as breakdown dimension is not echoed",
            get(b"/api/v1/sites/demo/breakdown/echomarker4711?period=today", &[admin()]),
            Status(400, "unknown dimension"),
            no_marker,
        ),
        checked(
            "marker in a malformed filter is not echoed",
            get(b"/api/v1/sites/demo/summary?period=today&filter=echomarker4711", &[admin()]),
            Status(400, "filter"),
            no_marker,
        ),
        checked(
            "marker as filter dimension is not echoed",
            get(
                b"/api/v1/sites/demo/summary?period=today&filter=echomarker4711%3D%3Dx",
                &[admin()],
            ),
            Status(400, "filter"),
            no_marker,
        ),
        checked(
            "marker as a site another token may not read is not echoed",
            get(
                b"/api/v1/sites/echomarker4711/summary?period=today",
                &[("Authorization", format!("Bearer {SITE_TOKEN}").as_bytes())],
            ),
            OneOf(&[403, 404]),
            no_marker,
        ),
        // ------------------------------------------------- path traversal
        checked(
            "dashboard: ../ segments",
            get(b"/dashboard/../../Cargo.toml", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
        checked(
            "dashboard: encoded %2e%2e",
            get(b"/dashboard/%2e%2e/%2e%2e/Cargo.toml", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
        checked(
            "dashboard: encoded slash and dots",
            get(b"/dashboard/..%2f..%2fsrc%2fmain.rs", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
        checked(
            "dashboard: absolute path",
            get(b"/dashboard//etc/passwd", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
        checked(
            "tracker: /t.js/..",
            get(b"/t.js/../Cargo.toml", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
        checked(
            "tracker: /t.js/%2e%2e",
            get(b"/t.js/%2e%2e/%2e%2e/etc/passwd", &[]),
            OneOf(&[400, 404]),
            no_repo_file,
        ),
    ]
}

fn stored(store_path: &Path, site: &str) -> Vec<StoredEvent> {
    let store = Store::open(store_path, &StoreOptions::default()).expect("open store");
    let mut out = Vec::new();
    store
        .scan_events(site, 0, i64::MAX, |e| {
            out.push(e);
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn snapshot(s: &Server) -> (Value, Value, Value) {
    let c = client();
    let get = |path: &str| -> Value {
        let res = c
            .get(s.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .expect("report");
        assert_eq!(res.status(), 200, "{path}");
        res.json().expect("json")
    };
    (
        get("/api/v1/sites/demo/summary?period=today"),
        get("/api/v1/sites/demo/breakdown/page?period=today&limit=100"),
        get("/api/v1/sites/demo/breakdown/search_term?period=today&limit=100"),
    )
}

/// Stores the known data: plain pageviews plus script payloads in URL,
/// title, referrer and search terms.
fn store_known_data(s: &Server) -> usize {
    let c = client();
    // The page view with the script referrer comes first: the referrer
    // report counts the referrer a visit arrived with.
    let mut events = vec![
        json!({"site": "demo", "url": format!("https://example.org{SCRIPT_PATH}"),
               "title": SCRIPT_TITLE, "ref": SCRIPT_REF}),
        json!({"site": "demo", "url": "https://example.org/", "title": "Home"}),
        json!({"site": "demo", "url": "https://example.org/a", "title": "A"}),
    ];
    for term in FORMULA_TERMS {
        events.push(json!({"site": "demo", "kind": "search",
                           "url": "https://example.org/search", "search": term, "results": 0}));
    }
    let n = events.len();
    let res = c
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .json(&events)
        .send()
        .unwrap();
    assert!(res.status().is_success(), "known data: {}", res.status());
    // Reports read committed data; wait (bounded) until all of it is there.
    for _ in 0..100 {
        if stored_count_via_api(s) >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    n
}

fn stored_count_via_api(s: &Server) -> i64 {
    pageviews(s, "demo")
}

/// Sends every row to the server at `addr` and judges its answer: the
/// failures (one line each) and how many rows were ignored on purpose.
fn run_rows(addr: &str, rows: Vec<Row>) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut ignored = 0;
    for r in rows {
        let reply = send_raw(addr, &r.raw);
        let ok = match &r.expect {
            Expect::Status(code, needle) => {
                reply.status == *code
                    && reply
                        .body_text()
                        .to_lowercase()
                        .contains(&needle.to_lowercase())
                    && (reply.status < 400
                        || reply
                            .header("content-type")
                            .iter()
                            .any(|c| c.contains("json")))
            }
            Expect::OneOf(codes) => codes.contains(&reply.status),
            Expect::Ignored => {
                ignored += 1;
                (200..300).contains(&reply.status)
            }
        };
        if !ok {
            failures.push(format!(
                "{}: got {} {:?}",
                r.name,
                reply.status,
                reply.body_text().chars().take(200).collect::<String>()
            ));
        } else if let Some(check) = r.check {
            if let Err(e) = check(&reply) {
                failures.push(format!("{}: {e}", r.name));
            }
        }
    }
    (failures, ignored)
}

#[test]
fn hostile_rows_get_their_answer_and_harm_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start_config(tmp.path(), &config(&tmp.path().join("data")));
    let addr = s.base.trim_start_matches("http://").to_string();
    let known = store_known_data(&s);
    let before = snapshot(&s);
    assert_eq!(before.0["pageviews"], 3, "known data stored: {}", before.0);

    let (failures, ignored) = run_rows(&addr, table());
    assert!(failures.is_empty(), "rows failed:\n{}", failures.join("\n"));

    // The server still serves, and the known data is untouched.
    let health = client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(snapshot(&s), before, "stored data changed");
    assert!(!s.log().contains("panicked"), "a handler panicked");
    s.stop();

    let demo = stored(&s.store_path(), "demo");
    assert_eq!(demo.len(), known, "raw event count of demo changed");
    // The script referrer is stored as text, stripped like every URL.
    let script = demo.iter().find(|e| e.title == SCRIPT_TITLE).unwrap();
    assert_eq!(
        script.referrer.url,
        "https://x'-alert('ref')-'.example/%3Cscript%3Ealert('ref')%3C/script%3E"
    );
    // Rows that were ignored on purpose stored only harmless events: server
    // time and the peer's shortened address, never a forwarded one.
    let sink = stored(&s.store_path(), "sink");
    assert!(!sink.is_empty() && sink.len() <= ignored, "sink: {sink:?}");
    // the three "search count at u32::MAX" rows (beacon, pixel, Matomo)
    let big: Vec<_> = sink
        .iter()
        .filter(|e| e.kind == EventKind::Search && e.search_term == "big")
        .collect();
    assert_eq!(big.len(), 3, "searches for \"big\": {big:?}");
    assert!(
        big.iter().all(|e| e.search_results == Some(u32::MAX)),
        "{big:?}"
    );
    let now = chrono::Utc::now().timestamp_millis();
    for e in &sink {
        assert!(
            (now - 600_000..=now).contains(&e.ts_ms),
            "client time stored: {e:?}"
        );
        let ip = e.anon_ip.addr.to_string();
        assert!(
            ip == "127.0.0.0" || ip == "192.0.0.0",
            "an address the client wrote was stored: {ip}"
        );
        assert!(!e.url.contains('\r') && !e.url.contains('\n'), "{e:?}");
    }
    // The proxy's addresses were used where it wrote them (shortened).
    for (path, want) in [
        ("/xff", "192.0.0.0"),
        ("/xff-lines", "192.0.0.0"),
        ("/xff-garbage", "127.0.0.0"),
    ] {
        let e = sink
            .iter()
            .find(|e| e.url == format!("https://sink.example{path}"))
            .unwrap_or_else(|| panic!("{path} not stored: {sink:?}"));
        assert_eq!(e.anon_ip.addr.to_string(), want, "{path}");
    }
    // Identifiers became placeholders; the standard campaign parameters stay.
    let scrubbed = sink
        .iter()
        .find(|e| e.url.starts_with("https://sink.example/u/"))
        .expect("identifying page view stored");
    assert_eq!(
        scrubbed.url,
        "https://sink.example/u/:email/reset/:id?utm_source=nl&utm_content=%3Aid"
    );
    assert_eq!(scrubbed.title, "Konto :email :id");
    assert_eq!(scrubbed.referrer.url, "https://mail.example/:id/:email");
    assert!(
        sink.iter()
            .any(|e| e.target == "https://sink.example/f/:id/:email/a.pdf"
                && e.kind == EventKind::Download),
        "{sink:?}"
    );
    let bytes = std::fs::read(s.store_path()).unwrap();
    // addresses are stored in binary: look for the octets, and the text
    for forged in [
        "198.51.100.23",
        "198.51.100.24",
        "198.51.100.25",
        "192.0.2.50",
        "192.0.2.51",
    ] {
        let octets = forged.parse::<std::net::Ipv4Addr>().unwrap().octets();
        assert!(
            !contains_bytes(&bytes, &octets),
            "{forged} in the store (binary)"
        );
        assert!(
            !contains_bytes(&bytes, forged.as_bytes()),
            "{forged} in the store (text)"
        );
    }
    for marker in [
        "mailmarker",
        ID_SESSION,
        "c0ffee00c0ffee00",
        &ID_UUID[..8],
        ID_BASE64,
        "utm_id",
    ] {
        assert!(
            !contains_bytes(&bytes, marker.as_bytes()),
            "{marker} in the store"
        );
    }
}

/// The per-prefix limits by events and by bytes, as rows against a server
/// of their own with small budgets (every row of the main table comes
/// from one address and would share them). Each row names its prefix in
/// `X-Forwarded-For` (the peer is a trusted proxy here); rows of one
/// prefix run in order and spend its budget.
fn limit_config(data: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2
trusted_proxies = ["127.0.0.1/32"]
max_body_bytes = 8192
max_field_bytes = 8192
max_batch_events = 100
rate_limit_per_minute = 0
rate_limit_events_per_minute = 1
rate_limit_events_burst = 100
rate_limit_bytes_per_minute = 1
rate_limit_bytes_burst = 8192

[auth]
admin_token = "{ADMIN_TOKEN}"

[[sites]]
id = "sink"
matomo_id = 2
hostnames = ["sink.example"]
"#,
        data = data.display()
    )
}

fn bulk_of(n: usize) -> Vec<u8> {
    let requests: Vec<String> = (0..n)
        .map(|i| format!("?idsite=2&rec=1&url=https%3A%2F%2Fsink.example%2Fb{i}"))
        .collect();
    json!({ "requests": requests }).to_string().into_bytes()
}

fn retry_after(r: &Reply) -> Result<(), String> {
    match r.header("retry-after").first().map(|v| v.parse::<u64>()) {
        Some(Ok(secs)) if secs >= 1 => Ok(()),
        other => Err(format!("no Retry-After in seconds: {other:?}")),
    }
}

fn limit_table() -> Vec<Row> {
    use Expect::*;
    let from = |prefix: &'static [u8]| ("X-Forwarded-For", prefix);
    vec![
        row(
            "events: a bulk of 100 spends the whole burst",
            post(b"/matomo.php", &[from(b"203.0.113.1")], &bulk_of(100)),
            Status(200, "\"tracked\":100"),
        ),
        checked(
            "events: one more page view from that prefix",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Fone",
                &[from(b"203.0.113.1")],
            ),
            Status(429, "too many requests"),
            retry_after,
        ),
        checked(
            "events: a beacon of two from the same /16",
            post(
                b"/api/event",
                &[from(b"203.0.200.2"), JSON_CT],
                br#"[{"site":"sink","url":"https://sink.example/x"},{"site":"sink","url":"https://sink.example/y"}]"#,
            ),
            Status(429, "too many requests"),
            retry_after,
        ),
        row(
            "bytes: a body of 8,000 bytes fits the burst",
            post(
                b"/api/event",
                &[from(b"198.51.100.1"), JSON_CT],
                json!({"site": "sink", "url": format!("https://sink.example/{}", "p".repeat(7950))})
                    .to_string()
                    .as_bytes(),
            ),
            Status(202, "ok"),
        ),
        checked(
            "bytes: 300 more from that prefix do not",
            post(
                b"/api/event",
                &[from(b"198.51.100.1"), JSON_CT],
                json!({"site": "sink", "url": format!("https://sink.example/{}", "q".repeat(250))})
                    .to_string()
                    .as_bytes(),
            ),
            Status(429, "too many requests"),
            retry_after,
        ),
        checked(
            "bytes: a long query string counts as well",
            get(
                format!(
                    "/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2F{}",
                    "r".repeat(300)
                )
                .as_bytes(),
                &[from(b"198.51.100.1")],
            ),
            Status(429, "too many requests"),
            retry_after,
        ),
        row(
            "a fresh prefix is still served",
            get(
                b"/p.gif?site=sink&url=https%3A%2F%2Fsink.example%2Ffresh",
                &[from(b"192.0.2.1")],
            ),
            Ignored,
        ),
    ]
}

#[test]
fn limit_rows_get_their_answer_and_store_nothing_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start_config(tmp.path(), &limit_config(&tmp.path().join("data")));
    let addr = s.base.trim_start_matches("http://").to_string();
    let (failures, _) = run_rows(&addr, limit_table());
    assert!(failures.is_empty(), "rows failed:\n{}", failures.join("\n"));
    s.stop();
    // the bulk of 100, the 8,000-byte beacon and the fresh prefix's pixel
    assert_eq!(stored(&s.store_path(), "sink").len(), 102);
}

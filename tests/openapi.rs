//! The OpenAPI document (generated from the handlers and their types)
//! against the running server (over generated data of
//! the past two weeks and today's hits, so comparisons and lists have
//! content):
//!
//! - every implemented `/api/v1` route is documented and every documented
//!   path is implemented;
//! - every documented path answers each case with the one status that case
//!   must get (a good token 200, none or a wrong one 401, another site's
//!   token or a site token on an admin route 403, an unknown site 404, a
//!   bad parameter 400), and that status is documented;
//! - every value a documented parameter lists (periods, intervals,
//!   formats, compare, dimensions) is accepted;
//! - every JSON body is valid against the documented schema, walked in
//!   full (nested objects, arrays, required fields, types, enums, bounds,
//!   formats, null where the type allows it, `oneOf`) with undocumented
//!   fields refused.
//!
//! The schema walker is written here rather than taken from a crate such
//! as `jsonschema`: the subset of OpenAPI 3.1 schemas the generated
//! document uses is small (`$ref` into `components`, `type` as a name or a
//! list that may include "null", `oneOf` for optional references), and the
//! walker refuses any keyword it does not know, so a later change to the
//! generator or the types cannot slip past unchecked. It also stays free
//! of a large dependency tree on a shared build machine.

#[path = "report_support/mod.rs"]
mod support;

use serde_json::Value;
use support::*;

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut cur = doc;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            assert!(!cur.is_null(), "dangling $ref {r}");
            resolve(doc, cur)
        }
        None => v,
    }
}

/// Schema keywords the walker checks, and annotations it may ignore.
const KNOWN: [&str; 17] = [
    "type",
    "required",
    "properties",
    "additionalProperties",
    "propertyNames",
    "items",
    "enum",
    "minimum",
    "maximum",
    "format",
    "oneOf",
    "$ref",
    // annotations: nothing to check
    "description",
    "title",
    "default",
    "examples",
    "summary",
];

/// Whether `v` is of the named JSON Schema type.
fn of_type(v: &Value, ty: &str, at: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("{at}: unknown type {other}"),
    }
}

/// Whether string `s` or number `v` fits format `f`.
fn fits_format(f: &str, v: &Value, at: &str) -> bool {
    let int = |lo: i128, hi: i128| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
            .is_none_or(|n| (lo..=hi).contains(&n))
    };
    match (f, v) {
        ("date", Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        ("date-time", Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        ("int32", _) => int(i32::MIN.into(), i32::MAX.into()),
        ("int64", _) => int(i64::MIN.into(), i64::MAX.into()),
        ("uint8", _) => int(0, u8::MAX.into()),
        ("uint16", _) => int(0, u16::MAX.into()),
        ("uint32", _) => int(0, u32::MAX.into()),
        ("uint64", _) => int(0, u64::MAX.into()),
        ("double" | "float", _) => true,
        ("date" | "date-time", _) => true, // a non-string: the type check says so
        (other, _) => panic!("{at}: format {other} is not checked by this test's walker"),
    }
}

/// Validates `v` against an OpenAPI 3.1 schema (the subset the document
/// uses), collecting readable errors with the JSON path.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let Some(obj) = schema.as_object() else {
        errs.push(format!("{at}: schema is not an object: {schema}"));
        return;
    };
    for k in obj.keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "{at}: schema keyword `{k}` is not checked by this test's walker; teach it first"
        );
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        let matching = alternatives
            .iter()
            .filter(|alt| {
                let mut e = vec![];
                validate(doc, alt, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errs.push(format!(
                "{at}: {v} matches {matching} of the oneOf alternatives, not exactly one"
            ));
            return;
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts
            .iter()
            .map(|t| t.as_str().expect("type names are strings"))
            .collect(),
        Value::Null => vec![],
        other => panic!("{at}: type {other} is neither a name nor a list"),
    };
    if !types.is_empty() && !types.iter().any(|t| of_type(v, t, at)) {
        errs.push(format!("{at}: {v} is not of type {}", types.join(" or ")));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            errs.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if v.is_null() {
        return;
    }
    if let Some(x) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| x < m) {
            errs.push(format!(
                "{at}: {x} is below the minimum {}",
                schema["minimum"]
            ));
        }
        if schema["maximum"].as_f64().is_some_and(|m| x > m) {
            errs.push(format!(
                "{at}: {x} is above the maximum {}",
                schema["maximum"]
            ));
        }
    }
    if let Some(f) = schema["format"].as_str() {
        if !fits_format(f, v, at) {
            errs.push(format!("{at}: {v} is not a {f}"));
        }
    }
    if let Some(o) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let k = r.as_str().expect("required names are strings");
            if !o.contains_key(k) {
                errs.push(format!("{at}: required field `{k}` is missing"));
            }
        }
        let props = schema["properties"].as_object();
        let extra = &schema["additionalProperties"];
        for (k, x) in o {
            if let Some(names) = schema.get("propertyNames") {
                validate(
                    doc,
                    names,
                    &Value::from(k.as_str()),
                    &format!("{at}[key {k}]"),
                    errs,
                );
            }
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, x, &format!("{at}.{k}"), errs),
                None if extra.is_object() => validate(doc, extra, x, &format!("{at}.{k}"), errs),
                None if *extra == true => {}
                // a free-form object (only the document itself is one)
                None if props.is_none() && extra.is_null() => {}
                None => errs.push(format!("{at}: field `{k}` is not documented")),
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

fn spec() -> Value {
    serde_json::to_value(sparsam::http::openapi::document()).expect("the document is JSON")
}

#[test]
fn the_schema_walker_catches_what_it_should() {
    // Without this, a walker that accepts everything would pass the test
    // below.
    let doc = spec();
    let summary = &doc["components"]["schemas"]["Summary"];
    let good = serde_json::json!({
        "site": "demo", "from": "2026-11-01", "to": "2026-11-07", "timezone": "UTC",
        "filters": [], "source": "rollup", "visits": 1, "visitors": 1, "pageviews": 2,
        "downloads": 0, "outbound": 0, "searches": 0, "views_per_visit": 2.0,
        "bounce_rate": 0.0, "avg_dwell_seconds": 0.0
    });
    let mut errs = vec![];
    validate(&doc, summary, &good, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    let bad = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        let mut errs = vec![];
        validate(&doc, summary, &v, "$", &mut errs);
        errs
    };
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut Value));
    let cases: [Edit; 10] = [
        ("missing", &|v| {
            v.as_object_mut().unwrap().remove("visits");
        }),
        ("null where the type has no null", &|v| {
            v["visits"] = Value::Null
        }),
        ("null for an optional object", &|v| {
            v["compare"] = Value::Null
        }),
        ("type", &|v| v["pageviews"] = "2".into()),
        ("float for integer", &|v| v["visits"] = 1.5.into()),
        ("minimum", &|v| v["visits"] = (-1).into()),
        ("enum", &|v| v["source"] = "cache".into()),
        ("format", &|v| v["from"] = "01.11.2026".into()),
        ("undocumented", &|v| v["secret"] = 1.into()),
        ("nested", &|v| {
            v["compare"] = serde_json::json!({"from": "x"})
        }),
    ];
    for (name, edit) in cases {
        assert!(!bad(edit).is_empty(), "the walker missed a {name} error");
    }
    let row = &doc["components"]["schemas"]["Row"];
    let mut errs = vec![];
    let r = serde_json::json!({"value": "x", "pageviews": 1, "visits": 1, "events": 0,
        "share": 1.5, "change": null});
    validate(&doc, row, &r, "$", &mut errs);
    assert_eq!(
        errs.len(),
        1,
        "share above 1 and a change that may be null (OpenAPI 3.1: \"null\" in its type list): {errs:?}"
    );

    // A map's values are checked against `additionalProperties`, and a
    // date-typed string field against its format.
    let sweep = &doc["components"]["schemas"]["SweepReport"];
    let report = serde_json::json!({
        "dry_run": true, "cutoff_ms": 1, "rollup_cutoff_ms": null,
        "partitions_dropped": ["2026-11-01"], "partition_trimmed": null,
        "events_deleted": 0, "strings_deleted": 0, "rollup_rows_deleted": 0,
        "free_text_before": "2026-11-01", "free_text_rows_expired": 0,
        "free_text_expired_by_dimension": {"page": 2}, "free_text_rows_kept": 0,
        "vacuumed": false, "rollups_kept": ["2026-11-01"], "rollup_rows_written": 0
    });
    let mut errs = vec![];
    validate(&doc, sweep, &report, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    for (name, edit) in [
        (
            "map value of the wrong type",
            (
                "free_text_expired_by_dimension",
                serde_json::json!({"page": "2"}),
            ),
        ),
        (
            "date list",
            ("partitions_dropped", serde_json::json!(["yesterday"])),
        ),
        (
            "null or date",
            ("partition_trimmed", serde_json::json!("soon")),
        ),
        ("boolean", ("vacuumed", serde_json::json!(1))),
    ] {
        let mut v = report.clone();
        v[edit.0] = edit.1;
        let mut errs = vec![];
        validate(&doc, sweep, &v, "$", &mut errs);
        assert!(!errs.is_empty(), "the walker missed a {name} error");
    }
}

/// One request and the single status it must get.
struct Case {
    url: String,
    token: Option<&'static str>,
    status: u16,
    /// For 200: the media type that must come back.
    media: &'static str,
}

/// A valid value of every query parameter of the reporting API.
const REPORT_PARAMETER_SAMPLES: [(&str, &str); 10] = [
    ("from", "2026-01-01"),
    ("to", "2026-01-02"),
    ("period", "7d"),
    ("compare", "previous"),
    ("interval", "day"),
    ("limit", "5"),
    ("offset", "1"),
    ("filter", "browser%3D%3DFirefox"),
    ("name", "signup"),
    ("format", "json"),
];

fn case(url: String, token: Option<&'static str>, status: u16) -> Case {
    Case {
        url,
        token,
        status,
        media: "application/json",
    }
}

fn with(url: &str, q: &str) -> String {
    format!("{url}{}{q}", if url.contains('?') { '&' } else { '?' })
}

#[test]
fn openapi_document_matches_the_server() {
    let past = seeded(14, 8, 3);
    let s = Server::start_seeded(past.events);
    seed(&s);
    let res = s.get("/api/v1/openapi.json", None);
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().expect("openapi is JSON");
    assert_eq!(doc, spec(), "the server serves the generated document");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "an OpenAPI 3.1 document: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");

    // Routes registered anywhere under src/http: every `"/api/v1...`
    // string literal there must be documented, and vice versa.
    let mut implemented: Vec<String> = sparsam::http::report::ROUTES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let http_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(&http_dir).expect("src/http") {
        let src = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
        for piece in src.split("\"/api/v1").skip(1) {
            let rest: String = piece.chars().take_while(|c| *c != '"').collect();
            implemented.push(format!("/api/v1{rest}"));
        }
    }
    for r in &implemented {
        assert!(
            paths.contains_key(r),
            "route {r} in src/http is missing from the OpenAPI document"
        );
    }
    for p in paths.keys() {
        assert!(
            implemented.contains(p),
            "documented path {p} is not implemented"
        );
    }

    let today = support::workload::today(&"Europe/Berlin".parse().unwrap());
    let mut checked = 0;
    let mut validated = 0;
    let mut errors: Vec<String> = vec![];
    for (path, item) in paths {
        let methods: Vec<&String> = item.as_object().expect("path item").keys().collect();
        if let Some(op) = item.get("post") {
            assert_eq!(methods, ["post"], "{path}: GET and POST on one path");
            checked += check_post(&s, &doc, path, op);
            continue;
        }
        let op = &item["get"];
        assert!(op.is_object(), "{path}: only GET and POST are implemented");
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|a| a.iter().map(|p| resolve(&doc, p)).collect())
            .unwrap_or_default();
        let param = |name: &str| params.iter().find(|p| p["name"] == name).copied();
        let enum_of = |name: &str| -> Vec<String> {
            param(name)
                .and_then(|p| p["schema"]["enum"].as_array())
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let public = op["security"].as_array().is_some_and(|a| a.is_empty());
        let admin_only = op["responses"]["403"]["$ref"]
            .as_str()
            .is_some_and(|r| r.ends_with("/AdminOnly"));
        let per_site = path.contains("{site}");
        let mut dims = enum_of("dimension");
        if dims.is_empty() {
            dims.push(String::new());
        }
        for dim in dims {
            let url = path.replace("{site}", "demo").replace("{dimension}", &dim);
            let mut cases: Vec<Case> = vec![];
            if public {
                cases.push(case(url.clone(), None, 200));
            } else {
                cases.push(case(url.clone(), None, 401));
                cases.push(case(url.clone(), Some("not-a-valid-token-000000"), 401));
                cases.push(case(url.clone(), Some(ADMIN), 200));
                cases.push(case(
                    url.clone(),
                    Some(DEMO),
                    if admin_only { 403 } else { 200 },
                ));
                if per_site {
                    cases.push(case(url.clone(), Some(OTHER), 403));
                    cases.push(case(
                        url.replacen("/demo/", "/nosuchsite/", 1),
                        Some(ADMIN),
                        404,
                    ));
                }
            }
            if !params.is_empty() {
                cases.push(case(with(&url, "no_such_parameter=1"), Some(ADMIN), 400));
            }
            // Every listed value of every documented parameter is accepted;
            // a wrong value is refused.
            let ok = |q: &str| case(with(&url, q), Some(ADMIN), 200);
            let refused = |q: &str| case(with(&url, q), Some(ADMIN), 400);
            for f in enum_of("format") {
                let mut c = ok(&format!("format={f}"));
                if f == "csv" {
                    c.media = "text/csv";
                }
                cases.push(c);
            }
            if param("format").is_some() {
                cases.push(refused("format=bogus"));
            }
            for p in enum_of("period") {
                cases.push(ok(&format!("period={p}")));
            }
            if param("period").is_some() {
                cases.push(refused("period=bogus"));
                cases.push(ok(&format!(
                    "from={}&to={today}",
                    today - chrono::Duration::days(3)
                )));
                cases.push(refused("from=2026-13-01"));
            }
            for c in enum_of("compare") {
                cases.push(ok(&format!("period=7d&compare={c}")));
                cases.push(ok(&format!(
                    "period=7d&compare={c}&filter=browser%3D%3DFirefox&format=json"
                )));
            }
            if param("compare").is_some() {
                cases.push(refused("compare=bogus"));
            }
            // A reporting parameter this route does not document is
            // refused, with a valid value, rather than ignored.
            for p in &params {
                let name = p["name"].as_str().unwrap_or_default();
                assert!(
                    p["in"] != "query" || REPORT_PARAMETER_SAMPLES.iter().any(|(n, _)| *n == name),
                    "{path}: query parameter {name} has no sample value in this test"
                );
            }
            if !params.is_empty() {
                for (name, value) in REPORT_PARAMETER_SAMPLES {
                    if param(name).is_none() {
                        cases.push(refused(&format!("{name}={value}")));
                    }
                }
            }
            for i in enum_of("interval") {
                cases.push(ok(&format!("period=7d&interval={i}")));
            }
            if param("interval").is_some() {
                cases.push(refused("interval=minute"));
            }
            if let Some(l) = param("limit") {
                let max = l["schema"]["maximum"].as_u64().expect("limit maximum");
                cases.push(ok(&format!("limit={max}&offset=1")));
                cases.push(refused(&format!("limit={}", max + 1)));
            }
            if param("filter").is_some() {
                cases.push(ok("filter=browser%3D%3DFirefox&filter=page%3D~example"));
                cases.push(refused("filter=bad"));
            }
            for c in cases {
                let r = s.get(&c.url, c.token);
                let status = r.status().as_u16();
                let ctype = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = r.text().unwrap();
                checked += 1;
                let who = c.token.unwrap_or("no token");
                if status != c.status {
                    errors.push(format!(
                        "GET {} ({who}): {status}, expected {}: {}",
                        c.url,
                        c.status,
                        body.chars().take(200).collect::<String>()
                    ));
                    continue;
                }
                let Some(resp) = op["responses"].get(status.to_string()) else {
                    errors.push(format!("GET {}: status {status} is not documented", c.url));
                    continue;
                };
                let resp = resolve(&doc, resp);
                let media = ctype.split(';').next().unwrap_or("").trim().to_string();
                if status == 200 && media != c.media {
                    errors.push(format!("GET {}: {media}, expected {}", c.url, c.media));
                }
                let Some(content) = resp["content"].get(&media) else {
                    errors.push(format!(
                        "GET {}: content type {ctype} not documented for {status}",
                        c.url
                    ));
                    continue;
                };
                if media == "application/json" {
                    let v: Value = match serde_json::from_str(&body) {
                        Ok(v) => v,
                        Err(e) => {
                            errors.push(format!("GET {}: not JSON ({e})", c.url));
                            continue;
                        }
                    };
                    let before = errors.len();
                    validate(&doc, &content["schema"], &v, "$", &mut errors);
                    for e in &mut errors[before..] {
                        *e = format!("GET {} ({status}): {e}", c.url);
                    }
                    validated += 1;
                    if c.url.contains("compare=previous")
                        && status == 200
                        && v.get("compare").is_none()
                    {
                        errors.push(format!("GET {}: no `compare` in {v}", c.url));
                    }
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} disagreements with the document in {checked} requests (first 80):\n  {}",
        errors.len(),
        errors[..errors.len().min(80)].join("\n  ")
    );
    assert!(checked > 500, "only {checked} requests checked");
    assert!(validated > 400, "only {validated} bodies validated");
    eprintln!("{checked} requests checked, {validated} JSON bodies validated");
}

/// A POST operation (admin only, no body): no token and a bad token get
/// 401, a site token 403, the admin token 200 with a dry run (so the check
/// changes nothing) and 400 for a bad value; every answer documented.
fn check_post(s: &Server, doc: &Value, path: &str, op: &Value) -> usize {
    let params: Vec<&Value> = op["parameters"]
        .as_array()
        .map(|a| a.iter().map(|p| resolve(doc, p)).collect())
        .unwrap_or_default();
    let flag = params
        .iter()
        .find(|p| p["schema"]["type"] == "boolean")
        .and_then(|p| p["name"].as_str())
        .unwrap_or("dry_run");
    let cases: Vec<(String, Option<&str>, u16)> = vec![
        (path.to_string(), None, 401),
        (path.to_string(), Some("not-a-valid-token-000000"), 401),
        (format!("{path}?{flag}=true"), Some(DEMO), 403),
        (format!("{path}?{flag}=true"), Some(ADMIN), 200),
        (format!("{path}?{flag}=bogus"), Some(ADMIN), 400),
    ];
    for (u, tok, want) in &cases {
        let mut r = reqwest::blocking::Client::new().post(s.url(u));
        if let Some(t) = tok {
            r = r.bearer_auth(t);
        }
        let r = r.send().expect("request");
        let status = r.status().as_u16();
        assert_eq!(status, *want, "POST {u}");
        let resp = resolve(doc, &op["responses"][status.to_string()]);
        assert!(resp.is_object(), "POST {u}: {status} is not documented");
        let body: Value = r.json().expect("JSON body");
        let mut errs = Vec::new();
        validate(
            doc,
            &resp["content"]["application/json"]["schema"],
            &body,
            "$",
            &mut errs,
        );
        assert!(errs.is_empty(), "POST {u}: {errs:?}\n{body}");
    }
    cases.len()
}

/// Every operation that takes a token can answer 429 (too many wrong
/// tokens from the caller's address prefix, with `Retry-After`), and every
/// operation that reads a body can answer 408 (a body slower than
/// `server.client_timeout_secs`): both are documented where they occur.
#[test]
fn lockout_and_slow_body_answers_are_documented() {
    let doc = spec();
    let mut token_operations = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let responses = &op["responses"];
            if responses.get("401").is_some() {
                token_operations += 1;
                let locked = resolve(&doc, &responses["429"]);
                assert!(
                    locked["headers"]["Retry-After"].is_object(),
                    "{method} {path}: 429 with Retry-After is not documented"
                );
                assert!(
                    locked["content"]["application/json"].is_object(),
                    "{method} {path}: the 429 body is not documented"
                );
            }
            if method == "post" {
                assert!(
                    resolve(&doc, &responses["408"])["content"]["application/json"].is_object(),
                    "{method} {path}: 408 for a slow body is not documented"
                );
            }
        }
    }
    assert!(
        token_operations >= 7,
        "only {token_operations} token operations"
    );
}

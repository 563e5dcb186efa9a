//! The OpenAPI document against the running server: every documented path
//! answers with a documented status (with a good token, without one, with
//! another site's token, and with a bad parameter), 200 bodies carry the
//! documented required fields, and every implemented `/api/v1` route is in
//! the document.

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
            cur
        }
        None => v,
    }
}

#[test]
fn openapi_document_matches_the_server() {
    let s = Server::start();
    seed(&s);
    let res = s.get("/api/v1/openapi.json", None);
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().expect("openapi is JSON");
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(sparsam::http::report::OPENAPI).unwrap()
    );
    let paths = doc["paths"].as_object().expect("paths");

    for r in sparsam::http::report::ROUTES {
        assert!(
            paths.contains_key(r),
            "implemented route {r} missing from the OpenAPI document"
        );
    }
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

    let mut checked = 0;
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
        let dims: Vec<String> = params
            .iter()
            .find(|p| p["name"] == "dimension")
            .and_then(|p| p["schema"]["enum"].as_array())
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_else(|| vec![String::new()]);
        for dim in dims {
            let url = path.replace("{site}", "demo").replace("{dimension}", &dim);
            let documented = |status: u16| op["responses"].get(status.to_string()).is_some();
            let public = op["security"].as_array().is_some_and(|a| a.is_empty());
            let mut cases: Vec<(String, Option<&str>)> = vec![(url.clone(), Some(DEMO))];
            if !public {
                cases.push((url.clone(), None));
                cases.push((url.clone(), Some("not-a-valid-token-000000")));
                if !path.contains("{site}") {
                    cases.push((url.clone(), Some(ADMIN)));
                }
                if path.contains("{site}") {
                    cases.push((url.clone(), Some(OTHER)));
                    cases.push((url.replacen("/demo/", "/nosuchsite/", 1), Some(ADMIN)));
                }
                cases.push((format!("{url}?format=bogus"), Some(DEMO)));
            }
            if params.iter().any(|p| p["name"] == "period") {
                cases.push((format!("{url}?period=7d&format=csv"), Some(DEMO)));
                cases.push((format!("{url}?period=bogus"), Some(DEMO)));
                cases.push((format!("{url}?filter=browser%3D%3DFirefox"), Some(DEMO)));
                cases.push((format!("{url}?filter=bad"), Some(DEMO)));
            }
            for (u, tok) in cases {
                let r = s.get(&u, tok);
                let status = r.status().as_u16();
                assert!(
                    documented(status),
                    "GET {u} answered {status}, which is not documented"
                );
                let ctype = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = r.text().unwrap();
                let resp = resolve(&doc, &op["responses"][status.to_string()]);
                let media = ctype.split(';').next().unwrap_or("").to_string();
                assert!(
                    resp["content"].get(&media).is_some(),
                    "GET {u}: content type {ctype} not documented for {status}"
                );
                if media == "application/json" {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let schema = resolve(&doc, &resp["content"][&media]["schema"]);
                    for req in schema["required"].as_array().into_iter().flatten() {
                        let k = req.as_str().unwrap();
                        assert!(
                            v.get(k).is_some(),
                            "GET {u}: field {k} documented as required is missing: {v}"
                        );
                    }
                    for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
                        if schema["properties"].is_object() {
                            assert!(
                                schema["properties"].get(k).is_some(),
                                "GET {u}: field {k} not documented"
                            );
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} requests checked");
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
        let schema = resolve(doc, &resp["content"]["application/json"]["schema"]);
        for req in schema["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap();
            assert!(body.get(k).is_some(), "POST {u}: field {k} missing: {body}");
        }
        for k in body.as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(
                schema["properties"].get(k).is_some(),
                "POST {u}: field {k} not documented"
            );
        }
    }
    cases.len()
}

//! Declared custom events, goals and funnels end to end: every protocol
//! sends custom events to a running server over HTTP, the store file is
//! scanned for what must not be there, and the goals and funnel reports
//! are checked against visits whose outcome is known.

mod common;

use common::{client, enc, metrics, test_config, Server, ADMIN_TOKEN};
use sparsam::goals::CustomEvent;
use sparsam::model::EventKind;

const DECLARATIONS: &str = r#"
[[sites.events]]
name = "signup"
props = { plan = { max_len = 8, values = ["free", "pro"] }, note = { max_len = 12 } }

[[sites.events]]
name = "Video/Play"
props = { name = { max_len = 32 } }

[[sites.goals]]
name = "Signed up"
event = "signup"
matomo_id = 4

[[sites.goals]]
name = "Pro sign-up"
event = "signup"
props = { plan = "pro" }

[[sites.goals]]
name = "Read the guide"
path = "/guide/*"

[[sites.funnels]]
name = "Sign-up flow"
steps = ["path:/pricing", "path:/signup", "event:signup"]
"#;

/// The test config with the declarations above under site `demo`.
fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let base = test_config(&dir.path().join("data"), "", "");
    let other = "\n[[sites]]\nid = \"other\"";
    assert!(base.contains(other));
    let config = base.replacen(other, &format!("{DECLARATIONS}{other}"), 1);
    let server = Server::start_config(dir.path(), &config);
    (dir, server)
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

fn get(server: &Server, path: &str, ua: &str) -> u16 {
    client()
        .get(server.url(path))
        .header("user-agent", ua)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn post(server: &Server, body: &str, ua: &str) -> u16 {
    client()
        .post(server.url("/api/event"))
        .header("user-agent", ua)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn custom_events_from_every_protocol_keep_only_what_is_declared() {
    let (_dir, mut server) = start();
    let page = enc("http://127.0.0.1/signup");
    // the pixel: e, props, revenue
    let props = enc(r#"{"plan":"pro","note":"write me@mail.example","email":"leak-4712"}"#);
    assert_eq!(
        get(
            &server,
            &format!("/p.gif?site=demo&url={page}&e=signup&props={props}&revenue=9.90"),
            UA
        ),
        200
    );
    // the beacon (the tracker's format)
    assert_eq!(
        post(
            &server,
            r#"{"site":"demo","kind":"event","url":"http://127.0.0.1/signup","event":"signup","props":{"plan":"gold-4713"}}"#,
            UA
        ),
        202
    );
    // Matomo trackEvent and trackGoal
    assert_eq!(
        get(
            &server,
            &format!(
                "/matomo.php?idsite=1&rec=1&ca=1&url={page}&e_c=Video&e_a=Play&e_n=Intro&e_v=2"
            ),
            UA
        ),
        200
    );
    assert_eq!(
        get(
            &server,
            &format!("/matomo.php?idsite=1&rec=1&url={page}&idgoal=4&revenue=19.99"),
            UA
        ),
        200
    );
    // Plausible, the script's short names and the Events API's full names
    assert_eq!(
        post(
            &server,
            r#"{"n":"signup","u":"http://127.0.0.1/signup","d":"127.0.0.1","p":{"plan":"free"},"$":{"amount":"5","currency":"EUR"}}"#,
            UA
        ),
        202
    );
    assert_eq!(
        post(
            &server,
            r#"{"name":"signup","url":"http://127.0.0.1/signup","domain":"127.0.0.1","props":{"plan":"pro"}}"#,
            UA
        ),
        202
    );
    // undeclared events, by every way in: answered alike, never stored
    let marker = "secret-undeclared-4711";
    assert_eq!(
        get(
            &server,
            &format!("/p.gif?site=demo&url={page}&e={marker}"),
            UA
        ),
        200
    );
    assert_eq!(
        post(
            &server,
            &format!(r#"{{"site":"demo","url":"http://127.0.0.1/","event":"{marker}"}}"#),
            UA
        ),
        202
    );
    assert_eq!(
        post(
            &server,
            &format!(r#"{{"n":"{marker}","u":"http://127.0.0.1/","d":"127.0.0.1"}}"#),
            UA
        ),
        202
    );
    assert_eq!(
        get(
            &server,
            &format!("/matomo.php?idsite=1&rec=1&url={page}&e_c=X&e_a={marker}"),
            UA
        ),
        200
    );
    // a goal id no goal declares
    assert_eq!(
        get(
            &server,
            &format!("/matomo.php?idsite=1&rec=1&url={page}&idgoal=99"),
            UA
        ),
        200
    );
    // a malformed amount is the client's error
    assert_eq!(
        get(
            &server,
            &format!("/p.gif?site=demo&url={page}&e=signup&revenue=lots"),
            UA
        ),
        400
    );
    let m = metrics(&server);
    for line in [
        "sparsam_hits_total{outcome=\"undeclared_event\"} 4",
        "sparsam_custom_refused_total{reason=\"undeclared_event\"} 4",
        "sparsam_custom_refused_total{reason=\"undeclared_prop\"} 1",
        "sparsam_custom_refused_total{reason=\"value_not_listed\"} 1",
        "sparsam_custom_refused_total{reason=\"unknown_goal\"} 1",
    ] {
        assert!(m.contains(line), "{line}\n{m}");
    }

    server.stop();
    let bytes = std::fs::read(server.store_path()).unwrap();
    for leaked in [marker, "leak-4712", "gold-4713", "me@mail.example"] {
        assert!(
            !common::contains_bytes(&bytes, leaked.as_bytes()),
            "{leaked} is in the store file"
        );
    }
    let seen: Vec<CustomEvent> = common::stored_events(&server.store_path())
        .into_iter()
        .filter(|e| e.kind == EventKind::Custom)
        .map(|e| e.custom.expect("a custom event carries its name"))
        .collect();
    let event = |name: &str, props: &[(&str, &str)], revenue_cents: i64| CustomEvent {
        name: name.to_string(),
        props: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        revenue_cents,
    };
    assert_eq!(
        seen,
        vec![
            event("signup", &[("note", "write :email"), ("plan", "pro")], 990),
            event("signup", &[], 0),
            event("Video/Play", &[("name", "Intro")], 200),
            event("signup", &[], 1999),
            event("signup", &[("plan", "free")], 500),
            event("signup", &[("plan", "pro")], 0),
        ]
    );
}

/// Five visits with known outcomes: A (Firefox) pricing, form, sign-up
/// (pro, 9.90); B (Chrome) pricing and form; C (Chrome) pricing only; D
/// (Chrome) form and sign-up (free) without the pricing page; E (Firefox)
/// a guide page.
fn seed_visits(server: &Server) {
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";
    let firefox_b =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
    let chrome = |v: u32| {
        format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36")
    };
    let view = |ua: &str, path: &str| {
        let body = format!(r#"{{"site":"demo","kind":"pageview","url":"http://127.0.0.1{path}"}}"#);
        assert_eq!(post(server, &body, ua), 202);
    };
    let signup = |ua: &str, plan: &str, revenue: &str| {
        let body = format!(
            r#"{{"site":"demo","url":"http://127.0.0.1/signup","event":"signup","props":{{"plan":"{plan}"}}{revenue}}}"#
        );
        assert_eq!(post(server, &body, ua), 202);
    };
    // visitor A (Firefox): the whole flow, paying
    view(firefox, "/pricing");
    view(firefox, "/signup");
    signup(firefox, "pro", r#","revenue":9.9"#);
    // B (Chrome): pricing and the form, no sign-up
    view(&chrome(124), "/pricing");
    view(&chrome(124), "/signup");
    // C (Chrome): pricing only
    view(&chrome(123), "/pricing");
    // D (Chrome): signs up without seeing the pricing page first
    view(&chrome(122), "/signup");
    signup(&chrome(122), "free", "");
    // E (Firefox): reads the guide
    view(firefox_b, "/guide/intro");
}

#[test]
fn goals_and_funnels_count_visits_with_filters() {
    let (_dir, server) = start();
    seed_visits(&server);
    let goals = common::admin_json(&server, "/api/v1/sites/demo/goals?period=today");
    assert_eq!(goals["visits"], 5, "{goals}");
    let rows = goals["rows"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["goal"] == name).unwrap().clone();
    assert_eq!(row("Signed up")["conversions"], 2, "{goals}");
    assert_eq!(row("Signed up")["visitors"], 2);
    assert_eq!(row("Signed up")["conversion_rate"], 0.4);
    assert_eq!(row("Signed up")["revenue"], 9.9);
    assert_eq!(row("Pro sign-up")["conversions"], 1);
    assert_eq!(row("Read the guide")["conversions"], 1);
    assert!(row("Read the guide").get("revenue").is_none(), "{goals}");

    // with a filter: the two Firefox visits only
    let filter = enc("browser==Firefox");
    let goals = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/goals?period=today&filter={filter}"),
    );
    assert_eq!(goals["visits"], 2, "{goals}");
    let rows = goals["rows"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["goal"] == name).unwrap().clone();
    assert_eq!(row("Signed up")["conversions"], 1, "{goals}");
    assert_eq!(row("Signed up")["conversion_rate"], 0.5);
    assert_eq!(row("Read the guide")["conversions"], 1);

    let name = enc("Sign-up flow");
    let funnel = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/funnel?period=today&name={name}"),
    );
    let steps: Vec<(String, u64, u64)> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["visits"].as_u64().unwrap(),
                s["dropoff"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("path:/pricing".to_string(), 3, 0),
            ("path:/signup".to_string(), 2, 1),
            ("event:signup".to_string(), 1, 1),
        ],
        "{funnel}"
    );
    assert_eq!(funnel["entered"], 3);
    assert_eq!(funnel["completed"], 1);

    let funnel = common::admin_json(
        &server,
        &format!(
            "/api/v1/sites/demo/funnel?period=today&name={name}&filter={}",
            enc("browser!=Firefox")
        ),
    );
    let visits: Vec<u64> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["visits"].as_u64().unwrap())
        .collect();
    assert_eq!(visits, vec![2, 1, 0], "{funnel}");

    // CSV of both
    let csv = client()
        .get(server.url("/api/v1/sites/demo/goals?period=today&format=csv"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        csv.starts_with("goal,conversions,visitors,conversion_rate,revenue\r\n"),
        "{csv}"
    );
    assert!(csv.contains("Signed up,2,2,0.4000,9.90\r\n"), "{csv}");
    let csv = client()
        .get(server.url(&format!(
            "/api/v1/sites/demo/funnel?period=today&name={name}&format=csv"
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(csv.contains("path:/signup,2,1,0.3333\r\n"), "{csv}");

    // refusals name what is wrong
    for (path, why) in [
        (
            "/api/v1/sites/demo/funnel?period=today&name=nope",
            "Sign-up flow",
        ),
        (
            "/api/v1/sites/demo/goals?period=today&compare=previous",
            "compare",
        ),
    ] {
        let res = client()
            .get(server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let body = res.text().unwrap();
        assert!(body.contains(why), "{path}: {body}");
    }
}

#[test]
fn goals_table_and_funnel_chart_in_chromium() {
    let node_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        node_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/node first (playwright-core is missing)"
    );
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("test-output").join("goals_dashboard.png"))
        .expect("target dir");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let (_dir, server) = start();
    seed_visits(&server);
    let out = std::process::Command::new("node")
        .arg(node_dir.join("goals_dashboard.mjs"))
        .current_dir(&node_dir)
        .env("SPARSAM_BASE", server.url(""))
        .env("SPARSAM_TOKEN", ADMIN_TOKEN)
        .env("SPARSAM_SHOT", &shot)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("node printed no JSON report: {stdout}"));
    assert!(out.status.success() && v["ok"] == true, "{}", v["error"]);
    // the panels showed the known outcomes, not just what the API said
    assert_eq!(
        v["unfiltered"]["steps"],
        serde_json::json!([
            ["1. path:/pricing", 3, 0],
            ["2. path:/signup", 2, 1],
            ["3. event:signup", 1, 1]
        ]),
        "{v}"
    );
    assert_eq!(
        v["filtered"]["steps"],
        serde_json::json!([
            ["1. path:/pricing", 1, 0],
            ["2. path:/signup", 1, 0],
            ["3. event:signup", 1, 0]
        ]),
        "{v}"
    );
    assert!(v["checks"].as_u64().unwrap_or(0) >= 5, "{v}");
}

#[test]
fn privacy_notice_lists_each_declared_event_and_property() {
    let (_dir, server) = start();
    for (lang, refused) in [
        ("en", "discarded on receipt"),
        ("de", "beim Empfang verworfen"),
    ] {
        let page = client()
            .get(server.url(&format!("/privacy?lang={lang}")))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(page.contains("id=\"data-custom-events\""), "{lang}: {page}");
        assert!(page.contains("id=\"custom-events\""), "{lang}");
        assert!(page.contains(refused), "{lang}");
        let rows: Vec<&str> = page
            .split("<tr class=\"custom-event\">")
            .skip(1)
            .map(|r| r.split("</tr>").next().unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "{lang}: {rows:?}");
        assert!(rows[0].contains("<code>signup</code>"), "{}", rows[0]);
        assert!(rows[0].contains("<code>plan</code>"), "{}", rows[0]);
        assert!(rows[0].contains(" 8)"), "{}", rows[0]);
        assert!(
            rows[0].contains("<code>free</code>, <code>pro</code>"),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains("<code>note</code>"), "{}", rows[0]);
        assert!(rows[1].contains("<code>Video/Play</code>"), "{}", rows[1]);
        assert!(rows[1].contains("<code>name</code>"), "{}", rows[1]);
    }
    // a site that declares nothing: no such section, no such item
    let dir = tempfile::tempdir().unwrap();
    let plain = Server::start_config(dir.path(), &test_config(&dir.path().join("data"), "", ""));
    let page = client()
        .get(plain.url("/privacy?lang=en"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("custom-event"), "{page}");
}

/// A store written before custom events (schema version 2) opens and is
/// stamped version 4, the version older releases refuse by name; any
/// other older version is still refused.
#[test]
fn a_version_2_store_is_upgraded_in_place() {
    use redb::ReadableDatabase;
    use sparsam::store::schema::SCHEMA_VERSION;
    use sparsam::store::{Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let stamp = |v: u32| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap()
            .insert("schema_version", v)
            .unwrap();
        txn.commit().unwrap();
    };
    let stamped = || {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn
            .open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap();
        let v = meta.get("schema_version").unwrap().unwrap().value();
        v
    };
    drop(Store::open(&path, &StoreOptions::default()).unwrap());
    assert_eq!(SCHEMA_VERSION, 4);
    stamp(2);
    drop(Store::open(&path, &StoreOptions::default()).expect("version 2 opens"));
    assert_eq!(stamped(), 4);
    stamp(3);
    drop(Store::open(&path, &StoreOptions::default()).expect("version 3 opens"));
    assert_eq!(stamped(), 4);
    stamp(1);
    assert!(Store::open(&path, &StoreOptions::default()).is_err());
    assert_eq!(stamped(), 1, "a refused file is left as it was");
}

/// A custom event's name and property values are visitor text: they go
/// with the raw events at `retention.raw_days`, out of the file too, while
/// those of a recent event stay.
#[test]
fn custom_event_text_expires_with_the_raw_events() {
    use sparsam::storage::redb::RedbStorage;
    use sparsam::storage::Storage;
    use sparsam::store::{StoreOptions, WriterOptions};
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let config = sparsam::Config::parse(&format!(
        "[server]\ndata_dir = \"{}\"\n[retention]\nraw_days = 90\n\
         sweep_schedule = \"0 0 0 1 1 * 2099\"\n\
         [[sites]]\nid = \"demo\"\nhostnames = [\"example.org\"]\n\
         [[sites.events]]\nname = \"expiring-name-4715\"\nprops = {{ note = {{ max_len = 32 }} }}\n",
        dir.path().display()
    ))
    .unwrap();
    std::fs::create_dir_all(&config.server.data_dir).unwrap();
    let store = RedbStorage::open(
        config.store_path(),
        &StoreOptions::default(),
        WriterOptions::default(),
    )
    .unwrap();
    let now = chrono::Utc::now();
    let custom = |ts_ms: i64, note: &str| {
        let mut e = common::stored_pageview(ts_ms, 7, "https://example.org/signup");
        e.kind = EventKind::Custom;
        e.custom = Some(CustomEvent {
            name: "expiring-name-4715".into(),
            props: vec![("note".into(), note.into())],
            revenue_cents: 0,
        });
        e
    };
    let old = now.timestamp_millis() - 120 * DAY;
    store
        .submit(vec![
            custom(old, "old-note-4716"),
            custom(now.timestamp_millis() - DAY, "new-note-4717"),
        ])
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    let has = |m: &str| {
        common::contains_bytes(&std::fs::read(config.store_path()).unwrap(), m.as_bytes())
    };
    assert!(has("old-note-4716") && has("new-note-4717"));
    let report = sparsam::retention::sweep_now(
        &store,
        &config,
        now,
        false,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.events_deleted, 1, "{report:?}");
    assert!(
        !has("old-note-4716"),
        "an expired property value is in the file"
    );
    assert!(has("new-note-4717"), "a recent one stays");
    assert!(
        has("expiring-name-4715"),
        "the name is still in use by the recent event"
    );
    store.close().unwrap();
}

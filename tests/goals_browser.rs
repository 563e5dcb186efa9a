//! The tracker's custom events in a real browser: Debian's headless
//! Chromium, driven by `tests/node/events.js` (playwright-core), calls
//! `sparsam.event()` and clicks an element with `data-sparsam-event` on a
//! page that loads `t.js` cross-origin; the redb file is read after a
//! graceful stop. Needs `npm ci` in `tests/node` first.

mod collector;

use collector::{node, Collector};
use sparsam::goals::CustomEvent;
use sparsam::model::EventKind;
use sparsam::store::{Store, StoreOptions};

#[test]
fn tracker_sends_declared_custom_events_from_chromium() {
    let mut c = Collector::start(
        r#"
[[sites.events]]
name = "signup"
props = { plan = { max_len = 8, values = ["free", "pro"] } }

[[sites.events]]
name = "newsletter"
props = { topic = { max_len = 7 } }
"#,
    );
    let out = node("events.js", &[&c.url("")]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
    let answers = report["answers"].as_array().expect("answers");
    // every event is answered alike, stored or not
    assert_eq!(answers.len(), 3, "{report}");
    for a in answers {
        assert_eq!(a["status"], 202, "{report}");
    }
    let signup = &answers[2]["sent"];
    assert_eq!(signup["kind"], "event", "{report}");
    assert_eq!(signup["props"]["plan"], "pro", "{report}");

    c.stop();
    let bytes = std::fs::read(c.store_path()).expect("store file");
    let store = Store::open(c.store_path(), &StoreOptions::default()).expect("open store");
    let mut events = Vec::new();
    store
        .scan_events("demo", 0, i64::MAX, |e| {
            events.push(e);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    let custom: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Custom)
        .collect();
    assert!(custom.iter().all(|e| e.url.ends_with("/pricing")));
    let named: Vec<CustomEvent> = custom
        .iter()
        .map(|e| e.custom.clone().expect("name"))
        .collect();
    let event = |name: &str, key: &str, value: &str| CustomEvent {
        name: name.to_string(),
        props: vec![(key.to_string(), value.to_string())],
        revenue_cents: 0,
    };
    assert_eq!(
        named,
        vec![
            // cut to the declared seven characters
            event("newsletter", "topic", "library"),
            event("signup", "plan", "pro"),
        ],
    );
    assert!(
        !bytes
            .windows(b"undeclared-in-browser-4714".len())
            .any(|w| w == b"undeclared-in-browser-4714"),
        "an undeclared event is in the store file"
    );
}

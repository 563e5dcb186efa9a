//! The privacy notice: German and English, language choice and headers
//! against the real binary; that it lists every kind of data stored, both
//! opt-out cookies and the retention of raw data and roll-ups; and that
//! changing any configuration key it depends on changes the notice in both
//! languages (and changing an unrelated key does not).

mod common;

use common::{client, test_config, Server};
use sparsam::http::lang::Lang;
use sparsam::http::privacy_notice::render;

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
}

fn get(server: &Server, path: &str, accept_language: Option<&str>) -> (Page, String) {
    let mut req = client().get(server.url(path));
    if let Some(al) = accept_language {
        req = req.header("Accept-Language", al);
    }
    let res = req.send().expect("GET privacy");
    let page = Page {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
    };
    (page, res.text().expect("body"))
}

impl Page {
    fn status(&self) -> u16 {
        self.status
    }
    fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }
}

#[test]
fn default_notice_in_german_and_english() {
    let server = Server::start();

    let (res, en) = get(&server, "/privacy?lang=en", None);
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *"
    );
    assert!(h.get("set-cookie").is_none(), "the notice sets no cookie");
    assert!(en.contains("<html lang=\"en\""), "{en}");
    assert!(en.contains("Privacy notice"));
    assert!(en.contains("anonymous reach statistics"));
    assert!(en.contains("the operator of this website"));
    assert!(en.contains(">181.153.xxx.xxx<"), "v4 example: {en}");
    assert!(en.contains(">2001:db8:xxxx…<"), "v6 example: {en}");
    assert!(en.contains("<span id=\"raw-days\">90</span>"));
    assert!(en.contains("<code id=\"cookie\">sparsam_optout</code>"));
    assert!(en.contains("<span id=\"cookie-days\">400</span>"));
    assert!(en.contains("consent, Art. 6(1)(a) GDPR"));
    assert!(en.contains("Nothing is stored in your browser to count you"));
    assert!(en.contains("href=\"optout?lang=en\""));
    // Per-site settings: demo honours DNT, other does not.
    assert!(en.contains("<td>Demo</td>"));
    assert!(en.contains("<td class=\"dnt\">yes</td>"));
    assert!(en.contains("<td class=\"dnt\">no</td>"));
    assert!(en.contains("<code>pdf</code>"));
    assert!(en.contains("<code>query</code>"));

    let (_, de) = get(&server, "/privacy?lang=de", None);
    assert!(de.contains("<html lang=\"de\""));
    assert!(de.contains("Datenschutzhinweis"));
    assert!(de.contains("anonyme Reichweitenstatistik"));
    assert!(de.contains("Einwilligung, Art. 6 Abs. 1 lit. a DSGVO"));
    assert!(de.contains(">181.153.xxx.xxx<"));
    assert!(de.contains("keine Cookies und nichts anderes in Ihrem Browser gespeichert"));
    assert!(de.contains("<td class=\"dnt\">ja</td>"));
    assert!(de.contains("href=\"optout?lang=de\""));

    // Accept-Language when no ?lang=, and ?lang= wins over it.
    let (res, de2) = get(&server, "/privacy", Some("fr;q=1, de-DE;q=0.8, en;q=0.5"));
    assert_eq!(res.headers()["content-language"], "de");
    assert!(de2.contains("<html lang=\"de\""));
    let (_, en2) = get(&server, "/privacy?lang=en", Some("de"));
    assert!(en2.contains("<html lang=\"en\""));
    let (_, fallback) = get(&server, "/privacy", None);
    assert!(fallback.contains("<html lang=\"en\""));
}

#[test]
fn notice_follows_the_configuration() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = test_config(
        &tmp.path().join("data"),
        "",
        "ipv4_prefix = 8\nipv6_prefix = 16\noptout_cookie = \"no_stats\"\noptout_cookie_days = 30",
    );
    let config = format!(
        "{base}\n[retention]\nraw_days = 30\n\n[notice]\ncontroller = \"Evil <script>alert(1)</script> & Co\"\nprocessing_location = \"Frankfurt\"\nlegal_basis_de = \"berechtigtes Interesse\"\nlegal_basis_en = \"legitimate interest\"\n"
    );
    let server = Server::start_config(tmp.path(), &config);

    let (res, en) = get(&server, "/privacy?lang=en", None);
    assert_eq!(res.status(), 200);
    assert!(en.contains(">181.xxx.xxx.xxx<"), "{en}");
    assert!(!en.contains("181.153.xxx"));
    assert!(en.contains(">2001:xxxx…<"), "{en}");
    assert!(en.contains("<span id=\"raw-days\">30</span>"));
    assert!(!en.contains("<span id=\"raw-days\">90</span>"));
    assert!(en.contains("<code id=\"cookie\">no_stats</code>"));
    assert!(en.contains("<span id=\"cookie-days\">30</span>"));
    assert!(en.contains("Evil &#60;script&#62;alert(1)&#60;/script&#62; &#38; Co"));
    assert!(!en.contains("<script>"), "config text must be escaped");
    assert!(en.contains("legitimate interest"));
    assert!(en.contains("<p id=\"location\">Frankfurt</p>"));

    let (_, de) = get(&server, "/privacy?lang=de", None);
    assert!(de.contains(">181.xxx.xxx.xxx<"));
    assert!(de.contains("berechtigtes Interesse"));
    assert!(!de.contains("<script>"));
}

/// The `<li>` with `id` in the data list.
fn item<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<li id=\"data-{id}\">"))
        .unwrap_or_else(|| panic!("no data item {id}"));
    let end = page[start..].find("</li>").expect("closed") + start;
    &page[start..end]
}

#[test]
fn default_notice_lists_every_stored_field_both_optout_cookies_and_retention() {
    let server = Server::start();
    let (_, en) = get(&server, "/privacy?lang=en", None);
    let (_, de) = get(&server, "/privacy?lang=de", None);
    for page in [&en, &de] {
        for id in [
            "address",
            "time",
            "url",
            "title",
            "referrer",
            "campaign",
            "device",
            "plugins",
            "dwell",
            "pageview",
            "downloads",
            "outbound",
            "search",
            "search-results",
            "visitor",
        ] {
            item(page, id);
        }
        assert_eq!(page.matches("<li id=\"data-").count(), 15);
        // The website's own opt-out cookie, as the tracker script sets it.
        assert!(page.contains("<code id=\"tracker-cookie\">sparsam_optout</code>"));
        assert!(page.contains("<span id=\"tracker-cookie-days\">400</span>"));
        assert!(page.contains("<code>sparsam.optOut()</code>"));
        // Daily sweeps: nothing older than 90 days plus one day.
        assert!(page.contains("<span id=\"max-days\">91</span>"));
        assert!(!page.contains("id=\"rollup-days\""));
        // Free text goes with the raw data, a whole day at a time.
        assert!(page.contains("<span id=\"free-text-days\">90</span>"));
        assert!(page.contains("<span id=\"free-text-max-days\">93</span>"));
        assert!(!page.contains("id=\"free-text-min-visitors\""));
    }
    assert!(item(&en, "title").contains("page title"));
    let visitor = item(&en, "visitor");
    assert!(visitor.contains("changes daily"), "{visitor}");
    assert!(visitor.contains("visits on different days cannot be linked"));
    assert!(visitor.contains("not a cookie"));
    assert!(item(&en, "search-results").contains("number of search results"));
    assert!(item(&de, "visitor").contains("täglich wechselnder pseudonymer Zählwert"));
    assert!(item(&de, "title").contains("Seitentitel"));
    assert!(en.contains("website's own domain"));
    assert!(de.contains("auf ihrer eigenen Domain"));
    assert!(
        en.contains("kept without time limit"),
        "roll-ups kept by default"
    );
    assert!(de.contains("ohne zeitliche Begrenzung aufbewahrt"));
    // Counts and free text are told apart.
    let counts = paragraph(&en, "rollups");
    assert!(counts.contains("without its query"), "{counts}");
    assert!(
        counts.contains("nor text that visitors entered"),
        "{counts}"
    );
    let free = paragraph(&en, "free-text");
    assert!(free.contains("site-search terms"), "{free}");
    assert!(
        free.contains("from the aggregated figures as well"),
        "{free}"
    );
    assert!(paragraph(&de, "free-text").contains("auch aus den zusammengefassten Zahlen"));
}

/// The text of `<p id="{id}">`.
fn paragraph<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<p id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no paragraph {id}"));
    let rest = &page[start..];
    &rest[..rest.find("</p>").unwrap_or(rest.len())]
}

const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "/nonexistent/sparsam-notice"
workers = 2
[privacy]
ipv4_prefix = 16
ipv6_prefix = 32
optout_cookie = "sparsam_optout"
optout_cookie_days = 400
[retention]
raw_days = 90
rollup_days = 0
free_text_min_visitors = 0
sweep_schedule = "0 30 3 * * *"
[store]
cache_mb = 64
[notice]
controller = "Stadt Musterstadt"
processing_location = "Rechenzentrum Musterstadt"
legal_basis_de = "Einwilligung"
legal_basis_en = "consent"
[[sites]]
id = "demo"
name = "Demo"
hostnames = ["example.org"]
honour_dnt = false
honour_gpc = true
search_params = ["q"]
keep_query_params = []
download_extensions = ["pdf"]
"#;

fn notice(text: &str) -> (String, String) {
    let config = sparsam::Config::parse(text).expect("config");
    (
        render(&config, Lang::De).expect("German notice renders"),
        render(&config, Lang::En).expect("English notice renders"),
    )
}

#[test]
fn every_relevant_config_key_changes_the_notice_in_both_languages() {
    let (base_de, base_en) = notice(BASE);
    const IN_BOTH: [&str; 3] = [
        "privacy (no address)",
        "sites.search_params",
        "sites.download_extensions",
    ];
    // (key, from, to, German changes, English changes, text the change
    // shows: one for both languages, or "German|English")
    let cases: &[(&str, &str, &str, bool, bool, &str)] = &[
        (
            "privacy.ipv4_prefix",
            "ipv4_prefix = 16",
            "ipv4_prefix = 8",
            true,
            true,
            ">181.xxx.xxx.xxx<",
        ),
        (
            "privacy.ipv6_prefix",
            "ipv6_prefix = 32",
            "ipv6_prefix = 16",
            true,
            true,
            ">2001:xxxx…<",
        ),
        (
            "privacy (no address)",
            "ipv4_prefix = 16\nipv6_prefix = 32",
            "ipv4_prefix = 0\nipv6_prefix = 0",
            true,
            true,
            "<li id=\"data-address\">",
        ),
        (
            "privacy.optout_cookie",
            "optout_cookie = \"sparsam_optout\"",
            "optout_cookie = \"no_stats\"",
            true,
            true,
            "<code id=\"cookie\">no_stats</code>",
        ),
        (
            "privacy.optout_cookie_days",
            "optout_cookie_days = 400",
            "optout_cookie_days = 30",
            true,
            true,
            "<span id=\"cookie-days\">30</span>",
        ),
        (
            "retention.raw_days",
            "raw_days = 90",
            "raw_days = 30",
            true,
            true,
            "<span id=\"raw-days\">30</span>",
        ),
        (
            "retention.rollup_days",
            "rollup_days = 0",
            "rollup_days = 400",
            true,
            true,
            "<span id=\"rollup-days\">400</span>",
        ),
        (
            "retention.free_text_min_visitors",
            "free_text_min_visitors = 0",
            "free_text_min_visitors = 25",
            true,
            true,
            "<span id=\"free-text-min-visitors\">25</span>",
        ),
        (
            "retention.sweep_schedule",
            "sweep_schedule = \"0 30 3 * * *\"",
            "sweep_schedule = \"0 30 3 * * Sun\"",
            true,
            true,
            "<span id=\"max-days\">97</span>",
        ),
        (
            "notice.controller",
            "Stadt Musterstadt\"",
            "Gemeinde Beispiel\"",
            true,
            true,
            "<span id=\"controller\">Gemeinde Beispiel</span>",
        ),
        (
            "notice.processing_location",
            "Rechenzentrum Musterstadt",
            "Rechenzentrum Frankfurt",
            true,
            true,
            "<p id=\"location\">Rechenzentrum Frankfurt</p>",
        ),
        (
            "notice.legal_basis_de",
            "legal_basis_de = \"Einwilligung\"",
            "legal_basis_de = \"berechtigtes Interesse\"",
            true,
            false,
            "berechtigtes Interesse",
        ),
        (
            "notice.legal_basis_en",
            "legal_basis_en = \"consent\"",
            "legal_basis_en = \"legitimate interest\"",
            false,
            true,
            "legitimate interest",
        ),
        (
            "sites.name",
            "name = \"Demo\"",
            "name = \"Stadtportal\"",
            true,
            true,
            "<td>Stadtportal</td>",
        ),
        (
            "sites.hostnames",
            "hostnames = [\"example.org\"]",
            "hostnames = [\"example.org\", \"www.example.org\"]",
            true,
            true,
            "<code>www.example.org</code>",
        ),
        (
            "sites.honour_dnt",
            "honour_dnt = false",
            "honour_dnt = true",
            true,
            true,
            "<td class=\"dnt\">ja</td>|<td class=\"dnt\">yes</td>",
        ),
        (
            "sites.honour_gpc",
            "honour_gpc = true",
            "honour_gpc = false",
            true,
            true,
            "<td class=\"gpc\">nein</td>|<td class=\"gpc\">no</td>",
        ),
        (
            "sites.search_params",
            "search_params = [\"q\"]",
            "search_params = []",
            true,
            true,
            "<li id=\"data-search\">",
        ),
        (
            "sites.keep_query_params",
            "keep_query_params = []",
            "keep_query_params = [\"lang\"]",
            true,
            true,
            "<code>lang</code>",
        ),
        (
            "sites.download_extensions",
            "download_extensions = [\"pdf\"]",
            "download_extensions = []",
            true,
            true,
            "<li id=\"data-downloads\">",
        ),
    ];
    for (key, from, to, de_changes, en_changes, shows) in cases {
        assert!(BASE.contains(from), "{key}: base lacks {from:?}");
        let (de, en) = notice(&BASE.replacen(from, to, 1));
        assert_eq!(de != base_de, *de_changes, "{key}: German notice");
        assert_eq!(en != base_en, *en_changes, "{key}: English notice");
        let (shows_de, shows_en) = shows.split_once('|').unwrap_or((shows, shows));
        for (page, base, changed, shows) in [
            (&de, &base_de, de_changes, shows_de),
            (&en, &base_en, en_changes, shows_en),
        ] {
            if *changed {
                assert!(page.contains(shows), "{key}: {shows:?} missing");
                // these three change the words inside an item both notices
                // have; the checks below read those items
                if !IN_BOTH.contains(key) {
                    assert!(
                        !base.contains(shows),
                        "{key}: {shows:?} also in the base notice"
                    );
                }
            }
        }
    }
    // Keys that do not change what is collected or said leave it alone.
    for (from, to) in [
        ("workers = 2", "workers = 4"),
        ("cache_mb = 64", "cache_mb = 128"),
        ("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:9\""),
    ] {
        let (de, en) = notice(&BASE.replacen(from, to, 1));
        assert_eq!(
            (de, en),
            (base_de.clone(), base_en.clone()),
            "{from} -> {to}"
        );
    }

    // What the changes say, in words.
    let (de, en) = notice(&BASE.replacen("rollup_days = 0", "rollup_days = 400", 1));
    assert!(
        en.contains("400</span> days and then deleted as well"),
        "{en}"
    );
    assert!(!en.contains("without time limit"));
    assert!(de.contains("400</span> Tage aufbewahrt und dann ebenfalls gelöscht"));
    assert!(!de.contains("ohne zeitliche Begrenzung"));
    let (de, en) = notice(&BASE.replacen(
        "free_text_min_visitors = 0",
        "free_text_min_visitors = 10",
        1,
    ));
    assert!(
        paragraph(&en, "free-text").contains(
            "unless at least <span id=\"free-text-min-visitors\">10</span> different visitors"
        ),
        "{en}"
    );
    assert!(paragraph(&de, "free-text").contains("außer wenn mindestens"));
    assert!(!paragraph(&en, "free-text").contains("from the aggregated figures as well"));
    let (de, en) = notice(&BASE.replacen(
        "ipv4_prefix = 16\nipv6_prefix = 32",
        "ipv4_prefix = 0\nipv6_prefix = 0",
        1,
    ));
    assert!(item(&en, "address").contains("no IP address"));
    assert!(item(&de, "address").contains("keine IP-Adresse"));
    assert!(!en.contains("id=\"example-v4\""));
    let (de, en) = notice(&BASE.replacen("search_params = [\"q\"]", "search_params = []", 1));
    assert!(item(&en, "search").contains("when the page reports them"));
    assert!(!item(&en, "url").contains("search parameters"));
    assert!(item(&de, "search").contains("wenn die Seite sie meldet"));
    let (_, en) = notice(&BASE.replacen(
        "download_extensions = [\"pdf\"]",
        "download_extensions = []",
        1,
    ));
    assert!(item(&en, "downloads").contains("reports explicitly"));
}

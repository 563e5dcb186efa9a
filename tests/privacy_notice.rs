//! The privacy notice against the real binary: German and English, language
//! choice, headers, and that the text follows the running configuration
//! (address mask, retention, controller, escaped).

mod common;

use common::{client, test_config, Server};

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
    assert!(en.contains("No cookies are stored"));
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
    assert!(de.contains("Es werden keine Cookies gespeichert"));
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
    assert!(en.contains("Evil &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"));
    assert!(!en.contains("<script>"), "config text must be escaped");
    assert!(en.contains("legitimate interest"));
    assert!(en.contains("<p id=\"location\">Frankfurt</p>"));

    let (_, de) = get(&server, "/privacy?lang=de", None);
    assert!(de.contains(">181.xxx.xxx.xxx<"));
    assert!(de.contains("berechtigtes Interesse"));
    assert!(!de.contains("<script>"));
}

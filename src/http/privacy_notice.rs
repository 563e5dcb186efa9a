//! The privacy notice, `GET /privacy`: a German or English page rendered
//! from the live configuration and the code, so what it says is always what
//! the running server does. Every statement is derived:
//!
//! - the data collected: one item per stored field of an event (a field
//!   added to `Event` does not compile until it is listed here), with the
//!   per-site URL parameters, search parameters and download extensions;
//! - address shortening from the masks, with computed examples;
//! - cookies from `privacy::cookies` (the collector's opt-out cookie from
//!   the config, the tracker's from the embedded script);
//! - retention of raw events, the longest possible age from the sweep
//!   schedule, whether counts are kept or deleted, and, separately, when
//!   free text (search terms, URL queries) goes and which rule keeps any;
//! - controller, legal basis and location from `[notice]`.
//!
//! Every string taken from the configuration is HTML-escaped; the page needs
//! no script and may be embedded in a site's own privacy page.

use std::fmt::Write as _;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::lang::{pick_lang, Lang};
use super::AppState;
use crate::config::Config;
use crate::model::{Campaign, Device, Event, Referrer};
use crate::privacy::cookies::tracker_scan;
use crate::privacy::AnonIp;
use crate::store::schema::MS_PER_DAY;

/// Example addresses shown shortened in the notice.
const EXAMPLE_V4: &str = "181.153.77.201";
const EXAMPLE_V6: &str = "2001:db8:85a3:1234:5678:8a2e:370:7334";

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// Escapes `& < > " '` for use in HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn masked_example(addr: &str, config: &Config) -> (String, String) {
    let shown = addr
        .parse::<IpAddr>()
        .map(|ip| AnonIp::truncate(ip, &config.privacy.masks()).masked_display())
        .unwrap_or_default();
    (addr.to_string(), shown)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "–".to_string()
    } else {
        items
            .iter()
            .map(|s| format!("<code>{}</code>", escape_html(s)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every stored field of an event, each named with the notice item that
/// discloses it. A field added to `Event`, `Device`, `Referrer` or
/// `Campaign` breaks this pattern until the notice says what it is.
const _EVERY_STORED_FIELD_IS_DISCLOSED: fn(&Event) = |e| {
    let Event {
        site: _,        // which website (the operator's own)
        ts_ms: _,       // "time"
        kind: _,        // "url", "downloads", "outbound", "search"
        visitor: _,     // "visitor"
        pageview_id: _, // "pageview"
        url: _,         // "url"
        title: _,       // "title"
        referrer:
            Referrer {
                kind: _, // "referrer"
                name: _, // "referrer"
                url: _,  // "referrer"
            },
        campaign:
            Campaign {
                source: _,   // "campaign"
                medium: _,   // "campaign"
                campaign: _, // "campaign"
            },
        target: _,         // "downloads", "outbound"
        search_term: _,    // "search"
        search_results: _, // "search-results"
        engaged_ms: _,     // "dwell"
        device:
            Device {
                device_type: _,     // "device"
                brand: _,           // "device"
                model: _,           // "device"
                os: _,              // "device"
                os_version: _,      // "device"
                browser: _,         // "device"
                browser_version: _, // "device"
                engine: _,          // "device"
                engine_version: _,  // "device"
                bot: _,             // bots are not stored
            },
        plugins: _, // "plugins"
        anon_ip: _, // "address"
        custom: _,  // "custom-events", listed by `custom_events_section`
    } = e;
};

/// The longest gap between two scheduled sweeps, in whole days rounded up
/// (at least 1), over the next 64 sweeps.
fn sweep_interval_days(config: &Config) -> i64 {
    let Ok(schedule) = config.sweep_schedule() else {
        return 1;
    };
    let times: Vec<_> = schedule.upcoming(chrono::Utc).take(65).collect();
    let longest = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .max()
        .unwrap_or(MS_PER_DAY);
    ((longest + MS_PER_DAY - 1) / MS_PER_DAY).max(1)
}

/// Renders the notice for `lang` from `config`.
pub fn render(config: &Config, lang: Lang) -> String {
    let de = lang == Lang::De;
    let t = |d: &'static str, e: &'static str| if de { d } else { e };
    let n = &config.notice;
    let p = &config.privacy;
    let r = &config.retention;
    let controller = escape_html(&n.controller);
    let location = escape_html(&n.processing_location);
    let basis = escape_html(if de {
        &n.legal_basis_de
    } else {
        &n.legal_basis_en
    });
    let tracker = tracker_scan();
    let cookie = escape_html(&config.privacy.optout_cookie);
    let days = config.privacy.optout_cookie_days;
    let raw_days = r.raw_days;
    let max_days = i64::from(raw_days) + sweep_interval_days(config);
    let (v4, v4m) = masked_example(EXAMPLE_V4, config);
    let (v6, v6m) = masked_example(EXAMPLE_V6, config);
    let (v4m, v6m) = (escape_html(&v4m), escape_html(&v6m));
    let code = lang.code();
    let any_search = config.sites.iter().any(|s| !s.search_params.is_empty());
    let any_kept = config.sites.iter().any(|s| !s.keep_query_params.is_empty());
    let any_download = config
        .sites
        .iter()
        .any(|s| !s.download_extensions.is_empty());
    let no_address = p.ipv4_prefix == 0 && p.ipv6_prefix == 0;

    let mut items: Vec<(&str, String)> = Vec::new();
    let mut item = |id: &'static str, text: String| items.push((id, text));
    item(
        "address",
        if no_address {
            t(
                "keine IP-Adresse: sie wird beim Empfang vollständig verworfen",
                "no IP address: it is discarded entirely on receipt",
            )
            .into()
        } else {
            t(
                "gekürzte IP-Adresse (siehe unten)",
                "shortened IP address (see below)",
            )
            .into()
        },
    );
    item(
        "time",
        t(
            "Zeitpunkt des Aufrufs (nach der Uhr des Servers)",
            "time of the visit (by the server's clock)",
        )
        .into(),
    );
    item(
        "url",
        format!(
            "{}{}",
            t(
                "aufgerufene Adressen (URLs) ohne Abfrageteil und Fragment, außer den Kampagnenparametern <code>utm_source</code>, <code>utm_medium</code>, <code>utm_campaign</code>, <code>utm_term</code> und <code>utm_content</code>",
                "visited addresses (URLs) without query and fragment, except the campaign parameters <code>utm_source</code>, <code>utm_medium</code>, <code>utm_campaign</code>, <code>utm_term</code> and <code>utm_content</code>",
            ),
            match (any_search, any_kept) {
                (false, false) => "",
                (true, false) => t(
                    " und den unten je Website genannten Suchparametern",
                    " and the search parameters listed per site below",
                ),
                (_, true) => t(
                    " und den unten je Website genannten Such- und weiteren Parametern",
                    " and the search and other parameters listed per site below",
                ),
            }
        ),
    );
    item("title", t("Seitentitel", "page title").into());
    item(
        "referrer",
        t(
            "verweisende Seite (Referrer), ebenso gekürzt, und ihre Art (Suchmaschine, soziales Netzwerk, andere Website)",
            "referring page (referrer), stripped the same way, and its kind (search engine, social network, other website)",
        )
        .into(),
    );
    item(
        "campaign",
        t(
            "Kampagnenangaben aus den Parametern <code>utm_source</code>, <code>utm_medium</code> und <code>utm_campaign</code>",
            "campaign details from the parameters <code>utm_source</code>, <code>utm_medium</code> and <code>utm_campaign</code>",
        )
        .into(),
    );
    item(
        "device",
        t(
            "Gerätetyp, -marke und -modell; Betriebssystem und Version; Browser, Browser-Engine und ihre Versionen (aus der Browserkennung und, wenn der Browser sie sendet, den Client Hints)",
            "device type, brand and model; operating system and version; browser, browser engine and their versions (from the browser's user agent and, when the browser sends them, its client hints)",
        )
        .into(),
    );
    item(
        "plugins",
        t(
            "Browser-Plugins (z. B. ob PDFs angezeigt werden können)",
            "browser plugins (e.g. whether PDFs can be shown)",
        )
        .into(),
    );
    item(
        "dwell",
        t("Verweildauer auf der Seite", "time spent on the page").into(),
    );
    item(
        "pageview",
        t(
            "eine im Browser erzeugte Zufallszahl je Seitenaufruf, die nicht im Browser gespeichert wird; sie ordnet Verweildauer, Downloads und Klicks diesem Aufruf zu und wird nur als Hash mit dem zufälligen Tagesschlüssel (siehe Besucherzählwert) gespeichert",
            "a random number per page view, made in the browser and not stored there, that ties dwell time, downloads and clicks to that page view; it is stored only as a hash made with the random daily key (see the visitor count value)",
        )
        .into(),
    );
    item(
        "downloads",
        if any_download {
            t(
                "Downloads: Adresse heruntergeladener Dateien (Dateiendungen unten je Website)",
                "downloads: the address of downloaded files (file extensions listed per site below)",
            )
        } else {
            t(
                "Downloads, die die Website ausdrücklich meldet: Adresse der Datei",
                "downloads the website reports explicitly: the file's address",
            )
        }
        .into(),
    );
    item(
        "outbound",
        t(
            "Links zu anderen Websites, denen Sie folgen: Zieladresse ohne Abfrageteil",
            "links to other websites that you follow: the target address without its query",
        )
        .into(),
    );
    item(
        "search",
        if any_search {
            t(
                "Suchbegriffe der websiteinternen Suche (aus den unten je Website genannten Parametern oder von der Seite gemeldet)",
                "site-search terms (from the parameters listed per site below, or reported by the page)",
            )
        } else {
            t(
                "Suchbegriffe der websiteinternen Suche, wenn die Seite sie meldet",
                "site-search terms, when the page reports them",
            )
        }
        .into(),
    );
    item(
        "search-results",
        t(
            "Zahl der Suchergebnisse, wenn die Seite sie meldet",
            "number of search results, when the page reports it",
        )
        .into(),
    );
    item(
        "visitor",
        t(
            "ein täglich wechselnder pseudonymer Zählwert, damit Besucher eines Tages gezählt werden können: berechnet aus der gekürzten Adresse, der Browserkennung und einem zufälligen Tagesschlüssel, der jeden Tag ersetzt und vernichtet wird. Er ist kein Cookie und wird nicht in Ihrem Browser gespeichert; Besuche an verschiedenen Tagen lassen sich damit nicht verknüpfen, und niemand, auch nicht der Betreiber, kann daraus ablesen, wer Sie sind",
            "a pseudonymous count value that changes daily, so that visitors of one day can be counted: computed from the shortened address, the browser's user agent and a random daily key that is replaced and destroyed every day. It is not a cookie and is not stored in your browser; visits on different days cannot be linked with it, and nobody, the operator included, can tell from it who you are",
        )
        .into(),
    );
    if config.sites.iter().any(|s| !s.events.is_empty()) {
        item(
            "custom-events",
            t(
                "von der Website gemeldete Ereignisse (z. B. eine Anmeldung) mit den unten je Website genannten Eigenschaften und gegebenenfalls einem Betrag; nichts anderes",
                "events the website reports (e.g. a sign-up) with the properties listed per site below and, where given, an amount; nothing else",
            )
            .into(),
        );
    }
    let events_section = custom_events_section(config, de);
    let data_list: String = items
        .iter()
        .map(|(id, text)| format!("<li id=\"data-{id}\">{text}</li>\n"))
        .collect();

    let mut sites = String::new();
    for s in &config.sites {
        let name = if s.name.is_empty() { &s.id } else { &s.name };
        let yes_no = |b: bool| if b { t("ja", "yes") } else { t("nein", "no") };
        let _ = writeln!(
            sites,
            "<tr><td>{name}</td><td>{hosts}</td><td class=\"dnt\">{dnt}</td><td class=\"gpc\">{gpc}</td><td>{search}</td><td>{keep}</td><td>{dl}</td></tr>",
            name = escape_html(name),
            // hosts as visitors read them (the config holds them in ASCII)
            hosts = list(
                &s.hostnames
                    .iter()
                    .map(|h| crate::privacy::url_strip::unicode_domain(h))
                    .collect::<Vec<_>>()
            ),
            dnt = yes_no(s.honour_dnt),
            gpc = yes_no(s.honour_gpc),
            search = list(&s.search_params),
            keep = list(&s.keep_query_params),
            dl = list(&s.download_extensions),
        );
    }

    let mut cookie_text = String::new();
    if tracker.tracks() {
        let mut stored: Vec<String> = tracker.other_cookie_writes.clone();
        stored.extend(tracker.web_storage.iter().cloned());
        let _ = writeln!(
            cookie_text,
            "<p id=\"tracking-cookies\">{} {}.</p>",
            t(
                "Das Erfassungsskript speichert in Ihrem Browser:",
                "The tracking script stores in your browser:"
            ),
            list(&stored)
        );
    } else {
        let _ = writeln!(
            cookie_text,
            "<p id=\"no-tracking-cookies\">{}</p>",
            t(
                "Für die Erfassung werden keine Cookies und nichts anderes in Ihrem Browser gespeichert.",
                "Nothing is stored in your browser to count you: no cookies, no other storage."
            )
        );
    }
    let _ = writeln!(
        cookie_text,
        "<p>{} <code id=\"cookie\">{cookie}</code>{} <span id=\"cookie-days\">{days}</span> {}</p>",
        t(
            "Nur wenn Sie über die Opt-out-Seite widersprechen, setzt der Statistikdienst unter seiner eigenen Adresse das Opt-out-Cookie",
            "Only if you opt out on the opt-out page does the statistics service set the opt-out cookie"
        ),
        t("; es ist", " at its own address; it lasts"),
        t(
            "Tage gültig und enthält nur Ihren Widerspruch.",
            "days and holds nothing but your objection."
        ),
    );
    for (i, c) in tracker.optout_cookies.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("-{i}")
        };
        let _ = writeln!(
            cookie_text,
            "<p>{} <code>sparsam.{}()</code>{} <code id=\"tracker-cookie{suffix}\">{}</code>{} <span id=\"tracker-cookie-days{suffix}\">{}</span> {}</p>",
            t(
                "Bietet die Website selbst einen Widerspruch an (Funktion",
                "If the website itself offers a way to opt out (the tracking script's function"
            ),
            escape_html(&c.set_by),
            t(
                " des Erfassungsskripts), setzt sie beim Widerspruch auf ihrer eigenen Domain das Cookie",
                "), opting out there sets the cookie"
            ),
            escape_html(&c.name),
            t("; es ist", " on the website's own domain; it lasts"),
            c.days,
            t(
                "Tage gültig und enthält nur Ihren Widerspruch.",
                "days and holds nothing but your objection."
            ),
        );
    }

    let counts = t(
        "Zusammengefasste Zählungen (je Tag und Stunde, je Seitenadresse ohne Abfrageteil, je verweisender Website, Gerätetyp usw.) enthalten weder Adressen noch Besucherzählwerte noch von Besuchern eingegebenen Text",
        "Aggregated counts (per day and hour, per page address without its query, per referring website, device type and so on) hold neither addresses nor visitor count values nor text that visitors entered",
    );
    let rollups = if r.rollup_days == 0 {
        format!(
            "<p id=\"rollups\">{counts}{}</p>",
            t(
                " und werden ohne zeitliche Begrenzung aufbewahrt.",
                " and are kept without time limit."
            )
        )
    } else {
        format!(
            "<p id=\"rollups\">{counts}{} <span id=\"rollup-days\">{}</span> {}</p>",
            t("; sie werden", "; they are kept for"),
            r.rollup_days,
            t(
                "Tage aufbewahrt und dann ebenfalls gelöscht.",
                "days and then deleted as well."
            )
        )
    };
    let free_text_what = t(
        "Freitext, also Text, den Sie eingegeben haben oder den ein Link mitgebracht hat (Suchbegriffe der websiteinternen Suche, Werte der behaltenen URL-Parameter wie Suchwörter oder <code>utm_term</code>, vollständige Adressen verweisender Seiten),",
        "Free text, that is text you entered or that a link carried (site-search terms, values of the kept URL parameters such as search words or <code>utm_term</code>, full addresses of referring pages),",
    );
    // Roll-ups lose free text a whole (site-local) day at a time: a local
    // day may start up to 14 hours before its UTC day and goes with the
    // first sweep after the UTC day after it is past `raw_days`.
    let free_text_max_days = max_days + 2;
    let at_most = format!(
        "{} <span id=\"free-text-max-days\">{free_text_max_days}</span> {}",
        t(
            "Aus den zusammengefassten Zahlen verschwindet er tageweise, spätestens nach",
            "From the aggregated figures it goes a whole day at a time, after at most"
        ),
        t("Tagen.", "days.")
    );
    let free_text = match r.free_text_min_visitors {
        0 => format!(
            "<p id=\"free-text\">{free_text_what} {} <span id=\"free-text-days\">{raw_days}</span> {} {at_most}</p>",
            t("wird nach", "is deleted after"),
            t(
                "Tagen mit den einzelnen Aufrufen gelöscht, auch aus den zusammengefassten Zahlen; dort bleibt nur die Zählung ohne den Text (z. B. Zahl der Suchen, Aufrufe der Seitenadresse ohne Abfrageteil).",
                "days together with the individual page views, from the aggregated figures as well; what stays there is the count without the text (e.g. the number of searches, views of the page address without its query)."
            ),
        ),
        k => format!(
            "<p id=\"free-text\">{free_text_what} {} <span id=\"free-text-days\">{raw_days}</span> {} <span id=\"free-text-min-visitors\">{k}</span> {} {at_most}</p>",
            t("wird nach", "is deleted after"),
            t(
                "Tagen mit den einzelnen Aufrufen gelöscht. Aus den zusammengefassten Zahlen eines Tages wird er ebenfalls gelöscht, außer wenn mindestens",
                "days together with the individual page views. It is deleted from the aggregated figures of a day as well, unless at least"
            ),
            t(
                "verschiedene Besucher an diesem Tag denselben Text erzeugt haben; ein so häufiger Text verweist auf niemanden einzeln und bleibt so lange wie die Zählungen. Von anderem Freitext bleibt nur die Zählung ohne den Text.",
                "different visitors produced the same text that day; text that common points at nobody in particular and stays as long as the counts. Of other free text only the count without the text stays."
            )
        ),
    };

    let title = t(
        "Datenschutzhinweis zur Besuchsstatistik",
        "Privacy notice for visitor statistics",
    );
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:1em auto;max-width:50em;padding:0 1em;color:#111;background:#fff}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .4em;text-align:left;vertical-align:top}}code{{font-size:.9em}}</style>
</head><body>
<h1>{title}</h1>
"#
    );
    let address_text = if no_address {
        t(
            "Die Adresse wird beim Empfang vollständig verworfen; weder sie noch ein Teil davon wird gespeichert.",
            "The address is discarded entirely on receipt; neither it nor any part of it is stored.",
        )
        .to_string()
    } else if de {
        format!("Die Adresse wird sofort beim Empfang gekürzt, bevor sie gespeichert oder weiterverarbeitet wird; die vollständige Adresse wird nie gespeichert. IPv4 behält die ersten {v4p} Bit, IPv6 die ersten {v6p} Bit. Beispiel: aus <code>{v4}</code> wird <code id=\"example-v4\">{v4m}</code>, aus <code>{v6}</code> wird <code id=\"example-v6\">{v6m}</code>.", v4p = p.ipv4_prefix, v6p = p.ipv6_prefix)
    } else {
        format!("The address is shortened as soon as it arrives, before it is stored or processed further; the full address is never stored. IPv4 keeps the first {v4p} bits, IPv6 the first {v6p} bits. Example: <code>{v4}</code> becomes <code id=\"example-v4\">{v4m}</code>, <code>{v6}</code> becomes <code id=\"example-v6\">{v6m}</code>.", v4p = p.ipv4_prefix, v6p = p.ipv6_prefix)
    };
    if de {
        let _ = write!(
            h,
            r#"<h2>Wer, wozu</h2>
<p>Diese Website verwendet <strong>sparsam</strong>, betrieben von <span id="controller">{controller}</span>, für eine anonyme Reichweitenstatistik: wie oft Seiten aufgerufen werden, woher Besucher kommen und mit welchen Geräten.</p>
<h2>Erfasste Daten</h2>
<ul id="data">
{data_list}</ul>
<h2>Kürzung der IP-Adresse</h2>
<p id="address">{address_text}</p>
<h2>Cookies</h2>
{cookie_text}<h2>Websites und Einstellungen</h2>
<table><tr><th>Website</th><th>Hostnamen</th><th>„Do Not Track“ beachtet</th><th>„Global Privacy Control“ beachtet</th><th>behaltene Suchparameter</th><th>weitere behaltene Parameter</th><th>Download-Endungen</th></tr>
{sites}</table>
{events_section}<h2>Speicherdauer</h2>
<p>Einzelne Aufrufe werden <span id="raw-days">{raw_days}</span> Tage gespeichert und danach bei der nächsten planmäßigen Löschung entfernt; kein einzelner Aufruf ist älter als <span id="max-days">{max_days}</span> Tage. Der Tagesschlüssel des Besucherzählwerts wird jeden Tag ersetzt und vernichtet.</p>
{rollups}
{free_text}
<h2>Rechtsgrundlage</h2>
<p id="legal-basis">{basis}</p>
<h2>Ort der Verarbeitung</h2>
<p id="location">{location}</p>
<h2>Widerspruch</h2>
<p>Sie können der Erfassung jederzeit widersprechen: <a href="optout?lang=de">Opt-out</a>.</p>
"#,
        );
    } else {
        let _ = write!(
            h,
            r#"<h2>Who and why</h2>
<p>This website uses <strong>sparsam</strong>, run by <span id="controller">{controller}</span>, for anonymous reach statistics: how often pages are viewed, where visitors come from and which devices they use.</p>
<h2>Data collected</h2>
<ul id="data">
{data_list}</ul>
<h2>How the IP address is shortened</h2>
<p id="address">{address_text}</p>
<h2>Cookies</h2>
{cookie_text}<h2>Sites and settings</h2>
<table><tr><th>Site</th><th>Hostnames</th><th>“Do Not Track” honoured</th><th>“Global Privacy Control” honoured</th><th>kept search parameters</th><th>other kept parameters</th><th>download extensions</th></tr>
{sites}</table>
{events_section}<h2>Retention</h2>
<p>Individual page views are kept for <span id="raw-days">{raw_days}</span> days and then removed by the next scheduled deletion; no individual page view is older than <span id="max-days">{max_days}</span> days. The daily key of the visitor count value is replaced and destroyed every day.</p>
{rollups}
{free_text}
<h2>Legal basis</h2>
<p id="legal-basis">{basis}</p>
<h2>Where the data is processed</h2>
<p id="location">{location}</p>
<h2>Opting out</h2>
<p>You can object at any time: <a href="optout?lang=en">opt out</a>.</p>
"#,
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// The declared custom events of every site, each with its properties
/// (maximum length, allowed values), and what is refused; empty when no
/// site declares any.
fn custom_events_section(config: &Config, de: bool) -> String {
    let t = |d: &'static str, e: &'static str| if de { d } else { e };
    let mut rows = String::new();
    for s in &config.sites {
        let site = escape_html(if s.name.is_empty() { &s.id } else { &s.name });
        for e in &s.events {
            let props = if e.props.is_empty() {
                t("keine", "none").to_string()
            } else {
                e.props
                    .iter()
                    .map(|(key, p)| {
                        let values = match &p.values {
                            Some(vs) => format!(": {}", list(vs)),
                            None => String::new(),
                        };
                        format!(
                            "<code>{}</code> ({} {}){values}",
                            escape_html(key),
                            t("höchstens", "at most"),
                            p.max_len
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                rows,
                "<tr class=\"custom-event\"><td>{site}</td><td><code>{}</code></td><td>{props}</td></tr>",
                escape_html(&e.name)
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<h2 id=\"custom-events\">{}</h2>\n<p>{}</p>\n<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>\n{rows}</table>\n",
        t("Gemeldete Ereignisse", "Reported events"),
        t(
            "Nur diese Ereignisse und Eigenschaften werden gespeichert. Andere Ereignisse, andere Eigenschaften und Werte außerhalb der genannten Listen werden beim Empfang verworfen. Werte werden wie Adressen bereinigt (E-Mail-Adressen und Kennungen ersetzt), auf die genannte Länge gekürzt und wie anderer Freitext mit den einzelnen Aufrufen gelöscht.",
            "Only these events and properties are stored. Other events, other properties and values outside the lists shown are discarded on receipt. Values are cleaned like addresses (e-mail addresses and identifiers replaced), cut to the length shown and deleted with the individual page views like other free text.",
        ),
        t("Website", "Site"),
        t("Ereignis", "Event"),
        t("Eigenschaften (Zeichen, erlaubte Werte)", "Properties (characters, allowed values)"),
    )
}

/// `GET /privacy`
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LangQuery>,
) -> HttpResponse {
    let lang = pick_lang(q.lang.as_deref(), &req);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_LANGUAGE, lang.code()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *",
        ))
        .body(render(&state.config, lang))
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}

//! The privacy notice, `GET /privacy`: a German or English page rendered
//! from the live configuration, so what it says (address shortening,
//! retention, opt-out cookie, DNT/GPC per site, kept URL parameters,
//! download extensions) is always what the running server actually does.
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
use crate::privacy::AnonIp;

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

/// Renders the notice for `lang` from `config`.
pub fn render(config: &Config, lang: Lang) -> String {
    let de = lang == Lang::De;
    let t = |d: &'static str, e: &'static str| if de { d } else { e };
    let n = &config.notice;
    let p = &config.privacy;
    let controller = escape_html(&n.controller);
    let location = escape_html(&n.processing_location);
    let basis = escape_html(if de {
        &n.legal_basis_de
    } else {
        &n.legal_basis_en
    });
    let cookie = escape_html(&p.optout_cookie);
    let days = p.optout_cookie_days;
    let raw_days = config.retention.raw_days;
    let (v4, v4m) = masked_example(EXAMPLE_V4, config);
    let (v6, v6m) = masked_example(EXAMPLE_V6, config);
    let (v4m, v6m) = (escape_html(&v4m), escape_html(&v6m));
    let code = lang.code();

    let mut sites = String::new();
    for s in &config.sites {
        let name = if s.name.is_empty() { &s.id } else { &s.name };
        let yes_no = |b: bool| if b { t("ja", "yes") } else { t("nein", "no") };
        let _ = writeln!(
            sites,
            "<tr><td>{name}</td><td>{hosts}</td><td class=\"dnt\">{dnt}</td><td class=\"gpc\">{gpc}</td><td>{search}</td><td>{keep}</td><td>{dl}</td></tr>",
            name = escape_html(name),
            hosts = list(&s.hostnames),
            dnt = yes_no(s.honour_dnt),
            gpc = yes_no(s.honour_gpc),
            search = list(&s.search_params),
            keep = list(&s.keep_query_params),
            dl = list(&s.download_extensions),
        );
    }

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
    if de {
        let _ = write!(
            h,
            r#"<h2>Wer, wozu</h2>
<p>Diese Website verwendet <strong>sparsam</strong>, betrieben von <span id="controller">{controller}</span>, für eine anonyme Reichweitenstatistik: wie oft Seiten aufgerufen werden, woher Besucher kommen und mit welchen Geräten.</p>
<h2>Erfasste Daten</h2>
<ul>
<li>gekürzte IP-Adresse (siehe unten)</li>
<li>Gerätetyp, -marke und -modell</li>
<li>Betriebssystem und Version</li>
<li>Browser bzw. Browser-Engine und Version</li>
<li>Browser-Plugins</li>
<li>aufgerufene Adressen (URLs) ohne Abfrageteil, außer den unten je Website genannten Parametern (und <code>utm_*</code>)</li>
<li>verweisende Seite (Referrer)</li>
<li>Verweildauer</li>
<li>Downloads (Dateiendungen unten je Website)</li>
<li>Suchbegriffe der websiteinternen Suche</li>
</ul>
<h2>Kürzung der IP-Adresse</h2>
<p>Die Adresse wird sofort beim Empfang gekürzt, bevor sie gespeichert oder weiterverarbeitet wird; die vollständige Adresse wird nie gespeichert. IPv4 behält die ersten {v4p} Bit, IPv6 die ersten {v6p} Bit. Beispiel: aus <code>{v4}</code> wird <code id="example-v4">{v4m}</code>, aus <code>{v6}</code> wird <code id="example-v6">{v6m}</code>.</p>
<h2>Cookies</h2>
<p>Es werden keine Cookies gespeichert. Nur wenn Sie der Erfassung widersprechen, wird das Opt-out-Cookie <code id="cookie">{cookie}</code> gesetzt; es ist <span id="cookie-days">{days}</span> Tage gültig und enthält nur den Widerspruch.</p>
<h2>Websites und Einstellungen</h2>
<table><tr><th>Website</th><th>Hostnamen</th><th>„Do Not Track“ beachtet</th><th>„Global Privacy Control“ beachtet</th><th>behaltene Suchparameter</th><th>weitere behaltene Parameter</th><th>Download-Endungen</th></tr>
{sites}</table>
<h2>Speicherdauer</h2>
<p>Einzelne Aufrufe werden <span id="raw-days">{raw_days}</span> Tage gespeichert und danach gelöscht; danach bleiben nur zusammengefasste Zahlen ohne Personenbezug.</p>
<h2>Rechtsgrundlage</h2>
<p id="legal-basis">{basis}</p>
<h2>Ort der Verarbeitung</h2>
<p id="location">{location}</p>
<h2>Widerspruch</h2>
<p>Sie können der Erfassung jederzeit widersprechen: <a href="optout?lang=de">Opt-out</a>.</p>
"#,
            v4p = p.ipv4_prefix,
            v6p = p.ipv6_prefix,
        );
    } else {
        let _ = write!(
            h,
            r#"<h2>Who and why</h2>
<p>This website uses <strong>sparsam</strong>, run by <span id="controller">{controller}</span>, for anonymous reach statistics: how often pages are viewed, where visitors come from and which devices they use.</p>
<h2>Data collected</h2>
<ul>
<li>shortened IP address (see below)</li>
<li>device type, brand and model</li>
<li>operating system and version</li>
<li>browser or browser engine and version</li>
<li>browser plugins</li>
<li>visited addresses (URLs) without the query part, except the parameters listed per site below (and <code>utm_*</code>)</li>
<li>referring page (referrer)</li>
<li>time spent on a page</li>
<li>downloads (file extensions listed per site below)</li>
<li>site-search terms</li>
</ul>
<h2>How the IP address is shortened</h2>
<p>The address is shortened as soon as it arrives, before it is stored or processed further; the full address is never stored. IPv4 keeps the first {v4p} bits, IPv6 the first {v6p} bits. Example: <code>{v4}</code> becomes <code id="example-v4">{v4m}</code>, <code>{v6}</code> becomes <code id="example-v6">{v6m}</code>.</p>
<h2>Cookies</h2>
<p>No cookies are stored. Only if you opt out is the opt-out cookie <code id="cookie">{cookie}</code> set; it lasts <span id="cookie-days">{days}</span> days and holds nothing but your objection.</p>
<h2>Sites and settings</h2>
<table><tr><th>Site</th><th>Hostnames</th><th>“Do Not Track” honoured</th><th>“Global Privacy Control” honoured</th><th>kept search parameters</th><th>other kept parameters</th><th>download extensions</th></tr>
{sites}</table>
<h2>Retention</h2>
<p>Individual page views are kept for <span id="raw-days">{raw_days}</span> days and then deleted; only aggregated figures without personal data remain.</p>
<h2>Legal basis</h2>
<p id="legal-basis">{basis}</p>
<h2>Where the data is processed</h2>
<p id="location">{location}</p>
<h2>Opting out</h2>
<p>You can object at any time: <a href="optout?lang=en">opt out</a>.</p>
"#,
            v4p = p.ipv4_prefix,
            v6p = p.ipv6_prefix,
        );
    }
    h.push_str("</body></html>\n");
    h
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

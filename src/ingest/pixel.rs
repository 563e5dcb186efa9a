//! The tracking pixel, `GET /p.gif?site=…&url=…`: works without
//! JavaScript. Parameters: `site` (required), `url` (defaults to the
//! `Referer` header, i.e. the embedding page), `ref`, `title`, `kind`, `pv`,
//! `target`, `search`, `results`, `engaged_ms`, `plugins` (comma list);
//! for a declared custom event `e` (its name), `props` (a JSON object) and
//! `revenue` (an amount such as `9.90`).

use super::hit::{
    parse_kind, parse_props, parse_revenue, parse_u32, plugins_from_names, Hit, Reject,
};
use super::query::strict_pairs;
use crate::goals::RawCustomEvent;

/// Builds a hit from a pixel query string. `referer_header` is the page
/// that embedded the pixel.
pub fn parse_pixel(query: &str, referer_header: Option<&str>) -> Result<Hit, Reject> {
    let mut hit = Hit::default();
    let mut custom = RawCustomEvent::default();
    for (k, v) in strict_pairs(query)? {
        match k.as_str() {
            "site" => hit.site = v,
            "url" => hit.url = v,
            "ref" => hit.referrer = Some(v),
            "title" => hit.title = Some(v),
            "kind" => hit.kind = Some(parse_kind(&v)?),
            "pv" => hit.pageview_id = Some(v),
            "target" => hit.target = Some(v),
            "search" => hit.search = Some(v),
            "results" => hit.search_results = Some(parse_u32("results", &v)?),
            "engaged_ms" => hit.engaged_ms = Some(parse_u32("engaged_ms", &v)?),
            "plugins" => hit.plugins = plugins_from_names(v.split(',')),
            "e" => custom.name = v,
            "props" => {
                let value = serde_json::from_str(&v).map_err(|_| Reject::Invalid {
                    field: "props",
                    why: "expected a JSON object such as {\"plan\":\"pro\"}".into(),
                })?;
                custom.props = parse_props("props", &value)?;
            }
            "revenue" => custom.revenue_cents = Some(parse_revenue("revenue", &v)?),
            _ => {}
        }
    }
    if !custom.name.is_empty() {
        hit.custom = Some(custom);
    } else if !custom.props.is_empty() || custom.revenue_cents.is_some() {
        return Err(Reject::Missing("e"));
    }
    if hit.site.is_empty() {
        return Err(Reject::Missing("site"));
    }
    if hit.url.is_empty() {
        hit.url = referer_header.unwrap_or_default().to_string();
    }
    if hit.url.is_empty() {
        return Err(Reject::Missing("url"));
    }
    Ok(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;

    #[test]
    fn parses_fields_and_falls_back_to_referer() {
        let h = parse_pixel(
            "site=demo&kind=download&target=https%3A%2F%2Fx.org%2Fa.pdf",
            Some("https://x.org/p"),
        )
        .unwrap();
        assert_eq!(h.site, "demo");
        assert_eq!(h.url, "https://x.org/p");
        assert_eq!(h.kind, Some(EventKind::Download));
        assert_eq!(h.target.as_deref(), Some("https://x.org/a.pdf"));
    }

    #[test]
    fn custom_events_carry_name_props_and_revenue() {
        let h = parse_pixel(
            "site=demo&url=https%3A%2F%2Fx.org%2F&e=signup&props=%7B%22plan%22%3A%22pro%22%7D&revenue=9.90",
            None,
        )
        .unwrap();
        let c = h.custom.unwrap();
        assert_eq!(c.name, "signup");
        assert_eq!(c.props, vec![("plan".to_string(), "pro".to_string())]);
        assert_eq!(c.revenue_cents, Some(990));
        assert!(matches!(
            parse_pixel("site=demo&url=x&e=a&props=%5B1%5D", None),
            Err(Reject::Invalid { field: "props", .. })
        ));
        assert_eq!(
            parse_pixel("site=demo&url=x&props=%7B%7D&revenue=1", None).unwrap_err(),
            Reject::Missing("e")
        );
    }

    #[test]
    fn refuses_bad_numbers_and_missing_site() {
        assert_eq!(
            parse_pixel("url=x", None).unwrap_err(),
            Reject::Missing("site")
        );
        assert!(matches!(
            parse_pixel("site=a&url=x&engaged_ms=-5", None),
            Err(Reject::Invalid { .. })
        ));
        assert!(matches!(
            parse_pixel("site=a&url=x&engaged_ms=99999999999", None),
            Err(Reject::Invalid { .. })
        ));
        assert_eq!(
            parse_pixel("site=a", None).unwrap_err(),
            Reject::Missing("url")
        );
    }

    #[test]
    fn broken_percent_encoding_is_refused_not_altered() {
        let err = parse_pixel("site=a&url=%ZZ%E0%A4&title=%FF%FE", Some("https://x.org/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`url`") && err.contains("UTF-8"), "{err}");
        let h = parse_pixel("site=a&url=%ZZ", None).unwrap();
        assert_eq!(
            h.url, "%ZZ",
            "a stray % that decodes to nothing is kept as text"
        );
    }
}

//! The OpenAPI 3.1 document of `/api/v1`, generated from the route
//! handlers' annotations, their parameter types ([`super::report_params`])
//! and their answer types ([`super::report_answers`], the audit view and
//! the sweep report) by utoipa, and served at `GET /api/v1/openapi.json`.
//! Nothing is written by hand twice: a field added to an answer type shows
//! up in the document, and the OpenAPI test checks every route's real
//! answers against it.
//!
//! The error answers every route shares are reusable responses
//! (`#/components/responses/...`) built here, so a client sees one
//! description of, say, the lock-out after wrong tokens.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use super::error::ApiError;
use super::report_answers::ErrorBody;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// An error response whose body is [`ErrorBody`].
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    )
}

/// Declares a reusable error response: a unit type whose
/// [`ToResponse`] is an [`ErrorBody`] with `description`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $description:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), error_response($description).build().into())
            }
        }
    )*};
}

error_responses! {
    /// 400
    BadRequest => "A parameter is wrong; the message says how to fix it";
    /// 401
    Unauthorized => "Missing or unknown token";
    /// 403 for a site's token on another site
    Forbidden => "A valid token that may not read this site";
    /// 404
    NotFound => "No such site";
    /// 503 while the store reopens
    Unavailable => "The store is being reopened after a failed write (e.g. a full disk); \
                    retry after `Retry-After` seconds";
    /// 403 for a site's token on an admin route
    AdminOnly => "A site's read token: this route needs the admin token";
    /// 408
    SlowBody => "The request body did not arrive within `server.client_timeout_secs`; \
                 the connection is closed";
    /// 500
    InternalError => "A failure inside the server (logged); nothing about the request \
                      was wrong";
}

/// 429 after too many wrong tokens, with `Retry-After`.
pub struct TooManyTokenAttempts;

impl<'s> ToResponse<'s> for TooManyTokenAttempts {
    fn response() -> (&'s str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .description(Some("Seconds until the prefix may try again"))
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .build();
        (
            "TooManyTokenAttempts",
            error_response(
                "Too many wrong tokens from this shortened address prefix within a minute \
                 (`auth.max_failed_tokens_per_minute`): wrong or missing tokens from there \
                 are refused until `Retry-After` seconds have passed; a right token is \
                 still accepted",
            )
            .header("Retry-After", retry_after)
            .build()
            .into(),
        )
    }
}

/// The failures every report of one site can answer with (400, 401, 403,
/// 404, 429, 500, 503), each a reference to its reusable response: one
/// list for the six site reports instead of six copies that could drift.
pub struct SiteReportFailures;

impl IntoResponses for SiteReportFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("400", BadRequest::response().0),
            ("401", Unauthorized::response().0),
            ("403", Forbidden::response().0),
            ("404", NotFound::response().0),
            ("429", TooManyTokenAttempts::response().0),
            ("500", InternalError::response().0),
            ("503", Unavailable::response().0),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), Ref::from_response_name(name).into()))
        .collect()
    }
}

/// The bearer token scheme, and no token for the document itself.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        if let Some(op) = doc
            .paths
            .paths
            .get_mut(OPENAPI_PATH)
            .and_then(|item| item.get.as_mut())
        {
            op.security = Some(Vec::new());
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sparsam reporting API",
        version = "1",
        description = "Reports of a sparsam collector (read-only), and for the admin token \
            the audit view and an on-demand retention sweep. Send `Authorization: Bearer \
            <token>`: a site's read token reads that site, the admin token reads every site. \
            Unfiltered reports come from roll-ups; reports with `filter` parameters scan raw \
            events, which exist only for the raw retention period. Every table is also \
            available as CSV (`Accept: text/csv` or `format=csv`); cells starting with = + - \
            @ tab or CR are prefixed with an apostrophe."
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    paths(
        openapi,
        super::report::sites,
        super::report::summary,
        super::report::timeseries,
        super::report::breakdown,
        super::report::realtime,
        super::report::goals,
        super::report::funnel,
        super::audit::audit,
        super::audit::sweep,
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Unavailable,
            AdminOnly,
            SlowBody,
            InternalError,
            TooManyTokenAttempts
        )
    ),
    modifiers(&Security)
)]
struct ApiDoc;

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served, built once.
static DOCUMENT_JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| document().to_pretty_json().map_err(|e| e.to_string()));

/// This document
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    responses(
        (status = 200, description = "OpenAPI document", content_type = "application/json",
         body = Object),
    )
)]
pub async fn openapi() -> Result<HttpResponse, ApiError> {
    match &*DOCUMENT_JSON {
        Ok(json) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(json.as_str())),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document did not serialize");
            Err(ApiError::Internal)
        }
    }
}

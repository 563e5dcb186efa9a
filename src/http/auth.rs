//! Bearer-token access to reports: per-site read tokens and the admin
//! token, compared in constant time. Missing or unknown tokens get 401; a
//! valid token for another site gets 403.

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Config;

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Site(String),
}

fn ct_eq(a: &str, b: &str) -> bool {
    // Compare digests so the comparison time does not depend on where the
    // strings differ nor on their lengths.
    let da = blake3::hash(a.as_bytes());
    let db = blake3::hash(b.as_bytes());
    da.as_bytes().ct_eq(db.as_bytes()).into()
}

/// Finds the token's owner. Every configured token is compared, match or
/// not, so timing does not reveal which one matched.
pub fn authenticate(req: &HttpRequest, config: &Config) -> Result<Principal, ApiError> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let mut found = None;
    if !config.auth.admin_token.is_empty() && ct_eq(token, &config.auth.admin_token) {
        found = Some(Principal::Admin);
    }
    for site in &config.sites {
        for t in &site.tokens {
            if ct_eq(token, t) && found.is_none() {
                found = Some(Principal::Site(site.id.clone()));
            }
        }
    }
    found.ok_or(ApiError::Unauthorized)
}

/// Checks that the token may read `site`.
pub fn authorize_site(
    req: &HttpRequest,
    config: &Config,
    site: &str,
) -> Result<Principal, ApiError> {
    let p = authenticate(req, config)?;
    match &p {
        Principal::Admin => Ok(p),
        Principal::Site(s) if s == site => Ok(p),
        Principal::Site(_) => Err(ApiError::Forbidden(site.to_string())),
    }
}

/// Checks for the admin token.
pub fn authorize_admin(req: &HttpRequest, config: &Config) -> Result<(), ApiError> {
    match authenticate(req, config)? {
        Principal::Admin => Ok(()),
        Principal::Site(_) => Err(ApiError::AdminOnly),
    }
}

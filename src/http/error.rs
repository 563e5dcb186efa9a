//! Errors mapped to HTTP in one place. Bodies are short JSON messages that
//! say what to fix; they never echo a client address, a rejected value or
//! anything else the caller sent (they name parameters and fields the API
//! defines, never what the caller wrote).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::ingest::{PipelineError, Reject};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Reject(#[from] Reject),
    #[error("missing or malformed Authorization header; send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("this token may not read this site")]
    Forbidden,
    #[error(
        "this route needs the admin token (`[auth] admin_token` in the configuration); \
         a site's read token cannot open it"
    )]
    AdminOnly,
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("the collector is busy; retry later")]
    Busy,
    #[error("too many requests from this network; retry in {0} s")]
    RateLimited(u64),
    #[error("the request body did not arrive within {0} s")]
    SlowBody(u64),
    #[error("the event could not be stored; retry later")]
    StoreFailed,
    #[error("the store is being reopened after a write failure (is the disk full?); retry later")]
    StoreUnavailable,
    #[error("internal error")]
    Internal,
}

/// Runs `f` on the blocking thread pool. The pool failing to run it (the
/// task panicked, or the runtime is shutting down) is an internal error:
/// answered 500 and logged.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    actix_web::web::block(f).await.map_err(|e| {
        tracing::error!(error = %e, "a blocking task failed");
        ApiError::Internal
    })
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Reject(r) => ApiError::Reject(r),
            PipelineError::Salt(err) => {
                tracing::error!(error = %err, "visitor salt unavailable");
                ApiError::Internal
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Reject(r) => {
                StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::AdminOnly => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Busy | ApiError::StoreFailed | ApiError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if matches!(
            self,
            ApiError::Busy | ApiError::StoreFailed | ApiError::StoreUnavailable
        ) {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::RateLimited(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if matches!(self, ApiError::SlowBody(_)) {
            // the rest of the body may still be on its way: not this connection
            res.insert_header((header::CONNECTION, "close"));
        }
        if matches!(self, ApiError::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(super::report_answers::ErrorBody {
            error: self.to_string(),
        })
    }
}

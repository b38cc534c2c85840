//! Errors at the HTTP edge: each maps to a status code and a short plain-text message that
//! names the failing rule. Clients match on status codes (and some on message prefixes such as
//! `Unauthorized Action:`), so the mapping follows the reference protocol.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::store::StoreError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 401 for want of authority, counted in the metrics under `reason` (a fixed code:
    /// `telemetry::reason` or a `ChainError::code`).
    pub fn unauthorized_because(reason: &'static str, message: impl Into<String>) -> Self {
        crate::telemetry::auth_failure(reason);
        Self::unauthorized(message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Details go to the log, not to the client.
        tracing::error!(error = %e, "storage error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal storage error")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use crate::telemetry::{auth_failure, reason};
        match e {
            AuthError::Malformed(t) => {
                auth_failure(reason::MALFORMED);
                ApiError::bad_request(format!("malformed token: {t}"))
            }
            AuthError::Unverified(t) => {
                ApiError::unauthorized_because(reason::UNVERIFIED, t.to_string())
            }
            AuthError::Chain(c) => ApiError::unauthorized_because(c.code(), c.to_string()),
            AuthError::Replay => {
                auth_failure(reason::REPLAY);
                ApiError::new(StatusCode::CONFLICT, "duplicate invocation")
            }
            AuthError::Unenforced(u) => {
                auth_failure(reason::UNENFORCED);
                ApiError::forbidden(u.to_string())
            }
            AuthError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            self.message,
        )
            .into_response()
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

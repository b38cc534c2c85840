//! `AppError`: what a handler can fail with, and how each case reaches the client. Internal
//! details are logged (never secrets: no error here carries key bytes, codes or tokens) and the
//! client gets a short message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::keys::KeyError;
use crate::store::StoreError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or unacceptable input.
    #[error("{0}")]
    BadRequest(String),
    /// Not signed in, or the credential did not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but the last passkey user verification is older than the window.
    #[error("confirm with your passkey first: signing and export need a passkey check within the last {window_secs} s")]
    FreshUvRequired {
        /// The configured window.
        window_secs: u64,
    },
    /// The CSRF token is missing or wrong, or the request is cross-origin.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (for this user).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again later.
    #[error("{0}")]
    TooManyRequests(String),
    /// A server-side failure (logged, not shown).
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::FreshUvRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::FreshUvRequired { .. } => "fresh_passkey_required",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(m) => AppError::Conflict(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound => AppError::NotFound,
            KeyError::NotUsable(m) => AppError::Conflict(m),
            KeyError::Store(s) => s.into(),
            other => AppError::Internal(other.to_string()),
        }
    }
}

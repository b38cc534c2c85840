//! OAuth 2.0 errors in the RFC 6749 §5.2 JSON shape (`{"error", "error_description"}`), with the
//! status the RFC names: 401 (and `WWW-Authenticate`) for `invalid_client`, 400 otherwise, 500
//! for `server_error` (logged, not detailed). Every answer carries `Cache-Control: no-store`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

/// An error of the token or userinfo endpoint.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// RFC 6749 / 6750 error code.
    pub code: &'static str,
    /// Human-readable text (no secrets).
    pub description: String,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    /// `invalid_client` (401).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }

    /// `unsupported_grant_type`.
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", d)
    }

    /// `invalid_token` (RFC 6750, 401 with a Bearer challenge).
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", d)
    }

    /// `server_error` (500; the detail is logged, not sent).
    pub fn server(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "oidc request failed");
        Self::new("server_error", "internal error")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::server(e)
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut res = (status, Json(body)).into_response();
        no_store(&mut res);
        let challenge = match self.code {
            "invalid_client" => Some(HeaderValue::from_static("Basic realm=\"openkey\"")),
            "invalid_token" => Some(HeaderValue::from_static(
                "Bearer realm=\"openkey\", error=\"invalid_token\"",
            )),
            _ => None,
        };
        if let Some(c) = challenge {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        res
    }
}

//! `GET|POST /oidc/userinfo` with `Authorization: Bearer <access token>` (RFC 6750 §2.1):
//! `sub`, `did` and, with scope `email`, `email`. A missing, unknown, expired or revoked token
//! is 401 with a `Bearer` challenge.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::digest;
use super::error::{no_store, OAuthError};
use super::token::identity_claims;
use crate::clock::now_ms;
use crate::state::AppState;

/// The userinfo endpoint.
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_token("a bearer access token is required"))?;
    let grant = state
        .store
        .access_grant(&digest(token), now_ms())?
        .ok_or_else(|| OAuthError::invalid_token("unknown, expired or revoked access token"))?;
    let (did, email) =
        identity_claims(&state, &grant).map_err(|_| OAuthError::invalid_token("no such user"))?;
    let mut body = serde_json::json!({ "sub": grant.user_id, "did": did });
    if let Some(e) = email {
        body["email"] = e.into();
    }
    let mut res = Json(body).into_response();
    no_store(&mut res);
    Ok(res)
}

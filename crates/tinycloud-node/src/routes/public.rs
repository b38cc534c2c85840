//! Unauthenticated reads of spaces named `public` (rate-limited per client IP).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tinycloud_auth::resource::{validate_path, SpaceId};

use super::kv;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

fn public_space(state: &SharedState, addr: &SocketAddr, space: &str) -> ApiResult<String> {
    if !state.public_limiter.allow(addr.ip()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded",
        ));
    }
    let id: SpaceId = space
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Invalid space ID: {e}")))?;
    let public = id.is_public();
    let id = id.to_string();
    if !public || !state.space_exists(&id) {
        return Err(ApiError::not_found("Space not found"));
    }
    Ok(id)
}

/// `GET|HEAD /public/<space>/kv/<key>`.
#[utoipa::path(
    method(get, head), path = "/public/{space}/kv/{*key}", tag = "public",
    summary = "Read a value of a public space",
    description = "Unauthenticated, rate-limited per client IP.",
    params(
        ("space" = String, Path, description = "A space named `public`"),
        ("key" = String, Path, description = "The key"),
    ),
    responses(
        (status = 200, description = "The value", content(("application/octet-stream")), headers(("etag" = String, description = "Strong ETag"))),
        (status = 400, description = "Bad space id or key", body = String, content_type = "text/plain"),
        (status = 404, description = "Space or key not found", body = String, content_type = "text/plain"),
        (status = 429, description = "Rate limit exceeded", body = String, content_type = "text/plain"),
    )
)]
pub async fn get(
    State(state): State<SharedState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    Path((space, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let space = public_space(&state, &addr, &space)?;
    validate_path(&key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    kv::public_object(&state, &space, &key, method != Method::HEAD).await
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /public/<space>/kv?prefix=`.
#[utoipa::path(
    get, path = "/public/{space}/kv", tag = "public",
    summary = "List keys of a public space",
    description = "Unauthenticated, rate-limited per client IP; raw prefix match.",
    params(
        ("space" = String, Path, description = "A space named `public`"),
        ("prefix" = Option<String>, Query, description = "Key prefix"),
    ),
    responses(
        (status = 200, description = "Keys", body = Vec<String>, headers(("x-tinycloud-truncated" = String, description = "More keys follow"))),
        (status = 400, description = "Bad space id", body = String, content_type = "text/plain"),
        (status = 404, description = "Space not found", body = String, content_type = "text/plain"),
        (status = 429, description = "Rate limit exceeded", body = String, content_type = "text/plain"),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(space): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let space = public_space(&state, &addr, &space)?;
    let (keys, truncated) = kv::public_list(
        &state,
        &space,
        &q.prefix,
        state.config.limits.max_list_limit,
    )
    .await?;
    let mut resp = Json(keys).into_response();
    resp.headers_mut().insert(
        "x-tinycloud-truncated",
        axum::http::HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok(resp)
}

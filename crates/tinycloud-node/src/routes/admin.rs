//! The operator API: per-space quota overrides and usage. Enabled only when
//! `TINYCLOUD_ADMIN_SECRET` is set (503 otherwise, before anything else is looked at); every
//! request carries `Authorization: Bearer <secret>`, compared by digest in constant time
//! (`config::AdminSecret::matches`). The secret is never logged; a refused bearer is logged
//! with the client address only.
//!
//! An override replaces the configured default (`storage.limit`, or
//! `public_spaces.storage_limit` for spaces named `public`) everywhere a quota is enforced
//! (`AppState::limit_for`: KV writes, SQL writes, stored delegations); it is written to the
//! index before it takes effect and is answered, so it survives a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use tinycloud_auth::resource::SpaceId;

use super::openapi::{QuotaList, QuotaStatus, SpaceUsage, UsagePage};
use crate::clock::now;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// Most overrides a node keeps (setting one more is refused with 409).
pub const MAX_QUOTA_OVERRIDES: usize = 100_000;
/// Largest page of `GET /admin/usage`.
pub const MAX_USAGE_PAGE: usize = 1000;
const DEFAULT_USAGE_PAGE: usize = 100;

/// 503 when the admin API is off, 401 unless the request carries the secret as its bearer.
fn admin_gate(state: &SharedState, headers: &HeaderMap, peer: SocketAddr) -> ApiResult<()> {
    let Some(secret) = &state.config.admin_secret else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "admin API not configured (set TINYCLOUD_ADMIN_SECRET)",
        ));
    };
    let Some(header) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized_because(
            crate::telemetry::reason::ADMIN,
            "missing Authorization header",
        ));
    };
    if bearer(header.as_bytes()).is_some_and(|t| secret.matches(t)) {
        return Ok(());
    }
    tracing::info!(peer = %peer.ip(), "admin request refused: missing or wrong bearer");
    Err(ApiError::unauthorized_because(
        crate::telemetry::reason::ADMIN,
        "invalid admin credentials",
    ))
}

/// Proof that the request carries the operator's bearer: an extractor, so the gate runs before
/// the handler and before its path, query or body is read.
pub struct Operator;

impl axum::extract::FromRequestParts<SharedState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        admin_gate(state, &parts.headers, peer)?;
        Ok(Operator)
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
}

fn space_id(raw: &str) -> ApiResult<String> {
    raw.parse::<SpaceId>()
        .map(|s| s.to_string())
        .map_err(|e| ApiError::bad_request(format!("Invalid space ID: {e}")))
}

/// (index bytes, SQL bytes) a space uses now.
async fn usage(state: &SharedState, space: &str) -> ApiResult<(u64, u64)> {
    let index = state.index.usage(space).await?;
    let sql = state.sql.dbs.usage(space).await?;
    Ok((index, sql))
}

fn override_of(state: &SharedState, space: &str) -> Option<u64> {
    state
        .quota_overrides
        .read()
        .ok()
        .and_then(|m| m.get(space).copied())
}

async fn status(state: &SharedState, space: String) -> ApiResult<Json<QuotaStatus>> {
    let (index, sql) = usage(state, &space).await?;
    Ok(Json(QuotaStatus {
        override_bytes: override_of(state, &space),
        effective_limit_bytes: state.limit_for(&space),
        current_usage_bytes: Some(index.saturating_add(sql)),
        space_id: space,
    }))
}

/// `PUT /admin/quota/<spaceId>` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetQuotaRequest {
    /// The space's new limit in bytes (0 refuses every further write).
    pub limit_bytes: u64,
}

/// Writes the override (or its removal) durably, then puts it in force.
async fn set_override(state: &SharedState, space: &str, limit: Option<u64>) -> ApiResult<()> {
    let _one_at_a_time = state.quota_admin.lock().await;
    let stored = state
        .quotas
        .set_quota_override(space, limit, MAX_QUOTA_OVERRIDES, now().as_millis())
        .await?;
    if !stored {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "this node already holds {MAX_QUOTA_OVERRIDES} quota overrides; remove one first"
            ),
        ));
    }
    if let Ok(mut m) = state.quota_overrides.write() {
        match limit {
            Some(l) => m.insert(space.to_owned(), l),
            None => m.remove(space),
        };
    }
    tracing::info!(space, limit = ?limit, "quota override changed");
    Ok(())
}

#[utoipa::path(
    put, path = "/admin/quota/{space}", tag = "admin",
    summary = "Set a space's quota override",
    description = "Replaces the configured storage limit of one space (KV, SQL and stored delegations count against it). Durable: it survives a restart. The space need not exist yet.",
    params(
        ("space" = String, Path, description = "Space id `tinycloud:<did suffix>:<name>`"),
        ("Authorization" = String, Header, description = super::openapi::ADMIN_HEADER),
    ),
    request_body(content = SetQuotaRequest, content_type = "application/json"),
    security(("adminBearer" = [])),
    responses(
        (status = 200, description = "The override is in force", body = QuotaStatus),
        (status = 400, description = "Not a space id, or a malformed body", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong admin bearer", body = String, content_type = "text/plain"),
        (status = 409, description = "Too many overrides", body = String, content_type = "text/plain"),
        (status = 503, description = "Admin API not configured", body = String, content_type = "text/plain"),
    )
)]
pub async fn put_quota(
    State(state): State<SharedState>,
    _operator: Operator,
    Path(space): Path<String>,
    body: Bytes,
) -> ApiResult<Json<QuotaStatus>> {
    let space = space_id(&space)?;
    let req: SetQuotaRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("body must be {{\"limit_bytes\": <u64>}}: {e}"))
    })?;
    set_override(&state, &space, Some(req.limit_bytes)).await?;
    status(&state, space).await
}

#[utoipa::path(
    get, path = "/admin/quota/{space}", tag = "admin",
    summary = "A space's quota and usage",
    description = "The override (if any), the limit enforced now and the bytes the space uses.",
    params(
        ("space" = String, Path, description = "Space id `tinycloud:<did suffix>:<name>`"),
        ("Authorization" = String, Header, description = super::openapi::ADMIN_HEADER),
    ),
    security(("adminBearer" = [])),
    responses(
        (status = 200, description = "The space's quota", body = QuotaStatus),
        (status = 400, description = "Not a space id", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong admin bearer", body = String, content_type = "text/plain"),
        (status = 503, description = "Admin API not configured", body = String, content_type = "text/plain"),
    )
)]
pub async fn get_quota(
    State(state): State<SharedState>,
    _operator: Operator,
    Path(space): Path<String>,
) -> ApiResult<Json<QuotaStatus>> {
    let space = space_id(&space)?;
    status(&state, space).await
}

#[utoipa::path(
    delete, path = "/admin/quota/{space}", tag = "admin",
    summary = "Remove a space's quota override",
    description = "The configured default applies again (idempotent: removing an absent override succeeds).",
    params(
        ("space" = String, Path, description = "Space id `tinycloud:<did suffix>:<name>`"),
        ("Authorization" = String, Header, description = super::openapi::ADMIN_HEADER),
    ),
    security(("adminBearer" = [])),
    responses(
        (status = 200, description = "The default is in force", body = QuotaStatus),
        (status = 400, description = "Not a space id", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong admin bearer", body = String, content_type = "text/plain"),
        (status = 503, description = "Admin API not configured", body = String, content_type = "text/plain"),
    )
)]
pub async fn delete_quota(
    State(state): State<SharedState>,
    _operator: Operator,
    Path(space): Path<String>,
) -> ApiResult<Json<QuotaStatus>> {
    let space = space_id(&space)?;
    set_override(&state, &space, None).await?;
    status(&state, space).await
}

#[utoipa::path(
    get, path = "/admin/quota", tag = "admin",
    summary = "Every quota override",
    description = "The overrides (space id → bytes) and the configured defaults.",
    params(("Authorization" = String, Header, description = super::openapi::ADMIN_HEADER)),
    security(("adminBearer" = [])),
    responses(
        (status = 200, description = "The overrides", body = QuotaList),
        (status = 401, description = "Missing or wrong admin bearer", body = String, content_type = "text/plain"),
        (status = 503, description = "Admin API not configured", body = String, content_type = "text/plain"),
    )
)]
pub async fn list_quotas(
    State(state): State<SharedState>,
    _operator: Operator,
) -> ApiResult<Json<QuotaList>> {
    let overrides: BTreeMap<String, u64> = state
        .quota_overrides
        .read()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    Ok(Json(QuotaList {
        overrides,
        default_limit_bytes: state.default_limit(false),
        public_default_limit_bytes: state.default_limit(true),
    }))
}

/// `GET /admin/usage` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start after this space id (the previous page's `next`).
    after: Option<String>,
    /// Spaces per page (1..=1000, default 100).
    limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/admin/usage", tag = "admin",
    summary = "Usage of the hosted spaces",
    description = "A page of hosted spaces ordered by id, each with the bytes it uses (KV values and stored delegations, SQL databases), its override and the limit enforced.",
    params(
        UsageQuery,
        ("Authorization" = String, Header, description = super::openapi::ADMIN_HEADER),
    ),
    security(("adminBearer" = [])),
    responses(
        (status = 200, description = "One page of spaces", body = UsagePage),
        (status = 400, description = "Bad `limit` or query", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong admin bearer", body = String, content_type = "text/plain"),
        (status = 503, description = "Admin API not configured", body = String, content_type = "text/plain"),
    )
)]
pub async fn usage_page(
    State(state): State<SharedState>,
    _operator: Operator,
    uri: Uri,
) -> ApiResult<Json<UsagePage>> {
    // Parsed only once the caller is known to be the operator.
    let Query(q) = Query::<UsageQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let limit = q.limit.unwrap_or(DEFAULT_USAGE_PAGE);
    if !(1..=MAX_USAGE_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_USAGE_PAGE}"
        )));
    }
    let mut ids: Vec<String> = state
        .spaces
        .read()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    let total_spaces = ids.len() as u64;
    ids.sort_unstable();
    let start = q
        .after
        .as_deref()
        .map_or(0, |a| ids.partition_point(|id| id.as_str() <= a));
    let page: Vec<String> = ids.into_iter().skip(start).take(limit + 1).collect();
    let next = (page.len() > limit).then(|| page[limit - 1].clone());
    let mut spaces = Vec::with_capacity(page.len().min(limit));
    for space in page.into_iter().take(limit) {
        let (index_bytes, sql_bytes) = usage(&state, &space).await?;
        spaces.push(SpaceUsage {
            usage_bytes: index_bytes.saturating_add(sql_bytes),
            index_bytes,
            sql_bytes,
            override_bytes: override_of(&state, &space),
            effective_limit_bytes: state.limit_for(&space),
            space_id: space,
        });
    }
    Ok(Json(UsagePage {
        spaces,
        next,
        total_spaces,
    }))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer "), Some(&b""[..]));
        assert_eq!(bearer(b"Basic abcdefg"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"abc"), None);
    }
}

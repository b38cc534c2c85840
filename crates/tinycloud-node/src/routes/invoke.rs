//! `POST /invoke`: one door for the data plane. The invocation is verified, its chain
//! validated and its single use consumed by the authorizer before any service runs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tinycloud_auth::capability::Capability;

use super::{authorization, kv};
use crate::error::{ApiError, ApiResult};
use crate::state::{now, SharedState};

/// `POST /invoke`.
#[utoipa::path(
    post, path = "/invoke", tag = "invoke",
    summary = "Invoke a capability on a space",
    description = "The data plane. The invocation names one capability (several for SQL on one database, or a KV batch): `tinycloud.kv/put|get|metadata|list|del` on `<space>/kv/<key>` (body = the value; `If-Match`/`If-None-Match`, `x-tinycloud-limit`, `x-tinycloud-cursor`, `x-tinycloud-max-response-bytes`, `x-tinycloud-meta-*` headers), `tinycloud.sql/*` on `<space>/sql/<db>` (JSON body), `tinycloud.capabilities/read`, `tinycloud.space/*`.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("If-Match" = Option<String>, Header, description = "KV put/del: the strong ETag the current value must have"),
        ("If-None-Match" = Option<String>, Header, description = "KV put: `*` (create only); KV get: an ETag (304 when it matches)"),
        ("x-tinycloud-limit" = Option<u32>, Header, description = "KV list: page size (1..=limits.max_list_limit)"),
        ("x-tinycloud-cursor" = Option<String>, Header, description = "KV list: the `x-tinycloud-next-cursor` of the previous page"),
        ("x-tinycloud-max-response-bytes" = Option<u64>, Header, description = "KV get: return at most this many bytes"),
    ),
    request_body(description = "KV put: the value (any content type, kept as metadata); SQL: a JSON request", content((crate::routes::openapi::SqlRequest = "application/json"), ("application/octet-stream"))),
    responses(
        (status = 200, description = "Done: a value (KV get), a JSON key list (KV list), a SQL result, an SQLite file (SQL export), or an empty body", content((Object = "application/json"), ("application/octet-stream"), ("application/x-sqlite3"), ("text/plain")), headers(("etag" = String, description = "Strong ETag `\"blake3-<hex>\"`"), ("x-tinycloud-truncated" = String, description = "KV list: more keys follow"), ("x-tinycloud-next-cursor" = String, description = "KV list: cursor of the next page"))),
        (status = 304, description = "KV get: not modified"),
        (status = 400, description = "Malformed token, resource, header or body", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the chain does not grant the capability", body = String, content_type = "text/plain"),
        (status = 402, description = "Space storage quota exceeded", body = String, content_type = "text/plain"),
        (status = 403, description = "Caveats refuse the request", body = String, content_type = "text/plain"),
        (status = 404, description = "Space or key not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 412, description = "Precondition failed", body = String, content_type = "text/plain"),
        (status = 413, description = "Value, result or token too large", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many requests", body = String, content_type = "text/plain"),
        (status = 501, description = "Ability not supported", body = String, content_type = "text/plain"),
        (status = 503, description = "Storage temporarily unavailable", body = String, content_type = "text/plain"),
    )
)]
pub async fn invoke(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let header = authorization(&headers, state.config.limits.max_token_bytes)?;
    let now = now();
    let authz = state.auth.authorize(header, now).await?;
    let caps = authz.invocation.info().capabilities.clone();
    let first = caps
        .first()
        .ok_or_else(|| ApiError::bad_request("the invocation names no capability"))?;
    let space = first.resource.space().ok_or_else(|| {
        ApiError::bad_request(format!("{} is not a space resource", first.resource))
    })?;
    for c in &caps[1..] {
        if c.resource.space().as_ref() != Some(&space) {
            return Err(ApiError::bad_request(
                "the capabilities of one invocation must all name the same space",
            ));
        }
    }
    if !state.space_exists(&space.to_string()) {
        return Err(ApiError::not_found("Space not found"));
    }
    let namespace_is = |ns: &str| caps.iter().all(|c| c.ability.canonical().namespace() == ns);
    if namespace_is("tinycloud.sql") {
        let sql_caps: Vec<crate::sql::SqlCap<'_>> = caps
            .iter()
            .zip(&authz.authorized.caveats)
            .map(|(cap, caveats)| crate::sql::SqlCap { cap, caveats })
            .collect();
        return crate::sql::handle(&state, authz.invocation.invoker(), &sql_caps, body).await;
    }
    if caps.len() > 1 {
        let names: Vec<_> = caps.iter().map(|c| c.ability.canonical()).collect();
        let all = |n: &str| {
            names
                .iter()
                .all(|a| a.namespace() == "tinycloud.kv" && a.name() == n)
        };
        if all("get") || all("metadata") {
            return kv::batch_read(&state, &caps).await;
        }
    }
    let [cap] = caps.as_slice() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this combination of capabilities in one invocation is not supported",
        ));
    };
    let ability = cap.ability.canonical();
    match (ability.namespace(), ability.name()) {
        ("tinycloud.kv", _) => {
            // KV defines no caveats: the door refused any constrained grant already.
            kv::handle(&state, &authz.invocation, cap, &headers, body).await
        }
        ("tinycloud.capabilities", "read") => capabilities_read(&state, cap).await,
        ("tinycloud.space", "info" | "create" | "list" | "host") => {
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{} is not supported by this node", cap.ability),
        )),
    }
}

/// `tinycloud.capabilities/read`: the delegations that name the space, keyed by CID.
async fn capabilities_read(state: &SharedState, cap: &Capability) -> ApiResult<Response> {
    // The answer lists every delegation of the space, so only a grant on the whole listing
    // (`<space>/capabilities/all`, or the bare service) may read it: a narrower path is not
    // something this listing can honour (deny by default).
    let r = super::service_resource(cap, "capabilities")?;
    if !matches!(r.path(), None | Some("all")) {
        return Err(ApiError::forbidden(
            "tinycloud.capabilities/read is served only on <space>/capabilities/all",
        ));
    }
    let space = r.space();
    let delegations = state
        .index
        .delegations_for_space(&space.to_string())
        .await?;
    let mut out = Map::new();
    for d in delegations {
        let caps: Vec<Value> = d
            .info
            .capabilities
            .iter()
            .map(|c| {
                json!({
                    "resource": c.resource.to_string(),
                    "ability": c.ability.to_string(),
                    "caveats": c.caveats.to_wire(),
                })
            })
            .collect();
        out.insert(
            d.info.cid.to_string(),
            json!({
                "capabilities": caps,
                "delegator": d.info.issuer.to_string(),
                "delegate": d.info.delegatee.to_string(),
                "parents": d.info.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "raw": d.header,
                "revoked": state.auth.is_delegation_revoked(&d.info),
            }),
        );
    }
    Ok(Json(Value::Object(out)).into_response())
}

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
pub async fn invoke(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let header = authorization(&headers, state.config.limits.max_token_bytes)?;
    let now = now();
    let authz = state.auth.authorize(header, now).await?;
    let caps = authz.invocation.info().capabilities.clone();
    let [cap] = caps.as_slice() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "invocations with several capabilities (batch operations) are not supported",
        ));
    };
    let space = cap.resource.space().ok_or_else(|| {
        ApiError::bad_request(format!("{} is not a space resource", cap.resource))
    })?;
    if !state.space_exists(&space.to_string()) {
        return Err(ApiError::not_found("Space not found"));
    }
    let caveats = authz
        .authorized
        .caveats
        .first()
        .cloned()
        .unwrap_or_default();
    let ability = cap.ability.canonical();
    match (ability.namespace(), ability.name()) {
        ("tinycloud.kv", _) => {
            // KV defines no caveats: the door refused any constrained grant already.
            kv::handle(&state, &authz.invocation, cap, &headers, body).await
        }
        ("tinycloud.sql", _) => {
            crate::sql::handle(&state, authz.invocation.invoker(), cap, &caveats, body).await
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
    let space = cap
        .resource
        .space()
        .ok_or_else(|| ApiError::bad_request("capabilities/read needs a space resource"))?;
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

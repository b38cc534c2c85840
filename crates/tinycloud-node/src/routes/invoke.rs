//! `POST /invoke`: one door for the data plane. The invocation is verified, its chain
//! validated and its single use consumed by the authorizer before any service runs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tinycloud_auth::capability::Capability;

use super::authorized::Signed;
use super::kv;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::store::StoredDelegation;

/// `POST /invoke`.
#[utoipa::path(
    post, path = "/invoke", tag = "invoke",
    summary = "Invoke a capability on a space",
    description = "The data plane. The invocation names one capability (several for SQL on one database, or a KV batch): `tinycloud.kv/put|get|metadata|list|del` on `<space>/kv/<key>` (body = the value; `If-Match`/`If-None-Match`, `x-tinycloud-limit`, `x-tinycloud-cursor`, `x-tinycloud-max-response-bytes`, `x-tinycloud-meta-*` headers), `tinycloud.sql/*` on `<space>/sql/<db>` (JSON body), `tinycloud.capabilities/read` (optional `capabilitiesReadParams` fact), `tinycloud.space/*`, `tinycloud.encryption/decrypt` (the decrypt request as body; refusals 403).",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("If-Match" = Option<String>, Header, description = "KV put/del: the strong ETag the current value must have"),
        ("If-None-Match" = Option<String>, Header, description = "KV put: `*` (create only); KV get: an ETag (304 when it matches)"),
        ("x-tinycloud-limit" = Option<u32>, Header, description = "KV list: page size (1..=limits.max_list_limit)"),
        ("x-tinycloud-cursor" = Option<String>, Header, description = "KV list: the `x-tinycloud-next-cursor` of the previous page"),
        ("x-tinycloud-max-response-bytes" = Option<u64>, Header, description = "KV get: return at most this many bytes"),
    ),
    request_body(description = "KV put: the value (any content type, kept as metadata); KV batch put: multipart/form-data, one part per key; SQL: a JSON request", content((crate::routes::openapi::SqlRequest = "application/json"), ("application/octet-stream"), ("multipart/form-data"))),
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
    signed: Signed,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Signature and time were checked (`Signed`); a decrypt then takes its own path (audit,
    // its own refusals), everything else the door's chain check and single use.
    let now = signed.at();
    let invocation = signed.into_invocation();
    if invocation
        .info()
        .capabilities
        .iter()
        .any(|c| c.ability.canonical().to_string() == "tinycloud.encryption/decrypt")
    {
        return super::encryption::decrypt_invoke(&state, invocation, body).await;
    }
    let authz = state.auth.authorize_decoded(invocation, now).await?;
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
        let sql_caps: Vec<super::sql::SqlCap<'_>> = caps
            .iter()
            .zip(&authz.authorized.caveats)
            .map(|(cap, caveats)| super::sql::SqlCap { cap, caveats })
            .collect();
        return super::sql::handle(&state, authz.invocation.invoker(), &sql_caps, body).await;
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
        if all("put") {
            return kv::batch_put(&state, &authz.invocation, &caps, &headers, body).await;
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
        ("tinycloud.capabilities", "read") => {
            capabilities_read(&state, &authz.invocation, cap).await
        }
        ("tinycloud.space", "info" | "create" | "list" | "host") => {
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{} is not supported by this node", cap.ability),
        )),
    }
}

/// The `capabilitiesReadParams` fact of `tinycloud.capabilities/read` (the reference's shape).
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ReadParams {
    /// The listing, optionally filtered.
    #[serde(rename = "list")]
    List {
        #[serde(default)]
        filters: Option<ListFilters>,
    },
    /// One delegation and its ancestors.
    #[serde(rename = "chain")]
    Chain {
        #[serde(alias = "delegationCid")]
        delegation_cid: String,
    },
}

/// Filters of a listing.
#[derive(Deserialize, Default)]
struct ListFilters {
    /// `created` (the invoker issued it), `received` (addressed to the invoker), `all`.
    direction: Option<String>,
    /// Resource path prefix (`kv/notes`, or a full resource).
    path: Option<String>,
    /// Abilities, one of which a capability must carry.
    actions: Option<Vec<String>>,
}

/// Most delegations a chain answer walks.
const MAX_CHAIN: usize = 64;

fn delegation_json(state: &SharedState, d: &StoredDelegation) -> Value {
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
    json!({
        "capabilities": caps,
        "delegator": d.info.issuer.to_string(),
        "delegate": d.info.delegatee.to_string(),
        "parents": d.info.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "raw": d.header,
        "revoked": state.auth.is_delegation_revoked(&d.info),
    })
}

fn matches_filters(d: &StoredDelegation, f: &ListFilters, invoker: &str, space: &str) -> bool {
    let direction_ok = match f.direction.as_deref() {
        Some("created") => d.info.issuer.to_string() == invoker,
        Some("received") => d.info.delegatee.to_string() == invoker,
        _ => true,
    };
    let path_ok = f.path.as_deref().is_none_or(|p| {
        let p = p.trim_start_matches('/');
        d.info.capabilities.iter().any(|c| {
            let r = c.resource.to_string();
            let within = r
                .strip_prefix(space)
                .map(|x| x.trim_start_matches('/'))
                .unwrap_or(&r);
            r.starts_with(p) || within.starts_with(p)
        })
    });
    let actions_ok = f.actions.as_ref().is_none_or(|a| {
        d.info.capabilities.iter().any(|c| {
            let (raw, canonical) = (c.ability.to_string(), c.ability.canonical().to_string());
            a.iter().any(|x| *x == raw || *x == canonical)
        })
    });
    direction_ok && path_ok && actions_ok
}

/// `tinycloud.capabilities/read`: the delegations that name the space, keyed by CID; with a
/// `capabilitiesReadParams` fact, a filtered listing or one delegation's chain (an array,
/// the delegation first, then its ancestors that name the space).
async fn capabilities_read(
    state: &SharedState,
    inv: &tinycloud_auth::token::Invocation,
    cap: &Capability,
) -> ApiResult<Response> {
    // The answer lists every delegation of the space, so only a grant on the whole listing
    // (`<space>/capabilities/all`, or the bare service) may read it: a narrower path is not
    // something this listing can honour (deny by default).
    let r = super::service_resource(cap, "capabilities")?;
    if !matches!(r.path(), None | Some("all")) {
        return Err(ApiError::forbidden(
            "tinycloud.capabilities/read is served only on <space>/capabilities/all",
        ));
    }
    let params = match inv.ucan().fact("capabilitiesReadParams") {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<ReadParams>(v.clone()).map_err(|e| {
                ApiError::bad_request(format!("invalid capabilitiesReadParams: {e}"))
            })?,
        ),
    };
    let space = r.space().to_string();
    if let Some(ReadParams::List {
        filters: Some(f), ..
    }) = &params
    {
        if !matches!(
            f.direction.as_deref(),
            None | Some("created" | "received" | "all")
        ) {
            return Err(ApiError::bad_request(
                "capabilitiesReadParams direction must be created, received or all",
            ));
        }
    }
    let delegations = state.index.delegations_for_space(&space).await?;
    if let Some(ReadParams::Chain { delegation_cid }) = &params {
        let start: tinycloud_auth::cid::Cid = delegation_cid
            .parse()
            .map_err(|_| ApiError::bad_request("delegation_cid is not a CID"))?;
        let by_cid: std::collections::HashMap<_, _> =
            delegations.iter().map(|d| (d.info.cid, d)).collect();
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut seen = std::collections::HashSet::new();
        while let Some(cid) = queue.pop_front() {
            if !seen.insert(cid) || out.len() >= MAX_CHAIN {
                continue;
            }
            // Only delegations of this space: a chain answer never reveals another space's.
            let Some(d) = by_cid.get(&cid) else { continue };
            queue.extend(d.info.parents.iter().copied());
            out.push(delegation_json(state, d));
        }
        if out.is_empty() {
            return Err(ApiError::not_found("no such delegation in this space"));
        }
        return Ok(Json(Value::Array(out)).into_response());
    }
    let filters = match params {
        Some(ReadParams::List { filters }) => filters.unwrap_or_default(),
        _ => ListFilters::default(),
    };
    let invoker = inv.invoker().to_string();
    let mut out = Map::new();
    for d in delegations
        .iter()
        .filter(|d| matches_filters(d, &filters, &invoker, &space))
    {
        out.insert(d.info.cid.to_string(), delegation_json(state, d));
    }
    Ok(Json(Value::Object(out)).into_response())
}

//! `/delegate`, `/revoke` and `/delegation/status`.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::chain::ChainLookup;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::Resource;
use tinycloud_auth::timestamp::within;
use tinycloud_auth::token::{Delegation, REVOKE_ABILITY};

use super::authorized::{Signed, VerifiedDelegation};
use super::openapi::{DelegateResult, DelegationState, DelegationStatus, RevokeResult};
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::store::{DelegationCharge, DelegationWrite};

mod query;
pub use query::{__path_query, query};

/// `POST /delegate`: register a CACAO or UCAN delegation; create spaces hosted by their owner.
#[utoipa::path(
    post, path = "/delegate", tag = "delegation",
    summary = "Register a delegation",
    description = "Verifies a SIWE CACAO or UCAN delegation (signature, times, chain to a stored parent or the space owner) and stores it; a delegation of `tinycloud.space/host` from a space owner to this node creates the space.",
    params(
        ("Authorization" = String, Header, description = "The delegation: a SIWE CACAO (padded base64url DAG-CBOR) or a UCAN JWT"),
    ),
    responses(
        (status = 200, description = "Stored (or already known)", body = DelegateResult),
        (status = 400, description = "Malformed token or header", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed", body = String, content_type = "text/plain"),
        (status = 402, description = "Space storage quota exceeded", body = String, content_type = "text/plain"),
        (status = 403, description = "Not allowed", body = String, content_type = "text/plain"),
        (status = 404, description = "Space not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Conflict", body = String, content_type = "text/plain"),
        (status = 413, description = "Token too large", body = String, content_type = "text/plain"),
    )
)]
pub async fn delegate(
    State(state): State<SharedState>,
    verified: VerifiedDelegation,
) -> ApiResult<Json<DelegateResult>> {
    let now = verified.at();
    let d = verified.delegation();
    let (named, hosted) = d.spaces();
    // A space is created only by its owner, through `tinycloud.space/host` (root authority).
    for space in &hosted {
        let owned = space
            .parse::<tinycloud_auth::resource::SpaceId>()
            .is_ok_and(|s| s.owner() == &d.info().issuer);
        if owned && !state.space_exists(space) {
            state
                .index
                .create_space(space, &d.info().issuer.to_string(), now.as_millis())
                .await?;
            if let Ok(mut spaces) = state.spaces.write() {
                spaces.insert(space.clone());
            }
            tracing::info!(space = %space, "space created");
        }
    }
    let (activated, skipped): (Vec<String>, Vec<String>) =
        named.into_iter().partition(|s| state.space_exists(s));
    // What a stranger can make this node keep is bounded: a delegation is stored only when it
    // rests on something hosted here — a space (whose quota its bytes are charged to), an
    // encryption network or a stored delegation. One naming only spaces this node does not
    // host is verified and answered as the reference does (every space `skipped`, so a client
    // creates its space and posts it again) but leaves nothing behind.
    if activated.is_empty() && !anchored_elsewhere(&state, d).await? {
        if skipped.is_empty() {
            return Err(ApiError::not_found(
                "the delegation names nothing this node hosts",
            ));
        }
        return Ok(Json(DelegateResult {
            cid: d.cid().to_string(),
            activated,
            skipped,
            stored: false,
        }));
    }
    // Each space's index holds what its limit leaves after the space's SQL bytes.
    let mut charges = Vec::with_capacity(activated.len());
    let mut sql_bytes = std::collections::HashMap::new();
    for s in &activated {
        let (limit, sql) = state.index_limit_for(s).await?;
        sql_bytes.insert(s.clone(), sql);
        charges.push(DelegationCharge {
            space: s.clone(),
            limit,
        });
    }
    match state.auth.store_delegation(d, charges, now).await? {
        DelegationWrite::Stored => {
            tracing::debug!(cid = %d.cid(), issuer = %d.info().issuer, "delegation stored");
        }
        DelegationWrite::AlreadyStored => {}
        DelegationWrite::QuotaExceeded { space, used, limit } => {
            let sql = sql_bytes.get(&space).copied().unwrap_or(0);
            let (used, limit) = (used.saturating_add(sql), limit.saturating_add(sql));
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                format!(
                    "Storage quota exceeded: the delegation ({} bytes) does not fit in space {space}. Used: {used} bytes, Limit: {limit} bytes",
                    d.to_header().len()
                ),
            ));
        }
    }
    Ok(Json(DelegateResult {
        cid: d.cid().to_string(),
        activated,
        skipped,
        stored: true,
    }))
}

/// Whether a delegation names, besides spaces, something this node holds: an encryption
/// network it hosts or a delegation it stores.
async fn anchored_elsewhere(state: &SharedState, d: &Delegation) -> ApiResult<bool> {
    for cap in &d.info().capabilities {
        let held = match &cap.resource {
            Resource::Network(n) => state.networks.network(&n.to_string()).await?.is_some(),
            Resource::Cid(c) => state.auth.delegation(c).await?.is_some(),
            Resource::Space(_) | Resource::Other(_) => false,
        };
        if held {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Who a revocation speaks for: always the signer; with one proof that grants
/// `tinycloud.delegation/revoke` (on `urn:cid:<target>` or on the delegator's
/// `<space>/delegation`), also the proof's delegator.
async fn revoking_principals(
    state: &SharedState,
    invoker: &Did,
    proofs: &[Cid],
    target: &Cid,
    now: tinycloud_auth::timestamp::Timestamp,
) -> ApiResult<Vec<Did>> {
    match proofs {
        [] => Ok(vec![invoker.clone()]),
        [proof] => {
            let p =
                state.auth.delegation(proof).await?.ok_or_else(|| {
                    ApiError::forbidden("revocation proof is not a known delegation")
                })?;
            if state.auth.is_delegation_revoked(&p)
                || &p.delegatee != invoker
                || !within(now, p.not_before, p.expiration)
            {
                return Err(ApiError::forbidden(
                    "revocation proof is revoked, expired or not delegated to the signer",
                ));
            }
            let revoke: Ability = REVOKE_ABILITY
                .parse()
                .map_err(|_| ApiError::bad_request("bad ability"))?;
            let grants = p.capabilities.iter().any(|c| {
                c.ability.covers(&revoke)
                    && match &c.resource {
                        Resource::Cid(cid) => cid == target,
                        Resource::Space(r) => {
                            r.service() == "delegation"
                                && r.path().is_none()
                                && r.space().owner() == &p.issuer
                        }
                        _ => false,
                    }
            });
            Ok(if grants {
                vec![invoker.clone(), p.issuer.clone()]
            } else {
                vec![invoker.clone()]
            })
        }
        _ => Err(ApiError::forbidden(
            "a revocation may cite at most one proof",
        )),
    }
}

/// `POST /revoke`: revoke a delegation (and so its whole subtree).
#[utoipa::path(
    post, path = "/revoke", tag = "delegation",
    summary = "Revoke a delegation and its subtree",
    description = "A single-use UCAN invocation of `tinycloud.delegation/revoke` on `urn:cid:<target>`, by the delegation's delegator, its delegate or the space owner.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    responses(
        (status = 200, description = "Revoked", body = RevokeResult),
        (status = 400, description = "Malformed token or target", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed", body = String, content_type = "text/plain"),
        (status = 403, description = "The signer may not revoke the target", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn revoke(
    State(state): State<SharedState>,
    signed: Signed,
) -> ApiResult<Json<RevokeResult>> {
    let now = signed.at();
    let inv = signed.into_invocation();
    let target = inv
        .revocation_target()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let proofs: Vec<Cid> = inv
        .info()
        .parents
        .iter()
        .copied()
        .filter(|p| *p != target)
        .collect();
    let principals = revoking_principals(&state, inv.invoker(), &proofs, &target, now).await?;
    let t = state
        .auth
        .delegation(&target)
        .await?
        .ok_or_else(|| ApiError::forbidden(format!("unknown delegation {target}")))?;
    let may_revoke = |who: &Did| {
        who == &t.issuer
            || who == &t.delegatee
            || t.capabilities
                .iter()
                .filter_map(|c| c.resource.space())
                .any(|s| s.owner() == who)
    };
    let Some(principal) = principals.iter().find(|p| may_revoke(p)).cloned() else {
        return Err(ApiError::forbidden(format!(
            "{} may not revoke {target}: only its delegator, its delegate or the space owner can",
            inv.invoker()
        )));
    };
    state.auth.consume(&inv, now).await?;
    state.auth.revoke(&t, &principal.to_string(), now).await?;
    tracing::info!(cid = %target, by = %principal, "delegation revoked");
    Ok(Json(RevokeResult {
        revoked: true,
        cid: target.to_string(),
    }))
}

/// `POST /delegation/status` request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// The delegation asked about.
    cid: String,
}

/// `POST /delegation/status`: active / revoked / expired of one delegation.
#[utoipa::path(
    post, path = "/delegation/status", tag = "delegation",
    summary = "Status of one delegation",
    description = "Active, revoked (itself or an ancestor) or expired; needs `tinycloud.delegation/status` on `urn:cid:<cid>`.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "Known delegation", body = DelegationStatus),
        (status = 404, description = "Unknown delegation", body = DelegationStatus),
        (status = 400, description = "Malformed body, CID or token", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed", body = String, content_type = "text/plain"),
        (status = 403, description = "The invocation does not name this delegation", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
    )
)]
pub async fn status(
    State(state): State<SharedState>,
    signed: Signed,
    body: axum::body::Body,
) -> ApiResult<(axum::http::StatusCode, Json<DelegationStatus>)> {
    let now = signed.at();
    let body = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map_err(|_| ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?;
    let req: StatusRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let cid = parse_cid(&req.cid).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let inv = signed.into_invocation();
    let status_ability: Ability = "tinycloud.delegation/status"
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    let caps = &inv.info().capabilities;
    let ok = caps.len() == 1 && caps[0].grants(&Resource::Cid(cid), &status_ability);
    if !ok {
        return Err(ApiError::forbidden(format!(
            "the invocation must carry exactly tinycloud.delegation/status on urn:cid:{cid}"
        )));
    }
    let Some(d) = state.auth.delegation(&cid).await? else {
        return Ok((
            axum::http::StatusCode::NOT_FOUND,
            Json(DelegationStatus {
                cid: req.cid,
                status: DelegationState::NotFound,
                exists: false,
                active: None,
                revoked: None,
                expired: None,
            }),
        ));
    };
    // Only a party to the delegation may ask (its delegator, its delegate, an owner of a space
    // it names, or a key acting for such an owner: its invocation cites only valid,
    // unrevoked delegations addressed to it whose chains start at that owner, e.g. the owner's
    // other session keys and the delegates it shared with); a stranger's query is refused
    // before anything is recorded.
    let who = inv.invoker();
    let mut party = who == &d.issuer || who == &d.delegatee;
    if !party {
        let mut owners: Vec<&tinycloud_auth::did::Did> = Vec::new();
        for s in d.capabilities.iter().filter_map(|c| c.resource.space()) {
            if !owners.contains(&s.owner()) {
                owners.push(s.owner());
            }
        }
        // Bounded: each check walks the invocation's (bounded) chain.
        for owner in owners.into_iter().take(MAX_STATUS_OWNERS) {
            if state.auth.rests_on(&inv, owner, now).await {
                party = true;
                break;
            }
        }
    }
    if !party {
        return Err(ApiError::forbidden(format!(
            "{who} is not a party to {cid}: only its delegator, its delegate or the space owner may ask"
        )));
    }
    state.auth.consume(&inv, now).await?;
    let revoked = ancestry_revoked(&state, &d.cid);
    let expired = d.expiration.is_some_and(|e| now >= e);
    let status = if revoked {
        DelegationState::Revoked
    } else if expired {
        DelegationState::Expired
    } else {
        DelegationState::Active
    };
    Ok((
        axum::http::StatusCode::OK,
        Json(DelegationStatus {
            cid: cid.to_string(),
            status,
            exists: true,
            active: Some(status == DelegationState::Active),
            revoked: Some(revoked),
            expired: Some(expired),
        }),
    ))
}

/// Whether the delegation or any ancestor (bounded) is revoked.
/// How many distinct space owners named by a delegation a status query is checked against.
const MAX_STATUS_OWNERS: usize = 8;

fn ancestry_revoked(state: &SharedState, cid: &Cid) -> bool {
    let cache = state.auth.cache();
    let mut stack = vec![*cid];
    let mut seen = BTreeSet::new();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) || seen.len() > tinycloud_auth::chain::MAX_CHAIN_NODES {
            continue;
        }
        if cache.is_revoked(&c) {
            return true;
        }
        if let Some(d) = cache.delegation(&c) {
            if state.auth.is_delegation_revoked(&d) {
                return true;
            }
            stack.extend(d.parents.iter().copied());
        }
    }
    false
}

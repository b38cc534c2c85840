//! `/delegate`, `/revoke` and `/delegation/status`.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
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

/// The ability `POST /delegation/query` is invoked with.
pub const LIST_ABILITY: &str = "tinycloud.delegation/list";
/// Page size when the request names none.
const DEFAULT_QUERY_LIMIT: usize = 50;
/// Largest page.
const MAX_QUERY_LIMIT: u16 = 100;
/// Most stored delegations one query looks at; past this the page ends early (possibly
/// short, even empty) with a `nextCursor` where the scan stopped.
const MAX_QUERY_SCAN: usize = 2_000;
/// Rows read from the index at a time.
const QUERY_BATCH: usize = 200;
/// Most session keys of one account considered (newest delegations first).
const MAX_ACCOUNT_KEYS: usize = 256;
/// Most delegations read per level while discovering an account's session keys.
const MAX_ACCOUNT_EDGES_PER_LEVEL: usize = 1_024;
/// Most levels of session keys delegating the list ability on (a session of a session …).
const MAX_ACCOUNT_KEY_DEPTH: usize = 8;
/// Longest `cursor` accepted.
const MAX_QUERY_CURSOR: usize = 2_048;

/// Which side of the account a listed delegation is on.
#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Default, Debug, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryDirection {
    /// Issued by the account (or one of its session keys, under the account's authority).
    Granted,
    /// Addressed to the account (or to the invoking key).
    Received,
    /// Both.
    #[default]
    All,
}

/// A status filter.
#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Debug, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    /// Valid now.
    Active,
    /// Not valid yet.
    Pending,
    /// Past its (or an ancestor's) expiry.
    Expired,
    /// Revoked, itself or an ancestor.
    Revoked,
    /// Revoked through an ancestor only.
    AncestorRevoked,
}

/// `POST /delegation/query` request (unknown fields are refused).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    /// `granted`, `received` or `all` (the default).
    #[serde(default)]
    direction: QueryDirection,
    /// Only delegations in this state.
    status: Option<QueryStatus>,
    /// Only delegations naming this space (a space id, or a space name).
    space: Option<String>,
    /// Page size, 1–100 (default 50).
    limit: Option<u16>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// What a query cursor carries: the position after which the next page starts, and what it
/// is bound to (a cursor is valid only for the same account, invoker and filters). Sealed
/// (encrypted, not only MACed): when the scan bound ends a page, the position is the last row
/// looked at, which may be one the caller is not shown (a delegation of a key the account
/// merely delegated the list ability to).
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct QueryCursor {
    /// Purpose tag (the MAC key is shared with other cursors of this node).
    k: String,
    /// Account principal.
    p: String,
    /// Invoker.
    i: String,
    d: QueryDirection,
    s: Option<QueryStatus>,
    sp: Option<String>,
    /// Position: stored-at (Unix ms) and CID of the last delegation looked at.
    at: i64,
    cid: String,
}

const QUERY_CURSOR_TAG: &str = "delegation-query/v1";

/// `POST /delegation/query`: page through the delegations an account issued or received.
#[utoipa::path(
    post, path = "/delegation/query", tag = "delegation",
    summary = "List an account's delegations",
    description = "One page of the delegations the account issued (`granted`: by the account itself, or by one of its session keys under the account's authority) or received (addressed to the account or to the invoking key), newest stored first, each with its lifecycle status. The invocation must carry exactly one capability: `tinycloud.delegation/list` on `<space>/delegation` of a space of the account (the account is that space's owner); it is verified and consumed like every invocation. A page may hold fewer than `limit` items while `nextCursor` is present (the scan per request is bounded).",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = QueryRequest,
    responses(
        (status = 200, description = "A page", body = crate::routes::openapi::DelegationQueryPage),
        (status = 400, description = "Malformed body, limit, space, cursor or token", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed", body = String, content_type = "text/plain"),
        (status = 403, description = "The invocation does not carry exactly tinycloud.delegation/list on <space>/delegation", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
    )
)]
pub async fn query(
    State(state): State<SharedState>,
    signed: Signed,
    body: axum::body::Body,
) -> ApiResult<Json<crate::routes::openapi::DelegationQueryPage>> {
    let now = signed.at();
    let body = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?;
    let req: QueryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        QueryRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let limit = match req.limit {
        None => DEFAULT_QUERY_LIMIT,
        Some(l) if (1..=MAX_QUERY_LIMIT).contains(&l) => usize::from(l),
        Some(_) => return Err(ApiError::bad_request("limit must be between 1 and 100")),
    };
    if req.space.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(ApiError::bad_request("space must not be empty"));
    }
    let inv = signed.into_invocation();
    let principal = list_principal(&inv)?;
    let invoker = inv.invoker().clone();
    let binding = |at: i64, cid: String| QueryCursor {
        k: QUERY_CURSOR_TAG.into(),
        p: principal.to_string(),
        i: invoker.to_string(),
        d: req.direction,
        s: req.status,
        sp: req.space.clone(),
        at,
        cid,
    };
    let after = match &req.cursor {
        None => None,
        Some(text) => {
            let c: QueryCursor =
                crate::keys::seal_decode(&state.cursor_key, text, MAX_QUERY_CURSOR)
                    .ok_or_else(|| ApiError::bad_request("invalid delegation query cursor"))?;
            if c != binding(c.at, c.cid.clone()) {
                return Err(ApiError::bad_request(
                    "invalid delegation query cursor: it belongs to another query",
                ));
            }
            Some((c.at, c.cid))
        }
    };
    // Verified like every invocation: the chain must grant the list ability on the account's
    // delegation service (so it rests on the account), and its single use is consumed.
    let inv = state.auth.authorize_decoded(inv, now).await?.invocation;
    let keys = account_keys(&state, &principal).await?;
    let issuers: Vec<String> = keys.iter().cloned().collect();
    let mut delegatees = vec![principal.to_string()];
    if inv.invoker() != &principal {
        delegatees.push(inv.invoker().to_string());
    }
    let principal_text = principal.to_string();
    let mut items = Vec::new();
    let mut last_item: Option<(i64, String)> = None;
    let mut position = after;
    let mut scanned = 0usize;
    let mut next_cursor = None;
    'scan: loop {
        let batch = state
            .index
            .account_delegations(
                issuers.clone(),
                delegatees.clone(),
                position.clone(),
                QUERY_BATCH,
            )
            .await?;
        let exhausted = batch.len() < QUERY_BATCH;
        for (stored, at) in batch {
            let here = (at, stored.info.cid.to_string());
            let d = &stored.info;
            let lineage = lineage(&state, d, now).await?;
            let granted = d.issuer == principal
                || (keys.contains(&d.issuer.to_string())
                    && lineage.complete
                    && !lineage.roots.is_empty()
                    && lineage.roots.iter().all(|r| r == &principal));
            let received = !granted
                && (d.delegatee.to_string() == principal_text || &d.delegatee == inv.invoker());
            let direction_ok = match req.direction {
                QueryDirection::Granted => granted,
                QueryDirection::Received => received,
                QueryDirection::All => granted || received,
            };
            let status = lineage.status(&state, d);
            let status_ok = match req.status {
                None => true,
                Some(QueryStatus::Active) => status == "active",
                Some(QueryStatus::Pending) => status == "pending",
                Some(QueryStatus::Expired) => status == "expired",
                Some(QueryStatus::Revoked) => matches!(status, "revoked" | "ancestor_revoked"),
                Some(QueryStatus::AncestorRevoked) => status == "ancestor_revoked",
            };
            let space_ok = req.space.as_deref().is_none_or(|want| {
                d.capabilities
                    .iter()
                    .filter_map(|c| c.resource.space())
                    .any(|s| s.to_string() == want || s.name() == want)
            });
            if direction_ok && status_ok && space_ok {
                if items.len() == limit {
                    // One more exists: the next page starts after the last item returned.
                    next_cursor = last_item.clone();
                    break 'scan;
                }
                items.push(
                    listed(
                        &state,
                        &stored,
                        if granted { "granted" } else { "received" },
                        status,
                        &lineage,
                    )
                    .await?,
                );
                last_item = Some(here.clone());
            }
            position = Some(here);
            scanned += 1;
            if scanned >= MAX_QUERY_SCAN {
                next_cursor = position.clone();
                break 'scan;
            }
        }
        if exhausted {
            break;
        }
    }
    let next_cursor =
        next_cursor.map(|(at, cid)| crate::keys::seal_encode(&state.cursor_key, &binding(at, cid)));
    Ok(Json(crate::routes::openapi::DelegationQueryPage {
        schema_version: 2,
        items,
        next_cursor,
    }))
}

/// The account a list invocation asks about: the owner of the space of its one capability,
/// `tinycloud.delegation/list` on `<space>/delegation` (no path, query or fragment); 403
/// otherwise.
fn list_principal(inv: &tinycloud_auth::token::Invocation) -> ApiResult<Did> {
    let refuse = || {
        ApiError::forbidden(format!(
            "the invocation must carry exactly {LIST_ABILITY} on <space>/delegation"
        ))
    };
    let [cap] = inv.info().capabilities.as_slice() else {
        return Err(refuse());
    };
    let ability = cap.ability.canonical();
    if (ability.namespace(), ability.name()) != ("tinycloud.delegation", "list") {
        return Err(refuse());
    }
    match &cap.resource {
        Resource::Space(r) if is_delegation_service(r) => Ok(r.space().owner().clone()),
        _ => Err(refuse()),
    }
}

/// `<space>/delegation` (or `<space>/delegation/`), nothing more.
fn is_delegation_service(r: &tinycloud_auth::resource::SpaceResource) -> bool {
    r.service() == "delegation"
        && r.path().is_none_or(str::is_empty)
        && r.query().is_none()
        && r.fragment().is_none()
}

/// The account and its session keys: `did:key`s the account (or, transitively, one of its
/// session keys) delegated the list ability on the account's delegation service. Bounded
/// ([`MAX_ACCOUNT_KEYS`] keys, [`MAX_ACCOUNT_KEY_DEPTH`] levels, [`MAX_ACCOUNT_EDGES_PER_LEVEL`]
/// newest delegations per level), so one query's cost is bounded however large the account.
async fn account_keys(
    state: &SharedState,
    principal: &Did,
) -> ApiResult<std::collections::HashSet<String>> {
    let list: Ability = LIST_ABILITY
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    let mut keys = std::collections::HashSet::from([principal.to_string()]);
    let mut frontier = vec![principal.to_string()];
    for _ in 0..MAX_ACCOUNT_KEY_DEPTH {
        if frontier.is_empty() || keys.len() >= MAX_ACCOUNT_KEYS {
            break;
        }
        let rows = state
            .index
            .account_delegations(frontier, Vec::new(), None, MAX_ACCOUNT_EDGES_PER_LEVEL)
            .await?;
        let mut next = Vec::new();
        for (d, _) in rows {
            let d = d.info;
            let controls = d.capabilities.iter().any(|c| {
                c.ability.covers(&list)
                    && matches!(&c.resource, Resource::Space(r)
                        if is_delegation_service(r) && r.space().owner() == principal)
            });
            if controls
                && matches!(d.delegatee, Did::Key(_))
                && keys.len() < MAX_ACCOUNT_KEYS
                && keys.insert(d.delegatee.to_string())
            {
                next.push(d.delegatee.to_string());
            }
        }
        frontier = next;
    }
    Ok(keys)
}

/// What a delegation's ancestry says.
#[derive(Default)]
struct Lineage {
    /// Issuers of the ancestors (or itself) that cite no parent.
    roots: Vec<Did>,
    /// Every ancestor was found (within the traversal bound).
    complete: bool,
    /// The first revoked ancestor found.
    revoked_ancestor: Option<Cid>,
    /// It or an ancestor is past its expiry.
    expired: bool,
    /// It or an ancestor is not valid yet.
    pending: bool,
}

impl Lineage {
    fn status(
        &self,
        state: &SharedState,
        d: &tinycloud_auth::chain::DelegationInfo,
    ) -> &'static str {
        if state.auth.is_delegation_revoked(d) {
            "revoked"
        } else if self.revoked_ancestor.is_some() {
            "ancestor_revoked"
        } else if self.expired {
            "expired"
        } else if self.pending {
            "pending"
        } else {
            "active"
        }
    }
}

/// Walks a delegation's ancestors (bounded, through the delegation cache).
async fn lineage(
    state: &SharedState,
    d: &tinycloud_auth::chain::DelegationInfo,
    now: tinycloud_auth::timestamp::Timestamp,
) -> ApiResult<Lineage> {
    let ends = |nbf: Option<_>, exp: Option<_>| {
        (exp.is_some_and(|e| now >= e), nbf.is_some_and(|n| now < n))
    };
    let (expired, pending) = ends(d.not_before, d.expiration);
    let mut out = Lineage {
        complete: true,
        expired,
        pending,
        ..Lineage::default()
    };
    if d.parents.is_empty() {
        out.roots.push(d.issuer.clone());
        return Ok(out);
    }
    for p in &d.parents {
        // Brings the parent and its ancestors into the cache.
        state.auth.delegation(p).await?;
    }
    let cache = state.auth.cache();
    let mut stack: Vec<Cid> = d.parents.clone();
    let mut seen = BTreeSet::new();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        if seen.len() > tinycloud_auth::chain::MAX_CHAIN_NODES {
            out.complete = false;
            break;
        }
        if out.revoked_ancestor.is_none() && cache.is_revoked(&c) {
            out.revoked_ancestor = Some(c);
        }
        let Some(p) = cache.delegation(&c) else {
            out.complete = false;
            continue;
        };
        if out.revoked_ancestor.is_none() && state.auth.is_delegation_revoked(&p) {
            out.revoked_ancestor = Some(c);
        }
        let (expired, pending) = ends(p.not_before, p.expiration);
        out.expired |= expired;
        out.pending |= pending;
        if p.parents.is_empty() {
            out.roots.push(p.issuer.clone());
        }
        stack.extend(p.parents.iter().copied());
    }
    Ok(out)
}

/// The listed form of a stored delegation.
async fn listed(
    state: &SharedState,
    stored: &crate::store::StoredDelegation,
    direction: &'static str,
    status: &'static str,
    lineage: &Lineage,
) -> ApiResult<crate::routes::openapi::AccountDelegation> {
    use crate::clock::rfc3339;
    let d = &stored.info;
    let mut grouped: std::collections::BTreeMap<String, Vec<(String, serde_json::Value)>> =
        std::collections::BTreeMap::new();
    for c in &d.capabilities {
        // One caveat object per action, as the reference: a capability with several caveat
        // alternatives lists its action once per alternative.
        for caveat in c.caveats.to_wire() {
            grouped
                .entry(c.resource.to_string())
                .or_default()
                .push((c.ability.to_string(), serde_json::Value::Object(caveat)));
        }
    }
    let resources = grouped
        .into_iter()
        .map(|(resource, mut entries)| {
            entries.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
            });
            let (actions, caveats) = entries.into_iter().unzip();
            crate::routes::openapi::AccountDelegationResource {
                resource,
                actions,
                caveats,
            }
        })
        .collect();
    let revocation = if status == "revoked" {
        match state.index.revocation(&d.cid).await? {
            Some(r) => Some(r),
            None => state.index.revocation(&d.authority).await?,
        }
    } else {
        None
    };
    // Only a CACAO (SIWE) says when it was signed; decoding it again is cheap and it was
    // verified when stored.
    let issued_at = if tinycloud_auth::cacao::is_ucan_header(&stored.header) {
        None
    } else {
        tinycloud_auth::cacao::Cacao::from_header(&stored.header)
            .ok()
            .map(|c| {
                rfc3339(
                    tinycloud_auth::timestamp::Timestamp::from(c.message().issued_at.datetime())
                        .as_millis(),
                )
            })
    };
    let mut parents: Vec<String> = d.parents.iter().map(ToString::to_string).collect();
    parents.sort();
    parents.dedup();
    Ok(crate::routes::openapi::AccountDelegation {
        cid: d.cid.to_string(),
        direction,
        delegator_did: d.issuer.to_string(),
        delegate_did: d.delegatee.to_string(),
        resources,
        parents,
        issued_at,
        not_before: d.not_before.map(|t| rfc3339(t.as_millis())),
        expires_at: d.expiration.map(|t| rfc3339(t.as_millis())),
        status,
        revoked_at: revocation.as_ref().map(|(_, at)| rfc3339(*at)),
        revoked_by: revocation.map(|(by, _)| by),
        revoked_ancestor_cid: (status == "ancestor_revoked")
            .then(|| lineage.revoked_ancestor.map(|c| c.to_string()))
            .flatten(),
    })
}

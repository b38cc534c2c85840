//! `POST /delegation/query`: the delegations a principal holds or issued, filtered and paged
//! with sealed cursors.

use crate::error::{ApiError, ApiResult};
use crate::routes::authorized::Signed;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::chain::ChainLookup;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::Resource;

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

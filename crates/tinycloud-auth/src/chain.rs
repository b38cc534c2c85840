//! Chain validation as a pure function.
//!
//! Given a new delegation or invocation (already decoded and signature-verified), the current
//! time and a lookup of stored, already-verified delegations with their revocation state, decide
//! accept or reject with a precise reason. Parents were validated when they were registered, so
//! coverage is checked against direct parents only, while revocation and validity windows are
//! checked along every ancestor (bounded walk).

// `ChainError` carries full CIDs (96 bytes each) so that every rejection names the exact
// delegation; rejections are the rare path, so the larger `Result` is an accepted cost.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;

use crate::ability::Ability;
use crate::capability::{Capability, Caveats, NotCovered};
use crate::cid::Cid;
use crate::did::Did;
use crate::resource::Resource;
use crate::timestamp::Timestamp;

/// Maximum number of ancestors walked for one check.
pub const MAX_CHAIN_NODES: usize = 64;
/// Default cap on `exp - now` of an invocation, in seconds.
pub const DEFAULT_MAX_INVOCATION_LIFETIME_SECS: i64 = 300;

/// What chain validation needs to know about a verified delegation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationInfo {
    /// Its CID (over the exact bytes received; what clients cite in `prf`).
    pub cid: Cid,
    /// Its authority identity: a hash of exactly what the signature covers (the SIWE text of a
    /// CACAO, `header.payload` of a UCAN). Every encoding of one signed authority has the same
    /// authority identity, so revoking one revokes all of them (see [`is_delegation_revoked`]).
    pub authority: Cid,
    /// Delegator principal.
    pub issuer: Did,
    /// Delegatee principal (audience, fragment stripped).
    pub delegatee: Did,
    /// Start of validity.
    pub not_before: Option<Timestamp>,
    /// End of validity (exclusive).
    pub expiration: Option<Timestamp>,
    /// Cited parents.
    pub parents: Vec<Cid>,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// Whether the delegatee may not re-delegate.
    pub terminal: bool,
}

/// The authority identity of signed content: BLAKE3 in key-derivation mode under `context`
/// (one context per signature scheme, so identities of different token kinds never collide)
/// over exactly the bytes the signature covers, as a CID. Two tokens have the same identity
/// exactly when they carry the same signed content, however the container or the signature is
/// encoded.
pub fn authority_digest(context: &str, signed: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(signed);
    *h.finalize().as_bytes()
}

/// [`authority_digest`] as a CID (the form stored next to revoked delegation CIDs).
pub fn authority_cid(context: &str, signed: &[u8]) -> Cid {
    crate::cid::from_blake3_digest(&authority_digest(context, signed))
}

/// What chain validation needs to know about an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationInfo {
    /// Invoker principal (`iss`, fragment stripped).
    pub invoker: Did,
    /// Start of validity.
    pub not_before: Option<Timestamp>,
    /// End of validity (exclusive); required.
    pub expiration: Option<Timestamp>,
    /// Cited delegations.
    pub parents: Vec<Cid>,
    /// Exercised capabilities.
    pub capabilities: Vec<Capability>,
}

impl InvocationInfo {
    /// Whether one of the exercised capabilities grants `ability` on `resource` (see
    /// [`Capability::grants`]). Routes call this after chain validation to check that the
    /// invocation names what the request does.
    pub fn grants(&self, resource: &Resource, ability: &Ability) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.grants(resource, ability))
    }
}

impl DelegationInfo {
    /// Whether one of the delegated capabilities grants `ability` on `resource`.
    pub fn grants(&self, resource: &Resource, ability: &Ability) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.grants(resource, ability))
    }
}

/// Access to stored, verified delegations and their revocation state.
pub trait ChainLookup {
    /// The delegation with this CID, if stored.
    fn delegation(&self, cid: &Cid) -> Option<Arc<DelegationInfo>>;
    /// Whether this identifier (a delegation CID or an authority identity) has been revoked.
    /// Chain rules ask through [`is_delegation_revoked`], which checks both.
    fn is_revoked(&self, id: &Cid) -> bool;
}

/// Whether a delegation is revoked: under its CID or under its authority identity, so that
/// no re-encoding of a revoked authority (another CID for the same signed content) is live.
pub fn is_delegation_revoked(lookup: &impl ChainLookup, d: &DelegationInfo) -> bool {
    lookup.is_revoked(&d.cid) || lookup.is_revoked(&d.authority)
}

/// Why a chain is rejected. [`ChainError::code`] gives a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The token's own validity window has ended.
    #[error("token expired")]
    Expired,
    /// The token's validity window has not started.
    #[error("token not yet valid")]
    NotYetValid,
    /// An invocation without `exp`, or with `exp` further than the lifetime cap.
    #[error("invocation lifetime exceeds {max_secs} s")]
    LifetimeTooLong {
        /// The cap.
        max_secs: i64,
    },
    /// A token granting or exercising nothing.
    #[error("token carries no capabilities")]
    NoCapabilities,
    /// The same parent cited twice.
    #[error("duplicate proof {0}")]
    DuplicateProof(Cid),
    /// A cited parent is not stored.
    #[error("Cannot find parent delegation {0}")]
    ParentNotFound(Cid),
    /// A parent delegated to someone other than this delegation's issuer.
    #[error("parent delegation {} was delegated to {}, not to {}", .0.parent, .0.delegatee, .0.presenter)]
    DelegateeMismatch(Box<Mismatch>),
    /// An invocation cites a delegation not addressed to the invoker.
    #[error("Unauthorized Invoker: delegation {} was delegated to {}, not to {}", .0.parent, .0.delegatee, .0.presenter)]
    InvokerMismatch(Box<Mismatch>),
    /// A delegation cites a revoked parent.
    #[error("delegation-parent-revoked: {0}")]
    ParentRevoked(Cid),
    /// An invocation cites a revoked delegation.
    #[error("delegation-revoked: {0}")]
    Revoked(Cid),
    /// An ancestor of a cited delegation is revoked.
    #[error("delegation-ancestor-revoked: {ancestor} (ancestor of {via})")]
    AncestorRevoked {
        /// The revoked ancestor.
        ancestor: Cid,
        /// The cited delegation whose chain contains it.
        via: Cid,
    },
    /// A terminal delegation cited as a parent.
    #[error("terminal-parent-cannot-redelegate: {0}")]
    TerminalParent(Cid),
    /// A delegation in the chain is outside its validity window now.
    #[error("delegation {0} in the chain is expired or not yet valid")]
    ProofNotValidNow(Cid),
    /// The child expires after (or never, unlike) every parent.
    #[error("Child delegation expiry exceeds parent expiry")]
    ExpiryExceedsParent,
    /// The child starts before every parent.
    #[error("Child delegation not-before precedes parent not-before")]
    NotBeforePrecedesParent,
    /// The ancestor walk exceeded [`MAX_CHAIN_NODES`].
    #[error("delegation-chain-traversal-limit-exceeded")]
    TraversalLimit,
    /// A capability not covered by any parent (nor held as root authority).
    #[error("Unauthorized Action: {resource} / {ability}{}", reason_suffix(.reason))]
    NotCovered {
        /// The resource.
        resource: String,
        /// The ability.
        ability: String,
        /// Closest reason, when a parent had the resource but not the rest.
        reason: Option<NotCovered>,
    },
}

/// A delegation presented by someone it was not addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The cited delegation.
    pub parent: Cid,
    /// Its delegatee.
    pub delegatee: Did,
    /// Who presented it (the new delegation's issuer, or the invoker).
    pub presenter: Did,
}

fn reason_suffix(reason: &Option<NotCovered>) -> String {
    match reason {
        Some(NotCovered::Caveats(c)) => format!(" ({c})"),
        _ => String::new(),
    }
}

impl ChainError {
    /// Stable code for logs, tests and structured error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ChainError::Expired => "token-expired",
            ChainError::NotYetValid => "token-not-yet-valid",
            ChainError::LifetimeTooLong { .. } => "invocation-lifetime-exceeded",
            ChainError::NoCapabilities => "no-capabilities",
            ChainError::DuplicateProof(_) => "duplicate-proof",
            ChainError::ParentNotFound(_) => "delegation-parent-not-found",
            ChainError::DelegateeMismatch(_) => "delegatee-mismatch",
            ChainError::InvokerMismatch(_) => "unauthorized-invoker",
            ChainError::ParentRevoked(_) => "delegation-parent-revoked",
            ChainError::Revoked(_) => "delegation-revoked",
            ChainError::AncestorRevoked { .. } => "delegation-ancestor-revoked",
            ChainError::TerminalParent(_) => "terminal-parent-cannot-redelegate",
            ChainError::ProofNotValidNow(_) => "delegation-not-valid-now",
            ChainError::ExpiryExceedsParent => "delegation-expiry-exceeds-parent",
            ChainError::NotBeforePrecedesParent => "delegation-not-before-precedes-parent",
            ChainError::TraversalLimit => "delegation-chain-traversal-limit-exceeded",
            ChainError::NotCovered { .. } => "unauthorized-action",
        }
    }
}

fn check_window(
    now: Timestamp,
    nbf: Option<Timestamp>,
    exp: Option<Timestamp>,
) -> Result<(), ChainError> {
    if exp.is_some_and(|e| now >= e) {
        return Err(ChainError::Expired);
    }
    if nbf.is_some_and(|n| now < n) {
        return Err(ChainError::NotYetValid);
    }
    Ok(())
}

/// Resolves cited parents, rejecting duplicates and unknown CIDs.
fn resolve_parents(
    parents: &[Cid],
    lookup: &impl ChainLookup,
) -> Result<Vec<Arc<DelegationInfo>>, ChainError> {
    let mut seen = HashSet::with_capacity(parents.len());
    parents
        .iter()
        .map(|cid| {
            if !seen.insert(*cid) {
                return Err(ChainError::DuplicateProof(*cid));
            }
            lookup
                .delegation(cid)
                .ok_or(ChainError::ParentNotFound(*cid))
        })
        .collect()
}

/// Walks the ancestors of `start` (excluding `start`): none may be revoked, and when `now` is
/// given every one must be valid at `now`. Bounded by [`MAX_CHAIN_NODES`] for the whole walk.
fn check_ancestors(
    start: &DelegationInfo,
    lookup: &impl ChainLookup,
    now: Option<Timestamp>,
    budget: &mut usize,
) -> Result<(), ChainError> {
    let mut stack: Vec<Cid> = start.parents.clone();
    let mut seen: HashSet<Cid> = HashSet::new();
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        *budget = budget.checked_sub(1).ok_or(ChainError::TraversalLimit)?;
        let revoked = |anc: Option<&DelegationInfo>| {
            lookup.is_revoked(&cid) || anc.is_some_and(|a| is_delegation_revoked(lookup, a))
        };
        let anc = lookup.delegation(&cid);
        if revoked(anc.as_deref()) {
            return Err(ChainError::AncestorRevoked {
                ancestor: cid,
                via: start.cid,
            });
        }
        let anc = anc.ok_or(ChainError::ParentNotFound(cid))?;
        if let Some(now) = now {
            check_window(now, anc.not_before, anc.expiration)
                .map_err(|_| ChainError::ProofNotValidNow(cid))?;
        }
        stack.extend(anc.parents.iter().copied());
    }
    Ok(())
}

/// Finds a parent capability covering `cap`, or explains why none does.
fn check_covered(
    cap: &Capability,
    issuer: &Did,
    parents: &[Arc<DelegationInfo>],
) -> Result<(), ChainError> {
    if cap.is_root_authority(issuer) {
        return Ok(());
    }
    let mut closest = None;
    for parent in parents {
        for held in &parent.capabilities {
            match cap.covered_by(held) {
                Ok(()) => return Ok(()),
                Err(NotCovered::Resource) => {}
                Err(e) => closest = Some(e),
            }
        }
    }
    Err(ChainError::NotCovered {
        resource: cap.resource.to_string(),
        ability: cap.ability.to_string(),
        reason: closest,
    })
}

/// Decides whether a new delegation may be registered.
///
/// Rules: the delegation is valid now; it grants something; every cited parent is stored, was
/// delegated to this issuer, is not revoked (nor any ancestor), is not terminal; parents whose
/// window does not contain the child's (`exp` and `nbf` nesting) are dropped; every capability
/// is root authority of the issuer or covered by a remaining parent.
pub fn validate_delegation(
    new: &DelegationInfo,
    lookup: &impl ChainLookup,
    now: Timestamp,
) -> Result<(), ChainError> {
    check_window(now, new.not_before, new.expiration)?;
    if new.capabilities.is_empty() {
        return Err(ChainError::NoCapabilities);
    }
    // A revoked authority stays revoked under every encoding: it cannot be registered again.
    if is_delegation_revoked(lookup, new) {
        return Err(ChainError::Revoked(new.cid));
    }
    let parents = resolve_parents(&new.parents, lookup)?;
    let mut budget = MAX_CHAIN_NODES;
    for p in &parents {
        if p.delegatee != new.issuer {
            return Err(ChainError::DelegateeMismatch(Box::new(Mismatch {
                parent: p.cid,
                delegatee: p.delegatee.clone(),
                presenter: new.issuer.clone(),
            })));
        }
        if is_delegation_revoked(lookup, p) {
            return Err(ChainError::ParentRevoked(p.cid));
        }
        if p.terminal {
            return Err(ChainError::TerminalParent(p.cid));
        }
        budget = budget.checked_sub(1).ok_or(ChainError::TraversalLimit)?;
        check_ancestors(p, lookup, None, &mut budget)?;
    }
    let mut time_error = None;
    let nested: Vec<Arc<DelegationInfo>> = parents
        .into_iter()
        .filter(|p| {
            let exp_ok = match (p.expiration, new.expiration) {
                (Some(pe), Some(ce)) => ce <= pe,
                (Some(_), None) => false,
                (None, _) => true,
            };
            let nbf_ok = match (p.not_before, new.not_before) {
                (Some(pn), Some(cn)) => cn >= pn,
                // A child without nbf is still bounded by the parent's window at use time.
                _ => true,
            };
            if !exp_ok {
                time_error = Some(ChainError::ExpiryExceedsParent);
            } else if !nbf_ok {
                time_error = Some(ChainError::NotBeforePrecedesParent);
            }
            exp_ok && nbf_ok
        })
        .collect();
    for cap in &new.capabilities {
        if let Err(e) = check_covered(cap, &new.issuer, &nested) {
            // When time nesting removed every parent, that is the real reason.
            return Err(match time_error {
                Some(t) if nested.is_empty() => t,
                _ => e,
            });
        }
    }
    Ok(())
}

/// The outcome of a successful invocation check: for each invoked capability (same order), the
/// caveats that apply to it. Services must enforce these (e.g. SQL constrained statements):
/// an invocation that names no caveats inherits the caveats of the delegation that covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// Effective caveats per invoked capability.
    pub caveats: Vec<Caveats>,
}

/// Finds the caveats an invoked capability runs under: unconstrained for root authority;
/// otherwise those of a covering parent capability (preferring an unconstrained one), or the
/// invocation's own caveats when it names some and they are within the parent's.
fn invocation_caveats(
    cap: &Capability,
    invoker: &Did,
    parents: &[Arc<DelegationInfo>],
) -> Result<Caveats, ChainError> {
    if cap.is_root_authority(invoker) {
        return Ok(cap.caveats.clone());
    }
    let mut best: Option<Caveats> = None;
    let mut closest = None;
    for held in parents.iter().flat_map(|p| p.capabilities.iter()) {
        if !cap.resource.extends(&held.resource) {
            continue;
        }
        if !held.ability.covers(&cap.ability) {
            closest = Some(NotCovered::Ability);
            continue;
        }
        let effective = if cap.caveats.is_unconstrained() {
            held.caveats.clone()
        } else {
            match cap.caveats.contained_in(&held.caveats) {
                Ok(()) => cap.caveats.clone(),
                Err(e) => {
                    closest = Some(NotCovered::Caveats(e));
                    continue;
                }
            }
        };
        if effective.is_unconstrained() {
            return Ok(effective);
        }
        best.get_or_insert(effective);
    }
    best.ok_or_else(|| ChainError::NotCovered {
        resource: cap.resource.to_string(),
        ability: cap.ability.to_string(),
        reason: closest,
    })
}

/// Decides whether an invocation is authorized now.
///
/// Rules: `exp` present, `now < exp`, `exp - now <= max_lifetime_secs`, `nbf <= now`; it
/// exercises something; every cited delegation is stored, addressed to the invoker, not
/// revoked, valid now, and so is every ancestor; every capability is root authority of the
/// invoker or covered by a cited delegation (resource and ability; caveats the invocation
/// names must be within the delegation's, and the delegation's caveats apply otherwise).
pub fn validate_invocation(
    inv: &InvocationInfo,
    lookup: &impl ChainLookup,
    now: Timestamp,
    max_lifetime_secs: i64,
) -> Result<Authorized, ChainError> {
    let exp = inv.expiration.ok_or(ChainError::LifetimeTooLong {
        max_secs: max_lifetime_secs,
    })?;
    check_window(now, inv.not_before, Some(exp))?;
    if exp > now.plus_secs(max_lifetime_secs) {
        return Err(ChainError::LifetimeTooLong {
            max_secs: max_lifetime_secs,
        });
    }
    if inv.capabilities.is_empty() {
        return Err(ChainError::NoCapabilities);
    }
    let parents = resolve_parents(&inv.parents, lookup)?;
    let mut budget = MAX_CHAIN_NODES;
    for p in &parents {
        if p.delegatee != inv.invoker {
            return Err(ChainError::InvokerMismatch(Box::new(Mismatch {
                parent: p.cid,
                delegatee: p.delegatee.clone(),
                presenter: inv.invoker.clone(),
            })));
        }
        if is_delegation_revoked(lookup, p) {
            return Err(ChainError::Revoked(p.cid));
        }
        check_window(now, p.not_before, p.expiration)
            .map_err(|_| ChainError::ProofNotValidNow(p.cid))?;
        budget = budget.checked_sub(1).ok_or(ChainError::TraversalLimit)?;
        check_ancestors(p, lookup, Some(now), &mut budget)?;
    }
    let caveats = inv
        .capabilities
        .iter()
        .map(|cap| invocation_caveats(cap, &inv.invoker, &parents))
        .collect::<Result<_, _>>()?;
    Ok(Authorized { caveats })
}

/// A simple in-memory [`ChainLookup`], used by tests, tools and small embedders.
#[derive(Default, Debug, Clone)]
pub struct MemoryChain {
    delegations: std::collections::HashMap<Cid, Arc<DelegationInfo>>,
    revoked: HashSet<Cid>,
}

impl MemoryChain {
    /// Stores a delegation (no validation).
    pub fn insert(&mut self, d: DelegationInfo) {
        self.delegations.insert(d.cid, Arc::new(d));
    }

    /// Marks a CID revoked, and with it the authority identity of the delegation stored under
    /// it (every other encoding of the same authority).
    pub fn revoke(&mut self, cid: Cid) {
        if let Some(d) = self.delegations.get(&cid) {
            self.revoked.insert(d.authority);
        }
        self.revoked.insert(cid);
    }

    /// Validates then stores a delegation.
    pub fn register(&mut self, d: DelegationInfo, now: Timestamp) -> Result<(), ChainError> {
        validate_delegation(&d, self, now)?;
        self.insert(d);
        Ok(())
    }
}

impl ChainLookup for MemoryChain {
    fn delegation(&self, cid: &Cid) -> Option<Arc<DelegationInfo>> {
        self.delegations.get(cid).cloned()
    }

    fn is_revoked(&self, id: &Cid) -> bool {
        self.revoked.contains(id)
    }
}

#[cfg(test)]
mod tests;

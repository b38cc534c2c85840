//! The one authorization door. Every route that acts on a space hands its `Authorization`
//! header here and gets back a verified invocation with the caveats that apply, or a typed
//! refusal. Verified delegations are cached (a request does only its own signature check plus
//! an in-memory walk); revocations are held in memory and written through to the index.

use std::collections::HashSet;
use std::sync::Arc;

use tinycloud_auth::capability::{check_caveats_enforced, UnenforcedCaveat};
use tinycloud_auth::chain::{
    is_delegation_revoked, validate_delegation, validate_invocation, Authorized, ChainError,
    DelegationInfo, MAX_CHAIN_NODES,
};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, Invocation, TokenError};

mod cache;
pub use cache::DelegationCache;

use crate::store::{DelegationCharge, DelegationWrite, IndexStore, StoreError, StoredDelegation};

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token does not parse.
    #[error("{0}")]
    Malformed(TokenError),
    /// Signature, ReCap statement or other verification failure.
    #[error("{0}")]
    Unverified(TokenError),
    /// Chain validation failed.
    #[error("{0}")]
    Chain(Box<ChainError>),
    /// The invocation was already used.
    #[error("duplicate invocation")]
    Replay,
    /// A capability carries caveats its service does not enforce (refused, never ignored).
    #[error("{0}")]
    Unenforced(UnenforcedCaveat),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ChainError> for AuthError {
    fn from(e: ChainError) -> Self {
        AuthError::Chain(Box::new(e))
    }
}

impl AuthError {
    fn from_token(e: TokenError) -> Self {
        use tinycloud_auth::ucan::UcanError;
        match &e {
            TokenError::Ucan(UcanError::Signature(_))
            | TokenError::Ucan(UcanError::IssuerHasNoKey(_))
            | TokenError::Cacao(tinycloud_auth::cacao::CacaoError::Signature(_))
            | TokenError::Recap(tinycloud_auth::recap::RecapError::StatementMismatch) => {
                AuthError::Unverified(e)
            }
            _ => AuthError::Malformed(e),
        }
    }
}

/// Verifies tokens against the stored delegation graph.
pub struct Authorizer {
    index: Arc<dyn IndexStore>,
    cache: DelegationCache,
    max_lifetime_secs: i64,
}

/// What a walk over a set of delegations found.
#[derive(Default)]
struct Walk {
    /// The earliest expiration.
    expires: Option<Timestamp>,
    /// Issuers of the delegations that cite no parent.
    roots: Vec<Did>,
}

/// A verified, authorized, consumed invocation.
#[derive(Debug)]
pub struct AuthorizedInvocation {
    /// The invocation.
    pub invocation: Invocation,
    /// Effective caveats per invoked capability.
    pub authorized: Authorized,
}

impl Authorizer {
    /// Loads revocations and prepares an empty delegation cache.
    pub async fn new(
        index: Arc<dyn IndexStore>,
        max_lifetime_secs: i64,
    ) -> Result<Self, StoreError> {
        let cache = DelegationCache::default();
        for cid in index.revoked().await? {
            cache.revoke(cid);
        }
        Ok(Authorizer {
            index,
            cache,
            max_lifetime_secs,
        })
    }

    /// The cache (for revocation and tests).
    pub fn cache(&self) -> &DelegationCache {
        &self.cache
    }

    /// Brings `roots` and their ancestors into the cache (bounded walk).
    async fn prefetch(&self, roots: &[Cid]) -> Result<(), StoreError> {
        let mut stack: Vec<Cid> = roots.to_vec();
        let mut seen = HashSet::new();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) || seen.len() > MAX_CHAIN_NODES + 1 {
                continue;
            }
            let info = match self.cache.get(&cid) {
                Some(i) => i,
                None => match self.index.delegation(&cid).await? {
                    Some(d) => {
                        let info = Arc::new(d.info);
                        self.cache.insert(info.clone());
                        info
                    }
                    None => continue,
                },
            };
            stack.extend(info.parents.iter().copied());
        }
        Ok(())
    }

    /// Verifies a delegation header and validates it against the stored graph. Does not store.
    /// A capability constrained by caveats its service does not enforce is refused here, before
    /// anything is stored.
    pub async fn check_delegation(
        &self,
        header: &str,
        now: Timestamp,
    ) -> Result<Delegation, AuthError> {
        let d = Delegation::from_header(header).map_err(AuthError::from_token)?;
        for cap in &d.info().capabilities {
            check_caveats_enforced(&cap.ability, &cap.caveats).map_err(AuthError::Unenforced)?;
        }
        self.prefetch(&d.info().parents).await?;
        validate_delegation(d.info(), &self.cache, now)?;
        Ok(d)
    }

    /// Stores a validated delegation, charging its bytes to the quota of each space in
    /// `charges` (refused, storing nothing, past a limit). Only a stored delegation enters the
    /// cache.
    pub async fn store_delegation(
        &self,
        d: &Delegation,
        charges: Vec<DelegationCharge>,
        now: Timestamp,
    ) -> Result<DelegationWrite, StoreError> {
        let (named, _) = d.spaces();
        let stored = StoredDelegation {
            info: d.info().clone(),
            header: d.to_header(),
            spaces: named.into_iter().collect(),
        };
        let outcome = self
            .index
            .put_delegation(&stored, charges, now.as_millis())
            .await?;
        if !matches!(outcome, DelegationWrite::QuotaExceeded { .. }) {
            self.cache.insert(Arc::new(stored.info));
        }
        Ok(outcome)
    }

    /// Deletes delegations that expired more than `grace_secs` before `now`, at most
    /// `batch` per transaction and `batches` transactions, and evicts them from the cache.
    /// An expired delegation's whole subtree is expired too (a child never outlives its
    /// parent), so no live chain loses a link. Returns how many were deleted.
    pub async fn sweep_expired(
        &self,
        now: Timestamp,
        grace_secs: u64,
        batch: usize,
        batches: usize,
    ) -> Result<usize, StoreError> {
        let grace_ms = i64::try_from(grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let before = now.as_millis().saturating_sub(grace_ms);
        let mut total = 0;
        for _ in 0..batches {
            let swept = self.index.sweep_delegations(before, batch).await?;
            self.cache.evict(&swept);
            total += swept.len();
            if swept.len() < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Decodes and verifies an invocation header: signature, time window and lifetime cap.
    pub fn decode_invocation(&self, header: &str, now: Timestamp) -> Result<Invocation, AuthError> {
        let inv = Invocation::from_header(header).map_err(AuthError::from_token)?;
        let i = inv.info();
        if i.expiration.is_some_and(|e| now >= e) {
            return Err(ChainError::Expired.into());
        }
        if i.not_before.is_some_and(|n| now < n) {
            return Err(ChainError::NotYetValid.into());
        }
        Ok(inv)
    }

    /// The full check of a data-plane request: verify, validate the chain, then consume the
    /// invocation's single use (durably).
    pub async fn authorize(
        &self,
        header: &str,
        now: Timestamp,
    ) -> Result<AuthorizedInvocation, AuthError> {
        let invocation = self.decode_invocation(header, now)?;
        self.authorize_decoded(invocation, now).await
    }

    /// [`Authorizer::authorize`] for an invocation already decoded (and signature-checked) by
    /// [`Authorizer::decode_invocation`].
    pub async fn authorize_decoded(
        &self,
        invocation: Invocation,
        now: Timestamp,
    ) -> Result<AuthorizedInvocation, AuthError> {
        let authorized = self.validate(&invocation, now).await?;
        self.consume(&invocation, now).await?;
        Ok(AuthorizedInvocation {
            invocation,
            authorized,
        })
    }

    /// Chain validation of a decoded invocation (no replay consumption). The effective caveats
    /// of every invoked capability must be ones its service enforces.
    pub async fn validate(
        &self,
        invocation: &Invocation,
        now: Timestamp,
    ) -> Result<Authorized, AuthError> {
        self.prefetch(&invocation.info().parents).await?;
        let authorized =
            validate_invocation(invocation.info(), &self.cache, now, self.max_lifetime_secs)?;
        for (cap, caveats) in invocation
            .info()
            .capabilities
            .iter()
            .zip(&authorized.caveats)
        {
            check_caveats_enforced(&cap.ability, caveats).map_err(AuthError::Unenforced)?;
        }
        Ok(authorized)
    }

    /// Consumes the invocation's single use; 409 on the second use, across restarts for as
    /// long as the invocation could be valid (plus a minute of skew). The key is the signed
    /// content's identity, so a re-encoded signature is the same single use.
    pub async fn consume(&self, invocation: &Invocation, now: Timestamp) -> Result<(), AuthError> {
        let exp = invocation
            .info()
            .expiration
            .unwrap_or(now)
            .min(now.plus_secs(self.max_lifetime_secs))
            .plus_secs(60);
        let key = invocation.replay_key();
        if self
            .index
            .consume_nonce(key, exp.as_millis(), now.as_millis())
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::Replay)
        }
    }

    /// A stored delegation by CID (through the cache).
    pub async fn delegation(&self, cid: &Cid) -> Result<Option<Arc<DelegationInfo>>, StoreError> {
        self.prefetch(&[*cid]).await?;
        Ok(self.cache.get(cid))
    }

    /// Whether the delegations `proofs` (and all their ancestors) are still unrevoked and
    /// inside their validity windows: the one rule that keeps a standing subscription (an SSE
    /// stream, a webhook) alive only while the authority it was created under lasts. Returns
    /// the earliest expiration along the chain (`None`: nothing in it expires). Cheap: an
    /// in-memory walk over the delegation cache and the revocation set.
    pub async fn proofs_still_valid(
        &self,
        proofs: &[Cid],
        now: Timestamp,
    ) -> Result<Option<Timestamp>, AuthError> {
        Ok(self.walk(proofs, now).await?.expires)
    }

    /// Whether a decoded (signature-checked) invocation speaks with authority that starts at
    /// `owner`: either `owner` invokes directly, or every delegation it cites is addressed to
    /// the invoker, unrevoked and valid now, and every chain it rests on starts at `owner`.
    /// This says nothing about *what* the invocation may do; it tells an authenticated
    /// principal of `owner` (whose refused requests are worth recording for `owner`) from a
    /// stranger (whose requests must leave no trace).
    pub async fn rests_on(&self, invocation: &Invocation, owner: &Did, now: Timestamp) -> bool {
        let info = invocation.info();
        if info.parents.is_empty() {
            return &info.invoker == owner;
        }
        let Ok(walk) = self.walk(&info.parents, now).await else {
            return false;
        };
        let addressed = info.parents.iter().all(|p| {
            self.cache
                .get(p)
                .is_some_and(|d| d.delegatee == info.invoker)
        });
        addressed && !walk.roots.is_empty() && walk.roots.iter().all(|r| r == owner)
    }

    /// Walks `proofs` and their ancestors (bounded): every one stored, unrevoked and valid now.
    async fn walk(&self, proofs: &[Cid], now: Timestamp) -> Result<Walk, AuthError> {
        self.prefetch(proofs).await?;
        let mut stack: Vec<Cid> = proofs.to_vec();
        let mut seen = HashSet::new();
        let mut out = Walk::default();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            if seen.len() > MAX_CHAIN_NODES + 1 {
                return Err(ChainError::TraversalLimit.into());
            }
            let d = self
                .cache
                .get(&cid)
                .ok_or(ChainError::ParentNotFound(cid))?;
            if self.is_delegation_revoked(&d) {
                return Err(ChainError::Revoked(cid).into());
            }
            if !tinycloud_auth::timestamp::within(now, d.not_before, d.expiration) {
                return Err(ChainError::ProofNotValidNow(cid).into());
            }
            if let Some(e) = d.expiration {
                out.expires = Some(out.expires.map_or(e, |x: Timestamp| x.min(e)));
            }
            if d.parents.is_empty() {
                out.roots.push(d.issuer.clone());
            }
            stack.extend(d.parents.iter().copied());
        }
        Ok(out)
    }

    /// Whether a delegation is revoked, under its CID or its authority identity (any other
    /// encoding of it revoked).
    pub fn is_delegation_revoked(&self, d: &DelegationInfo) -> bool {
        is_delegation_revoked(&self.cache, d)
    }

    /// Records a revocation durably, then makes it effective: the authority identity first
    /// (which alone revokes every encoding), then the CID.
    pub async fn revoke(
        &self,
        target: &DelegationInfo,
        revoker: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for id in [target.authority, target.cid] {
            self.index.revoke(&id, revoker, now.as_millis()).await?;
            self.cache.revoke(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The authorizer's in-memory view of the delegation graph: verified delegations (a bounded
//! `moka` cache, least recently used evicted first) and the revocation set (unbounded, kept
//! apart from the cache so no eviction or refill can forget a revocation).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use tinycloud_auth::chain::{ChainLookup, DelegationInfo};
use tinycloud_auth::cid::Cid;

/// Most delegations kept in memory (each counted as one entry, whatever its size). Past it the
/// least recently used are evicted; a delegation not in memory is read from the index again.
pub(super) const CACHE_CAPACITY: u64 = 100_000;

/// Verified delegations and revocations, as the chain validation reads them.
///
/// Holds at most [`CACHE_CAPACITY`] (100,000) delegations, evicting the least recently used
/// (no time-to-live: whether a delegation is inside its validity window is checked by the
/// chain validation on every use, as is whether it is revoked). Revocations are a separate
/// set that is never evicted, so a revoked delegation read back into the cache is still
/// refused.
pub struct DelegationCache {
    delegations: Cache<Cid, Arc<DelegationInfo>>,
    revoked: RwLock<HashSet<Cid>>,
}

impl Default for DelegationCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_CAPACITY)
    }
}

impl DelegationCache {
    /// A cache of at most `capacity` delegations. LRU rather than moka's default TinyLFU:
    /// TinyLFU may refuse to admit a newcomer, and the authorizer reads a delegation back
    /// right after bringing it in (prefetch, then validation), so every insert must be kept
    /// until newer ones push it out.
    pub(super) fn with_capacity(capacity: u64) -> Self {
        DelegationCache {
            delegations: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            revoked: RwLock::new(HashSet::new()),
        }
    }

    pub(super) fn get(&self, cid: &Cid) -> Option<Arc<DelegationInfo>> {
        self.delegations.get(cid)
    }

    pub(super) fn insert(&self, info: Arc<DelegationInfo>) {
        self.delegations.insert(info.cid, info);
    }

    /// Forgets swept delegations (their revocations, if any, are kept).
    pub(super) fn evict(&self, cids: &[Cid]) {
        for cid in cids {
            self.delegations.invalidate(cid);
        }
    }

    /// Marks a delegation revoked (effective for the next check).
    pub fn revoke(&self, cid: Cid) {
        if let Ok(mut r) = self.revoked.write() {
            r.insert(cid);
        }
    }
}

impl ChainLookup for DelegationCache {
    fn delegation(&self, cid: &Cid) -> Option<Arc<DelegationInfo>> {
        self.get(cid)
    }

    /// A poisoned lock counts as revoked: refuse rather than serve.
    fn is_revoked(&self, id: &Cid) -> bool {
        self.revoked.read().map(|r| r.contains(id)).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinycloud_auth::chain::is_delegation_revoked;
    use tinycloud_auth::cid::blake3_cid;
    use tinycloud_auth::did::Did;

    fn did() -> Did {
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
            .parse()
            .unwrap()
    }

    fn info(n: u32) -> Arc<DelegationInfo> {
        let cid = blake3_cid(format!("delegation {n}").as_bytes());
        Arc::new(DelegationInfo {
            cid,
            authority: blake3_cid(format!("authority {n}").as_bytes()),
            issuer: did(),
            delegatee: did(),
            capabilities: Vec::new(),
            parents: Vec::new(),
            not_before: None,
            expiration: None,
            terminal: false,
        })
    }

    #[test]
    fn filling_past_capacity_keeps_the_recently_used() {
        let cache = DelegationCache::with_capacity(8);
        let hot = info(0);
        cache.insert(hot.clone());
        for n in 1..40 {
            cache.insert(info(n));
            // The hot entry is used between every insert.
            assert!(
                cache.get(&hot.cid).is_some(),
                "hot entry gone after insert {n}"
            );
            cache.delegations.run_pending_tasks();
        }
        cache.delegations.run_pending_tasks();
        let kept = cache.delegations.entry_count();
        assert!((2..=8).contains(&kept), "kept {kept} of capacity 8");
        assert!(cache.get(&hot.cid).is_some());
        // The newest insert is kept too (admitted, not refused), the oldest cold one is not.
        assert!(cache.get(&info(39).cid).is_some());
        assert!(cache.get(&info(1).cid).is_none());
    }

    #[test]
    fn a_revoked_delegation_is_refused_even_after_eviction_and_refill() {
        let cache = DelegationCache::with_capacity(4);
        let parent = info(0);
        cache.insert(parent.clone());
        cache.revoke(parent.cid);
        assert!(cache.is_revoked(&parent.cid));
        assert!(is_delegation_revoked(&cache, &parent));
        // Push it out of the cache, then read it back as the index would serve it.
        for n in 1..20 {
            cache.insert(info(n));
            cache.delegations.run_pending_tasks();
        }
        assert!(cache.get(&parent.cid).is_none(), "evicted");
        assert!(cache.is_revoked(&parent.cid));
        cache.insert(parent.clone());
        assert!(is_delegation_revoked(&cache, &parent));
        // Revoking the authority identity alone revokes the delegation too.
        let other = info(200);
        cache.insert(other.clone());
        assert!(!is_delegation_revoked(&cache, &other));
        cache.revoke(other.authority);
        assert!(is_delegation_revoked(&cache, &other));
    }
}

//! Shared state of a running node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use crate::auth::Authorizer;
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::ratelimit::RateLimiter;
use crate::store::{BlobStore, IndexStore};

/// Everything handlers need.
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// Node keys.
    pub keys: NodeKeys,
    /// The index.
    pub index: Arc<dyn IndexStore>,
    /// Large values.
    pub blobs: Arc<dyn BlobStore>,
    /// Deletes KV blobs no head points at (uploads pin through it).
    pub blob_gc: Arc<crate::store::blob_gc::BlobCollector>,
    /// The authorization door.
    pub auth: Authorizer,
    /// Existing spaces (loaded at start, added on creation).
    pub spaces: RwLock<HashSet<String>>,
    /// MAC key of KV list cursors.
    pub cursor_key: [u8; 32],
    /// MAC key of hook tickets.
    pub ticket_key: [u8; 32],
    /// Per-IP limiter of unauthenticated public reads.
    pub public_limiter: RateLimiter,
    /// Per-space SQL databases.
    pub sql: crate::sql::SqlService,
    /// Webhook subscriptions and delivery state.
    pub webhooks: Arc<dyn crate::store::WebhookStore>,
    /// Key sealing webhook secrets.
    pub webhook_key: [u8; 32],
    /// Webhook delivery settings.
    pub webhook_settings: crate::webhooks::WebhookSettings,
    /// Encryption networks and their audit trail.
    pub networks: Arc<dyn crate::store::EncryptionStore>,
    /// Key sealing network private keys at rest.
    pub network_key: [u8; 32],
    /// Durable per-space quota overrides (admin API).
    pub quotas: Arc<dyn crate::store::quota::QuotaStore>,
    /// The overrides in force: loaded at start, updated after each durable admin change.
    pub quota_overrides: RwLock<HashMap<String, u64>>,
    /// Serializes admin quota changes, so the map always ends as the store does.
    pub quota_admin: tokio::sync::Mutex<()>,
    /// Signed KV URL tickets.
    pub tickets: Arc<dyn crate::store::TicketStore>,
    /// MAC key of signed KV URL ticket ids.
    pub signed_key: [u8; 32],
    /// Serializes, per space, the quota check and the write of growing writes under a limit,
    /// so concurrent writes cannot each spend the same remainder.
    pub quota_locks: QuotaLocks,
}

/// Per-space locks of the writes that grow a limited space. An entry lives only while a
/// write holds or awaits it (bounded by the writes in flight, reclaimed by the last one out),
/// and spaces never wait for one another.
#[derive(Default)]
pub struct QuotaLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A space's turn to check its quota and write; dropping it ends the turn.
pub struct QuotaTurn<'a> {
    locks: &'a QuotaLocks,
    space: String,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl QuotaLocks {
    /// Waits for `space`'s turn.
    pub async fn lock(&self, space: &str) -> QuotaTurn<'_> {
        // Declared first, so it drops last: a cancelled wait (its clone of the lock dropped
        // already) still reclaims the entry.
        let mut turn = QuotaTurn {
            locks: self,
            space: space.to_owned(),
            turn: None,
        };
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(space.to_owned()).or_default().clone()
        };
        turn.turn = Some(lock.lock_owned().await);
        turn
    }
}

impl Drop for QuotaTurn<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.turn.take());
        // Nobody else holds or awaits it: only the map's reference is left.
        if map
            .get(&self.space)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.space);
        }
    }
}

impl AppState {
    /// Whether a space exists.
    pub fn space_exists(&self, space: &str) -> bool {
        self.spaces
            .read()
            .map(|s| s.contains(space))
            .unwrap_or(false)
    }

    /// Whether `owner` hosts at least one space on this node (what lets it create state here
    /// that no space holds, such as encryption networks).
    pub fn hosts_owner(&self, owner: &tinycloud_auth::did::Did) -> bool {
        self.spaces
            .read()
            .map(|s| {
                s.iter().any(|id| {
                    id.parse::<tinycloud_auth::resource::SpaceId>()
                        .is_ok_and(|sp| sp.owner() == owner)
                })
            })
            .unwrap_or(false)
    }

    /// Bytes a space uses now against its limit: KV values and stored delegations (the index)
    /// plus its SQL databases. The one measure every write path checks its quota with.
    pub async fn space_usage(&self, space: &str) -> crate::error::ApiResult<u64> {
        let index = self.index.usage(space).await?;
        let sql = self.sql.dbs.usage(space).await?;
        Ok(index.saturating_add(sql))
    }

    /// Bytes a write may still add to a space (`None`: unlimited), or 402 when the space
    /// already uses its whole limit. The one quota check of the KV and SQL write paths.
    pub async fn quota_room(&self, space: &str) -> crate::error::ApiResult<Option<u64>> {
        let Some(limit) = self.limit_for(space) else {
            return Ok(None);
        };
        let used = self.space_usage(space).await?;
        if used >= limit {
            return Err(crate::error::ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                format!("Storage quota exceeded. Used: {used} bytes, Limit: {limit} bytes"),
            ));
        }
        Ok(Some(limit - used))
    }

    /// The storage limit enforced on a space (its canonical id): the admin override if one
    /// is set, else the configured default for its kind.
    pub fn limit_for(&self, space: &str) -> Option<u64> {
        if let Some(l) = self
            .quota_overrides
            .read()
            .ok()
            .and_then(|m| m.get(space).copied())
        {
            return Some(l);
        }
        self.default_limit(
            space
                .parse::<tinycloud_auth::resource::SpaceId>()
                .is_ok_and(|id| id.is_public()),
        )
    }

    /// What a space's index (KV values, stored delegations) may hold under its limit: the limit
    /// less the bytes its SQL databases hold (the quota covers both, as the admin API reports),
    /// with those SQL bytes; `(None, 0)` when the space has no limit.
    pub async fn index_limit_for(
        &self,
        space: &str,
    ) -> crate::error::ApiResult<(Option<u64>, u64)> {
        let Some(limit) = self.limit_for(space) else {
            return Ok((None, 0));
        };
        let sql = self.sql.dbs.usage(space).await?;
        Ok((Some(limit.saturating_sub(sql)), sql))
    }

    /// The configured storage limit of a kind of space (`public_spaces.storage_limit` for
    /// spaces named `public`, `storage.limit` otherwise).
    pub fn default_limit(&self, space_is_public: bool) -> Option<u64> {
        if space_is_public {
            self.config.public_spaces.storage_limit
        } else {
            self.config.storage.limit
        }
    }
}

/// Shared handle.
pub type SharedState = Arc<AppState>;

#[cfg(test)]
mod tests {
    use super::QuotaLocks;

    #[tokio::test]
    async fn quota_turns_serialize_one_space_and_are_reclaimed() {
        let locks = QuotaLocks::default();
        let a = locks.lock("a").await;
        // Another space does not wait.
        let b = locks.lock("b").await;
        // The same space does.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a"));
        assert!(waiting.await.is_err(), "a second turn of one space waits");
        drop(a);
        // A wait cancelled while the turn is held, the holder leaving last: reclaimed too.
        let held = locks.lock("c").await;
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(20), locks.lock("c"));
        assert!(cancelled.await.is_err());
        drop(held);
        assert!(!locks.0.lock().unwrap().contains_key("c"));
        let held = locks.lock("d").await;
        let mut waiter = Box::pin(locks.lock("d"));
        assert!(futures_util::poll!(waiter.as_mut()).is_pending());
        drop(held);
        drop(waiter);
        assert!(
            !locks.0.lock().unwrap().contains_key("d"),
            "the last one out was a waiter"
        );
        let again = locks.lock("a").await;
        drop((again, b));
        assert!(locks.0.lock().unwrap().is_empty(), "entries are reclaimed");
    }
}

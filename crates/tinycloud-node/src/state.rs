//! Shared state of a running node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tinycloud_auth::timestamp::Timestamp;

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

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::from(time::OffsetDateTime::now_utc())
}

/// A Unix-ms time as RFC 3339 (empty if it cannot be formatted).
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millis(ms)
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

//! Per-space quota overrides set through the admin API (`/admin/quota/<spaceId>`): durable,
//! so an override survives a restart, and bounded in number. The embedded implementation is
//! `sqlite/quota.rs` (table `quota_override`).

use super::StoreResult;
use async_trait::async_trait;

/// Durable per-space storage limits that replace the configured default.
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Every override, ordered by space id.
    async fn quota_overrides(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Sets (`Some`) or removes (`None`) the override of `space`; durable when this returns.
    /// Setting a new one when `max` overrides exist already is refused (`false`); replacing
    /// or removing one always succeeds.
    async fn set_quota_override(
        &self,
        space: &str,
        limit: Option<u64>,
        max: usize,
        now_ms: i64,
    ) -> StoreResult<bool>;
}

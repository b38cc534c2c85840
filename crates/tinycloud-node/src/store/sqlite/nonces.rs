//! [`NonceStore`]: single-use nonces live in the replay log beside the database (see
//! `store::replay_log`), which the writer thread syncs before every commit.

use async_trait::async_trait;

use super::SqliteIndex;
use crate::store::{Hash, NonceStore, StoreResult};

#[async_trait]
impl NonceStore for SqliteIndex {
    async fn consume_nonce(&self, nonce: Hash, expires_ms: i64, now_ms: i64) -> StoreResult<bool> {
        self.replay.consume(nonce, expires_ms, now_ms)
    }

    async fn sweep_nonces(&self, now_ms: i64) -> StoreResult<u64> {
        self.replay.compact(now_ms)
    }

    fn sync_nonces(&self) -> StoreResult<()> {
        self.replay.sync()
    }

    fn nonces_pending(&self) -> StoreResult<bool> {
        let (written, durable) = self.replay.durability()?;
        Ok(durable < written)
    }
}

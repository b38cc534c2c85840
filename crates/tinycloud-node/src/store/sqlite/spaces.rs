//! [`SpaceStore`]: the `space` and `space_usage` tables, and the usage helpers every
//! write that grows or shrinks a space calls inside its transaction.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteIndex;
use crate::store::{SpaceStore, StoreResult};

pub(super) fn usage_of(tx: &Connection, space: &str) -> StoreResult<u64> {
    let used: Option<i64> = tx
        .query_row(
            "SELECT bytes FROM space_usage WHERE space = ?1",
            params![space],
            |r| r.get(0),
        )
        .optional()?;
    Ok(used.and_then(|u| u64::try_from(u).ok()).unwrap_or(0))
}

pub(super) fn add_usage(tx: &Connection, space: &str, delta: i64) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO space_usage (space, bytes) VALUES (?1, max(?2, 0))
         ON CONFLICT (space) DO UPDATE SET bytes = max(bytes + ?2, 0)",
        params![space, delta],
    )?;
    Ok(())
}

#[async_trait]
impl SpaceStore for SqliteIndex {
    async fn spaces(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id FROM space")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_space(&self, space: &str, owner: &str, now_ms: i64) -> StoreResult<()> {
        let (space, owner) = (space.to_owned(), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO space (id, owner, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![space, owner, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| usage_of(c, &space)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

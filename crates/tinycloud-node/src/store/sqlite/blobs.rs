//! [`BlobIndex`]: per-blob reference counts of KV heads (`blob_ref`) and the garbage queue
//! (`blob_gc`) that the write dropping a count to zero fills in the same transaction.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{hash_from, SqliteIndex};
use crate::store::{BlobIndex, Hash, StoreResult};

/// One more head points at `hash`; it is no longer garbage.
pub(super) fn blob_ref(tx: &Connection, hash: &Hash) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO blob_ref (hash, refs) VALUES (?1, 1)
         ON CONFLICT (hash) DO UPDATE SET refs = refs + 1",
        params![hash.as_slice()],
    )?;
    tx.execute(
        "DELETE FROM blob_gc WHERE hash = ?1",
        params![hash.as_slice()],
    )?;
    Ok(())
}

/// One head fewer points at `hash`; at zero the blob is queued as garbage (true).
pub(super) fn blob_unref(tx: &Connection, hash: &Hash) -> StoreResult<bool> {
    let refs: Option<i64> = tx
        .query_row(
            "UPDATE blob_ref SET refs = refs - 1 WHERE hash = ?1 RETURNING refs",
            params![hash.as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    if refs.is_none_or(|n| n <= 0) {
        tx.execute(
            "DELETE FROM blob_ref WHERE hash = ?1",
            params![hash.as_slice()],
        )?;
        queue_garbage(tx, hash)?;
        return Ok(true);
    }
    Ok(false)
}

/// Queues `hash` for deletion (no-op if queued already).
fn queue_garbage(tx: &Connection, hash: &Hash) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO blob_gc (hash) VALUES (?1) ON CONFLICT (hash) DO NOTHING",
        params![hash.as_slice()],
    )?;
    Ok(())
}

/// Queues an uploaded blob that no head points at (its put was refused); true if queued.
pub(super) fn queue_if_unreferenced(tx: &Connection, hash: &Hash) -> StoreResult<bool> {
    let referenced: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM blob_ref WHERE hash = ?1)",
        params![hash.as_slice()],
        |r| r.get(0),
    )?;
    if !referenced {
        queue_garbage(tx, hash)?;
    }
    Ok(!referenced)
}

#[async_trait]
impl BlobIndex for SqliteIndex {
    async fn blob_garbage(&self, limit: usize) -> StoreResult<Vec<(i64, Hash)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT id, hash FROM blob_gc ORDER BY id LIMIT ?1")?;
            let rows = st.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|r| {
                let (id, h) = r?;
                Ok((id, hash_from(h)?))
            })
            .collect()
        })
        .await
    }

    async fn blob_garbage_queued(&self, ids: Vec<i64>) -> StoreResult<Vec<i64>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blob_gc WHERE id = ?1)")?;
            let mut out = Vec::new();
            for id in ids {
                if st.query_row(params![id], |r| r.get::<_, bool>(0))? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn blob_collected(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.write(move |tx| {
            let mut st = tx.prepare_cached("DELETE FROM blob_gc WHERE id = ?1")?;
            for id in ids {
                st.execute(params![id])?;
            }
            Ok(())
        })
        .await
    }

    async fn queue_orphans(&self, hashes: Vec<Hash>) -> StoreResult<usize> {
        self.write(move |tx| {
            let mut sql_pieces = std::collections::HashSet::new();
            {
                let mut st = tx.prepare(
                    "SELECT snapshot_hash FROM sql_generation WHERE snapshot_hash IS NOT NULL
                     UNION SELECT hash FROM sql_segment WHERE hash IS NOT NULL",
                )?;
                for h in st.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
                    sql_pieces.insert(h?);
                }
            }
            let mut queued = 0;
            for h in hashes {
                if sql_pieces.contains(h.as_slice()) {
                    continue;
                }
                let referenced: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM blob_ref WHERE hash = ?1)",
                    params![h.as_slice()],
                    |r| r.get(0),
                )?;
                if !referenced {
                    queued += tx.execute(
                        "INSERT INTO blob_gc (hash) VALUES (?1) ON CONFLICT (hash) DO NOTHING",
                        params![h.as_slice()],
                    )?;
                }
            }
            Ok(queued)
        })
        .await
    }

    fn garbage_signal(&self) -> Arc<tokio::sync::Notify> {
        self.garbage.clone()
    }
}

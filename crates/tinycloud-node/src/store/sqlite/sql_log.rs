//! [`SqlLogStore`]: shipped SQL databases — per database the current generation's snapshot
//! (`sql_generation`) and its WAL segments (`sql_segment`), inline or in the blob store;
//! shipments are refused unless they follow the stored log.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{hash_from, SqliteIndex};
use crate::store::{Hash, LogBytes, SqlLog, SqlLogStore, SqlShipment, StoreError, StoreResult};

/// Splits log bytes into the (inline, hash, len) columns.
fn log_columns(b: &LogBytes) -> (Option<&[u8]>, Option<&[u8]>, i64) {
    match b {
        LogBytes::Inline(v) => (Some(v), None, i64::try_from(v.len()).unwrap_or(i64::MAX)),
        LogBytes::Blob(h, len) => (None, Some(h), i64::try_from(*len).unwrap_or(i64::MAX)),
    }
}

fn log_bytes(inline: Option<Vec<u8>>, hash: Option<Vec<u8>>, len: i64) -> StoreResult<LogBytes> {
    match (inline, hash) {
        (Some(v), None) => Ok(LogBytes::Inline(v)),
        (None, Some(h)) => Ok(LogBytes::Blob(
            hash_from(h)?,
            u64::try_from(len)
                .map_err(|_| StoreError::Corrupt("negative SQL log length".into()))?,
        )),
        _ => Err(StoreError::Corrupt(
            "SQL log piece is neither inline nor a blob".into(),
        )),
    }
}

fn blob_of(b: &LogBytes) -> Option<Hash> {
    match b {
        LogBytes::Blob(h, _) => Some(*h),
        LogBytes::Inline(_) => None,
    }
}

#[async_trait]
impl SqlLogStore for SqliteIndex {
    async fn sql_log(&self, space: &str, db: &str) -> StoreResult<Option<SqlLog>> {
        let (space, db) = (space.to_owned(), db.to_owned());
        self.read(move |c| {
            // One read transaction: the generation and its segments from the same commit.
            let c = c.unchecked_transaction()?;
            let head = c
                .query_row(
                    "SELECT generation, snapshot_inline, snapshot_hash, snapshot_len FROM sql_generation
                     WHERE space = ?1 AND db = ?2",
                    params![space, db],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<Vec<u8>>>(1)?,
                            r.get::<_, Option<Vec<u8>>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((generation, inline, hash, len)) = head else {
                return Ok(None);
            };
            let mut st = c.prepare(
                "SELECT inline_bytes, hash, len FROM sql_segment WHERE space = ?1 AND db = ?2 ORDER BY seq",
            )?;
            let segments = st
                .query_map(params![space, db], |r| {
                    Ok((
                        r.get::<_, Option<Vec<u8>>>(0)?,
                        r.get::<_, Option<Vec<u8>>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .map(|row| {
                    let (i, h, l) = row?;
                    log_bytes(i, h, l)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(SqlLog {
                generation: u64::try_from(generation)
                    .map_err(|_| StoreError::Corrupt("negative SQL generation".into()))?,
                snapshot: log_bytes(inline, hash, len)?,
                segments,
            }))
        })
        .await
    }

    async fn sql_ship(&self, batch: Vec<SqlShipment>) -> StoreResult<Vec<Hash>> {
        self.write(move |tx| {
            let mut dropped = Vec::new();
            for s in &batch {
                dropped.extend(ship_one(tx, s)?);
            }
            Ok(dropped)
        })
        .await
    }

    async fn sql_usage(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| {
            let n: i64 = c.query_row(
                "SELECT COALESCE(SUM(db_bytes), 0) FROM sql_generation WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn sql_databases(&self, space: &str) -> StoreResult<Vec<String>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut st = c.prepare("SELECT db FROM sql_generation WHERE space = ?1")?;
            let names = st
                .query_map(params![space], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }
}

/// Records one shipment inside the caller's transaction.
fn ship_one(tx: &Transaction<'_>, s: &SqlShipment) -> StoreResult<Vec<Hash>> {
    let generation = i64::try_from(s.generation)
        .map_err(|_| StoreError::Backend("SQL generation out of range".into()))?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT generation FROM sql_generation WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )
        .optional()?;
    let mut dropped = Vec::new();
    if let Some(snapshot) = &s.snapshot {
        // A new generation is built on exactly the stored log it names: the previous
        // generation with all its segments. Anything else means another writer moved on.
        let previous = generation - 1;
        let segments: i64 = tx.query_row(
            "SELECT COUNT(*) FROM sql_segment WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )?;
        let follows = match current {
            None => previous == 0,
            Some(g) => g == previous && u64::try_from(segments).ok() == Some(s.base_segments),
        };
        if !follows || s.seq != 0 {
            return Err(StoreError::Backend(format!(
                "SQL log of {}/{} moved on: generation {} does not follow the stored one",
                s.space, s.db, s.generation
            )));
        }
        if current.is_some() {
            let old: Option<Vec<u8>> = tx.query_row(
                "SELECT snapshot_hash FROM sql_generation WHERE space = ?1 AND db = ?2",
                params![s.space, s.db],
                |r| r.get(0),
            )?;
            dropped.extend(old.map(hash_from).transpose()?);
            let mut st = tx.prepare(
                "SELECT hash FROM sql_segment WHERE space = ?1 AND db = ?2 AND hash IS NOT NULL",
            )?;
            for h in st.query_map(params![s.space, s.db], |r| r.get::<_, Vec<u8>>(0))? {
                dropped.push(hash_from(h?)?);
            }
            tx.execute(
                "DELETE FROM sql_segment WHERE space = ?1 AND db = ?2",
                params![s.space, s.db],
            )?;
        }
        let (inline, hash, len) = log_columns(snapshot);
        tx.execute(
                    "INSERT INTO sql_generation (space, db, generation, snapshot_inline, snapshot_hash, snapshot_len)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (space, db) DO UPDATE SET generation = ?3, snapshot_inline = ?4,
                         snapshot_hash = ?5, snapshot_len = ?6",
                    params![s.space, s.db, generation, inline, hash, len],
                )?;
        // A blob the new generation still uses is not garbage.
        let keep: Vec<Hash> = blob_of(snapshot)
            .into_iter()
            .chain(blob_of(&s.segment))
            .collect();
        dropped.retain(|h| !keep.contains(h));
    } else {
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM sql_segment WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )?;
        if current != Some(generation) || i64::try_from(s.seq).ok() != Some(next) {
            return Err(StoreError::Backend(format!(
                "SQL log of {}/{} moved on: segment {} of generation {} does not follow",
                s.space, s.db, s.seq, s.generation
            )));
        }
    }
    // A piece the log refers to is never garbage (an orphan sweep may have queued it).
    for h in s
        .snapshot
        .iter()
        .filter_map(blob_of)
        .chain(blob_of(&s.segment))
    {
        tx.execute("DELETE FROM blob_gc WHERE hash = ?1", params![h.as_slice()])?;
    }
    let (inline, hash, len) = log_columns(&s.segment);
    tx.execute(
                "INSERT INTO sql_segment (space, db, seq, inline_bytes, hash, len) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.space, s.db, i64::try_from(s.seq).unwrap_or(i64::MAX), inline, hash, len],
            )?;
    tx.execute(
        "UPDATE sql_generation SET db_bytes = ?3 WHERE space = ?1 AND db = ?2",
        params![s.space, s.db, i64::try_from(s.db_bytes).unwrap_or(i64::MAX)],
    )?;
    Ok(dropped)
}

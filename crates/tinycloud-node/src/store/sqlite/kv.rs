//! [`KvStore`]: KV heads (`kv`), with the head cache in front of reads; every write updates
//! the blob reference counts, the space's usage and the event log in its transaction, and
//! invalidates the cache after the commit, before it is acknowledged.

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::blobs::{blob_ref, blob_unref, queue_if_unreferenced};
use super::events::append_event_tx;
use super::spaces::{add_usage, usage_of};
use super::{hash_from, SqliteIndex};
use crate::store::{
    EventDraft, Hash, KeyPage, KvEntry, KvPut, KvStore, Precondition, StoreError, StoreResult,
    StoredEvent, ValueLocation, WriteOutcome,
};

fn encode_metadata(m: &[(String, String)]) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "[]".into())
}

fn decode_metadata(s: &str) -> StoreResult<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("kv metadata: {e}")))
}

/// The columns of a `kv` row, before decoding.
struct RawEntry {
    hash: Vec<u8>,
    size: i64,
    metadata: String,
    updated_at: i64,
    inline: Option<Vec<u8>>,
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        hash: row.get(0)?,
        size: row.get(1)?,
        metadata: row.get(2)?,
        updated_at: row.get(3)?,
        inline: row.get(4)?,
    })
}

fn to_entry(raw: RawEntry) -> StoreResult<KvEntry> {
    let RawEntry {
        hash,
        size,
        metadata,
        updated_at,
        inline,
    } = raw;
    Ok(KvEntry {
        hash: hash_from(hash)?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
        metadata: decode_metadata(&metadata)?,
        updated_at,
        location: match inline {
            Some(b) => ValueLocation::Inline(Bytes::from(b)),
            None => ValueLocation::Blob,
        },
    })
}

/// A key's current head: hash, size, and whether the value lives in the blob store.
struct Head {
    hash: Hash,
    size: u64,
    blob: bool,
}

fn current(tx: &Connection, space: &str, key: &str) -> StoreResult<Option<Head>> {
    let row: Option<(Vec<u8>, i64, bool)> = tx
        .query_row(
            "SELECT hash, size, inline_value IS NULL FROM kv WHERE space = ?1 AND key = ?2",
            params![space, key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(h, s, blob)| {
        Ok(Head {
            hash: hash_from(h)?,
            size: u64::try_from(s).unwrap_or(0),
            blob,
        })
    })
    .transpose()
}

/// Writes one KV head (its checks passed): blob references, the row, usage and the event.
/// Returns the logged event and whether an old blob became garbage.
fn apply_kv_put(
    tx: &Transaction<'_>,
    put: KvPut,
    existing: Option<Head>,
) -> StoreResult<(Option<StoredEvent>, bool)> {
    let e = &put.entry;
    let old = existing.as_ref().map_or(0, |h| h.size);
    if e.location == ValueLocation::Blob {
        blob_ref(tx, &e.hash)?;
    }
    let mut garbage = false;
    if let Some(old) = existing.as_ref().filter(|h| h.blob) {
        garbage = blob_unref(tx, &old.hash)?;
    }
    let inline = match &e.location {
        ValueLocation::Inline(b) => Some(b.to_vec()),
        ValueLocation::Blob => None,
    };
    tx.execute(
        "INSERT INTO kv (space, key, hash, size, metadata, updated_at, inline_value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (space, key) DO UPDATE SET hash = ?3, size = ?4, metadata = ?5,
                     updated_at = ?6, inline_value = ?7",
        params![
            put.space,
            put.key,
            e.hash.as_slice(),
            i64::try_from(e.size).unwrap_or(i64::MAX),
            encode_metadata(&e.metadata),
            e.updated_at,
            inline
        ],
    )?;
    let delta = i64::try_from(e.size).unwrap_or(i64::MAX) - i64::try_from(old).unwrap_or(0);
    add_usage(tx, &put.space, delta)?;
    let event = put.event.map(|d| append_event_tx(tx, d)).transpose()?;
    Ok((event, garbage))
}

/// A KV write's outcome, its logged event, and whether it queued a garbage blob.
type KvWrite = (WriteOutcome, Option<StoredEvent>, bool);

/// Uncached KV access; the trait methods put the head cache in front.
impl SqliteIndex {
    async fn kv_get_uncached(&self, space: &str, key: &str) -> StoreResult<Option<KvEntry>> {
        let (space, key) = (space.to_owned(), key.to_owned());
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT hash, size, metadata, updated_at, inline_value FROM kv WHERE space = ?1 AND key = ?2",
                    params![space, key],
                    row_to_entry,
                )
                .optional()?;
            row.map(to_entry).transpose()
        })
        .await
    }

    async fn kv_put_uncached(&self, put: KvPut) -> StoreResult<KvWrite> {
        self.write(move |tx| {
            let existing = current(tx, &put.space, &put.key)?;
            let e = &put.entry;
            let is_blob = e.location == ValueLocation::Blob;
            let refused = match (put.precondition, &existing) {
                (Precondition::Absent, Some(_)) | (Precondition::Matches(_), None) => {
                    Some(WriteOutcome::PreconditionFailed)
                }
                (Precondition::Matches(h), Some(cur)) if h != cur.hash => {
                    Some(WriteOutcome::PreconditionFailed)
                }
                _ => None,
            };
            let old = existing.as_ref().map_or(0, |h| h.size);
            let refused = refused.or(match put.limit {
                Some(limit) => {
                    let used = usage_of(tx, &put.space)?;
                    (used.saturating_sub(old).saturating_add(e.size) > limit)
                        .then_some(WriteOutcome::QuotaExceeded { used, limit })
                }
                None => None,
            });
            if let Some(outcome) = refused {
                // The upload is stored but nothing may point at it: garbage unless shared.
                let garbage = is_blob && queue_if_unreferenced(tx, &e.hash)?;
                return Ok((outcome, None, garbage));
            }
            let (event, garbage) = apply_kv_put(tx, put, existing)?;
            Ok((WriteOutcome::Done(None), event, garbage))
        })
        .await
    }

    /// Several puts in one space in one transaction: all or nothing (no preconditions; the
    /// storage limit is checked against the batch as a whole).
    async fn kv_put_many_uncached(
        &self,
        puts: Vec<KvPut>,
    ) -> StoreResult<(WriteOutcome, Vec<StoredEvent>, bool)> {
        self.write(move |tx| {
            let mut existing = Vec::with_capacity(puts.len());
            for p in &puts {
                existing.push(current(tx, &p.space, &p.key)?);
            }
            let limit = puts.first().and_then(|p| p.limit);
            if let (Some(limit), Some(first)) = (limit, puts.first()) {
                let used = usage_of(tx, &first.space)?;
                let old: u64 = existing.iter().flatten().map(|h| h.size).sum();
                let new: u64 = puts.iter().map(|p| p.entry.size).sum();
                if used.saturating_sub(old).saturating_add(new) > limit {
                    let mut garbage = false;
                    for p in &puts {
                        if p.entry.location == ValueLocation::Blob {
                            garbage |= queue_if_unreferenced(tx, &p.entry.hash)?;
                        }
                    }
                    return Ok((WriteOutcome::QuotaExceeded { used, limit }, vec![], garbage));
                }
            }
            let mut events = Vec::new();
            let mut garbage = false;
            for (p, e) in puts.into_iter().zip(existing) {
                let (event, g) = apply_kv_put(tx, p, e)?;
                events.extend(event);
                garbage |= g;
            }
            Ok((WriteOutcome::Done(None), events, garbage))
        })
        .await
    }

    async fn kv_delete_uncached(
        &self,
        space: &str,
        key: &str,
        pre: Precondition,
        event: Option<EventDraft>,
    ) -> StoreResult<KvWrite> {
        let (space, key) = (space.to_owned(), key.to_owned());
        self.write(move |tx| {
            let Some(Head { hash, size, blob }) = current(tx, &space, &key)? else {
                return Ok((
                    match pre {
                        Precondition::Matches(_) => WriteOutcome::PreconditionFailed,
                        _ => WriteOutcome::NotFound,
                    },
                    None,
                    false,
                ));
            };
            if let Precondition::Matches(h) = pre {
                if h != hash {
                    return Ok((WriteOutcome::PreconditionFailed, None, false));
                }
            }
            tx.execute(
                "DELETE FROM kv WHERE space = ?1 AND key = ?2",
                params![space, key],
            )?;
            add_usage(tx, &space, -i64::try_from(size).unwrap_or(0))?;
            let garbage = blob && blob_unref(tx, &hash)?;
            let event = event.map(|d| append_event_tx(tx, d)).transpose()?;
            Ok((WriteOutcome::Done(Some(hash)), event, garbage))
        })
        .await
    }
}

#[async_trait]
impl KvStore for SqliteIndex {
    async fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<KvEntry>> {
        if let Some(hit) = self.heads.get(space, key) {
            return Ok(Some(hit));
        }
        let seq = self.heads.seq();
        let found = self.kv_get_uncached(space, key).await?;
        if let Some(e) = &found {
            self.heads.fill(space, key, e, seq);
        }
        Ok(found)
    }

    async fn kv_put(&self, put: KvPut) -> StoreResult<WriteOutcome> {
        let (space, key) = (put.space.clone(), put.key.clone());
        let out = self.kv_put_uncached(put).await;
        self.heads.invalidate(&space, &key);
        let (outcome, event, garbage) = out?;
        self.publish(event);
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_put_many(&self, puts: Vec<KvPut>) -> StoreResult<WriteOutcome> {
        let keys: Vec<(String, String)> = puts
            .iter()
            .map(|p| (p.space.clone(), p.key.clone()))
            .collect();
        let out = self.kv_put_many_uncached(puts).await;
        for (space, key) in &keys {
            self.heads.invalidate(space, key);
        }
        let (outcome, events, garbage) = out?;
        for e in events {
            self.publish(Some(e));
        }
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_delete(
        &self,
        space: &str,
        key: &str,
        pre: Precondition,
        event: Option<EventDraft>,
    ) -> StoreResult<WriteOutcome> {
        let out = self.kv_delete_uncached(space, key, pre, event).await;
        self.heads.invalidate(space, key);
        let (outcome, event, garbage) = out?;
        self.publish(event);
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_list(
        &self,
        space: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        let (space, prefix, after) = (
            space.to_owned(),
            prefix.to_owned(),
            after.map(str::to_owned),
        );
        self.read(move |c| {
            // Raw byte-order prefix scan: `key >= prefix AND key < prefix-upper-bound` would
            // need an upper bound for arbitrary UTF-8; `substr` comparison is exact instead.
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => a.clone(),
                _ => prefix.clone(),
            };
            let op = if after.as_deref().is_some_and(|a| a >= prefix.as_str()) {
                ">"
            } else {
                ">="
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT key FROM kv WHERE space = ?1 AND key {op} ?2
                 AND substr(key, 1, length(?3)) = ?3 ORDER BY key LIMIT ?4"
            ))?;
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![space, start, prefix, fetch], |r| {
                r.get::<_, String>(0)
            })?;
            let mut keys = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let truncated = keys.len() > limit;
            keys.truncate(limit);
            Ok(KeyPage { keys, truncated })
        })
        .await
    }
}

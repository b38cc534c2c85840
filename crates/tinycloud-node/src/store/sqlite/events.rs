//! [`EventLog`]: the per-space `hook_event` log (pruned to [`EVENT_LOG_LEN`]) and the
//! in-process fan-out of committed events.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::{SqliteIndex, EVENT_LOG_LEN};
use crate::store::{EventDraft, EventLog, StoreResult, StoredEvent};

/// Appends an event inside the caller's transaction; prunes the log to [`EVENT_LOG_LEN`].
pub(super) fn append_event_tx(tx: &Connection, d: EventDraft) -> StoreResult<StoredEvent> {
    let last: Option<i64> = tx.query_row(
        "SELECT max(seq) FROM hook_event WHERE space = ?1",
        params![d.space],
        |r| r.get(0),
    )?;
    let seq = last.unwrap_or(0) + 1;
    tx.execute(
        "INSERT INTO hook_event (space, seq, service, ability, path, actor, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![d.space, seq, d.service, d.ability, d.path, d.actor, d.timestamp_ms],
    )?;
    let keep = i64::try_from(EVENT_LOG_LEN).unwrap_or(i64::MAX);
    if seq % 256 == 0 && seq > keep {
        tx.execute(
            "DELETE FROM hook_event WHERE space = ?1 AND seq <= ?2",
            params![d.space, seq - keep],
        )?;
    }
    Ok(StoredEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        draft: d,
    })
}

#[async_trait]
impl EventLog for SqliteIndex {
    async fn append_event(&self, draft: EventDraft) -> StoreResult<StoredEvent> {
        let ev = self.write(move |tx| append_event_tx(tx, draft)).await?;
        self.publish(Some(ev.clone()));
        Ok(ev)
    }

    async fn events_after(
        &self,
        space: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, service, ability, path, actor, ts FROM hook_event
                 WHERE space = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    space,
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(StoredEvent {
                        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        draft: EventDraft {
                            space: space.clone(),
                            service: r.get(1)?,
                            ability: r.get(2)?,
                            path: r.get(3)?,
                            actor: r.get(4)?,
                            timestamp_ms: r.get(5)?,
                        },
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn first_event(&self, space: &str) -> StoreResult<Option<u64>> {
        let space = space.to_owned();
        self.read(move |c| {
            let v: Option<i64> = c.query_row(
                "SELECT min(seq) FROM hook_event WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(v.and_then(|x| u64::try_from(x).ok()))
        })
        .await
    }

    async fn last_event(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| {
            let v: Option<i64> = c.query_row(
                "SELECT max(seq) FROM hook_event WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(v.and_then(|x| u64::try_from(x).ok()).unwrap_or(0))
        })
        .await
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<StoredEvent>> {
        self.bus.subscribe()
    }
}

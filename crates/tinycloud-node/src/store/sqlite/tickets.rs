//! [`TicketStore`]: signed KV URL tickets (`signed_kv_ticket`, keyed by the hash of the
//! ticket id), bounded per space and per issuer, swept once expired.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{hash_from, SqliteIndex};
use crate::store::{Hash, SignedTicketRow, StoreError, StoreResult, TicketBounds, TicketStore};

const TICKET_COLUMNS: &str =
    "id_hash, space, path, issuer, content_hash, proofs, created_at, expires_at";

fn read_ticket(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, SignedTicketRaw)> {
    Ok((
        r.get(0)?,
        SignedTicketRaw {
            space: r.get(1)?,
            path: r.get(2)?,
            issuer: r.get(3)?,
            content_hash: r.get(4)?,
            proofs: r.get(5)?,
            created_at: r.get(6)?,
            expires_at: r.get(7)?,
        },
    ))
}

struct SignedTicketRaw {
    space: String,
    path: String,
    issuer: String,
    content_hash: Vec<u8>,
    proofs: String,
    created_at: i64,
    expires_at: i64,
}

#[async_trait]
impl TicketStore for SqliteIndex {
    async fn create_signed_ticket(
        &self,
        t: &SignedTicketRow,
        bounds: TicketBounds,
    ) -> StoreResult<bool> {
        let t = t.clone();
        let proofs =
            serde_json::to_string(&t.proofs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(move |tx| {
            // Reclaim first: a space's expired tickets never count against it.
            tx.execute(
                "DELETE FROM signed_kv_ticket WHERE space = ?1 AND expires_at <= ?2",
                params![t.space, bounds.now_ms],
            )?;
            let live: i64 = tx.query_row(
                "SELECT count(*) FROM signed_kv_ticket WHERE space = ?1",
                params![t.space],
                |r| r.get(0),
            )?;
            let mine: i64 = tx.query_row(
                "SELECT count(*) FROM signed_kv_ticket WHERE space = ?1 AND issuer = ?2",
                params![t.space, t.issuer],
                |r| r.get(0),
            )?;
            let over = |n: i64, max: u64| u64::try_from(n).unwrap_or(u64::MAX) >= max;
            if over(live, bounds.per_space) || over(mine, bounds.per_issuer) {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO signed_kv_ticket ({TICKET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id_hash.as_slice(),
                    t.space,
                    t.path,
                    t.issuer,
                    t.content_hash.as_slice(),
                    proofs,
                    t.created_at,
                    t.expires_at
                ],
            )?;
            Ok(true)
        })
        .await
    }

    async fn signed_ticket(&self, id_hash: &Hash) -> StoreResult<Option<SignedTicketRow>> {
        let id = id_hash.to_vec();
        let raw = self
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM signed_kv_ticket WHERE id_hash = ?1"),
                    params![id],
                    read_ticket,
                )
                .optional()?)
            })
            .await?;
        let Some((id, raw)) = raw else {
            return Ok(None);
        };
        let proofs: Vec<String> =
            serde_json::from_str(&raw.proofs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(SignedTicketRow {
            id_hash: hash_from(id)?,
            space: raw.space,
            path: raw.path,
            issuer: raw.issuer,
            content_hash: hash_from(raw.content_hash)?,
            proofs,
            created_at: raw.created_at,
            expires_at: raw.expires_at,
        }))
    }

    async fn sweep_signed_tickets(&self, now_ms: i64, limit: usize) -> StoreResult<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM signed_kv_ticket WHERE id_hash IN (
                     SELECT id_hash FROM signed_kv_ticket WHERE expires_at <= ?1
                     ORDER BY expires_at LIMIT ?2)",
                params![now_ms, limit],
            )?)
        })
        .await
    }
}

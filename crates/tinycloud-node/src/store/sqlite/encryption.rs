//! [`EncryptionStore`]: encryption networks (`encryption_network`) and their bounded audit
//! trail (`encryption_audit`, counted per network in `encryption_audit_count`).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteIndex;
use crate::store::{AuditBounds, AuditRow, EncryptionStore, NetworkRow, StoreError, StoreResult};

const NETWORK_COLUMNS: &str =
    "id, owner, name, state, public_key, sealed_private, key_version, created_at, updated_at";

fn read_network(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        public_key: r.get(4)?,
        sealed_private: r.get(5)?,
        key_version: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

#[async_trait]
impl EncryptionStore for SqliteIndex {
    async fn create_network(&self, n: &NetworkRow) -> StoreResult<bool> {
        let n = n.clone();
        self.write(move |tx| {
            let inserted = tx.execute(
                &format!("INSERT INTO encryption_network ({NETWORK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING"),
                params![n.id, n.owner, n.name, n.state, n.public_key, n.sealed_private, i64::from(n.key_version), n.created_at, n.updated_at],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn network(&self, id: &str) -> StoreResult<Option<NetworkRow>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {NETWORK_COLUMNS} FROM encryption_network WHERE id = ?1"),
                params![id],
                read_network,
            )
            .optional()?)
        })
        .await
    }

    async fn revoke_network(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE encryption_network SET state = 'revoked', updated_at = ?2 WHERE id = ?1",
                params![id, now_ms],
            )? == 1)
        })
        .await
    }

    async fn audit(&self, a: &AuditRow, bounds: AuditBounds) -> StoreResult<bool> {
        let a = a.clone();
        self.write(move |tx| {
            if a.outcome != "allowed" {
                let recent: i64 = tx.query_row(
                    "SELECT count(*) FROM encryption_audit
                     WHERE network = ?1 AND actor = ?2 AND at > ?3 AND outcome <> 'allowed'",
                    params![a.network, a.actor, bounds.now_ms.saturating_sub(bounds.window_ms)],
                    |r| r.get(0),
                )?;
                if u64::try_from(recent).unwrap_or(u64::MAX) >= bounds.denied_per_actor {
                    return Ok(false);
                }
            }
            let delegations = serde_json::to_string(&a.delegations)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO encryption_audit (network, at, actor, outcome, envelope_hash, delegations, invocation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.network, a.at, a.actor, a.outcome, a.envelope_hash, delegations, a.invocation],
            )?;
            let records: i64 = tx.query_row(
                "INSERT INTO encryption_audit_count (network, records) VALUES (?1, 1)
                 ON CONFLICT (network) DO UPDATE SET records = records + 1 RETURNING records",
                params![a.network],
                |r| r.get(0),
            )?;
            let max = i64::try_from(bounds.max_rows.max(1)).unwrap_or(i64::MAX);
            if records > max {
                let excess = records - max;
                tx.execute(
                    "DELETE FROM encryption_audit WHERE rowid IN (
                         SELECT rowid FROM encryption_audit WHERE network = ?1
                         ORDER BY at, rowid LIMIT ?2)",
                    params![a.network, excess],
                )?;
                tx.execute(
                    "UPDATE encryption_audit_count SET records = ?2 WHERE network = ?1",
                    params![a.network, max],
                )?;
            }
            Ok(true)
        })
        .await
    }

    async fn audit_log(
        &self,
        network: &str,
        before: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<AuditRow>> {
        let network = network.to_owned();
        let (at, seq) = before.unwrap_or((i64::MAX, i64::MAX));
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT network, actor, outcome, envelope_hash, delegations, invocation, at, rowid FROM encryption_audit
                 WHERE network = ?1 AND (at, rowid) < (?2, ?3) ORDER BY at DESC, rowid DESC LIMIT ?4",
            )?;
            let rows = st.query_map(
                params![network, at, seq, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    let d: String = r.get(4)?;
                    Ok(AuditRow {
                        seq: r.get(7)?,
                        network: r.get(0)?,
                        actor: r.get(1)?,
                        outcome: r.get(2)?,
                        envelope_hash: r.get(3)?,
                        delegations: serde_json::from_str(&d).unwrap_or_default(),
                        invocation: r.get(5)?,
                        at: r.get(6)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

//! [`WebhookStore`]: subscriptions (`webhook`) and their delivery history
//! (`webhook_delivery`), both bounded per space / per webhook.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteIndex;
use crate::store::{DeliveryRow, StoreError, StoreResult, WebhookRow, WebhookStore};

const WEBHOOK_COLUMNS: &str = "id, space, service, path_prefix, abilities, callback_url, sealed_secret, subscriber, active, created_at, cursor, attempts, next_attempt_at, proofs, expires_at, disabled_reason";

/// Delivery history rows kept per webhook (the newest).
const MAX_DELIVERY_ROWS: i64 = 1000;
/// Inactive webhooks kept per space (the newest), with their delivery history.
const MAX_INACTIVE_WEBHOOKS: i64 = 100;

fn read_webhook(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookRow> {
    let abilities: Option<String> = r.get(4)?;
    Ok(WebhookRow {
        id: r.get(0)?,
        space: r.get(1)?,
        service: r.get(2)?,
        path_prefix: r.get(3)?,
        abilities: abilities.and_then(|a| serde_json::from_str(&a).ok()),
        callback_url: r.get(5)?,
        sealed_secret: r.get(6)?,
        subscriber: r.get(7)?,
        active: r.get::<_, i64>(8)? == 1,
        created_at: r.get(9)?,
        cursor: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
        attempts: u32::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
        next_attempt_at: r.get(12)?,
        proofs: r
            .get::<_, Option<String>>(13)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        expires_at: r.get(14)?,
        disabled_reason: r.get(15)?,
    })
}

fn read_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        webhook: r.get(1)?,
        seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        status: r.get(3)?,
        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        last_status: r
            .get::<_, Option<i64>>(5)?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(6)?,
        at: r.get(7)?,
    })
}

#[async_trait]
impl WebhookStore for SqliteIndex {
    async fn create_webhook(&self, w: &WebhookRow, max_active: usize) -> StoreResult<bool> {
        let w = w.clone();
        self.write(move |tx| {
            let active: i64 = tx.query_row(
                "SELECT count(*) FROM webhook WHERE space = ?1 AND active = 1",
                params![w.space],
                |r| r.get(0),
            )?;
            if usize::try_from(active).unwrap_or(usize::MAX) >= max_active {
                return Ok(false);
            }
            // Reclaim: a space keeps the newest inactive (unregistered or disabled) webhooks
            // and their histories only up to a bound.
            tx.execute(
                "DELETE FROM webhook_delivery WHERE webhook IN (
                     SELECT id FROM webhook WHERE space = ?1 AND active = 0
                     ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2)",
                params![w.space, MAX_INACTIVE_WEBHOOKS],
            )?;
            tx.execute(
                "DELETE FROM webhook WHERE id IN (
                     SELECT id FROM webhook WHERE space = ?1 AND active = 0
                     ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2)",
                params![w.space, MAX_INACTIVE_WEBHOOKS],
            )?;
            let abilities = w.abilities.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default());
            let proofs = match &w.proofs {
                Some(p) => Some(serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?),
                None => None,
            };
            tx.execute(
                &format!("INSERT INTO webhook ({WEBHOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                params![
                    w.id, w.space, w.service, w.path_prefix, abilities, w.callback_url, w.sealed_secret,
                    w.subscriber, i64::from(w.active), w.created_at,
                    i64::try_from(w.cursor).unwrap_or(i64::MAX), i64::from(w.attempts), w.next_attempt_at,
                    proofs, w.expires_at, w.disabled_reason
                ],
            )?;
            Ok(true)
        })
        .await
    }

    async fn webhooks(&self, space: &str) -> StoreResult<Vec<WebhookRow>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE space = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map(params![space], read_webhook)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRow>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE id = ?1"),
                params![id],
                read_webhook,
            )
            .optional()?)
        })
        .await
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<WebhookRow>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE active = 1"
            ))?;
            let rows = st.query_map([], read_webhook)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn deactivate_webhook(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            Ok(tx.execute("UPDATE webhook SET active = 0 WHERE id = ?1", params![id])? == 1)
        })
        .await
    }

    async fn disable_webhook(&self, id: &str, reason: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        let reason = reason.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE webhook SET active = 0, disabled_reason = ?2 WHERE id = ?1 AND active = 1",
                params![id, reason],
            )? == 1)
        })
        .await
    }

    async fn advance_webhook(&self, id: &str, cursor: u64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook SET cursor = max(cursor, ?2), attempts = 0, next_attempt_at = 0 WHERE id = ?1",
                params![id, i64::try_from(cursor).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_webhook(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: i64,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook SET attempts = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, i64::from(attempts), next_attempt_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_delivery(&self, d: &DeliveryRow) -> StoreResult<()> {
        let d = d.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO webhook_delivery (id, webhook, seq, status, attempts, last_status, last_error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET status = ?4, attempts = ?5, last_status = ?6, last_error = ?7, at = ?8",
                params![
                    d.id, d.webhook, i64::try_from(d.seq).unwrap_or(i64::MAX), d.status, i64::from(d.attempts),
                    d.last_status.map(i64::from), d.last_error, d.at
                ],
            )?;
            // Reclaim: keep the newest deliveries of a webhook (trimmed in batches).
            let kept: i64 = tx.query_row(
                "SELECT count(*) FROM webhook_delivery WHERE webhook = ?1",
                params![d.webhook],
                |r| r.get(0),
            )?;
            if kept > MAX_DELIVERY_ROWS + MAX_DELIVERY_ROWS / 10 {
                tx.execute(
                    "DELETE FROM webhook_delivery WHERE id IN (
                         SELECT id FROM webhook_delivery WHERE webhook = ?1
                         ORDER BY at, seq LIMIT ?2)",
                    params![d.webhook, kept - MAX_DELIVERY_ROWS],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, webhook: &str, limit: usize) -> StoreResult<Vec<DeliveryRow>> {
        let webhook = webhook.to_owned();
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, webhook, seq, status, attempts, last_status, last_error, at FROM webhook_delivery
                 WHERE webhook = ?1 ORDER BY at DESC, seq DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![webhook, i64::try_from(limit).unwrap_or(i64::MAX)], read_delivery)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

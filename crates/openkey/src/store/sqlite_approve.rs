//! [`ApprovalStore`] on the embedded SQLite database (migration `0003_approve.sql`). Every
//! state change is one conditional `UPDATE … WHERE status = …` so a request is decided once and
//! its result handed out once, whatever races.

use rusqlite::{params, OptionalExtension, Row};

use super::sqlite::{conflict, SqliteStore};
use super::{
    ApprovalApp, ApprovalDecision, ApprovalRequest, ApprovalResult, ApprovalStatus, ApprovalStore,
    DevicePoll, StoreResult,
};

const REQUEST_COLUMNS: &str = "id, flow, message, return_url, state, client_id, device_code_hash, \
     user_code_hash, status, user_id, final_message, digest, signature, address, last_poll_at, \
     created_at, expires_at";

fn app_from(row: &Row<'_>) -> rusqlite::Result<ApprovalApp> {
    Ok(ApprovalApp {
        id: row.get(0)?,
        name: row.get(1)?,
        return_url: row.get(2)?,
        created_at: row.get(3)?,
    })
}

fn request_from(row: &Row<'_>) -> rusqlite::Result<ApprovalRequest> {
    let status: String = row.get(8)?;
    Ok(ApprovalRequest {
        id: row.get(0)?,
        flow: row.get(1)?,
        message: row.get(2)?,
        return_url: row.get(3)?,
        state: row.get(4)?,
        client_id: row.get(5)?,
        device_code_hash: row.get(6)?,
        user_code_hash: row.get(7)?,
        // The CHECK constraint admits only the four names.
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Consumed),
        user_id: row.get(9)?,
        final_message: row.get(10)?,
        digest: row.get(11)?,
        signature: row.get(12)?,
        address: row.get(13)?,
        last_poll_at: row.get(14)?,
        created_at: row.get(15)?,
        expires_at: row.get(16)?,
    })
}

fn result_from(row: &Row<'_>) -> rusqlite::Result<Option<ApprovalResult>> {
    let message: Option<String> = row.get(0)?;
    let digest: Option<Vec<u8>> = row.get(1)?;
    let signature: Option<String> = row.get(2)?;
    let address: Option<String> = row.get(3)?;
    Ok(match (message, digest, signature, address) {
        (Some(message), Some(digest), Some(signature), Some(address)) => Some(ApprovalResult {
            message,
            digest,
            signature,
            address,
        }),
        _ => None,
    })
}

impl ApprovalStore for SqliteStore {
    fn add_approval_app(&self, app: &ApprovalApp) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO approval_apps (id, name, return_url, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![app.id, app.name, app.return_url, app.created_at],
            )
            .map_err(|e| conflict(e, "an app with this return URL is registered"))?;
        Ok(())
    }

    fn approval_apps(&self) -> StoreResult<Vec<ApprovalApp>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, return_url, created_at FROM approval_apps ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], app_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn approval_app_by_return_url(&self, url: &str) -> StoreResult<Option<ApprovalApp>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, name, return_url, created_at FROM approval_apps WHERE return_url = ?1",
                [url],
                app_from,
            )
            .optional()?)
    }

    fn remove_approval_app(&self, id: &str) -> StoreResult<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM approval_apps WHERE id = ?1", [id])?
            > 0)
    }

    fn create_approval_request(&self, r: &ApprovalRequest) -> StoreResult<()> {
        let conn = self.conn();
        // Dead requests go when new ones come.
        conn.execute(
            "DELETE FROM approval_requests WHERE expires_at < ?1",
            [r.created_at - 24 * 3600 * 1000],
        )?;
        conn.execute(
            &format!(
                "INSERT INTO approval_requests ({REQUEST_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                r.id,
                r.flow,
                r.message,
                r.return_url,
                r.state,
                r.client_id,
                r.device_code_hash,
                r.user_code_hash,
                r.status.as_str(),
                r.user_id,
                r.final_message,
                r.digest,
                r.signature,
                r.address,
                r.last_poll_at,
                r.created_at,
                r.expires_at
            ],
        )
        .map_err(|e| conflict(e, "request id or code collision"))?;
        Ok(())
    }

    fn approval_request(&self, id: &str) -> StoreResult<Option<ApprovalRequest>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = ?1"),
                [id],
                request_from,
            )
            .optional()?)
    }

    fn approval_by_user_code(&self, hash: &[u8], now: i64) -> StoreResult<Option<ApprovalRequest>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM approval_requests \
                     WHERE user_code_hash = ?1 AND status = 'pending' AND expires_at > ?2"
                ),
                params![hash, now],
                request_from,
            )
            .optional()?)
    }

    fn approve_request(&self, id: &str, d: &ApprovalDecision, now: i64) -> StoreResult<bool> {
        Ok(self.conn().execute(
            "UPDATE approval_requests SET status = 'approved', user_id = ?2, final_message = ?3, \
             digest = ?4, signature = ?5, address = ?6, code_hash = ?7, code_expires_at = ?8 \
             WHERE id = ?1 AND status = 'pending' AND expires_at > ?9",
            params![
                id,
                d.user_id,
                d.final_message,
                d.digest,
                d.signature,
                d.address,
                d.code_hash,
                d.code_expires_at,
                now
            ],
        )? == 1)
    }

    fn deny_request(&self, id: &str, user_id: &str, now: i64) -> StoreResult<bool> {
        Ok(self.conn().execute(
            "UPDATE approval_requests SET status = 'denied', user_id = ?2 \
             WHERE id = ?1 AND status = 'pending' AND expires_at > ?3",
            params![id, user_id, now],
        )? == 1)
    }

    fn take_by_code(
        &self,
        id: &str,
        code_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<ApprovalResult>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found = tx
            .query_row(
                "SELECT final_message, digest, signature, address FROM approval_requests \
                 WHERE id = ?1 AND flow = 'redirect' AND status = 'approved' AND code_hash = ?2 \
                 AND code_expires_at > ?3",
                params![id, code_hash, now],
                result_from,
            )
            .optional()?
            .flatten();
        // Any presented code spends the request's code: a wrong guess cannot be retried.
        tx.execute(
            "UPDATE approval_requests SET status = 'consumed', signature = NULL, code_hash = NULL \
             WHERE id = ?1 AND status = 'approved' AND flow = 'redirect' AND (code_hash = ?2 OR code_expires_at <= ?3)",
            params![id, code_hash, now],
        )?;
        tx.commit()?;
        Ok(found)
    }

    fn poll_device(
        &self,
        device_code_hash: &[u8],
        now: i64,
        interval_ms: i64,
    ) -> StoreResult<DevicePoll> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row = tx
            .query_row(
                "SELECT id, status, expires_at, last_poll_at FROM approval_requests \
                 WHERE device_code_hash = ?1 AND flow = 'device'",
                [device_code_hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, status, expires_at, last_poll)) = row else {
            return Ok(DevicePoll::Unknown);
        };
        tx.execute(
            "UPDATE approval_requests SET last_poll_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        let status = ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Consumed);
        let outcome = if status == ApprovalStatus::Consumed {
            DevicePoll::Unknown
        } else if status == ApprovalStatus::Denied {
            DevicePoll::Denied
        } else if expires_at <= now {
            DevicePoll::Expired
        } else if last_poll.is_some_and(|t| now - t < interval_ms) {
            DevicePoll::SlowDown
        } else if status == ApprovalStatus::Pending {
            DevicePoll::Pending
        } else {
            let result = tx
                .query_row(
                    "SELECT final_message, digest, signature, address FROM approval_requests WHERE id = ?1",
                    [&id],
                    result_from,
                )?;
            let changed = tx.execute(
                "UPDATE approval_requests SET status = 'consumed', signature = NULL \
                 WHERE id = ?1 AND status = 'approved'",
                [&id],
            )?;
            match result {
                Some(r) if changed == 1 => DevicePoll::Approved(r),
                _ => DevicePoll::Denied,
            }
        };
        tx.commit()?;
        Ok(outcome)
    }
}

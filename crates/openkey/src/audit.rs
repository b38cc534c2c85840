//! The per-user audit log: every signing decision (allowed or refused), export and key change.
//! Details are JSON without secrets (addresses, digests, domains, reasons).

use crate::clock::now_ms;
use crate::store::{AuditRow, Store, StoreResult};

/// `allowed` — a signature was produced.
pub const ALLOWED: &str = "allowed";
/// `refused` — a request was turned down.
pub const REFUSED: &str = "refused";
/// `done` — a change was made.
pub const DONE: &str = "done";

/// Appends one record.
pub fn record(
    store: &dyn Store,
    user_id: &str,
    event: &str,
    outcome: &str,
    key_id: Option<&str>,
    detail: serde_json::Value,
) -> StoreResult<()> {
    store.append_audit(&AuditRow {
        at: now_ms(),
        user_id: user_id.to_string(),
        event: event.to_string(),
        outcome: outcome.to_string(),
        key_id: key_id.map(str::to_string),
        detail: detail.to_string(),
    })
}

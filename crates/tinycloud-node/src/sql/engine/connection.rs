//! The limits every statement runs under, the settings every connection gets, and what each
//! SQLite error means to a client.

use std::time::Duration;

use rusqlite::limits::Limit;
use rusqlite::Connection;

use crate::sql::error::SqlError;

/// Limits applied to every statement.
#[derive(Clone, Debug)]
pub struct SqlLimits {
    /// Wall-clock limit per request.
    pub time: Duration,
    /// Most rows a query returns.
    pub max_rows: usize,
    /// Largest response (approximate JSON bytes).
    pub max_response_bytes: usize,
    /// Largest string or blob SQLite may build.
    pub max_value_bytes: i32,
    /// Most databases open at once (idle ones beyond it are closed, least recently used first).
    pub max_open: usize,
    /// Most databases one space may hold.
    pub max_per_space: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            time: Duration::from_secs(5),
            max_rows: 10_000,
            max_response_bytes: 10 * 1024 * 1024,
            max_value_bytes: 16 * 1024 * 1024,
            max_open: 256,
            max_per_space: 100,
        }
    }
}

pub(super) fn configure(conn: &Connection, limits: &SqlLimits) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, limits.max_value_bytes)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1_000_000)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, 200)?;
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, 100)?;
    conn.set_limit(Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10)?;
    Ok(())
}

pub(super) fn sqlite_err(e: rusqlite::Error) -> SqlError {
    let full = e.to_string();
    if full.contains("not authorized") {
        return SqlError::Denied(format!("not allowed: {full}"));
    }
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| e.to_string());
            if text.contains("not authorized") {
                return SqlError::Denied(format!("not allowed: {text}"));
            }
            match f.code {
                rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                    SqlError::Denied(format!("not allowed: {text}"))
                }
                rusqlite::ErrorCode::OperationInterrupted => SqlError::Timeout(0),
                rusqlite::ErrorCode::TooBig => {
                    SqlError::TooLarge(format!("value too large: {text}"))
                }
                rusqlite::ErrorCode::ReadOnly => SqlError::Denied(format!("read-only: {text}")),
                rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::NotADatabase
                | rusqlite::ErrorCode::DatabaseCorrupt => SqlError::Internal(text),
                _ => SqlError::Invalid(text),
            }
        }
        rusqlite::Error::MultipleStatement => {
            SqlError::Invalid("one statement per request (use a batch for several)".into())
        }
        _ => SqlError::Invalid(e.to_string()),
    }
}

/// A request that found its database's working copy being discarded (shipped hosting: a write
/// could not be recorded); the next request rebuilds it from the store.
pub(super) fn rebuilding() -> SqlError {
    SqlError::Unavailable("the database is being rebuilt from storage; retry".into())
}

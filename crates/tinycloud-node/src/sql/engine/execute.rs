//! Running statements: each under the gate of the invoker's grants (recording the tables it
//! writes), a wall-clock limit and the row and response caps; batches in one transaction;
//! writes capped at the space's remaining quota.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use super::connection::sqlite_err;
use super::values::{encoded_len, to_cell, to_sql, Outcome, Stmt};
use super::Databases;
use crate::sql::error::SqlError;
use crate::sql::gate::{Gate, Grant, Level, Restrictions};

/// Tables written by a statement (reported by SQLite's authorizer).
pub type Touched = Arc<Mutex<BTreeSet<String>>>;

pub(super) fn touched_tables(t: &Touched) -> Vec<String> {
    t.lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

/// How to run a request.
#[derive(Debug, Clone)]
pub struct Exec {
    /// What the invoked capabilities grant (an action is allowed when one grant allows it).
    pub grants: Vec<Grant>,
    /// Row cap for queries (≤ the node limit).
    pub max_rows: Option<usize>,
    /// How many bytes a write may grow the database file by (the space's remaining quota);
    /// `None`: unbounded. Enforced by SQLite (`max_page_count`), so one statement cannot
    /// write past it.
    pub max_growth: Option<u64>,
}

impl Exec {
    /// One grant: `level` under `restrictions`, read-only when `read_only` (caveat `readOnly`).
    pub fn single(level: Level, restrictions: Restrictions, read_only: bool) -> Self {
        Exec {
            grants: vec![Grant {
                level: if read_only { Level::Read } else { level },
                restrictions,
            }],
            max_rows: None,
            max_growth: None,
        }
    }

    /// Whether no grant may change the database.
    pub fn read_only(&self) -> bool {
        self.grants.iter().all(|g| g.level == Level::Read)
    }
}

/// Caps the database file at its current size plus `max_growth` bytes (`None` lifts the cap).
pub(super) fn cap_growth(conn: &Connection, max_growth: Option<u64>) -> Result<(), SqlError> {
    let pages = match max_growth {
        None => i64::from(u32::MAX - 1),
        Some(bytes) => {
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(sqlite_err)?;
            let count: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(sqlite_err)?;
            let extra =
                i64::try_from(bytes / u64::try_from(page.max(1)).unwrap_or(1)).unwrap_or(i64::MAX);
            count.saturating_add(extra).max(1)
        }
    };
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .map_err(sqlite_err)
}

/// A write that hit the growth cap (SQLite reports a full database) is over the quota.
pub(super) fn over_quota(e: SqlError, exec: &Exec) -> SqlError {
    match e {
        SqlError::Internal(m) if exec.max_growth.is_some() && m.contains("is full") => {
            SqlError::Limit(format!("Storage quota exceeded by this write ({m})"))
        }
        other => other,
    }
}

impl Databases {
    pub(super) fn batch_in(
        &self,
        conn: &mut Connection,
        stmts: &[Stmt],
        exec: &Exec,
        touched: &Touched,
    ) -> Result<Vec<Outcome>, SqlError> {
        cap_growth(conn, exec.max_growth)?;
        let tx = conn.transaction().map_err(sqlite_err)?;
        let mut out = Vec::with_capacity(stmts.len());
        for (i, s) in stmts.iter().enumerate() {
            match self.statement(&tx, s, exec, exec.read_only(), touched) {
                Ok(o) => out.push(o),
                Err(e) => {
                    // Dropping `tx` rolls everything back: no partial batch is left behind.
                    return Err(match e {
                        SqlError::Invalid(m) => SqlError::Invalid(format!("statement {i}: {m}")),
                        SqlError::Denied(m) => SqlError::Denied(format!("statement {i}: {m}")),
                        other => other,
                    });
                }
            }
        }
        tx.commit().map_err(sqlite_err)?;
        Ok(out)
    }

    pub(super) fn statement(
        &self,
        conn: &Connection,
        stmt: &Stmt,
        exec: &Exec,
        read_only: bool,
        touched: &Touched,
    ) -> Result<Outcome, SqlError> {
        let grants = exec
            .grants
            .iter()
            .map(|g| Grant {
                level: if read_only { Level::Read } else { g.level },
                restrictions: g.restrictions.clone(),
            })
            .collect();
        let mut gate = Gate::union(grants);
        let record = touched.clone();
        conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            let d = gate.decide(&ctx);
            if d == rusqlite::hooks::Authorization::Allow {
                use rusqlite::hooks::AuthAction as A;
                if let A::Insert { table_name }
                | A::Delete { table_name }
                | A::Update { table_name, .. } = &ctx.action
                {
                    if !table_name.to_ascii_lowercase().starts_with("sqlite_") {
                        if let Ok(mut t) = record.lock() {
                            t.insert((*table_name).to_owned());
                        }
                    }
                }
            }
            d
        }));
        let deadline = Instant::now() + self.limits.time;
        conn.progress_handler(1000, Some(move || Instant::now() > deadline));
        let result = self.prepare_and_run(conn, stmt, exec, read_only);
        conn.authorizer(
            None::<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization>,
        );
        conn.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|e| match e {
            SqlError::Timeout(_) => SqlError::Timeout(self.limits.time.as_millis() as u64),
            other => other,
        })
    }

    fn prepare_and_run(
        &self,
        conn: &Connection,
        stmt: &Stmt,
        exec: &Exec,
        read_only: bool,
    ) -> Result<Outcome, SqlError> {
        let trimmed = stmt.sql.trim();
        if trimmed.is_empty() {
            return Err(SqlError::Invalid("empty statement".into()));
        }
        // VACUUM writes whole files (VACUUM INTO writes anywhere) and is not covered by the
        // authorizer: refuse it outright, also behind leading comments.
        if crate::sql::gate::is_vacuum(trimmed) {
            return Err(SqlError::Denied("VACUUM is not allowed".into()));
        }
        let mut st = conn.prepare(trimmed).map_err(sqlite_err)?;
        if read_only && !st.readonly() {
            return Err(SqlError::Denied(
                "Read-only violation: this statement can change the database".into(),
            ));
        }
        let params: Vec<SqlValue> = stmt.params.iter().map(to_sql).collect::<Result<_, _>>()?;
        if params.len() != st.parameter_count() {
            return Err(SqlError::Invalid(format!(
                "the statement takes {} parameters, {} given",
                st.parameter_count(),
                params.len()
            )));
        }
        let columns: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
        if columns.is_empty() {
            let changes = st
                .execute(rusqlite::params_from_iter(params.iter()))
                .map_err(sqlite_err)?;
            return Ok(Outcome::Changes {
                changes: changes as u64,
                last_insert_row_id: conn.last_insert_rowid(),
            });
        }
        let max_rows = exec
            .max_rows
            .unwrap_or(self.limits.max_rows)
            .min(self.limits.max_rows);
        let mut rows_out = Vec::new();
        let budget = self.limits.max_response_bytes;
        let too_large = || SqlError::TooLarge(format!("the result is larger than {budget} bytes"));
        // The column names and the envelope.
        let mut bytes = 64 + columns.iter().map(|c| c.len() + 3).sum::<usize>();
        if bytes > budget {
            return Err(too_large());
        }
        let mut rows = st
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            if rows_out.len() >= max_rows {
                return Err(SqlError::TooLarge(format!(
                    "the result has more than {max_rows} rows"
                )));
            }
            let mut vals = Vec::with_capacity(columns.len());
            bytes += 3;
            for i in 0..columns.len() {
                let v = row.get_ref(i).map_err(sqlite_err)?;
                // Charged before it is converted: the budget is checked before memory is spent.
                bytes = bytes.saturating_add(encoded_len(v));
                if bytes > budget {
                    return Err(too_large());
                }
                vals.push(to_cell(v));
            }
            rows_out.push(vals);
        }
        Ok(Outcome::Rows {
            columns,
            rows: rows_out,
        })
    }
}

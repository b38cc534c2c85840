//! Per-space SQLite databases: opening, limits, gated execution, export.
//!
//! One database file per (space, name), created on first write. Each database has one writer
//! connection (WAL, `synchronous=FULL`: a write is acknowledged only once durable) and a few
//! read-only connections, so readers never wait for the writer. Every statement runs with an
//! authorizer for the invoker's level, a wall-clock limit enforced by a progress handler, and
//! SQLite's length limits (a `randomblob(1e9)` fails instead of allocating a gigabyte). Rows are
//! charged against the response cap as they are stepped, by the size of their JSON encoding,
//! before they are converted.
//!
//! Open databases are bounded: past `max_open`, the least recently used idle database is
//! closed (its connections, and so its descriptors, released); its next use reopens it (shipped
//! hosting: restores it from the store, which holds every acknowledged write). A space holds at
//! most `max_per_space` databases; the check runs before a new file is created.
//!
//! With shipped hosting, the engine hands each write's outcome to the hosting explicitly:
//! after every write it passes the writer connection and its shipping state to
//! [`Shipper::prepare`](super::hosting::Shipper::prepare), which reads what was committed from
//! the database's own files. The hosting never calls back into the engine.
//!
//! Files: `registry.rs` (the open databases: files, opening and restoring, the limits on how
//! many, closing idle ones, discarding a working copy), `execute.rs` (one statement or batch
//! under the gate and the limits), `values.rs` (JSON parameters in, result cells out, the
//! reference's response shapes), `connection.rs` (limits, connection settings, SQLite errors).

mod connection;
mod execute;
mod registry;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use super::error::SqlError;
use super::hosting::Hosting;
pub use connection::SqlLimits;
use connection::{rebuilding, sqlite_err};
use execute::{cap_growth, over_quota, touched_tables};
pub use execute::{Exec, Touched};
pub use registry::file_stem;
use registry::{Database, Slot, Writer};
pub use values::{to_sql, Cell, Outcome, Results, Stmt};

/// All open databases.
pub struct Databases {
    root: PathBuf,
    /// One slot per database path: opening (and, shipped, restoring) a database holds only its
    /// own slot, never the whole registry.
    open: Mutex<HashMap<PathBuf, Arc<Slot>>>,
    limits: SqlLimits,
    hosting: Hosting,
    /// Use counter ordering databases by recency.
    clock: AtomicU64,
    /// Held from counting a space's databases until a new one's file exists, so concurrent
    /// creations cannot overshoot the per-space limit.
    creating: Mutex<()>,
}

impl Databases {
    /// Databases under `root`. With [`Hosting::Shipped`], `root` only holds working copies
    /// and is emptied here: each database is rebuilt from the storage layer on first use.
    pub fn new(root: &Path, limits: SqlLimits, hosting: Hosting) -> Result<Self, SqlError> {
        if matches!(hosting, Hosting::Shipped(_)) && root.exists() {
            std::fs::remove_dir_all(root).map_err(|e| SqlError::Internal(e.to_string()))?;
        }
        std::fs::create_dir_all(root).map_err(|e| SqlError::Internal(e.to_string()))?;
        Ok(Databases {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            limits,
            hosting,
            clock: AtomicU64::new(0),
            creating: Mutex::new(()),
        })
    }

    /// Runs a query or a single write; returns the tables it wrote. Reads use a read-only
    /// connection.
    pub fn run(
        &self,
        space: &str,
        name: &str,
        stmt: &Stmt,
        exec: &Exec,
    ) -> Result<(Outcome, Vec<String>), SqlError> {
        let read_only = exec.read_only();
        let db = self.database(space, name, !read_only)?;
        let touched = Touched::default();
        let outcome = if read_only {
            let conn = self.reader(&db)?;
            let r = self.statement(&conn, stmt, exec, true, &touched);
            Self::give_back(&db, conn);
            r?
        } else {
            let mut guard = self.lock_writer(&db)?;
            let writer = guard.as_mut().ok_or_else(rebuilding)?;
            // In an explicit transaction, so a statement that fails or is cut short (a
            // `RETURNING` past the row cap, a timeout) leaves nothing committed.
            let result = (|| {
                cap_growth(&writer.conn, exec.max_growth)?;
                let tx = writer.conn.transaction().map_err(sqlite_err)?;
                let out = self.statement(&tx, stmt, exec, false, &touched)?;
                tx.commit().map_err(sqlite_err)?;
                Ok(out)
            })()
            .map_err(|e| over_quota(e, exec));
            self.after_write(&db, guard)?;
            result?
        };
        let wrote = matches!(outcome, Outcome::Changes { changes, .. } if changes > 0);
        Ok((
            outcome,
            if wrote {
                touched_tables(&touched)
            } else {
                vec![]
            },
        ))
    }

    /// Runs several statements in one transaction: all or nothing.
    pub fn batch(
        &self,
        space: &str,
        name: &str,
        stmts: &[Stmt],
        exec: &Exec,
    ) -> Result<(Vec<Outcome>, Vec<String>), SqlError> {
        let touched = Touched::default();
        let db = self.database(space, name, true)?;
        let mut guard = self.lock_writer(&db)?;
        let result = guard
            .as_mut()
            .ok_or_else(rebuilding)
            .and_then(|writer| self.batch_in(&mut writer.conn, stmts, exec, &touched))
            .map_err(|e| over_quota(e, exec));
        self.after_write(&db, guard)?;
        let out = result?;
        let wrote = out
            .iter()
            .any(|o| matches!(o, Outcome::Changes { changes, .. } if *changes > 0));
        Ok((
            out,
            if wrote {
                touched_tables(&touched)
            } else {
                vec![]
            },
        ))
    }

    /// After a write through `guard`'s writer (committed or not): when the storage layer hosts
    /// the database, hands the writer connection and its shipping state to the shipper, which
    /// queues what was committed since its last shipment in commit order under the writer lock;
    /// then waits without the lock, so concurrent writers share one durable store commit. If
    /// it cannot be recorded, the working copy (which holds it) is discarded and the next use
    /// rebuilds it from the store: the write is then as if it never happened.
    fn after_write(
        &self,
        db: &Arc<Database>,
        mut guard: std::sync::MutexGuard<'_, Option<Writer>>,
    ) -> Result<(), SqlError> {
        let Hosting::Shipped(shipper) = &self.hosting else {
            return Ok(());
        };
        let Some(writer) = guard.as_mut() else {
            return Ok(());
        };
        let Some(state) = writer.ship.as_mut() else {
            return Ok(());
        };
        let queued = shipper.prepare(
            &db.space,
            &db.name,
            &db.path,
            &writer.conn,
            state,
            &db.shipping,
        );
        drop(guard);
        let recorded = match queued {
            Ok(Some(ticket)) => shipper.wait(&db.shipping, ticket),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        recorded.map_err(|e| {
            tracing::error!(error = %e, space = %db.space, db = %db.name, "SQL write not recorded; discarding the working copy");
            self.discard(db);
            SqlError::Unavailable(
                "the write could not be confirmed by storage and may not have been applied; retry"
                    .into(),
            )
        })
    }

    /// The writer of a database. A writer poisoned by a panic is never trusted again: the
    /// working copy is discarded (shipped hosting rebuilds it from the store).
    fn lock_writer<'a>(
        &self,
        db: &'a Arc<Database>,
    ) -> Result<std::sync::MutexGuard<'a, Option<Writer>>, SqlError> {
        match db.writer.lock() {
            Ok(g) => Ok(g),
            Err(poisoned) => {
                drop(poisoned);
                tracing::error!(space = %db.space, db = %db.name, "SQL writer poisoned by a panic");
                if matches!(self.hosting, Hosting::Shipped(_)) {
                    self.discard(db);
                    Err(rebuilding())
                } else {
                    Err(SqlError::Internal("the database writer failed".into()))
                }
            }
        }
    }

    /// A consistent snapshot of the database as SQLite file bytes.
    pub fn export(&self, space: &str, name: &str) -> Result<Vec<u8>, SqlError> {
        let db = self.database(space, name, false)?;
        let src = self.reader(&db)?;
        // One scratch file per export: concurrent exports of a database never share one.
        static EXPORTS: AtomicU64 = AtomicU64::new(0);
        let n = EXPORTS.fetch_add(1, Ordering::Relaxed);
        let tmp = db
            .path
            .with_extension(format!("export-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let mut dst = Connection::open(&tmp).map_err(sqlite_err)?;
            {
                let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sqlite_err)?;
                backup
                    .run_to_completion(256, Duration::from_millis(0), None)
                    .map_err(sqlite_err)?;
            }
            drop(dst);
            std::fs::read(&tmp).map_err(|e| SqlError::Internal(e.to_string()))
        })();
        let _ = std::fs::remove_file(&tmp);
        Self::give_back(&db, src);
        result
    }
}

#[cfg(test)]
mod tests;

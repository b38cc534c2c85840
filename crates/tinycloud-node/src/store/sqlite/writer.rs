//! The connections: opening them (WAL, `synchronous=FULL`), the one writer thread that
//! group-commits queued jobs, each in its own savepoint, and replies only after the commit is
//! durable (and after the replay log is synced), and the pool of read-only connections.

use std::path::Path;
use std::sync::{mpsc, Arc};

use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

use super::{SqliteIndex, READERS};
use crate::store::replay_log::ReplayLog;
use crate::store::{StoreError, StoreResult};

/// Replies to a job's caller once its batch committed (or with the commit's error).
pub(super) type Completion = Box<dyn FnOnce(Option<String>) + Send>;
/// A queued write: runs inside the batch's transaction, returns how to reply.
pub(super) type Job = Box<dyn FnOnce(&Transaction<'_>) -> Completion + Send>;

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// Opens a connection: the writer (creating the file, WAL, full sync) or a reader.
pub(super) fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The writer thread: batches queued jobs into one transaction and commits it once.
pub(super) fn writer_loop(mut conn: Connection, jobs: mpsc::Receiver<Job>, replay: Arc<ReplayLog>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "cannot begin write transaction");
                // Jobs were never run: report the failure without running them.
                drop(batch);
                continue;
            }
        };
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&tx)).collect();
        let committing = std::time::Instant::now();
        // The nonces of the invocations behind these writes reach the disk first: a write that
        // survives a power loss must never be replayable.
        let err = match replay.sync() {
            Err(e) => {
                tracing::error!(error = %e, "replay log sync failed; write batch rolled back");
                drop(tx);
                Some(e.to_string())
            }
            Ok(()) => tx.commit().err().map(|e| {
                tracing::error!(error = %e, "write batch commit failed");
                e.to_string()
            }),
        };
        crate::telemetry::store_commit(committing.elapsed());
        for c in completions {
            c(err.clone());
        }
    }
}

impl SqliteIndex {
    /// Runs `f` in the next group-committed transaction; resolves after the commit is durable.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |tx: &Transaction<'_>| {
            let result = (|| {
                tx.execute_batch("SAVEPOINT job")?;
                let r = f(tx);
                if r.is_ok() {
                    tx.execute_batch("RELEASE job")?;
                } else {
                    tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                }
                r
            })();
            Box::new(move |commit_error: Option<String>| {
                let out = match commit_error {
                    Some(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                    None => result,
                };
                let _ = reply.send(out);
            })
        });
        self.jobs
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("writer thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("write was dropped".into()))?
    }

    /// Runs `f` on a read-only connection.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => open(&path, true)?,
            };
            let r = f(&conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < READERS {
                    p.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

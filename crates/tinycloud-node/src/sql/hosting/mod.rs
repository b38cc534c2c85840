//! Where SQL databases live durably.
//!
//! - [`Hosting::Local`] (the embedded default): the database files under `<datadir>/sql/` are
//!   the durable copy (SQLite WAL with `synchronous=FULL`).
//! - [`Hosting::Shipped`]: the storage layer is. Each database is a base snapshot plus the WAL
//!   bytes of every transaction committed since, recorded through [`SqlLogStore`] (pieces up to
//!   the inline threshold in the index, larger ones in the [`BlobStore`]) before the write is
//!   acknowledged. The files under `<datadir>/sql-cache/` are only a working copy: wiped at
//!   start and rebuilt from the log on first use, so a node with an empty disk (a fresh
//!   replica over the same PostgreSQL + S3) serves the same databases.
//!
//! Why by hand: this is WAL shipping in the manner of Litestream, but in-process and onto our
//! own storage traits; no crate does that. The node owns the only writer connection of each
//! database and disables SQLite's automatic checkpoints (`wal_autocheckpoint = 0`), so the WAL
//! only grows between the checkpoints this module runs. After each write the engine hands the
//! writer connection and its [`ShipState`] to [`Shipper::prepare`], which reads from the WAL
//! index how far the WAL is committed and ships the frames beyond what it shipped before.
//! When SQLite starts a new WAL (new salts, which only happens after everything was
//! checkpointed into the database file), the database file is the new generation's snapshot.
//! Restoring writes the snapshot and the concatenated segments (byte-identical to the WAL
//! file, header first) and lets SQLite recover them.
//!
//! Files: `wal.rs` (the WAL and WAL-index formats, checkpoints), `pieces.rs` (log pieces in
//! the index or the blob store), `ship.rs` (turning commits into shipments and waiting for
//! them), `queue.rs` (a database's shipments in commit order, group commit), `restore.rs`
//! (rebuilding a working copy from the stored log).

mod pieces;
mod queue;
mod restore;
mod ship;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::SqlError;
use crate::store::{BlobStore, SqlLogStore, StoreError};

pub use queue::ShipQueue;

/// How SQL databases are stored.
pub enum Hosting {
    /// Local files are the durable copy.
    Local,
    /// The storage layer holds each database as snapshot + WAL segments.
    Shipped(Shipper),
}

/// Ships SQL WAL segments into the storage layer and restores databases from it.
pub struct Shipper {
    log: Arc<dyn SqlLogStore>,
    blobs: Arc<dyn BlobStore>,
    runtime: tokio::runtime::Handle,
    inline_max: usize,
    checkpoint_bytes: u64,
}

/// Shipping progress of one database, kept beside its writer connection.
#[derive(Debug, Clone, Default)]
pub struct ShipState {
    generation: u64,
    /// Salts of the WAL the current generation ships (`None`: no WAL shipped yet).
    salts: Option<[u8; 8]>,
    /// Frames of that WAL already shipped.
    frames: u64,
    /// Next segment number.
    seq: u64,
}

/// The WAL file beside a database file.
pub fn wal_path(db: &Path) -> PathBuf {
    suffixed(db, "-wal")
}

pub(super) fn suffixed(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database's files (database, WAL, shared memory).
pub fn remove_files(db: &Path) {
    for p in [db.to_path_buf(), wal_path(db), suffixed(db, "-shm")] {
        let _ = std::fs::remove_file(p);
    }
}

pub(super) fn io(e: std::io::Error) -> SqlError {
    SqlError::Internal(format!("SQL working copy: {e}"))
}

pub(super) fn store(e: StoreError) -> SqlError {
    tracing::error!(error = %e, "SQL log store failure");
    SqlError::Unavailable("SQL storage is unavailable; retry later".into())
}

impl Shipper {
    /// A shipper over the given stores. Pieces up to `inline_max` bytes stay in the index; a
    /// checkpoint (and so a new generation with a fresh snapshot) runs once the WAL is larger
    /// than both `checkpoint_bytes` and the database file, which keeps the work per written
    /// byte constant.
    pub fn new(
        log: Arc<dyn SqlLogStore>,
        blobs: Arc<dyn BlobStore>,
        runtime: tokio::runtime::Handle,
        inline_max: usize,
        checkpoint_bytes: u64,
    ) -> Self {
        Shipper {
            log,
            blobs,
            runtime,
            inline_max,
            checkpoint_bytes,
        }
    }

    /// Names of a space's databases the store holds.
    pub fn databases(&self, space: &str) -> Result<Vec<String>, SqlError> {
        self.runtime
            .block_on(self.log.sql_databases(space))
            .map_err(store)
    }

    /// Total size of a space's databases, as recorded with their last shipments.
    pub async fn usage(&self, space: &str) -> Result<u64, SqlError> {
        self.log.sql_usage(space).await.map_err(store)
    }
}

#[cfg(test)]
mod tests;

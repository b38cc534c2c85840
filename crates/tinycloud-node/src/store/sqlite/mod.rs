//! The embedded index: SQLite in WAL mode, implementing every index trait of
//! [`crate::store`] (and the services' stores) on one database file.
//!
//! All writes go through one writer thread that applies queued jobs in a single transaction
//! and commits once per batch (group commit, `synchronous=FULL`): every job's reply is sent
//! only after that commit is durable, and concurrent writers share one fsync instead of
//! fighting over SQLite's lock. Each job runs inside a savepoint, so one failing job never
//! undoes its neighbours. Reads use a small pool of read-only connections and see only
//! committed data.
//!
//! Files, one per concern: `writer.rs` (connections, the writer thread, the reader pool),
//! `schema/` (versioned migrations), `error.rs` (SQLite errors mapped to
//! [`StoreError`]), then one file per trait implemented: `spaces.rs`, `delegations.rs`,
//! `nonces.rs`, `kv.rs`, `blobs.rs` (the garbage queue), `events.rs`, `webhooks.rs`,
//! `encryption.rs`, `tickets.rs`, `sql_log.rs`, `quota.rs`.

mod blobs;
mod delegations;
mod encryption;
mod error;
mod events;
mod kv;
mod nonces;
mod quota;
mod schema;
mod spaces;
mod sql_log;
mod tickets;
mod webhooks;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;

use super::head_cache::HeadCache;
use super::replay_log::ReplayLog;
use super::{Hash, StoreError, StoreResult, StoredEvent};

/// Events kept per space for resuming subscribers and webhook catch-up.
pub const EVENT_LOG_LEN: u64 = 10_000;
/// In-process event fan-out capacity (a slower subscriber catches up from the log).
const EVENT_BUS: usize = 4096;
/// Read-only connections kept in the pool.
const READERS: usize = 4;

/// The SQLite index store.
pub struct SqliteIndex {
    jobs: Mutex<mpsc::Sender<writer::Job>>,
    replay: Arc<ReplayLog>,
    heads: HeadCache,
    bus: tokio::sync::broadcast::Sender<Arc<StoredEvent>>,
    garbage: Arc<tokio::sync::Notify>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
}

impl SqliteIndex {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = writer::open(path, false)?;
        schema::migrate(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(writer::open(path, true)?);
        }
        let now_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let replay = Arc::new(ReplayLog::open(&path.with_file_name("replay.log"), now_ms)?);
        let (tx, rx) = mpsc::channel::<writer::Job>();
        let synced = replay.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::writer_loop(writer, rx, synced))?;
        Ok(SqliteIndex {
            jobs: Mutex::new(tx),
            replay,
            heads: HeadCache::new(32 * 1024 * 1024),
            bus: tokio::sync::broadcast::channel(EVENT_BUS).0,
            garbage: Arc::default(),
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_path_buf(),
        })
    }

    /// Fans a committed event out to live subscribers.
    fn publish(&self, event: Option<StoredEvent>) {
        if let Some(e) = event {
            // No receiver is fine: nobody is watching.
            let _ = self.bus.send(Arc::new(e));
        }
    }
}

/// A stored 32-byte hash column.
fn hash_from(v: Vec<u8>) -> StoreResult<Hash> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

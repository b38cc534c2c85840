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
//! database and disables SQLite's automatic checkpoints (a WAL hook replaces them), so the WAL
//! only grows between the checkpoints this module runs. After each commit the frames SQLite
//! reports are read from the WAL file and shipped. When SQLite starts a new WAL (new salts,
//! which only happens after everything was checkpointed into the database file), the database
//! file is the new generation's snapshot. Restoring writes the snapshot and the concatenated
//! segments (byte-identical to the WAL file, header first) and lets SQLite recover them.

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::Connection;
use tokio::io::AsyncReadExt;

use super::error::SqlError;
use crate::store::{BlobStore, Hash, LogBytes, SqlLogStore, SqlShipment, StoreError};

/// Length of the WAL file header.
const WAL_HEADER: u64 = 32;
/// Length of a WAL frame header (the page follows).
const FRAME_HEADER: u64 = 24;
/// Chunk size for streaming snapshots.
const CHUNK: usize = 1024 * 1024;

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

thread_local! {
    /// Frames in the WAL after the last commit on this thread (set by the WAL hook).
    static COMMITTED: Cell<Option<u64>> = const { Cell::new(None) };
}

fn on_commit(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    COMMITTED.with(|c| c.set(u64::try_from(frames).ok()));
    Ok(())
}

/// Forgets any commit recorded on this thread (call before a write).
pub fn reset_committed() {
    COMMITTED.with(|c| c.set(None));
}

/// The WAL frame count of the commit made on this thread since [`reset_committed`], if any.
pub fn take_committed() -> Option<u64> {
    COMMITTED.with(Cell::take)
}

/// The WAL file beside a database file.
pub fn wal_path(db: &Path) -> PathBuf {
    suffixed(db, "-wal")
}

fn suffixed(db: &Path, suffix: &str) -> PathBuf {
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

/// The parts of a WAL header shipping needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalHeader {
    page_size: u64,
    salts: [u8; 8],
}

impl WalHeader {
    fn parse(b: &[u8]) -> Result<Self, SqlError> {
        let bad = || SqlError::Internal("the WAL file has no valid header".into());
        let word = |i: usize| -> Result<u32, SqlError> {
            Ok(u32::from_be_bytes(
                b.get(i..i + 4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(bad)?,
            ))
        };
        if !matches!(word(0)?, 0x377f_0682 | 0x377f_0683) {
            return Err(bad());
        }
        // Page size 1 encodes 65536.
        let page_size = match word(8)? {
            1 => 65_536,
            n if n.is_power_of_two() && (512..=32_768).contains(&n) => u64::from(n),
            _ => return Err(bad()),
        };
        let mut salts = [0; 8];
        salts.copy_from_slice(b.get(16..24).ok_or_else(bad)?);
        Ok(WalHeader { page_size, salts })
    }

    fn frame_size(&self) -> u64 {
        FRAME_HEADER + self.page_size
    }
}

fn io(e: std::io::Error) -> SqlError {
    SqlError::Internal(format!("SQL working copy: {e}"))
}

fn store(e: StoreError) -> SqlError {
    tracing::error!(error = %e, "SQL log store failure");
    SqlError::Unavailable("SQL storage is unavailable; retry later".into())
}

/// Folds the WAL into the database file; once it is all there, SQLite starts a new WAL at the
/// next commit, and with it a new generation. Normally PASSIVE: it never waits for readers,
/// which only postpone it. Readers that never pause could postpone it forever, so once the WAL
/// is twice its threshold (`insist`), a RESTART waits for them briefly (they move to the
/// database file as soon as it is complete).
fn checkpoint(conn: &Connection, insist: bool) {
    let run = |mode: &str| -> rusqlite::Result<(i64, i64)> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
    };
    match run("PASSIVE") {
        Ok((log, done)) if done < log && insist => {
            let brief = conn.busy_timeout(std::time::Duration::from_millis(50));
            if let Err(e) = brief.and_then(|()| run("RESTART")) {
                tracing::debug!(error = %e, "SQL checkpoint postponed");
            }
            if let Err(e) = conn.busy_timeout(std::time::Duration::from_secs(10)) {
                tracing::warn!(error = %e, "could not restore the SQL busy timeout");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "SQL checkpoint postponed"),
    }
}

/// The blob address of a log piece: keyed by the database and generation, so no two databases
/// or generations (and no KV value) ever share a blob, and a dropped generation's blobs can
/// be deleted safely.
fn piece_key(space: &str, db: &str, generation: u64) -> [u8; 32] {
    let mut material = (space.len() as u64).to_be_bytes().to_vec();
    material.extend_from_slice(space.as_bytes());
    material.extend_from_slice(&generation.to_be_bytes());
    material.extend_from_slice(db.as_bytes());
    blake3::derive_key("tinycloud sql log piece v1", &material)
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

    /// Stores one piece read from `src` (`len` bytes).
    fn put_piece(
        &self,
        space: &str,
        db: &str,
        generation: u64,
        mut src: impl Read,
        len: u64,
    ) -> Result<LogBytes, SqlError> {
        if usize::try_from(len).is_ok_and(|l| l <= self.inline_max) {
            let mut buf = Vec::with_capacity(len as usize);
            src.read_to_end(&mut buf).map_err(io)?;
            return Ok(LogBytes::Inline(buf));
        }
        let key = piece_key(space, db, generation);
        self.runtime.block_on(async {
            let mut hasher = blake3::Hasher::new_keyed(&key);
            let mut writer = self.blobs.begin().await.map_err(store)?;
            let mut buf = vec![0; CHUNK];
            let mut total = 0u64;
            loop {
                let n = src.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                writer.write(&buf[..n]).await.map_err(store)?;
                total += n as u64;
            }
            let hash: Hash = *hasher.finalize().as_bytes();
            writer.commit(&hash).await.map_err(store)?;
            Ok(LogBytes::Blob(hash, total))
        })
    }

    /// Appends a stored piece to `out`.
    fn get_piece(&self, piece: &LogBytes, out: &mut std::fs::File) -> Result<(), SqlError> {
        match piece {
            LogBytes::Inline(b) => out.write_all(b).map_err(io),
            LogBytes::Blob(hash, len) => self.runtime.block_on(async {
                let mut r = self.blobs.open(hash).await.map_err(store)?.ok_or_else(|| {
                    // Possibly a generation dropped between reading the log and now.
                    SqlError::Unavailable("a blob of the SQL log is missing; retry".into())
                })?;
                let mut buf = vec![0; CHUNK];
                let mut total = 0u64;
                loop {
                    let n = r.read(&mut buf).await.map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).map_err(io)?;
                    total += n as u64;
                }
                if total != *len {
                    return Err(SqlError::Internal(
                        "a blob of the SQL log has the wrong length".into(),
                    ));
                }
                Ok(())
            }),
        }
    }

    /// Rebuilds the working copy at `path` from the stored log. Returns the shipping state to
    /// continue from, or `None` when the store has no such database (then `path` is absent).
    pub fn restore(
        &self,
        space: &str,
        db: &str,
        path: &Path,
    ) -> Result<Option<ShipState>, SqlError> {
        remove_files(path);
        let Some(log) = self
            .runtime
            .block_on(self.log.sql_log(space, db))
            .map_err(store)?
        else {
            return Ok(None);
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let write = |target: &Path, pieces: &[&LogBytes]| -> Result<u64, SqlError> {
            let mut f = std::fs::File::create(target).map_err(io)?;
            for p in pieces {
                self.get_piece(p, &mut f)?;
            }
            f.sync_all().map_err(io)?;
            f.metadata().map(|m| m.len()).map_err(io)
        };
        write(path, &[&log.snapshot])?;
        let wal = wal_path(path);
        let wal_len = write(&wal, &log.segments.iter().collect::<Vec<_>>())?;
        // Let SQLite recover the WAL, then fold it into the database file: the next write
        // starts a new WAL, and with it a new generation whose snapshot is that file.
        let expected = if wal_len == 0 {
            0
        } else {
            let mut head = [0u8; WAL_HEADER as usize];
            std::fs::File::open(&wal)
                .and_then(|mut f| f.read_exact(&mut head))
                .map_err(io)?;
            let h = WalHeader::parse(&head)?;
            (wal_len - WAL_HEADER) / h.frame_size()
        };
        let conn = Connection::open(path).map_err(|e| SqlError::Internal(e.to_string()))?;
        // PASSIVE reports the frames recovered (TRUNCATE would report the emptied WAL).
        let (busy, frames, done): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(|counts| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(counts)
            })
            .map_err(|e| SqlError::Internal(e.to_string()))?;
        drop(conn);
        let recovered = u64::try_from(frames).unwrap_or(0);
        if busy != 0 || frames != done || (wal_len > 0 && recovered != expected) {
            remove_files(path);
            return Err(SqlError::Internal(format!(
                "the stored log of SQL database {db:?} does not replay ({recovered} of {expected} frames)"
            )));
        }
        Ok(Some(ShipState {
            generation: log.generation,
            seq: log.segments.len() as u64,
            ..ShipState::default()
        }))
    }

    /// Turns what the last commit appended to the WAL (`frames`: its frame count after the
    /// commit) into a shipment queued on `queue`, and checkpoints when due. Runs under the
    /// writer lock, which keeps shipments in commit order. Returns the ticket to
    /// [`Shipper::wait`] on (outside the lock), or `None` when the commit appended nothing.
    /// On error the working copy holds a transaction the store does not: the caller must
    /// discard it.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &self,
        space: &str,
        db: &str,
        path: &Path,
        conn: &Connection,
        state: &mut ShipState,
        frames: u64,
        queue: &ShipQueue,
    ) -> Result<Option<u64>, SqlError> {
        let mut wal = std::fs::File::open(wal_path(path)).map_err(io)?;
        let mut head = [0u8; WAL_HEADER as usize];
        wal.read_exact(&mut head).map_err(io)?;
        let header = WalHeader::parse(&head)?;
        let mut next = state.clone();
        let snapshot = if state.salts != Some(header.salts) {
            // A new WAL: SQLite only starts one when the database file holds everything
            // before it, so that file is the new generation's base.
            let file = std::fs::File::open(path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            next = ShipState {
                generation: state.generation + 1,
                salts: Some(header.salts),
                frames: 0,
                seq: 0,
            };
            Some(self.put_piece(space, db, next.generation, file, len)?)
        } else {
            None
        };
        if frames <= next.frames {
            if frames < next.frames {
                return Err(SqlError::Internal(format!(
                    "the WAL shrank from {} to {frames} frames without a restart",
                    next.frames
                )));
            }
            return Ok(None);
        }
        let start = if next.frames == 0 {
            0
        } else {
            WAL_HEADER + next.frames * header.frame_size()
        };
        let end = WAL_HEADER + frames * header.frame_size();
        // The commit frame's header holds the database size in pages after the commit.
        let mut commit = [0u8; 8];
        wal.seek(SeekFrom::Start(end - header.frame_size()))
            .and_then(|_| wal.read_exact(&mut commit))
            .map_err(io)?;
        let db_pages = u32::from_be_bytes([commit[4], commit[5], commit[6], commit[7]]);
        if db_pages == 0 {
            return Err(SqlError::Internal(
                "the last shipped WAL frame is not a commit".into(),
            ));
        }
        wal.seek(SeekFrom::Start(start)).map_err(io)?;
        let segment = self.put_piece(
            space,
            db,
            next.generation,
            (&mut wal).take(end - start),
            end - start,
        )?;
        let ticket = queue.push(SqlShipment {
            space: space.to_owned(),
            db: db.to_owned(),
            generation: next.generation,
            snapshot,
            seq: next.seq,
            segment,
            db_bytes: u64::from(db_pages) * header.page_size,
            base_segments: state.seq,
        })?;
        next.frames = frames;
        next.seq += 1;
        *state = next;
        let db_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let threshold = self.checkpoint_bytes.max(db_len);
        if end >= threshold {
            checkpoint(conn, end >= threshold.saturating_mul(2));
        }
        Ok(Some(ticket))
    }

    /// Prepares a database's writer connection: the commit hook (which also turns off SQLite's
    /// automatic checkpoints, replaced by the shipper's) and a bound on the WAL file's size
    /// once it restarts.
    pub fn configure_writer(&self, conn: &Connection) -> Result<(), SqlError> {
        conn.wal_hook(Some(on_commit));
        conn.pragma_update(
            None,
            "journal_size_limit",
            i64::try_from(self.checkpoint_bytes).unwrap_or(i64::MAX),
        )
        .map_err(|e| SqlError::Internal(e.to_string()))
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

    /// Returns once the shipment behind `ticket` is durable. Whoever finds no shipping in
    /// progress ships everything queued in one store transaction, so concurrent writers to a
    /// database share one durable commit (group commit). An error means the shipment (and
    /// every later one) was not recorded: the caller must discard the working copy.
    pub fn wait(&self, queue: &ShipQueue, ticket: u64) -> Result<(), SqlError> {
        let mut q = queue.lock()?;
        loop {
            if q.durable > ticket {
                return Ok(());
            }
            if ticket < q.durable + q.in_flight {
                // In the batch being shipped: its outcome decides.
                q = queue
                    .done
                    .wait(q)
                    .map_err(|_| SqlError::Internal("SQL ship queue poisoned".into()))?;
                continue;
            }
            if q.failed {
                return Err(SqlError::Unavailable(
                    "the write could not be recorded in storage".into(),
                ));
            }
            if q.in_flight > 0 {
                q = queue
                    .done
                    .wait(q)
                    .map_err(|_| SqlError::Internal("SQL ship queue poisoned".into()))?;
                continue;
            }
            let batch = std::mem::take(&mut q.pending);
            if batch.is_empty() {
                return Err(SqlError::Internal(format!(
                    "SQL shipment {ticket} is neither durable nor queued"
                )));
            }
            q.in_flight = batch.len() as u64;
            drop(q);
            // Should shipping panic, the guard marks the queue failed and wakes the waiters.
            let guard = InFlight(queue);
            let result = self.runtime.block_on(self.log.sql_ship(batch));
            std::mem::forget(guard);
            q = queue.lock()?;
            let shipped = std::mem::take(&mut q.in_flight);
            match result {
                Ok(dropped) => {
                    q.durable += shipped;
                    queue.done.notify_all();
                    if !dropped.is_empty() {
                        // Off the reply path: nothing references these any more.
                        let blobs = self.blobs.clone();
                        self.runtime.spawn(async move {
                            for hash in dropped {
                                if let Err(e) = blobs.delete(&hash).await {
                                    tracing::warn!(error = %e, "could not delete a dropped SQL log blob");
                                }
                            }
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "SQL log store failure");
                    q.failed = true;
                    queue.done.notify_all();
                }
            }
        }
    }
}

/// Shipments of one database waiting to become durable, in commit order.
#[derive(Default)]
pub struct ShipQueue {
    state: Mutex<QueueState>,
    done: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Queued, not yet handed to the store; the first has ticket `durable`.
    pending: Vec<SqlShipment>,
    /// Tickets below this are durable.
    durable: u64,
    /// Shipments a thread is handing to the store right now (the tickets right after
    /// `durable`, before the pending ones).
    in_flight: u64,
    /// A shipment failed: it and everything after it will never be recorded.
    failed: bool,
}

/// Marks a queue failed if shipping unwinds.
struct InFlight<'a>(&'a ShipQueue);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.state.lock() {
            q.in_flight = 0;
            q.failed = true;
        }
        self.0.done.notify_all();
    }
}

impl ShipQueue {
    /// Refuses everything not yet handed to the store (its writers get an error) and waits
    /// until what is in flight has settled, so that a rebuild from the store sees it.
    pub fn close(&self) {
        let Ok(mut q) = self.state.lock() else { return };
        q.failed = true;
        q.pending.clear();
        self.done.notify_all();
        while q.in_flight > 0 {
            q = match self.done.wait(q) {
                Ok(q) => q,
                Err(_) => return,
            };
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, QueueState>, SqlError> {
        self.state
            .lock()
            .map_err(|_| SqlError::Internal("SQL ship queue poisoned".into()))
    }

    fn push(&self, s: SqlShipment) -> Result<u64, SqlError> {
        let mut q = self.lock()?;
        if q.failed {
            return Err(SqlError::Unavailable(
                "the write could not be recorded in storage".into(),
            ));
        }
        q.pending.push(s);
        Ok(q.durable + q.in_flight + q.pending.len() as u64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::engine::{Databases, Exec, Outcome, SqlLimits, Stmt};
    use crate::sql::gate::{Level, Restrictions};
    use crate::store::fs_blobs::FsBlobStore;
    use crate::store::sqlite::SqliteIndex;
    use crate::store::SqlLog;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The real index, with a switch that makes shipping fail (a storage outage).
    struct Flaky {
        inner: Arc<SqliteIndex>,
        down: AtomicBool,
    }

    #[async_trait::async_trait]
    impl SqlLogStore for Flaky {
        async fn sql_log(
            &self,
            space: &str,
            db: &str,
        ) -> crate::store::StoreResult<Option<SqlLog>> {
            self.inner.sql_log(space, db).await
        }
        async fn sql_ship(&self, s: Vec<SqlShipment>) -> crate::store::StoreResult<Vec<Hash>> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("outage".into()));
            }
            self.inner.sql_ship(s).await
        }
        async fn sql_usage(&self, space: &str) -> crate::store::StoreResult<u64> {
            self.inner.sql_usage(space).await
        }
        async fn sql_databases(&self, space: &str) -> crate::store::StoreResult<Vec<String>> {
            self.inner.sql_databases(space).await
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        log: Arc<Flaky>,
        blobs: Arc<FsBlobStore>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let index = Arc::new(SqliteIndex::open(&dir.path().join("index.db")).unwrap());
            let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
            Fixture {
                log: Arc::new(Flaky {
                    inner: index,
                    down: AtomicBool::new(false),
                }),
                blobs,
                dir,
            }
        }

        /// A node's SQL databases over the shared stores, with working copies in `cache`.
        /// Node `cache-a` holding table `t (id, who)` with the row `(1, 'a')`.
        fn writer_a(&self) -> Databases {
            let a = self.node("cache-a", 64 * 1024, u64::MAX);
            exec(
                &a,
                "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)",
                vec![],
            )
            .unwrap();
            exec(&a, "INSERT INTO t VALUES (1, 'a')", vec![]).unwrap();
            a
        }

        fn node(&self, cache: &str, inline_max: usize, checkpoint_bytes: u64) -> Databases {
            let shipper = Shipper::new(
                self.log.clone(),
                self.blobs.clone(),
                tokio::runtime::Handle::current(),
                inline_max,
                checkpoint_bytes,
            );
            Databases::new(
                &self.dir.path().join(cache),
                SqlLimits::default(),
                Hosting::Shipped(shipper),
            )
            .unwrap()
        }

        fn blob_files(&self) -> usize {
            walk(&self.dir.path().join("blobs"))
        }
    }

    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        if e.path().is_dir() {
                            if e.file_name() == "tmp" {
                                0
                            } else {
                                walk(&e.path())
                            }
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Bytes of the database files (not WALs) under `p`.
    fn walk_bytes(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            walk_bytes(&path)
                        } else if path.extension().is_some_and(|x| x == "db") {
                            e.metadata().map(|m| m.len()).unwrap_or(0)
                        } else {
                            0
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    fn admin() -> Exec {
        Exec::single(Level::Admin, Restrictions::default(), false)
    }

    fn reader() -> Exec {
        Exec::single(Level::Read, Restrictions::default(), false)
    }

    fn exec(dbs: &Databases, sql: &str, params: Vec<Value>) -> Result<Outcome, SqlError> {
        dbs.run(
            "space1",
            "main",
            &Stmt {
                sql: sql.into(),
                params,
            },
            &admin(),
        )
        .map(|(o, _)| o)
    }

    fn rows(dbs: &Databases, sql: &str) -> Vec<Vec<Value>> {
        match dbs
            .run(
                "space1",
                "main",
                &Stmt {
                    sql: sql.into(),
                    params: vec![],
                },
                &reader(),
            )
            .unwrap()
            .0
        {
            o @ Outcome::Rows { .. } => serde_json::from_value(o.to_json()["rows"].take()).unwrap(),
            Outcome::Changes { .. } => panic!("not a query"),
        }
    }

    fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::block_in_place(f)
    }

    /// Writes of every shape (DDL, single rows, batches, a failed batch that spilled pages to
    /// the WAL, large values), across several generations, come back on a node whose disk
    /// holds nothing.
    async fn round_trip(inline_max: usize, checkpoint_bytes: u64) -> u64 {
        let fx = Fixture::new();
        let (fx, dropped_blobs, generation) = blocking(move || {
            let a = fx.node("cache-a", inline_max, checkpoint_bytes);
            assert!(matches!(
                a.run(
                    "space1",
                    "main",
                    &Stmt {
                        sql: "SELECT 1".into(),
                        params: vec![]
                    },
                    &reader()
                ),
                Err(SqlError::NotFound(_))
            ));
            exec(
                &a,
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)",
                vec![],
            )
            .unwrap();
            for i in 0..200 {
                exec(
                    &a,
                    "INSERT INTO t (id, v) VALUES (?1, ?2)",
                    vec![json!(i), json!(format!("row {i}"))],
                )
                .unwrap();
            }
            let big = json!({"base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![7u8; 3 * 1024 * 1024])});
            exec(
                &a,
                "INSERT INTO t (id, v, b) VALUES (1000, 'big', ?1)",
                vec![big.clone()],
            )
            .unwrap();
            // A batch that writes megabytes, then fails: rolled back, and its spilled frames
            // must not reach the store.
            let failing = vec![
                Stmt {
                    sql: "INSERT INTO t (id, v, b) VALUES (2000, 'gone', ?1)".into(),
                    params: vec![big.clone()],
                },
                Stmt {
                    sql: "INSERT INTO t (id, v, b) VALUES (2001, 'gone', ?1)".into(),
                    params: vec![big],
                },
                Stmt {
                    sql: "INSERT INTO t (id) VALUES (1)".into(),
                    params: vec![],
                },
            ];
            assert!(a.batch("space1", "main", &failing, &admin()).is_err());
            let ok = vec![
                Stmt {
                    sql: "UPDATE t SET v = 'updated' WHERE id < 10".into(),
                    params: vec![],
                },
                Stmt {
                    sql: "DELETE FROM t WHERE id >= 190 AND id < 1000".into(),
                    params: vec![],
                },
            ];
            a.batch("space1", "main", &ok, &admin()).unwrap();
            let before = rows(&a, "SELECT id, v, length(b) FROM t ORDER BY id");
            assert_eq!(before.len(), 191);
            drop(a);
            let generation = tokio::runtime::Handle::current()
                .block_on(fx.log.sql_log("space1", "main"))
                .unwrap()
                .unwrap()
                .generation;
            let blobs_now = fx.blob_files();
            // A fresh node (empty working-copy directory) sees exactly the same data and
            // keeps writing.
            let b = fx.node("cache-b", inline_max, checkpoint_bytes);
            // The quota counts the database before this node has opened it.
            let handle = tokio::runtime::Handle::current();
            let used = handle.block_on(b.usage("space1")).unwrap();
            assert!(used > 3 * 1024 * 1024, "usage {used}");
            assert_eq!(
                rows(&b, "SELECT id, v, length(b) FROM t ORDER BY id"),
                before
            );
            assert_eq!(handle.block_on(b.usage("space1")).unwrap(), used);
            exec(
                &b,
                "INSERT INTO t (id, v) VALUES (5000, 'after restore')",
                vec![],
            )
            .unwrap();
            drop(b);
            let c = fx.node("cache-b", inline_max, checkpoint_bytes);
            assert_eq!(rows(&c, "SELECT count(*) FROM t"), vec![vec![json!(192)]]);
            assert_eq!(
                rows(&c, "SELECT v FROM t WHERE id = 5000"),
                vec![vec![json!("after restore")]]
            );
            drop(c);
            (fx, blobs_now, generation)
        });
        // Dropped generations leave no blobs behind (deleted in the background).
        for _ in 0..100 {
            if fx.blob_files() <= dropped_blobs.max(4) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            fx.blob_files() <= dropped_blobs.max(4),
            "{} blobs",
            fx.blob_files()
        );
        generation
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn round_trip_one_generation_inline() {
        assert_eq!(round_trip(64 * 1024, u64::MAX).await, 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn round_trip_many_generations_in_blobs() {
        // Every commit checkpoints, so every commit starts a generation.
        let g = round_trip(0, 0).await;
        assert!(g > 50, "{g} generations");
    }

    /// Concurrent writers share store commits; with generations turning over under them,
    /// every acknowledged row is in the store.
    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_writers_group_commit() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.node("cache-a", 64 * 1024, 8192);
            exec(
                &a,
                "CREATE TABLE t (w INTEGER, i INTEGER, PRIMARY KEY (w, i))",
                vec![],
            )
            .unwrap();
            std::thread::scope(|s| {
                for w in 0..8 {
                    let a = &a;
                    s.spawn(move || {
                        for i in 0..100 {
                            exec(a, "INSERT INTO t VALUES (?1, ?2)", vec![json!(w), json!(i)])
                                .unwrap();
                        }
                    });
                }
            });
            let (segments, generation) = {
                let log = tokio::runtime::Handle::current()
                    .block_on(fx.log.sql_log("space1", "main"))
                    .unwrap()
                    .unwrap();
                (log.segments.len(), log.generation)
            };
            assert!(generation > 1, "generations did not turn over");
            assert!(segments <= 801);
            drop(a);
            let b = fx.node("cache-b", 64 * 1024, 8192);
            assert_eq!(
                rows(&b, "SELECT count(*), count(DISTINCT w) FROM t"),
                vec![vec![json!(800), json!(8)]]
            );
        });
    }

    /// Readers that never pause cannot stop generations from turning over (the WAL, the
    /// stored log and restore time would grow without bound).
    #[tokio::test(flavor = "multi_thread")]
    async fn generations_turn_over_under_constant_reads() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.node("cache-a", 64 * 1024, 8192);
            exec(
                &a,
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
                vec![],
            )
            .unwrap();
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        while !stop.load(Ordering::SeqCst) {
                            // Each read keeps its snapshot for a few milliseconds.
                            rows(&a, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT count(*), (SELECT sum(length(v)) FROM t) FROM c");
                        }
                    });
                }
                for i in 0..300 {
                    exec(
                        &a,
                        "INSERT INTO t VALUES (?1, randomblob(2048))",
                        vec![json!(i)],
                    )
                    .unwrap();
                }
                stop.store(true, Ordering::SeqCst);
            });
            let log = tokio::runtime::Handle::current()
                .block_on(fx.log.sql_log("space1", "main"))
                .unwrap()
                .unwrap();
            // The WAL stays within about twice the database's size (plus one commit).
            let wal: u64 = log
                .segments
                .iter()
                .map(|p| match p {
                    LogBytes::Inline(b) => b.len() as u64,
                    LogBytes::Blob(_, n) => *n,
                })
                .sum();
            let db = std::fs::metadata(fx.dir.path().join("cache-a"))
                .map(|_| walk_bytes(&fx.dir.path().join("cache-a")))
                .unwrap_or(0);
            assert!(log.generation >= 3, "only {} generations", log.generation);
            assert!(
                wal <= 2 * db + 64 * 1024,
                "WAL {wal} bytes for a {db}-byte database"
            );
        });
    }

    /// Looking up databases that do not exist leaves nothing behind in the registry.
    #[tokio::test(flavor = "multi_thread")]
    async fn absent_databases_leave_no_registry_entries() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.node("cache-a", 64 * 1024, 8192);
            for i in 0..50 {
                let r = a.run(
                    "space1",
                    &format!("nope{i}"),
                    &Stmt {
                        sql: "SELECT 1".into(),
                        params: vec![],
                    },
                    &reader(),
                );
                assert!(matches!(r, Err(SqlError::NotFound(_))));
            }
            assert_eq!(a.slots(), 0);
            exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
            assert_eq!(a.slots(), 1);
        });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unrecorded_writes_are_not_applied() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.node("cache", 64 * 1024, 4096);
            exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
            exec(&a, "INSERT INTO t VALUES (1)", vec![]).unwrap();
            fx.log.down.store(true, Ordering::SeqCst);
            assert!(matches!(
                exec(&a, "INSERT INTO t VALUES (2)", vec![]),
                Err(SqlError::Unavailable(_))
            ));
            let batch = vec![Stmt {
                sql: "INSERT INTO t VALUES (3)".into(),
                params: vec![],
            }];
            assert!(matches!(
                a.batch("space1", "main", &batch, &admin()),
                Err(SqlError::Unavailable(_))
            ));
            fx.log.down.store(false, Ordering::SeqCst);
            assert_eq!(rows(&a, "SELECT id FROM t"), vec![vec![json!(1)]]);
            exec(&a, "INSERT INTO t VALUES (4)", vec![]).unwrap();
            assert_eq!(
                rows(&a, "SELECT id FROM t ORDER BY id"),
                vec![vec![json!(1)], vec![json!(4)]]
            );
        });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stale_writer_is_fenced_off() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.writer_a();
            // A second node takes over the database and writes.
            let b = fx.node("cache-b", 64 * 1024, u64::MAX);
            exec(&b, "INSERT INTO t VALUES (2, 'b')", vec![]).unwrap();
            // The first node's next write does not follow the stored log: refused, and its
            // working copy is rebuilt from the store.
            assert!(matches!(
                exec(&a, "INSERT INTO t VALUES (3, 'a')", vec![]),
                Err(SqlError::Unavailable(_))
            ));
            assert_eq!(
                rows(&a, "SELECT id, who FROM t ORDER BY id"),
                vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]]
            );
        });
    }

    /// A node that restored the database, then missed another node's acknowledged write, can
    /// not start a generation over it: its write is refused and the other write survives.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_writer_that_missed_commits_cannot_drop_them() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.writer_a();
            let b = fx.node("cache-b", 64 * 1024, u64::MAX);
            assert_eq!(rows(&b, "SELECT count(*) FROM t"), vec![vec![json!(1)]]);
            // A keeps writing (acknowledged) after B restored.
            exec(&a, "INSERT INTO t VALUES (2, 'a')", vec![]).unwrap();
            assert!(matches!(
                exec(&b, "INSERT INTO t VALUES (3, 'b')", vec![]),
                Err(SqlError::Unavailable(_))
            ));
            // B rebuilt from the store: it now sees A's write and can write on top of it.
            exec(&b, "INSERT INTO t VALUES (3, 'b')", vec![]).unwrap();
            drop((a, b));
            let c = fx.node("cache-c", 64 * 1024, u64::MAX);
            assert_eq!(
                rows(&c, "SELECT id FROM t ORDER BY id"),
                vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]]
            );
        });
    }

    /// A write cut short (a `RETURNING` past the row cap) commits nothing, locally or in the
    /// store.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_cut_short_commits_nothing() {
        let fx = Fixture::new();
        blocking(move || {
            let a = fx.node("cache-a", 64 * 1024, u64::MAX);
            exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
            let capped = Exec {
                max_rows: Some(1),
                ..admin()
            };
            let stmt = Stmt {
                sql: "INSERT INTO t VALUES (1), (2), (3) RETURNING id".into(),
                params: vec![],
            };
            assert!(matches!(
                a.run("space1", "main", &stmt, &capped),
                Err(SqlError::TooLarge(_))
            ));
            assert_eq!(rows(&a, "SELECT count(*) FROM t"), vec![vec![json!(0)]]);
            exec(&a, "INSERT INTO t VALUES (9)", vec![]).unwrap();
            drop(a);
            let b = fx.node("cache-b", 64 * 1024, u64::MAX);
            assert_eq!(rows(&b, "SELECT id FROM t"), vec![vec![json!(9)]]);
        });
    }

    #[test]
    fn wal_header_parsing() {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
        h[8..12].copy_from_slice(&4096u32.to_be_bytes());
        h[16..24].copy_from_slice(b"saltsalt");
        let p = WalHeader::parse(&h).unwrap();
        assert_eq!(p.page_size, 4096);
        assert_eq!(p.frame_size(), 4120);
        assert_eq!(&p.salts, b"saltsalt");
        h[8..12].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(WalHeader::parse(&h).unwrap().page_size, 65_536);
        h[8..12].copy_from_slice(&1000u32.to_be_bytes());
        assert!(WalHeader::parse(&h).is_err());
        h[8..12].copy_from_slice(&4096u32.to_be_bytes());
        h[0] = 0;
        assert!(WalHeader::parse(&h).is_err());
        assert!(WalHeader::parse(&h[..10]).is_err());
    }

    #[test]
    fn piece_keys_differ_per_database_and_generation() {
        assert_ne!(piece_key("a", "b", 1), piece_key("a", "c", 1));
        assert_ne!(piece_key("a", "b", 1), piece_key("a", "b", 2));
        assert_ne!(piece_key("a\nb", "c", 1), piece_key("a", "b\nc", 1));
    }
}

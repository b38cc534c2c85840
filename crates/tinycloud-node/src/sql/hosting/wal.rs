//! The WAL files shipping reads: the WAL header (page size, salts), the WAL index (how many
//! frames are committed), and the checkpoints that fold the WAL into the database file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rusqlite::Connection;

use super::{io, suffixed};
use crate::sql::error::SqlError;

/// Length of the WAL file header.
pub(super) const WAL_HEADER: u64 = 32;
/// Length of a WAL frame header (the page follows).
pub(super) const FRAME_HEADER: u64 = 24;

/// The parts of a WAL header shipping needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WalHeader {
    pub(super) page_size: u64,
    pub(super) salts: [u8; 8],
}

impl WalHeader {
    pub(super) fn parse(b: &[u8]) -> Result<Self, SqlError> {
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

    pub(super) fn frame_size(&self) -> u64 {
        FRAME_HEADER + self.page_size
    }
}

/// Length of one copy of the WAL-index header at the start of the `-shm` file; SQLite keeps two
/// copies, one after the other, so that a torn header can be told.
const INDEX_HEADER: usize = 48;
/// The WAL-index version SQLite writes (`WALINDEX_MAX_VERSION`).
const INDEX_VERSION: u32 = 3_007_000;

/// How far the WAL is committed, as its WAL index (`<db>-shm`, the "wal-index header" of
/// <https://www.sqlite.org/walformat.html>) says: SQLite updates it at every commit, before
/// the commit returns, and only then, so frames that a transaction spilled and rolled back
/// are never counted. Read under the writer lock: no other connection writes it meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WalIndex {
    /// Committed frames of the current WAL (`mxFrame`; 0: none since it started).
    pub(super) frames: u64,
    /// The current WAL's salts, as in its file header.
    pub(super) salts: [u8; 8],
}

impl WalIndex {
    /// The WAL index of the database at `db`; `None` when it has none (no connection has
    /// opened its WAL, so nothing is committed in one).
    pub(super) fn read(db: &Path) -> Result<Option<Self>, SqlError> {
        let mut file = match std::fs::File::open(suffixed(db, "-shm")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        // A connection running WAL recovery rewrites the two copies one after the other, so
        // a torn read can be transient: read again a few times, as SQLite itself does.
        let mut attempt = 0;
        loop {
            let mut b = [0u8; 2 * INDEX_HEADER];
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.read_exact(&mut b).map_err(io)?;
            match Self::parse(&b) {
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    std::thread::yield_now();
                }
                r => return r.map(Some),
            }
        }
    }

    pub(super) fn parse(b: &[u8; 2 * INDEX_HEADER]) -> Result<Self, SqlError> {
        let bad = |why: &str| SqlError::Internal(format!("the WAL index {why}"));
        let (h, copy) = b.split_at(INDEX_HEADER);
        if h != copy {
            return Err(bad("header is torn"));
        }
        // Native byte order: the file is this machine's SQLite's shared memory.
        let word = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if word(0) != INDEX_VERSION {
            return Err(bad("has an unknown version"));
        }
        if h[12] != 1 {
            return Err(bad("is not initialised"));
        }
        let mut salts = [0; 8];
        salts.copy_from_slice(&h[32..40]);
        Ok(WalIndex {
            frames: u64::from(word(16)),
            salts,
        })
    }
}

/// Folds the WAL into the database file; once it is all there, SQLite starts a new WAL at the
/// next commit, and with it a new generation. Normally PASSIVE: it never waits for readers,
/// which only postpone it. Readers that never pause could postpone it forever, so once the WAL
/// is twice its threshold (`insist`), a RESTART waits for them briefly (they move to the
/// database file as soon as it is complete).
pub(super) fn checkpoint(conn: &Connection, insist: bool) {
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

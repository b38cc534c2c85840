//! Restoring a database: its working copy rebuilt from the stored log (snapshot, then the
//! segments as its WAL), recovered by SQLite and folded into the database file.

use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

use super::wal::{WalHeader, WAL_HEADER};
use super::{io, remove_files, store, wal_path, ShipState, Shipper};
use crate::sql::error::SqlError;
use crate::store::LogBytes;

impl Shipper {
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
}

//! Shipping commits: after each write, the WAL frames committed since the last shipment
//! become one segment (a new WAL first stores the database file as the next generation's
//! snapshot), queued in commit order and recorded in one store commit for all queued writers.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rusqlite::Connection;

use super::queue::{InFlight, ShipQueue};
use super::wal::{checkpoint, WalHeader, WalIndex, WAL_HEADER};
use super::{io, wal_path, ShipState, Shipper};
use crate::sql::error::SqlError;
use crate::store::SqlShipment;

impl Shipper {
    /// Ships what the writer `conn` committed since the last shipment: after every write
    /// (committed or not), under the writer lock, which keeps shipments in commit order. How far
    /// the WAL is committed is read from its WAL index; the frames beyond `state` become a
    /// shipment queued on `queue`, and a checkpoint runs when due. Returns the ticket to
    /// [`Shipper::wait`] on (outside the lock), or `None` when nothing new was committed.
    /// On error the working copy holds a transaction the store does not: the caller must
    /// discard it.
    pub fn prepare(
        &self,
        space: &str,
        db: &str,
        path: &Path,
        conn: &Connection,
        state: &mut ShipState,
        queue: &ShipQueue,
    ) -> Result<Option<u64>, SqlError> {
        let index = match WalIndex::read(path)? {
            // No WAL index: nothing committed, unless a WAL with frames exists without one
            // (then what it holds cannot be told, and acknowledging would lose it).
            None => {
                let wal_len = std::fs::metadata(wal_path(path)).map_or(0, |m| m.len());
                if wal_len > WAL_HEADER {
                    return Err(SqlError::Internal(
                        "the WAL has frames but no WAL index".into(),
                    ));
                }
                return Ok(None);
            }
            Some(i) if i.frames == 0 => return Ok(None),
            Some(i) => i,
        };
        let frames = index.frames;
        let mut wal = std::fs::File::open(wal_path(path)).map_err(io)?;
        let mut head = [0u8; WAL_HEADER as usize];
        wal.read_exact(&mut head).map_err(io)?;
        let header = WalHeader::parse(&head)?;
        if header.salts != index.salts {
            return Err(SqlError::Internal(
                "the WAL index and the WAL file disagree on the current WAL".into(),
            ));
        }
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

    /// Prepares a database's writer connection: SQLite's automatic checkpoints off (replaced by
    /// the shipper's, which follow the shipments) and a bound on the WAL file's size
    /// once it restarts.
    pub fn configure_writer(&self, conn: &Connection) -> Result<(), SqlError> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .and_then(|()| {
                conn.pragma_update(
                    None,
                    "journal_size_limit",
                    i64::try_from(self.checkpoint_bytes).unwrap_or(i64::MAX),
                )
            })
            .map_err(|e| SqlError::Internal(e.to_string()))
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

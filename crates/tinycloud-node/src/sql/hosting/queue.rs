//! A database's shipments waiting to become durable, in commit order: writers queue under the
//! writer lock and wait without it; whoever finds no shipping in progress ships the queue.

use std::sync::{Condvar, Mutex};

use crate::sql::error::SqlError;
use crate::store::SqlShipment;

/// Shipments of one database waiting to become durable, in commit order.
#[derive(Default)]
pub struct ShipQueue {
    state: Mutex<QueueState>,
    pub(super) done: Condvar,
}

#[derive(Default)]
pub(super) struct QueueState {
    /// Queued, not yet handed to the store; the first has ticket `durable`.
    pub(super) pending: Vec<SqlShipment>,
    /// Tickets below this are durable.
    pub(super) durable: u64,
    /// Shipments a thread is handing to the store right now (the tickets right after
    /// `durable`, before the pending ones).
    pub(super) in_flight: u64,
    /// A shipment failed: it and everything after it will never be recorded.
    pub(super) failed: bool,
}

/// Marks a queue failed if shipping unwinds.
pub(super) struct InFlight<'a>(pub(super) &'a ShipQueue);

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

    pub(super) fn lock(&self) -> Result<std::sync::MutexGuard<'_, QueueState>, SqlError> {
        self.state
            .lock()
            .map_err(|_| SqlError::Internal("SQL ship queue poisoned".into()))
    }

    pub(super) fn push(&self, s: SqlShipment) -> Result<u64, SqlError> {
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

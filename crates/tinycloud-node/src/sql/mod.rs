//! The SQL service: `tinycloud.sql/read|write|schema|admin` on `<space>/sql/<db>`: the
//! databases (`engine`), the authorizer policy (`gate`) and where databases live (`hosting`).
//! The reference's JSON request protocol, and the status each `SqlError` answers with, are
//! the HTTP layer's (`routes::sql`): this service knows nothing of HTTP or the app state.

pub mod engine;
pub mod error;
pub mod gate;
pub mod hosting;

use tokio::sync::Semaphore;

use engine::Databases;

/// The SQL service: databases plus a bound on concurrent executions, so a runaway query can
/// occupy at most one worker and never stall other spaces.
pub struct SqlService {
    /// The databases.
    pub dbs: Databases,
    /// Bounds concurrent executions.
    pub(crate) permits: Semaphore,
}

impl SqlService {
    /// A service over `dbs` running at most `workers` statements at once.
    pub fn new(dbs: Databases, workers: usize) -> Self {
        SqlService {
            dbs,
            permits: Semaphore::new(workers.max(1)),
        }
    }
}

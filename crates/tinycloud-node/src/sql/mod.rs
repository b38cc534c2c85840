//! The SQL service: `tinycloud.sql/read|write|schema|admin` on `<space>/sql/<db>`: the
//! databases (`engine`), the authorizer policy (`gate`) and where databases live (`hosting`).
//! The reference's JSON request protocol is read by the HTTP layer (`routes::sql`).

pub mod engine;
pub mod error;
pub mod gate;
pub mod hosting;

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use engine::{Databases, SqlError};

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

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Invalid(m) => ApiError::bad_request(m),
            SqlError::Denied(m) => ApiError::forbidden(m),
            SqlError::NotFound(_) => ApiError::not_found(e.to_string()),
            SqlError::Limit(m) => ApiError::new(StatusCode::PAYMENT_REQUIRED, m),
            SqlError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            SqlError::Timeout(_) => ApiError::bad_request(e.to_string()),
            SqlError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            SqlError::Internal(m) => {
                tracing::error!(error = %m, "sql engine failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal database error")
            }
        }
    }
}

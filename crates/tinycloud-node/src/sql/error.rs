//! The SQL service's error type: shared by `engine` and `hosting` (which records the engine's
//! commits), so neither depends on the other for it.

/// Errors from running SQL; each maps to an HTTP status at the edge.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement is invalid or failed in SQLite (syntax, constraint, missing table…).
    #[error("{0}")]
    Invalid(String),
    /// The statement needs more than the invoker's level allows.
    #[error("{0}")]
    Denied(String),
    /// Read-only operation on a database that does not exist.
    #[error("database {0:?} not found")]
    NotFound(String),
    /// A limit on what a client may create (databases per space).
    #[error("{0}")]
    Limit(String),
    /// Result or value too large.
    #[error("{0}")]
    TooLarge(String),
    /// Ran out of time.
    #[error("statement exceeded the {0} ms time limit and was interrupted")]
    Timeout(u64),
    /// I/O or internal failure.
    #[error("{0}")]
    Internal(String),
    /// The storage layer could not record a write; nothing was applied.
    #[error("{0}")]
    Unavailable(String),
}

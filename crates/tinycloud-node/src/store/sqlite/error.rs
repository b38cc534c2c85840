//! SQLite's errors mapped to [`StoreError`], here in the backend so the trait module names no
//! backend type. `?` on a `rusqlite` or `rusqlite_migration` error inside this backend goes
//! through these conversions.

use rusqlite::ErrorCode;

use crate::store::StoreError;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            // The file itself is damaged or is not an index.
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            // Busy, locked, full, I/O and everything else: the backend failed.
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(e: rusqlite_migration::Error) -> Self {
        use rusqlite_migration::{Error, MigrationDefinitionError};
        match e {
            Error::RusqliteError { err, .. } => err.into(),
            Error::MigrationDefinition(MigrationDefinitionError::DatabaseTooFarAhead) => {
                StoreError::Schema(
                    "the index was written by a newer tinycloud-node, and there is no downgrade"
                        .into(),
                )
            }
            other => StoreError::Schema(format!("schema migration failed: {other}")),
        }
    }
}

//! The index schema, versioned with `rusqlite_migration`: `PRAGMA user_version` is the number
//! of migrations applied, and opening the index applies the missing ones in one transaction.
//!
//! - Migration 1 is the schema as it stood when versioning began (`v1_tables.sql`, then
//!   `v1_additions.sql`), so a fresh database gets byte-for-byte the schema the code before it
//!   created.
//! - An index written by that code is *adopted* as version 1 without touching its rows: it
//!   has its tables but a `user_version` of 0 (older releases) or 1 (the last unversioned
//!   one, which used version 1 to mean "blob references counted"). [`adopt`] does what that
//!   code did on every open — create missing tables, rebuild the blob reference counts of a
//!   version-0 index, add the webhook columns and audit counts if missing — and marks it
//!   version 1. It is idempotent, so it runs on every open of a version-1 index.
//! - An index at a version newer than [`VERSION`] was written by a newer release: it is
//!   refused ([`StoreError::Schema`]), never downgraded.
//!
//! Adding a migration: append an `M::up(include_str!("v2_….sql"))` to [`MIGRATIONS`] (never
//! edit a released one), and a test in `tests.rs` that an index at the previous version with
//! rows in it opens at the new version with those rows. Other backends keep their own
//! migrations in their own form (the PostgreSQL backend in sqlx style) for the same traits.

#[cfg(test)]
mod tests;

use rusqlite::{params, Connection};
use rusqlite_migration::{Migrations, M};

use crate::store::{StoreError, StoreResult};

/// Part 1 of migration 1: the tables (all `IF NOT EXISTS`, also used for adoption).
const V1_TABLES: &str = include_str!("v1_tables.sql");

/// The migrations, in order: migration `n` takes the index from version `n - 1` to `n`.
const MIGRATION_LIST: &[M<'static>] = &[M::up(concat!(
    include_str!("v1_tables.sql"),
    include_str!("v1_additions.sql")
))];

/// All of them.
const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this build writes (and the newest it can open).
pub(super) const VERSION: usize = MIGRATION_LIST.len();

/// Brings the index on `conn` to [`VERSION`], adopting an index of the unversioned code, or
/// refuses it when it is newer than this build.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if usize::try_from(version).map_or(true, |v| v > VERSION) {
        return Err(too_new(version));
    }
    if version <= 1 && has_table(conn, "space")? {
        adopt(conn, version)?;
    }
    MIGRATIONS.to_latest(conn)?;
    Ok(())
}

/// The error for an index written by a newer release.
pub(super) fn too_new(version: i64) -> StoreError {
    StoreError::Schema(format!(
        "the index is at schema version {version}, but this build knows versions up to \
         {VERSION}: it was written by a newer tinycloud-node, and there is no downgrade \
         (run the newer release, or restore a backup of the data directory)"
    ))
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![name],
        |r| r.get(0),
    )
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        params![table, column],
        |r| r.get(0),
    )
}

/// Marks an index written before versioning as version 1, first bringing it to exactly
/// migration 1's schema the way that code did on open (in one transaction).
fn adopt(conn: &mut Connection, version: i64) -> StoreResult<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(V1_TABLES)?;
    if version < 1 {
        // Version 1 counts the KV heads per blob; older indexes never did.
        tx.execute_batch(
            "DELETE FROM blob_ref;
             INSERT INTO blob_ref (hash, refs)
                 SELECT hash, count(*) FROM kv WHERE inline_value IS NULL GROUP BY hash;",
        )?;
    }
    // The webhook columns, in the order `v1_additions.sql` adds them (rows stored before them
    // have no proofs and are never delivered to).
    for (column, ty) in [
        ("proofs", "TEXT"),
        ("expires_at", "INTEGER"),
        ("disabled_reason", "TEXT"),
    ] {
        if !has_column(&tx, "webhook", column)? {
            tx.execute_batch(&format!("ALTER TABLE webhook ADD COLUMN {column} {ty}"))?;
        }
    }
    if !has_table(&tx, "encryption_audit_count")? {
        tx.execute_batch(
            "CREATE TABLE encryption_audit_count (network TEXT PRIMARY KEY, records INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO encryption_audit_count SELECT network, count(*) FROM encryption_audit GROUP BY network;",
        )?;
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS encryption_audit_by_actor ON encryption_audit (network, actor, at)",
    )?;
    tx.pragma_update(None, "user_version", 1)?;
    tx.commit()?;
    Ok(())
}

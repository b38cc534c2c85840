//! Schema versioning: a fresh index is exactly migration 1, indexes of the unversioned code
//! are adopted with their rows, a newer index is refused.

use std::path::Path;

use rusqlite::{params, Connection};

use super::{MIGRATIONS, VERSION};
use crate::store::quota::QuotaStore;
use crate::store::sqlite::SqliteIndex;
use crate::store::{
    DelegationStore, EventLog, KvStore, SpaceStore, StoreError, TicketStore, ValueLocation,
    WebhookStore,
};

/// The tables of the last unversioned release, as an older release left them (a copy, kept as
/// it was).
const PRE_MIGRATION_TABLES: &str = include_str!("fixtures/pre_migration_tables.sql");
/// What that release ran on open after its tables.
const PRE_MIGRATION_ON_OPEN: &str = include_str!("fixtures/pre_migration_on_open.sql");

/// Everything the last unversioned release ran on a fresh index, in order.
fn pre_migration() -> String {
    format!("{PRE_MIGRATION_TABLES}\n{PRE_MIGRATION_ON_OPEN}")
}

/// Schema objects: (type, name, table, stored SQL text).
type Objects = Vec<(String, String, String, Option<String>)>;

/// Every schema object with its stored SQL text, in creation order, and the user version.
fn schema_of(path: &Path) -> (Objects, i64) {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let version = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    (rows, version)
}

fn fresh_schema(dir: &Path) -> (Objects, i64) {
    let path = dir.join("fresh.db");
    drop(SqliteIndex::open(&path).unwrap());
    schema_of(&path)
}

#[test]
fn the_migrations_are_valid() {
    MIGRATIONS.validate().unwrap();
    assert_eq!(VERSION, 1);
}

#[test]
fn a_fresh_index_has_exactly_the_schema_of_the_unversioned_code() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch(&pre_migration())
        .unwrap();
    let (old_schema, old_version) = schema_of(&old);
    let (new_schema, new_version) = fresh_schema(dir.path());
    assert!(old_schema.len() > 20, "{old_schema:?}");
    assert_eq!(new_schema, old_schema, "byte-for-byte, in the same order");
    assert_eq!((old_version, new_version), (1, 1));
}

#[tokio::test]
async fn an_index_of_the_last_unversioned_release_is_adopted_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let cid = tinycloud_auth::cid::blake3_cid(b"a delegation");
    let revoked = tinycloud_auth::cid::blake3_cid(b"a revoked one");
    let did = tinycloud_auth::keys::SecretKey::ed25519_from_seed(&[3; 32]).did();
    let blob = [7u8; 32];
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&pre_migration()).unwrap();
        c.execute_batch(
            "INSERT INTO space (id, owner, created_at) VALUES ('s', 'did:key:owner', 1);
             INSERT INTO space_usage (space, bytes) VALUES ('s', 1005);
             INSERT INTO kv (space, key, hash, size, metadata, updated_at, inline_value)
                 VALUES ('s', 'small', zeroblob(32), 5, '[]', 2, x'68656c6c6f');
             INSERT INTO hook_event (space, seq, service, ability, path, actor, ts)
                 VALUES ('s', 1, 'kv', 'tinycloud.kv/put', 'small', 'did:key:a', 2);
             INSERT INTO webhook (id, space, service, callback_url, sealed_secret, subscriber,
                 active, created_at, cursor, attempts, next_attempt_at, proofs)
                 VALUES ('w', 's', 'kv', 'https://x', x'00', 'did:key:z', 1, 0, 0, 0, 0, '[\"p\"]');
             INSERT INTO quota_override (space, limit_bytes, updated_at) VALUES ('s', 4096, 3);
             INSERT INTO signed_kv_ticket (id_hash, space, path, issuer, content_hash, proofs,
                 created_at, expires_at)
                 VALUES (zeroblob(32), 's', 'small', 'did:key:a', zeroblob(32), '[]', 1, 99);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO kv (space, key, hash, size, metadata, updated_at, inline_value)
             VALUES ('s', 'large', ?1, 1000, '[]', 2, NULL)",
            params![blob.as_slice()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO blob_ref (hash, refs) VALUES (?1, 1)",
            params![blob.as_slice()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO delegation (cid, issuer, delegatee, not_before, expiration, terminal,
                 parents, att, header, created_at)
             VALUES (?1, ?2, ?2, NULL, NULL, 0, '[]', '{}', 'header', 4)",
            params![cid.to_string(), did.to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO revocation (cid, revoker, revoked_at) VALUES (?1, 'did:key:r', 5)",
            params![revoked.to_string()],
        )
        .unwrap();
    }
    let db = SqliteIndex::open(&path).unwrap();
    assert_eq!(db.spaces().await.unwrap(), vec!["s".to_owned()]);
    assert_eq!(db.usage("s").await.unwrap(), 1005);
    let small = db.kv_get("s", "small").await.unwrap().unwrap();
    assert_eq!(
        small.location,
        ValueLocation::Inline(b"hello".to_vec().into())
    );
    let large = db.kv_get("s", "large").await.unwrap().unwrap();
    assert_eq!((large.location, large.hash), (ValueLocation::Blob, blob));
    assert_eq!(db.events_after("s", 0, 10).await.unwrap().len(), 1);
    let w = db.webhook("w").await.unwrap().unwrap();
    assert_eq!(w.proofs, Some(vec!["p".to_owned()]));
    assert_eq!(
        db.quota_overrides().await.unwrap(),
        vec![("s".to_owned(), 4096)]
    );
    assert!(db.signed_ticket(&[0; 32]).await.unwrap().is_some());
    let d = db.delegation(&cid).await.unwrap().unwrap();
    assert_eq!(d.info.issuer, did);
    assert_eq!(db.revoked().await.unwrap(), vec![revoked]);
    // The blob counts were kept (version 1 had them): deleting the head queues the blob.
    db.kv_delete("s", "large", crate::store::Precondition::None, None)
        .await
        .unwrap();
    drop(db);
    let (schema, version) = schema_of(&path);
    assert_eq!(version, 1);
    assert_eq!(schema, fresh_schema(dir.path()).0);
    let c = Connection::open(&path).unwrap();
    let queued: i64 = c
        .query_row("SELECT count(*) FROM blob_gc", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn an_older_unversioned_index_is_brought_to_exactly_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let blob = [5u8; 32];
    {
        // Version 0, no blob counts, no webhook proofs or audit counts, and tables that
        // releases before it did not have yet.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(PRE_MIGRATION_TABLES).unwrap();
        c.execute_batch("DROP TABLE signed_kv_ticket; DROP TABLE quota_override;")
            .unwrap();
        for key in ["a", "b"] {
            c.execute(
                "INSERT INTO kv (space, key, hash, size, metadata, updated_at, inline_value)
                 VALUES ('s', ?1, ?2, 10, '[]', 1, NULL)",
                params![key, blob.as_slice()],
            )
            .unwrap();
        }
        c.execute_batch(
            "INSERT INTO encryption_audit (network, at, actor, outcome, delegations)
             VALUES ('n', 1, 'a', 'allowed', '[]');",
        )
        .unwrap();
    }
    drop(SqliteIndex::open(&path).unwrap());
    let (schema, version) = schema_of(&path);
    assert_eq!(version, 1);
    assert_eq!(schema, fresh_schema(dir.path()).0);
    let c = Connection::open(&path).unwrap();
    let refs: i64 = c
        .query_row(
            "SELECT refs FROM blob_ref WHERE hash = ?1",
            params![blob.as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refs, 2, "both heads counted");
    let audited: i64 = c
        .query_row(
            "SELECT records FROM encryption_audit_count WHERE network = 'n'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    drop(c);
    // Opening again changes nothing.
    drop(SqliteIndex::open(&path).unwrap());
    assert_eq!(schema_of(&path), (schema, 1));
}

#[test]
fn an_index_of_a_newer_release_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    drop(SqliteIndex::open(&path).unwrap());
    let newer = i64::try_from(VERSION).unwrap() + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let before = schema_of(&path);
    match SqliteIndex::open(&path) {
        Err(StoreError::Schema(msg)) => {
            assert!(
                msg.contains("newer") && msg.contains("no downgrade"),
                "{msg}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer index was opened"),
    }
    assert_eq!(schema_of(&path), before, "nothing was changed");
}

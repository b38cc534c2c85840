//! Tests of the SQLite backend through its traits (schema versioning: `schema/tests.rs`).

use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection};
use tinycloud_auth::chain::DelegationInfo;
use tinycloud_auth::timestamp::Timestamp;

use super::SqliteIndex;
use crate::store::{
    AuditBounds, AuditRow, DelegationCharge, DelegationStore, DelegationWrite, DeliveryRow,
    EncryptionStore, EventDraft, EventLog, KeyPage, KvEntry, KvPut, KvStore, NonceStore,
    Precondition, SignedTicketRow, SpaceStore, StoredDelegation, TicketBounds, TicketStore,
    ValueLocation, WebhookStore, WriteOutcome,
};

fn entry(v: &[u8]) -> KvEntry {
    KvEntry {
        hash: *blake3::hash(v).as_bytes(),
        size: v.len() as u64,
        metadata: vec![("content-type".into(), "text/plain".into())],
        updated_at: 1,
        location: ValueLocation::Inline(Bytes::copy_from_slice(v)),
    }
}

fn put(key: &str, v: &[u8], pre: Precondition, limit: Option<u64>) -> KvPut {
    KvPut {
        space: "s".into(),
        key: key.into(),
        entry: entry(v),
        precondition: pre,
        limit,
        event: Some(EventDraft {
            space: "s".into(),
            service: "kv".into(),
            ability: "tinycloud.kv/put".into(),
            path: key.into(),
            actor: "did:key:test".into(),
            timestamp_ms: 1,
        }),
    }
}

fn delegation_row(name: &str, exp: Option<i64>, bytes: usize) -> StoredDelegation {
    let did = tinycloud_auth::keys::SecretKey::ed25519_from_seed(&[9; 32]).did();
    StoredDelegation {
        info: DelegationInfo {
            cid: tinycloud_auth::cid::blake3_cid(name.as_bytes()),
            authority: tinycloud_auth::cid::blake3_cid(name.as_bytes()),
            issuer: did.clone(),
            delegatee: did,
            not_before: None,
            expiration: exp.map(Timestamp::from_millis),
            parents: vec![],
            capabilities: vec![],
            terminal: false,
        },
        header: "h".repeat(bytes),
        spaces: vec!["s".into()],
    }
}

#[tokio::test]
async fn the_delegation_sweep_is_bounded_and_uncharges_exactly_what_was_charged() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteIndex::open(&dir.path().join("index.db")).unwrap();
    let charge = |space: &str| DelegationCharge {
        space: space.into(),
        limit: Some(10_000),
    };
    for i in 0..5 {
        let d = delegation_row(&format!("old{i}"), Some(100 + i), 100);
        let w = db.put_delegation(&d, vec![charge("s")], 0).await.unwrap();
        assert_eq!(w, DelegationWrite::Stored);
    }
    // Expires later; never expires; names "t" but was charged to nothing.
    let live = delegation_row("live", Some(10_000), 100);
    db.put_delegation(&live, vec![charge("s")], 0)
        .await
        .unwrap();
    let forever = delegation_row("forever", None, 100);
    db.put_delegation(&forever, vec![charge("s")], 0)
        .await
        .unwrap();
    let mut uncharged = delegation_row("uncharged", Some(50), 100);
    uncharged.spaces = vec!["t".into()];
    db.put_delegation(&uncharged, vec![], 0).await.unwrap();
    db.kv_put(put("k", b"12345", Precondition::None, None))
        .await
        .unwrap();
    assert_eq!(db.usage("s").await.unwrap(), 705);
    // At most `limit` per call, earliest expiry first.
    let first = db.sweep_delegations(1_000, 2).await.unwrap();
    assert_eq!(
        first,
        vec![
            tinycloud_auth::cid::blake3_cid(b"uncharged"),
            tinycloud_auth::cid::blake3_cid(b"old0")
        ]
    );
    assert_eq!(db.usage("s").await.unwrap(), 605);
    assert_eq!(db.sweep_delegations(1_000, 100).await.unwrap().len(), 4);
    assert!(db.sweep_delegations(1_000, 100).await.unwrap().is_empty());
    // Only the unexpired delegations' bytes (and the value) remain charged.
    assert_eq!(db.usage("s").await.unwrap(), 205);
    assert_eq!(db.usage("t").await.unwrap(), 0);
    let rows: i64 = db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM delegation", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn kv_round_trip_preconditions_quota_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteIndex::open(&dir.path().join("index.db")).unwrap();
    assert_eq!(
        db.kv_put(put("a", b"1", Precondition::Absent, None))
            .await
            .unwrap(),
        WriteOutcome::Done(None)
    );
    assert_eq!(
        db.kv_put(put("a", b"2", Precondition::Absent, None))
            .await
            .unwrap(),
        WriteOutcome::PreconditionFailed
    );
    let h1 = *blake3::hash(b"1").as_bytes();
    assert_eq!(
        db.kv_put(put("a", b"22", Precondition::Matches(h1), None))
            .await
            .unwrap(),
        WriteOutcome::Done(None)
    );
    assert_eq!(
        db.kv_put(put("a", b"3", Precondition::Matches(h1), None))
            .await
            .unwrap(),
        WriteOutcome::PreconditionFailed
    );
    let got = db.kv_get("s", "a").await.unwrap().unwrap();
    assert_eq!(
        got.location,
        ValueLocation::Inline(Bytes::from_static(b"22"))
    );
    assert_eq!(db.usage("s").await.unwrap(), 2);
    assert!(matches!(
        db.kv_put(put("b", b"12345", Precondition::None, Some(4)))
            .await
            .unwrap(),
        WriteOutcome::QuotaExceeded { used: 2, limit: 4 }
    ));
    for k in ["b/1", "b/2", "ba", "c"] {
        db.kv_put(put(k, b"x", Precondition::None, None))
            .await
            .unwrap();
    }
    let page = db.kv_list("s", "b", None, 2).await.unwrap();
    assert_eq!(
        page,
        KeyPage {
            keys: vec!["b/1".into(), "b/2".into()],
            truncated: true
        }
    );
    let page = db.kv_list("s", "b", Some("b/2"), 2).await.unwrap();
    assert_eq!(
        page,
        KeyPage {
            keys: vec!["ba".into()],
            truncated: false
        }
    );
    assert_eq!(
        db.kv_delete("s", "nope", Precondition::None, None)
            .await
            .unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        db.kv_delete("s", "c", Precondition::None, None)
            .await
            .unwrap(),
        WriteOutcome::Done(Some(*blake3::hash(b"x").as_bytes()))
    );
    assert_eq!(db.usage("s").await.unwrap(), 2 + 3);
    // every successful put was logged with a sequence number, in order
    let evs = db.events_after("s", 0, 100).await.unwrap();
    let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        evs.len(),
        2 + 4,
        "precondition and quota failures are not logged"
    );
    assert_eq!(db.first_event("s").await.unwrap(), Some(1));
    assert_eq!(db.events_after("s", 5, 100).await.unwrap().len(), 1);
}

#[tokio::test]
async fn nonces_are_single_use_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    {
        let db = SqliteIndex::open(&path).unwrap();
        assert!(db.consume_nonce([1; 32], i64::MAX, 0).await.unwrap());
        assert!(!db.consume_nonce([1; 32], i64::MAX, 0).await.unwrap());
    }
    let db = SqliteIndex::open(&path).unwrap();
    assert!(!db.consume_nonce([1; 32], i64::MAX, 0).await.unwrap());
    assert!(db.consume_nonce([2; 32], 100, 0).await.unwrap());
    assert_eq!(db.sweep_nonces(200).await.unwrap(), 1);
    assert!(db.consume_nonce([2; 32], 300, 200).await.unwrap());
}

#[tokio::test]
async fn a_writes_nonce_is_durable_when_the_write_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteIndex::open(&dir.path().join("index.db")).unwrap();
    // The invocation's nonce is consumed (written, not yet synced), then its write commits.
    assert!(db.consume_nonce([7; 32], i64::MAX, 0).await.unwrap());
    let (written, durable) = db.replay.durability().unwrap();
    assert!(durable < written, "consuming alone does not fsync");
    db.kv_put(put("k", b"v", Precondition::None, None))
        .await
        .unwrap();
    let (_, durable) = db.replay.durability().unwrap();
    assert!(
        durable >= written,
        "the write was acknowledged before its nonce was on disk"
    );
}

#[tokio::test]
async fn concurrent_writes_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteIndex::open(&dir.path().join("index.db")).unwrap());
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.kv_put(put(
                &format!("k{}", i % 7),
                &i.to_le_bytes(),
                Precondition::None,
                None,
            ))
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), WriteOutcome::Done(None));
    }
    assert_eq!(db.kv_list("s", "k", None, 100).await.unwrap().keys.len(), 7);
}

#[tokio::test]
async fn signed_tickets_are_bounded_durable_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let ticket = |n: u8, issuer: &str, exp: i64| SignedTicketRow {
        id_hash: [n; 32],
        space: "s".into(),
        path: "k".into(),
        issuer: issuer.into(),
        content_hash: [9; 32],
        proofs: vec!["bafy".into()],
        created_at: 1,
        expires_at: exp,
    };
    let bounds = |now_ms| TicketBounds {
        per_space: 3,
        per_issuer: 2,
        now_ms,
    };
    {
        let db = SqliteIndex::open(&path).unwrap();
        assert!(db
            .create_signed_ticket(&ticket(1, "a", 100), bounds(10))
            .await
            .unwrap());
        assert!(db
            .create_signed_ticket(&ticket(2, "a", 100), bounds(10))
            .await
            .unwrap());
        // The issuer's bound, then the space's.
        assert!(!db
            .create_signed_ticket(&ticket(3, "a", 100), bounds(10))
            .await
            .unwrap());
        assert!(db
            .create_signed_ticket(&ticket(4, "b", 200), bounds(10))
            .await
            .unwrap());
        assert!(!db
            .create_signed_ticket(&ticket(5, "c", 200), bounds(10))
            .await
            .unwrap());
    }
    let db = SqliteIndex::open(&path).unwrap();
    assert_eq!(
        db.signed_ticket(&[1; 32]).await.unwrap(),
        Some(ticket(1, "a", 100))
    );
    assert_eq!(db.signed_ticket(&[3; 32]).await.unwrap(), None);
    // Expired tickets of the space make room when a new one is minted.
    assert!(db
        .create_signed_ticket(&ticket(5, "c", 300), bounds(150))
        .await
        .unwrap());
    assert_eq!(db.signed_ticket(&[1; 32]).await.unwrap(), None);
    assert_eq!(db.sweep_signed_tickets(250, 10).await.unwrap(), 1);
    assert_eq!(db.signed_ticket(&[4; 32]).await.unwrap(), None);
    assert!(db.signed_ticket(&[5; 32]).await.unwrap().is_some());
}

fn audit_row(actor: &str, outcome: &str, at: i64) -> AuditRow {
    AuditRow {
        seq: 0,
        network: "n".into(),
        actor: actor.into(),
        outcome: outcome.into(),
        envelope_hash: None,
        delegations: vec![],
        invocation: None,
        at,
    }
}

#[tokio::test]
async fn legacy_rows_migrate_without_proofs_and_audit_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    {
        // A database from before: webhook without proofs, three audit rows.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(include_str!("schema/fixtures/pre_migration_tables.sql"))
            .unwrap();
        c.execute(
            "INSERT INTO webhook (id, space, service, callback_url, sealed_secret, subscriber, active, created_at, cursor, attempts, next_attempt_at)
             VALUES ('w', 's', 'kv', 'https://x', x'00', 'did:key:z', 1, 0, 0, 0, 0)",
            [],
        )
        .unwrap();
        for at in 1..=3 {
            c.execute(
                "INSERT INTO encryption_audit (network, at, actor, outcome, delegations) VALUES ('n', ?1, 'a', 'allowed', '[]')",
                params![at],
            )
            .unwrap();
        }
    }
    let db = SqliteIndex::open(&path).unwrap();
    let w = db.webhook("w").await.unwrap().unwrap();
    assert_eq!(w.proofs, None, "a legacy row has no proofs to re-check");
    assert!(w.active);
    assert!(db.disable_webhook("w", "gone").await.unwrap());
    let w = db.webhook("w").await.unwrap().unwrap();
    assert!(!w.active);
    assert_eq!(w.disabled_reason.as_deref(), Some("gone"));
    assert!(db.active_webhooks().await.unwrap().is_empty());

    let bounds = AuditBounds {
        max_rows: 4,
        denied_per_actor: 2,
        window_ms: 100,
        now_ms: 1_000,
    };
    // The migrated count (3) makes the 5th record drop the oldest.
    assert!(db
        .audit(&audit_row("a", "allowed", 4), bounds)
        .await
        .unwrap());
    assert!(db
        .audit(&audit_row("a", "allowed", 5), bounds)
        .await
        .unwrap());
    let all = db.audit_log("n", None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.at).collect::<Vec<_>>(),
        vec![5, 4, 3, 2]
    );
    // Refusals: two per actor in the window, then none; allowed ones still go in.
    for _ in 0..3 {
        db.audit(&audit_row("b", "denied:401", 990), bounds)
            .await
            .unwrap();
    }
    assert!(!db
        .audit(&audit_row("b", "denied:401", 995), bounds)
        .await
        .unwrap());
    assert!(db
        .audit(&audit_row("c", "denied:401", 995), bounds)
        .await
        .unwrap());
    assert!(db
        .audit(&audit_row("b", "allowed", 996), bounds)
        .await
        .unwrap());
    let all = db.audit_log("n", None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all.iter()
            .filter(|r| r.actor == "b" && r.outcome != "allowed")
            .count(),
        2
    );
    // Webhook history and inactive webhooks are bounded.
    let mut d = DeliveryRow {
        id: String::new(),
        webhook: "w".into(),
        seq: 0,
        status: "delivered".into(),
        attempts: 1,
        last_status: Some(200),
        last_error: None,
        at: 0,
    };
    for i in 0..1200u64 {
        d.id = format!("d{i}");
        d.seq = i;
        d.at = i64::try_from(i).unwrap();
        db.record_delivery(&d).await.unwrap();
    }
    let kept = db.deliveries("w", 5000).await.unwrap();
    assert!(kept.len() <= 1100 && kept.len() >= 1000, "{}", kept.len());
    assert_eq!(kept[0].seq, 1199, "the newest are kept");
    let mut w2 = w.clone();
    for i in 0..150 {
        w2.id = format!("old{i}");
        w2.created_at = i;
        w2.active = true;
        assert!(db.create_webhook(&w2, 5).await.unwrap());
        db.deactivate_webhook(&w2.id).await.unwrap();
    }
    assert!(db.webhooks("s").await.unwrap().len() <= 101);
    assert!(db.webhook("w").await.unwrap().is_none(), "the oldest went");
    assert!(db.deliveries("w", 10).await.unwrap().is_empty());
    // Paging by (at, seq) walks every record once.
    let first = db.audit_log("n", None, 2).await.unwrap();
    let last = first.last().unwrap();
    let rest = db
        .audit_log("n", Some((last.at, last.seq)), 10)
        .await
        .unwrap();
    let paged: Vec<_> = first.iter().chain(rest.iter()).cloned().collect();
    assert_eq!(paged, all);
}

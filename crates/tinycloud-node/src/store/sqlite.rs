//! The embedded index: SQLite in WAL mode.
//!
//! All writes go through one writer thread that applies queued jobs in a single transaction
//! and commits once per batch (group commit, `synchronous=FULL`): every job's reply is sent
//! only after that commit is durable, and concurrent writers share one fsync instead of
//! fighting over SQLite's lock. Each job runs inside a savepoint, so one failing job never
//! undoes its neighbours. Reads use a small pool of read-only connections and see only
//! committed data.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tinycloud_auth::capability::{
    att_from_capabilities, att_from_json, att_to_json, capabilities_from_att,
};
use tinycloud_auth::chain::DelegationInfo;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::timestamp::Timestamp;
use tokio::sync::oneshot;

use super::head_cache::HeadCache;
use super::replay_log::ReplayLog;
use super::{
    AuditBounds, AuditRow, DelegationCharge, DelegationWrite, DeliveryRow, EncryptionStore,
    EventDraft, Hash, IndexStore, KeyPage, KvEntry, KvPut, LogBytes, NetworkRow, Precondition,
    SignedTicketRow, SqlLog, SqlLogStore, SqlShipment, StoreError, StoreResult, StoredDelegation,
    StoredEvent, TicketBounds, TicketStore, ValueLocation, WebhookRow, WebhookStore, WriteOutcome,
};

type Completion = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Completion + Send>;

const MAX_BATCH: usize = 512;
/// Events kept per space for resuming subscribers and webhook catch-up.
pub const EVENT_LOG_LEN: u64 = 10_000;
/// In-process event fan-out capacity (a slower subscriber catches up from the log).
const EVENT_BUS: usize = 4096;
const READERS: usize = 4;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS space (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delegation (
    cid TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    delegatee TEXT NOT NULL,
    not_before INTEGER,
    expiration INTEGER,
    terminal INTEGER NOT NULL,
    parents TEXT NOT NULL,
    att TEXT NOT NULL,
    header TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delegation_space (
    space TEXT NOT NULL,
    cid TEXT NOT NULL,
    PRIMARY KEY (space, cid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delegation_by_expiration ON delegation (expiration);
CREATE INDEX IF NOT EXISTS delegation_by_issuer ON delegation (issuer, created_at);
CREATE INDEX IF NOT EXISTS delegation_by_delegatee ON delegation (delegatee, created_at);
CREATE TABLE IF NOT EXISTS delegation_charge (
    cid TEXT NOT NULL,
    space TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (cid, space)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocation (
    cid TEXT PRIMARY KEY,
    revoker TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    inline_value BLOB,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hook_event (
    space TEXT NOT NULL,
    seq INTEGER NOT NULL,
    service TEXT NOT NULL,
    ability TEXT NOT NULL,
    path TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (space, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook (
    id TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    service TEXT NOT NULL,
    path_prefix TEXT,
    abilities TEXT,
    callback_url TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    subscriber TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_delivery (
    id TEXT PRIMARY KEY,
    webhook TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_delivery_by_hook ON webhook_delivery (webhook, at);
CREATE TABLE IF NOT EXISTS encryption_network (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    public_key BLOB NOT NULL,
    sealed_private BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS encryption_audit (
    network TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    envelope_hash TEXT,
    delegations TEXT NOT NULL,
    invocation TEXT
);
CREATE INDEX IF NOT EXISTS encryption_audit_by_network ON encryption_audit (network, at);
CREATE TABLE IF NOT EXISTS space_usage (
    space TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sql_generation (
    space TEXT NOT NULL,
    db TEXT NOT NULL,
    generation INTEGER NOT NULL,
    snapshot_inline BLOB,
    snapshot_hash BLOB,
    snapshot_len INTEGER NOT NULL,
    db_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (space, db)
);
CREATE TABLE IF NOT EXISTS blob_ref (
    hash BLOB PRIMARY KEY,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_gc (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sql_segment (
    space TEXT NOT NULL,
    db TEXT NOT NULL,
    seq INTEGER NOT NULL,
    inline_bytes BLOB,
    hash BLOB,
    len INTEGER NOT NULL,
    PRIMARY KEY (space, db, seq)
);
CREATE TABLE IF NOT EXISTS signed_kv_ticket (
    id_hash BLOB PRIMARY KEY,
    space TEXT NOT NULL,
    path TEXT NOT NULL,
    issuer TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    proofs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS signed_kv_ticket_by_space ON signed_kv_ticket (space, issuer, expires_at);
CREATE INDEX IF NOT EXISTS signed_kv_ticket_by_expiry ON signed_kv_ticket (expires_at);
"#;

/// The SQLite index store.
pub struct SqliteIndex {
    jobs: Mutex<mpsc::Sender<Job>>,
    replay: Arc<ReplayLog>,
    heads: HeadCache,
    bus: tokio::sync::broadcast::Sender<Arc<StoredEvent>>,
    garbage: Arc<tokio::sync::Notify>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
}

fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings an index written by an older version up to the current schema version.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        // Version 1 counts the KV heads per blob; older indexes never did.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM blob_ref;
             INSERT INTO blob_ref (hash, refs)
                 SELECT hash, count(*) FROM kv WHERE inline_value IS NULL GROUP BY hash;
             PRAGMA user_version = 1;",
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn writer_loop(mut conn: Connection, jobs: mpsc::Receiver<Job>, replay: Arc<ReplayLog>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "cannot begin write transaction");
                // Jobs were never run: report the failure without running them.
                drop(batch);
                continue;
            }
        };
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&tx)).collect();
        let committing = std::time::Instant::now();
        // The nonces of the invocations behind these writes reach the disk first: a write that
        // survives a power loss must never be replayable.
        let err = match replay.sync() {
            Err(e) => {
                tracing::error!(error = %e, "replay log sync failed; write batch rolled back");
                drop(tx);
                Some(e.to_string())
            }
            Ok(()) => tx.commit().err().map(|e| {
                tracing::error!(error = %e, "write batch commit failed");
                e.to_string()
            }),
        };
        crate::telemetry::store_commit(committing.elapsed());
        for c in completions {
            c(err.clone());
        }
    }
}

impl SqliteIndex {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = open(path, false)?;
        writer.execute_batch(SCHEMA)?;
        writer.execute_batch(QUOTA_SCHEMA)?;
        migrate(&mut writer)?;
        migrate_hooks_and_audit(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open(path, true)?);
        }
        let now_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let replay = Arc::new(ReplayLog::open(&path.with_file_name("replay.log"), now_ms)?);
        let (tx, rx) = mpsc::channel::<Job>();
        let synced = replay.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, synced))?;
        Ok(SqliteIndex {
            jobs: Mutex::new(tx),
            replay,
            heads: HeadCache::new(32 * 1024 * 1024),
            bus: tokio::sync::broadcast::channel(EVENT_BUS).0,
            garbage: Arc::default(),
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` in the next group-committed transaction; resolves after the commit is durable.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |tx: &Transaction<'_>| {
            let result = (|| {
                tx.execute_batch("SAVEPOINT job")?;
                let r = f(tx);
                if r.is_ok() {
                    tx.execute_batch("RELEASE job")?;
                } else {
                    tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                }
                r
            })();
            Box::new(move |commit_error: Option<String>| {
                let out = match commit_error {
                    Some(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                    None => result,
                };
                let _ = reply.send(out);
            })
        });
        self.jobs
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("writer thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("write was dropped".into()))?
    }

    /// Runs `f` on a read-only connection.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => open(&path, true)?,
            };
            let r = f(&conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < READERS {
                    p.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

fn encode_metadata(m: &[(String, String)]) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "[]".into())
}

fn decode_metadata(s: &str) -> StoreResult<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("kv metadata: {e}")))
}

fn hash_from(v: Vec<u8>) -> StoreResult<Hash> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

/// The columns of a `kv` row, before decoding.
struct RawEntry {
    hash: Vec<u8>,
    size: i64,
    metadata: String,
    updated_at: i64,
    inline: Option<Vec<u8>>,
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        hash: row.get(0)?,
        size: row.get(1)?,
        metadata: row.get(2)?,
        updated_at: row.get(3)?,
        inline: row.get(4)?,
    })
}

fn to_entry(raw: RawEntry) -> StoreResult<KvEntry> {
    let RawEntry {
        hash,
        size,
        metadata,
        updated_at,
        inline,
    } = raw;
    Ok(KvEntry {
        hash: hash_from(hash)?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
        metadata: decode_metadata(&metadata)?,
        updated_at,
        location: match inline {
            Some(b) => ValueLocation::Inline(Bytes::from(b)),
            None => ValueLocation::Blob,
        },
    })
}

/// A key's current head: hash, size, and whether the value lives in the blob store.
struct Head {
    hash: Hash,
    size: u64,
    blob: bool,
}

fn current(tx: &Connection, space: &str, key: &str) -> StoreResult<Option<Head>> {
    let row: Option<(Vec<u8>, i64, bool)> = tx
        .query_row(
            "SELECT hash, size, inline_value IS NULL FROM kv WHERE space = ?1 AND key = ?2",
            params![space, key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(h, s, blob)| {
        Ok(Head {
            hash: hash_from(h)?,
            size: u64::try_from(s).unwrap_or(0),
            blob,
        })
    })
    .transpose()
}

/// One more head points at `hash`; it is no longer garbage.
fn blob_ref(tx: &Connection, hash: &Hash) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO blob_ref (hash, refs) VALUES (?1, 1)
         ON CONFLICT (hash) DO UPDATE SET refs = refs + 1",
        params![hash.as_slice()],
    )?;
    tx.execute(
        "DELETE FROM blob_gc WHERE hash = ?1",
        params![hash.as_slice()],
    )?;
    Ok(())
}

/// One head fewer points at `hash`; at zero the blob is queued as garbage (true).
fn blob_unref(tx: &Connection, hash: &Hash) -> StoreResult<bool> {
    let refs: Option<i64> = tx
        .query_row(
            "UPDATE blob_ref SET refs = refs - 1 WHERE hash = ?1 RETURNING refs",
            params![hash.as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    if refs.is_none_or(|n| n <= 0) {
        tx.execute(
            "DELETE FROM blob_ref WHERE hash = ?1",
            params![hash.as_slice()],
        )?;
        queue_garbage(tx, hash)?;
        return Ok(true);
    }
    Ok(false)
}

/// Queues `hash` for deletion (no-op if queued already).
fn queue_garbage(tx: &Connection, hash: &Hash) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO blob_gc (hash) VALUES (?1) ON CONFLICT (hash) DO NOTHING",
        params![hash.as_slice()],
    )?;
    Ok(())
}

/// Queues an uploaded blob that no head points at (its put was refused); true if queued.
fn queue_if_unreferenced(tx: &Connection, hash: &Hash) -> StoreResult<bool> {
    let referenced: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM blob_ref WHERE hash = ?1)",
        params![hash.as_slice()],
        |r| r.get(0),
    )?;
    if !referenced {
        queue_garbage(tx, hash)?;
    }
    Ok(!referenced)
}

fn usage_of(tx: &Connection, space: &str) -> StoreResult<u64> {
    let used: Option<i64> = tx
        .query_row(
            "SELECT bytes FROM space_usage WHERE space = ?1",
            params![space],
            |r| r.get(0),
        )
        .optional()?;
    Ok(used.and_then(|u| u64::try_from(u).ok()).unwrap_or(0))
}

fn add_usage(tx: &Connection, space: &str, delta: i64) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO space_usage (space, bytes) VALUES (?1, max(?2, 0))
         ON CONFLICT (space) DO UPDATE SET bytes = max(bytes + ?2, 0)",
        params![space, delta],
    )?;
    Ok(())
}

/// The columns of a `delegation` row, before decoding.
struct RawDelegation {
    cid: String,
    issuer: String,
    delegatee: String,
    not_before: Option<i64>,
    expiration: Option<i64>,
    terminal: bool,
    parents: String,
    att: String,
    header: String,
}

/// Per-space quota overrides (`quota::QuotaStore`).
const QUOTA_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS quota_override (
    space TEXT PRIMARY KEY,
    limit_bytes INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#;

const DELEGATION_COLUMNS: &str =
    "cid, issuer, delegatee, not_before, expiration, terminal, parents, att, header";

fn read_delegation(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelegation> {
    Ok(RawDelegation {
        cid: row.get(0)?,
        issuer: row.get(1)?,
        delegatee: row.get(2)?,
        not_before: row.get(3)?,
        expiration: row.get(4)?,
        terminal: row.get::<_, i64>(5)? == 1,
        parents: row.get(6)?,
        att: row.get(7)?,
        header: row.get(8)?,
    })
}

impl RawDelegation {
    /// Rebuilds the verified chain facts (they were verified before being stored).
    fn decode(self) -> StoreResult<StoredDelegation> {
        let cid = self.cid;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("delegation {cid}: {what}: {e}"))
        };
        let parents: Vec<String> =
            serde_json::from_str(&self.parents).map_err(|e| corrupt("parents", &e))?;
        let parents = parents
            .iter()
            .map(|p| parse_cid(p).map_err(|e| corrupt("parent", &e)))
            .collect::<StoreResult<Vec<_>>>()?;
        let att_json: serde_json::Value =
            serde_json::from_str(&self.att).map_err(|e| corrupt("att", &e))?;
        let att = att_from_json(&att_json).map_err(|e| corrupt("att", &e))?;
        let capabilities = capabilities_from_att(&att).map_err(|e| corrupt("capabilities", &e))?;
        let spaces = capabilities
            .iter()
            .filter_map(|c| c.resource.space().map(|s| s.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(StoredDelegation {
            info: DelegationInfo {
                cid: parse_cid(&cid).map_err(|e| corrupt("cid", &e))?,
                // Derived from the stored token (verified when registered); a row stored before
                // decoding became canonical-only keeps its CID as its identity.
                authority: tinycloud_auth::token::authority_of_header(&self.header)
                    .unwrap_or(parse_cid(&cid).map_err(|e| corrupt("cid", &e))?),
                issuer: self.issuer.parse().map_err(|e| corrupt("issuer", &e))?,
                delegatee: self
                    .delegatee
                    .parse()
                    .map_err(|e| corrupt("delegatee", &e))?,
                not_before: self.not_before.map(Timestamp::from_millis),
                expiration: self.expiration.map(Timestamp::from_millis),
                parents,
                capabilities,
                terminal: self.terminal,
            },
            header: self.header,
            spaces,
        })
    }
}

/// Appends an event inside the caller's transaction; prunes the log to [`EVENT_LOG_LEN`].
fn append_event_tx(tx: &Connection, d: EventDraft) -> StoreResult<StoredEvent> {
    let last: Option<i64> = tx.query_row(
        "SELECT max(seq) FROM hook_event WHERE space = ?1",
        params![d.space],
        |r| r.get(0),
    )?;
    let seq = last.unwrap_or(0) + 1;
    tx.execute(
        "INSERT INTO hook_event (space, seq, service, ability, path, actor, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![d.space, seq, d.service, d.ability, d.path, d.actor, d.timestamp_ms],
    )?;
    let keep = i64::try_from(EVENT_LOG_LEN).unwrap_or(i64::MAX);
    if seq % 256 == 0 && seq > keep {
        tx.execute(
            "DELETE FROM hook_event WHERE space = ?1 AND seq <= ?2",
            params![d.space, seq - keep],
        )?;
    }
    Ok(StoredEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        draft: d,
    })
}

impl SqliteIndex {
    fn publish(&self, event: Option<StoredEvent>) {
        if let Some(e) = event {
            // No receiver is fine: nobody is watching.
            let _ = self.bus.send(Arc::new(e));
        }
    }
}

/// Writes one KV head (its checks passed): blob references, the row, usage and the event.
/// Returns the logged event and whether an old blob became garbage.
fn apply_kv_put(
    tx: &Transaction<'_>,
    put: KvPut,
    existing: Option<Head>,
) -> StoreResult<(Option<StoredEvent>, bool)> {
    let e = &put.entry;
    let old = existing.as_ref().map_or(0, |h| h.size);
    if e.location == ValueLocation::Blob {
        blob_ref(tx, &e.hash)?;
    }
    let mut garbage = false;
    if let Some(old) = existing.as_ref().filter(|h| h.blob) {
        garbage = blob_unref(tx, &old.hash)?;
    }
    let inline = match &e.location {
        ValueLocation::Inline(b) => Some(b.to_vec()),
        ValueLocation::Blob => None,
    };
    tx.execute(
        "INSERT INTO kv (space, key, hash, size, metadata, updated_at, inline_value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (space, key) DO UPDATE SET hash = ?3, size = ?4, metadata = ?5,
                     updated_at = ?6, inline_value = ?7",
        params![
            put.space,
            put.key,
            e.hash.as_slice(),
            i64::try_from(e.size).unwrap_or(i64::MAX),
            encode_metadata(&e.metadata),
            e.updated_at,
            inline
        ],
    )?;
    let delta = i64::try_from(e.size).unwrap_or(i64::MAX) - i64::try_from(old).unwrap_or(0);
    add_usage(tx, &put.space, delta)?;
    let event = put.event.map(|d| append_event_tx(tx, d)).transpose()?;
    Ok((event, garbage))
}

/// A KV write's outcome, its logged event, and whether it queued a garbage blob.
type KvWrite = (WriteOutcome, Option<StoredEvent>, bool);

/// Uncached KV access; the trait methods put the head cache in front.
impl SqliteIndex {
    async fn kv_get_uncached(&self, space: &str, key: &str) -> StoreResult<Option<KvEntry>> {
        let (space, key) = (space.to_owned(), key.to_owned());
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT hash, size, metadata, updated_at, inline_value FROM kv WHERE space = ?1 AND key = ?2",
                    params![space, key],
                    row_to_entry,
                )
                .optional()?;
            row.map(to_entry).transpose()
        })
        .await
    }

    async fn kv_put_uncached(&self, put: KvPut) -> StoreResult<KvWrite> {
        self.write(move |tx| {
            let existing = current(tx, &put.space, &put.key)?;
            let e = &put.entry;
            let is_blob = e.location == ValueLocation::Blob;
            let refused = match (put.precondition, &existing) {
                (Precondition::Absent, Some(_)) | (Precondition::Matches(_), None) => {
                    Some(WriteOutcome::PreconditionFailed)
                }
                (Precondition::Matches(h), Some(cur)) if h != cur.hash => {
                    Some(WriteOutcome::PreconditionFailed)
                }
                _ => None,
            };
            let old = existing.as_ref().map_or(0, |h| h.size);
            let refused = refused.or(match put.limit {
                Some(limit) => {
                    let used = usage_of(tx, &put.space)?;
                    (used.saturating_sub(old).saturating_add(e.size) > limit)
                        .then_some(WriteOutcome::QuotaExceeded { used, limit })
                }
                None => None,
            });
            if let Some(outcome) = refused {
                // The upload is stored but nothing may point at it: garbage unless shared.
                let garbage = is_blob && queue_if_unreferenced(tx, &e.hash)?;
                return Ok((outcome, None, garbage));
            }
            let (event, garbage) = apply_kv_put(tx, put, existing)?;
            Ok((WriteOutcome::Done(None), event, garbage))
        })
        .await
    }

    /// Several puts in one space in one transaction: all or nothing (no preconditions; the
    /// storage limit is checked against the batch as a whole).
    async fn kv_put_many_uncached(
        &self,
        puts: Vec<KvPut>,
    ) -> StoreResult<(WriteOutcome, Vec<StoredEvent>, bool)> {
        self.write(move |tx| {
            let mut existing = Vec::with_capacity(puts.len());
            for p in &puts {
                existing.push(current(tx, &p.space, &p.key)?);
            }
            let limit = puts.first().and_then(|p| p.limit);
            if let (Some(limit), Some(first)) = (limit, puts.first()) {
                let used = usage_of(tx, &first.space)?;
                let old: u64 = existing.iter().flatten().map(|h| h.size).sum();
                let new: u64 = puts.iter().map(|p| p.entry.size).sum();
                if used.saturating_sub(old).saturating_add(new) > limit {
                    let mut garbage = false;
                    for p in &puts {
                        if p.entry.location == ValueLocation::Blob {
                            garbage |= queue_if_unreferenced(tx, &p.entry.hash)?;
                        }
                    }
                    return Ok((WriteOutcome::QuotaExceeded { used, limit }, vec![], garbage));
                }
            }
            let mut events = Vec::new();
            let mut garbage = false;
            for (p, e) in puts.into_iter().zip(existing) {
                let (event, g) = apply_kv_put(tx, p, e)?;
                events.extend(event);
                garbage |= g;
            }
            Ok((WriteOutcome::Done(None), events, garbage))
        })
        .await
    }

    async fn kv_delete_uncached(
        &self,
        space: &str,
        key: &str,
        pre: Precondition,
        event: Option<EventDraft>,
    ) -> StoreResult<KvWrite> {
        let (space, key) = (space.to_owned(), key.to_owned());
        self.write(move |tx| {
            let Some(Head { hash, size, blob }) = current(tx, &space, &key)? else {
                return Ok((
                    match pre {
                        Precondition::Matches(_) => WriteOutcome::PreconditionFailed,
                        _ => WriteOutcome::NotFound,
                    },
                    None,
                    false,
                ));
            };
            if let Precondition::Matches(h) = pre {
                if h != hash {
                    return Ok((WriteOutcome::PreconditionFailed, None, false));
                }
            }
            tx.execute(
                "DELETE FROM kv WHERE space = ?1 AND key = ?2",
                params![space, key],
            )?;
            add_usage(tx, &space, -i64::try_from(size).unwrap_or(0))?;
            let garbage = blob && blob_unref(tx, &hash)?;
            let event = event.map(|d| append_event_tx(tx, d)).transpose()?;
            Ok((WriteOutcome::Done(Some(hash)), event, garbage))
        })
        .await
    }
}

#[async_trait]
impl IndexStore for SqliteIndex {
    async fn spaces(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id FROM space")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_space(&self, space: &str, owner: &str, now_ms: i64) -> StoreResult<()> {
        let (space, owner) = (space.to_owned(), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO space (id, owner, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![space, owner, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_delegation(
        &self,
        d: &StoredDelegation,
        charges: Vec<DelegationCharge>,
        now_ms: i64,
    ) -> StoreResult<DelegationWrite> {
        let bytes = d.charged_bytes();
        let i = &d.info;
        let cid = i.cid.to_string();
        let issuer = i.issuer.to_string();
        let delegatee = i.delegatee.to_string();
        let nbf = i.not_before.map(Timestamp::as_millis);
        let exp = i.expiration.map(Timestamp::as_millis);
        let terminal = i64::from(i.terminal);
        let parents = serde_json::to_string(
            &i.parents
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let att = att_to_json(&att_from_capabilities(&i.capabilities)).to_string();
        let header = d.header.clone();
        let spaces = d.spaces.clone();
        self.write(move |tx| {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM delegation WHERE cid = ?1)",
                params![cid],
                |r| r.get(0),
            )?;
            if known {
                return Ok(DelegationWrite::AlreadyStored);
            }
            // Checked before anything is written: a refused delegation leaves no row.
            for c in &charges {
                if let Some(limit) = c.limit {
                    let used = usage_of(tx, &c.space)?;
                    if used.saturating_add(bytes) > limit {
                        return Ok(DelegationWrite::QuotaExceeded {
                            space: c.space.clone(),
                            used,
                            limit,
                        });
                    }
                }
            }
            tx.execute(
                &format!(
                    "INSERT INTO delegation ({DELEGATION_COLUMNS}, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![cid, issuer, delegatee, nbf, exp, terminal, parents, att, header, now_ms],
            )?;
            for s in &spaces {
                tx.execute(
                    "INSERT INTO delegation_space (space, cid) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![s, cid],
                )?;
            }
            let charged = i64::try_from(bytes).unwrap_or(i64::MAX);
            for c in &charges {
                add_usage(tx, &c.space, charged)?;
                // What was charged where, so the sweep un-charges exactly that.
                tx.execute(
                    "INSERT INTO delegation_charge (cid, space, bytes) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    params![cid, c.space, charged],
                )?;
            }
            Ok(DelegationWrite::Stored)
        })
        .await
    }

    async fn delegation(&self, cid: &Cid) -> StoreResult<Option<StoredDelegation>> {
        let cid = cid.to_string();
        self.read(move |c| {
            let row = c
                .query_row(
                    &format!("SELECT {DELEGATION_COLUMNS} FROM delegation WHERE cid = ?1"),
                    params![cid],
                    read_delegation,
                )
                .optional()?;
            row.map(RawDelegation::decode).transpose()
        })
        .await
    }

    async fn delegations_for_space(&self, space: &str) -> StoreResult<Vec<StoredDelegation>> {
        let space = space.to_owned();
        self.read(move |c| {
            let cols = DELEGATION_COLUMNS
                .split(", ")
                .map(|col| format!("d.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT {cols} FROM delegation d JOIN delegation_space s ON s.cid = d.cid
                 WHERE s.space = ?1 ORDER BY d.created_at, d.cid"
            ))?;
            let rows = stmt.query_map(params![space], read_delegation)?;
            rows.map(|r| r?.decode()).collect()
        })
        .await
    }

    async fn sweep_delegations(
        &self,
        expired_before_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Cid>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let cids = {
                let mut stmt = tx.prepare(
                    "SELECT cid FROM delegation WHERE expiration IS NOT NULL AND expiration < ?1
                     ORDER BY expiration LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![expired_before_ms, limit], |r| {
                    r.get::<_, String>(0)
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let mut swept = Vec::with_capacity(cids.len());
            for cid in cids {
                let charges = {
                    let mut stmt =
                        tx.prepare("SELECT space, bytes FROM delegation_charge WHERE cid = ?1")?;
                    let rows = stmt.query_map(params![cid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?;
                    rows.collect::<Result<Vec<_>, _>>()?
                };
                for (space, bytes) in charges {
                    add_usage(tx, &space, bytes.saturating_neg())?;
                }
                tx.execute("DELETE FROM delegation_charge WHERE cid = ?1", params![cid])?;
                tx.execute("DELETE FROM delegation_space WHERE cid = ?1", params![cid])?;
                tx.execute("DELETE FROM delegation WHERE cid = ?1", params![cid])?;
                // Revocation rows stay: a revoked authority never comes back.
                match parse_cid(&cid) {
                    Ok(c) => swept.push(c),
                    Err(e) => tracing::warn!(cid = %cid, error = %e, "swept an unparseable delegation row"),
                }
            }
            Ok(swept)
        })
        .await
    }

    async fn account_delegations(
        &self,
        issuers: Vec<String>,
        delegatees: Vec<String>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<(StoredDelegation, i64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let list = |n: usize, from: usize| {
                if n == 0 {
                    // An empty set matches nothing.
                    "SELECT NULL WHERE 0".to_owned()
                } else {
                    (from..from + n)
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let (ni, nd) = (issuers.len(), delegatees.len());
            let base = ni + nd + 1;
            let sql = format!(
                "SELECT {DELEGATION_COLUMNS}, created_at FROM delegation
                 WHERE (issuer IN ({}) OR delegatee IN ({}))
                   AND (?{base} IS NULL OR created_at < ?{base}
                        OR (created_at = ?{base} AND cid > ?{}))
                 ORDER BY created_at DESC, cid ASC LIMIT ?{}",
                list(ni, 1),
                list(nd, ni + 1),
                base + 1,
                base + 2,
            );
            let mut values: Vec<rusqlite::types::Value> = issuers
                .into_iter()
                .chain(delegatees)
                .map(rusqlite::types::Value::Text)
                .collect();
            let (at, cid) = match after {
                Some((at, cid)) => (
                    rusqlite::types::Value::Integer(at),
                    rusqlite::types::Value::Text(cid),
                ),
                None => (rusqlite::types::Value::Null, rusqlite::types::Value::Null),
            };
            values.extend([at, cid, rusqlite::types::Value::Integer(limit)]);
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok((read_delegation(r)?, r.get::<_, i64>(9)?))
            })?;
            rows.map(|r| {
                let (raw, at) = r?;
                Ok((raw.decode()?, at))
            })
            .collect()
        })
        .await
    }

    async fn revocation(&self, cid: &Cid) -> StoreResult<Option<(String, i64)>> {
        let cid = cid.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT revoker, revoked_at FROM revocation WHERE cid = ?1",
                params![cid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn revoke(&self, cid: &Cid, revoker: &str, now_ms: i64) -> StoreResult<()> {
        let (cid, revoker) = (cid.to_string(), revoker.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO revocation (cid, revoker, revoked_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![cid, revoker, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoked(&self) -> StoreResult<Vec<Cid>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT cid FROM revocation")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| {
                let s = r?;
                parse_cid(&s).map_err(|e| StoreError::Corrupt(format!("revocation {s}: {e}")))
            })
            .collect()
        })
        .await
    }

    async fn consume_nonce(&self, nonce: Hash, expires_ms: i64, now_ms: i64) -> StoreResult<bool> {
        self.replay.consume(nonce, expires_ms, now_ms)
    }

    async fn sweep_nonces(&self, now_ms: i64) -> StoreResult<u64> {
        self.replay.compact(now_ms)
    }

    fn sync_nonces(&self) -> StoreResult<()> {
        self.replay.sync()
    }

    fn nonces_pending(&self) -> StoreResult<bool> {
        let (written, durable) = self.replay.durability()?;
        Ok(durable < written)
    }

    async fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<KvEntry>> {
        if let Some(hit) = self.heads.get(space, key) {
            return Ok(Some(hit));
        }
        let seq = self.heads.seq();
        let found = self.kv_get_uncached(space, key).await?;
        if let Some(e) = &found {
            self.heads.fill(space, key, e, seq);
        }
        Ok(found)
    }

    async fn kv_put(&self, put: KvPut) -> StoreResult<WriteOutcome> {
        let (space, key) = (put.space.clone(), put.key.clone());
        let out = self.kv_put_uncached(put).await;
        self.heads.invalidate(&space, &key);
        let (outcome, event, garbage) = out?;
        self.publish(event);
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_put_many(&self, puts: Vec<KvPut>) -> StoreResult<WriteOutcome> {
        let keys: Vec<(String, String)> = puts
            .iter()
            .map(|p| (p.space.clone(), p.key.clone()))
            .collect();
        let out = self.kv_put_many_uncached(puts).await;
        for (space, key) in &keys {
            self.heads.invalidate(space, key);
        }
        let (outcome, events, garbage) = out?;
        for e in events {
            self.publish(Some(e));
        }
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_delete(
        &self,
        space: &str,
        key: &str,
        pre: Precondition,
        event: Option<EventDraft>,
    ) -> StoreResult<WriteOutcome> {
        let out = self.kv_delete_uncached(space, key, pre, event).await;
        self.heads.invalidate(space, key);
        let (outcome, event, garbage) = out?;
        self.publish(event);
        if garbage {
            self.garbage.notify_one();
        }
        Ok(outcome)
    }

    async fn kv_list(
        &self,
        space: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        let (space, prefix, after) = (
            space.to_owned(),
            prefix.to_owned(),
            after.map(str::to_owned),
        );
        self.read(move |c| {
            // Raw byte-order prefix scan: `key >= prefix AND key < prefix-upper-bound` would
            // need an upper bound for arbitrary UTF-8; `substr` comparison is exact instead.
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => a.clone(),
                _ => prefix.clone(),
            };
            let op = if after.as_deref().is_some_and(|a| a >= prefix.as_str()) {
                ">"
            } else {
                ">="
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT key FROM kv WHERE space = ?1 AND key {op} ?2
                 AND substr(key, 1, length(?3)) = ?3 ORDER BY key LIMIT ?4"
            ))?;
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![space, start, prefix, fetch], |r| {
                r.get::<_, String>(0)
            })?;
            let mut keys = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let truncated = keys.len() > limit;
            keys.truncate(limit);
            Ok(KeyPage { keys, truncated })
        })
        .await
    }

    async fn usage(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| usage_of(c, &space)).await
    }

    async fn blob_garbage(&self, limit: usize) -> StoreResult<Vec<(i64, Hash)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT id, hash FROM blob_gc ORDER BY id LIMIT ?1")?;
            let rows = st.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|r| {
                let (id, h) = r?;
                Ok((id, hash_from(h)?))
            })
            .collect()
        })
        .await
    }

    async fn blob_garbage_queued(&self, ids: Vec<i64>) -> StoreResult<Vec<i64>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blob_gc WHERE id = ?1)")?;
            let mut out = Vec::new();
            for id in ids {
                if st.query_row(params![id], |r| r.get::<_, bool>(0))? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn blob_collected(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.write(move |tx| {
            let mut st = tx.prepare_cached("DELETE FROM blob_gc WHERE id = ?1")?;
            for id in ids {
                st.execute(params![id])?;
            }
            Ok(())
        })
        .await
    }

    async fn queue_orphans(&self, hashes: Vec<Hash>) -> StoreResult<usize> {
        self.write(move |tx| {
            let mut sql_pieces = std::collections::HashSet::new();
            {
                let mut st = tx.prepare(
                    "SELECT snapshot_hash FROM sql_generation WHERE snapshot_hash IS NOT NULL
                     UNION SELECT hash FROM sql_segment WHERE hash IS NOT NULL",
                )?;
                for h in st.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
                    sql_pieces.insert(h?);
                }
            }
            let mut queued = 0;
            for h in hashes {
                if sql_pieces.contains(h.as_slice()) {
                    continue;
                }
                let referenced: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM blob_ref WHERE hash = ?1)",
                    params![h.as_slice()],
                    |r| r.get(0),
                )?;
                if !referenced {
                    queued += tx.execute(
                        "INSERT INTO blob_gc (hash) VALUES (?1) ON CONFLICT (hash) DO NOTHING",
                        params![h.as_slice()],
                    )?;
                }
            }
            Ok(queued)
        })
        .await
    }

    fn garbage_signal(&self) -> Arc<tokio::sync::Notify> {
        self.garbage.clone()
    }

    async fn append_event(&self, draft: EventDraft) -> StoreResult<StoredEvent> {
        let ev = self.write(move |tx| append_event_tx(tx, draft)).await?;
        self.publish(Some(ev.clone()));
        Ok(ev)
    }

    async fn events_after(
        &self,
        space: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, service, ability, path, actor, ts FROM hook_event
                 WHERE space = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    space,
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(StoredEvent {
                        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        draft: EventDraft {
                            space: space.clone(),
                            service: r.get(1)?,
                            ability: r.get(2)?,
                            path: r.get(3)?,
                            actor: r.get(4)?,
                            timestamp_ms: r.get(5)?,
                        },
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn first_event(&self, space: &str) -> StoreResult<Option<u64>> {
        let space = space.to_owned();
        self.read(move |c| {
            let v: Option<i64> = c.query_row(
                "SELECT min(seq) FROM hook_event WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(v.and_then(|x| u64::try_from(x).ok()))
        })
        .await
    }

    async fn last_event(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| {
            let v: Option<i64> = c.query_row(
                "SELECT max(seq) FROM hook_event WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(v.and_then(|x| u64::try_from(x).ok()).unwrap_or(0))
        })
        .await
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<StoredEvent>> {
        self.bus.subscribe()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

const WEBHOOK_COLUMNS: &str = "id, space, service, path_prefix, abilities, callback_url, sealed_secret, subscriber, active, created_at, cursor, attempts, next_attempt_at, proofs, expires_at, disabled_reason";

/// Delivery history rows kept per webhook (the newest).
const MAX_DELIVERY_ROWS: i64 = 1000;
/// Inactive webhooks kept per space (the newest), with their delivery history.
const MAX_INACTIVE_WEBHOOKS: i64 = 100;

/// Schema additions of the webhook and audit tables, applied to databases created before them:
/// the proofs a webhook rests on (rows without them are never delivered to), its expiry and
/// why it was disabled; per-network audit row counts (for retention) and an index for the
/// per-actor bound on refused-decision records.
fn migrate_hooks_and_audit(conn: &Connection) -> StoreResult<()> {
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    for (column, ty) in [
        ("proofs", "TEXT"),
        ("expires_at", "INTEGER"),
        ("disabled_reason", "TEXT"),
    ] {
        if !has_column("webhook", column)? {
            conn.execute_batch(&format!("ALTER TABLE webhook ADD COLUMN {column} {ty}"))?;
        }
    }
    let counted: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'encryption_audit_count'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !counted {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE encryption_audit_count (network TEXT PRIMARY KEY, records INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO encryption_audit_count SELECT network, count(*) FROM encryption_audit GROUP BY network;
             COMMIT;",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS encryption_audit_by_actor ON encryption_audit (network, actor, at)",
    )?;
    Ok(())
}

fn read_webhook(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookRow> {
    let abilities: Option<String> = r.get(4)?;
    Ok(WebhookRow {
        id: r.get(0)?,
        space: r.get(1)?,
        service: r.get(2)?,
        path_prefix: r.get(3)?,
        abilities: abilities.and_then(|a| serde_json::from_str(&a).ok()),
        callback_url: r.get(5)?,
        sealed_secret: r.get(6)?,
        subscriber: r.get(7)?,
        active: r.get::<_, i64>(8)? == 1,
        created_at: r.get(9)?,
        cursor: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
        attempts: u32::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
        next_attempt_at: r.get(12)?,
        proofs: r
            .get::<_, Option<String>>(13)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        expires_at: r.get(14)?,
        disabled_reason: r.get(15)?,
    })
}

#[cfg(test)]
mod hooks_audit_tests {
    use super::*;

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
            c.execute_batch(SCHEMA).unwrap();
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
}

fn read_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        webhook: r.get(1)?,
        seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        status: r.get(3)?,
        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        last_status: r
            .get::<_, Option<i64>>(5)?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(6)?,
        at: r.get(7)?,
    })
}

#[async_trait]
impl WebhookStore for SqliteIndex {
    async fn create_webhook(&self, w: &WebhookRow, max_active: usize) -> StoreResult<bool> {
        let w = w.clone();
        self.write(move |tx| {
            let active: i64 = tx.query_row(
                "SELECT count(*) FROM webhook WHERE space = ?1 AND active = 1",
                params![w.space],
                |r| r.get(0),
            )?;
            if usize::try_from(active).unwrap_or(usize::MAX) >= max_active {
                return Ok(false);
            }
            // Reclaim: a space keeps the newest inactive (unregistered or disabled) webhooks
            // and their histories only up to a bound.
            tx.execute(
                "DELETE FROM webhook_delivery WHERE webhook IN (
                     SELECT id FROM webhook WHERE space = ?1 AND active = 0
                     ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2)",
                params![w.space, MAX_INACTIVE_WEBHOOKS],
            )?;
            tx.execute(
                "DELETE FROM webhook WHERE id IN (
                     SELECT id FROM webhook WHERE space = ?1 AND active = 0
                     ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2)",
                params![w.space, MAX_INACTIVE_WEBHOOKS],
            )?;
            let abilities = w.abilities.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default());
            let proofs = match &w.proofs {
                Some(p) => Some(serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?),
                None => None,
            };
            tx.execute(
                &format!("INSERT INTO webhook ({WEBHOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                params![
                    w.id, w.space, w.service, w.path_prefix, abilities, w.callback_url, w.sealed_secret,
                    w.subscriber, i64::from(w.active), w.created_at,
                    i64::try_from(w.cursor).unwrap_or(i64::MAX), i64::from(w.attempts), w.next_attempt_at,
                    proofs, w.expires_at, w.disabled_reason
                ],
            )?;
            Ok(true)
        })
        .await
    }

    async fn webhooks(&self, space: &str) -> StoreResult<Vec<WebhookRow>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE space = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map(params![space], read_webhook)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRow>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE id = ?1"),
                params![id],
                read_webhook,
            )
            .optional()?)
        })
        .await
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<WebhookRow>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE active = 1"
            ))?;
            let rows = st.query_map([], read_webhook)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn deactivate_webhook(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            Ok(tx.execute("UPDATE webhook SET active = 0 WHERE id = ?1", params![id])? == 1)
        })
        .await
    }

    async fn disable_webhook(&self, id: &str, reason: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        let reason = reason.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE webhook SET active = 0, disabled_reason = ?2 WHERE id = ?1 AND active = 1",
                params![id, reason],
            )? == 1)
        })
        .await
    }

    async fn advance_webhook(&self, id: &str, cursor: u64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook SET cursor = max(cursor, ?2), attempts = 0, next_attempt_at = 0 WHERE id = ?1",
                params![id, i64::try_from(cursor).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_webhook(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: i64,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook SET attempts = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, i64::from(attempts), next_attempt_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_delivery(&self, d: &DeliveryRow) -> StoreResult<()> {
        let d = d.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO webhook_delivery (id, webhook, seq, status, attempts, last_status, last_error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET status = ?4, attempts = ?5, last_status = ?6, last_error = ?7, at = ?8",
                params![
                    d.id, d.webhook, i64::try_from(d.seq).unwrap_or(i64::MAX), d.status, i64::from(d.attempts),
                    d.last_status.map(i64::from), d.last_error, d.at
                ],
            )?;
            // Reclaim: keep the newest deliveries of a webhook (trimmed in batches).
            let kept: i64 = tx.query_row(
                "SELECT count(*) FROM webhook_delivery WHERE webhook = ?1",
                params![d.webhook],
                |r| r.get(0),
            )?;
            if kept > MAX_DELIVERY_ROWS + MAX_DELIVERY_ROWS / 10 {
                tx.execute(
                    "DELETE FROM webhook_delivery WHERE id IN (
                         SELECT id FROM webhook_delivery WHERE webhook = ?1
                         ORDER BY at, seq LIMIT ?2)",
                    params![d.webhook, kept - MAX_DELIVERY_ROWS],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, webhook: &str, limit: usize) -> StoreResult<Vec<DeliveryRow>> {
        let webhook = webhook.to_owned();
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, webhook, seq, status, attempts, last_status, last_error, at FROM webhook_delivery
                 WHERE webhook = ?1 ORDER BY at DESC, seq DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![webhook, i64::try_from(limit).unwrap_or(i64::MAX)], read_delivery)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

const NETWORK_COLUMNS: &str =
    "id, owner, name, state, public_key, sealed_private, key_version, created_at, updated_at";

fn read_network(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        public_key: r.get(4)?,
        sealed_private: r.get(5)?,
        key_version: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

#[async_trait]
impl EncryptionStore for SqliteIndex {
    async fn create_network(&self, n: &NetworkRow) -> StoreResult<bool> {
        let n = n.clone();
        self.write(move |tx| {
            let inserted = tx.execute(
                &format!("INSERT INTO encryption_network ({NETWORK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING"),
                params![n.id, n.owner, n.name, n.state, n.public_key, n.sealed_private, i64::from(n.key_version), n.created_at, n.updated_at],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn network(&self, id: &str) -> StoreResult<Option<NetworkRow>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {NETWORK_COLUMNS} FROM encryption_network WHERE id = ?1"),
                params![id],
                read_network,
            )
            .optional()?)
        })
        .await
    }

    async fn revoke_network(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE encryption_network SET state = 'revoked', updated_at = ?2 WHERE id = ?1",
                params![id, now_ms],
            )? == 1)
        })
        .await
    }

    async fn audit(&self, a: &AuditRow, bounds: AuditBounds) -> StoreResult<bool> {
        let a = a.clone();
        self.write(move |tx| {
            if a.outcome != "allowed" {
                let recent: i64 = tx.query_row(
                    "SELECT count(*) FROM encryption_audit
                     WHERE network = ?1 AND actor = ?2 AND at > ?3 AND outcome <> 'allowed'",
                    params![a.network, a.actor, bounds.now_ms.saturating_sub(bounds.window_ms)],
                    |r| r.get(0),
                )?;
                if u64::try_from(recent).unwrap_or(u64::MAX) >= bounds.denied_per_actor {
                    return Ok(false);
                }
            }
            let delegations = serde_json::to_string(&a.delegations)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO encryption_audit (network, at, actor, outcome, envelope_hash, delegations, invocation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.network, a.at, a.actor, a.outcome, a.envelope_hash, delegations, a.invocation],
            )?;
            let records: i64 = tx.query_row(
                "INSERT INTO encryption_audit_count (network, records) VALUES (?1, 1)
                 ON CONFLICT (network) DO UPDATE SET records = records + 1 RETURNING records",
                params![a.network],
                |r| r.get(0),
            )?;
            let max = i64::try_from(bounds.max_rows.max(1)).unwrap_or(i64::MAX);
            if records > max {
                let excess = records - max;
                tx.execute(
                    "DELETE FROM encryption_audit WHERE rowid IN (
                         SELECT rowid FROM encryption_audit WHERE network = ?1
                         ORDER BY at, rowid LIMIT ?2)",
                    params![a.network, excess],
                )?;
                tx.execute(
                    "UPDATE encryption_audit_count SET records = ?2 WHERE network = ?1",
                    params![a.network, max],
                )?;
            }
            Ok(true)
        })
        .await
    }

    async fn audit_log(
        &self,
        network: &str,
        before: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<AuditRow>> {
        let network = network.to_owned();
        let (at, seq) = before.unwrap_or((i64::MAX, i64::MAX));
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT network, actor, outcome, envelope_hash, delegations, invocation, at, rowid FROM encryption_audit
                 WHERE network = ?1 AND (at, rowid) < (?2, ?3) ORDER BY at DESC, rowid DESC LIMIT ?4",
            )?;
            let rows = st.query_map(
                params![network, at, seq, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    let d: String = r.get(4)?;
                    Ok(AuditRow {
                        seq: r.get(7)?,
                        network: r.get(0)?,
                        actor: r.get(1)?,
                        outcome: r.get(2)?,
                        envelope_hash: r.get(3)?,
                        delegations: serde_json::from_str(&d).unwrap_or_default(),
                        invocation: r.get(5)?,
                        at: r.get(6)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

/// Splits log bytes into the (inline, hash, len) columns.
const TICKET_COLUMNS: &str =
    "id_hash, space, path, issuer, content_hash, proofs, created_at, expires_at";

fn read_ticket(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, SignedTicketRaw)> {
    Ok((
        r.get(0)?,
        SignedTicketRaw {
            space: r.get(1)?,
            path: r.get(2)?,
            issuer: r.get(3)?,
            content_hash: r.get(4)?,
            proofs: r.get(5)?,
            created_at: r.get(6)?,
            expires_at: r.get(7)?,
        },
    ))
}

struct SignedTicketRaw {
    space: String,
    path: String,
    issuer: String,
    content_hash: Vec<u8>,
    proofs: String,
    created_at: i64,
    expires_at: i64,
}

#[async_trait]
impl TicketStore for SqliteIndex {
    async fn create_signed_ticket(
        &self,
        t: &SignedTicketRow,
        bounds: TicketBounds,
    ) -> StoreResult<bool> {
        let t = t.clone();
        let proofs =
            serde_json::to_string(&t.proofs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(move |tx| {
            // Reclaim first: a space's expired tickets never count against it.
            tx.execute(
                "DELETE FROM signed_kv_ticket WHERE space = ?1 AND expires_at <= ?2",
                params![t.space, bounds.now_ms],
            )?;
            let live: i64 = tx.query_row(
                "SELECT count(*) FROM signed_kv_ticket WHERE space = ?1",
                params![t.space],
                |r| r.get(0),
            )?;
            let mine: i64 = tx.query_row(
                "SELECT count(*) FROM signed_kv_ticket WHERE space = ?1 AND issuer = ?2",
                params![t.space, t.issuer],
                |r| r.get(0),
            )?;
            let over = |n: i64, max: u64| u64::try_from(n).unwrap_or(u64::MAX) >= max;
            if over(live, bounds.per_space) || over(mine, bounds.per_issuer) {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO signed_kv_ticket ({TICKET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id_hash.as_slice(),
                    t.space,
                    t.path,
                    t.issuer,
                    t.content_hash.as_slice(),
                    proofs,
                    t.created_at,
                    t.expires_at
                ],
            )?;
            Ok(true)
        })
        .await
    }

    async fn signed_ticket(&self, id_hash: &Hash) -> StoreResult<Option<SignedTicketRow>> {
        let id = id_hash.to_vec();
        let raw = self
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM signed_kv_ticket WHERE id_hash = ?1"),
                    params![id],
                    read_ticket,
                )
                .optional()?)
            })
            .await?;
        let Some((id, raw)) = raw else {
            return Ok(None);
        };
        let proofs: Vec<String> =
            serde_json::from_str(&raw.proofs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(SignedTicketRow {
            id_hash: hash_from(id)?,
            space: raw.space,
            path: raw.path,
            issuer: raw.issuer,
            content_hash: hash_from(raw.content_hash)?,
            proofs,
            created_at: raw.created_at,
            expires_at: raw.expires_at,
        }))
    }

    async fn sweep_signed_tickets(&self, now_ms: i64, limit: usize) -> StoreResult<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM signed_kv_ticket WHERE id_hash IN (
                     SELECT id_hash FROM signed_kv_ticket WHERE expires_at <= ?1
                     ORDER BY expires_at LIMIT ?2)",
                params![now_ms, limit],
            )?)
        })
        .await
    }
}

fn log_columns(b: &LogBytes) -> (Option<&[u8]>, Option<&[u8]>, i64) {
    match b {
        LogBytes::Inline(v) => (Some(v), None, i64::try_from(v.len()).unwrap_or(i64::MAX)),
        LogBytes::Blob(h, len) => (None, Some(h), i64::try_from(*len).unwrap_or(i64::MAX)),
    }
}

fn log_bytes(inline: Option<Vec<u8>>, hash: Option<Vec<u8>>, len: i64) -> StoreResult<LogBytes> {
    match (inline, hash) {
        (Some(v), None) => Ok(LogBytes::Inline(v)),
        (None, Some(h)) => Ok(LogBytes::Blob(
            hash_from(h)?,
            u64::try_from(len)
                .map_err(|_| StoreError::Corrupt("negative SQL log length".into()))?,
        )),
        _ => Err(StoreError::Corrupt(
            "SQL log piece is neither inline nor a blob".into(),
        )),
    }
}

fn blob_of(b: &LogBytes) -> Option<Hash> {
    match b {
        LogBytes::Blob(h, _) => Some(*h),
        LogBytes::Inline(_) => None,
    }
}

#[async_trait]
impl SqlLogStore for SqliteIndex {
    async fn sql_log(&self, space: &str, db: &str) -> StoreResult<Option<SqlLog>> {
        let (space, db) = (space.to_owned(), db.to_owned());
        self.read(move |c| {
            // One read transaction: the generation and its segments from the same commit.
            let c = c.unchecked_transaction()?;
            let head = c
                .query_row(
                    "SELECT generation, snapshot_inline, snapshot_hash, snapshot_len FROM sql_generation
                     WHERE space = ?1 AND db = ?2",
                    params![space, db],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<Vec<u8>>>(1)?,
                            r.get::<_, Option<Vec<u8>>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((generation, inline, hash, len)) = head else {
                return Ok(None);
            };
            let mut st = c.prepare(
                "SELECT inline_bytes, hash, len FROM sql_segment WHERE space = ?1 AND db = ?2 ORDER BY seq",
            )?;
            let segments = st
                .query_map(params![space, db], |r| {
                    Ok((
                        r.get::<_, Option<Vec<u8>>>(0)?,
                        r.get::<_, Option<Vec<u8>>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .map(|row| {
                    let (i, h, l) = row?;
                    log_bytes(i, h, l)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(SqlLog {
                generation: u64::try_from(generation)
                    .map_err(|_| StoreError::Corrupt("negative SQL generation".into()))?,
                snapshot: log_bytes(inline, hash, len)?,
                segments,
            }))
        })
        .await
    }

    async fn sql_ship(&self, batch: Vec<SqlShipment>) -> StoreResult<Vec<Hash>> {
        self.write(move |tx| {
            let mut dropped = Vec::new();
            for s in &batch {
                dropped.extend(ship_one(tx, s)?);
            }
            Ok(dropped)
        })
        .await
    }

    async fn sql_usage(&self, space: &str) -> StoreResult<u64> {
        let space = space.to_owned();
        self.read(move |c| {
            let n: i64 = c.query_row(
                "SELECT COALESCE(SUM(db_bytes), 0) FROM sql_generation WHERE space = ?1",
                params![space],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn sql_databases(&self, space: &str) -> StoreResult<Vec<String>> {
        let space = space.to_owned();
        self.read(move |c| {
            let mut st = c.prepare("SELECT db FROM sql_generation WHERE space = ?1")?;
            let names = st
                .query_map(params![space], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }
}

/// Records one shipment inside the caller's transaction.
fn ship_one(tx: &Transaction<'_>, s: &SqlShipment) -> StoreResult<Vec<Hash>> {
    let generation = i64::try_from(s.generation)
        .map_err(|_| StoreError::Backend("SQL generation out of range".into()))?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT generation FROM sql_generation WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )
        .optional()?;
    let mut dropped = Vec::new();
    if let Some(snapshot) = &s.snapshot {
        // A new generation is built on exactly the stored log it names: the previous
        // generation with all its segments. Anything else means another writer moved on.
        let previous = generation - 1;
        let segments: i64 = tx.query_row(
            "SELECT COUNT(*) FROM sql_segment WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )?;
        let follows = match current {
            None => previous == 0,
            Some(g) => g == previous && u64::try_from(segments).ok() == Some(s.base_segments),
        };
        if !follows || s.seq != 0 {
            return Err(StoreError::Backend(format!(
                "SQL log of {}/{} moved on: generation {} does not follow the stored one",
                s.space, s.db, s.generation
            )));
        }
        if current.is_some() {
            let old: Option<Vec<u8>> = tx.query_row(
                "SELECT snapshot_hash FROM sql_generation WHERE space = ?1 AND db = ?2",
                params![s.space, s.db],
                |r| r.get(0),
            )?;
            dropped.extend(old.map(hash_from).transpose()?);
            let mut st = tx.prepare(
                "SELECT hash FROM sql_segment WHERE space = ?1 AND db = ?2 AND hash IS NOT NULL",
            )?;
            for h in st.query_map(params![s.space, s.db], |r| r.get::<_, Vec<u8>>(0))? {
                dropped.push(hash_from(h?)?);
            }
            tx.execute(
                "DELETE FROM sql_segment WHERE space = ?1 AND db = ?2",
                params![s.space, s.db],
            )?;
        }
        let (inline, hash, len) = log_columns(snapshot);
        tx.execute(
                    "INSERT INTO sql_generation (space, db, generation, snapshot_inline, snapshot_hash, snapshot_len)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (space, db) DO UPDATE SET generation = ?3, snapshot_inline = ?4,
                         snapshot_hash = ?5, snapshot_len = ?6",
                    params![s.space, s.db, generation, inline, hash, len],
                )?;
        // A blob the new generation still uses is not garbage.
        let keep: Vec<Hash> = blob_of(snapshot)
            .into_iter()
            .chain(blob_of(&s.segment))
            .collect();
        dropped.retain(|h| !keep.contains(h));
    } else {
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM sql_segment WHERE space = ?1 AND db = ?2",
            params![s.space, s.db],
            |r| r.get(0),
        )?;
        if current != Some(generation) || i64::try_from(s.seq).ok() != Some(next) {
            return Err(StoreError::Backend(format!(
                "SQL log of {}/{} moved on: segment {} of generation {} does not follow",
                s.space, s.db, s.seq, s.generation
            )));
        }
    }
    // A piece the log refers to is never garbage (an orphan sweep may have queued it).
    for h in s
        .snapshot
        .iter()
        .filter_map(blob_of)
        .chain(blob_of(&s.segment))
    {
        tx.execute("DELETE FROM blob_gc WHERE hash = ?1", params![h.as_slice()])?;
    }
    let (inline, hash, len) = log_columns(&s.segment);
    tx.execute(
                "INSERT INTO sql_segment (space, db, seq, inline_bytes, hash, len) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.space, s.db, i64::try_from(s.seq).unwrap_or(i64::MAX), inline, hash, len],
            )?;
    tx.execute(
        "UPDATE sql_generation SET db_bytes = ?3 WHERE space = ?1 AND db = ?2",
        params![s.space, s.db, i64::try_from(s.db_bytes).unwrap_or(i64::MAX)],
    )?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

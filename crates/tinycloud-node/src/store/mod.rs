//! Storage behind traits, one per concern, that a backend implements each on its own:
//!
//! - the index ([`IndexStore`] = [`SpaceStore`] + [`DelegationStore`] + [`NonceStore`] +
//!   [`KvStore`] + [`BlobIndex`] + [`EventLog`]): spaces and their usage, delegations and
//!   revocations, replay nonces, KV heads with small values inline, the garbage-blob queue and
//!   the per-space event log;
//! - [`WebhookStore`], [`EncryptionStore`], [`SqlLogStore`], [`TicketStore`] and
//!   [`quota::QuotaStore`]: the services' durable state;
//! - the [`BlobStore`] (content-addressed by BLAKE3, for values too large to keep inline).
//!
//! The embedded implementations are SQLite ([`sqlite::SqliteIndex`], every trait but the blob
//! store) and local files ([`fs_blobs::FsBlobStore`]); a PostgreSQL + S3 pair will implement
//! the same traits. Business logic never names a backend, and this module names no backend's
//! types: each backend maps its own errors into [`StoreError`] and keeps its own schema
//! migrations.
//!
//! Durability rule: a value's blob is durable before the index entry that points at it is
//! written, and a write is acknowledged only after the index commit is durable.
//!
//! Reclamation rule: the index counts the KV heads that point at each blob; the write that
//! drops a count to zero queues the blob as garbage in the same transaction, and the
//! [`blob_gc::BlobCollector`] deletes queued blobs off the write path (see there for why it
//! never deletes a blob a committed or in-flight head points at).

pub mod blob_gc;
pub mod fs_blobs;
pub mod head_cache;
pub mod quota;
pub mod replay_log;
pub mod sqlite;

use async_trait::async_trait;
use bytes::Bytes;
use tinycloud_auth::chain::DelegationInfo;
use tinycloud_auth::cid::Cid;

/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// Errors from a store. Each backend maps its own errors into these inside the backend (the
/// SQLite backend in `sqlite/error.rs`), so no caller ever sees a backend's error type. Every
/// variant is a server-side failure (HTTP 500 through `ApiError`); the detail goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, database, a busy or full disk, a refused log shipment).
    #[error("storage failure: {0}")]
    Backend(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The stored schema is not one this build can use (written by a newer version: there is
    /// no downgrade).
    #[error("incompatible stored schema: {0}")]
    Schema(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// A delegation as stored: its verified chain facts and the exact header it arrived in.
#[derive(Debug, Clone)]
pub struct StoredDelegation {
    /// Chain facts.
    pub info: DelegationInfo,
    /// The `Authorization` value (UCAN text or padded base64url CACAO).
    pub header: String,
    /// Spaces its capabilities name.
    pub spaces: Vec<String>,
}

/// A space whose storage quota a newly stored delegation is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationCharge {
    /// Space id (a space this node hosts).
    pub space: String,
    /// Its storage limit, if any.
    pub limit: Option<u64>,
}

/// What [`DelegationStore::put_delegation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationWrite {
    /// Stored now; its bytes were charged to every space of the charge list.
    Stored,
    /// Already stored (idempotent; nothing charged again).
    AlreadyStored,
    /// Not stored: its bytes would take `space` past its limit.
    QuotaExceeded {
        /// The space.
        space: String,
        /// Bytes in use there.
        used: u64,
        /// The limit.
        limit: u64,
    },
}

impl StoredDelegation {
    /// The bytes a stored delegation occupies, as charged to a space's quota: the token as
    /// received (the index also keeps its decoded facts, which are smaller).
    pub fn charged_bytes(&self) -> u64 {
        self.header.len() as u64
    }
}

/// Where a value's bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueLocation {
    /// Kept inline in the index.
    Inline(Bytes),
    /// In the blob store under the entry's hash.
    Blob,
}

/// The current head of one KV key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// BLAKE3 of the value.
    pub hash: Hash,
    /// Value length.
    pub size: u64,
    /// Stored metadata headers (lower-case name, value).
    pub metadata: Vec<(String, String)>,
    /// Unix ms of the write.
    pub updated_at: i64,
    /// Where the bytes are.
    pub location: ValueLocation,
}

/// A conditional-write requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Unconditional.
    None,
    /// The current value's hash must be this (`If-Match`).
    Matches(Hash),
    /// The key must not exist (`If-None-Match: *`).
    Absent,
}

/// A KV write request.
#[derive(Debug, Clone)]
pub struct KvPut {
    /// Space id.
    pub space: String,
    /// Key.
    pub key: String,
    /// New head.
    pub entry: KvEntry,
    /// Condition.
    pub precondition: Precondition,
    /// Space storage limit to enforce, if any.
    pub limit: Option<u64>,
    /// The write event to append to the space's log in the same transaction.
    pub event: Option<EventDraft>,
}

/// A write event before it gets its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// Space id.
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// The ability exercised (`tinycloud.kv/put`, …).
    pub ability: String,
    /// Key, or `<db>/<table>` for SQL.
    pub path: String,
    /// The invoker's DID.
    pub actor: String,
    /// Unix ms.
    pub timestamp_ms: i64,
}

/// A logged write event: never the value, only what changed where and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Monotonic per-space sequence number (from 1).
    pub seq: u64,
    /// The event.
    pub draft: EventDraft,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied; for deletes, the hash of the removed value.
    Done(Option<Hash>),
    /// The precondition did not hold.
    PreconditionFailed,
    /// The key does not exist (delete).
    NotFound,
    /// The write would exceed the space's storage limit.
    QuotaExceeded {
        /// Bytes in use before the write.
        used: u64,
        /// The limit.
        limit: u64,
    },
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// Whether more keys follow.
    pub truncated: bool,
}

/// The index, by concern. Each trait is implemented on its own by a backend (the embedded
/// [`sqlite::SqliteIndex`] implements all of them on one database; the PostgreSQL backend will
/// too), and [`IndexStore`] is the sum of them.
///
/// Why one combined handle and not one `Arc` per trait in `AppState`: the concerns are not
/// independent stores but one transactional index — a KV write updates its head, the space's
/// usage, the blob reference counts and the event log in one commit — so a deployment always
/// wires one backend behind all of them. Callers keep one field (`state.index`, the door's
/// `index`) whose methods are those of every concern, with no wiring of six handles that
/// must all be the same object; a new backend still implements, and is tested, one trait at
/// a time, and a component that needs one concern can take just that trait (a concrete
/// backend coerces to `Arc<dyn KvStore>` as well as to `Arc<dyn IndexStore>`).
pub trait IndexStore:
    SpaceStore + DelegationStore + NonceStore + KvStore + BlobIndex + EventLog
{
}

impl<T> IndexStore for T where
    T: SpaceStore + DelegationStore + NonceStore + KvStore + BlobIndex + EventLog
{
}

/// Spaces and what they use.
#[async_trait]
pub trait SpaceStore: Send + Sync + 'static {
    /// Ids of all spaces (loaded once at start-up into memory).
    async fn spaces(&self) -> StoreResult<Vec<String>>;
    /// Creates a space owned by `owner` (no-op if it exists).
    async fn create_space(&self, space: &str, owner: &str, now_ms: i64) -> StoreResult<()>;
    /// Bytes used by a space's current values and stored delegations.
    async fn usage(&self, space: &str) -> StoreResult<u64>;
    /// A cheap liveness check.
    async fn ping(&self) -> StoreResult<()>;
}

/// Stored delegations and revocations.
#[async_trait]
pub trait DelegationStore: Send + Sync + 'static {
    /// Stores a verified delegation unless it is already stored (idempotent), charging its
    /// [`StoredDelegation::charged_bytes`] to each space of `charges`, atomically refusing it
    /// (storing nothing) when that would take one past its limit.
    async fn put_delegation(
        &self,
        d: &StoredDelegation,
        charges: Vec<DelegationCharge>,
        now_ms: i64,
    ) -> StoreResult<DelegationWrite>;
    /// Loads a delegation.
    async fn delegation(&self, cid: &Cid) -> StoreResult<Option<StoredDelegation>>;
    /// Delegations whose capabilities name `space`.
    async fn delegations_for_space(&self, space: &str) -> StoreResult<Vec<StoredDelegation>>;
    /// Deletes up to `limit` delegations whose expiration is before `expired_before_ms`
    /// (earliest first), un-charging their bytes from the spaces they were charged to in the
    /// same transaction; revocations are kept. Returns the CIDs deleted.
    async fn sweep_delegations(
        &self,
        expired_before_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Cid>>;

    /// Delegations issued by one of `issuers` or addressed to one of `delegatees` (DID text,
    /// fragment stripped), newest stored first (then by CID), each with the time it was stored
    /// (Unix ms): at most `limit`, strictly after the position `after` (`(stored_ms, cid)`) in
    /// that order. What `POST /delegation/query` pages through.
    async fn account_delegations(
        &self,
        issuers: Vec<String>,
        delegatees: Vec<String>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<(StoredDelegation, i64)>>;
    /// The revocation recorded under `cid`: who revoked it and when (Unix ms).
    async fn revocation(&self, cid: &Cid) -> StoreResult<Option<(String, i64)>>;

    /// Records a revocation (idempotent).
    async fn revoke(&self, cid: &Cid, revoker: &str, now_ms: i64) -> StoreResult<()>;
    /// Every revoked CID (loaded once at start-up).
    async fn revoked(&self) -> StoreResult<Vec<Cid>>;
}

/// Consumed single-use invocation nonces.
#[async_trait]
pub trait NonceStore: Send + Sync + 'static {
    /// Consumes a single-use nonce valid until `expires_ms`; false if it was already used.
    /// On return the nonce survives a process crash.
    async fn consume_nonce(&self, nonce: Hash, expires_ms: i64, now_ms: i64) -> StoreResult<bool>;
    /// Deletes expired nonces.
    async fn sweep_nonces(&self, now_ms: i64) -> StoreResult<u64>;
    /// Makes every nonce consumed so far survive a power loss (blocking: call it off the async
    /// runtime). Writes made through this store are covered by its commit; a write made
    /// elsewhere (local SQL databases) calls this before it commits, so the invocation behind
    /// a durable write can never be replayed.
    fn sync_nonces(&self) -> StoreResult<()>;
    /// Whether consumed nonces are waiting for that sync.
    fn nonces_pending(&self) -> StoreResult<bool>;
}

/// KV heads (small values inline). Writes keep the space's usage, the blob reference counts
/// and the event log in the same transaction.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The current value of a key.
    async fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<KvEntry>>;
    /// Writes a key, atomically checking the precondition and the storage limit.
    async fn kv_put(&self, put: KvPut) -> StoreResult<WriteOutcome>;
    /// Writes several keys of one space in one transaction, all or nothing; the storage limit
    /// (of the first put) applies to the batch as a whole, preconditions are not checked.
    async fn kv_put_many(&self, puts: Vec<KvPut>) -> StoreResult<WriteOutcome>;
    /// Deletes a key, atomically checking the precondition; `event` is logged with it.
    async fn kv_delete(
        &self,
        space: &str,
        key: &str,
        pre: Precondition,
        event: Option<EventDraft>,
    ) -> StoreResult<WriteOutcome>;
    /// Keys with a raw string prefix, in byte order, strictly after `after`.
    async fn kv_list(
        &self,
        space: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<KeyPage>;
}

/// The index's side of blob reclamation: the queue of garbage blobs (see [`blob_gc`]).
#[async_trait]
pub trait BlobIndex: Send + Sync + 'static {
    /// Up to `limit` queued garbage blobs (no KV head points at them), oldest first, each with
    /// its queue id.
    async fn blob_garbage(&self, limit: usize) -> StoreResult<Vec<(i64, Hash)>>;
    /// Which of the queue ids `ids` are still queued (a write that points a head at the blob
    /// again removes it from the queue).
    async fn blob_garbage_queued(&self, ids: Vec<i64>) -> StoreResult<Vec<i64>>;
    /// Removes collected entries from the queue (by queue id; a re-queued blob has a new id).
    async fn blob_collected(&self, ids: Vec<i64>) -> StoreResult<()>;
    /// Queues those of `hashes` that nothing in the index refers to (no KV head, no SQL log
    /// piece): blobs left behind by a crash between a blob upload and its index write.
    async fn queue_orphans(&self, hashes: Vec<Hash>) -> StoreResult<usize>;
    /// Notified after a commit that queued garbage blobs.
    fn garbage_signal(&self) -> std::sync::Arc<tokio::sync::Notify>;
}

/// Each space's log of write events, and their live fan-out.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends an event to a space's log (for writes not made through the index, e.g. SQL).
    async fn append_event(&self, draft: EventDraft) -> StoreResult<StoredEvent>;
    /// Logged events of a space with `seq > after`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        space: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// The oldest sequence number still in a space's log (`None` when empty).
    async fn first_event(&self, space: &str) -> StoreResult<Option<u64>>;
    /// The newest sequence number of a space's log (0 when nothing was ever logged).
    async fn last_event(&self, space: &str) -> StoreResult<u64>;
    /// Events as they are committed (after the commit, before the write is acknowledged).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<StoredEvent>>;
}

/// A reader over a blob's bytes.
pub type BlobReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Content-addressed blob storage.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a new blob; bytes are appended with [`BlobWriter::write`].
    async fn begin(&self) -> StoreResult<Box<dyn BlobWriter>>;
    /// Opens a blob for reading.
    async fn open(&self, hash: &Hash) -> StoreResult<Option<BlobReader>>;
    /// Removes a blob (absent is not an error). For the SQL log's per-database addresses, and
    /// for KV values only through the [`blob_gc::BlobCollector`] (KV values are shared by
    /// content, so only the index knows when one is garbage).
    async fn delete(&self, hash: &Hash) -> StoreResult<()>;
    /// Opens a blob for reading from byte `offset` (at or past the end: nothing to read). The
    /// default reads and discards the first `offset` bytes; stores that can seek do.
    async fn open_at(&self, hash: &Hash, offset: u64) -> StoreResult<Option<BlobReader>> {
        let Some(mut r) = self.open(hash).await? else {
            return Ok(None);
        };
        let mut skip = tokio::io::AsyncReadExt::take(&mut r, offset);
        tokio::io::copy(&mut skip, &mut tokio::io::sink()).await?;
        Ok(Some(r))
    }
    /// The blobs whose address starts with the byte `shard`, with their last modification
    /// time (for the orphan sweep).
    async fn list(&self, shard: u8) -> StoreResult<Vec<(Hash, std::time::SystemTime)>>;
}

/// An in-progress blob upload.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: &[u8]) -> StoreResult<()>;
    /// Makes the blob durable under `hash` (which the caller computed over the same bytes).
    async fn commit(self: Box<Self>, hash: &Hash) -> StoreResult<()>;
}

/// A webhook subscription as stored (the secret is sealed; see `hooks::webhooks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Id.
    pub id: String,
    /// Space id.
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware prefix.
    pub path_prefix: Option<String>,
    /// Ability filter.
    pub abilities: Option<Vec<String>>,
    /// Where deliveries go.
    pub callback_url: String,
    /// The shared secret, sealed with a node key.
    pub sealed_secret: Vec<u8>,
    /// Who registered it.
    pub subscriber: String,
    /// Still delivering.
    pub active: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Last event sequence number handled.
    pub cursor: u64,
    /// Failed attempts at the event after `cursor`.
    pub attempts: u32,
    /// When to try next (Unix ms).
    pub next_attempt_at: i64,
    /// The delegations the registration rested on (CIDs), re-checked before every delivery.
    /// `None` for a row stored before proofs were recorded: it cannot be re-checked, so it is
    /// never delivered to.
    pub proofs: Option<Vec<String>>,
    /// The earliest expiration along those delegations (Unix ms), `None` if none expires.
    pub expires_at: Option<i64>,
    /// Why the node stopped it (authority revoked or expired), if it did.
    pub disabled_reason: Option<String>,
}

/// One delivery attempt outcome, kept as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Delivery id (stable across retries of one event).
    pub id: String,
    /// Webhook id.
    pub webhook: String,
    /// Event sequence number.
    pub seq: u64,
    /// `delivered`, `retrying` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Last HTTP status, if any.
    pub last_status: Option<u16>,
    /// Last error text, if any.
    pub last_error: Option<String>,
    /// Unix ms.
    pub at: i64,
}

/// Webhook subscriptions and their delivery state (persisted, so a restart loses no pending
/// delivery).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new subscription unless the space already has `max_active` active ones.
    async fn create_webhook(&self, w: &WebhookRow, max_active: usize) -> StoreResult<bool>;
    /// Subscriptions of a space (active and inactive).
    async fn webhooks(&self, space: &str) -> StoreResult<Vec<WebhookRow>>;
    /// One subscription.
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRow>>;
    /// Every active subscription (for the dispatcher).
    async fn active_webhooks(&self) -> StoreResult<Vec<WebhookRow>>;
    /// Deactivates; false if unknown.
    async fn deactivate_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Deactivates because its authority ended, recording why; false if unknown.
    async fn disable_webhook(&self, id: &str, reason: &str) -> StoreResult<bool>;
    /// Moves the cursor and resets the retry state.
    async fn advance_webhook(&self, id: &str, cursor: u64) -> StoreResult<()>;
    /// Records a failed attempt and when to try again.
    async fn retry_webhook(&self, id: &str, attempts: u32, next_attempt_at: i64)
        -> StoreResult<()>;
    /// Records a delivery outcome (upsert by delivery id).
    async fn record_delivery(&self, d: &DeliveryRow) -> StoreResult<()>;
    /// Delivery history of a subscription, newest first.
    async fn deliveries(&self, webhook: &str, limit: usize) -> StoreResult<Vec<DeliveryRow>>;
}

/// An encryption network as stored. The private key is sealed with a node-derived key and
/// never leaves the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    /// `urn:tinycloud:encryption:<owner>:<name>`.
    pub id: String,
    /// Owner DID.
    pub owner: String,
    /// Name.
    pub name: String,
    /// `active` or `revoked`.
    pub state: String,
    /// X25519 public key.
    pub public_key: Vec<u8>,
    /// Sealed X25519 private key.
    pub sealed_private: Vec<u8>,
    /// Key version.
    pub key_version: u32,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// One decrypt (or refused decrypt) for the owner's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the network's trail (assigned by the store; ignored when appending).
    pub seq: i64,
    /// Network id.
    pub network: String,
    /// Who asked.
    pub actor: String,
    /// `allowed` or `denied:<reason>`.
    pub outcome: String,
    /// Hash of the wrapped content key (identifies the envelope).
    pub envelope_hash: Option<String>,
    /// The delegations the request rested on.
    pub delegations: Vec<String>,
    /// The invocation CID.
    pub invocation: Option<String>,
    /// Unix ms.
    pub at: i64,
}

/// Encryption networks and their audit trail.
#[async_trait]
pub trait EncryptionStore: Send + Sync + 'static {
    /// Creates a network; false if it already exists.
    async fn create_network(&self, n: &NetworkRow) -> StoreResult<bool>;
    /// One network.
    async fn network(&self, id: &str) -> StoreResult<Option<NetworkRow>>;
    /// Marks a network revoked; false if unknown.
    async fn revoke_network(&self, id: &str, now_ms: i64) -> StoreResult<bool>;
    /// Appends an audit record within `bounds`; false when it was not recorded because its
    /// actor already has `bounds.denied_per_actor` refused records in the last
    /// `bounds.window_ms` (allowed decisions are always recorded). The network's oldest
    /// records beyond `bounds.max_rows` are dropped in the same transaction.
    async fn audit(&self, a: &AuditRow, bounds: AuditBounds) -> StoreResult<bool>;
    /// Audit records of a network, newest first (by `(at, seq)`), strictly older than
    /// `before` = `(at, seq)` of the last record of the previous page, at most `limit`.
    async fn audit_log(
        &self,
        network: &str,
        before: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<AuditRow>>;
}

/// Limits on a network's audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditBounds {
    /// Most records kept per network (oldest dropped first).
    pub max_rows: u64,
    /// Most refused-decision records per actor per window.
    pub denied_per_actor: u64,
    /// The window, in ms.
    pub window_ms: i64,
    /// Now (Unix ms).
    pub now_ms: i64,
}

/// Bytes of an SQL log piece: small ones inline in the index, large ones in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogBytes {
    /// Kept in the index row itself.
    Inline(Vec<u8>),
    /// A blob (addressed per database, see `sql::hosting`) of this many bytes.
    Blob(Hash, u64),
}

/// What the store holds for one SQL database: the current generation's base snapshot (an
/// SQLite file) and the WAL bytes appended since, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlLog {
    /// Generation number (a new one starts whenever SQLite restarts its WAL).
    pub generation: u64,
    /// The database file the generation's WAL applies to.
    pub snapshot: LogBytes,
    /// WAL segments in order; concatenated they are the WAL file (header first).
    pub segments: Vec<LogBytes>,
}

/// One committed SQL transaction to record.
#[derive(Debug, Clone)]
pub struct SqlShipment {
    /// Space id.
    pub space: String,
    /// Database name.
    pub db: String,
    /// Generation the segment belongs to.
    pub generation: u64,
    /// Set when this shipment starts `generation`: its base snapshot. Older generations are
    /// dropped in the same transaction.
    pub snapshot: Option<LogBytes>,
    /// Segment number within the generation (0, 1, …).
    pub seq: u64,
    /// The WAL bytes the transaction appended.
    pub segment: LogBytes,
    /// When starting a generation: how many segments the previous generation (number
    /// `generation - 1`, none for 1) has; the store refuses the shipment unless it holds
    /// exactly that log, so a writer that missed another's commits can never drop them.
    pub base_segments: u64,
    /// Size of the database after the transaction (for the space quota).
    pub db_bytes: u64,
}

/// Durable home of SQL databases when they are hosted by the storage layer rather than by
/// local files (`sql.hosting = "shipped"`): a snapshot plus WAL segments per database.
#[async_trait]
pub trait SqlLogStore: Send + Sync + 'static {
    /// The stored log of a database, if it has one: a consistent snapshot (generation and
    /// segments as of one commit).
    async fn sql_log(&self, space: &str, db: &str) -> StoreResult<Option<SqlLog>>;
    /// Records shipments, in order, all or none; durable when this returns. Refuses (with an
    /// error) a segment that does not follow the stored one, so two writers can never
    /// interleave. Returns the blobs that generations dropped by shipments starting a new one
    /// referenced, which the caller may delete.
    async fn sql_ship(&self, batch: Vec<SqlShipment>) -> StoreResult<Vec<Hash>>;
    /// Total size of a space's databases as of their last shipments.
    async fn sql_usage(&self, space: &str) -> StoreResult<u64>;
    /// Names of a space's stored databases (for the per-space database limit).
    async fn sql_databases(&self, space: &str) -> StoreResult<Vec<String>>;
}

/// A signed KV URL ticket as stored. The ticket id itself is a bearer secret and is never
/// stored: rows are keyed by its BLAKE3 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTicketRow {
    /// BLAKE3 of the ticket id.
    pub id_hash: Hash,
    /// Space id.
    pub space: String,
    /// The KV key it reads.
    pub path: String,
    /// Who minted it (the invoker's DID).
    pub issuer: String,
    /// The content hash the ticket is bound to.
    pub content_hash: Hash,
    /// The delegations the minting invocation cited, re-checked on every read.
    pub proofs: Vec<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; the ticket reads nothing from then on.
    pub expires_at: i64,
}

/// Limits on live (unexpired) signed URL tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketBounds {
    /// Most live tickets per space.
    pub per_space: u64,
    /// Most live tickets per (space, issuer).
    pub per_issuer: u64,
    /// Now (Unix ms).
    pub now_ms: i64,
}

/// Signed KV URL tickets (durable, so a restart keeps minted URLs working until they expire).
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a ticket unless its space or its issuer already holds as many live tickets as
    /// `bounds` allow (false then). The space's expired tickets are deleted first.
    async fn create_signed_ticket(
        &self,
        t: &SignedTicketRow,
        bounds: TicketBounds,
    ) -> StoreResult<bool>;
    /// The ticket with this id hash, expired or not.
    async fn signed_ticket(&self, id_hash: &Hash) -> StoreResult<Option<SignedTicketRow>>;
    /// Deletes up to `limit` tickets that expired before `now_ms`; returns how many.
    async fn sweep_signed_tickets(&self, now_ms: i64, limit: usize) -> StoreResult<usize>;
}

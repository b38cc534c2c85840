//! Persistence: one trait per concern (users, sessions, passkeys, ceremonies, email codes,
//! recovery codes, keys, audit) and [`Store`], their sum, which the app state holds as
//! `Arc<dyn Store>`. The embedded backend is [`sqlite::SqliteStore`] (WAL, versioned migrations
//! in `migrations/`). The traits are synchronous: each call is a short transaction. A PostgreSQL
//! backend (by URL) is not written yet; it would implement the same traits over a blocking pool.
//!
//! Secrets never reach the store in the clear: sessions, email codes and recovery codes are kept
//! as SHA-256 digests of high-entropy (or rate-limited) values, private keys only as sealed blobs.

pub mod sqlite;
mod sqlite_approve;

mod oidc;
mod sqlite_oidc;

pub use oidc::{
    CodeRedemption, OidcClient, OidcCode, OidcGrant, OidcStore, OidcToken, Refresh, SigningKeyRow,
    TokenKind,
};

mod migrations;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (for example an email already registered).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Migrating the schema failed.
    #[error("migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The data directory could not be used.
    #[error("data dir: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account.
#[derive(Clone, Debug)]
pub struct User {
    /// Opaque id (UUID text).
    pub id: String,
    /// Email address, lower-cased; unique.
    pub email: String,
    /// WebAuthn user handle (UUID), stable for the account.
    pub webauthn_handle: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A sign-in session (the cookie holds the secret; the store its SHA-256).
#[derive(Clone, Debug)]
pub struct Session {
    /// SHA-256 of the cookie secret.
    pub id_hash: Vec<u8>,
    /// Whose session.
    pub user_id: String,
    /// How it was opened: `passkey`, `email-code`, `recovery-code`, `signup`.
    pub method: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// When a passkey last verified the user in this session (Unix ms).
    pub last_uv_at: Option<i64>,
}

/// A registered passkey; `passkey_json` is the webauthn-rs `Passkey` serialized.
#[derive(Clone, Debug)]
pub struct PasskeyRow {
    /// Opaque id (UUID text).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The credential id bytes (unique across users).
    pub credential_id: Vec<u8>,
    /// Label chosen by the person.
    pub name: String,
    /// Serialized credential (public key, counter).
    pub passkey_json: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_used_at: Option<i64>,
}

/// Server-side state of a multi-step exchange (WebAuthn ceremony, wallet-link challenge, …),
/// single use, keyed by a random id.
#[derive(Clone, Debug)]
pub struct Ceremony {
    /// Random id handed to the client.
    pub id: String,
    /// What it is for (`signup`, `signin`, `add-passkey`, `reverify`, `link-wallet`, …).
    pub kind: String,
    /// The user it belongs to, if known.
    pub user_id: Option<String>,
    /// JSON state.
    pub data: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// The one-time-code state of an email address (kept also for unknown addresses, so answers
/// do not reveal which addresses have accounts).
#[derive(Clone, Debug, Default)]
pub struct EmailCode {
    /// SHA-256 of the current code, if one is outstanding.
    pub code_hash: Option<Vec<u8>>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    /// Wrong attempts against the current code.
    pub failures: u32,
    /// Unix ms until which verification is refused.
    pub locked_until: Option<i64>,
}

/// Managed (sealed here) or external (a linked wallet; no key material).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Generated and sealed by OpenKey.
    Managed,
    /// A wallet the person proved control of.
    External,
}

impl KeyKind {
    /// Database text.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Managed => "managed",
            KeyKind::External => "external",
        }
    }
}

/// A key record.
#[derive(Clone, Debug)]
pub struct KeyRow {
    /// Opaque id (UUID text).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// EIP-55 address.
    pub address: String,
    /// Managed or external.
    pub kind: KeyKind,
    /// Label.
    pub label: String,
    /// The person's owner key (one per user).
    pub is_owner: bool,
    /// Per-key random sealing context (base64url), managed keys only.
    pub sealing_context: Option<String>,
    /// Sealed private key, managed keys only.
    pub sealed: Option<Vec<u8>>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, when archived.
    pub archived_at: Option<i64>,
    /// Unix ms, when the raw key was last exported.
    pub exported_at: Option<i64>,
}

/// One audit record (never secrets: digests, addresses, domains, reasons).
#[derive(Clone, Debug)]
pub struct AuditRow {
    /// Unix ms.
    pub at: i64,
    /// Whose log.
    pub user_id: String,
    /// Event name (`sign.personal`, `key.export`, …).
    pub event: String,
    /// `allowed`, `refused`, `done`.
    pub outcome: String,
    /// The key concerned, if any.
    pub key_id: Option<String>,
    /// JSON details.
    pub detail: String,
}

/// An app allowed to receive approval results at its return URL.
#[derive(Clone, Debug)]
pub struct ApprovalApp {
    /// Opaque id (UUID text), the `client_id`.
    pub id: String,
    /// Shown to the person.
    pub name: String,
    /// Exact return URL.
    pub return_url: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Where an approval request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalStatus {
    /// Waiting for the person.
    Pending,
    /// Signed; the result waits for the exchange / device poll.
    Approved,
    /// The person said no.
    Denied,
    /// The result was handed out (or the request is otherwise spent).
    Consumed,
}

impl ApprovalStatus {
    /// Database text.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Consumed => "consumed",
        }
    }

    /// From database text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "consumed" => ApprovalStatus::Consumed,
            _ => return None,
        })
    }
}

/// An app's request to have a SIWE message signed.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    /// Random id (UUID text).
    pub id: String,
    /// `redirect` or `device`.
    pub flow: String,
    /// The original SIWE text, as sent.
    pub message: String,
    /// Redirect flow: where the code goes.
    pub return_url: Option<String>,
    /// Redirect flow: the app's state, echoed.
    pub state: Option<String>,
    /// The registered app, when the return URL is one.
    pub client_id: Option<String>,
    /// Device flow: SHA-256 of the device code.
    pub device_code_hash: Option<Vec<u8>>,
    /// Device flow: SHA-256 of the normalized user code.
    pub user_code_hash: Option<Vec<u8>>,
    /// Status.
    pub status: ApprovalStatus,
    /// Who decided.
    pub user_id: Option<String>,
    /// The message signed (after narrowing).
    pub final_message: Option<String>,
    /// EIP-191 digest of `final_message`.
    pub digest: Option<Vec<u8>>,
    /// `0x…` signature (cleared when handed out).
    pub signature: Option<String>,
    /// Signing address (EIP-55).
    pub address: Option<String>,
    /// Unix ms of the last device poll.
    pub last_poll_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms after which the request is dead.
    pub expires_at: i64,
}

/// The result of an approval, handed out once.
#[derive(Clone, Debug)]
pub struct ApprovalResult {
    /// The message signed.
    pub message: String,
    /// EIP-191 digest of `message`, as recorded when signing.
    pub digest: Vec<u8>,
    /// `0x…`.
    pub signature: String,
    /// EIP-55.
    pub address: String,
}

/// What a device poll finds.
#[derive(Clone, Debug)]
pub enum DevicePoll {
    /// No such live device code.
    Unknown,
    /// Expired.
    Expired,
    /// Polled sooner than the interval.
    SlowDown,
    /// Not decided yet.
    Pending,
    /// Denied (or already handed out).
    Denied,
    /// Approved: the result, now consumed.
    Approved(ApprovalResult),
}

/// The person's approval decision, written once.
#[derive(Clone, Debug)]
pub struct ApprovalDecision {
    /// Who.
    pub user_id: String,
    /// The final message text.
    pub final_message: String,
    /// Its EIP-191 digest.
    pub digest: Vec<u8>,
    /// `0x…`.
    pub signature: String,
    /// EIP-55.
    pub address: String,
    /// Redirect flow: SHA-256 of the one-time code.
    pub code_hash: Option<Vec<u8>>,
    /// Unix ms.
    pub code_expires_at: Option<i64>,
}

/// Accounts.
pub trait UserStore {
    /// Creates an account; `Conflict` when the email is taken.
    fn create_user(&self, user: &User) -> StoreResult<()>;
    /// By email (lower-cased).
    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// By id.
    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// Deletes the account and everything it owns (sessions, passkeys, codes, keys, audit).
    fn delete_user(&self, id: &str) -> StoreResult<()>;
}

/// Sessions.
pub trait SessionStore {
    /// Stores a new session.
    fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// A live (unexpired at `now`) session by cookie digest.
    fn session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<Session>>;
    /// Records a passkey user verification in this session.
    fn record_uv(&self, id_hash: &[u8], at: i64) -> StoreResult<()>;
    /// Ends one session.
    fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()>;
}

/// Passkeys.
pub trait PasskeyStore {
    /// Adds a passkey; `Conflict` when the credential id is registered already.
    fn add_passkey(&self, row: &PasskeyRow) -> StoreResult<()>;
    /// A user's passkeys, oldest first.
    fn passkeys(&self, user_id: &str) -> StoreResult<Vec<PasskeyRow>>;
    /// Replaces the serialized credential (counter update) and the last-used time.
    fn update_passkey(&self, id: &str, passkey_json: &str, used_at: i64) -> StoreResult<()>;
    /// Removes one of the user's passkeys unless it is their last (`Conflict`).
    fn remove_passkey(&self, user_id: &str, id: &str) -> StoreResult<()>;
}

/// Ceremonies and challenges.
pub trait CeremonyStore {
    /// Stores one.
    fn put_ceremony(&self, c: &Ceremony) -> StoreResult<()>;
    /// Removes and returns it if it exists, has this kind and has not expired at `now`.
    fn take_ceremony(&self, id: &str, kind: &str, now: i64) -> StoreResult<Option<Ceremony>>;
}

/// Email one-time codes.
pub trait EmailCodeStore {
    /// The state for an address (default when none).
    fn email_code(&self, email: &str) -> StoreResult<EmailCode>;
    /// Writes the state for an address.
    fn set_email_code(&self, email: &str, code: &EmailCode) -> StoreResult<()>;
}

/// Recovery codes.
pub trait RecoveryCodeStore {
    /// Replaces all of a user's codes with these digests.
    fn replace_recovery_codes(&self, user_id: &str, hashes: &[[u8; 32]]) -> StoreResult<()>;
    /// Unused codes: (row id, digest).
    fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<(i64, Vec<u8>)>>;
    /// Marks a code used; false if it was used already (lost a race).
    fn use_recovery_code(&self, row_id: i64, at: i64) -> StoreResult<bool>;
}

/// Keys.
pub trait KeyStore {
    /// Inserts a key; `Conflict` for a duplicate address of the same user or a second owner key.
    fn insert_key(&self, row: &KeyRow) -> StoreResult<()>;
    /// A user's keys (archived ones too when asked), owner first then oldest first.
    fn keys(&self, user_id: &str, include_archived: bool) -> StoreResult<Vec<KeyRow>>;
    /// One of the user's keys.
    fn key(&self, user_id: &str, key_id: &str) -> StoreResult<Option<KeyRow>>;
    /// Archives (`Some(at)`) or restores (`None`).
    fn set_archived(&self, user_id: &str, key_id: &str, at: Option<i64>) -> StoreResult<()>;
    /// Records an export.
    fn mark_exported(&self, user_id: &str, key_id: &str, at: i64) -> StoreResult<()>;
}

/// The audit log.
pub trait AuditStore {
    /// Appends a record.
    fn append_audit(&self, row: &AuditRow) -> StoreResult<()>;
    /// A user's newest records first, at most `limit`.
    fn audit_log(&self, user_id: &str, limit: u32) -> StoreResult<Vec<AuditRow>>;
}

/// Approval apps and requests.
pub trait ApprovalStore {
    /// Registers an app; `Conflict` when the return URL is taken.
    fn add_approval_app(&self, app: &ApprovalApp) -> StoreResult<()>;
    /// All apps, oldest first.
    fn approval_apps(&self) -> StoreResult<Vec<ApprovalApp>>;
    /// The app with exactly this return URL.
    fn approval_app_by_return_url(&self, url: &str) -> StoreResult<Option<ApprovalApp>>;
    /// Removes an app by id; false when there was none.
    fn remove_approval_app(&self, id: &str) -> StoreResult<bool>;
    /// Stores a new request.
    fn create_approval_request(&self, req: &ApprovalRequest) -> StoreResult<()>;
    /// A request by id (any status).
    fn approval_request(&self, id: &str) -> StoreResult<Option<ApprovalRequest>>;
    /// A pending, live device request by user-code digest.
    fn approval_by_user_code(&self, hash: &[u8], now: i64) -> StoreResult<Option<ApprovalRequest>>;
    /// Records approval if the request is still pending and live; false otherwise.
    fn approve_request(&self, id: &str, d: &ApprovalDecision, now: i64) -> StoreResult<bool>;
    /// Records denial if the request is still pending and live; false otherwise.
    fn deny_request(&self, id: &str, user_id: &str, now: i64) -> StoreResult<bool>;
    /// Consumes an approved redirect request whose live code digest matches; the result once.
    fn take_by_code(
        &self,
        id: &str,
        code_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<ApprovalResult>>;
    /// A device poll: rate (`interval_ms`), state, and on approval the result once.
    fn poll_device(
        &self,
        device_code_hash: &[u8],
        now: i64,
        interval_ms: i64,
    ) -> StoreResult<DevicePoll>;
}

/// Everything the app needs from a backend.
pub trait Store:
    UserStore
    + SessionStore
    + PasskeyStore
    + CeremonyStore
    + EmailCodeStore
    + RecoveryCodeStore
    + KeyStore
    + AuditStore
    + OidcStore
    + ApprovalStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: UserStore
        + SessionStore
        + PasskeyStore
        + CeremonyStore
        + EmailCodeStore
        + RecoveryCodeStore
        + KeyStore
        + AuditStore
        + OidcStore
        + ApprovalStore
        + Send
        + Sync
{
}

//! Per-space SQLite databases: opening, limits, gated execution, export.
//!
//! One database file per (space, name), created on first write. Each database has one writer
//! connection (WAL, `synchronous=FULL`: a write is acknowledged only once durable) and a few
//! read-only connections, so readers never wait for the writer. Every statement runs with an
//! authorizer for the invoker's level, a wall-clock limit enforced by a progress handler, and
//! SQLite's length limits (a `randomblob(1e9)` fails instead of allocating a gigabyte). Rows are
//! charged against the response cap as they are stepped, by the size of their JSON encoding,
//! before they are converted.
//!
//! Open databases are bounded: past `max_open`, the least recently used idle database is
//! closed (its connections, and so its descriptors, released); its next use reopens it (shipped
//! hosting: restores it from the store, which holds every acknowledged write). A space holds at
//! most `max_per_space` databases; the check runs before a new file is created.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

pub use super::error::SqlError;
use super::gate::{Gate, Grant, Level, Restrictions};
use super::hosting::{self, Hosting, ShipState};

/// Limits applied to every statement.
#[derive(Clone, Debug)]
pub struct SqlLimits {
    /// Wall-clock limit per request.
    pub time: Duration,
    /// Most rows a query returns.
    pub max_rows: usize,
    /// Largest response (approximate JSON bytes).
    pub max_response_bytes: usize,
    /// Largest string or blob SQLite may build.
    pub max_value_bytes: i32,
    /// Most databases open at once (idle ones beyond it are closed, least recently used first).
    pub max_open: usize,
    /// Most databases one space may hold.
    pub max_per_space: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            time: Duration::from_secs(5),
            max_rows: 10_000,
            max_response_bytes: 10 * 1024 * 1024,
            max_value_bytes: 16 * 1024 * 1024,
            max_open: 256,
            max_per_space: 100,
        }
    }
}

/// Idle read-only connections kept per open database (each holds two descriptors).
const READERS: usize = 2;

/// Longest file stem kept in escaped form; longer names are stored under a hash.
const MAX_STEM: usize = 160;

/// The file stem of a database name, injective and stable under case folding (so no two
/// databases share a file, even on a case-insensitive file system): `[a-z0-9._-]` bytes as they
/// are, every other byte (upper case, `/`) as `+` and two hex digits; a stem that would be longer
/// than [`MAX_STEM`] is `~` and 32 hex digits of a hash of the name. A name made of lower-case
/// letters, digits, `.`, `_` and `-` keeps the file it always had.
pub fn file_stem(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02x}"));
        }
    }
    if out.len() > MAX_STEM {
        let h = blake3::derive_key("tinycloud sql file name v1", name.as_bytes());
        return format!("~{}", hex::encode(&h[..16]));
    }
    out
}

struct Database {
    space: String,
    name: String,
    path: PathBuf,
    writer: Mutex<Option<Writer>>,
    readers: Mutex<Vec<Connection>>,
    /// Commits waiting to be recorded by the storage layer (shipped hosting).
    shipping: hosting::ShipQueue,
    /// The working copy was discarded; its files may be gone or being rebuilt.
    closed: std::sync::atomic::AtomicBool,
    /// When it was last used (a tick of [`Databases::clock`]), for closing idle ones.
    last_used: AtomicU64,
}

/// The single writer connection of a database, with its shipping progress when the storage
/// layer hosts it.
struct Writer {
    conn: Connection,
    ship: Option<ShipState>,
}

/// Where an open database lives in the registry.
type Slot = Mutex<Option<Arc<Database>>>;

/// Tables written by a statement (reported by SQLite's authorizer).
pub type Touched = Arc<Mutex<BTreeSet<String>>>;

fn touched_tables(t: &Touched) -> Vec<String> {
    t.lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

/// All open databases.
pub struct Databases {
    root: PathBuf,
    /// One slot per database path: opening (and, shipped, restoring) a database holds only its
    /// own slot, never the whole registry.
    open: Mutex<HashMap<PathBuf, Arc<Slot>>>,
    limits: SqlLimits,
    hosting: Hosting,
    /// Use counter ordering databases by recency.
    clock: AtomicU64,
    /// Held from counting a space's databases until a new one's file exists, so concurrent
    /// creations cannot overshoot the per-space limit.
    creating: Mutex<()>,
}

fn configure(conn: &Connection, limits: &SqlLimits) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, limits.max_value_bytes)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1_000_000)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, 200)?;
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, 100)?;
    conn.set_limit(Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10)?;
    Ok(())
}

fn sqlite_err(e: rusqlite::Error) -> SqlError {
    let full = e.to_string();
    if full.contains("not authorized") {
        return SqlError::Denied(format!("not allowed: {full}"));
    }
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| e.to_string());
            if text.contains("not authorized") {
                return SqlError::Denied(format!("not allowed: {text}"));
            }
            match f.code {
                rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                    SqlError::Denied(format!("not allowed: {text}"))
                }
                rusqlite::ErrorCode::OperationInterrupted => SqlError::Timeout(0),
                rusqlite::ErrorCode::TooBig => {
                    SqlError::TooLarge(format!("value too large: {text}"))
                }
                rusqlite::ErrorCode::ReadOnly => SqlError::Denied(format!("read-only: {text}")),
                rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::NotADatabase
                | rusqlite::ErrorCode::DatabaseCorrupt => SqlError::Internal(text),
                _ => SqlError::Invalid(text),
            }
        }
        rusqlite::Error::MultipleStatement => {
            SqlError::Invalid("one statement per request (use a batch for several)".into())
        }
        _ => SqlError::Invalid(e.to_string()),
    }
}

/// A request that found its database's working copy being discarded (shipped hosting: a write
/// could not be recorded); the next request rebuilds it from the store.
fn rebuilding() -> SqlError {
    SqlError::Unavailable("the database is being rebuilt from storage; retry".into())
}

/// A JSON parameter as an SQLite value: null, integer (i64), float, string, boolean (0/1),
/// a byte array (BLOB) or `{"base64": "…"}` (BLOB).
pub fn to_sql(v: &Value) -> Result<SqlValue, SqlError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None if n.is_u64() => {
                return Err(SqlError::Invalid(format!(
                    "integer {n} does not fit in 64 bits"
                )))
            }
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(items) => SqlValue::Blob(
            items
                .iter()
                .map(|i| i.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| {
                    SqlError::Invalid("a byte-array parameter must hold numbers 0–255".into())
                })?,
        ),
        Value::Object(o) => match o.get("base64").and_then(Value::as_str) {
            Some(b) if o.len() == 1 => SqlValue::Blob(
                STANDARD
                    .decode(b)
                    .map_err(|_| SqlError::Invalid("invalid base64 blob parameter".into()))?,
            ),
            _ => {
                return Err(SqlError::Invalid(
                    "object parameters must be {\"base64\": \"…\"}".into(),
                ))
            }
        },
    })
}

/// One value of a result row. Blobs stay bytes until they are written out (as the byte
/// arrays the reference SDK expects), so a row costs about its own size in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null, number or text.
    Json(Value),
    /// A BLOB.
    Blob(Vec<u8>),
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Json(v) => v.serialize(s),
            Cell::Blob(b) => {
                let mut seq = s.serialize_seq(Some(b.len()))?;
                for x in b {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
    }
}

/// Bytes a value takes in the JSON response, at most (plus its separator): known before the
/// value is converted, so an oversized result is refused before memory is spent on it.
fn encoded_len(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Null => 5,
        ValueRef::Integer(_) => 21,
        ValueRef::Real(_) => 25,
        // Quotes, and `\u00XX` for control characters.
        ValueRef::Text(t) => {
            3 + t
                .iter()
                .map(|&b| match b {
                    b'"' | b'\\' => 2,
                    0..=0x1f => 6,
                    _ => 1,
                })
                .sum::<usize>()
        }
        // Up to three digits and a comma per byte.
        ValueRef::Blob(b) => 2 + 4 * b.len(),
    }
}

fn to_cell(v: ValueRef<'_>) -> Cell {
    Cell::Json(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => return Cell::Blob(b.to_vec()),
    })
}

/// What one statement did.
#[derive(Debug)]
pub enum Outcome {
    /// Rows of a query.
    Rows {
        /// Column names.
        columns: Vec<String>,
        /// Row values.
        rows: Vec<Vec<Cell>>,
    },
    /// Changes of a write.
    Changes {
        /// Rows changed.
        changes: u64,
        /// Last inserted rowid.
        last_insert_row_id: i64,
    },
}

impl Serialize for Outcome {
    /// The reference's JSON shapes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Outcome::Rows { columns, rows } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("columns", columns)?;
                m.serialize_entry("rows", rows)?;
                m.serialize_entry("rowCount", &rows.len())?;
                m.end()
            }
            Outcome::Changes {
                changes,
                last_insert_row_id,
            } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("changes", changes)?;
                m.serialize_entry("lastInsertRowId", last_insert_row_id)?;
                m.end()
            }
        }
    }
}

impl Outcome {
    /// The reference's JSON shapes, as a value (tests; answers are streamed by the handler).
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One statement to run.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// SQL text (exactly one statement).
    pub sql: String,
    /// Parameters.
    pub params: Vec<Value>,
}

/// How to run a request.
#[derive(Debug, Clone)]
pub struct Exec {
    /// What the invoked capabilities grant (an action is allowed when one grant allows it).
    pub grants: Vec<Grant>,
    /// Row cap for queries (≤ the node limit).
    pub max_rows: Option<usize>,
    /// How many bytes a write may grow the database file by (the space's remaining quota);
    /// `None`: unbounded. Enforced by SQLite (`max_page_count`), so one statement cannot
    /// write past it.
    pub max_growth: Option<u64>,
}

impl Exec {
    /// One grant: `level` under `restrictions`, read-only when `read_only` (caveat `readOnly`).
    pub fn single(level: Level, restrictions: Restrictions, read_only: bool) -> Self {
        Exec {
            grants: vec![Grant {
                level: if read_only { Level::Read } else { level },
                restrictions,
            }],
            max_rows: None,
            max_growth: None,
        }
    }

    /// Whether no grant may change the database.
    pub fn read_only(&self) -> bool {
        self.grants.iter().all(|g| g.level == Level::Read)
    }
}

/// Caps the database file at its current size plus `max_growth` bytes (`None` lifts the cap).
fn cap_growth(conn: &Connection, max_growth: Option<u64>) -> Result<(), SqlError> {
    let pages = match max_growth {
        None => i64::from(u32::MAX - 1),
        Some(bytes) => {
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(sqlite_err)?;
            let count: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(sqlite_err)?;
            let extra =
                i64::try_from(bytes / u64::try_from(page.max(1)).unwrap_or(1)).unwrap_or(i64::MAX);
            count.saturating_add(extra).max(1)
        }
    };
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .map_err(sqlite_err)
}

/// A write that hit the growth cap (SQLite reports a full database) is over the quota.
fn over_quota(e: SqlError, exec: &Exec) -> SqlError {
    match e {
        SqlError::Internal(m) if exec.max_growth.is_some() && m.contains("is full") => {
            SqlError::Limit(format!("Storage quota exceeded by this write ({m})"))
        }
        other => other,
    }
}

impl Databases {
    /// Databases under `root`. With [`Hosting::Shipped`], `root` only holds working copies
    /// and is emptied here: each database is rebuilt from the storage layer on first use.
    pub fn new(root: &Path, limits: SqlLimits, hosting: Hosting) -> Result<Self, SqlError> {
        if matches!(hosting, Hosting::Shipped(_)) && root.exists() {
            std::fs::remove_dir_all(root).map_err(|e| SqlError::Internal(e.to_string()))?;
        }
        std::fs::create_dir_all(root).map_err(|e| SqlError::Internal(e.to_string()))?;
        Ok(Databases {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            limits,
            hosting,
            clock: AtomicU64::new(0),
            creating: Mutex::new(()),
        })
    }

    /// The directory of a space's databases.
    fn space_dir(&self, space: &str) -> PathBuf {
        let dir = hex::encode(&blake3::hash(space.as_bytes()).as_bytes()[..16]);
        self.root.join(dir)
    }

    /// The file of a database (see [`file_stem`]).
    pub fn path_of(&self, space: &str, name: &str) -> PathBuf {
        self.space_dir(space)
            .join(format!("{}.db", file_stem(name)))
    }

    /// Local hosting: a database whose name has upper-case letters was stored as `<name>.db`
    /// before names were escaped; move it (WAL first, so a crash in between loses nothing) to
    /// its escaped file. The old file is recognised by its exact directory entry, never by a
    /// (possibly case-insensitive) lookup that could match another database's file.
    fn migrate_legacy(&self, space: &str, name: &str, path: &Path) -> Result<(), SqlError> {
        let legacy = format!("{name}.db");
        if name.contains('/') || path.exists() || path.file_name() == Some(legacy.as_ref()) {
            return Ok(());
        }
        let dir = self.space_dir(space);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        let found = entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() == std::ffi::OsStr::new(&legacy));
        if !found {
            return Ok(());
        }
        let old = dir.join(&legacy);
        let io = |e: std::io::Error| SqlError::Internal(format!("renaming a database: {e}"));
        let old_wal = hosting::wal_path(&old);
        if old_wal.exists() {
            std::fs::rename(&old_wal, hosting::wal_path(path)).map_err(io)?;
        }
        let _ = std::fs::remove_file(format!("{}-shm", old.display()));
        std::fs::rename(&old, path).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        tracing::info!(
            space,
            db = name,
            "moved a database to its escaped file name"
        );
        Ok(())
    }

    /// The file stems of a space's databases (stored ones too, with shipped hosting).
    fn stems_in(&self, space: &str) -> Result<HashSet<String>, SqlError> {
        let mut stems: HashSet<String> = std::fs::read_dir(self.space_dir(space))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().into_string().ok()?;
                        n.strip_suffix(".db").map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Hosting::Shipped(s) = &self.hosting {
            stems.extend(s.databases(space)?.iter().map(|n| file_stem(n)));
        }
        Ok(stems)
    }

    /// Refuses a new database in a space that already holds the most allowed.
    fn check_room(&self, space: &str) -> Result<(), SqlError> {
        let n = self.stems_in(space)?.len();
        if n >= self.limits.max_per_space {
            return Err(SqlError::Limit(format!(
                "this space already holds {n} SQL databases, the most allowed ({}); use an existing database",
                self.limits.max_per_space
            )));
        }
        Ok(())
    }

    /// Bytes used by a space's databases (files plus WAL).
    /// (Shipped hosting: the sizes recorded in the storage layer, which also count databases
    /// this node has not opened since it started.)
    pub async fn usage(&self, space: &str) -> Result<u64, SqlError> {
        if let Hosting::Shipped(s) = &self.hosting {
            return s.usage(space).await;
        }
        Ok(std::fs::read_dir(self.space_dir(space))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0))
    }

    fn database(&self, space: &str, name: &str, create: bool) -> Result<Arc<Database>, SqlError> {
        let path = self.path_of(space, name);
        let slot = self
            .open
            .lock()
            .map_err(|_| SqlError::Internal("database registry poisoned".into()))?
            .entry(path.clone())
            .or_default()
            .clone();
        match self.open_in(space, name, create, &path, &slot) {
            Ok((db, fresh)) => {
                db.last_used.store(
                    self.clock.fetch_add(1, Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                drop(slot);
                if fresh {
                    self.close_idle();
                }
                Ok(db)
            }
            Err(e) => {
                // Lookups of absent databases must not grow the registry.
                self.forget_slot(&path, slot);
                Err(e)
            }
        }
    }

    /// Closes the least recently used idle databases while more than `max_open` are open. A
    /// database is idle when nobody holds it (no request runs on it, no write waits for the
    /// store), so every write it acknowledged is durable: local files are fsynced per commit,
    /// shipped ones are in the store (the next use restores from it).
    fn close_idle(&self) {
        loop {
            let Ok(open) = self.open.lock() else { return };
            let mut count = 0usize;
            let mut victim: Option<(u64, &PathBuf)> = None;
            for (path, slot) in open.iter() {
                // Slots are only cloned under the registry lock, which this holds: a count of
                // one means nobody is opening or using this one.
                let Ok(guard) = slot.try_lock() else {
                    count += 1;
                    continue;
                };
                let Some(db) = guard.as_ref() else { continue };
                count += 1;
                if Arc::strong_count(slot) == 1 && Arc::strong_count(db) == 1 {
                    let t = db.last_used.load(Ordering::Relaxed);
                    if victim.is_none_or(|(best, _)| t < best) {
                        victim = Some((t, path));
                    }
                }
            }
            if count <= self.limits.max_open.max(1) {
                return;
            }
            let Some((_, path)) = victim else {
                // Every open database is busy (at most one per SQL worker): nothing to close.
                return;
            };
            let path = path.clone();
            let Some(slot) = open.get(&path).cloned() else {
                return;
            };
            let Ok(mut guard) = slot.try_lock() else {
                return;
            };
            let db = guard.take();
            drop(open);
            // Connections close here, under the slot's lock: a request for the same database
            // waits for them to be closed before reopening it.
            drop(db);
            drop(guard);
            self.forget_slot(&path, slot);
        }
    }

    /// Databases open right now (tests).
    #[cfg(test)]
    pub fn open_databases(&self) -> usize {
        self.open
            .lock()
            .map(|o| {
                o.values()
                    .filter(|s| s.lock().map(|d| d.is_some()).unwrap_or(true))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Opens (restoring if shipped) the database at `path` into its slot, or returns the open
    /// one; `true` when it was opened now.
    fn open_in(
        &self,
        space: &str,
        name: &str,
        create: bool,
        path: &Path,
        slot: &Slot,
    ) -> Result<(Arc<Database>, bool), SqlError> {
        let path = path.to_path_buf();
        let mut open = slot
            .lock()
            .map_err(|_| SqlError::Internal("database slot poisoned".into()))?;
        if let Some(db) = open.as_ref() {
            return Ok((db.clone(), false));
        }
        let mut creating = None;
        let ship = match &self.hosting {
            Hosting::Local => {
                self.migrate_legacy(space, name, &path)?;
                None
            }
            Hosting::Shipped(s) => match s.restore(space, name, &path)? {
                Some(state) => Some(state),
                None if create => {
                    creating = Some(self.creating.lock().map_err(|_| {
                        SqlError::Internal("database creation lock poisoned".into())
                    })?);
                    self.check_room(space)?;
                    Some(ShipState::default())
                }
                None => return Err(SqlError::NotFound(name.to_owned())),
            },
        };
        if !path.exists() {
            if !create {
                return Err(SqlError::NotFound(name.to_owned()));
            }
            if creating.is_none() {
                creating =
                    Some(self.creating.lock().map_err(|_| {
                        SqlError::Internal("database creation lock poisoned".into())
                    })?);
                self.check_room(space)?;
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SqlError::Internal(e.to_string()))?;
        }
        let writer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            // Local files are the durable copy: fsync every commit. Shipped: the store is, and
            // a working copy never outlives the process, so fsyncing it would only cost time.
            .and_then(|()| {
                let sync = if ship.is_some() { "OFF" } else { "FULL" };
                writer.pragma_update(None, "synchronous", sync)
            })
            .and_then(|()| writer.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| configure(&writer, &self.limits))
            .map_err(sqlite_err)?;
        if let (Some(_), Hosting::Shipped(shipper)) = (&ship, &self.hosting) {
            shipper.configure_writer(&writer)?;
        }
        let db = Arc::new(Database {
            space: space.to_owned(),
            name: name.to_owned(),
            path: path.clone(),
            writer: Mutex::new(Some(Writer { conn: writer, ship })),
            readers: Mutex::new(Vec::new()),
            shipping: hosting::ShipQueue::default(),
            closed: std::sync::atomic::AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        });
        drop(creating);
        *open = Some(db.clone());
        Ok((db, true))
    }

    fn reader(&self, db: &Database) -> Result<Connection, SqlError> {
        if db.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(rebuilding());
        }
        if let Some(c) = db.readers.lock().ok().and_then(|mut r| r.pop()) {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &db.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err)?;
        configure(&c, &self.limits).map_err(sqlite_err)?;
        Ok(c)
    }

    fn give_back(db: &Database, c: Connection) {
        if let Ok(mut r) = db.readers.lock() {
            if r.len() < READERS {
                r.push(c);
            }
        }
    }

    /// Runs a query or a single write; returns the tables it wrote. Reads use a read-only
    /// connection.
    pub fn run(
        &self,
        space: &str,
        name: &str,
        stmt: &Stmt,
        exec: &Exec,
    ) -> Result<(Outcome, Vec<String>), SqlError> {
        let read_only = exec.read_only();
        let db = self.database(space, name, !read_only)?;
        let touched = Touched::default();
        let outcome = if read_only {
            let conn = self.reader(&db)?;
            let r = self.statement(&conn, stmt, exec, true, &touched);
            Self::give_back(&db, conn);
            r?
        } else {
            let mut guard = self.lock_writer(&db)?;
            let writer = guard.as_mut().ok_or_else(rebuilding)?;
            hosting::reset_committed();
            // In an explicit transaction, so a statement that fails or is cut short (a
            // `RETURNING` past the row cap, a timeout) leaves nothing committed.
            let result = (|| {
                cap_growth(&writer.conn, exec.max_growth)?;
                let tx = writer.conn.transaction().map_err(sqlite_err)?;
                let out = self.statement(&tx, stmt, exec, false, &touched)?;
                tx.commit().map_err(sqlite_err)?;
                Ok(out)
            })()
            .map_err(|e| over_quota(e, exec));
            self.after_write(&db, guard)?;
            result?
        };
        let wrote = matches!(outcome, Outcome::Changes { changes, .. } if changes > 0);
        Ok((
            outcome,
            if wrote {
                touched_tables(&touched)
            } else {
                vec![]
            },
        ))
    }

    /// Runs several statements in one transaction: all or nothing.
    pub fn batch(
        &self,
        space: &str,
        name: &str,
        stmts: &[Stmt],
        exec: &Exec,
    ) -> Result<(Vec<Outcome>, Vec<String>), SqlError> {
        let touched = Touched::default();
        let db = self.database(space, name, true)?;
        let mut guard = self.lock_writer(&db)?;
        hosting::reset_committed();
        let result = Self::batch_in(self, &mut guard, stmts, exec, &touched)
            .map_err(|e| over_quota(e, exec));
        self.after_write(&db, guard)?;
        let out = result?;
        let wrote = out
            .iter()
            .any(|o| matches!(o, Outcome::Changes { changes, .. } if *changes > 0));
        Ok((
            out,
            if wrote {
                touched_tables(&touched)
            } else {
                vec![]
            },
        ))
    }

    /// Records a commit made through `guard`'s writer in the storage layer when it hosts the
    /// database: queued in commit order under the writer lock, then awaited without it so
    /// concurrent writers share one durable store commit. If it cannot be recorded, the
    /// working copy (which holds it) is discarded and the next use rebuilds it from the
    /// store: the write is then as if it never happened.
    fn after_write(
        &self,
        db: &Arc<Database>,
        mut guard: std::sync::MutexGuard<'_, Option<Writer>>,
    ) -> Result<(), SqlError> {
        let Some(frames) = hosting::take_committed() else {
            return Ok(());
        };
        let Hosting::Shipped(shipper) = &self.hosting else {
            return Ok(());
        };
        let Some(writer) = guard.as_mut() else {
            return Ok(());
        };
        let Some(state) = writer.ship.as_mut() else {
            return Ok(());
        };
        let queued = shipper.prepare(
            &db.space,
            &db.name,
            &db.path,
            &writer.conn,
            state,
            frames,
            &db.shipping,
        );
        drop(guard);
        let recorded = match queued {
            Ok(Some(ticket)) => shipper.wait(&db.shipping, ticket),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        recorded.map_err(|e| {
            tracing::error!(error = %e, space = %db.space, db = %db.name, "SQL write not recorded; discarding the working copy");
            self.discard(db);
            SqlError::Unavailable(
                "the write could not be confirmed by storage and may not have been applied; retry"
                    .into(),
            )
        })
    }

    /// The writer of a database. A writer poisoned by a panic is never trusted again: the
    /// working copy is discarded (shipped hosting rebuilds it from the store).
    fn lock_writer<'a>(
        &self,
        db: &'a Arc<Database>,
    ) -> Result<std::sync::MutexGuard<'a, Option<Writer>>, SqlError> {
        match db.writer.lock() {
            Ok(g) => Ok(g),
            Err(poisoned) => {
                drop(poisoned);
                tracing::error!(space = %db.space, db = %db.name, "SQL writer poisoned by a panic");
                if matches!(self.hosting, Hosting::Shipped(_)) {
                    self.discard(db);
                    Err(rebuilding())
                } else {
                    Err(SqlError::Internal("the database writer failed".into()))
                }
            }
        }
    }

    /// Registry slots in use (tests).
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Removes a path's registry slot when nobody else holds it and it holds no database.
    fn forget_slot(&self, path: &Path, slot: Arc<Slot>) {
        if let Ok(mut open) = self.open.lock() {
            let empty = slot.lock().map(|s| s.is_none()).unwrap_or(false);
            // Slots are only cloned under the registry lock: the map's and ours mean unused.
            if empty && Arc::strong_count(&slot) == 2 {
                open.remove(path);
            }
        }
    }

    /// Drops a database's working copy (shipped hosting) so its next use restores it.
    fn discard(&self, db: &Arc<Database>) {
        db.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        // Commits already handed to the store settle first, so the rebuild sees them; queued
        // ones are refused.
        db.shipping.close();
        *db.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let slot = self
            .open
            .lock()
            .ok()
            .and_then(|open| open.get(&db.path).cloned());
        // Under the database's slot, so no restore of the same path can interleave.
        let Some(slot) = slot else { return };
        let Ok(mut open) = slot.lock() else { return };
        if open.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
            *open = None;
            hosting::remove_files(&db.path);
        }
        drop(open);
        self.forget_slot(&db.path, slot);
    }

    fn batch_in(
        &self,
        guard: &mut std::sync::MutexGuard<'_, Option<Writer>>,
        stmts: &[Stmt],
        exec: &Exec,
        touched: &Touched,
    ) -> Result<Vec<Outcome>, SqlError> {
        let conn = &mut guard.as_mut().ok_or_else(rebuilding)?.conn;
        cap_growth(conn, exec.max_growth)?;
        let tx = conn.transaction().map_err(sqlite_err)?;
        let mut out = Vec::with_capacity(stmts.len());
        for (i, s) in stmts.iter().enumerate() {
            match self.statement(&tx, s, exec, exec.read_only(), touched) {
                Ok(o) => out.push(o),
                Err(e) => {
                    // Dropping `tx` rolls everything back: no partial batch is left behind.
                    return Err(match e {
                        SqlError::Invalid(m) => SqlError::Invalid(format!("statement {i}: {m}")),
                        SqlError::Denied(m) => SqlError::Denied(format!("statement {i}: {m}")),
                        other => other,
                    });
                }
            }
        }
        tx.commit().map_err(sqlite_err)?;
        Ok(out)
    }

    /// A consistent snapshot of the database as SQLite file bytes.
    pub fn export(&self, space: &str, name: &str) -> Result<Vec<u8>, SqlError> {
        let db = self.database(space, name, false)?;
        let src = self.reader(&db)?;
        // One scratch file per export: concurrent exports of a database never share one.
        static EXPORTS: AtomicU64 = AtomicU64::new(0);
        let n = EXPORTS.fetch_add(1, Ordering::Relaxed);
        let tmp = db
            .path
            .with_extension(format!("export-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let mut dst = Connection::open(&tmp).map_err(sqlite_err)?;
            {
                let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sqlite_err)?;
                backup
                    .run_to_completion(256, Duration::from_millis(0), None)
                    .map_err(sqlite_err)?;
            }
            drop(dst);
            std::fs::read(&tmp).map_err(|e| SqlError::Internal(e.to_string()))
        })();
        let _ = std::fs::remove_file(&tmp);
        Self::give_back(&db, src);
        result
    }

    fn statement(
        &self,
        conn: &Connection,
        stmt: &Stmt,
        exec: &Exec,
        read_only: bool,
        touched: &Touched,
    ) -> Result<Outcome, SqlError> {
        let grants = exec
            .grants
            .iter()
            .map(|g| Grant {
                level: if read_only { Level::Read } else { g.level },
                restrictions: g.restrictions.clone(),
            })
            .collect();
        let mut gate = Gate::union(grants);
        let record = touched.clone();
        conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            let d = gate.decide(&ctx);
            if d == rusqlite::hooks::Authorization::Allow {
                use rusqlite::hooks::AuthAction as A;
                if let A::Insert { table_name }
                | A::Delete { table_name }
                | A::Update { table_name, .. } = &ctx.action
                {
                    if !table_name.to_ascii_lowercase().starts_with("sqlite_") {
                        if let Ok(mut t) = record.lock() {
                            t.insert((*table_name).to_owned());
                        }
                    }
                }
            }
            d
        }));
        let deadline = Instant::now() + self.limits.time;
        conn.progress_handler(1000, Some(move || Instant::now() > deadline));
        let result = self.prepare_and_run(conn, stmt, exec, read_only);
        conn.authorizer(
            None::<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization>,
        );
        conn.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|e| match e {
            SqlError::Timeout(_) => SqlError::Timeout(self.limits.time.as_millis() as u64),
            other => other,
        })
    }

    fn prepare_and_run(
        &self,
        conn: &Connection,
        stmt: &Stmt,
        exec: &Exec,
        read_only: bool,
    ) -> Result<Outcome, SqlError> {
        let trimmed = stmt.sql.trim();
        if trimmed.is_empty() {
            return Err(SqlError::Invalid("empty statement".into()));
        }
        // VACUUM writes whole files (VACUUM INTO writes anywhere) and is not covered by the
        // authorizer: refuse it outright, also behind leading comments.
        if super::gate::is_vacuum(trimmed) {
            return Err(SqlError::Denied("VACUUM is not allowed".into()));
        }
        let mut st = conn.prepare(trimmed).map_err(sqlite_err)?;
        if read_only && !st.readonly() {
            return Err(SqlError::Denied(
                "Read-only violation: this statement can change the database".into(),
            ));
        }
        let params: Vec<SqlValue> = stmt.params.iter().map(to_sql).collect::<Result<_, _>>()?;
        if params.len() != st.parameter_count() {
            return Err(SqlError::Invalid(format!(
                "the statement takes {} parameters, {} given",
                st.parameter_count(),
                params.len()
            )));
        }
        let columns: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
        if columns.is_empty() {
            let changes = st
                .execute(rusqlite::params_from_iter(params.iter()))
                .map_err(sqlite_err)?;
            return Ok(Outcome::Changes {
                changes: changes as u64,
                last_insert_row_id: conn.last_insert_rowid(),
            });
        }
        let max_rows = exec
            .max_rows
            .unwrap_or(self.limits.max_rows)
            .min(self.limits.max_rows);
        let mut rows_out = Vec::new();
        let budget = self.limits.max_response_bytes;
        let too_large = || SqlError::TooLarge(format!("the result is larger than {budget} bytes"));
        // The column names and the envelope.
        let mut bytes = 64 + columns.iter().map(|c| c.len() + 3).sum::<usize>();
        if bytes > budget {
            return Err(too_large());
        }
        let mut rows = st
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            if rows_out.len() >= max_rows {
                return Err(SqlError::TooLarge(format!(
                    "the result has more than {max_rows} rows"
                )));
            }
            let mut vals = Vec::with_capacity(columns.len());
            bytes += 3;
            for i in 0..columns.len() {
                let v = row.get_ref(i).map_err(sqlite_err)?;
                // Charged before it is converted: the budget is checked before memory is spent.
                bytes = bytes.saturating_add(encoded_len(v));
                if bytes > budget {
                    return Err(too_large());
                }
                vals.push(to_cell(v));
            }
            rows_out.push(vals);
        }
        Ok(Outcome::Rows {
            columns,
            rows: rows_out,
        })
    }
}

/// Batch results: `{"results": [...]}`.
#[derive(serde::Serialize)]
pub struct Results<'a> {
    /// One outcome per statement.
    pub results: &'a [Outcome],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_injective_and_case_fold_safe() {
        // Lower-case names keep the files they always had.
        assert_eq!(file_stem("app1"), "app1");
        assert_eq!(file_stem("my-db_2.x"), "my-db_2.x");
        // `/` and upper case are escaped; no two names share a stem, even folded to one case.
        let names = [
            "app1",
            "APP1",
            "App1",
            "app1/secrets",
            "app1+2fsecrets",
            "xyz.tinycloud.listen/conversations",
            "a/b",
            "a+2fb",
        ];
        let stems: HashSet<String> = names.iter().map(|n| file_stem(n).to_lowercase()).collect();
        assert_eq!(stems.len(), names.len());
        assert!(names.iter().all(|n| !file_stem(n).contains('/')));
        // Long names get a fixed-length hashed stem.
        let long = "A".repeat(128);
        let s = file_stem(&long);
        assert!(s.starts_with('~') && s.len() == 33, "{s}");
        assert_ne!(s, file_stem(&"B".repeat(128)));
        assert!(file_stem(&"a/".repeat(60)).len() <= MAX_STEM);
    }

    #[test]
    fn legacy_upper_case_files_are_moved_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let dbs = Databases::new(dir.path(), SqlLimits::default(), Hosting::Local).unwrap();
        let space_dir = dbs.space_dir("s");
        std::fs::create_dir_all(&space_dir).unwrap();
        {
            let c = Connection::open(space_dir.join("MyDb.db")).unwrap();
            c.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES ('old')")
                .unwrap();
        }
        let read = |name: &str| {
            dbs.run(
                "s",
                name,
                &Stmt {
                    sql: "SELECT v FROM t".into(),
                    params: vec![],
                },
                &Exec::single(Level::Read, Restrictions::default(), true),
            )
            .map(|(o, _)| o.to_json()["rows"].clone())
        };
        // Another spelling never claims the file.
        assert!(matches!(read("MYDB"), Err(SqlError::NotFound(_))));
        assert_eq!(read("MyDb").unwrap(), serde_json::json!([["old"]]));
        assert!(!space_dir.join("MyDb.db").exists());
        assert!(dbs.path_of("s", "MyDb").exists());
    }
}

//! The open databases: where each one's file is, opening (and, shipped, restoring) it into its
//! registry slot, the limits on how many are open and how many a space holds, the pool of
//! read-only connections, and discarding a working copy.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::connection::{configure, rebuilding, sqlite_err};
use super::Databases;
use crate::sql::error::SqlError;
use crate::sql::hosting::{self, Hosting, ShipState};

/// Idle read-only connections kept per open database (each holds two descriptors).
const READERS: usize = 2;

/// Longest file stem kept in escaped form; longer names are stored under a hash.
pub(super) const MAX_STEM: usize = 160;

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

pub(super) struct Database {
    pub(super) space: String,
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) writer: Mutex<Option<Writer>>,
    pub(super) readers: Mutex<Vec<Connection>>,
    /// Commits waiting to be recorded by the storage layer (shipped hosting).
    pub(super) shipping: hosting::ShipQueue,
    /// The working copy was discarded; its files may be gone or being rebuilt.
    pub(super) closed: AtomicBool,
    /// When it was last used (a tick of [`Databases::clock`]), for closing idle ones.
    pub(super) last_used: AtomicU64,
}

/// The single writer connection of a database, with its shipping progress when the storage
/// layer hosts it.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) ship: Option<ShipState>,
}

/// Where an open database lives in the registry.
pub(super) type Slot = Mutex<Option<Arc<Database>>>;

impl Databases {
    /// The directory of a space's databases.
    pub(super) fn space_dir(&self, space: &str) -> PathBuf {
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

    pub(super) fn database(
        &self,
        space: &str,
        name: &str,
        create: bool,
    ) -> Result<Arc<Database>, SqlError> {
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
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sqlite_err)?;
        // Shipping reads commits from the WAL; a database SQLite keeps in another mode would
        // never ship (and the local copy would lose its crash safety model).
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqlError::Internal(format!(
                "database stays in journal mode {mode}, not WAL"
            )));
        }
        // Local files are the durable copy: fsync every commit. Shipped: the store is, and a
        // working copy never outlives the process, so fsyncing it would only cost time.
        let sync = if ship.is_some() { "OFF" } else { "FULL" };
        writer
            .pragma_update(None, "synchronous", sync)
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
            closed: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        });
        drop(creating);
        *open = Some(db.clone());
        Ok((db, true))
    }

    pub(super) fn reader(&self, db: &Database) -> Result<Connection, SqlError> {
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

    pub(super) fn give_back(db: &Database, c: Connection) {
        if let Ok(mut r) = db.readers.lock() {
            if r.len() < READERS {
                r.push(c);
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
    pub(super) fn discard(&self, db: &Arc<Database>) {
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
}

//! The embedded replay-nonce store: an in-memory set backed by an append-only file.
//!
//! Every consumed nonce is written to the file (40 bytes: nonce ‖ expiry) before the request
//! is answered, so a process crash or `kill -9` never forgets one: after a restart a replayed
//! invocation still gets 409 for as long as it could be valid. The file is not fsynced per
//! nonce (reads would wait for a disk flush); instead the index writer calls [`ReplayLog::sync`]
//! before every commit, so the nonce of a write is durable no later than the write itself and
//! a power loss can never leave a write whose invocation could be replayed (rolling back newer
//! data). One fsync serves a whole group commit. The file is compacted (live nonces only) as it
//! grows.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Hash, StoreError, StoreResult};

const RECORD: usize = 40;
/// Compact when the file holds this many records more than are live.
const COMPACT_SLACK: usize = 100_000;

struct Inner {
    live: HashMap<Hash, i64>,
    file: Arc<File>,
    records: usize,
    /// Nonces consumed since open.
    written: u64,
}

/// Consumed nonces.
pub struct ReplayLog {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// How many of the nonces consumed since open are known to be on disk.
    durable: AtomicU64,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl ReplayLog {
    /// Loads the log at `path`, dropping nonces that expired before `now_ms`.
    pub fn open(path: &Path, now_ms: i64) -> StoreResult<Self> {
        let mut live = HashMap::new();
        let mut records = 0;
        if let Ok(mut f) = File::open(path) {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            // A torn final record (crash mid-write) is ignored.
            for rec in buf.chunks_exact(RECORD) {
                records += 1;
                let mut nonce = [0u8; 32];
                nonce.copy_from_slice(&rec[..32]);
                let mut exp = [0u8; 8];
                exp.copy_from_slice(&rec[32..]);
                let exp = i64::from_le_bytes(exp);
                if exp >= now_ms {
                    live.insert(nonce, exp);
                }
            }
        }
        let log = ReplayLog {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                live,
                file: Arc::new(open_append(path)?),
                records,
                written: 0,
            }),
            durable: AtomicU64::new(0),
        };
        log.compact(now_ms)?;
        Ok(log)
    }

    /// Consumes `nonce` (valid until `expires_ms`); false if it was already consumed.
    pub fn consume(&self, nonce: Hash, expires_ms: i64, now_ms: i64) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        if inner.live.get(&nonce).is_some_and(|exp| *exp >= now_ms) {
            return Ok(false);
        }
        let mut rec = [0u8; RECORD];
        rec[..32].copy_from_slice(&nonce);
        rec[32..].copy_from_slice(&expires_ms.to_le_bytes());
        (&*inner.file).write_all(&rec)?;
        inner.live.insert(nonce, expires_ms);
        inner.records += 1;
        inner.written += 1;
        let compact = inner.records > inner.live.len() + COMPACT_SLACK;
        drop(inner);
        if compact {
            self.compact(now_ms)?;
        }
        Ok(true)
    }

    /// Drops expired nonces from memory and rewrites the file with the live ones.
    pub fn compact(&self, now_ms: i64) -> StoreResult<u64> {
        let mut inner = self.lock()?;
        let before = inner.live.len();
        inner.live.retain(|_, exp| *exp >= now_ms);
        let removed = (before - inner.live.len()) as u64;
        let tmp = self.path.with_extension("compact");
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::with_capacity(inner.live.len() * RECORD);
            for (nonce, exp) in &inner.live {
                buf.extend_from_slice(nonce);
                buf.extend_from_slice(&exp.to_le_bytes());
            }
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        inner.file = Arc::new(open_append(&self.path)?);
        inner.records = inner.live.len();
        // Every live nonce is in the file just synced.
        self.durable.fetch_max(inner.written, Ordering::AcqRel);
        Ok(removed)
    }

    /// Makes every nonce consumed so far durable (one fsync; nothing if none is pending).
    pub fn sync(&self) -> StoreResult<()> {
        let (file, target) = {
            let inner = self.lock()?;
            if self.durable.load(Ordering::Acquire) >= inner.written {
                return Ok(());
            }
            (inner.file.clone(), inner.written)
        };
        // Outside the lock: consumers keep appending meanwhile. A compaction in between wrote
        // and synced its own file, which holds these records too.
        file.sync_data()?;
        self.durable.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Nonces consumed since open, and how many of them are known durable.
    pub fn durability(&self) -> StoreResult<(u64, u64)> {
        let written = self.lock()?.written;
        Ok((written, self.durable.load(Ordering::Acquire)))
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("replay log lock poisoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("replay.log");
        {
            let log = ReplayLog::open(&p, 0).unwrap();
            assert!(log.consume([1; 32], 100, 0).unwrap());
            assert!(!log.consume([1; 32], 100, 0).unwrap());
            assert!(log.consume([2; 32], 500, 0).unwrap());
        }
        // torn trailing record is ignored
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[9u8; 17]).unwrap();
        drop(f);
        let log = ReplayLog::open(&p, 50).unwrap();
        assert!(!log.consume([1; 32], 100, 50).unwrap());
        assert!(!log.consume([2; 32], 500, 50).unwrap());
        // after expiry the nonce is forgotten (its invocation can no longer be valid)
        let log = ReplayLog::open(&p, 200).unwrap();
        assert!(log.consume([1; 32], 300, 200).unwrap());
        assert!(!log.consume([2; 32], 500, 200).unwrap());
    }
}

//! A read cache of KV heads (and inline values) in front of the index.
//!
//! Correctness rule: writers *invalidate* after their commit and before they acknowledge, and
//! bump a sequence number; a reader only fills the cache if no write finished while it was
//! reading the database. So a cached entry is never older than an acknowledged write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::{KvEntry, ValueLocation};

/// Bounded cache of `(space, key) → head`.
pub struct HeadCache {
    map: RwLock<HashMap<(String, String), KvEntry>>,
    seq: AtomicU64,
    bytes: AtomicU64,
    capacity: u64,
}

fn cost(space: &str, key: &str, e: &KvEntry) -> u64 {
    let inline = match &e.location {
        ValueLocation::Inline(b) => b.len(),
        ValueLocation::Blob => 0,
    };
    (space.len() + key.len() + inline + 128) as u64
}

impl HeadCache {
    /// A cache holding at most about `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        HeadCache {
            map: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            capacity,
        }
    }

    /// The write sequence; read it before a database read and pass it to [`Self::fill`].
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// A cached head.
    pub fn get(&self, space: &str, key: &str) -> Option<KvEntry> {
        let map = self.map.read().ok()?;
        map.get(&(space.to_owned(), key.to_owned())).cloned()
    }

    /// Caches a head read from the database, unless a write finished since `seq`.
    pub fn fill(&self, space: &str, key: &str, entry: &KvEntry, seq: u64) {
        let c = cost(space, key, entry);
        if c > self.capacity / 16 {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if self.seq.load(Ordering::Acquire) != seq {
            return;
        }
        if self.bytes.load(Ordering::Relaxed) + c > self.capacity {
            map.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        if map
            .insert((space.to_owned(), key.to_owned()), entry.clone())
            .is_none()
        {
            self.bytes.fetch_add(c, Ordering::Relaxed);
        }
    }

    /// Called by a writer after its commit, before it acknowledges.
    pub fn invalidate(&self, space: &str, key: &str) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        self.seq.fetch_add(1, Ordering::AcqRel);
        if let Some(old) = map.remove(&(space.to_owned(), key.to_owned())) {
            self.bytes.fetch_sub(
                cost(space, key, &old).min(self.bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn e(v: &'static [u8]) -> KvEntry {
        KvEntry {
            hash: *blake3::hash(v).as_bytes(),
            size: v.len() as u64,
            metadata: vec![],
            updated_at: 0,
            location: ValueLocation::Inline(Bytes::from_static(v)),
        }
    }

    #[test]
    fn stale_fill_after_a_write_is_dropped() {
        let c = HeadCache::new(1 << 20);
        let s = c.seq();
        c.invalidate("s", "k"); // a write finished while we were reading
        c.fill("s", "k", &e(b"old"), s);
        assert!(c.get("s", "k").is_none());
        let s = c.seq();
        c.fill("s", "k", &e(b"new"), s);
        assert_eq!(c.get("s", "k"), Some(e(b"new")));
        c.invalidate("s", "k");
        assert!(c.get("s", "k").is_none());
    }

    #[test]
    fn bounded() {
        let c = HeadCache::new(16 * 1024);
        for i in 0..1000 {
            let s = c.seq();
            c.fill("s", &format!("k{i}"), &e(b"v"), s);
        }
        assert!(c.bytes.load(Ordering::Relaxed) <= 16 * 1024);
    }
}

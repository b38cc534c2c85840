//! Reclaiming KV blobs no head points at any more.
//!
//! The index keeps a reference count per blob (KV heads whose value lives in the blob store).
//! The write that drops a count to zero — a delete, an overwrite, or a refused put whose
//! upload nobody references — queues the blob in the same transaction, so a crash can never
//! lose the fact that a blob became garbage. [`BlobCollector`] deletes queued blobs in the
//! background, never on the write path:
//!
//! - An upload *pins* its hash ([`BlobPins::pin`]) before committing the blob and holds the
//!   pin until its index write has committed; the collector skips pinned hashes, and an
//!   upload that meets a hash being collected waits for that collection to finish (its commit
//!   then stores the bytes again). So no in-flight put can end up pointing at a deleted blob.
//! - Under its own claim on a hash the collector re-reads the queue: a put that committed a
//!   head for the blob meanwhile removed the entry, and the blob is kept.
//! - A queue entry is removed by its id only after the file is gone; a crash in between
//!   leaves the entry, and the next pass deletes (idempotently) and removes it.
//!
//! Blobs whose upload committed but whose index write never happened (a crash between the
//! two) are found by [`BlobCollector::sweep_orphans`] at start-up: files older than the
//! process that nothing in the index refers to are queued like any other garbage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::{BlobStore, Hash, IndexStore, StoreResult};

/// Queue entries handled per pass.
const BATCH: usize = 256;
/// How often the collector looks at the queue without being woken.
const IDLE_PASS: Duration = Duration::from_secs(30);

enum Slot {
    /// Uploads relying on the blob.
    Pinned(usize),
    /// The collector is deciding about (and maybe deleting) the blob.
    Collecting,
}

/// Hashes that uploads in flight rely on, and hashes being collected.
#[derive(Default)]
pub struct BlobPins {
    slots: Mutex<HashMap<Hash, Slot>>,
    released: Notify,
}

/// Keeps a blob from being collected while it lives.
pub struct PinGuard {
    pins: Arc<BlobPins>,
    hash: Hash,
}

/// The collector's claim on a hash; uploads of the same content wait until it is dropped.
struct CollectGuard {
    pins: Arc<BlobPins>,
    hash: Hash,
}

impl BlobPins {
    /// Pins `hash` (waiting while the collector decides about it).
    pub async fn pin(self: &Arc<Self>, hash: Hash) -> PinGuard {
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            {
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                match slots.get_mut(&hash) {
                    None => {
                        slots.insert(hash, Slot::Pinned(1));
                        break;
                    }
                    Some(Slot::Pinned(n)) => {
                        *n += 1;
                        break;
                    }
                    Some(Slot::Collecting) => {}
                }
            }
            released.await;
        }
        PinGuard {
            pins: self.clone(),
            hash,
        }
    }

    fn try_collect(self: &Arc<Self>, hash: Hash) -> Option<CollectGuard> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.contains_key(&hash) {
            return None;
        }
        slots.insert(hash, Slot::Collecting);
        Some(CollectGuard {
            pins: self.clone(),
            hash,
        })
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut slots = self.pins.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Slot::Pinned(n)) = slots.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                slots.remove(&self.hash);
            }
        }
    }
}

impl Drop for CollectGuard {
    fn drop(&mut self) {
        self.pins
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.hash);
        self.pins.released.notify_waiters();
    }
}

/// Deletes queued garbage blobs.
pub struct BlobCollector {
    index: Arc<dyn IndexStore>,
    blobs: Arc<dyn BlobStore>,
    pins: Arc<BlobPins>,
    wake: Arc<Notify>,
}

impl BlobCollector {
    /// A collector over the given stores; uploads must pin through [`Self::pins`].
    pub fn new(index: Arc<dyn IndexStore>, blobs: Arc<dyn BlobStore>) -> Self {
        BlobCollector {
            wake: index.garbage_signal(),
            index,
            blobs,
            pins: Arc::default(),
        }
    }

    /// The pins uploads take.
    pub fn pins(&self) -> &Arc<BlobPins> {
        &self.pins
    }

    /// Asks for a pass soon (the index does after every commit that queued garbage).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass over the head of the queue; returns how many blobs were deleted.
    pub async fn collect_once(&self) -> StoreResult<usize> {
        let queued = self.index.blob_garbage(BATCH).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        // Pinned hashes stay queued: an upload relies on them right now.
        let claimed: Vec<(i64, Hash, CollectGuard)> = queued
            .into_iter()
            .filter_map(|(id, h)| self.pins.try_collect(h).map(|g| (id, h, g)))
            .collect();
        if claimed.is_empty() {
            return Ok(0);
        }
        let still = self
            .index
            .blob_garbage_queued(claimed.iter().map(|(id, _, _)| *id).collect())
            .await?;
        let mut done = Vec::new();
        for (id, hash, guard) in claimed {
            if !still.contains(&id) {
                continue;
            }
            match self.blobs.delete(&hash).await {
                Ok(()) => done.push(id),
                Err(e) => tracing::warn!(error = %e, "could not delete a garbage blob"),
            }
            drop(guard);
        }
        let n = done.len();
        if !done.is_empty() {
            self.index.blob_collected(done).await?;
        }
        Ok(n)
    }

    /// Queues blob files older than `cutoff` that nothing in the index refers to.
    pub async fn sweep_orphans(&self, cutoff: SystemTime) -> StoreResult<usize> {
        let mut queued = 0;
        for shard in 0..=u8::MAX {
            let old: Vec<Hash> = self
                .blobs
                .list(shard)
                .await?
                .into_iter()
                .filter(|(_, modified)| *modified < cutoff)
                .map(|(h, _)| h)
                .collect();
            for chunk in old.chunks(1024) {
                queued += self.index.queue_orphans(chunk.to_vec()).await?;
            }
        }
        if queued > 0 {
            tracing::info!(blobs = queued, "queued orphaned blobs for deletion");
            self.wake();
        }
        Ok(queued)
    }

    /// Runs until the task is aborted: the orphan sweep once, then a pass whenever woken (and
    /// every half minute), until the queue is drained.
    pub async fn run(self: Arc<Self>, started: SystemTime) {
        if let Err(e) = self.sweep_orphans(started).await {
            tracing::warn!(error = %e, "orphan blob sweep failed");
        }
        loop {
            match self.collect_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "blob collection failed"),
            }
            let _ = tokio::time::timeout(IDLE_PASS, self.wake.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs_blobs::FsBlobStore;
    use crate::store::sqlite::SqliteIndex;
    use crate::store::{KvEntry, KvPut, KvStore, Precondition, ValueLocation, WriteOutcome};

    struct Fx {
        _dir: tempfile::TempDir,
        index: Arc<SqliteIndex>,
        blobs: Arc<FsBlobStore>,
        gc: BlobCollector,
    }

    async fn fx() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(SqliteIndex::open(&dir.path().join("index.db")).unwrap());
        let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
        let gc = BlobCollector::new(index.clone(), blobs.clone());
        Fx {
            _dir: dir,
            index,
            blobs,
            gc,
        }
    }

    impl Fx {
        async fn upload(&self, v: &[u8]) -> Hash {
            let h = *blake3::hash(v).as_bytes();
            let mut w = self.blobs.begin().await.unwrap();
            w.write(v).await.unwrap();
            w.commit(&h).await.unwrap();
            h
        }

        async fn put(&self, key: &str, v: &[u8], pre: Precondition) -> WriteOutcome {
            let hash = self.upload(v).await;
            self.index
                .kv_put(KvPut {
                    space: "s".into(),
                    key: key.into(),
                    entry: KvEntry {
                        hash,
                        size: v.len() as u64,
                        metadata: vec![],
                        updated_at: 1,
                        location: ValueLocation::Blob,
                    },
                    precondition: pre,
                    limit: None,
                    event: None,
                })
                .await
                .unwrap()
        }

        async fn del(&self, key: &str) {
            let out = self
                .index
                .kv_delete("s", key, Precondition::None, None)
                .await
                .unwrap();
            assert!(matches!(out, WriteOutcome::Done(_)));
        }

        async fn stored(&self, v: &[u8]) -> bool {
            let h = blake3::hash(v);
            self.blobs.open(h.as_bytes()).await.unwrap().is_some()
        }

        async fn drain(&self) -> usize {
            let mut n = 0;
            loop {
                match self.gc.collect_once().await.unwrap() {
                    0 => return n,
                    k => n += k,
                }
            }
        }
    }

    #[tokio::test]
    async fn unreferenced_blobs_are_collected_and_shared_ones_kept() {
        let f = fx().await;
        // Two keys share one blob: deleting one keeps it, deleting both collects it.
        f.put("a", b"shared", Precondition::None).await;
        f.put("b", b"shared", Precondition::None).await;
        f.del("a").await;
        assert_eq!(f.drain().await, 0);
        assert!(f.stored(b"shared").await);
        f.del("b").await;
        assert_eq!(f.drain().await, 1);
        assert!(!f.stored(b"shared").await);
        // An overwrite makes the old value garbage, not the new one.
        f.put("c", b"v1", Precondition::None).await;
        f.put("c", b"v2", Precondition::None).await;
        assert_eq!(f.drain().await, 1);
        assert!(!f.stored(b"v1").await && f.stored(b"v2").await);
        // Rewriting the same value keeps it.
        f.put("c", b"v2", Precondition::None).await;
        assert_eq!(f.drain().await, 0);
        assert!(f.stored(b"v2").await);
        // A refused put's upload is garbage.
        let out = f.put("c", b"v3", Precondition::Absent).await;
        assert_eq!(out, WriteOutcome::PreconditionFailed);
        assert_eq!(f.drain().await, 1);
        assert!(!f.stored(b"v3").await && f.stored(b"v2").await);
        // Garbage that a put references again before collection is kept.
        f.del("c").await;
        f.put("d", b"v2", Precondition::None).await;
        assert_eq!(f.drain().await, 0);
        assert!(f.stored(b"v2").await);
    }

    #[tokio::test]
    async fn pinned_blobs_wait_and_pins_wait_for_collection() {
        let f = fx().await;
        f.put("a", b"x", Precondition::None).await;
        f.del("a").await;
        let h = *blake3::hash(b"x").as_bytes();
        let pin = f.gc.pins().pin(h).await;
        assert_eq!(f.drain().await, 0, "an upload in flight relies on it");
        assert!(f.stored(b"x").await);
        drop(pin);
        assert_eq!(f.drain().await, 1);
        // A pin taken while the collector holds the hash waits for it.
        let claim = f.gc.pins.try_collect(h).unwrap();
        let pins = f.gc.pins().clone();
        let waiter = tokio::spawn(async move { pins.pin(h).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(claim);
        let pin = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(f.gc.pins.try_collect(h).is_none());
        drop(pin);
    }

    #[tokio::test]
    async fn orphans_older_than_the_cutoff_are_swept_and_referenced_blobs_kept() {
        let f = fx().await;
        f.put("live", b"live", Precondition::None).await;
        let before = SystemTime::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.upload(b"orphan").await;
        // Newer than the cutoff: could belong to an upload in flight.
        assert_eq!(f.gc.sweep_orphans(before).await.unwrap(), 0);
        let after = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(f.gc.sweep_orphans(after).await.unwrap(), 1);
        assert_eq!(f.drain().await, 1);
        assert!(!f.stored(b"orphan").await && f.stored(b"live").await);
    }

    #[tokio::test]
    async fn counts_are_rebuilt_for_an_index_of_an_older_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
        {
            let index = Arc::new(SqliteIndex::open(&path).unwrap());
            let f = Fx {
                _dir: tempfile::tempdir().unwrap(),
                index,
                blobs: blobs.clone(),
                gc: BlobCollector::new(
                    Arc::new(SqliteIndex::open(&dir.path().join("other.db")).unwrap()),
                    blobs.clone(),
                ),
            };
            f.put("a", b"old", Precondition::None).await;
        }
        // An index written before counting existed: no counts, version 0.
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("DELETE FROM blob_ref; PRAGMA user_version = 0;")
                .unwrap();
        }
        let index = Arc::new(SqliteIndex::open(&path).unwrap());
        let gc = BlobCollector::new(index.clone(), blobs.clone());
        let later = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(
            gc.sweep_orphans(later).await.unwrap(),
            0,
            "still referenced"
        );
        index
            .kv_delete("s", "a", Precondition::None, None)
            .await
            .unwrap();
        assert_eq!(gc.collect_once().await.unwrap(), 1);
    }
}

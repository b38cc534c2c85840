//! Content-addressed blobs as files: `<root>/<first two hex digits>/<64 hex digits>`.
//!
//! Uploads stream into `<root>/tmp/`, are fsynced, then renamed into place and the directory
//! fsynced, so a blob is either absent or complete and durable. Identical content is stored
//! once; committing content that is already stored refreshes the file's modification time,
//! so the orphan sweep (which only considers files older than the process) never takes a
//! blob an upload of this process relies on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{BlobReader, BlobStore, BlobWriter, Hash, StoreResult};

/// Blob files under one root directory.
pub struct FsBlobStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl FsBlobStore {
    /// Opens (creating) the store at `root`. Leftover temporary files from a crash are removed.
    pub fn open(root: &Path) -> StoreResult<Self> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join(&hex[..2]).join(hex)
    }
}

struct FsWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    target: Box<dyn Fn(&Hash) -> PathBuf + Send>,
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn begin(&self) -> StoreResult<Box<dyn BlobWriter>> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let file = tokio::fs::File::create(&tmp).await?;
        let root = self.root.clone();
        Ok(Box::new(FsWriter {
            file,
            tmp,
            target: Box::new(move |h| {
                let hex = hex::encode(h);
                root.join(&hex[..2]).join(hex)
            }),
        }))
    }

    async fn open(&self, hash: &Hash) -> StoreResult<Option<BlobReader>> {
        match tokio::fs::File::open(self.path_of(hash)).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open_at(&self, hash: &Hash, offset: u64) -> StoreResult<Option<BlobReader>> {
        use tokio::io::AsyncSeekExt as _;
        match tokio::fs::File::open(self.path_of(hash)).await {
            Ok(mut f) => {
                f.seek(std::io::SeekFrom::Start(offset)).await?;
                Ok(Some(Box::new(f)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, hash: &Hash) -> StoreResult<()> {
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, shard: u8) -> StoreResult<Vec<(Hash, std::time::SystemTime)>> {
        let dir = self.root.join(hex::encode([shard]));
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                // Anything that is not a 64-hex-digit name is not a blob of this store.
                let Some(hash) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| hex::decode(n).ok())
                    .and_then(|b| Hash::try_from(b).ok())
                else {
                    continue;
                };
                match entry.metadata().and_then(|m| m.modified()) {
                    Ok(t) => out.push((hash, t)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| super::StoreError::Backend(format!("blob listing failed: {e}")))?
    }
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: &[u8]) -> StoreResult<()> {
        self.file.write_all(chunk).await?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, hash: &Hash) -> StoreResult<()> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let target = (self.target)(hash);
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
        tokio::fs::create_dir_all(&dir).await?;
        if tokio::fs::try_exists(&target).await? {
            let t = target.clone();
            let touched = tokio::task::spawn_blocking(move || {
                std::fs::File::options()
                    .write(true)
                    .open(&t)?
                    .set_modified(std::time::SystemTime::now())
            })
            .await
            .map_err(|e| super::StoreError::Backend(format!("blob touch failed: {e}")))?;
            match touched {
                Ok(()) => {
                    tokio::fs::remove_file(&self.tmp).await?;
                    return Ok(());
                }
                // Collected meanwhile: store this upload's bytes after all (below).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        tokio::fs::rename(&self.tmp, &target).await?;
        let d = tokio::fs::File::open(&dir).await?;
        d.sync_all().await?;
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // An abandoned upload leaves nothing behind (after commit the file is already renamed).
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn write_commit_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let data = b"hello blob";
        let hash = *blake3::hash(data).as_bytes();
        let mut w = store.begin().await.unwrap();
        w.write(&data[..5]).await.unwrap();
        w.write(&data[5..]).await.unwrap();
        w.commit(&hash).await.unwrap();
        let mut r = store.open(&hash).await.unwrap().unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        assert!(store.open(&[0; 32]).await.unwrap().is_none());
        store.delete(&hash).await.unwrap();
        assert!(store.open(&hash).await.unwrap().is_none());
        store.delete(&hash).await.unwrap();
        // abandoned uploads leave no temp files
        let mut w = store.begin().await.unwrap();
        w.write(b"partial").await.unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}

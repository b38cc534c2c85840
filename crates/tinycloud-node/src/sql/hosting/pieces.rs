//! Pieces of the stored log (a snapshot or a WAL segment): up to the inline threshold kept in
//! the index, larger ones streamed into the blob store under an address keyed per database
//! and generation.

use std::io::{Read, Write};

use tokio::io::AsyncReadExt;

use super::{io, store, Shipper};
use crate::sql::error::SqlError;
use crate::store::{Hash, LogBytes};

/// Chunk size for streaming snapshots.
const CHUNK: usize = 1024 * 1024;

/// The blob address of a log piece: keyed by the database and generation, so no two databases
/// or generations (and no KV value) ever share a blob, and a dropped generation's blobs can
/// be deleted safely.
pub(super) fn piece_key(space: &str, db: &str, generation: u64) -> [u8; 32] {
    let mut material = (space.len() as u64).to_be_bytes().to_vec();
    material.extend_from_slice(space.as_bytes());
    material.extend_from_slice(&generation.to_be_bytes());
    material.extend_from_slice(db.as_bytes());
    blake3::derive_key("tinycloud sql log piece v1", &material)
}

impl Shipper {
    /// Stores one piece read from `src` (`len` bytes).
    pub(super) fn put_piece(
        &self,
        space: &str,
        db: &str,
        generation: u64,
        mut src: impl Read,
        len: u64,
    ) -> Result<LogBytes, SqlError> {
        if usize::try_from(len).is_ok_and(|l| l <= self.inline_max) {
            let mut buf = Vec::with_capacity(len as usize);
            src.read_to_end(&mut buf).map_err(io)?;
            return Ok(LogBytes::Inline(buf));
        }
        let key = piece_key(space, db, generation);
        self.runtime.block_on(async {
            let mut hasher = blake3::Hasher::new_keyed(&key);
            let mut writer = self.blobs.begin().await.map_err(store)?;
            let mut buf = vec![0; CHUNK];
            let mut total = 0u64;
            loop {
                let n = src.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                writer.write(&buf[..n]).await.map_err(store)?;
                total += n as u64;
            }
            let hash: Hash = *hasher.finalize().as_bytes();
            writer.commit(&hash).await.map_err(store)?;
            Ok(LogBytes::Blob(hash, total))
        })
    }

    /// Appends a stored piece to `out`.
    pub(super) fn get_piece(
        &self,
        piece: &LogBytes,
        out: &mut std::fs::File,
    ) -> Result<(), SqlError> {
        match piece {
            LogBytes::Inline(b) => out.write_all(b).map_err(io),
            LogBytes::Blob(hash, len) => self.runtime.block_on(async {
                let mut r = self.blobs.open(hash).await.map_err(store)?.ok_or_else(|| {
                    // Possibly a generation dropped between reading the log and now.
                    SqlError::Unavailable("a blob of the SQL log is missing; retry".into())
                })?;
                let mut buf = vec![0; CHUNK];
                let mut total = 0u64;
                loop {
                    let n = r.read(&mut buf).await.map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).map_err(io)?;
                    total += n as u64;
                }
                if total != *len {
                    return Err(SqlError::Internal(
                        "a blob of the SQL log has the wrong length".into(),
                    ));
                }
                Ok(())
            }),
        }
    }
}

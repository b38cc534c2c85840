//! [`QuotaStore`]: per-space quota overrides (`quota_override`), at most `max` of them.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteIndex;
use crate::store::quota::QuotaStore;
use crate::store::StoreResult;

#[async_trait]
impl QuotaStore for SqliteIndex {
    async fn quota_overrides(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT space, limit_bytes FROM quota_override ORDER BY space")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| {
                let (space, bytes) = r?;
                Ok((space, u64::try_from(bytes).unwrap_or(0)))
            })
            .collect()
        })
        .await
    }

    async fn set_quota_override(
        &self,
        space: &str,
        limit: Option<u64>,
        max: usize,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let space = space.to_owned();
        self.write(move |tx| {
            let Some(limit) = limit else {
                tx.execute(
                    "DELETE FROM quota_override WHERE space = ?1",
                    params![space],
                )?;
                return Ok(true);
            };
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM quota_override WHERE space = ?1)",
                params![space],
                |r| r.get(0),
            )?;
            if !exists {
                let n: i64 =
                    tx.query_row("SELECT count(*) FROM quota_override", [], |r| r.get(0))?;
                if usize::try_from(n).unwrap_or(usize::MAX) >= max {
                    return Ok(false);
                }
            }
            // Stored as SQLite's signed integer; larger limits are effectively unlimited.
            let bytes = i64::try_from(limit).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO quota_override (space, limit_bytes, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (space) DO UPDATE SET limit_bytes = ?2, updated_at = ?3",
                params![space, bytes, now_ms],
            )?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overrides_persist_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            let db = SqliteIndex::open(&path).unwrap();
            assert!(db.set_quota_override("a", Some(10), 2, 1).await.unwrap());
            assert!(db.set_quota_override("b", Some(20), 2, 1).await.unwrap());
            // A third is refused; replacing one is not.
            assert!(!db.set_quota_override("c", Some(30), 2, 1).await.unwrap());
            assert!(db.set_quota_override("a", Some(11), 2, 2).await.unwrap());
            assert!(db.set_quota_override("b", None, 2, 2).await.unwrap());
            assert!(db.set_quota_override("b", None, 2, 2).await.unwrap());
            assert!(db
                .set_quota_override("big", Some(u64::MAX), 2, 2)
                .await
                .unwrap());
        }
        let db = SqliteIndex::open(&path).unwrap();
        assert_eq!(
            db.quota_overrides().await.unwrap(),
            vec![("a".to_owned(), 11), ("big".to_owned(), i64::MAX as u64)]
        );
    }
}

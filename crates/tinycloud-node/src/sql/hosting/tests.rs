//! Shipped hosting end to end over the real index and blob store: round trips through fresh
//! nodes, group commit, generations under load, outages, fencing; and the WAL formats.

use super::pieces::piece_key;
use super::wal::{WalHeader, WalIndex};
use super::*;
use crate::sql::engine::{Databases, Exec, Outcome, SqlLimits, Stmt};
use crate::sql::gate::{Level, Restrictions};
use crate::store::fs_blobs::FsBlobStore;
use crate::store::sqlite::SqliteIndex;
use crate::store::SqlLog;
use crate::store::{Hash, LogBytes, SqlShipment};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// The real index, with a switch that makes shipping fail (a storage outage).
struct Flaky {
    inner: Arc<SqliteIndex>,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl SqlLogStore for Flaky {
    async fn sql_log(&self, space: &str, db: &str) -> crate::store::StoreResult<Option<SqlLog>> {
        self.inner.sql_log(space, db).await
    }
    async fn sql_ship(&self, s: Vec<SqlShipment>) -> crate::store::StoreResult<Vec<Hash>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("outage".into()));
        }
        self.inner.sql_ship(s).await
    }
    async fn sql_usage(&self, space: &str) -> crate::store::StoreResult<u64> {
        self.inner.sql_usage(space).await
    }
    async fn sql_databases(&self, space: &str) -> crate::store::StoreResult<Vec<String>> {
        self.inner.sql_databases(space).await
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    log: Arc<Flaky>,
    blobs: Arc<FsBlobStore>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(SqliteIndex::open(&dir.path().join("index.db")).unwrap());
        let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
        Fixture {
            log: Arc::new(Flaky {
                inner: index,
                down: AtomicBool::new(false),
            }),
            blobs,
            dir,
        }
    }

    /// A node's SQL databases over the shared stores, with working copies in `cache`.
    /// Node `cache-a` holding table `t (id, who)` with the row `(1, 'a')`.
    fn writer_a(&self) -> Databases {
        let a = self.node("cache-a", 64 * 1024, u64::MAX);
        exec(
            &a,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)",
            vec![],
        )
        .unwrap();
        exec(&a, "INSERT INTO t VALUES (1, 'a')", vec![]).unwrap();
        a
    }

    fn node(&self, cache: &str, inline_max: usize, checkpoint_bytes: u64) -> Databases {
        let shipper = Shipper::new(
            self.log.clone(),
            self.blobs.clone(),
            tokio::runtime::Handle::current(),
            inline_max,
            checkpoint_bytes,
        );
        Databases::new(
            &self.dir.path().join(cache),
            SqlLimits::default(),
            Hosting::Shipped(shipper),
        )
        .unwrap()
    }

    fn blob_files(&self) -> usize {
        walk(&self.dir.path().join("blobs"))
    }
}

fn walk(p: &Path) -> usize {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        if e.file_name() == "tmp" {
                            0
                        } else {
                            walk(&e.path())
                        }
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes of the database files (not WALs) under `p`.
fn walk_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        walk_bytes(&path)
                    } else if path.extension().is_some_and(|x| x == "db") {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    } else {
                        0
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn admin() -> Exec {
    Exec::single(Level::Admin, Restrictions::default(), false)
}

fn reader() -> Exec {
    Exec::single(Level::Read, Restrictions::default(), false)
}

fn exec(dbs: &Databases, sql: &str, params: Vec<Value>) -> Result<Outcome, SqlError> {
    dbs.run(
        "space1",
        "main",
        &Stmt {
            sql: sql.into(),
            params,
        },
        &admin(),
    )
    .map(|(o, _)| o)
}

fn rows(dbs: &Databases, sql: &str) -> Vec<Vec<Value>> {
    match dbs
        .run(
            "space1",
            "main",
            &Stmt {
                sql: sql.into(),
                params: vec![],
            },
            &reader(),
        )
        .unwrap()
        .0
    {
        o @ Outcome::Rows { .. } => serde_json::from_value(o.to_json()["rows"].take()).unwrap(),
        Outcome::Changes { .. } => panic!("not a query"),
    }
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::block_in_place(f)
}

/// Writes of every shape (DDL, single rows, batches, a failed batch that spilled pages to
/// the WAL, large values), across several generations, come back on a node whose disk
/// holds nothing.
async fn round_trip(inline_max: usize, checkpoint_bytes: u64) -> u64 {
    let fx = Fixture::new();
    let (fx, dropped_blobs, generation) = blocking(move || {
        let a = fx.node("cache-a", inline_max, checkpoint_bytes);
        assert!(matches!(
            a.run(
                "space1",
                "main",
                &Stmt {
                    sql: "SELECT 1".into(),
                    params: vec![]
                },
                &reader()
            ),
            Err(SqlError::NotFound(_))
        ));
        exec(
            &a,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)",
            vec![],
        )
        .unwrap();
        for i in 0..200 {
            exec(
                &a,
                "INSERT INTO t (id, v) VALUES (?1, ?2)",
                vec![json!(i), json!(format!("row {i}"))],
            )
            .unwrap();
        }
        let big = json!({"base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![7u8; 3 * 1024 * 1024])});
        exec(
            &a,
            "INSERT INTO t (id, v, b) VALUES (1000, 'big', ?1)",
            vec![big.clone()],
        )
        .unwrap();
        // A batch that writes megabytes, then fails: rolled back, and its spilled frames
        // must not reach the store.
        let failing = vec![
            Stmt {
                sql: "INSERT INTO t (id, v, b) VALUES (2000, 'gone', ?1)".into(),
                params: vec![big.clone()],
            },
            Stmt {
                sql: "INSERT INTO t (id, v, b) VALUES (2001, 'gone', ?1)".into(),
                params: vec![big],
            },
            Stmt {
                sql: "INSERT INTO t (id) VALUES (1)".into(),
                params: vec![],
            },
        ];
        assert!(a.batch("space1", "main", &failing, &admin()).is_err());
        let ok = vec![
            Stmt {
                sql: "UPDATE t SET v = 'updated' WHERE id < 10".into(),
                params: vec![],
            },
            Stmt {
                sql: "DELETE FROM t WHERE id >= 190 AND id < 1000".into(),
                params: vec![],
            },
        ];
        a.batch("space1", "main", &ok, &admin()).unwrap();
        let before = rows(&a, "SELECT id, v, length(b) FROM t ORDER BY id");
        assert_eq!(before.len(), 191);
        drop(a);
        let generation = tokio::runtime::Handle::current()
            .block_on(fx.log.sql_log("space1", "main"))
            .unwrap()
            .unwrap()
            .generation;
        let blobs_now = fx.blob_files();
        // A fresh node (empty working-copy directory) sees exactly the same data and
        // keeps writing.
        let b = fx.node("cache-b", inline_max, checkpoint_bytes);
        // The quota counts the database before this node has opened it.
        let handle = tokio::runtime::Handle::current();
        let used = handle.block_on(b.usage("space1")).unwrap();
        assert!(used > 3 * 1024 * 1024, "usage {used}");
        assert_eq!(
            rows(&b, "SELECT id, v, length(b) FROM t ORDER BY id"),
            before
        );
        assert_eq!(handle.block_on(b.usage("space1")).unwrap(), used);
        exec(
            &b,
            "INSERT INTO t (id, v) VALUES (5000, 'after restore')",
            vec![],
        )
        .unwrap();
        drop(b);
        let c = fx.node("cache-b", inline_max, checkpoint_bytes);
        assert_eq!(rows(&c, "SELECT count(*) FROM t"), vec![vec![json!(192)]]);
        assert_eq!(
            rows(&c, "SELECT v FROM t WHERE id = 5000"),
            vec![vec![json!("after restore")]]
        );
        drop(c);
        (fx, blobs_now, generation)
    });
    // Dropped generations leave no blobs behind (deleted in the background).
    for _ in 0..100 {
        if fx.blob_files() <= dropped_blobs.max(4) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        fx.blob_files() <= dropped_blobs.max(4),
        "{} blobs",
        fx.blob_files()
    );
    generation
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_one_generation_inline() {
    assert_eq!(round_trip(64 * 1024, u64::MAX).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_many_generations_in_blobs() {
    // Every commit checkpoints, so every commit starts a generation.
    let g = round_trip(0, 0).await;
    assert!(g > 50, "{g} generations");
}

/// Concurrent writers share store commits; with generations turning over under them,
/// every acknowledged row is in the store.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_group_commit() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.node("cache-a", 64 * 1024, 8192);
        exec(
            &a,
            "CREATE TABLE t (w INTEGER, i INTEGER, PRIMARY KEY (w, i))",
            vec![],
        )
        .unwrap();
        std::thread::scope(|s| {
            for w in 0..8 {
                let a = &a;
                s.spawn(move || {
                    for i in 0..100 {
                        exec(a, "INSERT INTO t VALUES (?1, ?2)", vec![json!(w), json!(i)]).unwrap();
                    }
                });
            }
        });
        let (segments, generation) = {
            let log = tokio::runtime::Handle::current()
                .block_on(fx.log.sql_log("space1", "main"))
                .unwrap()
                .unwrap();
            (log.segments.len(), log.generation)
        };
        assert!(generation > 1, "generations did not turn over");
        assert!(segments <= 801);
        drop(a);
        let b = fx.node("cache-b", 64 * 1024, 8192);
        assert_eq!(
            rows(&b, "SELECT count(*), count(DISTINCT w) FROM t"),
            vec![vec![json!(800), json!(8)]]
        );
    });
}

/// Readers that never pause cannot stop generations from turning over (the WAL, the
/// stored log and restore time would grow without bound).
#[tokio::test(flavor = "multi_thread")]
async fn generations_turn_over_under_constant_reads() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.node("cache-a", 64 * 1024, 8192);
        exec(
            &a,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
            vec![],
        )
        .unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        // Each read keeps its snapshot for a few milliseconds.
                        rows(&a, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT count(*), (SELECT sum(length(v)) FROM t) FROM c");
                    }
                });
            }
            for i in 0..300 {
                exec(
                    &a,
                    "INSERT INTO t VALUES (?1, randomblob(2048))",
                    vec![json!(i)],
                )
                .unwrap();
            }
            stop.store(true, Ordering::SeqCst);
        });
        let log = tokio::runtime::Handle::current()
            .block_on(fx.log.sql_log("space1", "main"))
            .unwrap()
            .unwrap();
        // The WAL stays within about twice the database's size (plus one commit).
        let wal: u64 = log
            .segments
            .iter()
            .map(|p| match p {
                LogBytes::Inline(b) => b.len() as u64,
                LogBytes::Blob(_, n) => *n,
            })
            .sum();
        let db = std::fs::metadata(fx.dir.path().join("cache-a"))
            .map(|_| walk_bytes(&fx.dir.path().join("cache-a")))
            .unwrap_or(0);
        assert!(log.generation >= 3, "only {} generations", log.generation);
        assert!(
            wal <= 2 * db + 64 * 1024,
            "WAL {wal} bytes for a {db}-byte database"
        );
    });
}

/// Looking up databases that do not exist leaves nothing behind in the registry.
#[tokio::test(flavor = "multi_thread")]
async fn absent_databases_leave_no_registry_entries() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.node("cache-a", 64 * 1024, 8192);
        for i in 0..50 {
            let r = a.run(
                "space1",
                &format!("nope{i}"),
                &Stmt {
                    sql: "SELECT 1".into(),
                    params: vec![],
                },
                &reader(),
            );
            assert!(matches!(r, Err(SqlError::NotFound(_))));
        }
        assert_eq!(a.slots(), 0);
        exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
        assert_eq!(a.slots(), 1);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn unrecorded_writes_are_not_applied() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.node("cache", 64 * 1024, 4096);
        exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
        exec(&a, "INSERT INTO t VALUES (1)", vec![]).unwrap();
        fx.log.down.store(true, Ordering::SeqCst);
        assert!(matches!(
            exec(&a, "INSERT INTO t VALUES (2)", vec![]),
            Err(SqlError::Unavailable(_))
        ));
        let batch = vec![Stmt {
            sql: "INSERT INTO t VALUES (3)".into(),
            params: vec![],
        }];
        assert!(matches!(
            a.batch("space1", "main", &batch, &admin()),
            Err(SqlError::Unavailable(_))
        ));
        fx.log.down.store(false, Ordering::SeqCst);
        assert_eq!(rows(&a, "SELECT id FROM t"), vec![vec![json!(1)]]);
        exec(&a, "INSERT INTO t VALUES (4)", vec![]).unwrap();
        assert_eq!(
            rows(&a, "SELECT id FROM t ORDER BY id"),
            vec![vec![json!(1)], vec![json!(4)]]
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_writer_is_fenced_off() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.writer_a();
        // A second node takes over the database and writes.
        let b = fx.node("cache-b", 64 * 1024, u64::MAX);
        exec(&b, "INSERT INTO t VALUES (2, 'b')", vec![]).unwrap();
        // The first node's next write does not follow the stored log: refused, and its
        // working copy is rebuilt from the store.
        assert!(matches!(
            exec(&a, "INSERT INTO t VALUES (3, 'a')", vec![]),
            Err(SqlError::Unavailable(_))
        ));
        assert_eq!(
            rows(&a, "SELECT id, who FROM t ORDER BY id"),
            vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]]
        );
    });
}

/// A node that restored the database, then missed another node's acknowledged write, can
/// not start a generation over it: its write is refused and the other write survives.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_missed_commits_cannot_drop_them() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.writer_a();
        let b = fx.node("cache-b", 64 * 1024, u64::MAX);
        assert_eq!(rows(&b, "SELECT count(*) FROM t"), vec![vec![json!(1)]]);
        // A keeps writing (acknowledged) after B restored.
        exec(&a, "INSERT INTO t VALUES (2, 'a')", vec![]).unwrap();
        assert!(matches!(
            exec(&b, "INSERT INTO t VALUES (3, 'b')", vec![]),
            Err(SqlError::Unavailable(_))
        ));
        // B rebuilt from the store: it now sees A's write and can write on top of it.
        exec(&b, "INSERT INTO t VALUES (3, 'b')", vec![]).unwrap();
        drop((a, b));
        let c = fx.node("cache-c", 64 * 1024, u64::MAX);
        assert_eq!(
            rows(&c, "SELECT id FROM t ORDER BY id"),
            vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]]
        );
    });
}

/// A write cut short (a `RETURNING` past the row cap) commits nothing, locally or in the
/// store.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_cut_short_commits_nothing() {
    let fx = Fixture::new();
    blocking(move || {
        let a = fx.node("cache-a", 64 * 1024, u64::MAX);
        exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![]).unwrap();
        let capped = Exec {
            max_rows: Some(1),
            ..admin()
        };
        let stmt = Stmt {
            sql: "INSERT INTO t VALUES (1), (2), (3) RETURNING id".into(),
            params: vec![],
        };
        assert!(matches!(
            a.run("space1", "main", &stmt, &capped),
            Err(SqlError::TooLarge(_))
        ));
        assert_eq!(rows(&a, "SELECT count(*) FROM t"), vec![vec![json!(0)]]);
        exec(&a, "INSERT INTO t VALUES (9)", vec![]).unwrap();
        drop(a);
        let b = fx.node("cache-b", 64 * 1024, u64::MAX);
        assert_eq!(rows(&b, "SELECT id FROM t"), vec![vec![json!(9)]]);
    });
}

#[test]
fn wal_header_parsing() {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
    h[8..12].copy_from_slice(&4096u32.to_be_bytes());
    h[16..24].copy_from_slice(b"saltsalt");
    let p = WalHeader::parse(&h).unwrap();
    assert_eq!(p.page_size, 4096);
    assert_eq!(p.frame_size(), 4120);
    assert_eq!(&p.salts, b"saltsalt");
    h[8..12].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(WalHeader::parse(&h).unwrap().page_size, 65_536);
    h[8..12].copy_from_slice(&1000u32.to_be_bytes());
    assert!(WalHeader::parse(&h).is_err());
    h[8..12].copy_from_slice(&4096u32.to_be_bytes());
    h[0] = 0;
    assert!(WalHeader::parse(&h).is_err());
    assert!(WalHeader::parse(&h[..10]).is_err());
}

#[test]
fn piece_keys_differ_per_database_and_generation() {
    assert_ne!(piece_key("a", "b", 1), piece_key("a", "c", 1));
    assert_ne!(piece_key("a", "b", 1), piece_key("a", "b", 2));
    assert_ne!(piece_key("a\nb", "c", 1), piece_key("a", "b\nc", 1));
}

/// The WAL index says what SQLite's WAL hook reports at each commit (the committed frames of
/// the current WAL, with its salts), and ignores frames a rolled-back transaction spilled.
#[test]
fn the_wal_index_follows_commits() {
    use std::sync::atomic::AtomicU64;
    static HOOKED: AtomicU64 = AtomicU64::new(u64::MAX);
    fn hook(_: &rusqlite::hooks::Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
        HOOKED.store(u64::try_from(frames).unwrap_or(u64::MAX), Ordering::SeqCst);
        Ok(())
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    // A tiny page cache, so a large transaction spills frames into the WAL before it ends.
    conn.pragma_update(None, "cache_size", 4).unwrap();
    conn.wal_hook(Some(hook));
    let index = || WalIndex::read(&path).unwrap().unwrap();
    let file_salts = || {
        let mut head = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open(wal_path(&path)).unwrap(),
            &mut head,
        )
        .unwrap();
        WalHeader::parse(&head).unwrap().salts
    };
    conn.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
    for _ in 0..3 {
        conn.execute("INSERT INTO t VALUES (randomblob(5000))", [])
            .unwrap();
        assert_eq!(index().frames, HOOKED.load(Ordering::SeqCst));
        assert_eq!(index().salts, file_salts());
    }
    let committed = index().frames;
    let wal_len = || std::fs::metadata(wal_path(&path)).unwrap().len();
    let before = wal_len();
    conn.execute_batch(
        "BEGIN; INSERT INTO t SELECT randomblob(5000) FROM t, t AS u, t AS w; ROLLBACK",
    )
    .unwrap();
    assert!(
        wal_len() > before,
        "the rolled-back transaction did not spill"
    );
    assert_eq!(index().frames, committed);
    // A new WAL: the count starts over, under new salts.
    let old_salts = index().salts;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert_eq!(index().frames, 0);
    conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
    assert_eq!(index().frames, HOOKED.load(Ordering::SeqCst));
    assert_ne!(index().salts, old_salts);
    assert_eq!(index().salts, file_salts());
}

#[test]
fn wal_index_parsing() {
    let mut h = [0u8; 96];
    h[..4].copy_from_slice(&3_007_000u32.to_ne_bytes());
    h[12] = 1;
    h[16..20].copy_from_slice(&42u32.to_ne_bytes());
    h[32..40].copy_from_slice(b"saltsalt");
    let (a, b) = h.split_at_mut(48);
    b.copy_from_slice(a);
    let i = WalIndex::parse(&h).unwrap();
    assert_eq!((i.frames, &i.salts), (42, b"saltsalt"));
    // A torn header (the copies differ), another version, an uninitialised one: refused.
    let mut torn = h;
    torn[48 + 16] = 7;
    assert!(WalIndex::parse(&torn).is_err());
    for (at, v) in [(0, 9u8), (2, 0), (12, 0)] {
        let mut bad = h;
        bad[at] = v;
        bad[48 + at] = v;
        assert!(WalIndex::parse(&bad).is_err(), "byte {at}");
    }
}

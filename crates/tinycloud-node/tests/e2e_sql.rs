//! The SQL service end to end: each ability against each statement class, caveats, limits,
//! atomic batches, exports, durability.

mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::session::capability;

#[tokio::test]
async fn owner_schema_write_read_and_types() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 20, "default").await;
    let c = o.client(&node);
    let db = o.res("sql/app");
    let r = c.query(&db, "read", "SELECT 1").await;
    assert_eq!(r.status, 404, "reads do not create databases: {}", r.text());
    c.execute(&db, "schema", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, note TEXT, data BLOB)").await.expect(200);
    let r = c.sql(&db, "write", json!({"action":"execute","sql":"INSERT INTO t (name, score, note, data) VALUES (?, ?, ?, ?)","params":["ann", 1.5, null, [1,2,255]]})).await.expect(200);
    assert_eq!(r.json(), json!({"changes": 1, "lastInsertRowId": 1}));
    c.sql(&db, "write", json!({"action":"execute","sql":"INSERT INTO t (name, data) VALUES (?, ?)","params":["bob", {"base64":"AQI="}]})).await.expect(200);
    let r = c.sql(&db, "read", json!({"action":"query","sql":"SELECT id, name, score, note, data FROM t ORDER BY id","params":[]})).await.expect(200);
    assert_eq!(
        r.json(),
        json!({"columns":["id","name","score","note","data"],"rows":[[1,"ann",1.5,null,[1,2,255]],[2,"bob",null,null,[1,2]]],"rowCount":2})
    );
    // errors are 400 with SQLite's message
    for bad in [
        json!({"action":"execute","sql":"INSERT INTO t (id, name) VALUES (1, 'dup')"}),
        json!({"action":"execute","sql":"INSERT INTO t (score) VALUES (1)"}),
        json!({"action":"query","sql":"SELECT * FROM missing"}),
        json!({"action":"query","sql":"SELEC 1"}),
        json!({"action":"query","sql":"SELECT 1; SELECT 2"}),
        json!({"action":"query","sql":"SELECT ?","params":[]}),
        json!({"action":"nope"}),
    ] {
        let r = c.sql(&db, "admin", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(!r.text().is_empty());
    }
    // batches are atomic
    c.sql(
        &db,
        "write",
        json!({"action":"batch","statements":[
            {"sql":"INSERT INTO t (name) VALUES ('c1')"},
            {"sql":"INSERT INTO t (id, name) VALUES (1, 'conflict')"}
        ]}),
    )
    .await
    .expect(400);
    let r = c.query(&db, "read", "SELECT count(*) AS n FROM t").await;
    assert_eq!(
        r.json()["rows"],
        json!([[2]]),
        "a failed batch leaves nothing behind"
    );
    let r = c
        .sql(
            &db,
            "write",
            json!({"action":"batch","statements":[
                {"sql":"INSERT INTO t (name) VALUES (?)","params":["c1"]},
                {"sql":"UPDATE t SET score = 2 WHERE name = ?","params":["c1"]}
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(r.json()["results"][1]["changes"], 1);
    // export is a consistent SQLite file
    let r = c
        .sql(&db, "read", json!({"action":"export"}))
        .await
        .expect(200);
    assert_eq!(r.headers["content-type"], "application/x-sqlite3");
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    // execute_statement (SDK spelling) without named statements is a clear 400
    c.sql(
        &db,
        "read",
        json!({"action":"execute_statement","name":"x"}),
    )
    .await
    .expect(400);
}

#[tokio::test]
async fn abilities_gate_statement_classes() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 21, "default").await;
    let c = o.client(&node);
    let db = o.res("sql/gate");
    c.execute(
        &db,
        "admin",
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
    )
    .await
    .expect(200);
    c.execute(&db, "write", "INSERT INTO t (v) VALUES ('a')")
        .await
        .expect(200);

    // Each (ability, statement) pair: expected status.
    let cases: &[(&str, &str, u16)] = &[
        ("read", "SELECT v FROM t", 200),
        ("read", "WITH x AS (SELECT 1) SELECT * FROM x", 200),
        ("read", "INSERT INTO t (v) VALUES ('no')", 403),
        ("read", "WITH x AS (SELECT 1) DELETE FROM t", 403),
        ("read", "UPDATE t SET v = 'x'", 403),
        ("read", "CREATE TABLE u (a)", 403),
        ("read", "PRAGMA table_info(t)", 200),
        ("read", "PRAGMA user_version = 5", 403),
        ("write", "INSERT INTO t (v) VALUES ('b')", 200),
        ("write", "DELETE FROM t WHERE v = 'b'", 200),
        // `write` permits DDL, as the reference (its clients migrate under `write`).
        ("write", "CREATE TABLE u (a)", 200),
        ("write", "DROP TABLE u", 200),
        (
            "write",
            "CREATE TRIGGER tw AFTER INSERT ON t BEGIN SELECT 1; END",
            403,
        ),
        ("schema", "CREATE TABLE s (a)", 200),
        ("schema", "CREATE INDEX s_a ON s (a)", 200),
        ("schema", "INSERT INTO s (a) VALUES (1)", 403),
        ("schema", "DROP TABLE s", 200),
        ("admin", "PRAGMA user_version = 7", 200),
        ("admin", "PRAGMA writable_schema = ON", 403),
        ("admin", "PRAGMA journal_mode = DELETE", 403),
        ("admin", "ATTACH DATABASE '/tmp/x.db' AS x", 403),
        ("admin", "SELECT load_extension('x')", 403),
        ("admin", "VACUUM INTO '/tmp/stolen.db'", 403),
        ("admin", "VACUUM", 403),
        ("admin", "BEGIN", 403),
        ("admin", "CREATE TEMP TABLE tt (a)", 403),
        ("admin", "DELETE FROM sqlite_master", 400),
        ("write", "DELETE FROM sqlite_master", 400),
        ("admin", "SELECT fts3_tokenizer('x')", 403),
    ];
    for (ability, stmt, want) in cases {
        let action = if stmt.starts_with("SELECT")
            || stmt.starts_with("WITH x AS (SELECT 1) SELECT")
            || stmt.starts_with("PRAGMA table_info")
        {
            "query"
        } else {
            "execute"
        };
        let r = c
            .sql(&db, ability, json!({"action": action, "sql": stmt}))
            .await;
        assert_eq!(r.status, *want, "{ability} {stmt}: {}", r.text());
    }
    // AUTOINCREMENT bookkeeping still works under write
    c.execute(&db, "write", "INSERT INTO t (v) VALUES ('c')")
        .await
        .expect(200);
    assert!(!std::path::Path::new("/tmp/stolen.db").exists());
}

#[tokio::test]
async fn limits_stop_runaway_statements() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_SQL__TIME_LIMIT_MS", "400"),
            ("TINYCLOUD_SQL__MAX_ROWS", "50"),
        ],
    );
    let o = Owner::sign_in(&node, 22, "default").await;
    let c = o.client(&node);
    let db = o.res("sql/limits");
    c.execute(&db, "admin", "CREATE TABLE t (a)")
        .await
        .expect(200);
    c.query(&db, "read", "SELECT length(randomblob(1000000000))")
        .await
        .expect(413);
    let t0 = std::time::Instant::now();
    let r = c.query(&db, "read", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c").await.expect(400);
    assert!(r.text().contains("time limit"), "{}", r.text());
    assert!(t0.elapsed() < std::time::Duration::from_secs(3));
    c.query(
        &db,
        "read",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT x FROM c",
    )
    .await
    .expect(413);
    // other work is unaffected
    c.query(&db, "read", "SELECT 1").await.expect(200);
}

#[tokio::test]
async fn delegated_read_only_and_constrained_statements() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 23, "household").await;
    let p = [o.session_cid];
    let db = o.res("sql/pantry.db");
    o.client(&node).sql(&db, "admin", json!({"action":"batch","statements":[
        {"sql":"CREATE TABLE item (id TEXT PRIMARY KEY, label TEXT, quantity INTEGER, unit TEXT, best_before TEXT, shelf TEXT)"},
        {"sql":"INSERT INTO item VALUES ('itm_17', 'rye flour', 2, 'kg', '2027-01-31', 'shelf_b'), ('itm_99', 'saffron', 1, 'g', NULL, 'shelf_a')"}
    ]})).await.expect(200);

    // A plain read-only delegate: (ability, body, expected status).
    let reader = ed25519(60);
    let rc = delegate(
        &node,
        &o.session,
        &reader.did(),
        &p,
        vec![capability(&db, "tinycloud.sql/read").unwrap()],
        600,
    )
    .await;
    let rcl = Client::new(&node, &reader, &[rc]);
    for (ability, body, want) in [
        (
            "read",
            json!({"action":"query","sql":"SELECT label FROM item"}),
            200,
        ),
        (
            "write",
            json!({"action":"execute","sql":"DELETE FROM item"}),
            401,
        ),
        (
            "read",
            json!({"action":"execute","sql":"DELETE FROM item"}),
            403,
        ),
    ] {
        let r = rcl.sql(&db, ability, body.clone()).await;
        assert_eq!(r.status, want, "{ability} {body}: {}", r.text());
    }

    // A delegate limited to named statements with pinned parameters (the `pantry` caveat of
    // the SQL caveat vectors).
    let caveat = vector("tinycloud/sql-caveat/allowed.json")["caveats"]["pantry"]
        .as_object()
        .expect("the pantry caveat")
        .clone();
    let mut cap: Capability = capability(&db, "tinycloud.sql/read").unwrap();
    cap.caveats = Caveats::from_objects(vec![caveat]);
    let agent = ed25519(61);
    let ac = delegate(&node, &o.session, &agent.did(), &p, vec![cap], 600).await;
    let acl = Client::new(&node, &agent, &[ac]);
    // The named statement runs server-side with the pinned id: only itm_17 is reachable.
    let r = acl
        .sql(
            &db,
            "read",
            json!({"action":"executeStatement","name":"pantry.item","params":{}}),
        )
        .await
        .expect(200);
    let v = r.json();
    assert_eq!(
        v["rows"],
        json!([["itm_17", "rye flour", 2, "kg", "2027-01-31"]])
    );
    assert_eq!(v["rowCount"], 1);
    let r = acl
        .sql(
            &db,
            "read",
            json!({"action":"executeStatement","name":"pantry.shelf"}),
        )
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([["itm_17", "rye flour"]]));
    let r = acl
        .query(&db, "read", "SELECT * FROM item")
        .await
        .expect(403);
    assert!(r.text().contains("sql-raw-query-blocked"), "{}", r.text());
    let r = acl
        .sql(
            &db,
            "read",
            json!({"action":"executeStatement","name":"pantry.item","params":{"0":"itm_99"}}),
        )
        .await
        .expect(403);
    assert!(
        r.text().contains("sql-fixed-param-override"),
        "{}",
        r.text()
    );
}

/// A JSON file of the repository's test vectors (`tests/vectors/<rel>`); panics with the path if
/// it is missing, malformed or empty.
fn vector(rel: &str) -> Value {
    let value = vectors::json(rel);
    assert!(
        value.as_object().is_some_and(|o| !o.is_empty()),
        "vector file {} is empty",
        vectors::path(rel).display()
    );
    value
}

#[tokio::test]
async fn many_readers_one_writer() {
    let node = std::sync::Arc::new(Node::start(NODE_BIN, &[]));
    let o = std::sync::Arc::new(Owner::sign_in(&node, 24, "default").await);
    let db = o.res("sql/conc");
    let count = json!({"action":"query","sql":"SELECT count(*) FROM c"});
    o.client(&node)
        .execute(&db, "admin", "CREATE TABLE c (n INTEGER)")
        .await
        .expect(200);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (o, db, n, count) = (o.clone(), db.clone(), node.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let c = o.client(&n);
            for i in 0..25 {
                let (ability, body) = if w == 0 {
                    (
                        "write",
                        json!({"action":"execute","sql":"INSERT INTO c VALUES (?)","params":[i]}),
                    )
                } else {
                    ("read", count.clone())
                };
                c.sql(&db, ability, body).await.expect(200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = o.client(&node).sql(&db, "read", count).await.expect(200);
    assert_eq!(r.json()["rows"], json!([[25]]));
}

/// A database's size counts in the space quota: writes are refused with 402 once it is
/// reached (reads still work), including, with shipped hosting, right after a restart when the
/// database has not been opened yet.
async fn quota_counts_database_size(env: &[(&str, &str)], restart: bool) {
    let mut env = env.to_vec();
    env.push(("TINYCLOUD_STORAGE__LIMIT", "256 KiB"));
    let mut node = Node::start(NODE_BIN, &env);
    let o = Owner::sign_in(&node, 27, "default").await;
    let db = o.res("sql/quota");
    o.client(&node)
        .execute(
            &db,
            "admin",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)",
        )
        .await
        .expect(200);
    let insert = json!({"action":"execute","sql":"INSERT INTO t (b) VALUES (zeroblob(65536))"});
    let mut accepted = 0;
    let refused = loop {
        let r = o.client(&node).sql(&db, "write", insert.clone()).await;
        if r.status != 200 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 20, "the quota never stopped writes");
    };
    assert_eq!(refused.status, 402, "{}", refused.text());
    assert!(refused.text().contains("quota"), "{}", refused.text());
    assert!(accepted >= 2, "only {accepted} inserts fit");
    let mut _data = None;
    if restart {
        let dir = node.dir.clone();
        _data = node.take_tmp();
        node.kill9();
        node = Node::start_in(NODE_BIN, &dir, &env);
        let r = o.client(&node).sql(&db, "write", insert.clone()).await;
        assert_eq!(r.status, 402, "first write after restart: {}", r.text());
    }
    let r = o
        .client(&node)
        .query(&db, "read", "SELECT count(*) FROM t")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([[accepted]]));
}

#[tokio::test]
async fn database_size_counts_in_the_space_quota() {
    quota_counts_database_size(&[], false).await;
}

#[tokio::test]
async fn shipped_database_size_counts_in_the_quota_after_restart() {
    quota_counts_database_size(&[("TINYCLOUD_SQL__HOSTING", "shipped")], true).await;
}

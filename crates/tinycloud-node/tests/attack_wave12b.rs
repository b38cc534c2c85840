//! Attacks on the wave-12 data-plane changes (multi-capability SQL, `write` with DDL, KV
//! batches, signed URLs), end to end against the real binary, as a hostile delegate would
//! try them.

mod common;

use common::*;
use serde_json::json;
use tinycloud_auth::capability::Caveats;
use tinycloud_auth::session::capability;

/// A delegate holding `read` and `write` on `db` under one caveat object, as a client.
async fn read_write_delegate<'a>(
    node: &'a Node,
    o: &Owner,
    db: &str,
    agent: &'a tinycloud_auth::keys::SecretKey,
    caveat: serde_json::Value,
) -> Client<'a> {
    let object = caveat.as_object().cloned().unwrap_or_default();
    let held = ["read", "write"]
        .iter()
        .map(|a| {
            let mut c = capability(db, &format!("tinycloud.sql/{a}")).unwrap();
            c.caveats = Caveats::from_objects(vec![object.clone()]);
            c
        })
        .collect();
    let cid = delegate(node, &o.session, &agent.did(), &[o.session_cid], held, 600).await;
    Client::new(node, agent, &[cid])
}

/// `write` now runs DDL; under a column caveat, `ALTER TABLE` would let a delegate rename a
/// hidden column to a permitted name and read it (or drop it). Refused; nothing changes.
#[tokio::test]
async fn a_column_caveat_is_not_escaped_by_renaming_columns() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 150, "default").await;
    let oc = o.client(&node);
    let db = o.res("sql/app");
    oc.sql(
        &db,
        "admin",
        json!({"action": "batch", "statements": [
            {"sql": "CREATE TABLE t (a TEXT, b TEXT)"},
            {"sql": "INSERT INTO t VALUES ('visible', 'hidden')"}
        ]}),
    )
    .await
    .expect(200);
    let agent = ed25519(151);
    let ac = read_write_delegate(&node, &o, &db, &agent, json!({"columns": ["a"]})).await;
    // Control: the permitted column reads and writes; the hidden one does not.
    ac.query(&db, "read", "SELECT a FROM t").await.expect(200);
    ac.query(&db, "read", "SELECT b FROM t").await.expect(403);
    ac.execute(&db, "write", "UPDATE t SET a = 'v2'")
        .await
        .expect(200);
    for sql in [
        "ALTER TABLE t RENAME COLUMN a TO z",
        "ALTER TABLE t RENAME COLUMN b TO a",
        "ALTER TABLE t RENAME COLUMN b TO c",
        "ALTER TABLE t DROP COLUMN b",
    ] {
        let r = ac.execute(&db, "write", sql).await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
    }
    // A view renaming the hidden column: its reads are the underlying column's.
    ac.execute(&db, "write", "CREATE VIEW v AS SELECT b AS a FROM t")
        .await
        .expect(200);
    for sql in [
        "SELECT a FROM v",
        "SELECT * FROM v",
        "SELECT a FROM t",
        "SELECT z FROM t",
        "SELECT c FROM t",
        "SELECT b FROM t",
    ] {
        let r = ac.query(&db, "read", sql).await;
        assert!(!r.text().contains("hidden"), "{sql}: {}", r.text());
    }
    // The owner's table is as it was.
    let r = oc
        .query(&db, "read", "SELECT a, b FROM t")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([["v2", "hidden"]]));
}

/// `write` now runs DDL under a table caveat: a table it may create, with a foreign key into
/// a hidden table, would turn its inserts into an oracle on the hidden table's keys (and its
/// rows could block the owner's deletes). SQLite reports the foreign-key lookup as a read
/// of the parent column, which the caveat refuses.
#[tokio::test]
async fn a_foreign_key_into_a_hidden_table_is_no_oracle() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 154, "default").await;
    let oc = o.client(&node);
    let db = o.res("sql/app");
    oc.sql(
        &db,
        "admin",
        json!({"action": "batch", "statements": [
            {"sql": "CREATE TABLE s (email TEXT PRIMARY KEY, secret TEXT)"},
            {"sql": "INSERT INTO s VALUES ('alice@example.com', 'hidden')"}
        ]}),
    )
    .await
    .expect(200);
    let agent = ed25519(155);
    let ac = read_write_delegate(&node, &o, &db, &agent, json!({"tables": ["t2"]})).await;
    ac.execute(
        &db,
        "write",
        "CREATE TABLE t2 (x TEXT REFERENCES s (email) ON DELETE RESTRICT)",
    )
    .await
    .expect(200);
    // Whether the key exists or not (or is NULL), the insert is refused alike.
    for email in [
        json!("alice@example.com"),
        json!("nobody@example.com"),
        json!(null),
    ] {
        let r = ac
            .sql(
                &db,
                "write",
                json!({"action": "execute", "sql": "INSERT INTO t2 VALUES (?)", "params": [email]}),
            )
            .await;
        assert_eq!(r.status, 403, "{email}: {}", r.text());
    }
    for sql in [
        "UPDATE t2 SET x = 'alice@example.com'",
        "INSERT INTO t2 SELECT 'alice@example.com'",
    ] {
        let r = ac.execute(&db, "write", sql).await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
    }
    // The owner still deletes freely: no delegate row references the hidden table.
    oc.execute(&db, "admin", "DELETE FROM s").await.expect(200);
}

/// A batch put's part headers become each object's metadata, but the part's own
/// `Content-Disposition: form-data; name=…` is multipart framing, not the object's: stored,
/// it would be served (also through signed URLs) and make browsers download the value.
#[tokio::test]
async fn a_batch_puts_framing_is_not_stored_as_metadata() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 156, "default").await;
    let oc = o.client(&node);
    let (a, b) = (o.res("kv/img/a"), o.res("kv/img/b"));
    let mut body = Vec::new();
    for name in ["img%2Fa", "img%2Fb"] {
        body.extend_from_slice(
            format!(
                "--b0\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x.png\"\r\n\
                 Content-Type: image/png\r\n\r\npng\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"--b0--\r\n");
    let put = "tinycloud.kv/put";
    oc.invoke_caps(
        &[(&a, put), (&b, put)],
        &[("content-type", "multipart/form-data; boundary=b0")],
        body,
    )
    .await
    .expect(200);
    for k in [&a, &b] {
        let r = oc.call(k, "get").await.expect(200);
        assert_eq!(r.body, b"png");
        assert_eq!(r.headers["content-type"], "image/png");
        assert!(
            r.headers.get("content-disposition").is_none(),
            "{:?}",
            r.headers.get("content-disposition")
        );
    }
    let v = oc
        .invoke_caps(
            &[(&a, "tinycloud.kv/get"), (&b, "tinycloud.kv/get")],
            &[],
            vec![],
        )
        .await
        .expect(200)
        .json();
    assert!(
        v["results"][0]["headers"]
            .get("content-disposition")
            .is_none(),
        "{v}"
    );
}

/// Concurrent exports of one database (any `read` holder may export) do not clobber each
/// other: every one is a whole SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_exports_of_one_database_are_each_whole() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 157, "default").await;
    let oc = o.client(&node);
    let db = o.res("sql/app");
    oc.sql(
        &db,
        "admin",
        json!({"action": "batch", "statements": [
            {"sql": "CREATE TABLE t (v BLOB)"},
            {"sql": "INSERT INTO t SELECT randomblob(4096) FROM json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]')"}
        ]}),
    )
    .await
    .expect(200);
    let want = oc
        .sql(&db, "read", json!({"action": "export"}))
        .await
        .expect(200)
        .body
        .len();
    for _ in 0..3 {
        let runs = (0..12).map(|_| oc.sql(&db, "read", json!({"action": "export"})));
        for r in futures_util::future::join_all(runs).await {
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(r.body.starts_with(b"SQLite format 3\0"));
            assert_eq!(r.body.len(), want);
        }
    }
}

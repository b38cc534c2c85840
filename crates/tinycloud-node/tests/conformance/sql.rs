//! Conformance (foreign client): the SQL service through `/invoke` — the JSON `action`
//! protocol and the untagged answer shapes (§4 of the reference).

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use serde_json::json;

#[tokio::test]
async fn sql_answer_shapes() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;

    // A DDL statement: the SDK mints `schema` for it (first token CREATE/ALTER/DROP).
    let v = s
        .sql(
            url,
            "app",
            "schema",
            &json!({"action": "execute",
                    "sql": "CREATE TABLE IF NOT EXISTS t(a INTEGER, b TEXT, c BLOB)",
                    "params": []}),
        )
        .await
        .expect(200)
        .json();
    // The reference types `lastInsertRowId` as `n | null`; a DDL statement reports 0 here.
    assert_eq!(v["changes"], 0, "{v}");
    assert!(
        v["lastInsertRowId"].is_i64() || v["lastInsertRowId"].is_null(),
        "{v}"
    );
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    // execute: {changes, lastInsertRowId}; BLOB params are byte arrays.
    let v = s
        .sql(
            url,
            "app",
            "write",
            &json!({"action": "execute",
                    "sql": "INSERT INTO t(a, b, c) VALUES (?, ?, ?)",
                    "params": [1, "x", [1, 2, 255]]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(v, json!({"changes": 1, "lastInsertRowId": 1}));

    // query: {columns, rows, rowCount}; BLOBs are byte arrays; booleans become 0/1.
    let v = s
        .sql(
            url,
            "app",
            "read",
            &json!({"action": "query", "sql": "SELECT a, b, c, ? AS t FROM t", "params": [true]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        v,
        json!({"columns": ["a", "b", "c", "t"], "rows": [[1, "x", [1, 2, 255], 1]], "rowCount": 1})
    );

    // batch: {results: [{changes, lastInsertRowId}, …]} (DML only: `write`).
    let v = s
        .sql(
            url,
            "app",
            "write",
            &json!({"action": "batch", "statements": [
                {"sql": "INSERT INTO t(a) VALUES (?)", "params": [2]},
                {"sql": "UPDATE t SET b = ? WHERE a = ?", "params": ["y", 2]}]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        v,
        json!({"results": [{"changes": 1, "lastInsertRowId": 2}, {"changes": 1, "lastInsertRowId": 2}]})
    );

    // A mutation under `read` is 403 (`Read-only violation`); ATTACH is 403; bad SQL is 400.
    s.sql(
        url,
        "app",
        "read",
        &json!({"action": "execute", "sql": "DELETE FROM t"}),
    )
    .await
    .expect(403);
    s.sql(
        url,
        "app",
        "admin",
        &json!({"action": "execute", "sql": "ATTACH DATABASE 'x.db' AS x"}),
    )
    .await
    .expect(403);
    s.sql(
        url,
        "app",
        "read",
        &json!({"action": "query", "sql": "SELEC nonsense"}),
    )
    .await
    .expect(400);

    // export: the raw SQLite file.
    let a = s
        .sql(url, "app", "read", &json!({"action": "export"}))
        .await
        .expect(200);
    assert_eq!(a.header("content-type"), Some("application/x-sqlite3"));
    assert!(a.body.starts_with(b"SQLite format 3\0"));

    // `executeStatement` is the tag the node's serde accepts; the current JS SDK sends
    // `execute_statement` (an interop bug of the reference, §4). Deliberate difference: this
    // node accepts both. Without a named-statement caveat neither has anything to run (4xx,
    // never a 500).
    for tag in ["executeStatement", "execute_statement"] {
        let a = s
            .sql(
                url,
                "app",
                "write",
                &json!({"action": tag, "name": "nope", "params": []}),
            )
            .await;
        assert!(
            (400..500).contains(&a.status),
            "{tag}: {} {}",
            a.status,
            a.text()
        );
    }
}

/// The SDK's `execute(sql, params, {schema})` and its batches mixing DDL and DML mint one
/// invocation with several abilities on the database (`write` + `schema`); the reference
/// authorizes it with the most privileged one present (write, and its `write` also permits
/// DDL).
#[tokio::test]
async fn execute_with_schema_as_the_sdk_mints_it() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let v = s
        .sql_any(
            url,
            "app",
            &["write", "schema"],
            &json!({"action": "execute",
                    "sql": "INSERT INTO t(a) VALUES (?)",
                    "params": [1],
                    "schema": ["CREATE TABLE IF NOT EXISTS t(a INTEGER)"]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(v, json!({"changes": 1, "lastInsertRowId": 1}));
    let v = s
        .sql_any(
            url,
            "app",
            &["schema", "write"],
            &json!({"action": "batch", "statements": [
                {"sql": "CREATE TABLE IF NOT EXISTS u(a INTEGER)"},
                {"sql": "INSERT INTO u(a) VALUES (?)", "params": [1]}]}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(v["results"][1]["changes"], 1);
    // An older client sending DDL under `write` alone.
    s.sql(
        url,
        "app",
        "write",
        &json!({"action": "execute", "sql": "CREATE TABLE w(a INTEGER)"}),
    )
    .await
    .expect(200);
}

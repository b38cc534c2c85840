//! Crash safety: a node killed with SIGKILL in the middle of a write load loses no
//! acknowledged write, and never leaves a key pointing at a missing blob.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;

/// A key and the value whose write was acknowledged.
type Written = (String, Vec<u8>);

/// Posts one invocation through a shared client; `Err` once the node is gone.
async fn post_invoke(
    client: &reqwest::Client,
    url: &str,
    header: String,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{url}/invoke"))
        .header("authorization", header)
        .body(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_no_acknowledged_write() {
    // Small inline threshold so both inline values and blob files are exercised.
    let env = [("TINYCLOUD_STORAGE__INLINE_THRESHOLD", "512")];
    let mut node = Node::start(NODE_BIN, &env);
    let o = Arc::new(Owner::sign_in(&node, 9, "default").await);
    let acked: Arc<Mutex<Vec<Written>>> = Arc::default();
    let url = node.url.clone();
    let mut workers = Vec::new();
    for w in 0..16u32 {
        let o = o.clone();
        let acked = acked.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let client = http();
            for i in 0..10_000u32 {
                let key = format!("load/{w}/{i}");
                let len = if i % 3 == 0 { 2048 } else { 64 };
                let value: Vec<u8> = (0..len).map(|b| (b as u32 ^ w ^ i) as u8).collect();
                let h = invoke_header(
                    &o.session,
                    &[o.session_cid],
                    &o.res(&format!("kv/{key}")),
                    "tinycloud.kv/put",
                );
                match post_invoke(&client, &url, h, value.clone()).await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push((key, value)),
                    Ok(r) => panic!("unexpected status {} under load", r.status()),
                    Err(_) => return, // the node died
                }
            }
        }));
    }
    // Let the load run, then kill the node without warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = node.dir.clone();
    let _tmp = node.take_tmp();
    node.kill9();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load produced only {} writes",
        acked.len()
    );

    let node = Node::start_in(NODE_BIN, &dir, &env);
    let client = http();
    let checks = acked.iter().map(|(key, value)| {
        let (client, o, url) = (client.clone(), o.clone(), node.url.clone());
        async move {
            let h = invoke_header(
                &o.session,
                &[o.session_cid],
                &o.res(&format!("kv/{key}")),
                "tinycloud.kv/get",
            );
            let r = post_invoke(&client, &url, h, vec![]).await.unwrap();
            assert_eq!(r.status(), 200, "acknowledged key {key} lost");
            assert_eq!(
                r.bytes().await.unwrap().as_ref(),
                value.as_slice(),
                "{key} corrupted"
            );
        }
    });
    futures_util::stream::iter(checks)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eprintln!("verified {} acknowledged writes after kill -9", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_writes_survive_kill_9() {
    sql_kill_9(&[], false).await;
}

/// With `sql.hosting = "shipped"` the storage layer holds every acknowledged transaction: the
/// node is killed mid-load, its SQL working copies are deleted (a fresh replica's empty disk),
/// and a restarted node still has every acknowledged row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shipped_sql_writes_survive_kill_9_and_an_empty_disk() {
    sql_kill_9(
        &[
            ("TINYCLOUD_SQL__HOSTING", "shipped"),
            // Small, so generations turn over under the load.
            ("TINYCLOUD_SQL__CHECKPOINT_BYTES", "65536"),
        ],
        true,
    )
    .await;
}

async fn sql_kill_9(env: &[(&str, &str)], wipe_sql_files: bool) {
    let node = Node::start(NODE_BIN, env);
    let o = Arc::new(Owner::sign_in(&node, 10, "default").await);
    let db = o.res("sql/durable");
    o.client(&node)
        .execute(
            &db,
            "admin",
            "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)",
        )
        .await
        .expect(200);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let node = Arc::new(Mutex::new(Some(node)));
    let url = node.lock().unwrap().as_ref().unwrap().url.clone();
    let mut workers = Vec::new();
    for w in 0..8u32 {
        let (o, acked, url, db) = (o.clone(), acked.clone(), url.clone(), db.clone());
        workers.push(tokio::spawn(async move {
            let client = http();
            for i in 0..10_000u32 {
                let key = format!("{w}-{i}");
                let h = invoke_header(&o.session, &[o.session_cid], &db, "tinycloud.sql/write");
                let body = serde_json::json!({"action":"execute","sql":"INSERT INTO t VALUES (?, ?)","params":[key, i]});
                match post_invoke(&client, &url, h, body.to_string().into_bytes()).await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(key),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut n = node.lock().unwrap().take().unwrap();
    let dir = n.dir.clone();
    let _tmp = n.take_tmp();
    n.kill9();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} inserts", acked.len());
    if wipe_sql_files {
        assert!(
            !dir.join("sql").exists(),
            "shipped hosting wrote local databases"
        );
        std::fs::remove_dir_all(dir.join("sql-cache")).unwrap();
    }
    let node = Node::start_in(NODE_BIN, &dir, env);
    let v = o
        .client(&node)
        .query(&db, "read", "SELECT k FROM t")
        .await
        .expect(200)
        .json();
    let present: std::collections::HashSet<String> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_owned())
        .collect();
    for k in &acked {
        assert!(
            present.contains(k),
            "acknowledged row {k} lost after kill -9"
        );
    }
    eprintln!(
        "verified {} acknowledged SQL inserts after kill -9",
        acked.len()
    );
}

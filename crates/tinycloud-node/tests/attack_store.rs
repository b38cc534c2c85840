//! Storage attacks against the real node: filling the disk through put/delete cycles under a
//! quota, and losing acknowledged values to blob reclamation across `kill -9`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const MIB: usize = 1024 * 1024;

/// Bytes and count of blob files under `<datadir>/blobs` (staging area excluded).
fn blob_usage(datadir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    let Ok(shards) = std::fs::read_dir(datadir.join("blobs")) else {
        return (0, 0);
    };
    for shard in shards.flatten() {
        if shard.file_name() == "tmp" || !shard.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
            files += 1;
        }
    }
    (bytes, files)
}

/// Waits until the blob directory holds `files` files (the collector runs in the background).
async fn settle(datadir: &Path, files: usize) -> (u64, usize) {
    for _ in 0..100 {
        let u = blob_usage(datadir);
        if u.1 == files {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blob_usage(datadir)
}

fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|b| (b * 31 + i * 7) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_delete_cycles_cannot_fill_the_disk_past_the_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "2 MiB")]);
    let o = Owner::sign_in(&node, 31, "default").await;
    let c = o.client(&node);
    let mut peak = 0;
    for i in 0..30 {
        let key = o.res(&format!("kv/cycle/{}", i % 3));
        c.put(&key, &value(i, MIB)).await.expect(200);
        c.call(&key, "del").await.expect(200);
        peak = peak.max(blob_usage(&node.dir).0);
    }
    // Overwrites leave the old value behind as garbage too.
    let key = o.res("kv/overwritten");
    for i in 0..30 {
        c.put(&key, &value(100 + i, MIB)).await.expect(200);
        peak = peak.max(blob_usage(&node.dir).0);
    }
    assert!(
        peak <= 4 * MIB as u64,
        "blob directory peaked at {peak} bytes under a 2 MiB quota"
    );
    let (bytes, files) = settle(&node.dir, 1).await;
    assert_eq!(files, 1, "only the live value remains ({bytes} bytes)");
    assert_eq!(bytes, MIB as u64);
    let got = c.call(&key, "get").await.expect(200);
    assert_eq!(got.body, value(129, MIB));
    // A refused put (over quota) leaves nothing behind either.
    c.put(&o.res("kv/too-big"), &value(7, 3 * MIB / 2))
        .await
        .expect(413);
    c.call(&key, "del").await.expect(200);
    let (bytes, files) = settle(&node.dir, 0).await;
    assert_eq!(
        (bytes, files),
        (0, 0),
        "the blob directory returns to empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reclamation_loses_no_acknowledged_value_across_kill_9() {
    let env = [("TINYCLOUD_STORAGE__INLINE_THRESHOLD", "1024")];
    let mut node = Node::start(NODE_BIN, &env);
    let o = std::sync::Arc::new(Owner::sign_in(&node, 32, "default").await);
    let url = node.url.clone();
    let mut workers = Vec::new();
    for w in 0..4usize {
        let o = o.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let client = http();
            // Per key: the last acknowledged value (None: acknowledged delete).
            let mut acked: Vec<(String, Option<Vec<u8>>)> = Vec::new();
            let mut in_flight;
            for i in 0..100_000usize {
                let key = format!("kv/churn/{w}/{}", i % 5);
                let (ability, body) = if i % 3 == 2 {
                    ("tinycloud.kv/del", vec![])
                } else {
                    // Same content under several keys: blobs are shared.
                    ("tinycloud.kv/put", value(i % 7, 4096))
                };
                in_flight = (
                    key.clone(),
                    (ability == "tinycloud.kv/put").then(|| body.clone()),
                );
                let h = invoke_header(&o.session, &[o.session_cid], &o.res(&key), ability);
                let r = client
                    .post(format!("{url}/invoke"))
                    .header("authorization", h)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 || r.status() == 404 => {
                        acked.retain(|(k, _)| k != &key);
                        acked.push((key, (ability == "tinycloud.kv/put").then_some(body)));
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    // Unacknowledged: it may or may not have happened.
                    Err(_) => return (acked, Some(in_flight)),
                }
            }
            (acked, None)
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let dir = node.dir.clone();
    let _tmp = node.take_tmp();
    node.kill9();
    let mut acked = Vec::new();
    let mut unsure = Vec::new();
    for w in workers {
        let (a, f) = w.await.unwrap();
        acked.extend(a);
        unsure.extend(f);
    }
    assert!(acked.len() >= 10, "the load produced too few writes");
    let node = Node::start_in(NODE_BIN, &dir, &env);
    let c = o.client(&node);
    let mut live = std::collections::HashSet::new();
    for (key, v) in &acked {
        let r = c.call(&o.res(key), "get").await;
        if let Some((_, maybe)) = unsure.iter().find(|(k, _)| k == key) {
            // The write in flight at the kill either happened or did not.
            let now = (r.status == 200).then(|| r.body.clone());
            assert!(
                now == *v || now == *maybe,
                "{key} is neither its acknowledged nor its in-flight value"
            );
            live.extend(now);
            continue;
        }
        match v {
            Some(v) => {
                assert_eq!(r.status, 200, "acknowledged {key} lost: {}", r.text());
                assert_eq!(&r.body, v, "{key} corrupted");
                live.insert(v.clone());
            }
            None => assert_eq!(r.status, 404, "acknowledged delete of {key} undone"),
        }
    }
    for (key, maybe) in &unsure {
        if acked.iter().any(|(k, _)| k == key) {
            continue;
        }
        let r = c.call(&o.res(key), "get").await;
        if r.status == 200 {
            assert_eq!(Some(&r.body), maybe.as_ref(), "{key}: unexpected value");
            live.insert(r.body.clone());
        }
    }
    // Orphans of the crash are swept after the restart: one file per distinct live value.
    let (_, files) = settle(&dir, live.len()).await;
    assert_eq!(files, live.len(), "blob files vs distinct live values");
}

//! Hooks over Server-Sent Events: live delivery, resume with Last-Event-ID, cut-off on
//! revocation, ticket authorization.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::session::capability;

fn scope(o: &Owner, prefix: Option<&str>) -> Value {
    match prefix {
        Some(p) => json!([{"space": o.space.to_string(), "service": "kv", "pathPrefix": p}]),
        None => json!([{"space": o.space.to_string(), "service": "kv"}]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_the_subscriber_quickly_and_never_carry_values() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 30, "default").await;
    let p = [o.session_cid];
    let mut sse = SseReader::connect(&node, &o.session, &p, scope(&o, Some("notes")), None)
        .await
        .unwrap();
    // Another client (a delegate) writes.
    let writer = ed25519(31);
    let wc = delegate(
        &node,
        &o.session,
        &writer.did(),
        &p,
        vec![
            capability(&o.res("kv/notes"), "tinycloud.kv/put").unwrap(),
            capability(&o.res("kv/other"), "tinycloud.kv/put").unwrap(),
        ],
        600,
    )
    .await;
    let w = Client::new(&node, &writer, &[wc]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.put(&o.res("kv/other/x"), b"no").await.expect(200);
    let t0 = Instant::now();
    w.put(&o.res("kv/notes/a"), b"secret value")
        .await
        .expect(200);
    let ev = sse.next(Duration::from_secs(5)).await.expect("event");
    let latency = t0.elapsed();
    assert_eq!(ev.event, "write");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        data["path"], "notes/a",
        "the out-of-scope write was filtered"
    );
    assert_eq!(data["service"], "kv");
    assert_eq!(data["ability"], "tinycloud.kv/put");
    assert_eq!(data["actor"], writer.did().to_string());
    assert_eq!(ev.id.as_deref(), Some(data["seq"].to_string().as_str()));
    assert!(
        !ev.data.contains("secret value"),
        "events never carry values"
    );
    assert!(
        latency < Duration::from_millis(100),
        "write-to-receive {latency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_dropped_connection_loses_nothing() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 32, "default").await;
    let p = [o.session_cid];
    let c = o.client(&node);
    let mut sse = SseReader::connect(&node, &o.session, &p, scope(&o, None), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.put(&o.res("kv/a"), b"1").await.expect(200);
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first.data).unwrap()["path"],
        "a"
    );
    let last_id: u64 = first.id.unwrap().parse().unwrap();
    drop(sse);
    // Written while nobody listens.
    for k in ["b", "c", "d"] {
        c.put(&o.res(&format!("kv/{k}")), b"1").await.expect(200);
    }
    c.call(&o.res("kv/b"), "del").await.expect(200);
    let mut sse = SseReader::connect(&node, &o.session, &p, scope(&o, None), Some(last_id))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = sse
            .next(Duration::from_secs(5))
            .await
            .expect("replayed event");
        let d: Value = serde_json::from_str(&e.data).unwrap();
        got.push((
            d["path"].as_str().unwrap().to_owned(),
            d["ability"].as_str().unwrap().to_owned(),
            d["seq"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        got.iter()
            .map(|(p, a, _)| (p.as_str(), a.as_str()))
            .collect::<Vec<_>>(),
        [
            ("b", "tinycloud.kv/put"),
            ("c", "tinycloud.kv/put"),
            ("d", "tinycloud.kv/put"),
            ("b", "tinycloud.kv/del")
        ]
    );
    let seqs: Vec<u64> = got.iter().map(|g| g.2).collect();
    assert_eq!(
        seqs,
        (last_id + 1..=last_id + 4).collect::<Vec<_>>(),
        "monotonic, gap-free"
    );
    // and live events keep coming after the replay
    c.put(&o.res("kv/e"), b"1").await.expect(200);
    let live = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&live.data).unwrap()["path"],
        "e"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_subscriber_is_cut_off_and_tickets_are_checked() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 33, "default").await;
    let p = [o.session_cid];
    let watcher = ed25519(34);
    let gcid = delegate(
        &node,
        &o.session,
        &watcher.did(),
        &p,
        vec![capability(&o.res("hooks/kv/notes"), "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    // Not covered: a wider scope than granted.
    let wider = SseReader::connect(&node, &watcher, &[gcid], scope(&o, None), None).await;
    assert_eq!(wider.err().map(|e| e.0), Some(401));
    let mut sse = SseReader::connect(&node, &watcher, &[gcid], scope(&o, Some("notes")), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    o.client(&node)
        .put(&o.res("kv/notes/1"), b"1")
        .await
        .expect(200);
    assert_eq!(
        sse.next(Duration::from_secs(5)).await.unwrap().event,
        "write"
    );
    // Revoke the watcher's delegation: the stream ends with an explicit `end` event.
    assert_eq!(revoke(&node, &o.session, gcid).await.0, 200);
    let end = sse.next(Duration::from_secs(5)).await.expect("end event");
    assert_eq!(end.event, "end", "{end:?}");
    assert!(end.data.contains("revoked"), "{}", end.data);
    assert!(
        sse.next(Duration::from_secs(3)).await.is_none(),
        "stream closed"
    );
    // New tickets are refused too.
    let again = SseReader::connect(&node, &watcher, &[gcid], scope(&o, Some("notes")), None).await;
    assert_eq!(again.err().map(|e| e.0), Some(401));
    // Forged or garbage tickets.
    assert_eq!(
        SseReader::open(&node, "abc.def", None)
            .await
            .err()
            .map(|e| e.0),
        Some(401)
    );
}

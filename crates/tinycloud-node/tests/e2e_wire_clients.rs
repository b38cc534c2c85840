//! Wire compatibility with existing TinyCloud clients (issue 12, items 1 and 2): requests are
//! built by hand from the documented shapes (`node-protocol.md` §5, §6; `sdk-cli.md` §2.4,
//! §2.5) the way the reference JS SDK builds them, and the answers are read the way it reads
//! them — the SSE stream raw, every message with `data:` taken as a write event whatever its
//! `event:` name. Nothing here goes through this project's SDK.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tinycloud_auth::did::Did;
use tinycloud_auth::session::{capability, invocation};

/// `hex(sha256(canonical JSON))`, canonical JSON written out by hand (sorted keys, compact).
fn sha256_hex(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

async fn node_did(node: &Node) -> Did {
    let info: Value = get_json(node, "/info").await;
    info["nodeId"].as_str().unwrap().parse().unwrap()
}

/// The network-admin invocation a reference client sends: the raw network URN with the full
/// ability, audience = the node, and the fact whose `action` is the full ability.
fn admin_invocation(
    o: &Owner,
    node: &Did,
    network: &str,
    ability: &str,
    fact_action: &str,
    body_hash: &str,
) -> String {
    let fact: Map<String, Value> = json!({
        "type": "tinycloud.encryption.network-admin/v1",
        "targetNode": node.to_string(),
        "networkId": network,
        "bodyHash": body_hash,
        "action": fact_action,
    })
    .as_object()
    .unwrap()
    .clone();
    invocation(
        &o.session,
        Some(node.clone()),
        &[o.session_cid],
        vec![capability(network, ability).unwrap()],
        now(),
        120,
        &uuid(),
        vec![fact],
    )
    .unwrap()
    .as_str()
    .to_owned()
}

async fn post_raw(node: &Node, path: &str, token: &str, body: &str) -> (u16, String) {
    let r = http()
        .post(format!("{}{path}", node.url))
        .header("authorization", token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn reference_network_admin_facts_create_and_revoke() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 71, "default").await;
    let nd = node_did(&node).await;
    let network = format!("urn:tinycloud:encryption:{}:default", o.did);
    let create = "tinycloud.encryption/network.create";
    let revoke = "tinycloud.encryption/network.revoke";
    // The canonical body the JS SDK posts (keys already sorted).
    let body = format!(
        r#"{{"name":"default","ownerDid":"{}","threshold":{{"n":1,"t":1}}}}"#,
        o.did
    );
    let body_hash = sha256_hex(&body);

    // Attack: the fact names another admin action than the request performs — a revoke
    // fact (full form) does not authorize a create, nor the reverse.
    let t = admin_invocation(&o, &nd, &network, create, revoke, &body_hash);
    let (s, text) = post_raw(&node, "/encryption/networks", &t, &body).await;
    assert_eq!(s, 401, "a revoke fact must not create: {text}");
    let t = admin_invocation(
        &o,
        &nd,
        &network,
        create,
        "tinycloud.encryption/decrypt",
        &body_hash,
    );
    assert_eq!(
        post_raw(&node, "/encryption/networks", &t, &body).await.0,
        401
    );

    // The reference client's create: full ability in `action` → 200 `{descriptor}`.
    let t = admin_invocation(&o, &nd, &network, create, create, &body_hash);
    let (s, text) = post_raw(&node, "/encryption/networks", &t, &body).await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["descriptor"]["networkId"], network.as_str());
    assert_eq!(v["descriptor"]["state"], "active");
    // Existing → 409 (the JS SDK reads it back and treats it as success).
    let t = admin_invocation(&o, &nd, &network, create, create, &body_hash);
    assert_eq!(
        post_raw(&node, "/encryption/networks", &t, &body).await.0,
        409
    );

    // Revoke: no body; the fact binds the hash of `{}`; full ability in `action` → 204.
    let path = format!(
        "/encryption/networks/{}/revoke",
        network.replace(':', "%3A")
    );
    let empty_hash = sha256_hex("{}");
    let t = admin_invocation(&o, &nd, &network, revoke, create, &empty_hash);
    let r = http()
        .post(format!("{}{path}", node.url))
        .header("authorization", t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "a create fact must not revoke");
    let t = admin_invocation(&o, &nd, &network, revoke, revoke, &empty_hash);
    let r = http()
        .post(format!("{}{path}", node.url))
        .header("authorization", t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
    let v: Value = get_json(
        &node,
        &format!("/encryption/networks/{}", network.replace(':', "%3A")),
    )
    .await;
    assert_eq!(v["descriptor"]["state"], "revoked");
}

/// Reads `/hooks/events` raw, the way the reference SDK does (an `EventSource`-style parser:
/// comment lines skipped, `event`, `id` and `data` fields; a block without data lines is no
/// message), keeping everything received for asserting on the framing.
struct RawStream {
    sse: SseStream,
    /// Everything received.
    pub raw: String,
}

impl RawStream {
    async fn open(node: &Node, ticket: &str, last_event_id: Option<&str>) -> Result<Self, u16> {
        let mut req = http()
            .get(format!(
                "{}/hooks/events?ticket={}",
                node.url,
                urlencode(ticket)
            ))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.unwrap();
        if r.status() != 200 {
            return Err(r.status().as_u16());
        }
        Ok(RawStream {
            sse: SseStream::from_response(r),
            raw: String::new(),
        })
    }

    /// The next message with data, or `None` on timeout / end of stream.
    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let m = self.sse.next(timeout).await;
        self.raw = self.sse.raw();
        m
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /hooks/tickets` exactly as the reference SDK sends it: the normalized subscription
/// (`abilities: []` for "every write", `pathPrefix` omitted when unset) and no `ttlSeconds`
/// unless asked; `extra` adds fields (`signals`).
async fn ticket(node: &Node, o: &Owner, extra: Option<(&str, Value)>) -> String {
    let token = invocation(
        &o.session,
        None,
        &[o.session_cid],
        vec![capability(
            &format!("{}/hooks/kv", o.space),
            "tinycloud.hooks/subscribe",
        )
        .unwrap()],
        now(),
        120,
        &uuid(),
        vec![],
    )
    .unwrap();
    let mut body = json!({"subscriptions": [{"space": o.space.to_string(), "service": "kv", "abilities": []}]});
    if let Some((k, v)) = extra {
        body[k] = v;
    }
    let r = http()
        .post(format!("{}/hooks/tickets", node.url))
        .header("authorization", token.as_str())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["expiresAt"].is_string(), "{v}");
    v["ticket"].as_str().unwrap().to_owned()
}

async fn put(node: &Node, o: &Owner, key: &str) {
    let t = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res(&format!("kv/{key}")),
        "tinycloud.kv/put",
    );
    invoke(node, &t, &[("content-type", "text/plain")], b"v".to_vec())
        .await
        .expect(200);
}

/// The fields a reference subscriber reads from a write event (`HooksService.parseHookEvent`).
fn assert_reference_write(v: &Value, o: &Owner, path: &str, ability: &str) {
    assert_eq!(v["type"], "write", "{v}");
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["space"], o.space.to_string().as_str(), "{v}");
    assert_eq!(v["service"], "kv", "{v}");
    assert_eq!(v["ability"], ability, "{v}");
    assert_eq!(v["path"], path, "{v}");
    assert!(
        v["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("did:key:")),
        "{v}"
    );
    assert!(
        v["epoch"]
            .as_str()
            .is_some_and(|e| e.starts_with("bafkr4i")),
        "epoch is a CID: {v}"
    );
    assert!(v["eventIndex"].is_u64(), "{v}");
    assert!(v["timestamp"].is_string(), "{v}");
}

#[tokio::test]
async fn a_reference_subscriber_sees_only_write_events_as_data() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 72, "default").await;
    let t = ticket(&node, &o, None).await;
    let mut s = RawStream::open(&node, &t, None).await.unwrap();
    put(&node, &o, "notes/a").await;
    let first = s
        .next(Duration::from_secs(10))
        .await
        .expect("the write arrives");
    // The first message with data is the write, not a `ready` signal.
    assert_eq!(first.event, "write", "{first:?}\nraw: {}", s.raw);
    let v: Value = serde_json::from_str(&first.data).unwrap();
    assert_reference_write(&v, &o, "notes/a", "tinycloud.kv/put");
    assert_eq!(first.id.as_deref(), v["id"].as_str(), "SSE id = event id");
    // The signal went as a comment: present in the raw bytes, never as data.
    assert!(
        s.raw.contains(": {\"type\":\"ready\""),
        "ready as a comment: {}",
        s.raw
    );
    assert!(!s.raw.contains("event: ready"), "{}", s.raw);
    assert!(!s.raw.contains("data: {\"type\":\"ready\""), "{}", s.raw);

    // A delete is a write event too; still nothing else carries data.
    let t2 = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/notes/a"),
        "tinycloud.kv/del",
    );
    invoke(&node, &t2, &[], vec![]).await.expect(200);
    let second = s.next(Duration::from_secs(10)).await.expect("the delete");
    let v: Value = serde_json::from_str(&second.data).unwrap();
    assert_reference_write(&v, &o, "notes/a", "tinycloud.kv/del");
}

#[tokio::test]
async fn resume_with_last_event_id_works_without_signals() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 73, "default").await;
    let t = ticket(&node, &o, None).await;
    let mut s = RawStream::open(&node, &t, None).await.unwrap();
    put(&node, &o, "a").await;
    let first = s.next(Duration::from_secs(10)).await.unwrap();
    let last_id = first.id.clone().expect("write events carry an SSE id");
    drop(s);

    // Written while disconnected; a client that never asked for signals reconnects the way
    // the reference SDK does — a fresh ticket — and sends the standard `Last-Event-ID`.
    put(&node, &o, "b").await;
    put(&node, &o, "c").await;
    let t = ticket(&node, &o, None).await;
    let mut s = RawStream::open(&node, &t, Some(&last_id)).await.unwrap();
    let b = s.next(Duration::from_secs(10)).await.expect("replayed b");
    let c = s.next(Duration::from_secs(10)).await.expect("replayed c");
    for (m, key) in [(&b, "b"), (&c, "c")] {
        assert_eq!(m.event, "write", "{m:?}");
        let v: Value = serde_json::from_str(&m.data).unwrap();
        assert_reference_write(&v, &o, key, "tinycloud.kv/put");
    }
    assert!(!s.raw.contains("event: ready"), "{}", s.raw);
}

#[tokio::test]
async fn an_ended_subscription_closes_without_a_data_message() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 76, "default").await;
    let watcher = ed25519(78);
    let gcid = delegate(
        &node,
        &o.session,
        &watcher.did(),
        &[o.session_cid],
        vec![capability(&o.res("hooks/kv"), "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    let token = invocation(
        &watcher,
        None,
        &[gcid],
        vec![capability(&o.res("hooks/kv"), "tinycloud.hooks/subscribe").unwrap()],
        now(),
        120,
        &uuid(),
        vec![],
    )
    .unwrap();
    let body = json!({"subscriptions": [{"space": o.space.to_string(), "service": "kv", "abilities": []}]});
    let (status, v) = request(
        &node,
        reqwest::Method::POST,
        "/hooks/tickets",
        token.as_str(),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut s = RawStream::open(&node, v["ticket"].as_str().unwrap(), None)
        .await
        .unwrap();
    put(&node, &o, "k").await;
    assert_eq!(
        s.next(Duration::from_secs(10)).await.unwrap().event,
        "write"
    );
    // Revoked: the stream ends; the `end` signal must not reach the app as a write event.
    assert_eq!(revoke(&node, &o.session, gcid).await.0, 200);
    let after = s.next(Duration::from_secs(5)).await;
    assert!(
        after.is_none(),
        "no data message after the revocation: {after:?}"
    );
    assert!(
        s.raw.contains(": {\"type\":\"end\""),
        "end as a comment: {}",
        s.raw
    );
}

#[tokio::test]
async fn a_subscriber_that_asks_gets_the_signals_as_events() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 74, "default").await;
    let t = ticket(&node, &o, Some(("signals", json!(true)))).await;
    let mut s = RawStream::open(&node, &t, None).await.unwrap();
    let ready = s.next(Duration::from_secs(10)).await.expect("ready");
    assert_eq!(ready.event, "ready", "{ready:?}");
    let v: Value = serde_json::from_str(&ready.data).unwrap();
    assert_eq!(v["type"], "ready");
    put(&node, &o, "x").await;
    let w = s.next(Duration::from_secs(10)).await.expect("write");
    assert_eq!(w.event, "write");
    // `signals` must be a boolean: anything else is refused before a ticket is minted.
    let token = invoke_header(
        &o.session,
        &[o.session_cid],
        &format!("{}/hooks/kv", o.space),
        "tinycloud.hooks/subscribe",
    );
    let body = json!({"subscriptions": [{"space": o.space.to_string(), "service": "kv"}], "signals": "yes"});
    let (s, _) = request(
        &node,
        reqwest::Method::POST,
        "/hooks/tickets",
        &token,
        Some(&body),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn the_reference_reconnect_pattern_works_and_a_ticket_opens_one_stream() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 75, "default").await;
    // The reference SDK mints a ticket for every connection; each opens its stream.
    for key in ["one", "two"] {
        let t = ticket(&node, &o, None).await;
        let mut s = RawStream::open(&node, &t, None).await.unwrap();
        put(&node, &o, key).await;
        let m = s.next(Duration::from_secs(10)).await.expect("write");
        let v: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(v["path"], key);
        drop(s);
        // Deliberate difference: reusing a ticket URL (what a plain `EventSource` retry does)
        // is refused — a leaked ticket cannot open a second stream.
        assert_eq!(RawStream::open(&node, &t, None).await.err(), Some(401));
    }
}

#[tokio::test]
async fn kv_list_accepts_the_empty_path_and_the_pathless_resource() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 77, "default").await;
    put(&node, &o, "a/1").await;
    put(&node, &o, "b").await;
    // What the reference clients send to list everything: the empty path `…/kv/`.
    for res in [o.res("kv/"), o.res("kv")] {
        let t = invoke_header(&o.session, &[o.session_cid], &res, "tinycloud.kv/list");
        let r = invoke(&node, &t, &[], vec![]).await.expect(200);
        assert_eq!(r.json(), json!(["a/1", "b"]), "{res}");
    }
}

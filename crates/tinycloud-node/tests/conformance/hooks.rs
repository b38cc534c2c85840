//! Conformance (foreign client): hook tickets and the SSE stream as a raw reader (the JS SDK's
//! EventSource-style parser) sees it (§5 of the reference).

use std::time::Duration;

use crate::common::{Node, SseStream, NODE_BIN};
use crate::foreign::*;
use serde_json::{json, Value};

/// The raw reader: the hooks event stream as an `EventSource`-style parser (WHATWG rules:
/// `event:`, `data:` joined with `\n`, `id:`; `:` lines are comments; a blank line
/// dispatches, and a message without `data:` is not dispatched) hands it to the app.
struct RawSse;

impl RawSse {
    async fn open(url: &str, ticket: &str) -> (reqwest::header::HeaderMap, SseStream) {
        let r = reqwest::Client::new()
            .get(format!("{url}/hooks/events"))
            .query(&[("ticket", ticket)])
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        (r.headers().clone(), SseStream::from_response(r))
    }
}

/// Mints a ticket for the `notes` prefix of the session's space (the SDK's request shape).
async fn ticket(url: &str, s: &Session) -> Value {
    let t = s.token(&s.res("hooks/kv/notes"), "tinycloud.hooks/subscribe");
    let body =
        json!({"subscriptions": [{"space": s.space, "service": "kv", "pathPrefix": "notes"}]});
    post_json(url, "/hooks/tickets", &t, &body)
        .await
        .expect(200)
        .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_sse_framing_of_a_write() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let v = ticket(url, &s).await;
    // {ticket, expiresAt}
    assert!(v["ticket"].is_string(), "{v}");
    assert!(
        v["expiresAt"].is_string() || v["expiresAt"].is_number(),
        "{v}"
    );
    let (headers, mut sse) = RawSse::open(url, v["ticket"].as_str().unwrap()).await;
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.kv(url, "put", "notes/a", &[], b"v".to_vec())
        .await
        .expect(200);

    // Find the write (`first_data_message_is_the_write` below pins that nothing else comes first).
    let m = loop {
        let m = sse
            .next(Duration::from_secs(5))
            .await
            .expect("a write event");
        if m.event == "write" {
            break m;
        }
    };
    let data: Value = serde_json::from_str(&m.data).expect("JSON data");
    assert_eq!(data["type"], "write");
    assert_eq!(data["space"], json!(s.space));
    assert_eq!(data["service"], "kv");
    assert_eq!(data["ability"], "tinycloud.kv/put");
    assert_eq!(data["path"], "notes/a");
    assert_eq!(data["actor"], json!(s.key.did()));
    assert!(data["timestamp"].as_str().unwrap().contains('T'));
    // The SSE `id:` is the event's `id` (what Last-Event-ID resumes from).
    assert_eq!(m.id.as_deref(), data["id"].as_str(), "{data}");
    // The protocol notes (§5, reference 1.16) observe that hook routes did not verify the
    // invocation's signature or chain; newer reference sources do, and so does this node: a
    // ticket request signed by a key the session delegation does not name is 401.
    let stranger = EdKey::random();
    let mut u = Ucan::invocation(
        &stranger,
        std::slice::from_ref(&s.cid),
        &[cap(s.res("hooks/kv/notes"), "tinycloud.hooks/subscribe")],
    );
    u.iss = s.key.vm();
    let forged = u.sign(&stranger);
    let body =
        json!({"subscriptions": [{"space": s.space, "service": "kv", "pathPrefix": "notes"}]});
    post_json(url, "/hooks/tickets", &forged, &body)
        .await
        .expect(401);
    // A scope the invocation does not cover: 401 here (`Unauthorized Action`, as `/invoke`
    // answers); the reference answers 403 on this route. Both are refusals a client reports.
    let t = s.token(&s.res("hooks/kv/other"), "tinycloud.hooks/subscribe");
    post_json(url, "/hooks/tickets", &t, &body)
        .await
        .expect(401);
    // A garbage ticket is 401.
    let r = reqwest::Client::new()
        .get(format!("{url}/hooks/events"))
        .query(&[("ticket", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The reference SDK hands every dispatched message to the app as a write event, whatever its
/// `event:` name; so the first data message a subscriber sees must be the write it waits for
/// (heartbeats and signals as comments).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_data_message_is_the_write() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let v = ticket(url, &s).await;
    let (_, mut sse) = RawSse::open(url, v["ticket"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.kv(url, "put", "notes/first", &[], b"v".to_vec())
        .await
        .expect(200);
    let m = sse.next(Duration::from_secs(5)).await.expect("a message");
    assert_eq!(m.event, "write", "{m:?}");
    let data: Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(data["type"], "write");
    assert_eq!(data["path"], "notes/first");
}

/// The reference's write events carry `epoch` and `eventIndex` (its `id` is `<epochCid>:<index>`;
/// ours is the per-space sequence number, which clients treat as opaque: a deliberate difference
/// that lets `Last-Event-ID` resume from the event log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_event_has_the_reference_epoch_fields() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let v = ticket(url, &s).await;
    let (_, mut sse) = RawSse::open(url, v["ticket"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.kv(url, "put", "notes/e", &[], b"v".to_vec())
        .await
        .expect(200);
    let m = loop {
        let m = sse.next(Duration::from_secs(5)).await.expect("event");
        if m.event == "write" {
            break m;
        }
    };
    let data: Value = serde_json::from_str(&m.data).unwrap();
    assert!(
        data["epoch"].as_str().unwrap_or("").starts_with("bafkr4i"),
        "{data}"
    );
    assert!(data["eventIndex"].is_u64(), "{data}");
}

//! Webhooks end to end: a real local HTTP receiver verifies signatures, sees retries after it
//! answers 500, sees no duplicate after a 200, and gets deliveries that were pending when the
//! node was killed once it restarts.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    fail_first: Mutex<usize>,
}

// The test's own receiver is not part of the node's API.
#[allow(clippy::disallowed_methods)]
async fn start_receiver(port: u16, r: Arc<Receiver>) -> (u16, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let r = r.clone();
            async move {
                r.got.lock().unwrap().push(Received { headers, body });
                let mut f = r.fail_first.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, h)
}

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(data);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

async fn wait_for(r: &Receiver, n: usize, secs: u64) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let got = r.got.lock().unwrap().clone();
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_retried_deduplicated_and_durable_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        "[hooks]\nallow_private_destinations = true\nbackoff_secs = [1]\nmax_attempts = 5\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [("TINYCLOUD_CONFIG", cfg.to_str().unwrap())];
    let mut node = Node::start_in(NODE_BIN, &data, &env);
    let o = Owner::sign_in(&node, 40, "default").await;
    let receiver = Arc::new(Receiver::default());
    *receiver.fail_first.lock().unwrap() = 2;
    let (port, server) = start_receiver(0, receiver.clone()).await;
    let callback = format!("http://127.0.0.1:{port}/hook");
    let secret = "s3cret-for-hmac";
    let reg = |cb: String| json!({"space": o.space.to_string(), "service": "kv", "pathPrefix": "notes", "callbackUrl": cb, "secret": secret});

    let c = o.client(&node);
    let notes = o.res("hooks/kv/notes");
    let post = reqwest::Method::POST;

    // validation
    let (s, _) = c
        .hooks(
            &notes,
            "register",
            post.clone(),
            "/hooks/webhooks",
            Some(&reg(format!("http://u:p@127.0.0.1:{port}/hook"))),
        )
        .await;
    assert_eq!(s, 400, "credentials in the URL are refused");
    let (s, v) = c
        .hooks(
            &notes,
            "register",
            post.clone(),
            "/hooks/webhooks",
            Some(&reg(callback.clone())),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["secretKeyId"], "primary");
    assert!(
        !v.to_string().contains(secret),
        "the secret is never echoed"
    );

    // one write → 500, 500, 200: three attempts of one delivery, then nothing more
    c.put(&o.res("kv/other/x"), b"no").await.expect(200);
    c.put(&o.res("kv/notes/a"), b"v").await.expect(200);
    let got = wait_for(&receiver, 3, 15).await;
    assert_eq!(got.len(), 3, "two retries after 500s: {got:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "no duplicate after the 200");
    let ids: Vec<_> = got
        .iter()
        .map(|g| g.headers["x-tinycloud-delivery-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "retries keep the delivery id"
    );
    for g in &got {
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(
            body["path"], "notes/a",
            "the out-of-scope write was not delivered"
        );
        assert!(!g.body.contains("\"v\""));
        assert_eq!(g.headers["x-tinycloud-subscription-id"], id.as_str());
        assert_eq!(
            g.headers["x-tinycloud-event-id"].to_str().unwrap(),
            body["seq"].to_string()
        );
        assert_eq!(
            g.headers["x-tinycloud-signature"].to_str().unwrap(),
            hmac_hex(secret, g.body.as_bytes())
        );
        let ts = g.headers["x-tinycloud-timestamp"].to_str().unwrap();
        let signed = format!("{ts}.{}", g.body);
        assert_eq!(
            g.headers["x-tinycloud-signature-v2"].to_str().unwrap(),
            hmac_hex(secret, signed.as_bytes())
        );
    }
    let (s, v) = c
        .hooks(
            &notes,
            "list",
            reqwest::Method::GET,
            &format!("/hooks/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deliveries"][0]["status"], "delivered");
    assert_eq!(v["deliveries"][0]["attempts"], 3);

    // pending deliveries survive a crash: receiver down, write, kill -9, receiver up, restart
    server.abort();
    let _ = server.await;
    c.put(&o.res("kv/notes/b"), b"v").await.expect(200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    node.kill9();
    let (_, _server2) = start_receiver(port, receiver.clone()).await;
    let node = Node::start_in(NODE_BIN, &data, &env);
    let got = wait_for(&receiver, 4, 15).await;
    let last: Value = serde_json::from_str(&got.last().unwrap().body).unwrap();
    assert_eq!(
        last["path"], "notes/b",
        "the pending delivery arrived after the restart"
    );

    // list and unregister
    let c = o.client(&node);
    let (s, v) = c
        .hooks(
            &o.res("hooks/kv"),
            "list",
            reqwest::Method::GET,
            &format!("/hooks/webhooks?space={}&service=kv", o.space),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (s, _) = c
        .hooks(
            &notes,
            "unregister",
            reqwest::Method::DELETE,
            &format!("/hooks/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let before = receiver.got.lock().unwrap().len();
    c.put(&o.res("kv/notes/c"), b"v").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        receiver.got.lock().unwrap().len(),
        before,
        "no deliveries after unregister"
    );
    // a delegate holding hooks/list (not hooks/register) on the same scope cannot register:
    // the refusal is the missing ability, not a missing chain (its list works)
    let lister = ed25519(41);
    let grant = delegate(
        &node,
        &o.session,
        &lister.did(),
        &[o.session_cid],
        vec![tinycloud_auth::session::capability(&notes, "tinycloud.hooks/list").unwrap()],
        600,
    )
    .await;
    let d = Client::new(&node, &lister, &[grant]);
    let (s, v) = d
        .hooks(
            &notes,
            "list",
            reqwest::Method::GET,
            &format!("/hooks/webhooks?space={}&service=kv&prefix=notes", o.space),
            None,
        )
        .await;
    assert_eq!(s, 200, "the delegate's chain is good: {v}");
    let (s, v) = d
        .hooks(
            &notes,
            "register",
            post,
            "/hooks/webhooks",
            Some(&reg(callback)),
        )
        .await;
    assert_eq!(s, 401, "register without hooks/register: {v}");
}

//! Conformance (foreign client): webhook registration, listing, deletion and what a receiver
//! gets — headers and body (§5 of the reference). The receiver is a local axum server, as in
//! `e2e_webhooks.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

type Got = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

// The test's own receiver is not part of the node's API.
#[allow(clippy::disallowed_methods)]
async fn receiver(got: Got) -> u16 {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push((headers, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn hmac_sha256_hex(secret: &[u8], data: &[u8]) -> String {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
    m.update(data);
    hex::encode(m.finalize().into_bytes())
}

async fn hooks_call(
    url: &str,
    s: &Session,
    ability: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let t = s.token(
        &s.res("hooks/kv/notes"),
        &format!("tinycloud.hooks/{ability}"),
    );
    let mut req = http()
        .request(method, format!("{url}{path}"))
        .header("Authorization", t);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    Answer::from(req.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_headers_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    // Deliberate difference (development switch): the reference only delivers to https on
    // port 443 at public addresses; this test receiver is plain http on loopback, which the
    // node allows only with `hooks.allow_private_destinations`.
    std::fs::write(
        &cfg,
        "[hooks]\nallow_private_destinations = true\nbackoff_secs = [1]\n",
    )
    .unwrap();
    let node = Node::start_in(
        NODE_BIN,
        &dir.path().join("data"),
        &[("TINYCLOUD_CONFIG", cfg.to_str().unwrap())],
    );
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let got: Got = Arc::default();
    let port = receiver(got.clone()).await;
    let callback = format!("http://127.0.0.1:{port}/hook");
    let secret = "whsec-conformance";

    // Register: the subscription JSON of the reference.
    let reg = json!({"space": s.space, "service": "kv", "pathPrefix": "notes",
                     "callbackUrl": callback, "secret": secret});
    let a = hooks_call(
        url,
        &s,
        "register",
        reqwest::Method::POST,
        "/hooks/webhooks",
        Some(&reg),
    )
    .await
    .expect(200);
    let w = a.json();
    let id = w["id"].as_str().expect("id").to_owned();
    assert_eq!(w["subscriberDid"], json!(s.key.did()));
    assert_eq!(w["space"], json!(s.space));
    assert_eq!(w["service"], "kv");
    assert_eq!(w["pathPrefix"], "notes");
    // `abilities`: always an array, as the reference.
    assert!(w["abilities"].is_array(), "{w}");
    assert_eq!(w["callbackUrl"], json!(callback));
    assert_eq!(w["secretKeyId"], "primary");
    assert_eq!(w["active"], true);
    assert!(w["createdAt"].is_string());
    assert!(w.get("secret").is_none(), "the secret is never returned");

    // A write in scope is delivered: JSON body = the write event; the reference headers.
    s.kv(url, "put", "notes/n1", &[], b"v".to_vec())
        .await
        .expect(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = got.lock().unwrap().first().cloned().expect("a delivery");
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(h("content-type"), "application/json");
    assert!(!h("x-tinycloud-delivery-id").is_empty());
    assert_eq!(h("x-tinycloud-subscription-id"), id);
    assert_eq!(
        h("x-tinycloud-signature"),
        format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &body)),
        "HMAC-SHA256(secret, exact body)"
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "write");
    assert_eq!(event["space"], json!(s.space));
    assert_eq!(event["service"], "kv");
    assert_eq!(event["ability"], "tinycloud.kv/put");
    assert_eq!(event["path"], "notes/n1");
    assert_eq!(event["actor"], json!(s.key.did()));
    assert_eq!(
        h("x-tinycloud-event-id"),
        event["id"].as_str().unwrap_or_default()
    );
    // Our addition (not in the reference): a timestamped signature over `timestamp.body`
    // (replay protection for receivers that check it); extra headers do not disturb
    // reference receivers.
    let ts = h("x-tinycloud-timestamp");
    let mut signed = ts.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(&body);
    assert_eq!(
        h("x-tinycloud-signature-v2"),
        format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &signed))
    );

    // List (`?space=&service=&prefix=`).
    let path = format!(
        "/hooks/webhooks?space={}&service=kv&prefix=notes",
        encode_component(&s.space)
    );
    let v = hooks_call(url, &s, "list", reqwest::Method::GET, &path, None)
        .await
        .expect(200)
        .json();
    // A bare JSON array, as the reference.
    assert_eq!(v[0]["id"], json!(id), "{v}");

    // Delivery history (our addition); the node records the outcome just after the receiver
    // answered, so poll briefly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = hooks_call(
            url,
            &s,
            "list",
            reqwest::Method::GET,
            &format!("/hooks/webhooks/{id}/deliveries"),
            None,
        )
        .await
        .expect(200)
        .json();
        if v["deliveries"][0]["status"] == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Delete → 204 (a second delete is 204 as well: deactivation is idempotent here).
    hooks_call(
        url,
        &s,
        "unregister",
        reqwest::Method::DELETE,
        &format!("/hooks/webhooks/{id}"),
        None,
    )
    .await
    .expect(204);
    hooks_call(
        url,
        &s,
        "unregister",
        reqwest::Method::DELETE,
        &format!("/hooks/webhooks/{id}"),
        None,
    )
    .await
    .expect(204);
}

/// The reference's webhook JSON: `abilities` is always an array (empty = every ability of
/// the service), and `GET /hooks/webhooks` answers a bare JSON array of subscriptions.
#[tokio::test]
async fn webhook_json_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[hooks]\nallow_private_destinations = true\n").unwrap();
    let node = Node::start_in(
        NODE_BIN,
        &dir.path().join("data"),
        &[("TINYCLOUD_CONFIG", cfg.to_str().unwrap())],
    );
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let reg = json!({"space": s.space, "service": "kv", "pathPrefix": "notes",
                     "callbackUrl": "http://127.0.0.1:9/hook", "secret": "x"});
    let w = hooks_call(
        url,
        &s,
        "register",
        reqwest::Method::POST,
        "/hooks/webhooks",
        Some(&reg),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(w["abilities"], json!([]), "{w}");
    let path = format!(
        "/hooks/webhooks?space={}&service=kv&prefix=notes",
        encode_component(&s.space)
    );
    let v = hooks_call(url, &s, "list", reqwest::Method::GET, &path, None)
        .await
        .expect(200)
        .json();
    assert_eq!(v[0]["id"], w["id"], "{v}");
}

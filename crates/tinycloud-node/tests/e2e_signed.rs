//! Signed KV URLs end to end with raw HTTP, the way any HTTP client (curl, a browser, a media
//! player) uses them: mint through `POST /signed/kv`, read `GET /signed/kv/<ticket>` without
//! `Authorization` — full body, single ranges (206/416), `If-Range`, `If-None-Match` (304),
//! content changed (412), expiry and unknown tickets (401), restart survival, revocation.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::capability;

/// `POST /signed/kv` with an invocation of `ability` on `resource`.
async fn mint(
    node: &Node,
    key: &SecretKey,
    proofs: &[Cid],
    resource: &str,
    ability: &str,
    body: Value,
) -> (u16, Value) {
    let h = invoke_header(key, proofs, resource, ability);
    request(node, reqwest::Method::POST, "/signed/kv", &h, Some(&body)).await
}

/// The owner mints a URL for `path` (kv/get on exactly that key).
async fn owner_mint(node: &Node, o: &Owner, path: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"space": o.space.to_string(), "path": path});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    mint(
        node,
        &o.session,
        &[o.session_cid],
        &o.res(&format!("kv/{path}")),
        "tinycloud.kv/get",
        body,
    )
    .await
}

/// An unauthenticated GET with extra headers.
async fn fetch(node: &Node, url: &str, extra: &[(&str, &str)]) -> Resp {
    let mut req = http().get(format!("{}{url}", node.url));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn expires_at(v: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        v["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    t.unix_timestamp()
}

#[tokio::test]
async fn mint_read_ranges_conditionals_and_expiry() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 1, "default").await;
    let c = o.client(&node);
    let put = c
        .kv(
            &o.res("kv/docs/a.txt"),
            "put",
            &[("content-type", "text/plain")],
            b"hello world".to_vec(),
        )
        .await
        .expect(200);
    let tag = header(&put, "etag").to_owned();

    let (s, v) = owner_mint(&node, &o, "docs/a.txt", json!({"ttlSeconds": 60})).await;
    assert_eq!(s, 200, "{v}");
    let ticket = v["ticketId"].as_str().unwrap();
    let url = v["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/signed/kv/{ticket}"));
    assert!(!url.contains(&o.space.to_string()), "the URL names nothing");
    let exp = expires_at(&v);
    let now_s = now().as_millis() / 1000;
    assert!(exp > now_s && exp <= now_s + 60, "{v}");

    // The whole object, as curl gets it.
    let r = fetch(&node, &url, &[]).await.expect(200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(header(&r, "content-type"), "text/plain");
    assert_eq!(header(&r, "etag"), tag);
    assert_eq!(header(&r, "content-length"), "11");
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(header(&r, "cache-control"), "private, no-store");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "content-security-policy"), "sandbox");
    // Reading is not single use.
    fetch(&node, &url, &[]).await.expect(200);

    // One range.
    for (range, want, content_range) in [
        ("bytes=6-10", &b"world"[..], "bytes 6-10/11"),
        ("bytes=6-", b"world", "bytes 6-10/11"),
        ("bytes=-5", b"world", "bytes 6-10/11"),
        ("bytes=0-0", b"h", "bytes 0-0/11"),
        ("bytes=0-1000", b"hello world", "bytes 0-10/11"),
        ("bytes=-1000", b"hello world", "bytes 0-10/11"),
    ] {
        let r = fetch(&node, &url, &[("range", range)]).await.expect(206);
        assert_eq!(r.body, want, "{range}");
        assert_eq!(header(&r, "content-range"), content_range, "{range}");
        assert_eq!(header(&r, "content-length"), want.len().to_string());
        assert_eq!(header(&r, "etag"), tag);
    }
    for range in ["bytes=11-", "bytes=11-20", "bytes=100-200"] {
        let r = fetch(&node, &url, &[("range", range)]).await.expect(416);
        assert_eq!(header(&r, "content-range"), "bytes */11", "{range}");
        assert!(header(&r, "content-type").starts_with("text/plain"));
    }
    // Several ranges, other units and malformed ranges: 400, as the reference.
    for range in ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=x-"] {
        fetch(&node, &url, &[("range", range)]).await.expect(400);
    }

    // If-Range: the range only when the validator is the current ETag.
    let r = fetch(&node, &url, &[("range", "bytes=0-4"), ("if-range", &tag)])
        .await
        .expect(206);
    assert_eq!(r.body, b"hello");
    let r = fetch(
        &node,
        &url,
        &[("range", "bytes=0-4"), ("if-range", "\"blake3-00\"")],
    )
    .await
    .expect(200);
    assert_eq!(r.body, b"hello world");

    // If-None-Match.
    let r = fetch(&node, &url, &[("if-none-match", &tag)])
        .await
        .expect(304);
    assert!(r.body.is_empty());
    assert_eq!(header(&r, "etag"), tag);
    fetch(&node, &url, &[("if-none-match", "\"blake3-00\"")])
        .await
        .expect(200);

    // Unknown and tampered tickets.
    fetch(&node, "/signed/kv/nope", &[]).await.expect(401);
    let mut forged: Vec<char> = ticket.chars().collect();
    forged[10] = if forged[10] == 'a' { 'b' } else { 'a' };
    let forged: String = forged.into_iter().collect();
    fetch(&node, &format!("/signed/kv/{forged}"), &[])
        .await
        .expect(401);

    // The reference JS SDK's request shape (snake_case) is honoured; the ttl is capped at 300.
    // (3 s, fetched at once: the expiry is rounded down to whole seconds, and a loaded machine
    // must not make the first fetch late.)
    let (s, v) = owner_mint(&node, &o, "docs/a.txt", json!({"ttl_seconds": 3})).await;
    assert_eq!(s, 200, "{v}");
    let short = v["url"].as_str().unwrap().to_owned();
    fetch(&node, &short, &[]).await.expect(200);
    let (s, v) = owner_mint(&node, &o, "docs/a.txt", json!({"ttlSeconds": 100_000})).await;
    assert_eq!(s, 200, "{v}");
    assert!(expires_at(&v) <= now().as_millis() / 1000 + 300, "{v}");
    // The invocation's own expiry bounds the ticket too (sessions sign 120 s invocations).
    assert!(expires_at(&v) <= now().as_millis() / 1000 + 120, "{v}");
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let r = fetch(&node, &short, &[]).await.expect(401);
    assert!(r.text().contains("expired"), "{}", r.text());

    // Binding to a given hash: the current one is accepted in either spelling, a stale one
    // refused at minting (stricter than the reference, which would mint a URL that never works).
    let hex = tag
        .trim_matches('"')
        .trim_start_matches("blake3-")
        .to_owned();
    assert_eq!(
        owner_mint(&node, &o, "docs/a.txt", json!({"etag": tag}))
            .await
            .0,
        200
    );
    assert_eq!(
        owner_mint(
            &node,
            &o,
            "docs/a.txt",
            json!({"contentHash": hex, "etag": tag})
        )
        .await
        .0,
        200
    );
    let stale = format!("\"blake3-{}\"", "0".repeat(64));
    assert_eq!(
        owner_mint(&node, &o, "docs/a.txt", json!({"etag": stale}))
            .await
            .0,
        412
    );
    assert_eq!(
        owner_mint(
            &node,
            &o,
            "docs/a.txt",
            json!({"contentHash": hex, "etag": stale})
        )
        .await
        .0,
        400,
        "contentHash and etag disagree"
    );
    assert_eq!(
        owner_mint(&node, &o, "docs/a.txt", json!({"etag": "\"blake3-test\""}))
            .await
            .0,
        400
    );
    assert_eq!(
        owner_mint(&node, &o, "docs/a.txt", json!({"maxUses": 1}))
            .await
            .0,
        400
    );
    assert_eq!(
        owner_mint(&node, &o, "docs/missing", json!({})).await.0,
        404
    );
    assert_eq!(
        owner_mint(&node, &o, "docs/a.txt", json!({"ttlSeconds": 0}))
            .await
            .0,
        401,
        "a URL that would expire at once"
    );

    // The content changes: the URL stops serving (412), whatever the request asks.
    c.put(&o.res("kv/docs/a.txt"), b"changed").await.expect(200);
    fetch(&node, &url, &[]).await.expect(412);
    fetch(&node, &url, &[("range", "bytes=0-1")])
        .await
        .expect(412);
    // Deleted: 404.
    let (s, v) = owner_mint(&node, &o, "docs/a.txt", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let url2 = v["url"].as_str().unwrap().to_owned();
    c.call(&o.res("kv/docs/a.txt"), "del").await.expect(200);
    fetch(&node, &url2, &[]).await.expect(404);
}

#[tokio::test]
async fn large_objects_stream_with_ranges_from_the_blob_store() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 2, "default").await;
    // Well past the inline threshold, so the value lives in the blob store.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    o.client(&node)
        .put(&o.res("kv/big.bin"), &data)
        .await
        .expect(200);
    let (s, v) = owner_mint(&node, &o, "big.bin", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap();
    let r = fetch(&node, url, &[]).await.expect(200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data);
    let (a, b) = (2_000_000usize, 2_100_000usize);
    let r = fetch(&node, url, &[("range", &format!("bytes={a}-{b}"))])
        .await
        .expect(206);
    assert!(r.body == data[a..=b]);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {a}-{b}/{}", data.len())
    );
    let r = fetch(&node, url, &[("range", "bytes=-10")])
        .await
        .expect(206);
    assert!(r.body == data[data.len() - 10..]);
}

#[tokio::test]
async fn tickets_survive_a_restart() {
    let mut node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 3, "default").await;
    o.client(&node)
        .put(&o.res("kv/keep.txt"), b"kept")
        .await
        .expect(200);
    let (s, v) = owner_mint(&node, &o, "keep.txt", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let dir = node.dir.clone();
    let _tmp = node.take_tmp();
    node.kill9();
    let node = Node::start_in(NODE_BIN, &dir, &[]);
    let r = fetch(&node, &url, &[]).await.expect(200);
    assert_eq!(r.body, b"kept");
}

#[tokio::test]
async fn revoking_the_delegation_behind_a_url_stops_it() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 4, "default").await;
    o.client(&node)
        .put(&o.res("kv/shared/doc"), b"doc")
        .await
        .expect(200);
    let friend = ed25519(40);
    let grant = delegate(
        &node,
        &o.session,
        &friend.did(),
        &[o.session_cid],
        vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let body = json!({"space": o.space.to_string(), "path": "shared/doc"});
    let (s, v) = mint(
        &node,
        &friend,
        &[grant],
        &o.res("kv/shared/doc"),
        "tinycloud.kv/get",
        body.clone(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    fetch(&node, &url, &[]).await.expect(200);
    assert_eq!(revoke(&node, &o.session, grant).await.0, 200);
    let r = fetch(&node, &url, &[]).await.expect(401);
    assert!(r.text().contains("revoked"), "{}", r.text());
    // And no new URL can be minted on it.
    let (s, _) = mint(
        &node,
        &friend,
        &[grant],
        &o.res("kv/shared/doc"),
        "tinycloud.kv/get",
        body,
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn the_chain_expiry_bounds_the_url() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 5, "default").await;
    o.client(&node)
        .put(&o.res("kv/brief"), b"brief")
        .await
        .expect(200);
    let friend = ed25519(50);
    let grant = delegate(
        &node,
        &o.session,
        &friend.did(),
        &[o.session_cid],
        vec![capability(&o.res("kv/brief"), "tinycloud.kv/get").unwrap()],
        3,
    )
    .await;
    let (s, v) = mint(
        &node,
        &friend,
        &[grant],
        &o.res("kv/brief"),
        "tinycloud.kv/get",
        json!({"space": o.space.to_string(), "path": "brief", "ttlSeconds": 300}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(expires_at(&v) <= now().as_millis() / 1000 + 3, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    fetch(&node, &url, &[]).await.expect(200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    fetch(&node, &url, &[]).await.expect(401);
}

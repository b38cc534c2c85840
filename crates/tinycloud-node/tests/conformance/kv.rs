//! Conformance (foreign client): the KV service through `/invoke` — statuses, bodies and the
//! headers a reference client parses (`ETag`, metadata, `x-tinycloud-*`), §3 of the reference.

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use serde_json::json;

fn etag_of(body: &[u8]) -> String {
    format!("\"blake3-{}\"", blake3::hash(body).to_hex())
}

#[tokio::test]
async fn put_get_metadata_headers() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let body = br#"{"title":"hello"}"#.to_vec();
    let tag = etag_of(&body);

    // put: 200, empty body, strong ETag "blake3-<64 hex>" of the content.
    let a = s
        .kv(
            url,
            "put",
            "documents/a.json",
            &[
                ("Content-Type", "application/json"),
                ("Content-Disposition", "inline"),
                ("Content-Language", "en"),
                ("x-tinycloud-meta-author", "alice"),
                ("x-not-stored", "nope"),
            ],
            body.clone(),
        )
        .await
        .expect(200);
    assert!(a.body.is_empty());
    assert_eq!(a.header("etag"), Some(tag.as_str()));

    // get: the bytes, the stored metadata headers, ETag, Content-Length, Cache-Control.
    let a = s
        .kv(url, "get", "documents/a.json", &[], vec![])
        .await
        .expect(200);
    assert_eq!(a.body, body);
    assert_eq!(a.header("etag"), Some(tag.as_str()));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("content-disposition"), Some("inline"));
    assert_eq!(a.header("content-language"), Some("en"));
    assert_eq!(a.header("x-tinycloud-meta-author"), Some("alice"));
    assert_eq!(
        a.header("x-not-stored"),
        None,
        "only whitelisted headers are stored"
    );
    assert_eq!(
        a.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(a.header("cache-control"), Some("private, no-cache"));

    // metadata: 200, empty body, the same headers.
    let a = s
        .kv(url, "metadata", "documents/a.json", &[], vec![])
        .await
        .expect(200);
    assert!(a.body.is_empty());
    assert_eq!(a.header("etag"), Some(tag.as_str()));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("x-tinycloud-meta-author"), Some("alice"));

    // Conditional get: If-None-Match (exact, weak form, list, `*`) → 304.
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"x\", {tag}"),
        "*".into(),
    ] {
        s.kv(
            url,
            "get",
            "documents/a.json",
            &[("If-None-Match", &inm)],
            vec![],
        )
        .await
        .expect(304);
    }
    s.kv(
        url,
        "get",
        "documents/a.json",
        &[("If-None-Match", "\"blake3-00\"")],
        vec![],
    )
    .await
    .expect(200);
    // x-tinycloud-max-response-bytes smaller than the object → 413.
    s.kv(
        url,
        "get",
        "documents/a.json",
        &[("x-tinycloud-max-response-bytes", "3")],
        vec![],
    )
    .await
    .expect(413);

    // Preconditions on writes: If-None-Match: * (create only) and If-Match (strong ETag).
    s.kv(
        url,
        "put",
        "documents/a.json",
        &[("If-None-Match", "*")],
        b"2".to_vec(),
    )
    .await
    .expect(412);
    s.kv(
        url,
        "put",
        "documents/new.json",
        &[("If-None-Match", "*")],
        b"2".to_vec(),
    )
    .await
    .expect(200);
    let wrong = etag_of(b"something else");
    s.kv(
        url,
        "put",
        "documents/a.json",
        &[("If-Match", &wrong)],
        b"3".to_vec(),
    )
    .await
    .expect(412);
    let a = s
        .kv(
            url,
            "put",
            "documents/a.json",
            &[("If-Match", &tag)],
            b"3".to_vec(),
        )
        .await
        .expect(200);
    assert_eq!(a.header("etag"), Some(etag_of(b"3").as_str()));
    // Combining both preconditions → 400; the unsupported expected-version header → 400.
    s.kv(
        url,
        "put",
        "documents/a.json",
        &[("If-Match", &etag_of(b"3")), ("If-None-Match", "*")],
        b"4".to_vec(),
    )
    .await
    .expect(400);
    s.kv(
        url,
        "put",
        "documents/a.json",
        &[("x-tinycloud-expected-version", "1")],
        b"4".to_vec(),
    )
    .await
    .expect(400);

    // del: 200 with the ETag of the deleted version; then get 404; del of a never-written key
    // 404 (`No Such Key`).
    let a = s
        .kv(url, "del", "documents/a.json", &[], vec![])
        .await
        .expect(200);
    assert_eq!(a.header("etag"), Some(etag_of(b"3").as_str()));
    s.kv(url, "get", "documents/a.json", &[], vec![])
        .await
        .expect(404);
    s.kv(url, "metadata", "documents/a.json", &[], vec![])
        .await
        .expect(404);
    s.kv(url, "del", "documents/never", &[], vec![])
        .await
        .expect(404);
    // `tinycloud.kv/delete` is the deprecated alias of `del`; the session was granted `del`,
    // which an invocation of `delete` is covered by.
    let t = s.token(&s.res("kv/documents/new.json"), "tinycloud.kv/delete");
    invoke(url, &t, &[], vec![]).await.expect(200);
}

#[tokio::test]
async fn list_shapes_and_paging() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    for k in ["a/1", "a/2", "a/3", "ab", "b/1"] {
        s.kv(url, "put", k, &[], k.as_bytes().to_vec())
            .await
            .expect(200);
    }
    // A JSON array of full key strings, byte order, raw string prefix.
    let a = s.kv(url, "list", "a", &[], vec![]).await.expect(200);
    assert!(a
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    assert_eq!(a.header("x-tinycloud-truncated"), Some("false"));
    assert_eq!(a.header("x-tinycloud-next-cursor"), None);
    let keys = a.json();
    // Deliberate difference: list results are filtered segment-aware to the keys the grant
    // covers, but the reference's raw prefix would also return `ab` for prefix `a`; the
    // whole-service grant here covers `ab`, so both agree on [a/1, a/2, a/3, ab].
    assert_eq!(keys, json!(["a/1", "a/2", "a/3", "ab"]), "{keys}");
    // The JS SDK lists everything with an empty path (`…/kv/`).
    let a = s.kv(url, "list", "", &[], vec![]).await.expect(200);
    assert_eq!(a.json(), json!(["a/1", "a/2", "a/3", "ab", "b/1"]));

    // Deliberate difference: a path-less list resource (`…/kv`) answers every key here; the
    // reference answers it with an empty body (its clients list with `…/kv/`, above).
    let t = s.token(&s.res("kv"), "tinycloud.kv/list");
    let a = invoke(url, &t, &[], vec![]).await.expect(200);
    assert_eq!(a.json(), json!(["a/1", "a/2", "a/3", "ab", "b/1"]));

    // Paging: x-tinycloud-limit, then x-tinycloud-cursor with the same limit.
    let a = s
        .kv(url, "list", "", &[("x-tinycloud-limit", "2")], vec![])
        .await
        .expect(200);
    assert_eq!(a.json(), json!(["a/1", "a/2"]));
    assert_eq!(a.header("x-tinycloud-truncated"), Some("true"));
    let cursor = a
        .header("x-tinycloud-next-cursor")
        .expect("cursor")
        .to_owned();
    let a = s
        .kv(
            url,
            "list",
            "",
            &[("x-tinycloud-limit", "2"), ("x-tinycloud-cursor", &cursor)],
            vec![],
        )
        .await
        .expect(200);
    assert_eq!(a.json(), json!(["a/3", "ab"]));
    // A cursor without its limit, or a limit out of 1..=1000, is 400.
    s.kv(url, "list", "", &[("x-tinycloud-cursor", &cursor)], vec![])
        .await
        .expect(400);
    s.kv(url, "list", "", &[("x-tinycloud-limit", "0")], vec![])
        .await
        .expect(400);
}

/// Batch reads and writes (§3.2: ≥ 2 `kv/get`/`kv/metadata` capabilities → `{"results": …}`;
/// ≥ 2 `kv/put` with a multipart body → `{"written", "count"}`) are used by newer SDK paths.
#[tokio::test]
async fn batch_read_shape() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    s.kv(
        url,
        "put",
        "x",
        &[("Content-Type", "text/plain")],
        b"X".to_vec(),
    )
    .await
    .expect(200);
    let t = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[
            cap(s.res("kv/x"), "tinycloud.kv/get"),
            cap(s.res("kv/y"), "tinycloud.kv/get"),
        ],
    )
    .sign(&s.key);
    let v = invoke(url, &t, &[], vec![]).await.expect(200).json();
    assert_eq!(v["results"][0]["key"], "x");
    assert_eq!(v["results"][0]["ok"], true);
    assert_eq!(v["results"][0]["dataBase64"], b64std(b"X"));
    assert_eq!(v["results"][1]["ok"], false);
    assert_eq!(v["results"][1]["error"]["code"], "KV_NOT_FOUND");
}

/// A multipart body with one part per `(field name, content type, bytes)`.
fn multipart(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, ct, data) in parts {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {ct}\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// Batch put (§3.2): ≥ 2 `kv/put` capabilities, a multipart body whose field names are the
/// percent-encoded keys, part headers as metadata → `{"written", "count"}`.
#[tokio::test]
async fn batch_put_shape() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let t = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[
            cap(s.res("kv/docs/a b"), "tinycloud.kv/put"),
            cap(s.res("kv/docs/c"), "tinycloud.kv/put"),
        ],
    )
    .sign(&s.key);
    let body = multipart(
        "XyZ",
        &[
            ("docs%2Fc", "application/json", b"{\"c\":1}"),
            ("docs%2Fa%20b", "text/plain", b"AB"),
        ],
    );
    let v = invoke(
        url,
        &t,
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
        body,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(v, json!({"written": ["docs/a b", "docs/c"], "count": 2}));
    let a = s.kv(url, "get", "docs/c", &[], vec![]).await.expect(200);
    assert_eq!(a.body, b"{\"c\":1}");
    assert_eq!(a.header("content-type"), Some("application/json"));
}

/// Quota statuses the SDK maps (§3.4): a write past the remainder is 413, a write once the
/// space is full is 402, reads never 402. And `tinycloud.space/info` answers 200 empty.
#[tokio::test]
async fn quota_statuses_and_space_info() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "16 KiB")]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    // `tinycloud.space/info` on `<space>/space`: authorized and the space exists → 200 empty.
    let key = EdKey::random();
    let c = Siwe::recap(
        &s.wallet,
        &key.vm(),
        &[cap(s.res("space"), "tinycloud.space/info")],
        &[],
        Some(now_secs() + 600),
    )
    .cacao(&s.wallet);
    let _ = delegate(url, &c.header()).await;
    let t = Ucan::invocation(
        &key,
        &[c.cid()],
        &[cap(s.res("space"), "tinycloud.space/info")],
    )
    .sign(&key);
    let a = invoke(url, &t, &[], vec![]).await.expect(200);
    assert!(a.body.is_empty());

    let mut n = 0;
    let available: usize = loop {
        let a = s
            .kv(url, "put", &format!("f{n}"), &[], vec![1u8; 3000])
            .await;
        if a.status == 413 {
            let t = a.text();
            assert!(t.starts_with("Write exceeds remaining storage"), "{t}");
            break t
                .split('(')
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|d| d.parse().ok())
                .expect("bytes available");
        }
        a.expect(200);
        n += 1;
        assert!(n < 10, "the limit applies");
    };
    s.kv(url, "put", "rest", &[], vec![2u8; available])
        .await
        .expect(200);
    let a = s
        .kv(url, "put", "one-more", &[], vec![3u8; 1])
        .await
        .expect(402);
    assert!(
        a.text().starts_with("Storage quota exceeded"),
        "{}",
        a.text()
    );
    s.kv(url, "get", "f0", &[], vec![]).await.expect(200);
    // Deliberate difference: stored delegations count in the space's quota here, so a full
    // space also refuses new delegations naming it (402); the reference does not charge them.
    let c = Siwe::recap(
        &s.wallet,
        &EdKey::random().vm(),
        &[cap(s.res("kv"), "tinycloud.kv/get")],
        &[],
        Some(now_secs() + 600),
    )
    .cacao(&s.wallet);
    delegate(url, &c.header()).await.expect(402);
}

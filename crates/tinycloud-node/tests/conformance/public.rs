//! Conformance (foreign client): unauthenticated reads of spaces named `public` (§1.1, §3.3 of
//! the reference) — what the SDK's vault uses to publish `.well-known/vault-pubkey`.

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use serde_json::json;

#[tokio::test]
async fn public_reads_as_an_anonymous_client() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    // The SDK lazily creates the `public` space with the same sign-in flow.
    let s = Session::sign_in(url, "public").await;
    let body = b"x25519-public-key-bytes".to_vec();
    s.kv(
        url,
        "put",
        ".well-known/vault-pubkey",
        &[
            ("Content-Type", "text/plain"),
            ("Content-Language", "en"),
            ("x-tinycloud-meta-secret", "not for the public"),
        ],
        body.clone(),
    )
    .await
    .expect(200);
    s.kv(url, "put", ".well-known/vault-version", &[], b"1".to_vec())
        .await
        .expect(200);

    // GET: the value, content type, strong ETag; only content-type/-encoding/-language of
    // the stored metadata are exposed.
    let path = format!("/public/{}/kv/.well-known/vault-pubkey", s.space);
    let a = get(url, &path).await.expect(200);
    assert_eq!(a.body, body);
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert_eq!(a.header("content-language"), Some("en"));
    assert_eq!(
        a.header("etag"),
        Some(format!("\"blake3-{}\"", blake3::hash(&body).to_hex()).as_str())
    );
    assert_eq!(a.header("x-tinycloud-meta-secret"), None);
    // HEAD: headers, no body.
    let h = Answer::from(http().head(format!("{url}{path}")).send().await.unwrap())
        .await
        .expect(200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("etag"), a.header("etag"));
    // Missing key: 404.
    get(url, &format!("/public/{}/kv/nothing", s.space))
        .await
        .expect(404);

    // List with ?prefix=: a JSON array of keys (raw prefix).
    let a = get(url, &format!("/public/{}/kv?prefix=.well-known/", s.space))
        .await
        .expect(200);
    assert_eq!(
        a.json(),
        json!([".well-known/vault-pubkey", ".well-known/vault-version"])
    );
    assert_eq!(a.header("x-tinycloud-truncated"), Some("false"));

    // A space not named `public` is not readable here.
    let other = s.wallet.space("default");
    let a = get(url, &format!("/public/{other}/kv/x")).await;
    assert!(
        a.status == 404 || a.status == 400,
        "{} {}",
        a.status,
        a.text()
    );

    // Deliberate difference: `OPTIONS /public/…` answers 200 like every other OPTIONS here
    // (the reference's public routes answer 204); both are 2xx preflight successes.
    let r = http()
        .request(reqwest::Method::OPTIONS, format!("{url}{path}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

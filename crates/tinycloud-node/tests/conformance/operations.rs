//! Conformance (foreign client): the account delegation listing (`POST /delegation/query`,
//! reference §1.8), signed KV URLs (§8), the node's published keys (`/.well-known/tinycloud/node-keys`) and the
//! operator's quota API (`/admin/...`, §9), with requests built by `tests/foreign/` (no
//! `tinycloud_auth`) against the real binary.

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use serde_json::{json, Value};

/// The listing as a reference client asks for it: camelCase body, the `tinycloud.delegation/list`
/// proof on `<space>/delegation`, the reference's item fields.
#[tokio::test]
async fn delegation_query_as_a_reference_client() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    // The owner session grants a read of notes/ to an app key (a UCAN, as the JS SDK delegates).
    let app = EdKey::random();
    let grant = Ucan::delegation(
        &s.key,
        &app.did(),
        std::slice::from_ref(&s.cid),
        &[cap(s.res("kv/notes"), "tinycloud.kv/get")],
        600,
    )
    .sign(&s.key);
    let grant_cid = cid(grant.as_bytes());
    let d = delegate(url, &grant).await.expect(200).json();
    assert_eq!(d["cid"], json!(grant_cid));

    let list = |body: Value| {
        let t = s.token(&s.res("delegation"), "tinycloud.delegation/list");
        async move { post_json(url, "/delegation/query", &t, &body).await }
    };
    let v = list(json!({"direction": "granted", "limit": 100}))
        .await
        .expect(200)
        .json();
    assert!(v["schemaVersion"].is_u64(), "{v}");
    let items = v["items"].as_array().expect("items");
    let cids: Vec<&str> = items.iter().filter_map(|i| i["cid"].as_str()).collect();
    assert!(
        cids.contains(&s.cid.as_str()),
        "the session delegation: {v}"
    );
    assert!(cids.contains(&grant_cid.as_str()), "the app grant: {v}");
    let item = items.iter().find(|i| i["cid"] == json!(grant_cid)).unwrap();
    assert_eq!(item["direction"], "granted");
    assert_eq!(item["delegatorDid"], json!(s.key.did()));
    assert_eq!(item["delegateDid"], json!(app.did()));
    assert_eq!(item["status"], "active");
    assert_eq!(item["parents"], json!([s.cid]));
    assert_eq!(item["resources"][0]["resource"], json!(s.res("kv/notes")));
    assert_eq!(item["resources"][0]["actions"], json!(["tinycloud.kv/get"]));
    assert!(item["resources"][0].get("caveats").is_some(), "{item}");
    for k in ["issuedAt", "notBefore", "expiresAt"] {
        assert!(item.get(k).is_some(), "{k} in {item}");
    }

    // Paging: limit 1 gives a nextCursor that continues the listing.
    let p1 = list(json!({"direction": "granted", "limit": 1}))
        .await
        .expect(200)
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let cursor = p1["nextCursor"].as_str().expect("nextCursor").to_owned();
    let p2 = list(json!({"direction": "granted", "limit": 1, "cursor": cursor}))
        .await
        .expect(200)
        .json();
    assert_ne!(p1["items"][0]["cid"], p2["items"][0]["cid"]);

    // Revoked ones are marked (the reference's `revokedAt`/`revokedBy`).
    let revoke = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[cap(
            format!("urn:cid:{grant_cid}"),
            "tinycloud.delegation/revoke",
        )],
    )
    .sign(&s.key);
    post_auth(url, "/revoke", &revoke, &[], vec![])
        .await
        .expect(200);
    let v = list(json!({"direction": "granted", "status": "revoked"}))
        .await
        .expect(200)
        .json();
    let item = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["cid"] == json!(grant_cid))
        .expect("the revoked grant");
    assert_eq!(item["status"], "revoked");
    assert!(
        item["revokedAt"].is_string() || item["revokedAt"].is_number(),
        "{item}"
    );

    // The reference rejects unknown fields (serde deny_unknown_fields): 400 here too.
    list(json!({"direction": "all", "bogus": 1}))
        .await
        .expect(400);
    // A proof on another ability is refused before anything is read (reference: 403).
    let t = s.token(&s.res("delegation"), "tinycloud.delegation/revoke");
    post_json(url, "/delegation/query", &t, &json!({}))
        .await
        .expect(403);
}

/// `{nodeDid, shareInvitationPublicKey}`: the node's identity (= `/info` `nodeId`) and the
/// Ed25519 share-invitation key as unpadded base64url (32 bytes).
#[tokio::test]
async fn node_keys() {
    let node = Node::start(NODE_BIN, &[]);
    let info = get(&node.url, "/info").await.expect(200).json();
    let v = get(&node.url, "/.well-known/tinycloud/node-keys")
        .await
        .expect(200)
        .json();
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(v["nodeDid"], info["nodeId"]);
    let k = v["shareInvitationPublicKey"].as_str().expect("key");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, k)
        .expect("unpadded base64url");
    assert_eq!(bytes.len(), 32);
    assert!(ed25519_dalek::VerifyingKey::from_bytes(&bytes.try_into().unwrap()).is_ok());
}

const SECRET: &str = "conformance-admin-secret-0123456789abcdef";

async fn admin(url: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
    let mut r = http()
        .request(method, format!("{url}{path}"))
        .header("Authorization", format!("Bearer {SECRET}"));
    if let Some(b) = body {
        r = r
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    Answer::from(r.send().await.expect("send")).await
}

/// The operator API with `Authorization: Bearer $TINYCLOUD_ADMIN_SECRET`: an override is
/// enforced on a foreign client's next write, listed, reported in usage, and removable.
#[tokio::test]
async fn admin_quota_api() {
    // Off without a secret: 503 (the reference's behaviour).
    let off = Node::start(NODE_BIN, &[]);
    admin(&off.url, reqwest::Method::GET, "/admin/quota", None)
        .await
        .expect(503);
    drop(off);

    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let space = encode_component(&s.space);
    s.kv(url, "put", "a", &[], vec![b'x'; 100])
        .await
        .expect(200);

    // A wrong bearer is 401 on the same route.
    let r = http()
        .get(format!("{url}/admin/quota"))
        .header("Authorization", "Bearer not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let v = admin(
        url,
        reqwest::Method::PUT,
        &format!("/admin/quota/{space}"),
        Some(json!({"limit_bytes": 1})),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(v["space_id"], json!(s.space));
    assert_eq!(v["effective_limit_bytes"], 1);
    // The space is over its new limit: the next write is refused with the quota status.
    // Usage (≥ 100 bytes) is at or past the 1-byte limit: 402, as the reference answers a
    // space whose quota is already exhausted (413 is for a write past the remainder).
    s.kv(url, "put", "b", &[], b"y".to_vec()).await.expect(402);

    let v = admin(
        url,
        reqwest::Method::GET,
        &format!("/admin/quota/{space}"),
        None,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(v["override_bytes"], 1);
    assert!(v["current_usage_bytes"].as_u64().unwrap() >= 100, "{v}");
    let v = admin(url, reqwest::Method::GET, "/admin/quota", None)
        .await
        .expect(200)
        .json();
    assert_eq!(v["overrides"][&s.space], 1, "{v}");
    let v = admin(url, reqwest::Method::GET, "/admin/usage", None)
        .await
        .expect(200)
        .json();
    let row = v["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["space_id"] == json!(s.space))
        .expect("the space in usage");
    assert!(row["usage_bytes"].as_u64().unwrap() >= 100, "{row}");

    admin(
        url,
        reqwest::Method::DELETE,
        &format!("/admin/quota/{space}"),
        None,
    )
    .await
    .expect(200);
    s.kv(url, "put", "b", &[], b"y".to_vec()).await.expect(200);
}

/// Signed KV URLs as the reference describes them (§8): mint with a `kv/get` invocation and a
/// camelCase body, then read the URL with no credentials — full, one range, `If-None-Match`,
/// `If-Range`, and 412 once the object changed.
#[tokio::test]
async fn signed_kv_url_as_a_reference_client() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "default").await;
    let body = b"0123456789abcdef".to_vec();
    let put = s
        .kv(
            url,
            "put",
            "docs/f.txt",
            &[("Content-Type", "text/plain")],
            body.clone(),
        )
        .await
        .expect(200);
    let etag = put.header("etag").expect("ETag").to_owned();

    let t = s.token(&s.res("kv/docs/f.txt"), "tinycloud.kv/get");
    let v = post_json(
        url,
        "/signed/kv",
        &t,
        &json!({"space": s.space, "path": "docs/f.txt", "ttlSeconds": 60}),
    )
    .await
    .expect(200)
    .json();
    let ticket = v["ticketId"].as_str().expect("ticketId").to_owned();
    assert_eq!(v["url"], json!(format!("/signed/kv/{ticket}")));
    assert!(
        v["expiresAt"].is_string() || v["expiresAt"].is_number(),
        "{v}"
    );
    // Replaying the mint invocation: 409, as every invocation.
    post_json(
        url,
        "/signed/kv",
        &t,
        &json!({"space": s.space, "path": "docs/f.txt"}),
    )
    .await
    .expect(409);
    // A grant on another ability cannot mint (reference: 403 "signed URL scope is not authorized").
    let t = s.token(&s.res("kv/docs/f.txt"), "tinycloud.kv/put");
    post_json(
        url,
        "/signed/kv",
        &t,
        &json!({"space": s.space, "path": "docs/f.txt"}),
    )
    .await
    .expect(403);

    let read = |headers: Vec<(&'static str, String)>| {
        let u = format!("{url}/signed/kv/{ticket}");
        async move {
            let mut r = http().get(u);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            Answer::from(r.send().await.expect("send")).await
        }
    };
    let a = read(vec![]).await.expect(200);
    assert_eq!(a.body, body);
    assert_eq!(a.header("etag"), Some(etag.as_str()));
    assert_eq!(a.header("accept-ranges"), Some("bytes"));
    assert!(a
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));

    let a = read(vec![("Range", "bytes=2-5".into())]).await.expect(206);
    assert_eq!(a.body, b"2345");
    assert_eq!(a.header("content-range"), Some("bytes 2-5/16"));
    read(vec![("Range", "bytes=100-200".into())])
        .await
        .expect(416);
    read(vec![("If-None-Match", etag.clone())])
        .await
        .expect(304);
    // `If-Range` that does not match the bound version: the whole object.
    let a = read(vec![
        ("Range", "bytes=0-1".into()),
        ("If-Range", "\"blake3-other\"".into()),
    ])
    .await
    .expect(200);
    assert_eq!(a.body, body);
    let a = read(vec![
        ("Range", "bytes=0-1".into()),
        ("If-Range", etag.clone()),
    ])
    .await
    .expect(206);
    assert_eq!(a.body, b"01");

    // Unknown ticket: 401. The object changed since minting: 412.
    let a = http()
        .get(format!("{url}/signed/kv/{}", "A".repeat(ticket.len())))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 401);
    s.kv(url, "put", "docs/f.txt", &[], b"changed".to_vec())
        .await
        .expect(200);
    read(vec![]).await.expect(412);
}

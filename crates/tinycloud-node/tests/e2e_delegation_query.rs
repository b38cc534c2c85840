//! `POST /delegation/query` against the real node, with raw HTTP requests built the way a
//! reference client builds them (`tinycloud.delegation/list` on `<account space>/delegation/`,
//! a JSON body): directions, status and space filters, paging, lifecycle marking, refusals.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::capability;

pub const LIST: &str = "tinycloud.delegation/list";

/// A session key of `owner` whose SIWE delegation grants the list ability (and KV reads), as
/// the reference SDK's sign-in does.
async fn list_session(node: &Node, owner: &Owner, n: u8) -> (SecretKey, Cid) {
    let key = ed25519(n);
    let caps = vec![
        capability(&owner.res("delegation"), LIST).unwrap(),
        capability(&owner.res("kv"), "tinycloud.kv/get").unwrap(),
    ];
    let header = siwe_header(
        &owner.wallet,
        key.did().verification_method().to_string(),
        caps,
        Some(now().plus_secs(3600)),
        vec![],
    );
    let (status, body, text) = post_delegate(node, &header).await;
    assert_eq!(status, 200, "{text}");
    let cid = tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap();
    (key, cid)
}

/// One query: a fresh invocation of the list ability on `resource`.
async fn query(
    node: &Node,
    key: &SecretKey,
    proofs: &[Cid],
    resource: &str,
    body: Value,
) -> (u16, Value) {
    let t = invoke_header(key, proofs, resource, LIST);
    request(
        node,
        reqwest::Method::POST,
        "/delegation/query",
        &t,
        Some(&body),
    )
    .await
}

fn cids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["cid"].as_str().unwrap().to_owned())
        .collect()
}

fn item<'a>(page: &'a Value, cid: &Cid) -> &'a Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["cid"] == cid.to_string())
        .unwrap_or_else(|| panic!("{cid} not listed: {page}"))
}

#[tokio::test]
async fn lists_what_the_account_granted_and_received_with_lifecycle_and_paging() {
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 1, "default").await;
    let carol = Owner::sign_in(&node, 2, "shared").await;
    let (l, l_cid) = list_session(&node, &alice, 3).await;
    let notes = alice.res("kv/notes/");
    let get = || vec![capability(&notes, "tinycloud.kv/get").unwrap()];

    let bob = ed25519(10).did();
    let d_bob = delegate(&node, &l, &bob, &[l_cid], get(), 600).await;
    let d_dave = delegate(&node, &l, &ed25519(11).did(), &[l_cid], get(), 600).await;
    let (s, _) = revoke(&node, &l, d_dave).await;
    assert_eq!(s, 200);
    let d_gina = delegate(&node, &l, &ed25519(12).did(), &[l_cid], get(), 2).await;
    // A second session, revoked: what it granted is revoked through its ancestor.
    let (l2, l2_cid) = list_session(&node, &alice, 4).await;
    let d_frank = delegate(&node, &l2, &ed25519(13).did(), &[l2_cid], get(), 600).await;
    let (s, _) = revoke(&node, &l2, l2_cid).await;
    assert_eq!(s, 200);
    // Received: Carol shares with Alice's account.
    let shared = siwe_header(
        &carol.wallet,
        alice.did.to_string(),
        vec![capability(&carol.res("kv/pub/"), "tinycloud.kv/get").unwrap()],
        Some(now().plus_secs(600)),
        vec![],
    );
    let (s, body, text) = post_delegate(&node, &shared).await;
    assert_eq!(s, 200, "{text}");
    let d_carol: Cid = tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap();
    // Carol's own delegations are no business of Alice's.
    let d_carol_other = delegate(
        &node,
        &carol.session,
        &ed25519(14).did(),
        &[carol.session_cid],
        vec![capability(&carol.res("kv/x"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // The reference SDK's shape: the account space, service `delegation`, empty path.
    let list_res = format!("{}/delegation/", alice.space);
    let (s, all) = query(&node, &l, &[l_cid], &list_res, json!({})).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["schemaVersion"], 2);
    assert!(all.get("nextCursor").is_none(), "one page: {all}");
    let listed: BTreeSet<String> = cids(&all).into_iter().collect();
    for c in [
        alice.session_cid,
        l_cid,
        l2_cid,
        d_bob,
        d_dave,
        d_gina,
        d_frank,
        d_carol,
    ] {
        assert!(listed.contains(&c.to_string()), "{c} missing: {all}");
    }
    for c in [carol.session_cid, d_carol_other] {
        assert!(!listed.contains(&c.to_string()), "{c} is Carol's: {all}");
    }

    let b = item(&all, &d_bob);
    assert_eq!(b["direction"], "granted");
    assert_eq!(b["status"], "active");
    assert_eq!(b["delegatorDid"], l.did().to_string());
    assert_eq!(b["delegateDid"], bob.to_string());
    assert_eq!(b["parents"], json!([l_cid.to_string()]));
    assert_eq!(
        b["resources"],
        json!([{"resource": notes, "actions": ["tinycloud.kv/get"], "caveats": [{}]}])
    );
    assert!(b["expiresAt"].is_string());
    assert!(b["issuedAt"].is_null(), "a UCAN has no issued-at");
    for absent in ["revokedAt", "revokedBy", "revokedAncestorCid"] {
        assert!(b.get(absent).is_none(), "{absent} on an active one: {b}");
    }
    let session = item(&all, &l_cid);
    assert_eq!(session["direction"], "granted");
    assert_eq!(session["delegatorDid"], alice.did.to_string());
    assert!(
        session["issuedAt"].is_string(),
        "a SIWE CACAO says when it was signed"
    );

    let dave = item(&all, &d_dave);
    assert_eq!(dave["status"], "revoked");
    assert_eq!(dave["revokedBy"], l.did().to_string());
    assert!(dave["revokedAt"].is_string());
    let l2_item = item(&all, &l2_cid);
    assert_eq!(l2_item["status"], "revoked");
    assert_eq!(l2_item["revokedBy"], l2.did().to_string());
    let frank = item(&all, &d_frank);
    assert_eq!(frank["status"], "ancestor_revoked");
    assert_eq!(frank["revokedAncestorCid"], l2_cid.to_string());
    assert!(frank.get("revokedAt").is_none());
    assert_eq!(item(&all, &d_gina)["status"], "expired");
    let received = item(&all, &d_carol);
    assert_eq!(received["direction"], "received");
    assert_eq!(received["delegatorDid"], carol.did.to_string());
    assert_eq!(received["delegateDid"], alice.did.to_string());

    // Directions.
    let (_, granted) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"direction": "granted"}),
    )
    .await;
    assert!(granted["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["direction"] == "granted"));
    assert!(!cids(&granted).contains(&d_carol.to_string()));
    assert_eq!(cids(&granted).len(), listed.len() - 1);
    let (_, recv) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"direction": "received"}),
    )
    .await;
    assert_eq!(cids(&recv), vec![d_carol.to_string()]);

    // Status filters: `revoked` includes revocation through an ancestor.
    let set = |v: &Value| cids(v).into_iter().collect::<BTreeSet<_>>();
    let want = |cs: &[Cid]| cs.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
    let (_, revoked) = query(&node, &l, &[l_cid], &list_res, json!({"status": "revoked"})).await;
    assert_eq!(set(&revoked), want(&[d_dave, l2_cid, d_frank]));
    let (_, anc) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"status": "ancestor_revoked"}),
    )
    .await;
    assert_eq!(set(&anc), want(&[d_frank]));
    let (_, expired) = query(&node, &l, &[l_cid], &list_res, json!({"status": "expired"})).await;
    assert_eq!(set(&expired), want(&[d_gina]));
    let (_, active) = query(&node, &l, &[l_cid], &list_res, json!({"status": "active"})).await;
    assert!(active["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "active"));
    assert!(set(&active).contains(&d_bob.to_string()));
    let (_, pending) = query(&node, &l, &[l_cid], &list_res, json!({"status": "pending"})).await;
    assert_eq!(cids(&pending), Vec::<String>::new());

    // Space filter: by id or by name.
    let (_, by_name) = query(&node, &l, &[l_cid], &list_res, json!({"space": "shared"})).await;
    assert_eq!(set(&by_name), want(&[d_carol]));
    let (_, by_id) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"space": carol.space.to_string()}),
    )
    .await;
    assert_eq!(set(&by_id), want(&[d_carol]));
    let (_, own) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"space": alice.space.to_string()}),
    )
    .await;
    assert!(set(&own).contains(&d_bob.to_string()));
    assert!(!set(&own).contains(&d_carol.to_string()));

    // Paging: two at a time gives the same list in the same order, each once.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut body = json!({"limit": 2});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let (s, page) = query(&node, &l, &[l_cid], &list_res, body).await;
        assert_eq!(s, 200, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        paged.extend(cids(&page));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, cids(&all));
    // Filters and paging together.
    let (_, first) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"status": "revoked", "limit": 2}),
    )
    .await;
    assert_eq!(cids(&first).len(), 2);
    let c = first["nextCursor"].as_str().unwrap();
    let (s, rest) = query(
        &node,
        &l,
        &[l_cid],
        &list_res,
        json!({"status": "revoked", "limit": 2, "cursor": c}),
    )
    .await;
    assert_eq!(s, 200, "{rest}");
    assert_eq!(cids(&rest).len(), 1);
    assert!(rest.get("nextCursor").is_none());
}

#[tokio::test]
async fn refuses_malformed_queries_missing_authority_and_replays() {
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 1, "default").await;
    let (l, l_cid) = list_session(&node, &alice, 3).await;
    let list_res = alice.res("delegation");

    for body in [
        json!({"unknown": true}),
        json!({"limit": 0}),
        json!({"limit": 101}),
        json!({"limit": -1}),
        json!({"direction": "sideways"}),
        json!({"status": "lost"}),
        json!({"space": "  "}),
        json!({"cursor": "%%%"}),
        json!({"cursor": "eyJ9.AAAA"}),
        json!([]),
    ] {
        let (s, v) = query(&node, &l, &[l_cid], &list_res, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let t = invoke_header(&l, &[l_cid], &list_res, LIST);
    let r = http()
        .post(format!("{}/delegation/query", node.url))
        .header("authorization", &t)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Without the list ability on `<space>/delegation`: 403, before anything is consumed.
    for (res, ability) in [
        (alice.res("kv"), "tinycloud.kv/get"),
        (alice.res("kv"), LIST),
        (alice.res("delegation/some/path"), LIST),
        (alice.res("delegation"), "tinycloud.delegation/revoke"),
        (format!("urn:cid:{l_cid}"), LIST),
    ] {
        let t = invoke_header(&l, &[l_cid], &res, ability);
        let (s, v) = request(
            &node,
            reqwest::Method::POST,
            "/delegation/query",
            &t,
            Some(&json!({})),
        )
        .await;
        assert_eq!(s, 403, "{ability} on {res}: {v}");
    }
    // Two capabilities.
    let t = tinycloud_auth::session::invocation(
        &l,
        None,
        &[l_cid],
        vec![
            capability(&list_res, LIST).unwrap(),
            capability(&alice.res("kv"), "tinycloud.kv/get").unwrap(),
        ],
        now(),
        120,
        &uuid(),
        vec![],
    )
    .unwrap();
    let (s, _) = request(
        &node,
        reqwest::Method::POST,
        "/delegation/query",
        t.as_str(),
        Some(&json!({})),
    )
    .await;
    assert_eq!(s, 403);

    // A session whose delegation does not grant the list ability: the chain refuses (401).
    let (s, v) = query(
        &node,
        &alice.session,
        &[alice.session_cid],
        &list_res,
        json!({}),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    // No Authorization at all.
    let r = http()
        .post(format!("{}/delegation/query", node.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Single use.
    let t = invoke_header(&l, &[l_cid], &list_res, LIST);
    let (s, _) = request(
        &node,
        reqwest::Method::POST,
        "/delegation/query",
        &t,
        Some(&json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = request(
        &node,
        reqwest::Method::POST,
        "/delegation/query",
        &t,
        Some(&json!({})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    // An empty body is the default query.
    let t = invoke_header(&l, &[l_cid], &list_res, LIST);
    let r = http()
        .post(format!("{}/delegation/query", node.url))
        .header("authorization", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

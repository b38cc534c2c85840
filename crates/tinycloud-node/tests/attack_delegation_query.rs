//! Attacks on `POST /delegation/query`, against the real node: whose delegations a caller can
//! see. The account is the owner of the space the invoked list ability names, and the chain
//! must grant that ability, so a delegate cannot list its delegator's account; an account
//! cannot "adopt" someone else's key (by delegating the list ability to it) to read that key's
//! delegations; cursors are MAC-bound to one account, invoker and filter set; invocations are
//! single use.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::capability;

const LIST: &str = "tinycloud.delegation/list";

async fn list_session(node: &Node, owner: &Owner, n: u8) -> (SecretKey, Cid) {
    let key = ed25519(n);
    let header = siwe_header(
        &owner.wallet,
        key.did().verification_method().to_string(),
        vec![
            capability(&owner.res("delegation"), LIST).unwrap(),
            capability(&owner.res("kv"), "tinycloud.kv/get").unwrap(),
        ],
        Some(now().plus_secs(3600)),
        vec![],
    );
    let (status, body, text) = post_delegate(node, &header).await;
    assert_eq!(status, 200, "{text}");
    (
        key,
        tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap(),
    )
}

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

fn cids(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| i["cid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_delegate_cannot_list_its_delegators_account() {
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 1, "default").await;
    let (l, l_cid) = list_session(&node, &alice, 3).await;
    let bob = ed25519(10);
    let notes = alice.res("kv/notes/");
    let d_bob = delegate(
        &node,
        &l,
        &bob.did(),
        &[l_cid],
        vec![capability(&notes, "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let d_dave = delegate(
        &node,
        &l,
        &ed25519(11).did(),
        &[l_cid],
        vec![capability(&notes, "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let alice_list = alice.res("delegation");
    // Positive control: Alice's list session sees both.
    let (s, page) = query(&node, &l, &[l_cid], &alice_list, json!({})).await;
    assert_eq!(s, 200, "{page}");
    assert!(cids(&page).contains(&d_dave.to_string()));

    // Bob names Alice's account: citing his KV grant, or nothing, the chain does not grant the
    // list ability.
    for proofs in [vec![d_bob], vec![]] {
        let (s, v) = query(&node, &bob, &proofs, &alice_list, json!({})).await;
        assert_eq!(s, 401, "{v}");
    }
    // Bob cites Alice's session delegation (not addressed to him).
    let (s, v) = query(&node, &bob, &[l_cid], &alice_list, json!({})).await;
    assert_eq!(s, 401, "{v}");
    // A broader-looking grant does not help: KV on the whole space is not the list ability.
    let d_wide = delegate(
        &node,
        &l,
        &bob.did(),
        &[l_cid],
        vec![capability(&alice.res("kv"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let (s, v) = query(&node, &bob, &[d_wide], &alice_list, json!({})).await;
    assert_eq!(s, 401, "{v}");

    // Bob's own account (root authority over a space of his own key) shows only what he is a
    // party to: the grants addressed to him, not Alice's grant to Dave nor her sessions.
    let bob_space = SpaceId::new(bob.did(), "default").unwrap();
    let (s, own) = query(
        &node,
        &bob,
        &[],
        &format!("{bob_space}/delegation"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{own}");
    assert_eq!(
        cids(&own),
        [d_bob, d_wide].iter().map(ToString::to_string).collect()
    );
    assert!(own["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["direction"] == "received"));
}

#[tokio::test]
async fn delegating_the_list_ability_to_a_strangers_key_does_not_reveal_its_delegations() {
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 1, "default").await;
    let mallory = Owner::sign_in(&node, 2, "default").await;
    let (l, l_cid) = list_session(&node, &alice, 3).await;
    // Bob (a key of someone else's) received from Alice and re-delegated to Erin.
    let bob = ed25519(10);
    let notes = alice.res("kv/notes/");
    let d_bob = delegate(
        &node,
        &l,
        &bob.did(),
        &[l_cid],
        vec![capability(&notes, "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let d_erin = delegate(
        &node,
        &bob,
        &ed25519(12).did(),
        &[d_bob],
        vec![capability(&notes, "tinycloud.kv/get").unwrap()],
        300,
    )
    .await;
    // Mallory "adopts" Bob's key: she delegates her list ability to it, which makes it look
    // like a session key of her account.
    let adopt = siwe_header(
        &mallory.wallet,
        bob.did().verification_method().to_string(),
        vec![capability(&mallory.res("delegation"), LIST).unwrap()],
        Some(now().plus_secs(600)),
        vec![],
    );
    let (s, body, text) = post_delegate(&node, &adopt).await;
    assert_eq!(s, 200, "{text}");
    let d_adopt = body["cid"].as_str().unwrap().to_owned();
    let (m, m_cid) = list_session(&node, &mallory, 4).await;
    let (s, page) = query(&node, &m, &[m_cid], &mallory.res("delegation"), json!({})).await;
    assert_eq!(s, 200, "{page}");
    let seen = cids(&page);
    assert!(seen.contains(&d_adopt), "her own grant is listed: {page}");
    for hidden in [d_bob, d_erin] {
        assert!(
            !seen.contains(&hidden.to_string()),
            "{hidden} (Bob's, resting on Alice) leaked to Mallory: {page}"
        );
    }
    // Alice's listing has her grant to Bob; Bob's re-delegation is his (he is not one of her
    // session keys), as the reference.
    let (_, alice_page) = query(&node, &l, &[l_cid], &alice.res("delegation"), json!({})).await;
    assert!(cids(&alice_page).contains(&d_bob.to_string()));
    assert!(!cids(&alice_page).contains(&d_erin.to_string()));
}

#[tokio::test]
async fn cursors_are_bound_to_one_query_and_cannot_be_forged() {
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 1, "default").await;
    let mallory = Owner::sign_in(&node, 2, "default").await;
    let (l, l_cid) = list_session(&node, &alice, 3).await;
    let (m, m_cid) = list_session(&node, &mallory, 4).await;
    for n in 20..24 {
        delegate(
            &node,
            &l,
            &ed25519(n).did(),
            &[l_cid],
            vec![capability(&alice.res("kv/a"), "tinycloud.kv/get").unwrap()],
            600,
        )
        .await;
    }
    let alice_list = alice.res("delegation");
    let (s, first) = query(&node, &l, &[l_cid], &alice_list, json!({"limit": 1})).await;
    assert_eq!(s, 200);
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    // Positive control.
    let (s, second) = query(
        &node,
        &l,
        &[l_cid],
        &alice_list,
        json!({"limit": 1, "cursor": cursor}),
    )
    .await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(cids(&first), cids(&second));

    // Tampered: every single-character change is refused.
    let bytes = cursor.as_bytes();
    for i in [0, bytes.len() / 2, bytes.len() - 1] {
        let mut b = bytes.to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(b).unwrap();
        let (s, v) = query(
            &node,
            &l,
            &[l_cid],
            &alice_list,
            json!({"limit": 1, "cursor": forged}),
        )
        .await;
        assert_eq!(s, 400, "{v}");
    }
    // A reference-style cursor (base64url of a CID) is not one of ours.
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        l_cid.to_string(),
    );
    let (s, _) = query(&node, &l, &[l_cid], &alice_list, json!({"cursor": plain})).await;
    assert_eq!(s, 400);
    // Another account's cursor, or another filter's.
    let (s, v) = query(
        &node,
        &m,
        &[m_cid],
        &mallory.res("delegation"),
        json!({"limit": 1, "cursor": cursor}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = query(
        &node,
        &l,
        &[l_cid],
        &alice_list,
        json!({"limit": 1, "direction": "received", "cursor": cursor}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
}

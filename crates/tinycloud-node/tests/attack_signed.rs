//! Attacks on signed KV URLs, as a hostile delegate (or a stranger holding a URL) would try
//! them: minting for a key its grant does not cover (another path, a sibling prefix, another
//! space), minting with write-only or list-only grants, replaying a mint invocation, forging
//! or altering ticket ids, and exhausting a space's tickets — each asserted refused.

mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::capability;

async fn mint_with(node: &Node, header: &str, body: &Value) -> (u16, Value) {
    request(
        node,
        reqwest::Method::POST,
        "/signed/kv",
        header,
        Some(body),
    )
    .await
}

async fn mint(
    node: &Node,
    key: &SecretKey,
    proofs: &[Cid],
    resource: &str,
    ability: &str,
    body: &Value,
) -> (u16, Value) {
    mint_with(node, &invoke_header(key, proofs, resource, ability), body).await
}

/// A space with two objects and a delegate holding `caps` (resources relative to the space).
async fn setup(node: &Node, n: u8, caps: &[(&str, &str)]) -> (Owner, SecretKey, Cid) {
    let o = Owner::sign_in(node, n, "default").await;
    for k in ["docs/a", "docs/b", "docsx/secret"] {
        o.client(node)
            .put(&o.res(&format!("kv/{k}")), k.as_bytes())
            .await
            .expect(200);
    }
    let friend = ed25519(n + 100);
    let caps = caps
        .iter()
        .map(|(r, a)| capability(&o.res(r), a).unwrap())
        .collect();
    let grant = delegate(node, &o.session, &friend.did(), &[o.session_cid], caps, 600).await;
    (o, friend, grant)
}

fn body(o: &Owner, path: &str) -> Value {
    json!({"space": o.space.to_string(), "path": path})
}

#[tokio::test]
async fn a_delegate_mints_only_for_keys_its_get_grant_covers() {
    let node = Node::start(NODE_BIN, &[]);
    let (o, f, g) = setup(&node, 1, &[("kv/docs/a", "tinycloud.kv/get")]).await;
    // Positive control: the covered key.
    let (s, v) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&o, "docs/a"),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // Invoking on the covered key but asking for another: 403 (scope not authorized).
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&o, "docs/b"),
    )
    .await;
    assert_eq!(s, 403);
    // Invoking on the other key: the chain does not cover it (401).
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/b"),
        "tinycloud.kv/get",
        &body(&o, "docs/b"),
    )
    .await;
    assert_eq!(s, 401);
    // Invoking on the whole service: not covered either.
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv"),
        "tinycloud.kv/get",
        &body(&o, "docs/b"),
    )
    .await;
    assert_eq!(s, 401);
    // The body naming another space than the invocation.
    let other = Owner::sign_in(&node, 2, "default").await;
    other
        .client(&node)
        .put(&other.res("kv/docs/a"), b"x")
        .await
        .expect(200);
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&other, "docs/a"),
    )
    .await;
    assert_eq!(s, 403);
    // The other space's owner minting for this space with its own full grant.
    let (s, _) = mint(
        &node,
        &other.session,
        &[other.session_cid],
        &other.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&o, "docs/a"),
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn prefixes_are_segment_aware() {
    let node = Node::start(NODE_BIN, &[]);
    let (o, f, g) = setup(&node, 3, &[("kv/docs", "tinycloud.kv/get")]).await;
    let (s, v) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs"),
        "tinycloud.kv/get",
        &body(&o, "docs/b"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // `docs` does not cover `docsx/…`.
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs"),
        "tinycloud.kv/get",
        &body(&o, "docsx/secret"),
    )
    .await;
    assert_eq!(s, 403);
    // Dot segments are refused outright, never normalized into the grant.
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs"),
        "tinycloud.kv/get",
        &body(&o, "docs/../docsx/secret"),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn write_list_and_metadata_grants_cannot_mint() {
    let node = Node::start(NODE_BIN, &[]);
    let (o, f, g) = setup(
        &node,
        4,
        &[
            ("kv/docs", "tinycloud.kv/put"),
            ("kv/docs", "tinycloud.kv/list"),
            ("kv/docs", "tinycloud.kv/metadata"),
        ],
    )
    .await;
    for ability in [
        "tinycloud.kv/put",
        "tinycloud.kv/list",
        "tinycloud.kv/metadata",
    ] {
        // Positive control for the grant itself: the invocation verifies (then 403 on scope).
        let (s, _) = mint(
            &node,
            &f,
            &[g],
            &o.res("kv/docs/a"),
            ability,
            &body(&o, "docs/a"),
        )
        .await;
        assert_eq!(s, 403, "{ability}");
    }
    // Claiming kv/get anyway: the chain does not grant it.
    let (s, _) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&o, "docs/a"),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_mint_invocation_is_single_use_and_needs_authorization() {
    let node = Node::start(NODE_BIN, &[]);
    let (o, f, g) = setup(&node, 5, &[("kv/docs", "tinycloud.kv/get")]).await;
    let h = invoke_header(&f, &[g], &o.res("kv/docs/a"), "tinycloud.kv/get");
    let b = body(&o, "docs/a");
    assert_eq!(mint_with(&node, &h, &b).await.0, 200);
    assert_eq!(mint_with(&node, &h, &b).await.0, 409, "replayed mint");
    // No Authorization at all.
    let r = http()
        .post(format!("{}/signed/kv", node.url))
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A revoked grant mints nothing.
    assert_eq!(revoke(&node, &o.session, g).await.0, 200);
    let (s, _) = mint(&node, &f, &[g], &o.res("kv/docs/a"), "tinycloud.kv/get", &b).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn ticket_ids_cannot_be_forged_or_altered() {
    let node = Node::start(NODE_BIN, &[]);
    let (o, f, g) = setup(&node, 6, &[("kv/docs/a", "tinycloud.kv/get")]).await;
    let (s, v) = mint(
        &node,
        &f,
        &[g],
        &o.res("kv/docs/a"),
        "tinycloud.kv/get",
        &body(&o, "docs/a"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ticket = v["ticketId"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&node, &format!("/signed/kv/{ticket}")).await.status(),
        200
    );
    let mut tries = vec![
        String::new(),
        "x".into(),
        ticket[..ticket.len() - 1].to_owned(),
        format!("{ticket}A"),
        ticket.to_uppercase(),
        "A".repeat(ticket.len()),
        // A ticket of another node's shape: 64 base64url characters.
        "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz".into(),
    ];
    for i in [0, ticket.len() / 2, ticket.len() - 1] {
        let mut c: Vec<char> = ticket.chars().collect();
        c[i] = if c[i] == 'Q' { 'R' } else { 'Q' };
        tries.push(c.into_iter().collect());
    }
    for t in tries {
        if t == ticket {
            continue;
        }
        let s = get(&node, &format!("/signed/kv/{t}"))
            .await
            .status()
            .as_u16();
        assert!(s == 401 || (t.is_empty() && s == 404), "{t:?} → {s}");
    }
    // The ticket names one object: nothing in the URL can point it elsewhere.
    let s = get(&node, &format!("/signed/kv/{ticket}/../docs/b"))
        .await
        .status()
        .as_u16();
    assert_ne!(s, 200);
}

#[tokio::test]
async fn a_delegate_cannot_exhaust_the_spaces_tickets() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_SIGNED_URLS__MAX_TICKETS_PER_ISSUER", "3"),
            ("TINYCLOUD_SIGNED_URLS__MAX_TICKETS_PER_SPACE", "5"),
        ],
    );
    let (o, f, g) = setup(&node, 7, &[("kv/docs", "tinycloud.kv/get")]).await;
    let mut codes = vec![];
    for _ in 0..5 {
        codes.push(
            mint(
                &node,
                &f,
                &[g],
                &o.res("kv/docs/a"),
                "tinycloud.kv/get",
                &body(&o, "docs/a"),
            )
            .await
            .0,
        );
    }
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    // The owner still mints.
    let owner = |path: &str| {
        let b = body(&o, path);
        let h = invoke_header(
            &o.session,
            &[o.session_cid],
            &o.res(&format!("kv/{path}")),
            "tinycloud.kv/get",
        );
        (h, b)
    };
    for expect in [200, 200, 429] {
        let (h, b) = owner("docs/a");
        assert_eq!(mint_with(&node, &h, &b).await.0, expect, "space bound is 5");
    }
}

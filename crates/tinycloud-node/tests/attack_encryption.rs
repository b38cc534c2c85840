//! Attacks on encryption networks, end to end against the real node: strangers flooding the
//! owner's audit trail (finding 8), the audit's bounds and paging, and a table of the ways a
//! delegate could exceed its decrypt grant — each asserted refused.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use reqwest::Method;
use serde_json::{json, Map, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_node::encryption::{canonical_hash, wrap, ALG};
use x25519_dalek::{PublicKey, StaticSecret};

fn fact(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn node_did(node: &Node) -> Did {
    let info: Value = get_json(node, "/info").await;
    info["nodeId"].as_str().unwrap().parse().unwrap()
}

fn network_of(o: &Owner) -> String {
    format!("urn:tinycloud:encryption:{}:default", o.did)
}

fn path(network: &str, action: &str) -> String {
    format!(
        "/encryption/networks/{}/{action}",
        network.replace(':', "%3A")
    )
}

/// `key` invokes `tinycloud.encryption/{ability}` on `network`, addressed to `aud`.
fn enc_invocation(
    key: &SecretKey,
    proofs: &[Cid],
    aud: &Did,
    network: &str,
    ability: &str,
    facts: Vec<Map<String, Value>>,
) -> String {
    invocation(
        key,
        Some(aud.clone()),
        proofs,
        vec![capability(network, &format!("tinycloud.encryption/{ability}")).unwrap()],
        now(),
        120,
        &uuid(),
        facts,
    )
    .unwrap()
    .as_str()
    .to_owned()
}

/// Creates the owner's `default` network; returns its public key.
async fn create_network(node: &Node, o: &Owner, nd: &Did) -> PublicKey {
    let network = network_of(o);
    let body =
        json!({"name": "default", "ownerDid": o.did.to_string(), "threshold": {"n": 1, "t": 1}});
    let f = fact(json!({
        "type": "tinycloud.encryption.network-admin/v1", "targetNode": nd.to_string(),
        "networkId": network, "bodyHash": canonical_hash(&body), "action": "network.create",
    }));
    let t = enc_invocation(
        &o.session,
        &[o.session_cid],
        nd,
        &network,
        "network.create",
        vec![f],
    );
    let (s, v) = request(node, Method::POST, "/encryption/networks", &t, Some(&body)).await;
    assert_eq!(s, 200, "{v}");
    let key: [u8; 32] = STANDARD
        .decode(v["descriptor"]["publicEncryptionKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    PublicKey::from(key)
}

/// A decrypt request for `wrapped` on `network` signed by `key`; `aud` defaults to the node.
fn decrypt(
    key: &SecretKey,
    proofs: &[Cid],
    nd: &Did,
    network: &str,
    wrapped: &[u8],
    aud: Option<&Did>,
) -> (String, Value) {
    let receiver = StaticSecret::from([7u8; 32]);
    let esk = STANDARD.encode(wrapped);
    let rpk = STANDARD.encode(PublicKey::from(&receiver).as_bytes());
    let body = json!({
        "type": "tinycloud.encryption.decrypt/v1", "targetNode": nd.to_string(),
        "networkId": network, "alg": ALG, "keyVersion": 1,
        "encryptedSymmetricKey": esk,
        "encryptedSymmetricKeyHash": canonical_hash(&Value::String(esk.clone())),
        "receiverPublicKey": rpk,
        "receiverPublicKeyHash": canonical_hash(&Value::String(rpk.clone())),
    });
    let f = fact(json!({
        "type": "tinycloud.encryption.decrypt/v1", "targetNode": nd.to_string(),
        "networkId": network, "bodyHash": canonical_hash(&body),
        "encryptedSymmetricKeyHash": body["encryptedSymmetricKeyHash"],
        "receiverPublicKeyHash": body["receiverPublicKeyHash"],
        "alg": ALG, "keyVersion": 1,
    }));
    let t = enc_invocation(key, proofs, aud.unwrap_or(nd), network, "decrypt", vec![f]);
    (t, body)
}

async fn send_decrypt(node: &Node, network: &str, req: &(String, Value)) -> (u16, Value) {
    request(
        node,
        Method::POST,
        &path(network, "decrypt"),
        &req.0,
        Some(&req.1),
    )
    .await
}

/// Every audit record, following `nextCursor` with pages of `limit`.
async fn audit_pages(node: &Node, o: &Owner, nd: &Did, limit: usize) -> (Vec<Value>, usize) {
    let network = network_of(o);
    let mut records = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let t = enc_invocation(&o.session, &[o.session_cid], nd, &network, "audit", vec![]);
        let mut q = format!("{}?limit={limit}", path(&network, "audit"));
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (s, v) = request(node, Method::GET, &q, &t, None).await;
        assert_eq!(s, 200, "{v}");
        let page = v["records"].as_array().unwrap();
        assert!(page.len() <= limit);
        records.extend(page.iter().cloned());
        pages += 1;
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (records, pages),
        }
    }
}

/// Finding 8: 600 decrypts by strangers (garbage tokens, self-signed invocations, valid
/// invocations for a network of their own) leave the owner's audit trail untouched, whatever
/// envelope hash they claim; a real decrypt is recorded; refusals of an authenticated
/// delegate are bounded per actor; the trail is bounded per network and pages completely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_write_to_the_audit_trail_and_it_pages_completely() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_ENCRYPTION__AUDIT_DENIED_PER_ACTOR_PER_HOUR", "5"),
            ("TINYCLOUD_ENCRYPTION__AUDIT_MAX_RECORDS", "20"),
        ],
    );
    let o = Owner::sign_in(&node, 80, "secrets").await;
    let nd = node_did(&node).await;
    let network = network_of(&o);
    let net_pub = create_network(&node, &o, &nd).await;
    let wrapped = wrap(&net_pub, &[42u8; 32]);
    let a = ed25519(81);
    let ga = delegate(
        &node,
        &o.session,
        &a.did(),
        &[o.session_cid],
        vec![capability(&network, "tinycloud.encryption/decrypt").unwrap()],
        600,
    )
    .await;
    assert!(audit_pages(&node, &o, &nd, 500).await.0.is_empty());

    let stranger = ed25519(82);
    let own_network = format!("urn:tinycloud:encryption:{}:default", stranger.did());
    let forged_hash = "f".repeat(64);
    for i in 0..600 {
        let token = match i % 3 {
            // garbage
            0 => format!("garbage-token-{i}"),
            // a well-formed invocation citing no authority
            1 => decrypt(&stranger, &[], &nd, &network, &wrapped, None).0,
            // a valid invocation (root authority over its own network), sent to the owner's
            2 => decrypt(&stranger, &[], &nd, &own_network, &wrapped, None).0,
            _ => unreachable!(),
        };
        let mut body = decrypt(&a, &[ga], &nd, &network, &wrapped, None).1;
        body["encryptedSymmetricKeyHash"] = json!(forged_hash);
        let (s, v) = request(
            &node,
            Method::POST,
            &path(&network, "decrypt"),
            &token,
            Some(&body),
        )
        .await;
        assert!(matches!(s, 400 | 401), "{i}: {s} {v}");
    }
    let stolen = decrypt(&stranger, &[ga], &nd, &network, &wrapped, None);
    assert_eq!(send_decrypt(&node, &network, &stolen).await.0, 401);
    let (records, _) = audit_pages(&node, &o, &nd, 500).await;
    assert!(records.is_empty(), "strangers left a trace: {records:?}");

    // a real decrypt is visible
    let real = decrypt(&a, &[ga], &nd, &network, &wrapped, None);
    assert_eq!(send_decrypt(&node, &network, &real).await.0, 200);
    let (records, _) = audit_pages(&node, &o, &nd, 500).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "allowed");
    assert_eq!(records[0]["actor"], a.did().to_string());
    // its replay is refused and not recorded again
    assert_eq!(send_decrypt(&node, &network, &real).await.0, 409);

    // an authenticated delegate's refusals: recorded, at most 5 per hour
    let mut tampered = wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    for _ in 0..8 {
        let r = decrypt(&a, &[ga], &nd, &network, &tampered, None);
        assert_eq!(send_decrypt(&node, &network, &r).await.0, 400);
    }
    let (records, _) = audit_pages(&node, &o, &nd, 500).await;
    let denied = records
        .iter()
        .filter(|r| r["outcome"].as_str().unwrap().starts_with("denied"))
        .count();
    assert_eq!(denied, 5, "refusals are bounded per actor: {records:?}");

    // allowed decrypts are always recorded, up to the network's retention bound (20)
    for _ in 0..10 {
        let r = decrypt(&a, &[ga], &nd, &network, &wrapped, None);
        assert_eq!(send_decrypt(&node, &network, &r).await.0, 200);
    }
    let (all, _) = audit_pages(&node, &o, &nd, 500).await;
    assert_eq!(all.len(), 16);
    for _ in 0..6 {
        let r = decrypt(&a, &[ga], &nd, &network, &wrapped, None);
        assert_eq!(send_decrypt(&node, &network, &r).await.0, 200);
    }
    let (all, pages) = audit_pages(&node, &o, &nd, 500).await;
    assert_eq!(pages, 1);
    assert_eq!(all.len(), 20, "retention keeps the newest 20");
    // the oldest record (the first real decrypt) was the one dropped first
    let firsts: Vec<&Value> = all
        .iter()
        .filter(|r| r["invocationCid"] == real_cid(&real.0))
        .collect();
    assert!(firsts.is_empty(), "the oldest record went first");

    // paging: pages of 3 return exactly the same records, in the same order
    let (paged, pages) = audit_pages(&node, &o, &nd, 3).await;
    assert_eq!(pages, 7);
    assert_eq!(paged, all);
    let cids: std::collections::HashSet<&str> = paged
        .iter()
        .map(|r| r["invocationCid"].as_str().unwrap())
        .collect();
    assert_eq!(cids.len(), 20, "no record twice");

    // a forged or foreign cursor is refused
    let t = enc_invocation(&o.session, &[o.session_cid], &nd, &network, "audit", vec![]);
    let (s, _) = request(
        &node,
        Method::GET,
        &format!("{}?cursor=abc.def", path(&network, "audit")),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 400);
    let t = enc_invocation(&o.session, &[o.session_cid], &nd, &network, "audit", vec![]);
    let (s, _) = request(
        &node,
        Method::GET,
        &format!("{}?limit=100000", path(&network, "audit")),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 400);
}

fn real_cid(token: &str) -> String {
    tinycloud_auth::ucan::Ucan::decode(token)
        .unwrap()
        .cid()
        .to_string()
}

/// Encryption: the ways a delegate could exceed its grant, each refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_cannot_exceed_its_encryption_grant() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 83, "secrets").await;
    let other = Owner::sign_in(&node, 84, "secrets").await;
    let nd = node_did(&node).await;
    let network = network_of(&o);
    let other_network = network_of(&other);
    let net_pub = create_network(&node, &o, &nd).await;
    let other_pub = create_network(&node, &other, &nd).await;
    let wrapped = wrap(&net_pub, &[42u8; 32]);
    let wrapped_other = wrap(&other_pub, &[43u8; 32]);
    o.client(&node)
        .put(&o.res("kv/vault/secrets/API_KEY"), &wrapped)
        .await
        .expect(200);

    // d: decrypt only (no read); r: read only (no decrypt)
    let d = ed25519(85);
    let gd = delegate(
        &node,
        &o.session,
        &d.did(),
        &[o.session_cid],
        vec![capability(&network, "tinycloud.encryption/decrypt").unwrap()],
        600,
    )
    .await;
    let r = ed25519(86);
    let gr = delegate(
        &node,
        &o.session,
        &r.did(),
        &[o.session_cid],
        vec![capability(&o.res("kv/vault/secrets/API_KEY"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;

    // decrypt without a decrypt grant
    let req = decrypt(&r, &[gr], &nd, &network, &wrapped, None);
    let (s, v) = send_decrypt(&node, &network, &req).await;
    assert_eq!(s, 401, "{v}");
    assert!(!v.to_string().contains("wrappedKey"));
    // decrypt without a read grant: the envelope itself cannot be read
    Client::new(&node, &d, &[gd])
        .call(&o.res("kv/vault/secrets/API_KEY"), "get")
        .await
        .expect(401);

    let admin = |network: &str, action: &str, body: &Value| {
        fact(json!({
            "type": "tinycloud.encryption.network-admin/v1", "targetNode": nd.to_string(),
            "networkId": network, "bodyHash": canonical_hash(body), "action": action,
        }))
    };
    let replayed = decrypt(&d, &[gd], &nd, &network, &wrapped, None);
    assert_eq!(send_decrypt(&node, &network, &replayed).await.0, 200);

    /// (case, expected status, method, path, token, body)
    type Case<'a> = (&'a str, u16, Method, String, String, Option<Value>);
    let cases: Vec<Case> = vec![
        {
            let req = decrypt(&d, &[gd], &nd, &other_network, &wrapped_other, None);
            (
                "decrypt on another owner's network",
                401,
                Method::POST,
                path(&other_network, "decrypt"),
                req.0,
                Some(req.1),
            )
        },
        {
            // signed for its own network, sent to another's path
            let req = decrypt(&d, &[gd], &nd, &network, &wrapped_other, None);
            (
                "an invocation for one network at another's path",
                401,
                Method::POST,
                path(&other_network, "decrypt"),
                req.0,
                Some(req.1),
            )
        },
        {
            let req = decrypt(&d, &[gd], &nd, &network, &wrapped_other, None);
            (
                "a key wrapped to another network",
                400,
                Method::POST,
                path(&network, "decrypt"),
                req.0,
                Some(req.1),
            )
        },
        {
            let req = decrypt(&d, &[gd], &nd, &network, &wrapped, Some(&d.did()));
            (
                "the wrong audience",
                401,
                Method::POST,
                path(&network, "decrypt"),
                req.0,
                Some(req.1),
            )
        },
        {
            let req = decrypt(&r, &[gr], &nd, &network, &wrapped, None);
            (
                "decrypt through /invoke without a decrypt grant",
                403,
                Method::POST,
                "/invoke".into(),
                req.0,
                Some(req.1),
            )
        },
        {
            let req = decrypt(&d, &[gd], &nd, &other_network, &wrapped_other, None);
            (
                "decrypt through /invoke on another owner's network",
                403,
                Method::POST,
                "/invoke".into(),
                req.0,
                Some(req.1),
            )
        },
        {
            let req = decrypt(&d, &[gd], &nd, &network, &wrapped, Some(&d.did()));
            (
                "decrypt through /invoke to the wrong audience",
                403,
                Method::POST,
                "/invoke".into(),
                req.0,
                Some(req.1),
            )
        },
        (
            "a decrypt replayed through /invoke",
            403,
            Method::POST,
            "/invoke".into(),
            replayed.0.clone(),
            Some(replayed.1.clone()),
        ),
        (
            "a replayed decrypt",
            409,
            Method::POST,
            path(&network, "decrypt"),
            replayed.0.clone(),
            Some(replayed.1.clone()),
        ),
        (
            "network revoke by a delegate",
            401,
            Method::POST,
            path(&network, "revoke"),
            enc_invocation(
                &d,
                &[gd],
                &nd,
                &network,
                "network.revoke",
                vec![admin(&network, "network.revoke", &json!({}))],
            ),
            Some(json!({})),
        ),
        (
            "audit read by a delegate",
            401,
            Method::GET,
            path(&network, "audit"),
            enc_invocation(&d, &[gd], &nd, &network, "audit", vec![]),
            None,
        ),
        {
            let body = json!({"name": "mine", "ownerDid": o.did.to_string()});
            let n = format!("urn:tinycloud:encryption:{}:mine", o.did);
            (
                "network create in the owner's name",
                401,
                Method::POST,
                "/encryption/networks".to_owned(),
                enc_invocation(
                    &d,
                    &[gd],
                    &nd,
                    &n,
                    "network.create",
                    vec![admin(&n, "network.create", &body)],
                ),
                Some(body),
            )
        },
    ];
    for (case, status, method, p, token, body) in cases {
        let (s, v) = request(&node, method, &p, &token, body.as_ref()).await;
        assert_eq!(s, status, "{case}: {v}");
        assert!(!v.to_string().contains("wrappedKey"), "{case}");
    }
    // the network is still active and d's grant still works
    let req = decrypt(&d, &[gd], &nd, &network, &wrapped, None);
    assert_eq!(send_decrypt(&node, &network, &req).await.0, 200);
    // the other owner's audit shows nothing of d (d is no principal of theirs)
    let (records, _) = audit_pages(&node, &other, &nd, 500).await;
    assert!(records.is_empty(), "{records:?}");
}

/// A caller without authority gets the same answer for a network that exists and one that
/// does not: the decrypt is refused before the network is looked up.
#[tokio::test]
async fn decrypt_is_no_network_oracle() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 90, "secrets").await;
    let nd = node_did(&node).await;
    let existing = network_of(&o);
    let net_pub = create_network(&node, &o, &nd).await;
    let wrapped = wrap(&net_pub, &[42u8; 32]);
    let missing = format!("urn:tinycloud:encryption:{}:nothere", o.did);
    let stranger = ed25519(91);
    for way in ["stranger", "garbage"] {
        let mut answers = Vec::new();
        for network in [&existing, &missing] {
            let mut req = decrypt(&stranger, &[], &nd, network, &wrapped, None);
            if way == "garbage" {
                req.0 = "garbage".into();
            }
            let (s, v) = send_decrypt(&node, network, &req).await;
            answers.push((s, v.to_string().replace(network.as_str(), "<network>")));
        }
        assert_eq!(answers[0], answers[1], "{way}: existing vs missing network");
        assert!(matches!(answers[0].0, 400 | 401), "{way}: {:?}", answers[0]);
    }
}

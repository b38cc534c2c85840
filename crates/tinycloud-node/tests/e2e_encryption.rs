//! Encryption networks end to end: the owner creates a network, a backend with a decrypt
//! grant gets a content key re-wrapped to its own key (and verifies the node's signed answer),
//! while a backend without the grant, a replay, a tampered key, a revoked grant or a wrong
//! audience are refused — and every decision is audited.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use serde_json::{json, Map, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_node::encryption::{canonical_hash, unwrap, wrap, ALG};
use x25519_dalek::{PublicKey, StaticSecret};

fn fact(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn node_did(node: &Node) -> Did {
    let info: Value = get_json(node, "/info").await;
    info["nodeId"].as_str().unwrap().parse().unwrap()
}

async fn post(node: &Node, path: &str, token: &str, body: &Value) -> (u16, Value) {
    request(node, reqwest::Method::POST, path, token, Some(body)).await
}

/// An invocation of `tinycloud.encryption/{ability}` on `network` by the owner's session,
/// addressed to the node.
fn owner_invocation(
    o: &Owner,
    node: &Did,
    network: &str,
    ability: &str,
    facts: Vec<Map<String, Value>>,
) -> String {
    invocation(
        &o.session,
        Some(node.clone()),
        &[o.session_cid],
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

struct Decrypt {
    token: String,
    body: Value,
    receiver: StaticSecret,
}

impl Decrypt {
    async fn send(&self, node: &Node, path: &str) -> (u16, Value) {
        post(node, path, &self.token, &self.body).await
    }
}

fn decrypt_request(
    key: &SecretKey,
    proofs: &[Cid],
    node: &Did,
    network: &str,
    wrapped: &[u8],
    aud: Option<Did>,
) -> Decrypt {
    let receiver = StaticSecret::from([rand_byte(); 32]);
    let esk = STANDARD.encode(wrapped);
    let rpk = STANDARD.encode(PublicKey::from(&receiver).as_bytes());
    let body = json!({
        "type": "tinycloud.encryption.decrypt/v1",
        "targetNode": node.to_string(),
        "networkId": network,
        "alg": ALG,
        "keyVersion": 1,
        "encryptedSymmetricKey": esk,
        "encryptedSymmetricKeyHash": canonical_hash(&Value::String(esk.clone())),
        "receiverPublicKey": rpk,
        "receiverPublicKeyHash": canonical_hash(&Value::String(rpk.clone())),
    });
    let f = fact(json!({
        "type": "tinycloud.encryption.decrypt/v1",
        "targetNode": node.to_string(),
        "networkId": network,
        "bodyHash": canonical_hash(&body),
        "encryptedSymmetricKeyHash": body["encryptedSymmetricKeyHash"],
        "receiverPublicKeyHash": body["receiverPublicKeyHash"],
        "alg": ALG,
        "keyVersion": 1,
    }));
    let token = invocation(
        key,
        Some(aud.unwrap_or_else(|| node.clone())),
        proofs,
        vec![capability(network, "tinycloud.encryption/decrypt").unwrap()],
        now(),
        120,
        &uuid(),
        vec![f],
    )
    .unwrap()
    .as_str()
    .to_owned();
    Decrypt {
        token,
        body,
        receiver,
    }
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[3] | 1
}

#[tokio::test]
async fn read_plus_decrypt_grant_decrypts_and_nothing_else_does() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 50, "secrets").await;
    let p = [o.session_cid];
    let nd = node_did(&node).await;
    let network = format!("urn:tinycloud:encryption:{}:default", o.did);

    // create the network
    let body =
        json!({"name": "default", "ownerDid": o.did.to_string(), "threshold": {"n": 1, "t": 1}});
    let admin = |action: &str, body: &Value| {
        fact(
            json!({"type": "tinycloud.encryption.network-admin/v1", "targetNode": nd.to_string(), "networkId": network, "bodyHash": canonical_hash(body), "action": action}),
        )
    };
    let create = || {
        owner_invocation(
            &o,
            &nd,
            &network,
            "network.create",
            vec![admin("network.create", &body)],
        )
    };
    let (s, v) = post(&node, "/encryption/networks", &create(), &body).await;
    assert_eq!(s, 200, "{v}");
    let d = &v["descriptor"];
    assert_eq!(d["state"], "active");
    assert_eq!(d["alg"], ALG);
    assert!(!v.to_string().contains("private"), "{v}");
    assert_eq!(
        post(&node, "/encryption/networks", &create(), &body)
            .await
            .0,
        409
    );
    let net_pub: [u8; 32] = STANDARD
        .decode(d["publicEncryptionKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let wk: Value = get_json(
        &node,
        &format!("/.well-known/encryption/network/default?ownerDid={}", o.did),
    )
    .await;
    assert_eq!(wk["publicEncryptionKey"], d["publicEncryptionKey"]);

    // a client encrypts a content key to the network
    let content_key = [42u8; 32];
    let wrapped = wrap(&PublicKey::from(net_pub), &content_key);

    // backend A: kv read + decrypt in one delegation; backend B: kv read only
    let a = ed25519(51);
    let vault = o.res("kv/vault/secrets/API_KEY");
    let ca = delegate(
        &node,
        &o.session,
        &a.did(),
        &p,
        vec![
            capability(&vault, "tinycloud.kv/get").unwrap(),
            capability(&network, "tinycloud.encryption/decrypt").unwrap(),
        ],
        600,
    )
    .await;
    let bkey = ed25519(52);
    let cb = delegate(
        &node,
        &o.session,
        &bkey.did(),
        &p,
        vec![capability(&vault, "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let path = format!(
        "/encryption/networks/{}/decrypt",
        network.replace(':', "%3A")
    );

    // A decrypts: verify the signed, bound answer, then unwrap with its own receiver key
    let req = decrypt_request(&a, &[ca], &nd, &network, &wrapped, None);
    let (s, v) = req.send(&node, &path).await;
    assert_eq!(s, 200, "{v}");
    let inv_cid = tinycloud_auth::ucan::Ucan::decode(&req.token)
        .unwrap()
        .cid()
        .to_string();
    assert_eq!(v["invocationCid"], inv_cid);
    let expect = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        format!("{inv_cid}{}", canonical_hash(&req.body)).as_bytes(),
    ));
    assert_eq!(v["requestHash"], expect);
    let mut unsigned = v.clone();
    let sig = STANDARD
        .decode(
            unsigned
                .as_object_mut()
                .unwrap()
                .remove("nodeSignature")
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let canonical = serde_json_canonicalizer::to_vec(&unsigned).unwrap();
    nd.public_key()
        .unwrap()
        .verify(&canonical, &sig)
        .expect("node signature");
    let rewrapped = STANDARD.decode(v["wrappedKey"].as_str().unwrap()).unwrap();
    assert_eq!(unwrap(&req.receiver, &rewrapped).unwrap(), content_key);
    // the same invocation twice: single use
    assert_eq!(req.send(&node, &path).await.0, 409);

    // B (read grant only) is refused and receives no key material
    let req = decrypt_request(&bkey, &[cb], &nd, &network, &wrapped, None);
    let (s, v) = req.send(&node, &path).await;
    assert_eq!(s, 401, "{v}");
    assert!(!v.to_string().contains("wrappedKey"));

    // wrong audience, tampered key, unknown wrap version
    let req = decrypt_request(&a, &[ca], &nd, &network, &wrapped, Some(a.did()));
    assert_eq!(req.send(&node, &path).await.0, 401);
    let mut tampered = wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let req = decrypt_request(&a, &[ca], &nd, &network, &tampered, None);
    assert_eq!(req.send(&node, &path).await.0, 400);
    let mut version = wrapped.clone();
    version[32] = 0x07;
    let req = decrypt_request(&a, &[ca], &nd, &network, &version, None);
    let (s, v) = req.send(&node, &path).await;
    assert_eq!(s, 400, "{v}");
    // a body that does not match the signed fact
    let mut req = decrypt_request(&a, &[ca], &nd, &network, &wrapped, None);
    req.body["keyVersion"] = json!(1);
    req.body["receiverPublicKey"] = json!(STANDARD.encode([1u8; 32]));
    assert_eq!(req.send(&node, &path).await.0, 401);

    // revoking A's delegation ends its access
    assert_eq!(revoke(&node, &o.session, ca).await.0, 200);
    let req = decrypt_request(&a, &[ca], &nd, &network, &wrapped, None);
    assert_eq!(req.send(&node, &path).await.0, 401);

    // the owner's audit trail has every decision
    let t = owner_invocation(&o, &nd, &network, "audit", vec![]);
    let (s, log) = request(
        &node,
        reqwest::Method::GET,
        &format!("/encryption/networks/{}/audit", network.replace(':', "%3A")),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 200, "{log}");
    let outcomes: Vec<&str> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.iter().filter(|o| **o == "allowed").count() == 1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().filter(|o| o.starts_with("denied")).count() >= 5,
        "{outcomes:?}"
    );
    assert!(log["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["actor"] == a.did().to_string()));

    // the owner revokes the network: no more decrypts
    let t = owner_invocation(
        &o,
        &nd,
        &network,
        "network.revoke",
        vec![admin("network.revoke", &json!({}))],
    );
    let (s, _) = post(
        &node,
        &format!(
            "/encryption/networks/{}/revoke",
            network.replace(':', "%3A")
        ),
        &t,
        &json!({}),
    )
    .await;
    assert_eq!(s, 204);
}

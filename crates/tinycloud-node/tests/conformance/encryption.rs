//! Conformance (foreign client): encryption networks (§6 of the reference) — create with the
//! network-admin fact, the `{descriptor}` wrapping, discovery, decrypt with the signed result
//! verified here (ed25519 over the canonical JSON without `nodeSignature`), revoke.

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _};
use serde_json::{json, Value};
use sha2::Digest as _;
use x25519_dalek::{PublicKey, StaticSecret};

const ALG: &str = "x25519-aes256gcm/v1";

/// Client-side wrap to an X25519 key: ephemeral public ‖ 0x01 ‖ nonce ‖ AES-256-GCM(key),
/// the AES key being the raw shared secret (§6).
fn wrap(to: &[u8; 32], content_key: &[u8; 32]) -> Vec<u8> {
    let eph = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let shared = eph.diffie_hellman(&PublicKey::from(*to));
    let cipher = Aes256Gcm::new_from_slice(shared.as_bytes()).unwrap();
    let nonce: [u8; 12] = rand::random();
    let ct = cipher
        .encrypt(&aes_gcm::Nonce::from(nonce), content_key.as_slice())
        .unwrap();
    let mut out = PublicKey::from(&eph).as_bytes().to_vec();
    out.push(0x01);
    out.extend_from_slice(&nonce);
    out.extend(ct);
    out
}

fn unwrap(secret: &StaticSecret, wrapped: &[u8]) -> Vec<u8> {
    assert_eq!(wrapped[32], 0x01, "wrap version");
    let eph: [u8; 32] = wrapped[..32].try_into().unwrap();
    let shared = secret.diffie_hellman(&PublicKey::from(eph));
    let cipher = Aes256Gcm::new_from_slice(shared.as_bytes()).unwrap();
    let nonce: [u8; 12] = wrapped[33..45].try_into().unwrap();
    cipher
        .decrypt(&aes_gcm::Nonce::from(nonce), &wrapped[45..])
        .expect("opens")
}

/// The `tinycloud.encryption.network-admin/v1` fact.
fn admin_fact(node_id: &str, network: &str, body: &Value, action: &str) -> Value {
    json!({"type": "tinycloud.encryption.network-admin/v1", "targetNode": node_id,
           "networkId": network, "bodyHash": canonical_hash(body), "action": action})
}

/// An owner-session invocation of `tinycloud.encryption/{ability}` on the network, addressed
/// to the node (`aud` = nodeId), facts in `fct` as a one-element list.
fn enc_token(s: &Session, network: &str, ability: &str, facts: Vec<Value>) -> String {
    let mut u = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[cap(network, &format!("tinycloud.encryption/{ability}"))],
    )
    .audience(&s.node_id);
    if !facts.is_empty() {
        u = u.facts(facts);
    }
    u.sign(&s.key)
}

fn id_path(network: &str) -> String {
    network.replace(':', "%3A")
}

async fn create(url: &str, s: &Session, network: &str, action: &str) -> Answer {
    let body =
        json!({"name": "default", "ownerDid": s.wallet.did(), "threshold": {"n": 1, "t": 1}});
    let t = enc_token(
        s,
        network,
        "network.create",
        vec![admin_fact(&s.node_id, network, &body, action)],
    );
    post_json(url, "/encryption/networks", &t, &body).await
}

fn check_descriptor(d: &Value, s: &Session, network: &str) {
    assert_eq!(d["networkId"], json!(network));
    assert_eq!(d["ownerDid"], json!(s.wallet.did()));
    assert_eq!(d["name"], "default");
    assert!(d["members"].is_array());
    assert_eq!(d["threshold"], json!({"n": 1, "t": 1}));
    assert_eq!(d["state"], "active");
    assert_eq!(d["alg"], ALG);
    assert_eq!(d["keyVersion"], 1);
    assert_eq!(d["keyBackend"], "local-one-of-one");
    assert!(d["createdAt"].is_string() && d["updatedAt"].is_string());
    let pk = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        d["publicEncryptionKey"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(pk.len(), 32, "standard base64 of an X25519 key");
}

#[tokio::test]
async fn network_descriptor_and_signed_decrypt() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "secrets").await;
    let network = format!("urn:tinycloud:encryption:{}:default", s.wallet.did());

    // Create. The short action form (`network.create`) is what earlier versions of this
    // project's SDK sent (still accepted); the reference's full form is tested below.
    let a = create(url, &s, &network, "network.create")
        .await
        .expect(200);
    let v = a.json();
    assert_eq!(v.as_object().unwrap().len(), 1, "only {{descriptor}}: {v}");
    check_descriptor(&v["descriptor"], &s, &network);
    // Again: 409.
    create(url, &s, &network, "network.create")
        .await
        .expect(409);

    // GET /encryption/networks/<id, ':' as %3A> → {descriptor}.
    let v = get(url, &format!("/encryption/networks/{}", id_path(&network)))
        .await
        .expect(200)
        .json();
    check_descriptor(&v["descriptor"], &s, &network);
    let pk: [u8; 32] = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["descriptor"]["publicEncryptionKey"].as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    // Discovery record (not wrapped).
    let w = get(
        url,
        &format!(
            "/.well-known/encryption/network/default?ownerDid={}",
            encode_component(&s.wallet.did())
        ),
    )
    .await
    .expect(200)
    .json();
    for k in [
        "networkId",
        "ownerDid",
        "name",
        "alg",
        "keyVersion",
        "publicEncryptionKey",
        "state",
        "keyBackend",
    ] {
        assert_eq!(w[k], v["descriptor"][k], "{k}");
    }
    get(url, "/encryption/networks/urn%3Atinycloud%3Aencryption%3Adid%3Apkh%3Aeip155%3A1%3A0x0000000000000000000000000000000000000000%3Anone")
        .await
        .expect(404);

    // Decrypt: the client wrapped a content key to the network; the owner's session asks for
    // it re-wrapped to a fresh receiver key.
    let content_key: [u8; 32] = rand::random();
    let esk = b64std(&wrap(&pk, &content_key));
    let receiver = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let rpk = b64std(PublicKey::from(&receiver).as_bytes());
    let body = json!({
        "type": "tinycloud.encryption.decrypt/v1",
        "targetNode": s.node_id,
        "networkId": network,
        "alg": ALG,
        "keyVersion": 1,
        "encryptedSymmetricKey": esk,
        "encryptedSymmetricKeyHash": canonical_hash(&json!(esk)),
        "receiverPublicKey": rpk,
        "receiverPublicKeyHash": canonical_hash(&json!(rpk)),
    });
    let fact = json!({
        "type": "tinycloud.encryption.decrypt/v1",
        "targetNode": s.node_id,
        "networkId": network,
        "bodyHash": canonical_hash(&body),
        "encryptedSymmetricKeyHash": body["encryptedSymmetricKeyHash"],
        "receiverPublicKeyHash": body["receiverPublicKeyHash"],
        "alg": ALG,
        "keyVersion": 1,
    });
    let t = enc_token(&s, &network, "decrypt", vec![fact]);
    let path = format!("/encryption/networks/{}/decrypt", id_path(&network));
    let r = post_json(url, &path, &t, &body).await.expect(200).json();
    // The decrypt-result fields, bound to the request.
    assert_eq!(r["type"], "tinycloud.encryption.decrypt-result/v1");
    assert_eq!(r["targetNode"], json!(s.node_id));
    assert_eq!(r["networkId"], json!(network));
    assert_eq!(r["alg"], ALG);
    assert_eq!(r["keyVersion"], 1);
    assert_eq!(
        r["encryptedSymmetricKeyHash"],
        body["encryptedSymmetricKeyHash"]
    );
    assert_eq!(r["receiverPublicKeyHash"], body["receiverPublicKeyHash"]);
    let inv_cid = cid(t.as_bytes());
    assert_eq!(r["invocationCid"], json!(inv_cid));
    let request_hash = hex::encode(sha2::Sha256::digest(
        format!("{inv_cid}{}", canonical_hash(&body)).as_bytes(),
    ));
    assert_eq!(r["requestHash"], json!(request_hash));
    assert_eq!(r["nodeId"], json!(s.node_id));
    // nodeSignature: base64 Ed25519 by nodeId over the canonical JSON without it.
    let mut unsigned = r.clone();
    let sig = unsigned
        .as_object_mut()
        .unwrap()
        .remove("nodeSignature")
        .expect("nodeSignature");
    let sig: [u8; 64] = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        sig.as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    ed25519_from_did_key(&s.node_id)
        .verify_strict(&jcs(&unsigned), &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("node signature verifies");
    for k in unsigned.as_object().unwrap().keys() {
        assert!(
            [
                "type",
                "targetNode",
                "networkId",
                "invocationCid",
                "encryptedSymmetricKeyHash",
                "receiverPublicKeyHash",
                "wrappedKey",
                "alg",
                "keyVersion",
                "requestHash",
                "nodeId"
            ]
            .contains(&k.as_str()),
            "unexpected field {k}"
        );
    }
    let key = unwrap(
        &receiver,
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            r["wrappedKey"].as_str().unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(key, content_key);
    // Deliberate difference: the reference's dedicated decrypt route accepts the same
    // invocation twice (its nonce is not consumed there); here every invocation is single use.
    post_json(url, &path, &t, &body).await.expect(409);
    // A decrypt not addressed to the node: 401 (as the reference).
    let fact2 = json!({"type": "tinycloud.encryption.decrypt/v1", "targetNode": s.node_id,
        "networkId": network, "bodyHash": canonical_hash(&body),
        "encryptedSymmetricKeyHash": body["encryptedSymmetricKeyHash"],
        "receiverPublicKeyHash": body["receiverPublicKeyHash"], "alg": ALG, "keyVersion": 1});
    let t = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[cap(&network, "tinycloud.encryption/decrypt")],
    )
    .facts(vec![fact2])
    .sign(&s.key);
    post_json(url, &path, &t, &body).await.expect(401);

    // Audit (our addition): the owner reads the decisions, newest first.
    let t = enc_token(&s, &network, "audit", vec![]);
    let a = Answer::from(
        http()
            .get(format!(
                "{url}/encryption/networks/{}/audit",
                id_path(&network)
            ))
            .header("Authorization", t)
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200);
    assert!(a.json()["records"].is_array());

    // Revoke: action `network.revoke`, body `{}` → 204; then the descriptor says revoked.
    let t = enc_token(
        &s,
        &network,
        "network.revoke",
        vec![admin_fact(
            &s.node_id,
            &network,
            &json!({}),
            "network.revoke",
        )],
    );
    let a = post_json(
        url,
        &format!("/encryption/networks/{}/revoke", id_path(&network)),
        &t,
        &json!({}),
    )
    .await
    .expect(204);
    assert!(a.body.is_empty());
    let v = get(url, &format!("/encryption/networks/{}", id_path(&network)))
        .await
        .json();
    assert_eq!(v["descriptor"]["state"], "revoked");
}

/// Reference clients (JS SDK, OpenKey's bootstrap) put the full ability in the admin fact.
#[tokio::test]
async fn network_admin_fact_in_the_reference_full_form() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "secrets").await;
    let network = format!("urn:tinycloud:encryption:{}:default", s.wallet.did());
    let v = create(url, &s, &network, "tinycloud.encryption/network.create")
        .await
        .expect(200)
        .json();
    check_descriptor(&v["descriptor"], &s, &network);
    let t = enc_token(
        &s,
        &network,
        "network.revoke",
        vec![admin_fact(
            &s.node_id,
            &network,
            &json!({}),
            "tinycloud.encryption/network.revoke",
        )],
    );
    post_json(
        url,
        &format!("/encryption/networks/{}/revoke", id_path(&network)),
        &t,
        &json!({}),
    )
    .await
    .expect(204);
}

/// The reference also takes a decrypt as `POST /invoke` with a `tinycloud.encryption/decrypt`
/// capability (same body, same facts; all failures 403 there).
#[tokio::test]
async fn decrypt_through_invoke() {
    let node = Node::start(NODE_BIN, &[]);
    let url = &node.url;
    let s = Session::sign_in(url, "secrets").await;
    let network = format!("urn:tinycloud:encryption:{}:default", s.wallet.did());
    let v = create(url, &s, &network, "network.create")
        .await
        .expect(200)
        .json();
    let pk: [u8; 32] = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["descriptor"]["publicEncryptionKey"].as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let esk = b64std(&wrap(&pk, &[7u8; 32]));
    let receiver = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let rpk = b64std(PublicKey::from(&receiver).as_bytes());
    let body = json!({
        "type": "tinycloud.encryption.decrypt/v1", "targetNode": s.node_id, "networkId": network,
        "alg": ALG, "keyVersion": 1, "encryptedSymmetricKey": esk,
        "encryptedSymmetricKeyHash": canonical_hash(&json!(esk)),
        "receiverPublicKey": rpk, "receiverPublicKeyHash": canonical_hash(&json!(rpk)),
    });
    let fact = json!({
        "type": "tinycloud.encryption.decrypt/v1", "targetNode": s.node_id, "networkId": network,
        "bodyHash": canonical_hash(&body),
        "encryptedSymmetricKeyHash": body["encryptedSymmetricKeyHash"],
        "receiverPublicKeyHash": body["receiverPublicKeyHash"], "alg": ALG, "keyVersion": 1,
    });
    let t = enc_token(&s, &network, "decrypt", vec![fact.clone()]);
    let r = post_json(url, "/invoke", &t, &body)
        .await
        .expect(200)
        .json();
    // Our hardening: single use on both doors (the reference accepts a replay on its
    // dedicated route); through /invoke every refusal is 403 as the reference answers.
    post_json(url, "/invoke", &t, &body).await.expect(403);
    post_json(
        url,
        &format!("/encryption/networks/{}/decrypt", id_path(&network)),
        &t,
        &body,
    )
    .await
    .expect(409);
    // A body that does not match the fact's hashes, and a decrypt beside another capability.
    let mut other = body.clone();
    other["keyVersion"] = json!(2);
    let t2 = enc_token(&s, &network, "decrypt", vec![fact.clone()]);
    post_json(url, "/invoke", &t2, &other).await.expect(403);
    let t3 = Ucan::invocation(
        &s.key,
        std::slice::from_ref(&s.cid),
        &[
            cap(&network, "tinycloud.encryption/decrypt"),
            cap(s.res("kv/x"), "tinycloud.kv/get"),
        ],
    )
    .audience(&s.node_id)
    .facts(vec![fact])
    .sign(&s.key);
    post_json(url, "/invoke", &t3, &body).await.expect(403);
    assert_eq!(r["type"], "tinycloud.encryption.decrypt-result/v1");
    let key = unwrap(
        &receiver,
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            r["wrappedKey"].as_str().unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(key, [7u8; 32]);
}

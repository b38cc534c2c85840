//! A review attack on the client security fixes: each test performs one finding's attack.

use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, SiweDelegationRequest};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_sdk::encryption::Envelope;
use tinycloud_sdk::session::Jwk;
use tinycloud_sdk::{LocalSigner, Signer};

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

/// `tc secrets run` injects, unnamed, every secret whose writer is "the owner", and "owner"
/// means: the writer key's proof is a delegation signed by the owner's wallet covering
/// `kv/put` there. But the owner's wallet also signs grants to other keys (`tc auth grant`): a
/// co-writer granted only `put` on `vault/secrets/` that way signs its planted envelope with
/// its own key and its grant as proof, and is taken for the owner (so its `EXTRA` lands in the
/// owner's next `run` without being named).
#[tokio::test]
#[ignore = "finding: secrets::writer_of classifies any key holding an owner-wallet-signed kv/put grant \
(the `tc auth grant` flow) as the owner, so a write-only co-writer granted that way is injected by an \
unnamed `tc secrets run`. Needs the owner's own session keys (not any owner-signed grant) to define `owner`"]
async fn a_co_writer_granted_by_the_owners_wallet_is_not_the_owner() {
    let wallet = LocalSigner::generate(1);
    let owner = Did::pkh(1, wallet.eth_address()).unwrap();
    let space = SpaceId::new(owner.clone(), "secrets").unwrap();
    let co = Jwk::generate().secret_key().unwrap();
    // What `tc auth grant` signs for a request of `kv:vault/secrets/:put`.
    let req = SiweDelegationRequest {
        domain: "tc".into(),
        address: wallet.eth_address(),
        chain_id: 1,
        delegate: co.did().verification_method().to_string(),
        nonce: "0123456789abcdef".into(),
        issued_at: now(),
        expiration: Some(now().plus_secs(3600)),
        not_before: None,
        capabilities: vec![
            capability(&format!("{space}/kv/vault/secrets/"), "tinycloud.kv/put").unwrap(),
        ],
        parents: vec![],
        statement: None,
    };
    let msg = req.to_message().unwrap();
    let sig = wallet
        .sign_message(msg.to_string().as_bytes())
        .await
        .unwrap();
    let grant = Cacao::new(msg, sig).unwrap().to_header();

    let path = "vault/secrets/EXTRA";
    let aad = tinycloud_sdk::secrets::aad(&space, path);
    let mut env: Envelope = serde_json::from_value(serde_json::json!({
        "v": 2, "networkId": format!("urn:tinycloud:encryption:{owner}:default"),
        "alg": "x25519-hkdf-sha256-aes256gcm", "keyVersion": 1,
        "encryptedSymmetricKey": "AA==", "encryptedSymmetricKeyHash": "x",
        "ciphertext": "AA==", "aad": base64_std(&aad), "metadata": {},
    }))
    .unwrap();
    env.sign_writer(&co, Some(grant));
    let writer = tinycloud_sdk::secrets::writer_of(&env, &space, path, None);
    assert!(
        !writer.is_owner(),
        "a co-writer's envelope reads as written by {writer}"
    );
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

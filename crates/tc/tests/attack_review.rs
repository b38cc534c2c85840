//! A review attack on the client security fixes: each test performs one finding's attack.

use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, SiweDelegationRequest};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_sdk::encryption::Envelope;
use tinycloud_sdk::secrets::Writer;
use tinycloud_sdk::session::Jwk;
use tinycloud_sdk::{LocalSigner, Signer};

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

/// `tc secrets run` injects, unnamed, every secret whose writer is "the owner". The owner's
/// wallet also signs grants to other keys (`tc auth grant`): a co-writer granted only `put` on
/// `vault/secrets/` that way signs its planted envelope with its own key and its grant as
/// proof. It must not be taken for the owner (else its `EXTRA` lands in the owner's next `run`
/// without being named): only the owner's own session keys, as the profile knows them, are.
#[tokio::test]
async fn a_co_writer_granted_by_the_owners_wallet_is_not_the_owner() {
    let wallet = LocalSigner::generate(1);
    let owner = Did::pkh(1, wallet.eth_address()).unwrap();
    let space = SpaceId::new(owner.clone(), "secrets").unwrap();
    // The owner's own session key (its login) and the co-writer's key, each holding the same
    // wallet-signed `kv/put` grant on the vault (what `tc auth grant` signs for a request of
    // `kv:vault/secrets/:put`).
    let mine = Jwk::generate().secret_key().unwrap();
    let co = Jwk::generate().secret_key().unwrap();
    let path = "vault/secrets/EXTRA";
    let written_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut envelopes = Vec::new();
    for key in [&mine, &co] {
        let req = SiweDelegationRequest {
            domain: "tc".into(),
            address: wallet.eth_address(),
            chain_id: 1,
            delegate: key.did().verification_method().to_string(),
            nonce: "0123456789abcdef".into(),
            issued_at: now().plus_secs(-60),
            expiration: Some(now().plus_secs(3600)),
            not_before: None,
            capabilities: vec![capability(
                &format!("{space}/kv/vault/secrets/"),
                "tinycloud.kv/put",
            )
            .unwrap()],
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().unwrap();
        let sig = wallet
            .sign_message(msg.to_string().as_bytes())
            .await
            .unwrap();
        let grant = Cacao::new(msg, sig).unwrap().to_header();
        let aad = tinycloud_sdk::secrets::aad(&space, path);
        let mut env: Envelope = serde_json::from_value(serde_json::json!({
            "v": 2, "networkId": format!("urn:tinycloud:encryption:{owner}:default"),
            "alg": "x25519-hkdf-sha256-aes256gcm", "keyVersion": 1,
            "encryptedSymmetricKey": "AA==", "encryptedSymmetricKeyHash": "x",
            "ciphertext": "AA==", "aad": base64_std(&aad), "metadata": {},
        }))
        .unwrap();
        env.sign_writer(key, Some(grant));
        envelopes.push(env);
    }
    let own_keys = [mine.did()];
    let writer_of =
        |env| tinycloud_sdk::secrets::writer_of(env, &space, path, Some(&written_at), &own_keys);
    // The owner's own session key is the owner…
    let writer = writer_of(&envelopes[0]);
    assert!(writer.is_owner(), "the owner's own write reads as {writer}");
    // …the co-writer, under the same kind of wallet-signed grant, is not.
    let writer = writer_of(&envelopes[1]);
    assert_eq!(writer, Writer::Other(co.did()), "{writer}");
    // Nor is the owner's own key when this profile does not know it (another device).
    let writer =
        tinycloud_sdk::secrets::writer_of(&envelopes[0], &space, path, Some(&written_at), &[]);
    assert_eq!(writer, Writer::Other(mine.did()), "{writer}");
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

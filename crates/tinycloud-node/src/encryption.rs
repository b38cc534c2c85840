//! Encryption networks: owner-controlled X25519 key pairs held by the node. Clients encrypt
//! content locally to a network's public key; a grantee holding `tinycloud.encryption/decrypt`
//! on the network asks the node to unwrap the content key and re-wrap it to a receiver key it
//! supplies. The node never sees content and never returns the network key.
//!
//! Wire format as the reference (`x25519-aes256gcm/v1`, defined once in
//! `tinycloud_auth::envelope`): a wrapped key is `ephemeral X25519 public (32) ‖ 0x01 ‖
//! nonce (12) ‖ AES-256-GCM(key ‖ tag)`, the AES key being the X25519 shared secret. Unlike the reference, unknown version bytes are refused (never
//! passed through as plaintext), a key that fails authentication is a 4xx, every decrypt
//! invocation is single-use, and every decision is audited.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use x25519_dalek::{PublicKey, StaticSecret};

pub use tinycloud_auth::envelope::{canonical_hash, WrapError, ALG};

/// Wraps `key` to `to` with a fresh ephemeral key and nonce (the format is the core's).
pub fn wrap(to: &PublicKey, key: &[u8]) -> Vec<u8> {
    let mut ephemeral = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut ephemeral);
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    tinycloud_auth::envelope::wrap(to.as_bytes(), key, ephemeral, nonce)
}

/// Opens a wrapped key with `secret`; the content key must be 32 bytes.
pub fn unwrap(secret: &StaticSecret, wrapped: &[u8]) -> Result<[u8; 32], WrapError> {
    tinycloud_auth::envelope::unwrap(secret.as_bytes(), wrapped)
}

/// Seals a network private key at rest (AES-256-GCM under a node-derived key).
pub fn seal_private(node_key: &[u8; 32], secret: &StaticSecret) -> Vec<u8> {
    crate::keys::seal(node_key, secret.as_bytes())
}

/// Opens a sealed network private key.
pub fn open_private(node_key: &[u8; 32], sealed: &[u8]) -> Option<StaticSecret> {
    let bytes: [u8; 32] = crate::keys::open(node_key, sealed)?.try_into().ok()?;
    Some(StaticSecret::from(bytes))
}

/// Decodes standard base64.
pub fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_are_fresh_and_open_with_the_network_key() {
        let net = StaticSecret::from([5u8; 32]);
        let pk = PublicKey::from(&net);
        let key = [7u8; 32];
        let (a, b) = (wrap(&pk, &key), wrap(&pk, &key));
        assert_ne!(a, b);
        assert_eq!(unwrap(&net, &a), Ok(key));
        assert_eq!(unwrap(&net, &b), Ok(key));
    }

    #[test]
    fn sealed_private_keys_round_trip() {
        let k = [1u8; 32];
        let s = StaticSecret::from([5u8; 32]);
        let sealed = seal_private(&k, &s);
        assert_eq!(open_private(&k, &sealed).unwrap().as_bytes(), s.as_bytes());
        assert!(open_private(&[2u8; 32], &sealed).is_none());
    }
}

//! Encryption networks: owner-controlled X25519 key pairs held by the node. Clients encrypt
//! content locally to a network's public key; a grantee holding `tinycloud.encryption/decrypt`
//! on the network asks the node to unwrap the content key and re-wrap it to a receiver key it
//! supplies. The node never sees content and never returns the network key.
//!
//! Wire format as the reference (`x25519-aes256gcm/v1`): a wrapped key is
//! `ephemeral X25519 public (32) ‖ 0x01 ‖ nonce (12) ‖ AES-256-GCM(key ‖ tag)`, the AES key being
//! the X25519 shared secret. Unlike the reference, unknown version bytes are refused (never
//! passed through as plaintext), a key that fails authentication is a 4xx, every decrypt
//! invocation is single-use, and every decision is audited.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

/// The algorithm identifier.
pub const ALG: &str = "x25519-aes256gcm/v1";
/// The only key-wrap version understood.
pub const WRAP_VERSION: u8 = 0x01;

/// Why a wrapped key cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// Too short or not the expected layout.
    #[error("wrapped key is malformed")]
    Malformed,
    /// A version byte other than 0x01.
    #[error("unsupported key-wrap version {0:#04x}")]
    Version(u8),
    /// AES-GCM authentication failed (wrong network, tampered bytes).
    #[error("wrapped key does not authenticate")]
    Authentication,
    /// The unwrapped content key is not 32 bytes.
    #[error("unwrapped content key has the wrong length")]
    KeyLength,
}

/// Lower-case hex SHA-256 of the canonical JSON of `v` (sorted keys, no whitespace); for a
/// string that is the hash of the quoted JSON string, as the reference computes it.
pub fn canonical_hash(v: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(v).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// Wraps `key` to `to` with a fresh ephemeral key.
pub fn wrap(to: &PublicKey, key: &[u8]) -> Vec<u8> {
    let mut eph_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut eph_bytes);
    let eph = StaticSecret::from(eph_bytes);
    let shared = eph.diffie_hellman(to);
    let cipher = Aes256Gcm::new(shared.as_bytes().into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher.encrypt(&Nonce::from(nonce), key).unwrap_or_default();
    let mut out = PublicKey::from(&eph).as_bytes().to_vec();
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend(ct);
    out
}

/// Opens a wrapped key with `secret`; the content key must be 32 bytes.
pub fn unwrap(secret: &StaticSecret, wrapped: &[u8]) -> Result<[u8; 32], WrapError> {
    if wrapped.len() < 32 + 1 + 12 + 16 {
        return Err(WrapError::Malformed);
    }
    let (eph, rest) = wrapped.split_at(32);
    let (version, rest) = rest.split_at(1);
    if version[0] != WRAP_VERSION {
        return Err(WrapError::Version(version[0]));
    }
    let (nonce, ct) = rest.split_at(12);
    let eph: [u8; 32] = eph.try_into().map_err(|_| WrapError::Malformed)?;
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| WrapError::Malformed)?;
    let shared = secret.diffie_hellman(&PublicKey::from(eph));
    let plain = Aes256Gcm::new(shared.as_bytes().into())
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| WrapError::Authentication)?;
    plain.try_into().map_err(|_| WrapError::KeyLength)
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
    fn wrap_unwrap_and_refusals() {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let net = StaticSecret::from(seed);
        let pk = PublicKey::from(&net);
        let key = [7u8; 32];
        let w = wrap(&pk, &key);
        assert_eq!(unwrap(&net, &w), Ok(key));
        let mut bad = w.clone();
        bad[32] = 0x02;
        assert_eq!(unwrap(&net, &bad), Err(WrapError::Version(2)));
        let mut bad = w.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(unwrap(&net, &bad), Err(WrapError::Authentication));
        assert_eq!(unwrap(&net, &w[..40]), Err(WrapError::Malformed));
        let short = wrap(&pk, b"short");
        assert_eq!(unwrap(&net, &short), Err(WrapError::KeyLength));
        let other = StaticSecret::from([9u8; 32]);
        assert_eq!(unwrap(&other, &w), Err(WrapError::Authentication));
    }

    #[test]
    fn canonical_hash_of_a_string_hashes_the_quoted_form() {
        let h = canonical_hash(&Value::String("abc".into()));
        assert_eq!(h, hex::encode(Sha256::digest(b"\"abc\"")));
        let a = canonical_hash(&serde_json::json!({"b": 1, "a": [2, "x"]}));
        assert_eq!(a, hex::encode(Sha256::digest(br#"{"a":[2,"x"],"b":1}"#)));
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

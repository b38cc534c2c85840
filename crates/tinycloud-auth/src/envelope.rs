//! The `x25519-aes256gcm/v1` key wrap and the canonical hash of encryption networks.
//!
//! A wrapped key is `ephemeral X25519 public key (32) ‖ 0x01 ‖ nonce (12) ‖ AES-256-GCM(key ‖
//! tag)`, the AES key being the raw X25519 shared secret between the ephemeral key and the
//! recipient. The canonical hash is the lower-case hex SHA-256 of the canonical (JCS) JSON of a
//! value; for a string, that is the hash of its quoted JSON form.
//!
//! Pure: the ephemeral secret and the nonce are passed in by the caller, who draws them from a
//! cryptographic random source, fresh for every wrap.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

/// The algorithm identifier.
pub const ALG: &str = "x25519-aes256gcm/v1";
/// The only key-wrap version understood.
pub const WRAP_VERSION: u8 = 0x01;
/// The shortest well-formed wrapped key: ephemeral key, version, nonce and tag.
const MIN_WRAPPED: usize = 32 + 1 + 12 + 16;

/// Why a wrapped key cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// Too short or not the expected layout.
    #[error("wrapped key is malformed")]
    Malformed,
    /// A version byte other than 0x01.
    #[error("unsupported key-wrap version {0:#04x}")]
    Version(u8),
    /// AES-GCM authentication failed (wrong recipient, tampered bytes).
    #[error("wrapped key does not authenticate")]
    Authentication,
    /// The unwrapped content key is not 32 bytes.
    #[error("unwrapped content key has the wrong length")]
    KeyLength,
}

/// Lower-case hex SHA-256 of the canonical JSON of `v` (sorted keys, no whitespace).
pub fn canonical_hash(v: &Value) -> String {
    // A `Value` always canonicalizes (its numbers are finite); the empty fallback is unreachable.
    let bytes = serde_json_canonicalizer::to_vec(v).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The X25519 public key of a secret key.
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// Wraps `key` to the X25519 public key `to`, with the caller's fresh random `ephemeral`
/// secret and `nonce`.
pub fn wrap(to: &[u8; 32], key: &[u8], ephemeral: [u8; 32], nonce: [u8; 12]) -> Vec<u8> {
    let eph = StaticSecret::from(ephemeral);
    let shared = eph.diffie_hellman(&PublicKey::from(*to));
    // AES-GCM encryption fails only for plaintexts beyond 64 GiB, far over any key.
    let ct = Aes256Gcm::new(shared.as_bytes().into())
        .encrypt(&Nonce::from(nonce), key)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(MIN_WRAPPED + key.len());
    out.extend_from_slice(PublicKey::from(&eph).as_bytes());
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend(ct);
    out
}

/// Opens a wrapped key with the recipient's X25519 `secret`; the content key must be 32 bytes.
pub fn unwrap(secret: &[u8; 32], wrapped: &[u8]) -> Result<[u8; 32], WrapError> {
    if wrapped.len() < MIN_WRAPPED {
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
    let shared = StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(eph));
    let plain = Aes256Gcm::new(shared.as_bytes().into())
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| WrapError::Authentication)?;
    plain.try_into().map_err(|_| WrapError::KeyLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: [u8; 32] = [3u8; 32];
    const EPH: [u8; 32] = [4u8; 32];
    const NONCE: [u8; 12] = [5u8; 12];

    #[test]
    fn round_trip() {
        let key = [7u8; 32];
        let w = wrap(&public_key(&NET), &key, EPH, NONCE);
        assert_eq!(w.len(), MIN_WRAPPED + 32);
        assert_eq!(&w[..32], &public_key(&EPH));
        assert_eq!(w[32], WRAP_VERSION);
        assert_eq!(&w[33..45], &NONCE);
        assert_eq!(unwrap(&NET, &w), Ok(key));
    }

    #[test]
    fn aes_key_is_the_raw_shared_secret() {
        let key = [7u8; 32];
        let w = wrap(&public_key(&NET), &key, EPH, NONCE);
        let shared = StaticSecret::from(NET).diffie_hellman(&PublicKey::from(public_key(&EPH)));
        let plain = Aes256Gcm::new(shared.as_bytes().into())
            .decrypt(&Nonce::from(NONCE), &w[45..])
            .unwrap();
        assert_eq!(plain, key);
    }

    #[test]
    fn refuses_a_wrong_version_byte() {
        let mut w = wrap(&public_key(&NET), &[7u8; 32], EPH, NONCE);
        w[32] = 0x02;
        assert_eq!(unwrap(&NET, &w), Err(WrapError::Version(2)));
        w[32] = 0x00;
        assert_eq!(unwrap(&NET, &w), Err(WrapError::Version(0)));
    }

    #[test]
    fn refuses_a_bad_tag_or_another_recipient() {
        let w = wrap(&public_key(&NET), &[7u8; 32], EPH, NONCE);
        let mut bad = w.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(unwrap(&NET, &bad), Err(WrapError::Authentication));
        let mut bad = w.clone();
        bad[40] ^= 1;
        assert_eq!(unwrap(&NET, &bad), Err(WrapError::Authentication));
        assert_eq!(unwrap(&[9u8; 32], &w), Err(WrapError::Authentication));
    }

    #[test]
    fn refuses_short_input() {
        let w = wrap(&public_key(&NET), &[7u8; 32], EPH, NONCE);
        assert_eq!(
            unwrap(&NET, &w[..MIN_WRAPPED - 1]),
            Err(WrapError::Malformed)
        );
        assert_eq!(unwrap(&NET, &[]), Err(WrapError::Malformed));
    }

    #[test]
    fn unwrapped_key_must_be_32_bytes() {
        for len in [0usize, 16, 31, 33] {
            let w = wrap(&public_key(&NET), &vec![1u8; len], EPH, NONCE);
            assert_eq!(unwrap(&NET, &w), Err(WrapError::KeyLength), "{len}");
        }
    }

    #[test]
    fn canonical_hash_of_a_string_hashes_the_quoted_form() {
        let h = canonical_hash(&Value::String("abc".into()));
        assert_eq!(h, hex::encode(Sha256::digest(b"\"abc\"")));
        let a = canonical_hash(&serde_json::json!({"b": 1, "a": [2, "x"]}));
        assert_eq!(a, hex::encode(Sha256::digest(br#"{"a":[2,"x"],"b":1}"#)));
    }
}

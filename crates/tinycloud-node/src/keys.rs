//! Node key material. Everything derives from one node secret: the node identity
//! (`nodeId`, Ed25519), per-space host keys, and MAC keys for cursors and tickets.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use tinycloud_auth::did::Did;
use tinycloud_auth::keys::SecretKey;

/// Errors obtaining the node secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not unpadded base64url of at least 32 bytes.
    #[error("the node secret must be unpadded base64url of at least 32 bytes")]
    Invalid,
    /// The secret file could not be read or written.
    #[error("node secret file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// The node secret and keys derived from it. `Debug` never prints key material.
pub struct NodeKeys {
    secret: Vec<u8>,
    identity: SecretKey,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKeys({})", self.node_did())
    }
}

/// Context of the share-invitation signing key (the reference's string, same derivation).
const SHARE_INVITATION_CONTEXT: &[u8] = b"tinycloud/share-email/invitation-signing";

fn seed(secret: &[u8], context: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(secret);
    h.update(context);
    *h.finalize().as_bytes()
}

impl NodeKeys {
    /// Keys from a secret given in configuration (unpadded base64url, ≥ 32 bytes).
    pub fn from_encoded(encoded: &str) -> Result<Self, SecretError> {
        let secret = URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|_| SecretError::Invalid)?;
        Self::from_secret(secret)
    }

    fn from_secret(secret: Vec<u8>) -> Result<Self, SecretError> {
        if secret.len() < 32 {
            return Err(SecretError::Invalid);
        }
        let identity = SecretKey::ed25519_from_seed(&seed(&secret, b"tinycloud/node/identity"));
        Ok(NodeKeys { secret, identity })
    }

    /// Loads `<datadir>/node.secret`, or generates and stores one (mode 0600) on first start.
    pub fn load_or_generate(datadir: &Path) -> Result<Self, SecretError> {
        let path = datadir.join("node.secret");
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_encoded(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                std::fs::create_dir_all(datadir).map_err(io)?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(io)?;
                f.write_all(URL_SAFE_NO_PAD.encode(&secret).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                Self::from_secret(secret)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The node identity key.
    pub fn identity(&self) -> &SecretKey {
        &self.identity
    }

    /// The node DID (`nodeId`).
    pub fn node_did(&self) -> Did {
        self.identity.did()
    }

    /// The deterministic host key of a space: Ed25519 from blake3(secret ‖ space id).
    pub fn host_key(&self, space_id: &str) -> SecretKey {
        SecretKey::ed25519_from_seed(&seed(&self.secret, space_id.as_bytes()))
    }

    /// The public half of the node's share-invitation signing key (Ed25519, seed
    /// blake3(secret ‖ "tinycloud/share-email/invitation-signing")), published unpadded
    /// base64url at `/.well-known/tinycloud/node-keys`. The same secret gives the same key as
    /// the reference node, so an operator moving a node secret keeps the pinned key. The
    /// private half is derived on demand and never leaves this module.
    pub fn share_invitation_public_key(&self) -> [u8; 32] {
        let seed = seed(&self.secret, SHARE_INVITATION_CONTEXT);
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
    }

    /// A 32-byte key for a purpose (`tinycloud/kv/list-cursor`, …), via BLAKE3 key derivation.
    pub fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.secret)
    }
}

/// `base64url(json).base64url(mac)`: a value the node hands out and takes back unchanged
/// (list cursors, hook tickets), MACed with `key`.
pub fn mac_encode<T: serde::Serialize>(key: &[u8; 32], value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mac = blake3::keyed_hash(key, &json);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(mac.as_bytes())
    )
}

/// Verifies the MAC of a [`mac_encode`]d value (constant time) and decodes it; `None` when
/// `text` is longer than `max_len`, malformed, forged or not a `T`.
pub fn mac_decode<T: serde::de::DeserializeOwned>(
    key: &[u8; 32],
    text: &str,
    max_len: usize,
) -> Option<T> {
    if text.len() > max_len {
        return None;
    }
    let (body, mac) = text.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(body).ok()?;
    let mac: [u8; 32] = URL_SAFE_NO_PAD.decode(mac).ok()?.try_into().ok()?;
    // `blake3::Hash` equality is constant-time.
    if blake3::keyed_hash(key, &json) != blake3::Hash::from(mac) {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// Like [`mac_encode`], but the value is also unreadable to its holder:
/// `base64url(nonce ‖ ciphertext).base64url(mac)`, the JSON XORed with a BLAKE3 keystream of a
/// fresh nonce (key derived from `key`), the MAC (keyed with `key`) over nonce and ciphertext.
/// For cursors that carry a position the holder may not see (a row it is not shown).
pub fn seal_encode<T: serde::Serialize>(key: &[u8; 32], value: &T) -> String {
    let mut body = [0u8; SEAL_NONCE].to_vec();
    rand::rngs::OsRng.fill_bytes(&mut body);
    let mut data = serde_json::to_vec(value).unwrap_or_default();
    seal_keystream(key, &body[..SEAL_NONCE], &mut data);
    body.extend_from_slice(&data);
    let mac = blake3::keyed_hash(key, &body);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(mac.as_bytes())
    )
}

/// Verifies and opens a [`seal_encode`]d value; `None` when `text` is longer than `max_len`,
/// malformed, forged or not a `T`.
pub fn seal_decode<T: serde::de::DeserializeOwned>(
    key: &[u8; 32],
    text: &str,
    max_len: usize,
) -> Option<T> {
    if text.len() > max_len {
        return None;
    }
    let (body, mac) = text.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(body).ok()?;
    let mac: [u8; 32] = URL_SAFE_NO_PAD.decode(mac).ok()?.try_into().ok()?;
    // `blake3::Hash` equality is constant-time.
    if body.len() < SEAL_NONCE || blake3::keyed_hash(key, &body) != blake3::Hash::from(mac) {
        return None;
    }
    let (nonce, data) = body.split_at(SEAL_NONCE);
    let mut data = data.to_vec();
    seal_keystream(key, nonce, &mut data);
    serde_json::from_slice(&data).ok()
}

const SEAL_NONCE: usize = 16;

/// XORs `data` with the keystream of `nonce` under a key derived from `key`.
fn seal_keystream(key: &[u8; 32], nonce: &[u8], data: &mut [u8]) {
    let enc = blake3::derive_key("tinycloud/sealed-cursor/keystream", key);
    let mut stream = vec![0u8; data.len()];
    blake3::Hasher::new_keyed(&enc)
        .update(nonce)
        .finalize_xof()
        .fill(&mut stream);
    for (d, k) in data.iter_mut().zip(stream) {
        *d ^= k;
    }
}

/// Seals a secret (webhook secrets, network private keys): `nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)`.
pub fn seal(key: &[u8; 32], secret: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    // Encryption of an in-memory buffer cannot fail.
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), secret)
            .unwrap_or_default(),
    );
    out
}

/// Opens a sealed secret.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = sealed.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    Aes256Gcm::new(key.into())
        .decrypt(&Nonce::from(nonce), ct)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let k = [9u8; 32];
        let s = seal(&k, b"shh");
        assert_eq!(open(&k, &s).as_deref(), Some(&b"shh"[..]));
        let mut t = s.clone();
        t[15] ^= 1;
        assert!(open(&k, &t).is_none());
        assert!(open(&[8u8; 32], &s).is_none());
        assert!(!s.windows(3).any(|w| w == b"shh"));
    }

    #[test]
    fn sealed_values_round_trip_hide_their_content_and_refuse_tampering() {
        let key = [7u8; 32];
        let text = seal_encode(&key, &("secret-position", 42));
        assert!(!text.contains("secret"));
        let (body, _) = text.split_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        assert!(
            !raw.windows(6).any(|w| w == b"secret"),
            "the content is encrypted"
        );
        assert_eq!(
            seal_decode::<(String, u32)>(&key, &text, 1024),
            Some(("secret-position".to_owned(), 42))
        );
        assert_ne!(
            seal_encode(&key, &1u8),
            seal_encode(&key, &1u8),
            "fresh nonce"
        );
        assert_eq!(seal_decode::<(String, u32)>(&[8u8; 32], &text, 1024), None);
        let mut b = text.into_bytes();
        b[3] = if b[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(b).unwrap();
        assert_eq!(seal_decode::<(String, u32)>(&key, &tampered, 1024), None);
        assert_eq!(seal_decode::<u8>(&key, "AAAA.AAAA", 1024), None);
    }

    #[test]
    fn generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKeys::load_or_generate(dir.path()).unwrap();
        let b = NodeKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(a.node_did(), b.node_did());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("node.secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{a:?}").contains(&URL_SAFE_NO_PAD.encode(&a.secret)));
    }

    #[test]
    fn host_keys_are_deterministic_per_space() {
        let k = NodeKeys::from_encoded(&URL_SAFE_NO_PAD.encode([1u8; 32])).unwrap();
        assert_eq!(k.host_key("a").did(), k.host_key("a").did());
        assert_ne!(k.host_key("a").did(), k.host_key("b").did());
        assert!(NodeKeys::from_encoded("short").is_err());
        assert!(NodeKeys::from_encoded(&URL_SAFE_NO_PAD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn share_invitation_key_is_its_own_deterministic_key() {
        let secret: Vec<u8> = (0u8..32)
            .map(|b| b.wrapping_mul(7).wrapping_add(3))
            .collect();
        let k = NodeKeys::from_encoded(&URL_SAFE_NO_PAD.encode(&secret)).unwrap();
        let again = NodeKeys::from_encoded(&URL_SAFE_NO_PAD.encode(&secret)).unwrap();
        let public = k.share_invitation_public_key();
        assert_eq!(public, again.share_invitation_public_key());
        // The public half of the Ed25519 key whose seed is blake3(secret ‖ context).
        let mut h = blake3::Hasher::new();
        h.update(&secret);
        h.update(b"tinycloud/share-email/invitation-signing");
        let expected = ed25519_dalek::SigningKey::from_bytes(h.finalize().as_bytes());
        assert_eq!(public, expected.verifying_key().to_bytes());
        // Not the identity key, and not the seed itself.
        let identity = SecretKey::ed25519_from_seed(&seed(&secret, b"tinycloud/node/identity"));
        assert_ne!(
            identity.did(),
            SecretKey::ed25519_from_seed(h.finalize().as_bytes()).did()
        );
        assert_ne!(&public, h.finalize().as_bytes());
        let other = NodeKeys::from_encoded(&URL_SAFE_NO_PAD.encode([2u8; 32])).unwrap();
        assert_ne!(public, other.share_invitation_public_key());
    }
}

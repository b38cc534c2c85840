//! Sealing private keys at rest. [`KeySealer`] is the one interface; both implementations seal
//! with AES-256-GCM under a per-key key derived (HKDF-SHA256) from a root secret and the key's
//! random sealing context, with the owner and address as associated data (a blob moved to
//! another row does not open). They differ in where the root comes from and what attests:
//! - [`SoftwareSealer`]: root = `<data-dir>/master.key` (32 random bytes, created 0600);
//!   attestation reports signed by an Ed25519 identity derived from the same root. **Not
//!   hardware-backed**: whoever reads the data dir reads every key.
//! - [`super::dstack::DstackSealer`]: root from the dstack guest agent's `GetKey`, evidence a TDX
//!   quote from `GetQuote`.
//!
//! Blob format: `nonce (12) ‖ ciphertext ‖ tag (16)`.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use ed25519_dalek::Signer;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// What a blob is bound to.
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    /// The key's random sealing context (base64url of 32 bytes).
    pub sealing_context: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// EIP-55 address of the key.
    pub address: &'a str,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("openkey/key/v1\n{}\n{}", self.user_id, self.address).into_bytes()
    }
}

/// Sealing or attestation failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The blob is malformed, or was sealed under another root or for another row.
    #[error("sealed blob does not open")]
    Open,
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
    /// The root secret could not be read or created.
    #[error("master secret: {0}")]
    Master(String),
    /// The TEE agent failed.
    #[error("dstack: {0}")]
    Dstack(String),
}

/// Evidence that an attestation report was made by this sealer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Evidence {
    /// Ed25519 signature by the software identity key over the report's canonical JSON.
    /// Proves only that this OpenKey instance's software identity made the report.
    Software {
        /// Hex Ed25519 public key.
        public_key: String,
        /// Hex Ed25519 signature.
        signature: String,
    },
    /// A TDX quote whose report data is SHA-512 of the report's canonical JSON.
    DstackTdx {
        /// Hex quote.
        quote: String,
        /// The agent's event log.
        event_log: String,
    },
}

/// Seals key bytes at rest and attests to reports.
#[async_trait]
pub trait KeySealer: Send + Sync {
    /// `software` or `dstack-tdx`.
    fn kind(&self) -> &'static str;
    /// Whether the root secret is held by hardware (a TEE).
    fn hardware_backed(&self) -> bool;
    /// Seals `plaintext` for `ctx`.
    fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError>;
    /// Opens a blob sealed for `ctx`; the bytes are wiped when dropped.
    fn unseal(&self, ctx: &SealContext<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError>;
    /// Evidence over `report` (canonical JSON bytes).
    async fn attest(&self, report: &[u8]) -> Result<Evidence, SealError>;
}

/// The AEAD part shared by both sealers: a 32-byte root and HKDF per sealing context.
pub(crate) struct RootKey(Zeroizing<[u8; 32]>);

impl RootKey {
    pub(crate) fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        RootKey(bytes)
    }

    fn derive(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"openkey/seal/v1"), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
        let _ = hk.expand(info, out.as_mut_slice());
        out
    }

    fn cipher(&self, ctx: &SealContext<'_>) -> Aes256Gcm {
        let key = self.derive(format!("openkey/key/{}", ctx.sealing_context).as_bytes());
        Aes256Gcm::new(key.as_slice().into())
    }

    pub(crate) fn seal(
        &self,
        ctx: &SealContext<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = ctx.aad();
        let ct = self
            .cipher(ctx)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(blob)
    }

    pub(crate) fn unseal(
        &self,
        ctx: &SealContext<'_>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.len() < 12 + 16 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError::Open)?;
        let aad = ctx.aad();
        self.cipher(ctx)
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

/// Software sealer: root secret in `<data-dir>/master.key`. Not hardware-backed.
pub struct SoftwareSealer {
    root: RootKey,
    identity: ed25519_dalek::SigningKey,
}

impl SoftwareSealer {
    /// Opens `<dir>/master.key`, creating it (32 random bytes, mode 0600) on first start.
    pub fn open(dir: &Path) -> Result<Self, SealError> {
        std::fs::create_dir_all(dir).map_err(|e| SealError::Master(e.to_string()))?;
        let path = dir.join("master.key");
        let root = match std::fs::read(&path) {
            Ok(bytes) => {
                let arr: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| SealError::Master("master.key is not 32 bytes".into()))?;
                Zeroizing::new(arr)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(fresh.as_mut_slice());
                write_private(&path, fresh.as_slice())
                    .map_err(|e| SealError::Master(e.to_string()))?;
                fresh
            }
            Err(e) => return Err(SealError::Master(e.to_string())),
        };
        Ok(Self::from_root(root))
    }

    /// A sealer over a given root (tests).
    pub fn from_root(root: Zeroizing<[u8; 32]>) -> Self {
        let root = RootKey::new(root);
        let seed = root.derive(b"openkey/attestation-identity/v1");
        let identity = ed25519_dalek::SigningKey::from_bytes(&seed);
        SoftwareSealer { root, identity }
    }

    /// Hex public key of the software attestation identity.
    pub fn identity_public_key(&self) -> String {
        hex::encode(self.identity.verifying_key().as_bytes())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[async_trait]
impl KeySealer for SoftwareSealer {
    fn kind(&self) -> &'static str {
        "software"
    }

    fn hardware_backed(&self) -> bool {
        false
    }

    fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.root.seal(ctx, plaintext)
    }

    fn unseal(&self, ctx: &SealContext<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.root.unseal(ctx, blob)
    }

    async fn attest(&self, report: &[u8]) -> Result<Evidence, SealError> {
        let sig = self.identity.sign(report);
        Ok(Evidence::Software {
            public_key: self.identity_public_key(),
            signature: hex::encode(sig.to_bytes()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(c: &'a str, u: &'a str) -> SealContext<'a> {
        SealContext {
            sealing_context: c,
            user_id: u,
            address: "0xA",
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let s = SoftwareSealer::from_root(Zeroizing::new([7u8; 32]));
        let blob = s.seal(&ctx("c1", "u1"), b"secret").unwrap();
        assert_eq!(
            s.unseal(&ctx("c1", "u1"), &blob).unwrap().as_slice(),
            b"secret"
        );
        assert!(s.unseal(&ctx("c2", "u1"), &blob).is_err());
        assert!(s.unseal(&ctx("c1", "u2"), &blob).is_err());
        let other = SoftwareSealer::from_root(Zeroizing::new([8u8; 32]));
        assert!(other.unseal(&ctx("c1", "u1"), &blob).is_err());
        assert!(!s.hardware_backed());
    }

    #[test]
    fn master_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("openkey-sealer-{}", uuid::Uuid::new_v4()));
        let a = SoftwareSealer::open(&dir).unwrap();
        let b = SoftwareSealer::open(&dir).unwrap();
        assert_eq!(a.identity_public_key(), b.identity_public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

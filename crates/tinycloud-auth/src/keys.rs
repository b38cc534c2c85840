//! Public keys as carried by `did:key` (multicodec + base58btc) and signature verification for
//! the JWT algorithms TinyCloud accepts: EdDSA (Ed25519), ES256K (secp256k1) and ES256 (P-256).

use std::fmt;

use ed25519_dalek::Verifier as _;

/// Multicodec varint prefixes of the public key types (`did:key` spec).
const ED25519_PREFIX: [u8; 2] = [0xed, 0x01];
const SECP256K1_PREFIX: [u8; 2] = [0xe7, 0x01];
const P256_PREFIX: [u8; 2] = [0x80, 0x24];

/// Errors decoding a public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base58btc multibase (`z…`).
    #[error("key is not base58btc multibase (must start with 'z')")]
    NotBase58btc,
    /// Invalid base58 characters.
    #[error("key is not valid base58")]
    BadBase58,
    /// Unknown multicodec.
    #[error("unsupported key type (multicodec prefix {0})")]
    UnsupportedKeyType(String),
    /// Wrong key length or not a valid curve point.
    #[error("invalid {0} public key bytes")]
    InvalidKeyBytes(&'static str),
}

/// Errors verifying a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The JWT `alg` does not fit the key type.
    #[error("algorithm {alg} cannot be used with a {key} key")]
    AlgorithmMismatch {
        /// The algorithm named by the token.
        alg: String,
        /// The key type.
        key: &'static str,
    },
    /// Signature bytes of the wrong length or encoding.
    #[error("malformed {0} signature")]
    Malformed(&'static str),
    /// The signature does not verify.
    #[error("signature does not verify")]
    Invalid,
}

/// A public key that a `did:key` can name.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 (`z6Mk…`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// secp256k1, compressed SEC1 (`zQ3s…`).
    Secp256k1(k256::ecdsa::VerifyingKey),
    /// NIST P-256, compressed SEC1 (`zDn…`).
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The key type name.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::Secp256k1(_) => "secp256k1",
            PublicKey::P256(_) => "P-256",
        }
    }

    /// The JWT `alg` that signs with this key type.
    pub fn jwt_alg(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "EdDSA",
            PublicKey::Secp256k1(_) => "ES256K",
            PublicKey::P256(_) => "ES256",
        }
    }

    /// Decodes the multibase text of a `did:key` (the part after `did:key:`).
    pub fn from_multibase(s: &str) -> Result<Self, KeyError> {
        let b58 = s.strip_prefix('z').ok_or(KeyError::NotBase58btc)?;
        if b58.len() > 128 {
            return Err(KeyError::BadBase58);
        }
        let bytes = bs58::decode(b58)
            .into_vec()
            .map_err(|_| KeyError::BadBase58)?;
        Self::from_multicodec(&bytes)
    }

    fn from_multicodec(bytes: &[u8]) -> Result<Self, KeyError> {
        let (prefix, key) = bytes
            .split_at_checked(2)
            .ok_or_else(|| KeyError::UnsupportedKeyType(hex::encode(bytes)))?;
        match <[u8; 2]>::try_from(prefix).unwrap_or_default() {
            ED25519_PREFIX => {
                let arr: [u8; 32] = key
                    .try_into()
                    .map_err(|_| KeyError::InvalidKeyBytes("Ed25519"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&arr)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| KeyError::InvalidKeyBytes("Ed25519"))
            }
            SECP256K1_PREFIX if key.len() == 33 => k256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map(PublicKey::Secp256k1)
                .map_err(|_| KeyError::InvalidKeyBytes("secp256k1")),
            SECP256K1_PREFIX => Err(KeyError::InvalidKeyBytes("secp256k1")),
            P256_PREFIX if key.len() == 33 => p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map(PublicKey::P256)
                .map_err(|_| KeyError::InvalidKeyBytes("P-256")),
            P256_PREFIX => Err(KeyError::InvalidKeyBytes("P-256")),
            _ => Err(KeyError::UnsupportedKeyType(hex::encode(prefix))),
        }
    }

    /// The multicodec-prefixed key bytes, base58btc with the `z` prefix.
    pub fn to_multibase(&self) -> String {
        let mut bytes = Vec::with_capacity(35);
        match self {
            PublicKey::Ed25519(k) => {
                bytes.extend_from_slice(&ED25519_PREFIX);
                bytes.extend_from_slice(k.as_bytes());
            }
            PublicKey::Secp256k1(k) => {
                bytes.extend_from_slice(&SECP256K1_PREFIX);
                bytes.extend_from_slice(k.to_encoded_point(true).as_bytes());
            }
            PublicKey::P256(k) => {
                bytes.extend_from_slice(&P256_PREFIX);
                bytes.extend_from_slice(k.to_encoded_point(true).as_bytes());
            }
        }
        format!("z{}", bs58::encode(bytes).into_string())
    }

    /// Verifies a JWT signature (`alg` as in the JWT header) over `message`.
    ///
    /// Ed25519 uses strict verification (rejects non-canonical and small-order encodings);
    /// ECDSA signatures are 64-byte `r || s` over SHA-256 and must be low-S.
    pub fn verify_jwt(&self, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        if alg != self.jwt_alg() {
            return Err(SignatureError::AlgorithmMismatch {
                alg: crate::excerpt::truncate(alg),
                key: self.kind(),
            });
        }
        self.verify(message, sig)
    }

    /// Verifies a raw signature made by this key over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        match self {
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| SignatureError::Malformed("Ed25519"))?;
                k.verify_strict(message, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            PublicKey::Secp256k1(k) => {
                let sig = k256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| SignatureError::Malformed("ES256K"))?;
                if sig.normalize_s().is_some() {
                    return Err(SignatureError::Invalid);
                }
                k.verify(message, &sig).map_err(|_| SignatureError::Invalid)
            }
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| SignatureError::Malformed("ES256"))?;
                if sig.normalize_s().is_some() {
                    return Err(SignatureError::Invalid);
                }
                k.verify(message, &sig).map_err(|_| SignatureError::Invalid)
            }
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind(), self.to_multibase())
    }
}

/// A private key that can sign UCANs. The protocol core never generates keys (no randomness
/// here): callers construct them from bytes they generated.
#[derive(Clone)]
pub enum SecretKey {
    /// Ed25519 signing key.
    Ed25519(ed25519_dalek::SigningKey),
    /// secp256k1 signing key (ES256K).
    Secp256k1(k256::ecdsa::SigningKey),
    /// P-256 signing key (ES256).
    P256(p256::ecdsa::SigningKey),
}

impl SecretKey {
    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SecretKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SecretKey::Secp256k1(k) => PublicKey::Secp256k1(*k.verifying_key()),
            SecretKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// Signs `message` the way the key's JWT algorithm does.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use k256::ecdsa::signature::Signer as _;
        match self {
            SecretKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SecretKey::Secp256k1(k) => {
                let sig: k256::ecdsa::Signature = k.sign(message);
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
            SecretKey::P256(k) => {
                // Low-S form: verification refuses the malleable high-S twin.
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SecretKey({})", self.public_key().kind())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::did::Did;

    pub(crate) fn ed25519_did() -> Did {
        SecretKey::ed25519_from_seed(&[7u8; 32]).did()
    }

    #[test]
    fn ed25519_did_key_round_trip() {
        let did = ed25519_did();
        let s = did.to_string();
        assert!(s.starts_with("did:key:z6Mk"), "{s}");
        assert_eq!(s.parse::<Did>().unwrap(), did);
    }

    #[test]
    fn known_ed25519_did_key_vector() {
        // From the did:key method specification's test vectors.
        let s = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        let did: Did = s.parse().unwrap();
        assert_eq!(did.to_string(), s);
        assert_eq!(did.public_key().unwrap().kind(), "Ed25519");
    }

    #[test]
    fn secp256k1_and_p256_round_trip_and_verify() {
        let k1 = SecretKey::Secp256k1(k256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap());
        let p2 = SecretKey::P256(p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap());
        for sk in [k1, p2] {
            let did = sk.did();
            let text = did.to_string();
            let parsed: Did = text.parse().unwrap();
            assert_eq!(parsed, did);
            let pk = parsed.public_key().unwrap();
            let sig = sk.sign(b"hello");
            pk.verify_jwt(pk.jwt_alg(), b"hello", &sig).unwrap();
            assert_eq!(
                pk.verify_jwt(pk.jwt_alg(), b"hellO", &sig),
                Err(SignatureError::Invalid)
            );
            assert!(matches!(
                pk.verify_jwt("EdDSA", b"hello", &sig),
                Err(SignatureError::AlgorithmMismatch { .. })
            ));
        }
        assert!(text_prefix(
            "zQ3s",
            &SecretKey::Secp256k1(k256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap())
        ));
        assert!(text_prefix(
            "zDn",
            &SecretKey::P256(p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap())
        ));
    }

    fn text_prefix(prefix: &str, sk: &SecretKey) -> bool {
        sk.public_key().to_multibase().starts_with(prefix)
    }

    #[test]
    fn p256_signatures_always_verify() {
        for seed in 1..=40u8 {
            let sk = SecretKey::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap());
            let pk = sk.public_key();
            for msg in [&b"a"[..], b"bb", b"ccc"] {
                let sig = sk.sign(msg);
                assert!(pk.verify(msg, &sig).is_ok(), "seed {seed}");
                assert!(pk.verify(b"other", &sig).is_err(), "seed {seed}");
            }
        }
    }

    #[test]
    fn ed25519_verify_rejects_tampering() {
        let sk = SecretKey::ed25519_from_seed(&[1u8; 32]);
        let pk = sk.public_key();
        let mut sig = sk.sign(b"payload");
        pk.verify(b"payload", &sig).unwrap();
        sig[10] ^= 1;
        assert_eq!(pk.verify(b"payload", &sig), Err(SignatureError::Invalid));
        assert_eq!(
            pk.verify(b"payload", &sig[..10]),
            Err(SignatureError::Malformed("Ed25519"))
        );
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        assert_eq!(
            PublicKey::from_multibase("abc"),
            Err(KeyError::NotBase58btc)
        );
        assert_eq!(PublicKey::from_multibase("z0OIl"), Err(KeyError::BadBase58));
        assert!(matches!(
            PublicKey::from_multibase("z1111"),
            Err(KeyError::UnsupportedKeyType(_))
        ));
        let mut short = ED25519_PREFIX.to_vec();
        short.extend_from_slice(&[1u8; 31]);
        let s = format!("z{}", bs58::encode(short).into_string());
        assert_eq!(
            PublicKey::from_multibase(&s),
            Err(KeyError::InvalidKeyBytes("Ed25519"))
        );
    }
}

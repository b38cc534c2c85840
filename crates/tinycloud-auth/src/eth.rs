//! Ethereum account helpers: addresses (EIP-55 checksums) and personal-message
//! signatures (EIP-191 version `0x45`, as produced by `personal_sign`).
//!
//! Everything here is pure computation; nothing touches the network or a chain.
//!
//! # Signature malleability
//!
//! An ECDSA signature `(r, s)` has a twin `(r, n - s)` that verifies for the same
//! message and key. Because signatures end up inside content-addressed objects
//! (CACAO), accepting both would give one authorization two identities. This module
//! therefore **rejects** "high-S" signatures ([`SignatureError::HighS`]) instead of
//! normalising them. Every mainstream wallet (and [`sign_eip191`]) emits low-S
//! signatures.
//!
//! The recovery byte is accepted as 27/28 or 0/1, since wallets produce both. That
//! leaves two byte encodings of one signature; a CACAO's authority identity is therefore
//! derived from the signed text, never from the signature bytes (see `cacao.rs`).

use std::fmt;
use std::str::FromStr;

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// Length of an Ethereum address in bytes.
pub const ADDRESS_LEN: usize = 20;

/// Length of a recoverable `r || s || v` signature in bytes.
pub const SIGNATURE_LEN: usize = 65;

/// Prefix prepended to messages before hashing, per EIP-191 version `0x45`.
const EIP191_PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// Why a string is not an acceptable Ethereum address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string does not start with `0x`.
    #[error("address must start with \"0x\"")]
    MissingPrefix,
    /// The part after `0x` is not exactly 40 characters long.
    #[error("address must have 40 hex digits after \"0x\", found {0} characters")]
    InvalidLength(usize),
    /// The part after `0x` contains a non-hexadecimal character.
    #[error("address contains a non-hexadecimal character")]
    InvalidHex,
    /// The letter case does not match the EIP-55 checksum.
    #[error("address does not match its EIP-55 checksum (expected {expected})")]
    BadChecksum {
        /// The correctly checksummed spelling of the same address.
        expected: String,
    },
}

/// Why a signature could not be verified or produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature text is not `0x`-prefixed hexadecimal.
    #[error("signature is not 0x-prefixed hexadecimal")]
    InvalidHex,
    /// The signature is not 65 bytes (`r || s || v`).
    #[error("signature must be 65 bytes (r || s || v), found {0}")]
    InvalidLength(usize),
    /// The recovery byte `v` is not one of 0, 1, 27 or 28.
    #[error("invalid recovery byte v = {0} (expected 0, 1, 27 or 28)")]
    InvalidRecoveryId(u8),
    /// `r` or `s` is zero or not below the curve order.
    #[error("signature scalars r or s are out of range")]
    InvalidScalars,
    /// `s` is in the upper half of the curve order (malleable form); see the module docs.
    #[error("signature has a high S value (non-canonical, malleable form)")]
    HighS,
    /// No public key could be recovered from the signature.
    #[error("public key recovery failed")]
    RecoveryFailed,
    /// Signing failed (cryptographically negligible; reported instead of panicking).
    #[error("signing failed")]
    SigningFailed,
}

/// A 20-byte Ethereum account address. `Debug` and `Display` show the EIP-55
/// spelling.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EthAddress([u8; ADDRESS_LEN]);

impl EthAddress {
    /// Wraps raw address bytes.
    pub const fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 20 address bytes.
    pub const fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    /// Parses `0x` + 40 hex digits whose letter case is exactly the EIP-55
    /// checksum. All-lowercase and all-uppercase spellings are rejected, as
    /// required by EIP-4361.
    pub fn parse_checksummed(s: &str) -> Result<Self, AddressError> {
        let address = Self::parse_any_case(s)?;
        let expected = address.to_eip55();
        if expected == s {
            Ok(address)
        } else {
            Err(AddressError::BadChecksum { expected })
        }
    }

    /// Parses `0x` + 40 hex digits in any letter case (no checksum check).
    pub fn parse_any_case(s: &str) -> Result<Self, AddressError> {
        let digits = s.strip_prefix("0x").ok_or(AddressError::MissingPrefix)?;
        if digits.len() != 2 * ADDRESS_LEN {
            return Err(AddressError::InvalidLength(digits.chars().count()));
        }
        let mut bytes = [0u8; ADDRESS_LEN];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| AddressError::InvalidHex)?;
        Ok(Self(bytes))
    }

    /// The address of a secp256k1 public key: the last 20 bytes of
    /// `keccak256(x || y)`.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        // Uncompressed SEC1 encoding: 0x04 || x (32) || y (32).
        let hash = keccak256(point.as_bytes().get(1..).unwrap_or_default());
        let mut bytes = [0u8; ADDRESS_LEN];
        bytes.copy_from_slice(&hash[32 - ADDRESS_LEN..]);
        Self(bytes)
    }

    /// The EIP-55 mixed-case checksummed spelling, `0x`-prefixed.
    pub fn to_eip55(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(2 + lower.len());
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (4 * (1 - i % 2))) & 0x0f;
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }

    /// The all-lowercase `0x`-prefixed spelling.
    pub fn to_lowercase_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for EthAddress {
    /// Formats as the EIP-55 checksummed spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_eip55())
    }
}

impl fmt::Debug for EthAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EthAddress({})", self.to_eip55())
    }
}

impl FromStr for EthAddress {
    type Err = AddressError;

    /// Same as [`EthAddress::parse_checksummed`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_checksummed(s)
    }
}

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The EIP-191 (`personal_sign`) hash of `message`:
/// `keccak256("\x19Ethereum Signed Message:\n" || decimal(len(message)) || message)`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(EIP191_PREFIX);
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// Decodes a `0x`-prefixed hex signature (the usual wallet output) into bytes.
/// The length is not checked here; [`recover_eip191`] does that.
pub fn parse_hex_signature(s: &str) -> Result<Vec<u8>, SignatureError> {
    let digits = s.strip_prefix("0x").ok_or(SignatureError::InvalidHex)?;
    hex::decode(digits).map_err(|_| SignatureError::InvalidHex)
}

/// Recovers the address that produced the 65-byte `r || s || v` EIP-191
/// signature `sig` over `message`.
///
/// `v` may be 27/28 (Ethereum convention) or 0/1. High-S signatures are
/// rejected (see the module docs). The caller still has to compare the result
/// with the expected address.
pub fn recover_eip191(message: &[u8], sig: &[u8]) -> Result<EthAddress, SignatureError> {
    let (signature, recovery_id) = split_signature(sig)?;
    let hash = eip191_hash(message);
    let key = VerifyingKey::recover_from_prehash(&hash, &signature, recovery_id)
        .map_err(|_| SignatureError::RecoveryFailed)?;
    Ok(EthAddress::from_verifying_key(&key))
}

/// Signs `message` with EIP-191 (`personal_sign`), returning `r || s || v`
/// with `v` in {27, 28} and a low-S `s`.
pub fn sign_eip191(key: &SigningKey, message: &[u8]) -> Result<[u8; 65], SignatureError> {
    let hash = eip191_hash(message);
    let (signature, recovery_id) = key
        .sign_prehash_recoverable(&hash)
        .map_err(|_| SignatureError::SigningFailed)?;
    let mut out = [0u8; SIGNATURE_LEN];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = 27 + recovery_id.to_byte();
    Ok(out)
}

/// Splits and validates `r || s || v`.
fn split_signature(sig: &[u8]) -> Result<(Signature, RecoveryId), SignatureError> {
    let (rs, v) = match sig {
        [rs @ .., v] if sig.len() == SIGNATURE_LEN => (rs, *v),
        _ => return Err(SignatureError::InvalidLength(sig.len())),
    };
    let parity = match v {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(SignatureError::InvalidRecoveryId(other)),
    };
    let signature = Signature::from_slice(rs).map_err(|_| SignatureError::InvalidScalars)?;
    if signature.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    Ok((signature, RecoveryId::new(parity, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checksum examples from the EIP-55 specification.
    const EIP55_EXAMPLES: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    #[test]
    fn eip55_examples_roundtrip() {
        for s in EIP55_EXAMPLES {
            let a = EthAddress::parse_checksummed(s).unwrap();
            assert_eq!(a.to_eip55(), s);
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn checksummed_rejects_wrong_case() {
        let s = EIP55_EXAMPLES[0];
        assert!(matches!(
            EthAddress::parse_checksummed(&s.to_lowercase()),
            Err(AddressError::BadChecksum { .. })
        ));
        let upper = format!("0x{}", s[2..].to_uppercase());
        assert!(EthAddress::parse_checksummed(&upper).is_err());
        assert_eq!(
            EthAddress::parse_any_case(&upper).unwrap(),
            EthAddress::parse_any_case(s).unwrap()
        );
    }

    #[test]
    fn malformed_addresses() {
        assert_eq!(
            EthAddress::parse_any_case("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::MissingPrefix)
        );
        assert_eq!(
            EthAddress::parse_any_case("0x5aAeb6"),
            Err(AddressError::InvalidLength(6))
        );
        assert_eq!(
            EthAddress::parse_any_case("0xzaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::InvalidHex)
        );
        // Multi-byte characters must not cause a slicing panic.
        assert!(EthAddress::parse_any_case("0xéééééééééééééééééééé").is_err());
    }

    #[test]
    fn sign_and_recover() {
        for seed in 1..=20u8 {
            let key = test_key(seed);
            let expected = EthAddress::from_verifying_key(key.verifying_key());
            let sig = sign_eip191(&key, b"hello").unwrap();
            assert!(sig[64] == 27 || sig[64] == 28);
            assert_eq!(recover_eip191(b"hello", &sig).unwrap(), expected);
            // v in {0, 1} is accepted too.
            let mut zero_based = sig;
            zero_based[64] -= 27;
            assert_eq!(recover_eip191(b"hello", &zero_based).unwrap(), expected);
            // A different message recovers a different address (or fails).
            assert_ne!(recover_eip191(b"hellp", &sig).ok(), Some(expected));
        }
    }

    #[test]
    fn rejects_high_s_twin() {
        let key = test_key(7);
        let mut sig = sign_eip191(&key, b"msg").unwrap();
        let low = Signature::from_slice(&sig[..64]).unwrap();
        let s = low.s();
        let high_s = -*s;
        let high = Signature::from_scalars(low.r().to_bytes(), high_s.to_bytes()).unwrap();
        sig[..64].copy_from_slice(&high.to_bytes());
        sig[64] = 55 - sig[64]; // flip parity: 27 <-> 28
        assert_eq!(recover_eip191(b"msg", &sig), Err(SignatureError::HighS));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            recover_eip191(b"m", &[0u8; 64]),
            Err(SignatureError::InvalidLength(64))
        );
        let mut sig = [1u8; 65];
        sig[64] = 29;
        assert_eq!(
            recover_eip191(b"m", &sig),
            Err(SignatureError::InvalidRecoveryId(29))
        );
        assert_eq!(
            recover_eip191(b"m", &[0u8; 65]),
            Err(SignatureError::InvalidScalars)
        );
    }

    #[test]
    fn eip191_hash_known_value() {
        // keccak256("\x19Ethereum Signed Message:\n11hello world")
        assert_eq!(
            hex::encode(eip191_hash(b"hello world")),
            "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"
        );
    }

    #[test]
    fn hex_signature_parsing() {
        assert_eq!(parse_hex_signature("0x0102").unwrap(), vec![1, 2]);
        assert_eq!(parse_hex_signature("0102"), Err(SignatureError::InvalidHex));
        assert_eq!(parse_hex_signature("0x0g"), Err(SignatureError::InvalidHex));
    }
}

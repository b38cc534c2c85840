//! Attestation reports: a statement binding a managed key's address to its owner (user id and
//! `did:pkh`) and a caller's nonce, made by the sealer's identity. With the software sealer the
//! report says `"type": "software"` and `"hardware_backed": false`, and the evidence is an
//! Ed25519 signature by the instance's software identity — no proof of hardware. With dstack
//! the evidence is a TDX quote over SHA-512 of the same bytes.
//!
//! Signed bytes: the JCS (RFC 8785) canonical JSON of [`Report`].

use ed25519_dalek::Verifier;
use serde::{Deserialize, Serialize};

use super::{owner_did, Evidence, KeyError, Keys};
use crate::clock::{now_ms, rfc3339};
use crate::store::KeyKind;

/// What a report states.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// Format version (1).
    pub version: u32,
    /// Sealer kind: `software` or `dstack-tdx`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the sealer is hardware-backed.
    pub hardware_backed: bool,
    /// The key's id.
    pub key_id: String,
    /// EIP-55 address.
    pub address: String,
    /// The owner's user id.
    pub user_id: String,
    /// `did:pkh:eip155:1:<address>`.
    pub owner_did: String,
    /// The caller's nonce, echoed.
    pub nonce: String,
    /// RFC 3339.
    pub issued_at: String,
}

/// A report and its evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attestation {
    /// The statement.
    pub report: Report,
    /// Who made it.
    pub evidence: Evidence,
}

/// A report that does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not software evidence, or not from the expected identity.
    #[error("evidence is not from the expected software identity")]
    Identity,
    /// The signature does not match the report.
    #[error("signature does not verify")]
    Signature,
}

/// The bytes the evidence covers.
pub fn signed_bytes(report: &Report) -> Vec<u8> {
    // Serializing a struct of strings, bools and integers cannot fail.
    serde_json_canonicalizer::to_vec(report).unwrap_or_default()
}

/// Checks software evidence made by `expected_public_key` (hex) over the report.
pub fn verify_software(att: &Attestation, expected_public_key: &str) -> Result<(), VerifyError> {
    let Evidence::Software {
        public_key,
        signature,
    } = &att.evidence
    else {
        return Err(VerifyError::Identity);
    };
    if !public_key.eq_ignore_ascii_case(expected_public_key) {
        return Err(VerifyError::Identity);
    }
    let pk: [u8; 32] = hex::decode(public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::Identity)?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| VerifyError::Identity)?;
    let sig: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::Signature)?;
    vk.verify(
        &signed_bytes(&att.report),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| VerifyError::Signature)
}

/// Is `nonce` acceptable (8–128 characters of `[A-Za-z0-9_-]`)?
pub fn valid_nonce(nonce: &str) -> bool {
    (8..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keys {
    /// An attestation report for the user's managed key `key_id` over `nonce`.
    pub async fn attest(
        &self,
        user_id: &str,
        key_id: &str,
        nonce: &str,
    ) -> Result<Attestation, KeyError> {
        if !valid_nonce(nonce) {
            return Err(KeyError::NotUsable(
                "the nonce has 8 to 128 characters of A-Z a-z 0-9 _ -".into(),
            ));
        }
        let key = self.get(user_id, key_id)?;
        if key.kind != KeyKind::Managed {
            return Err(KeyError::NotUsable(
                "only keys OpenKey holds can be attested".into(),
            ));
        }
        let report = Report {
            version: 1,
            kind: self.sealer().kind().to_string(),
            hardware_backed: self.sealer().hardware_backed(),
            key_id: key.id.clone(),
            owner_did: owner_did(&key.address),
            address: key.address,
            user_id: user_id.to_string(),
            nonce: nonce.to_string(),
            issued_at: rfc3339(now_ms()),
        };
        let evidence = self.sealer().attest(&signed_bytes(&report)).await?;
        Ok(Attestation { report, evidence })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::sealer::{KeySealer, SoftwareSealer};
    use zeroize::Zeroizing;

    fn report() -> Report {
        Report {
            version: 1,
            kind: "software".into(),
            hardware_backed: false,
            key_id: "k".into(),
            address: "0xA".into(),
            user_id: "u".into(),
            owner_did: "did:pkh:eip155:1:0xA".into(),
            nonce: "nonce-123".into(),
            issued_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn software_report_verifies_and_binds_fields() {
        let s = SoftwareSealer::from_root(Zeroizing::new([1u8; 32]));
        let r = report();
        let att = Attestation {
            evidence: s.attest(&signed_bytes(&r)).await.unwrap(),
            report: r,
        };
        let pk = s.identity_public_key();
        assert_eq!(verify_software(&att, &pk), Ok(()));
        for tamper in [
            |r: &mut Report| r.address = "0xB".into(),
            |r: &mut Report| r.user_id = "v".into(),
            |r: &mut Report| r.nonce = "nonce-456".into(),
        ] {
            let mut bad = att.clone();
            tamper(&mut bad.report);
            assert_eq!(verify_software(&bad, &pk), Err(VerifyError::Signature));
        }
        let other = SoftwareSealer::from_root(Zeroizing::new([2u8; 32]));
        assert_eq!(
            verify_software(&att, &other.identity_public_key()),
            Err(VerifyError::Identity)
        );
    }

    #[test]
    fn nonce_rules() {
        assert!(valid_nonce("abcdefgh"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("has space in it"));
    }
}

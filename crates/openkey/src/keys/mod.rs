//! Keys: a secp256k1 owner key per user (more on request, labelled, archivable), external
//! wallets linked by an EIP-191 challenge, signing a digest with an unsealed key, export for
//! self-custody, and attestation reports. Plaintext key bytes live only in `Zeroizing` buffers
//! and k256 `SigningKey`s (wiped on drop) for the duration of one call.
//!
//! Signing and export take a [`UserVerified`]: proof that the caller checked a fresh passkey
//! user verification (the only constructor is [`UserVerified::check`]).

pub mod attest;
pub mod dstack;
pub mod sealer;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k256::ecdsa::SigningKey;
use rand::RngCore;
use tinycloud_auth::eth::EthAddress;
use zeroize::Zeroizing;

use crate::audit;
use crate::clock::now_ms;
use crate::store::{KeyKind, KeyRow, Store, StoreError};
pub use sealer::{Evidence, KeySealer, SealContext, SealError, SoftwareSealer};

/// A key operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No such key for this user.
    #[error("key not found")]
    NotFound,
    /// The key exists but cannot be used for this (archived, external, owner key, …).
    #[error("{0}")]
    NotUsable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A signature could not be made.
    #[error("signing failed")]
    Crypto,
}

/// Proof that a passkey verified `user_id` within the configured window.
#[derive(Clone, Debug)]
pub struct UserVerified {
    user_id: String,
    at: i64,
}

impl UserVerified {
    /// `Some` iff the last user verification is at most `window` old at `now` (Unix ms).
    pub fn check(
        user_id: &str,
        last_uv_at: Option<i64>,
        now: i64,
        window: Duration,
    ) -> Option<Self> {
        let at = last_uv_at?;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        (at <= now && now - at <= window_ms).then(|| UserVerified {
            user_id: user_id.to_string(),
            at,
        })
    }

    /// The verified user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// When the passkey verified them (Unix ms).
    pub fn at(&self) -> i64 {
        self.at
    }
}

/// A signature by a managed key.
#[derive(Clone, Debug)]
pub struct Signed {
    /// `r ‖ s ‖ v`, v = 27 + recovery id (low-s).
    pub signature: [u8; 65],
    /// EIP-55 address of the signing key.
    pub address: String,
}

impl Signed {
    /// `0x`-hex of the signature.
    pub fn hex(&self) -> String {
        format!("0x{}", hex::encode(self.signature))
    }
}

/// What an audited signing was for (written to the log with the outcome).
#[derive(Clone, Debug)]
pub struct AuditNote {
    /// Event name, e.g. `sign.personal`.
    pub event: &'static str,
    /// JSON details (no secrets).
    pub detail: serde_json::Value,
}

/// `did:pkh:eip155:1:<EIP-55 address>`.
pub fn owner_did(address: &str) -> String {
    format!("did:pkh:eip155:1:{address}")
}

/// Signs a 32-byte digest: `r ‖ s ‖ (27 + recid)`.
pub fn sign_digest_with(key: &SigningKey, digest: &[u8; 32]) -> Result<[u8; 65], KeyError> {
    let (sig, recid) = key
        .sign_prehash_recoverable(digest)
        .map_err(|_| KeyError::Crypto)?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + recid.to_byte();
    Ok(out)
}

fn check_label(label: &str) -> Result<String, KeyError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(KeyError::NotUsable(
            "a label has 1 to 64 characters, no control characters".into(),
        ));
    }
    Ok(label.to_string())
}

/// Key records and the sealer together.
#[derive(Clone)]
pub struct Keys {
    store: Arc<dyn Store>,
    sealer: Arc<dyn KeySealer>,
}

impl Keys {
    /// Wires the store and the sealer.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<dyn KeySealer>) -> Self {
        Keys { store, sealer }
    }

    /// The sealer.
    pub fn sealer(&self) -> &dyn KeySealer {
        self.sealer.as_ref()
    }

    /// Generates, seals and stores a managed key (the owner key when `is_owner`).
    pub fn create_managed(
        &self,
        user_id: &str,
        label: &str,
        is_owner: bool,
    ) -> Result<KeyRow, KeyError> {
        let label = check_label(label)?;
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let address = EthAddress::from_verifying_key(key.verifying_key()).to_eip55();
        let mut ctx_bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut ctx_bytes);
        let sealing_context = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx_bytes);
        let secret = Zeroizing::new(key.to_bytes());
        let sealed = self.sealer.seal(
            &SealContext {
                sealing_context: &sealing_context,
                user_id,
                address: &address,
            },
            &secret[..],
        )?;
        let row = KeyRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            address,
            kind: KeyKind::Managed,
            label,
            is_owner,
            sealing_context: Some(sealing_context),
            sealed: Some(sealed),
            created_at: now_ms(),
            archived_at: None,
            exported_at: None,
        };
        self.store.insert_key(&row)?;
        audit::record(
            self.store.as_ref(),
            user_id,
            "key.create",
            audit::DONE,
            Some(&row.id),
            serde_json::json!({ "address": row.address, "label": row.label, "owner": is_owner }),
        )?;
        Ok(row)
    }

    /// Records an external wallet the caller proved control of (the proof is checked by the
    /// caller: see `wallet::link`).
    pub fn link_external(
        &self,
        user_id: &str,
        address: &EthAddress,
        label: &str,
    ) -> Result<KeyRow, KeyError> {
        let label = check_label(label)?;
        let row = KeyRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            address: address.to_eip55(),
            kind: KeyKind::External,
            label,
            is_owner: false,
            sealing_context: None,
            sealed: None,
            created_at: now_ms(),
            archived_at: None,
            exported_at: None,
        };
        self.store.insert_key(&row)?;
        audit::record(
            self.store.as_ref(),
            user_id,
            "key.link",
            audit::DONE,
            Some(&row.id),
            serde_json::json!({ "address": row.address, "label": row.label }),
        )?;
        Ok(row)
    }

    /// A user's keys.
    pub fn list(&self, user_id: &str, include_archived: bool) -> Result<Vec<KeyRow>, KeyError> {
        Ok(self.store.keys(user_id, include_archived)?)
    }

    /// One of the user's keys.
    pub fn get(&self, user_id: &str, key_id: &str) -> Result<KeyRow, KeyError> {
        self.store.key(user_id, key_id)?.ok_or(KeyError::NotFound)
    }

    /// The user's owner key.
    pub fn owner_key(&self, user_id: &str) -> Result<KeyRow, KeyError> {
        self.store
            .keys(user_id, true)?
            .into_iter()
            .find(|k| k.is_owner)
            .ok_or(KeyError::NotFound)
    }

    /// Archives (`true`) or restores (`false`) a key; the owner key cannot be archived.
    pub fn set_archived(
        &self,
        user_id: &str,
        key_id: &str,
        archived: bool,
    ) -> Result<(), KeyError> {
        let key = self.get(user_id, key_id)?;
        if archived && key.is_owner {
            return Err(KeyError::NotUsable(
                "the owner key cannot be archived".into(),
            ));
        }
        self.store
            .set_archived(user_id, key_id, archived.then(now_ms))?;
        audit::record(
            self.store.as_ref(),
            user_id,
            if archived {
                "key.archive"
            } else {
                "key.unarchive"
            },
            audit::DONE,
            Some(key_id),
            serde_json::json!({ "address": key.address }),
        )?;
        Ok(())
    }

    fn usable_managed(&self, user_id: &str, key_id: &str) -> Result<KeyRow, KeyError> {
        let key = self.get(user_id, key_id)?;
        if key.kind != KeyKind::Managed {
            return Err(KeyError::NotUsable(
                "this is a linked wallet: sign with the wallet itself".into(),
            ));
        }
        if key.archived_at.is_some() {
            return Err(KeyError::NotUsable("this key is archived".into()));
        }
        Ok(key)
    }

    fn unseal(&self, key: &KeyRow) -> Result<SigningKey, KeyError> {
        let (Some(ctx), Some(blob)) = (&key.sealing_context, &key.sealed) else {
            return Err(KeyError::NotUsable("no sealed key material".into()));
        };
        let bytes = self.sealer.unseal(
            &SealContext {
                sealing_context: ctx,
                user_id: &key.user_id,
                address: &key.address,
            },
            blob,
        )?;
        SigningKey::from_slice(bytes.as_slice()).map_err(|_| KeyError::Crypto)
    }

    /// Signs `digest` with the user's managed key `key_id` and audits it as `note`. The caller
    /// must have shown the person what the digest stands for.
    pub fn sign_digest(
        &self,
        uv: &UserVerified,
        key_id: &str,
        digest: &[u8; 32],
        note: AuditNote,
    ) -> Result<Signed, KeyError> {
        let key = self.usable_managed(uv.user_id(), key_id)?;
        let signing = self.unseal(&key)?;
        let signature = sign_digest_with(&signing, digest)?;
        drop(signing);
        let mut detail = note.detail;
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("address".into(), key.address.clone().into());
            obj.insert("digest".into(), format!("0x{}", hex::encode(digest)).into());
        }
        audit::record(
            self.store.as_ref(),
            uv.user_id(),
            note.event,
            audit::ALLOWED,
            Some(key_id),
            detail,
        )?;
        Ok(Signed {
            signature,
            address: key.address,
        })
    }

    /// The raw private key (`0x`-hex) for self-custody; marks the key exported and audits.
    pub fn export(&self, uv: &UserVerified, key_id: &str) -> Result<Zeroizing<String>, KeyError> {
        let key = self.usable_managed(uv.user_id(), key_id)?;
        let signing = self.unseal(&key)?;
        let secret = Zeroizing::new(signing.to_bytes());
        let out = Zeroizing::new(format!("0x{}", hex::encode(&secret[..])));
        self.store.mark_exported(uv.user_id(), key_id, now_ms())?;
        audit::record(
            self.store.as_ref(),
            uv.user_id(),
            "key.export",
            audit::DONE,
            Some(key_id),
            serde_json::json!({ "address": key.address }),
        )?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_verified_window() {
        let w = Duration::from_secs(300);
        assert!(UserVerified::check("u", Some(1_000), 1_000 + 300_000, w).is_some());
        assert!(UserVerified::check("u", Some(1_000), 1_000 + 300_001, w).is_none());
        assert!(UserVerified::check("u", None, 1_000, w).is_none());
        assert!(UserVerified::check("u", Some(2_000), 1_000, w).is_none());
    }

    #[test]
    fn digest_signature_recovers_to_the_address() {
        // Known vector: private key 1 ↔ 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = SigningKey::from_slice(&one).unwrap();
        let addr = EthAddress::from_verifying_key(key.verifying_key()).to_eip55();
        assert_eq!(addr, "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
        let msg = b"hello";
        let sig = sign_digest_with(&key, &tinycloud_auth::eth::eip191_hash(msg)).unwrap();
        let rec = tinycloud_auth::eth::recover_eip191(msg, &sig).unwrap();
        assert_eq!(rec.to_eip55(), addr);
    }
}

//! The [`Secrets`] handle of one `secrets` space and its storage plumbing: sealing and signing
//! an envelope, storing it, reading it back with its writer confirmed by the node, and the
//! version history kept beside each secret (`.history/<NAME>/<version>`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};

use super::names::{check_name, check_value, resolve_secret_path};
use super::payload::{info, SecretInfo, SecretPayload};
use super::writer::{
    aad, proof_cid, signed_version, signed_written_at, writer_of, Writer, MAX_ENVELOPE_BYTES,
    META_VERSION, META_WRITTEN_AT,
};
use crate::client::TinyCloud;
use crate::delegation::DelegationStatus;
use crate::encryption::Envelope;
use crate::error::{Error, Result};
use crate::kv::PutOptions;
use crate::session::now;

/// The secrets of one `secrets` space.
pub struct Secrets<'a> {
    pub(super) client: &'a TinyCloud,
    pub(super) space: SpaceId,
    pub(super) network: NetworkId,
    /// What the node said of each writer proof, asked once per `Secrets`.
    pub(super) proof_status: Mutex<HashMap<Cid, DelegationStatus>>,
    /// The owner's own session keys (from the client, when this `Secrets` was made).
    pub(super) owner_keys: Vec<Did>,
}

fn rfc3339_now() -> String {
    now().to_rfc3339()
}

impl<'a> Secrets<'a> {
    pub(super) fn kv(&self) -> crate::kv::Kv<'a> {
        self.client.kv_in(self.space.clone())
    }

    /// Where a previous version is kept: beside the secret, under `.history/`, so the owner's
    /// vault grant covers it while a grant on one secret's path does not.
    pub(super) fn history_path(path: &str, version: u64) -> String {
        format!("{}{version}", Self::history_dir(path))
    }

    /// The folder holding a secret's previous versions (ends with `/`).
    pub(super) fn history_dir(path: &str) -> String {
        match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.history/{name}/"),
            None => format!(".history/{path}/"),
        }
    }

    /// Stores (or replaces) a secret, encrypted to the owner's network. Every version is
    /// also kept in the history at its own path (`.history/<NAME>/<version>`, owner-signed,
    /// recoverable with [`Self::get_version`]); the new version is above both the current one
    /// and every kept one. Because a write-only co-writer can add envelopes but not remove
    /// owner-signed ones, a current value older than the newest kept version is a rollback
    /// (an older envelope stored again), which [`Self::read`] refuses.
    pub async fn put(&self, name: &str, value: &str, scope: Option<&str>) -> Result<SecretInfo> {
        check_name(name)?;
        check_value(value)?;
        let path = resolve_secret_path(name, scope)?;
        let previous = match self.read_payload(&path).await {
            Ok((p, writer)) => writer.is_owner().then_some(p),
            // Missing, or unreadable (tampered, moved, another network): replaced.
            Err(Error::NotFound(_) | Error::Token(_)) => None,
            Err(e) => return Err(e),
        };
        let mut newest_kept = self.newest_kept(&path).await?.unwrap_or(0);
        // A value written before every version was kept: keep it now (only the owner's own:
        // archiving a planted one under the owner's signature would launder it).
        if let Some(p) = previous.as_ref().filter(|p| p.version > newest_kept) {
            self.write_payload(&Self::history_path(&path, p.version), p)
                .await?;
            newest_kept = p.version;
        }
        let now = rfc3339_now();
        let payload = SecretPayload {
            value: value.to_owned(),
            created_at: previous
                .as_ref()
                .map_or(now.clone(), |p| p.created_at.clone()),
            updated_at: now,
            version: previous
                .as_ref()
                .map_or(0, |p| p.version)
                .max(newest_kept)
                .saturating_add(1),
        };
        // The value first, then its history copy: a crash between leaves a current value
        // newer than the history, which reads fine.
        let writer = self.write_payload(&path, &payload).await?;
        self.write_payload(&Self::history_path(&path, payload.version), &payload)
            .await?;
        Ok(info(name, &payload, writer))
    }

    /// Seals `payload`, signs the envelope with the session key (with the session's delegation
    /// as proof) and stores it.
    pub(super) async fn write_payload(
        &self,
        path: &str,
        payload: &SecretPayload,
    ) -> Result<Writer> {
        let network = self.client.ensure_network(&self.network).await?;
        let mut meta = Map::new();
        meta.insert("x-vault-version".into(), Value::from("3"));
        meta.insert(
            "x-vault-cipher".into(),
            Value::from("tinycloud-network-envelope"),
        );
        meta.insert(
            "x-vault-content-type".into(),
            Value::from("application/json"),
        );
        meta.insert(META_VERSION.into(), Value::from(payload.version));
        meta.insert(META_WRITTEN_AT.into(), Value::from(rfc3339_now()));
        let plaintext =
            serde_json::to_vec(payload).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut env = Envelope::seal(&network, &plaintext, &aad(&self.space, path), meta);
        let session = self.client.active_session()?;
        env.sign_writer(
            &session.key()?,
            Some(session.delegation_header()?.to_owned()),
        );
        let writer = writer_of(
            &env,
            &self.space,
            path,
            signed_written_at(&env),
            &self.owner_keys,
        );
        let json = serde_json::to_vec(&env).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.kv()
            .put(
                path,
                json,
                &PutOptions {
                    content_type: Some("application/json".into()),
                    ..Default::default()
                },
            )
            .await?;
        Ok(writer)
    }

    /// The stored envelope at `path` (no decrypt).
    pub(super) async fn envelope(&self, path: &str) -> Result<Envelope> {
        let obj = self.kv().get_capped(path, MAX_ENVELOPE_BYTES).await?;
        serde_json::from_slice(&obj.data)
            .map_err(|_| Error::Token("stored value is not an encryption envelope".into()))
    }

    /// [`writer_of`], then for an owner write: asks the node (once per proof) whether the
    /// proof is revoked. Revoked: [`Writer::Revoked`]; unknown to the node: [`Writer::Other`].
    pub(super) async fn confirm_writer(&self, env: &Envelope, writer: Writer) -> Result<Writer> {
        if !writer.is_owner() {
            return Ok(writer);
        }
        let (Some(cid), Some(key)) = (
            proof_cid(env),
            env.writer.as_ref().and_then(|w| w.did.parse::<Did>().ok()),
        ) else {
            return Ok(Writer::Invalid);
        };
        let cached = self
            .proof_status
            .lock()
            .map_err(|_| Error::Storage("proof status cache poisoned".into()))?
            .get(&cid)
            .copied();
        let status = match cached {
            Some(s) => s,
            None => {
                let s = match self.client.delegation_status(&cid).await {
                    Ok(s) => s,
                    // The node answers only parties to the proof; one this session is not a
                    // party to cannot be confirmed: not the owner (deny by default).
                    Err(Error::PermissionDenied { .. }) => return Ok(Writer::Other(key)),
                    Err(e) => return Err(e),
                };
                // `unavailable` may change on the next ask: not remembered.
                if s != DelegationStatus::Unavailable {
                    self.proof_status
                        .lock()
                        .map_err(|_| Error::Storage("proof status cache poisoned".into()))?
                        .insert(cid, s);
                }
                s
            }
        };
        Ok(match status {
            // An expired proof still vouches for what it signed while valid (checked above).
            DelegationStatus::Active | DelegationStatus::Expired => writer,
            DelegationStatus::Revoked => Writer::Revoked(key),
            DelegationStatus::NotFound | DelegationStatus::Unavailable => Writer::Other(key),
        })
    }

    pub(super) async fn read_payload(&self, path: &str) -> Result<(SecretPayload, Writer)> {
        let env = self.envelope(path).await?;
        let plain = self.client.decrypt(&env, &aad(&self.space, path)).await?;
        let payload: SecretPayload = serde_json::from_slice(&plain)
            .map_err(|_| Error::Token("decrypted value is not a secret payload".into()))?;
        // The signed plain version must be the encrypted one; envelopes from before signed
        // write times were recorded fall back to the (also signed) payload's update time.
        let writer = if signed_version(&env).is_some_and(|v| v != payload.version) {
            Writer::Invalid
        } else {
            let at = signed_written_at(&env).unwrap_or(&payload.updated_at);
            writer_of(&env, &self.space, path, Some(at), &self.owner_keys)
        };
        let writer = self.confirm_writer(&env, writer).await?;
        Ok((payload, writer))
    }

    /// The newest version kept in a secret's history that the owner wrote there (planted or
    /// moved entries, and entries whose name is not their signed version, do not count).
    /// Needs `kv/list` and `kv/get` on the history (the owner's vault grant); without them
    /// (a delegate's per-secret grant) there is nothing to compare against: `None`.
    pub(super) async fn newest_kept(&self, path: &str) -> Result<Option<u64>> {
        let dir = Self::history_dir(path);
        let keys = match self.kv().list(&dir).await {
            Ok(keys) => keys,
            Err(Error::NotFound(_) | Error::PermissionDenied { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut versions: Vec<(u64, String)> = keys
            .into_iter()
            .filter_map(|k| {
                let v = k.strip_prefix(&dir)?.parse::<u64>().ok()?;
                Some((v, k))
            })
            .collect();
        // Newest first: the first owner-written one is the answer.
        versions.sort_unstable_by_key(|v| std::cmp::Reverse(v.0));
        for (version, key) in versions {
            let env = match self.envelope(&key).await {
                Ok(env) => env,
                Err(Error::NotFound(_) | Error::PermissionDenied { .. } | Error::Token(_)) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            if signed_version(&env) != Some(version) {
                continue;
            }
            let writer = writer_of(
                &env,
                &self.space,
                &key,
                signed_written_at(&env),
                &self.owner_keys,
            );
            if self.confirm_writer(&env, writer).await?.is_owner() {
                return Ok(Some(version));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::names::check_name_syntax;

    #[test]
    fn history_sits_beside_the_secret_and_outside_its_grant() {
        let path = "vault/secrets/API_KEY";
        assert_eq!(
            Secrets::history_path(path, 3),
            "vault/secrets/.history/API_KEY/3"
        );
        assert_eq!(
            Secrets::history_dir("vault/secrets/scoped/prod/DB"),
            "vault/secrets/scoped/prod/.history/DB/"
        );
        // A grant on `vault/secrets/API_KEY` (and anything under it) does not cover history.
        assert!(!Secrets::history_path(path, 1).starts_with(path));
        // History entries are not listed as secrets.
        assert!(check_name_syntax(".history").is_err());
    }
}

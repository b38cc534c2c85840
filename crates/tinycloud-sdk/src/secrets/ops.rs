//! The public operations on a vault: who wrote a secret, reading (refusing a rolled-back
//! value), rotating, previous versions, the envelope hashes of the audit trail, listing,
//! deleting and granting; and the [`TinyCloud`] constructors of a [`Secrets`] handle.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_auth::session::capability;

use super::names::{check_name, check_name_syntax, check_value, list_prefix, resolve_secret_path};
use super::payload::{info, Secret, SecretInfo};
use super::store::Secrets;
use super::writer::{signed_version, signed_written_at, writer_of, Writer, MAX_ENVELOPE_BYTES};
use crate::client::TinyCloud;
use crate::delegation::PortableDelegation;
use crate::encryption::Envelope;
use crate::error::{Error, Result};

impl<'a> Secrets<'a> {
    /// Who wrote a secret (reads the envelope; needs `kv/get`, not decrypt; asks the node
    /// whether an owner proof is revoked). An envelope without a signed write time (stored
    /// before they were recorded) is judged on its decrypted update time by [`Self::read`].
    pub async fn writer(&self, name: &str, scope: Option<&str>) -> Result<Writer> {
        let path = resolve_secret_path(name, scope)?;
        let env = self.envelope(&path).await?;
        let writer = writer_of(
            &env,
            &self.space,
            &path,
            signed_written_at(&env),
            &self.owner_keys,
        );
        self.confirm_writer(&env, writer).await
    }

    /// A secret's signed version and writer without decrypting (for listings): the version
    /// from the envelope's signed metadata, if recorded.
    pub async fn signed_info(
        &self,
        name: &str,
        scope: Option<&str>,
    ) -> Result<(Option<u64>, Writer)> {
        let path = resolve_secret_path(name, scope)?;
        let env = self.envelope(&path).await?;
        let writer = writer_of(
            &env,
            &self.space,
            &path,
            signed_written_at(&env),
            &self.owner_keys,
        );
        Ok((
            signed_version(&env),
            self.confirm_writer(&env, writer).await?,
        ))
    }

    /// Reads a secret: its value, metadata and writer.
    pub async fn read(&self, name: &str, scope: Option<&str>) -> Result<Secret> {
        let path = resolve_secret_path(name, scope)?;
        match self.read_payload(&path).await {
            Err(Error::NotFound(_)) => Err(Error::NotFound(format!(
                "Secret \"{}\" not found",
                name.trim()
            ))),
            Err(e) => Err(e),
            Ok((p, writer)) => {
                // A rollback: an older envelope stored again over a newer one.
                if let Some(newest_kept) = self.newest_kept(&path).await? {
                    if p.version < newest_kept {
                        return Err(Error::RolledBack {
                            name: name.trim().to_owned(),
                            version: p.version,
                            newest_kept,
                        });
                    }
                }
                Ok(Secret {
                    info: info(name, &p, writer),
                    value: p.value,
                })
            }
        }
    }

    /// Reads a secret's value.
    pub async fn get(&self, name: &str, scope: Option<&str>) -> Result<String> {
        self.read(name, scope).await.map(|s| s.value)
    }

    /// A secret's metadata (decrypts to read it; the value is not returned).
    pub async fn info(&self, name: &str, scope: Option<&str>) -> Result<SecretInfo> {
        self.read(name, scope).await.map(|s| s.info)
    }

    /// Replaces the value, keeping the previous version recoverable with [`Self::get_version`].
    pub async fn rotate(
        &self,
        name: &str,
        new_value: &str,
        scope: Option<&str>,
    ) -> Result<SecretInfo> {
        check_name(name)?;
        check_value(new_value)?;
        // Fails on a missing (or rolled-back) secret; `put` keeps the current one in history.
        self.read(name, scope).await?;
        self.put(name, new_value, scope).await
    }

    /// A previous version's value.
    pub async fn get_version(
        &self,
        name: &str,
        version: u64,
        scope: Option<&str>,
    ) -> Result<String> {
        let path = resolve_secret_path(name, scope)?;
        self.read_payload(&Self::history_path(&path, version))
            .await
            .map(|(p, _)| p.value)
    }

    /// The hashes that identify a secret's envelopes (the current value and every kept
    /// version) in its network's audit trail: the node records, per decrypt request, the
    /// canonical hash of the wrapped content key. Recomputed here rather than trusting the
    /// stored field. Needs only KV read access (no decrypt).
    pub async fn envelope_hashes(&self, name: &str, scope: Option<&str>) -> Result<Vec<String>> {
        let path = resolve_secret_path(name, scope)?;
        let mut paths = vec![path.clone()];
        paths.extend(self.kv().list(&Self::history_dir(&path)).await?);
        let mut hashes = Vec::new();
        for p in paths {
            let obj = match self.kv().get_capped(&p, MAX_ENVELOPE_BYTES).await {
                Ok(obj) => obj,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if let Ok(env) = serde_json::from_slice::<Envelope>(&obj.data) {
                hashes.push(crate::encryption::canonical_hash(&Value::String(
                    env.encrypted_symmetric_key,
                )));
            }
        }
        if hashes.is_empty() {
            return Err(Error::NotFound(format!(
                "Secret \"{}\" not found",
                name.trim()
            )));
        }
        Ok(hashes)
    }

    /// Secret names in a scope (every well-formed name, deny-listed ones included, so that
    /// the owner sees and can delete them).
    pub async fn list(&self, scope: Option<&str>) -> Result<Vec<String>> {
        let prefix = list_prefix(scope)?;
        let keys = self.kv().list(&prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|n| check_name_syntax(n).is_ok())
            .map(str::to_owned)
            .collect())
    }

    /// Deletes a secret (its history stays until deleted separately).
    pub async fn delete(&self, name: &str, scope: Option<&str>) -> Result<()> {
        let path = resolve_secret_path(name, scope)?;
        self.kv().delete(&path, None).await.map(|_| ())
    }

    /// Shares secrets with `to` for `secs` seconds: one delegation, one signature, granting
    /// `tinycloud.kv/get` on each secret's path and `tinycloud.encryption/decrypt` on the
    /// network. The grantee never receives the network key.
    pub async fn grant(
        &self,
        names: &[&str],
        scope: Option<&str>,
        to: &Did,
        secs: i64,
    ) -> Result<PortableDelegation> {
        if names.is_empty() {
            return Err(Error::InvalidInput(
                "name at least one secret to share".into(),
            ));
        }
        self.client.ensure_network(&self.network).await?;
        let mut caps = Vec::new();
        for n in names {
            check_name(n)?;
            let path = resolve_secret_path(n, scope)?;
            caps.push(
                capability(&format!("{}/kv/{path}", self.space), "tinycloud.kv/get")
                    .map_err(Error::InvalidInput)?,
            );
        }
        caps.push(
            capability(&self.network.to_string(), "tinycloud.encryption/decrypt")
                .map_err(Error::InvalidInput)?,
        );
        self.client.delegate_to(to, caps, secs).await
    }
}

impl TinyCloud {
    /// The signed-in owner's secrets (space `secrets`, network `default`).
    pub fn secrets(&self) -> Result<Secrets<'_>> {
        let s = self.active_session()?;
        let space: SpaceId =
            s.tinycloud_session.space_id.parse().map_err(
                |e: tinycloud_auth::resource::ResourceError| Error::Storage(e.to_string()),
            )?;
        self.secrets_of(space.owner())
    }

    /// The secrets of `owner` (for a delegate holding grants on them).
    pub fn secrets_of(&self, owner: &Did) -> Result<Secrets<'_>> {
        Ok(Secrets {
            client: self,
            space: SpaceId::new(owner.clone(), "secrets")
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            network: NetworkId::new(owner.clone(), "default")
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            proof_status: Mutex::new(HashMap::new()),
            owner_keys: self.owner_session_keys(),
        })
    }
}

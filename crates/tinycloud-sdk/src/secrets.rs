//! The secret manager's convention on top of KV and encryption networks: values live in the
//! owner's `secrets` space at `vault/secrets/<NAME>` (or `vault/secrets/scoped/<scope>/<NAME>`),
//! encrypted to the owner's `default` network before they leave the client. Reading needs two
//! grants: `tinycloud.kv/get` on the path and `tinycloud.encryption/decrypt` on the network.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_auth::session::capability;

use crate::client::TinyCloud;
use crate::delegation::PortableDelegation;
use crate::encryption::Envelope;
use crate::error::{Error, Result};
use crate::kv::PutOptions;
use crate::session::now;

/// Checks a secret name: `^[A-Z][A-Z0-9_]*$` (after trimming).
pub fn check_name(name: &str) -> Result<&str> {
    let n = name.trim();
    let ok = n.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && n.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(n)
    } else {
        Err(Error::InvalidInput(format!(
            "invalid secret name {name:?}: use A-Z, 0-9 and _, starting with a letter"
        )))
    }
}

/// Canonicalizes a scope: lower case, other characters to `-`, runs collapsed, trimmed;
/// `default` and `global` are reserved.
pub fn canonical_scope(scope: &str) -> Result<String> {
    let t = scope.trim();
    if t.is_empty() {
        return Err(Error::InvalidInput(
            "Secret scope must be non-empty; omit scope for global secrets.".into(),
        ));
    }
    let mut out = String::new();
    for c in t.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        return Err(Error::InvalidInput(
            "Secret scope must contain at least one letter or number.".into(),
        ));
    }
    if out == "default" || out == "global" {
        return Err(Error::InvalidInput(format!(
            "Secret scope {out:?} is reserved; omit scope for global secrets."
        )));
    }
    Ok(out)
}

/// The KV path of a secret: `vault/secrets/<NAME>` or `vault/secrets/scoped/<scope>/<NAME>`.
pub fn resolve_secret_path(name: &str, scope: Option<&str>) -> Result<String> {
    let n = check_name(name)?;
    Ok(match scope {
        None => format!("vault/secrets/{n}"),
        Some(s) => format!("vault/secrets/scoped/{}/{n}", canonical_scope(s)?),
    })
}

/// The list prefix of a scope.
pub fn list_prefix(scope: Option<&str>) -> Result<String> {
    Ok(match scope {
        None => "vault/secrets/".into(),
        Some(s) => format!("vault/secrets/scoped/{}/", canonical_scope(s)?),
    })
}

/// What is encrypted: the value and its bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretPayload {
    /// The secret.
    pub value: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Increases on every rotation.
    #[serde(default = "one")]
    pub version: u64,
}

fn one() -> u64 {
    1
}

/// Secret metadata (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// The secrets of one `secrets` space.
pub struct Secrets<'a> {
    client: &'a TinyCloud,
    space: SpaceId,
    network: NetworkId,
}

fn rfc3339_now() -> String {
    now()
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The associated data binding a vault value to where it is stored.
pub fn aad(space: &SpaceId, path: &str) -> Vec<u8> {
    // Binds the ciphertext to where it is stored: moving it elsewhere makes it undecryptable.
    format!(
        "tinycloud.vault:{space}:{}",
        path.trim_start_matches("vault/")
    )
    .into_bytes()
}

impl<'a> Secrets<'a> {
    fn kv(&self) -> crate::kv::Kv<'a> {
        self.client.kv_in(self.space.clone())
    }

    /// Where a previous version is kept: beside the secret, under `.history/`, so the owner's
    /// vault grant covers it while a grant on one secret's path does not.
    fn history_path(path: &str, version: u64) -> String {
        format!("{}{version}", Self::history_dir(path))
    }

    /// The folder holding a secret's previous versions (ends with `/`).
    fn history_dir(path: &str) -> String {
        match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.history/{name}/"),
            None => format!(".history/{path}/"),
        }
    }

    /// Stores (or replaces) a secret, encrypted to the owner's network.
    pub async fn put(&self, name: &str, value: &str, scope: Option<&str>) -> Result<SecretInfo> {
        let path = resolve_secret_path(name, scope)?;
        let previous = self.read_payload(&path).await.ok();
        let now = rfc3339_now();
        let payload = SecretPayload {
            value: value.to_owned(),
            created_at: previous
                .as_ref()
                .map_or(now.clone(), |p| p.created_at.clone()),
            updated_at: now,
            version: previous.as_ref().map_or(1, |p| p.version + 1),
        };
        self.write_payload(&path, &payload).await?;
        Ok(info(name, &payload))
    }

    async fn write_payload(&self, path: &str, payload: &SecretPayload) -> Result<()> {
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
        let plaintext =
            serde_json::to_vec(payload).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let env = Envelope::seal(&network, &plaintext, &aad(&self.space, path), meta);
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
        Ok(())
    }

    async fn read_payload(&self, path: &str) -> Result<SecretPayload> {
        let obj = self.kv().get(path).await?;
        let env: Envelope = serde_json::from_slice(&obj.data)
            .map_err(|_| Error::Token("stored value is not an encryption envelope".into()))?;
        let plain = self.client.decrypt(&env, &aad(&self.space, path)).await?;
        serde_json::from_slice(&plain)
            .map_err(|_| Error::Token("decrypted value is not a secret payload".into()))
    }

    /// Reads a secret's value.
    pub async fn get(&self, name: &str, scope: Option<&str>) -> Result<String> {
        let path = resolve_secret_path(name, scope)?;
        match self.read_payload(&path).await {
            Err(Error::NotFound(_)) => Err(Error::NotFound(format!(
                "Secret \"{}\" not found",
                name.trim()
            ))),
            other => other.map(|p| p.value),
        }
    }

    /// A secret's metadata (decrypts to read it; the value is not returned).
    pub async fn info(&self, name: &str, scope: Option<&str>) -> Result<SecretInfo> {
        let path = resolve_secret_path(name, scope)?;
        self.read_payload(&path).await.map(|p| info(name, &p))
    }

    /// Replaces the value, keeping the previous version recoverable with [`Self::get_version`].
    pub async fn rotate(
        &self,
        name: &str,
        new_value: &str,
        scope: Option<&str>,
    ) -> Result<SecretInfo> {
        let path = resolve_secret_path(name, scope)?;
        let current = self.read_payload(&path).await?;
        self.write_payload(&Self::history_path(&path, current.version), &current)
            .await?;
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
            .map(|p| p.value)
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
            let obj = match self.kv().get(&p).await {
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

    /// Secret names in a scope.
    pub async fn list(&self, scope: Option<&str>) -> Result<Vec<String>> {
        let prefix = list_prefix(scope)?;
        let keys = self.kv().list(&prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|n| check_name(n).is_ok())
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

fn info(name: &str, p: &SecretPayload) -> SecretInfo {
    SecretInfo {
        name: name.trim().to_owned(),
        version: p.version,
        created_at: p.created_at.clone(),
        updated_at: p.updated_at.clone(),
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check_name(".history").is_err());
    }

    #[test]
    fn paths_follow_the_convention() {
        assert_eq!(
            resolve_secret_path("API_KEY", None).unwrap(),
            "vault/secrets/API_KEY"
        );
        assert_eq!(
            resolve_secret_path(" API_KEY ", None).unwrap(),
            "vault/secrets/API_KEY"
        );
        assert_eq!(
            resolve_secret_path("DB_URL", Some("  My App!! v2 ")).unwrap(),
            "vault/secrets/scoped/my-app-v2/DB_URL"
        );
        for bad in ["api_key", "1KEY", "", "KEY-1", "KÉY"] {
            assert!(resolve_secret_path(bad, None).is_err(), "{bad:?}");
        }
        for bad in ["", "  ", "!!!", "default", "Global", "--"] {
            assert!(canonical_scope(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            list_prefix(Some("prod")).unwrap(),
            "vault/secrets/scoped/prod/"
        );
    }
}

//! App manifests: what an app asks for, turned into the capability request a person signs.
//!
//! Resolution follows the reference: default tiers (`true` = KV get/put/del/list/metadata and
//! SQL read/write, `"admin"` adds SQL schema, `"all"` adds DuckDB, `false` none) in the app's
//! space under its prefix; explicit permissions; `secrets{}` in its `true` / string / array /
//! object forms; `tinycloud.vault` expanded to KV on `vault/…`; `capabilities/read` added for
//! every space named; decrypt on the owner's own network adds `network.create`. The result is
//! shown to the user as plain text before signing ([`consent`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use tinycloud_auth::capability::Capability;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_auth::session::capability;
use tinycloud_auth::text::{consent_text, RenderContext};
use tinycloud_auth::timestamp::Timestamp;

use crate::error::{Error, Result};
use crate::secrets::{canonical_scope, check_name};

/// One requested permission as written in a manifest.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionEntry {
    /// Long service name (`tinycloud.kv`, `tinycloud.sql`, `tinycloud.vault`, …).
    pub service: String,
    /// Space name or full space id (default: the manifest's space).
    #[serde(default)]
    pub space: Option<String>,
    /// Path (prefixed with the app prefix unless `skipPrefix`).
    #[serde(default)]
    pub path: String,
    /// Actions, short (`get`) or full (`tinycloud.kv/get`).
    pub actions: Vec<String>,
    /// Do not apply the app prefix.
    #[serde(default)]
    pub skip_prefix: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// An app manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// Only 1.
    #[serde(default)]
    pub manifest_version: Option<u32>,
    /// Reverse-DNS id.
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// Lifetime of the grant (`30d`, `12h`, …; default 30 days).
    #[serde(default)]
    pub expiry: Option<String>,
    /// Default space (default `applications`).
    #[serde(default)]
    pub space: Option<String>,
    /// Path prefix (default `app_id`; `""` disables).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Default tier: `true`, `false`, `"admin"`, `"all"`.
    #[serde(default)]
    pub defaults: Option<Value>,
    /// Explicit permissions.
    #[serde(default)]
    pub permissions: Vec<PermissionEntry>,
    /// Secrets the app reads or writes.
    #[serde(default)]
    pub secrets: Map<String, Value>,
}

/// A resolved permission: service, space, path and full actions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resolved {
    /// Long service name (`tinycloud.kv`, …, or `tinycloud.encryption`).
    pub service: String,
    /// Space name or id (`encryption` for networks).
    pub space: String,
    /// Path (network URN for encryption).
    pub path: String,
    /// Full actions, sorted.
    pub actions: Vec<String>,
}

/// Parses durations like `500ms`, `30s`, `15m`, `12h`, `30d`, `2w`, `1y` into milliseconds.
pub fn parse_ms(s: &str) -> Result<i64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| Error::InvalidInput(format!("invalid expiry {s:?}")))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        other => {
            return Err(Error::InvalidInput(format!(
                "invalid expiry unit {other:?}"
            )))
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::InvalidInput(format!("invalid expiry {s:?}")))
}

type Entries = BTreeMap<(String, String, String), Vec<String>>;

/// Adds actions to the entry for (service, space, path), keeping them unique.
fn add(out: &mut Entries, service: &str, space: &str, path: String, actions: Vec<String>) {
    let e = out
        .entry((service.to_owned(), space.to_owned(), path))
        .or_default();
    for a in actions {
        if !e.contains(&a) {
            e.push(a);
        }
    }
}

fn full_action(service: &str, action: &str) -> String {
    if action.contains('/') {
        action.to_owned()
    } else {
        format!("{service}/{action}")
    }
}

fn vault_action(a: &str) -> Result<&'static str> {
    let short = a.rsplit('/').next().unwrap_or(a);
    Ok(match short {
        "read" | "get" | "head" => "tinycloud.kv/get",
        "write" | "put" => "tinycloud.kv/put",
        "delete" | "del" => "tinycloud.kv/del",
        "list" => "tinycloud.kv/list",
        "metadata" => "tinycloud.kv/metadata",
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown vault action {other:?}"
            )))
        }
    })
}

impl Manifest {
    /// Parses and validates JSON.
    pub fn from_json(text: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("invalid manifest: {e}")))?;
        if m.manifest_version.is_some_and(|v| v != 1) {
            return Err(Error::InvalidInput("manifest_version must be 1".into()));
        }
        if m.app_id.trim().is_empty() || m.name.trim().is_empty() {
            return Err(Error::InvalidInput("manifest needs app_id and name".into()));
        }
        if let Some(e) = &m.expiry {
            parse_ms(e)?;
        }
        Ok(m)
    }

    /// The grant lifetime in milliseconds (default 30 days).
    pub fn expiry_ms(&self) -> Result<i64> {
        parse_ms(self.expiry.as_deref().unwrap_or("30d"))
    }

    fn prefixed(&self, path: &str, skip: bool) -> String {
        let prefix = self.prefix.clone().unwrap_or_else(|| self.app_id.clone());
        if skip || prefix.is_empty() {
            return path.to_owned();
        }
        match path.strip_prefix('/') {
            Some(rest) => format!("{prefix}/{rest}"),
            None if path.is_empty() => format!("{prefix}/"),
            None => format!("{prefix}/{path}"),
        }
    }

    /// Resolves into permissions (deduplicated by service, space and path; actions unioned).
    pub fn resolve(&self) -> Result<Vec<Resolved>> {
        let space = self.space.clone().unwrap_or_else(|| "applications".into());
        let mut out: Entries = BTreeMap::new();
        let tier = match &self.defaults {
            None | Some(Value::Bool(true)) => "true".to_owned(),
            Some(Value::Bool(false)) => "false".to_owned(),
            Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
                "admin" => "admin".into(),
                "all" => "all".into(),
                "false" | "none" => "false".into(),
                _ => "true".into(),
            },
            Some(_) => "true".into(),
        };
        if tier != "false" {
            let kv = ["get", "put", "del", "list", "metadata"].map(|a| format!("tinycloud.kv/{a}"));
            add(
                &mut out,
                "tinycloud.kv",
                &space,
                self.prefixed("/", false),
                kv.to_vec(),
            );
            let mut sql = vec![
                "tinycloud.sql/read".to_owned(),
                "tinycloud.sql/write".to_owned(),
            ];
            if tier == "admin" || tier == "all" {
                sql.push("tinycloud.sql/schema".into());
            }
            add(
                &mut out,
                "tinycloud.sql",
                &space,
                self.prefixed("/", false),
                sql,
            );
            if tier == "all" {
                add(
                    &mut out,
                    "tinycloud.duckdb",
                    &space,
                    self.prefixed("/", false),
                    vec![
                        "tinycloud.duckdb/read".into(),
                        "tinycloud.duckdb/write".into(),
                    ],
                );
            }
        }
        for p in &self.permissions {
            if p.actions.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "permission on {} has no actions",
                    p.service
                )));
            }
            match p.service.as_str() {
                "tinycloud.vault" => {
                    let path = format!("vault/{}", p.path.trim_start_matches('/'));
                    let actions = p
                        .actions
                        .iter()
                        .map(|a| vault_action(a).map(str::to_owned))
                        .collect::<Result<_>>()?;
                    add(
                        &mut out,
                        "tinycloud.kv",
                        p.space.as_deref().unwrap_or("secrets"),
                        path,
                        actions,
                    );
                }
                "tinycloud.encryption" => {
                    p.path
                        .parse::<NetworkId>()
                        .map_err(|e| Error::InvalidInput(e.to_string()))?;
                    let actions = p
                        .actions
                        .iter()
                        .map(|a| full_action("tinycloud.encryption", a))
                        .collect();
                    add(
                        &mut out,
                        "tinycloud.encryption",
                        "encryption",
                        p.path.clone(),
                        actions,
                    );
                }
                service => {
                    let actions = p.actions.iter().map(|a| full_action(service, a)).collect();
                    let path = self.prefixed(&p.path, p.skip_prefix);
                    add(
                        &mut out,
                        service,
                        p.space.as_deref().unwrap_or(&space),
                        path,
                        actions,
                    );
                }
            }
        }
        for (key, spec) in &self.secrets {
            let (name, scope, actions): (String, Option<String>, Vec<String>) = match spec {
                Value::Bool(true) => (key.clone(), None, vec!["read".into()]),
                Value::String(a) => (key.clone(), None, vec![a.clone()]),
                Value::Array(a) => (
                    key.clone(),
                    None,
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                ),
                Value::Object(o) => (
                    o.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(key)
                        .to_owned(),
                    o.get("scope").and_then(Value::as_str).map(str::to_owned),
                    match o.get("actions") {
                        Some(Value::String(a)) => vec![a.clone()],
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect(),
                        _ => vec!["read".into()],
                    },
                ),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "invalid secret spec for {key}"
                    )))
                }
            };
            let name = check_name(&name)?.to_owned();
            let path = match scope {
                Some(s) => format!("vault/secrets/scoped/{}/{name}", canonical_scope(&s)?),
                None => format!("vault/secrets/{name}"),
            };
            let actions = actions
                .iter()
                .map(|a| vault_action(a).map(str::to_owned))
                .collect::<Result<_>>()?;
            add(&mut out, "tinycloud.kv", "secrets", path, actions);
        }
        let spaces: Vec<String> = out
            .keys()
            .filter(|(s, sp, _)| s != "tinycloud.encryption" && !sp.is_empty())
            .map(|(_, sp, _)| sp.clone())
            .collect();
        for sp in spaces {
            add(
                &mut out,
                "tinycloud.capabilities",
                &sp,
                String::new(),
                vec!["tinycloud.capabilities/read".into()],
            );
        }
        Ok(out
            .into_iter()
            .map(|((service, space, path), mut actions)| {
                actions.sort();
                Resolved {
                    service,
                    space,
                    path,
                    actions,
                }
            })
            .collect())
    }

    /// The capabilities `owner` signs for this manifest.
    pub fn capabilities(&self, owner: &Did) -> Result<Vec<Capability>> {
        let mut caps = Vec::new();
        for r in self.resolve()? {
            if r.service == "tinycloud.encryption" {
                let net: NetworkId =
                    r.path
                        .parse()
                        .map_err(|e: tinycloud_auth::resource::ResourceError| {
                            Error::InvalidInput(e.to_string())
                        })?;
                let mut actions = r.actions.clone();
                if net.owner() == owner
                    && actions.iter().any(|a| a == "tinycloud.encryption/decrypt")
                    && !actions.iter().any(|a| a.ends_with("/network.create"))
                {
                    actions.push("tinycloud.encryption/network.create".into());
                }
                for a in actions {
                    caps.push(capability(&net.to_string(), &a).map_err(Error::InvalidInput)?);
                }
                continue;
            }
            let space = if r.space.starts_with("tinycloud:") {
                r.space
                    .parse::<SpaceId>()
                    .map_err(|e| Error::InvalidInput(e.to_string()))?
            } else {
                SpaceId::new(owner.clone(), &r.space)
                    .map_err(|e| Error::InvalidInput(e.to_string()))?
            };
            let short = r.service.strip_prefix("tinycloud.").unwrap_or(&r.service);
            let res = if r.path.is_empty() {
                format!("{space}/{short}")
            } else {
                format!("{space}/{short}/{}", r.path)
            };
            for a in &r.actions {
                caps.push(capability(&res, a).map_err(Error::InvalidInput)?);
            }
        }
        Ok(caps)
    }
}

/// The plain-language text shown before signing a manifest's request.
pub fn consent(manifest: &Manifest, owner: &Did, expires: Timestamp) -> Result<String> {
    let caps = manifest.capabilities(owner)?;
    Ok(consent_text(
        &format!("{} ({})", manifest.name, manifest.app_id),
        &caps,
        &RenderContext {
            viewer: Some(owner.clone()),
            expiration: Some(expires),
        },
    ))
}

impl crate::client::TinyCloud {
    /// Signs in with exactly what `manifest` asks for (its consent text should have been shown
    /// first, see [`consent`]); afterwards creates the owner's encryption networks the
    /// manifest decrypts on.
    pub async fn sign_in_with_manifest(
        &self,
        signer: &dyn crate::signer::Signer,
        manifest: &Manifest,
    ) -> Result<crate::session::Session> {
        let owner = Did::pkh(signer.chain_id().await?, signer.address().await?)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let caps = manifest.capabilities(&owner)?;
        let client = crate::client::TinyCloud::new(crate::client::Config {
            capabilities: Some(caps.clone()),
            space_name: manifest
                .space
                .clone()
                .unwrap_or_else(|| "applications".into()),
            session_secs: manifest.expiry_ms()? / 1000,
            ..self.config().clone()
        })?;
        let session = client.sign_in(signer).await?;
        self.set_session(Some(session.clone()));
        for cap in &caps {
            if let tinycloud_auth::resource::Resource::Network(n) = &cap.resource {
                if n.owner() == &owner && cap.ability.name() == "network.create" {
                    self.ensure_network(n).await?;
                }
            }
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

    #[test]
    fn reference_example_resolves_as_documented() {
        let m = Manifest::from_json(&format!(
            r#"{{ "app_id": "com.example.notes", "name": "Notes", "defaults": true,
              "permissions": [ {{"service":"tinycloud.encryption","path":"urn:tinycloud:encryption:{OWNER}:default","actions":["decrypt"]}} ],
              "secrets": {{ "OPENAI_API_KEY": true, "GITHUB_TOKEN": {{"scope":"My Agent","actions":["read","write"]}} }} }}"#
        ))
        .unwrap();
        let r = m.resolve().unwrap();
        let find = |svc: &str, space: &str, path: &str| {
            r.iter()
                .find(|x| x.service == svc && x.space == space && x.path == path)
                .cloned()
        };
        assert_eq!(
            find("tinycloud.kv", "applications", "com.example.notes/")
                .unwrap()
                .actions
                .len(),
            5
        );
        assert_eq!(
            find("tinycloud.sql", "applications", "com.example.notes/")
                .unwrap()
                .actions,
            ["tinycloud.sql/read", "tinycloud.sql/write"]
        );
        assert_eq!(
            find("tinycloud.kv", "secrets", "vault/secrets/OPENAI_API_KEY")
                .unwrap()
                .actions,
            ["tinycloud.kv/get"]
        );
        assert_eq!(
            find(
                "tinycloud.kv",
                "secrets",
                "vault/secrets/scoped/my-agent/GITHUB_TOKEN"
            )
            .unwrap()
            .actions,
            ["tinycloud.kv/get", "tinycloud.kv/put"]
        );
        assert!(find("tinycloud.capabilities", "applications", "").is_some());
        assert!(find("tinycloud.capabilities", "secrets", "").is_some());
        let owner: Did = OWNER.parse().unwrap();
        let caps = m.capabilities(&owner).unwrap();
        assert!(
            caps.iter()
                .any(|c| c.ability.to_string() == "tinycloud.encryption/network.create"),
            "own network: create added"
        );
        let other: Did = "did:pkh:eip155:1:0x0000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        assert!(
            !m.capabilities(&other)
                .unwrap()
                .iter()
                .any(|c| c.ability.to_string() == "tinycloud.encryption/network.create"),
            "foreign network: no create"
        );
        let text = consent(&m, &owner, Timestamp::from_secs(1_800_000_000)).unwrap();
        assert!(
            text.starts_with("Allow Notes (com.example.notes) to:"),
            "{text}"
        );
        assert!(
            text.contains("files under com.example.notes/ in your “applications” space"),
            "{text}"
        );
    }

    #[test]
    fn vault_shorthand_and_validation() {
        let m = Manifest::from_json(r#"{"app_id":"a","name":"A","defaults":false,"prefix":"","permissions":[{"service":"tinycloud.vault","path":"/secrets/X","actions":["read","list"]}]}"#).unwrap();
        let r = m.resolve().unwrap();
        assert_eq!(r[1].path, "vault/secrets/X");
        assert_eq!(r[1].actions, ["tinycloud.kv/get", "tinycloud.kv/list"]);
        assert!(Manifest::from_json(r#"{"app_id":"","name":"A"}"#).is_err());
        assert!(Manifest::from_json(r#"{"app_id":"a","name":"A","expiry":"soon"}"#).is_err());
        assert!(Manifest::from_json(r#"{"app_id":"a","name":"A","manifest_version":2}"#).is_err());
        assert!(
            Manifest::from_json(r#"{"app_id":"a","name":"A","secrets":{"bad-name":true}}"#)
                .unwrap()
                .resolve()
                .is_err()
        );
        assert!(
            Manifest::from_json(r#"{"app_id":"a","name":"A","secrets":{"X":"sudo"}}"#)
                .unwrap()
                .resolve()
                .is_err()
        );
        assert_eq!(parse_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_ms("500ms").unwrap(), 500);
    }
}

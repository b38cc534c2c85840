//! The vault a profile acts on: the owner whose secrets they are (the signed-in owner, or
//! the one a delegate's delegation names), the names it may read, and what a failed operation
//! means for the user (never including a value).

use anyhow::Result;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{path_extends, NetworkId, Resource, SpaceId};
use tinycloud_sdk::secrets::{self as sdk, Secrets};
use tinycloud_sdk::{Error as SdkError, TinyCloud};

use super::args::label;
use super::SPACE;
use crate::commands::auth::profile_owner_signer;
use crate::commands::Ctx;
use crate::error::{CliError, Exit};
use crate::profile::{Posture, Profile};

/// The owner whose secrets this profile acts on: the signed-in owner, or for a delegate the
/// owner named by its delegation (a `secrets` space or an encryption network), else the owner
/// of the delegation's space.
pub(super) fn secrets_owner(profile: &Profile, client: &TinyCloud) -> Result<Did> {
    if profile.config.posture == Posture::LocalOwnerKey {
        return Ok(client.space()?.owner().clone());
    }
    let session = client.active_session()?;
    for c in session.capabilities()? {
        match &c.resource {
            Resource::Space(r) if r.space().name() == SPACE => {
                return Ok(r.space().owner().clone())
            }
            Resource::Network(n) => return Ok(n.owner().clone()),
            _ => {}
        }
    }
    if let Ok(space) = client.space() {
        return Ok(space.owner().clone());
    }
    profile
        .config
        .owner_did
        .as_deref()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| {
            CliError::usage("this profile's delegation does not name an owner's secrets")
                .hint("import a secrets grant: the owner runs `tc secrets grant NAME --to <your DID>`")
                .into()
        })
}

/// Secret names (exact, in the scope's directory) that `caps` let the holder read, and whether
/// they cover the whole directory (then listing finds the rest).
pub(super) fn granted_names(
    caps: &[Capability],
    space: &SpaceId,
    prefix: &str,
) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut whole = false;
    let Ok(get) = "tinycloud.kv/get".parse::<Ability>() else {
        return (names, whole);
    };
    for c in caps.iter().filter(|c| c.ability.covers(&get)) {
        let Resource::Space(r) = &c.resource else {
            continue;
        };
        if r.space() != space || r.service() != "kv" {
            continue;
        }
        match r.path() {
            None => whole = true,
            Some(path) => match path.strip_prefix(prefix) {
                Some("") => whole = true,
                Some(rest) if sdk::check_name(rest).is_ok_and(|n| n == rest) => {
                    names.push(rest.to_owned());
                }
                Some(_) => {}
                None if path_extends(prefix, path) => whole = true,
                None => {}
            },
        }
    }
    (names, whole)
}

/// A signed-in profile and the secrets it acts on.
pub(super) struct Vault {
    pub(super) profile: Profile,
    pub(super) client: TinyCloud,
    pub(super) owner: Did,
}

impl Vault {
    pub(super) fn open(ctx: &Ctx) -> Result<Vault> {
        let (profile, client) = ctx.session_client()?;
        let owner = secrets_owner(&profile, &client)?;
        Ok(Vault {
            profile,
            client,
            owner,
        })
    }

    pub(super) fn is_owner(&self) -> bool {
        self.profile.config.posture == Posture::LocalOwnerKey
    }

    pub(super) fn secrets(&self) -> Result<Secrets<'_>> {
        Ok(self.client.secrets_of(&self.owner)?)
    }

    pub(super) fn space(&self) -> Result<SpaceId, CliError> {
        SpaceId::new(self.owner.clone(), SPACE).map_err(|e| CliError::general(e.to_string()))
    }

    pub(super) fn network(&self, name: &str) -> Result<NetworkId, CliError> {
        if name.starts_with(NetworkId::PREFIX) {
            return name
                .parse()
                .map_err(|e| CliError::usage(format!("invalid network id: {e}")));
        }
        NetworkId::new(self.owner.clone(), name)
            .map_err(|e| CliError::usage(format!("invalid network name {name:?}: {e}")))
    }

    /// Writing secrets is the owner's: delegates are refused before anything is read.
    pub(super) fn require_owner(&self, verb: &str) -> Result<(), CliError> {
        if self.is_owner() {
            return Ok(());
        }
        Err(CliError::usage(format!(
            "profile {:?} is a delegate profile; only the owner can {verb} secrets",
            self.profile.config.name
        ))
        .hint("run this with the owner's profile (`tc -p <owner profile> secrets …`)"))
    }

    /// Hosts the owner's `secrets` space with the owner key (idempotent on the node).
    pub(super) async fn host_space(&self, ctx: &Ctx) -> Result<()> {
        let signer = profile_owner_signer(&self.profile)?;
        let space = self.space()?;
        self.client.host_space(&signer, &space).await?;
        ctx.out
            .note(&format!("Created your secrets space ({space})."));
        Ok(())
    }

    /// What a failed secret operation means for the user. Never includes a value.
    pub(super) fn failure(
        &self,
        e: SdkError,
        name: &str,
        scope: Option<&str>,
        verb: &str,
    ) -> anyhow::Error {
        let target = label(name, scope);
        match e {
            SdkError::NotFound(_) => {
                let hint = match scope {
                    Some(s) => format!("list them with `tc secrets ls --scope {s}`"),
                    None => "list them with `tc secrets ls`".into(),
                };
                CliError::new(
                    Exit::NotFound,
                    "NOT_FOUND",
                    format!("Secret {target} not found"),
                )
                .hint(hint)
                .into()
            }
            SdkError::PermissionDenied { message, missing } => {
                let detail = match &missing {
                    Some(m) => {
                        let (resource, ability) = m.split_once(" / ").unwrap_or((m.as_str(), ""));
                        format!("missing capability {ability} on {resource}")
                    }
                    None => message,
                };
                let scope_flag = scope.map(|s| format!(" --scope {s}")).unwrap_or_default();
                let hint = if self.is_owner() {
                    "this session does not cover the vault; sign in again with `tc auth login`"
                        .to_owned()
                } else if missing.is_none() {
                    format!(
                        "the delegation may have been revoked or may have expired; ask the owner for a new grant: `tc secrets grant {name}{scope_flag} --to {}`",
                        self.profile.config.session_did
                    )
                } else {
                    format!(
                        "reading a secret needs tinycloud.kv/get on it and tinycloud.encryption/decrypt on the owner's network; the owner grants both with `tc secrets grant {name}{scope_flag} --to {}`, then `tc delegate use <file>`",
                        self.profile.config.session_did
                    )
                };
                CliError::new(
                    Exit::PermissionDenied,
                    "PERMISSION_DENIED",
                    format!("permission denied: cannot {verb} secret {target}: {detail}"),
                )
                .hint(hint)
                .into()
            }
            SdkError::Token(m) => CliError::general(format!(
                "secret {target} cannot be decrypted: {m}"
            ))
            .hint("the stored value may have been tampered with or moved; store it again with `tc secrets put`")
            .into(),
            e @ SdkError::RolledBack { .. } => anyhow::Error::new(e),
            other => anyhow::Error::new(other).context(format!("cannot {verb} secret {target}")),
        }
    }

    /// The secrets of a scope this profile can read: the owner lists them; a delegate gets
    /// the names its delegation grants (plus a listing when it covers the whole directory).
    pub(super) async fn readable_names(&self, scope: Option<&str>) -> Result<Vec<String>> {
        let secrets = self.secrets()?;
        let mut names = if self.is_owner() {
            match secrets.list(scope).await {
                Ok(names) => names,
                // No `secrets` space yet: nothing stored.
                Err(SdkError::NotFound(_)) => vec![],
                Err(e) => return Err(anyhow::Error::new(e).context("cannot list secrets")),
            }
        } else {
            let prefix = sdk::list_prefix(scope)?;
            let session = self.client.active_session()?;
            let (mut names, whole) =
                granted_names(&session.capabilities()?, &self.space()?, &prefix);
            if whole {
                match secrets.list(scope).await {
                    Ok(listed) => names.extend(listed),
                    Err(SdkError::PermissionDenied { .. } | SdkError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            names
        };
        names.sort();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinycloud_auth::session::capability;

    const OWNER: &str = "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

    fn cap(resource: &str, ability: &str) -> Capability {
        capability(resource, ability).unwrap()
    }

    #[test]
    fn names_granted_by_a_delegation() {
        let owner: Did = OWNER.parse().unwrap();
        let space = SpaceId::new(owner.clone(), "secrets").unwrap();
        let other = SpaceId::new(owner.clone(), "default").unwrap();
        let caps = vec![
            cap(
                &format!("{space}/kv/vault/secrets/API_KEY"),
                "tinycloud.kv/get",
            ),
            cap(
                &format!("{space}/kv/vault/secrets/DB_URL"),
                "tinycloud.kv/get",
            ),
            cap(
                &format!("{space}/kv/vault/secrets/PUT_ONLY"),
                "tinycloud.kv/put",
            ),
            cap(
                &format!("{space}/kv/vault/secrets/scoped/prod/X"),
                "tinycloud.kv/get",
            ),
            cap(
                &format!("{other}/kv/vault/secrets/ELSEWHERE"),
                "tinycloud.kv/get",
            ),
            cap(
                &NetworkId::new(owner, "default").unwrap().to_string(),
                "tinycloud.encryption/decrypt",
            ),
        ];
        let (names, whole) = granted_names(&caps, &space, "vault/secrets/");
        assert_eq!(names, ["API_KEY", "DB_URL"]);
        assert!(!whole);
        let (names, whole) = granted_names(&caps, &space, "vault/secrets/scoped/prod/");
        assert_eq!(names, ["X"]);
        assert!(!whole);
        let dir = [cap(&format!("{space}/kv/vault/"), "tinycloud.kv/get")];
        assert_eq!(
            granted_names(&dir, &space, "vault/secrets/"),
            (vec![], true)
        );
    }
}

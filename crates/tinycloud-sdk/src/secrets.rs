//! The secret manager's convention on top of KV and encryption networks: values live in the
//! owner's `secrets` space at `vault/secrets/<NAME>` (or `vault/secrets/scoped/<scope>/<NAME>`),
//! encrypted to the owner's `default` network before they leave the client. Reading needs two
//! grants: `tinycloud.kv/get` on the path and `tinycloud.encryption/decrypt` on the network.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, Resource, SpaceId};
use tinycloud_auth::session::capability;

use crate::client::TinyCloud;
use crate::delegation::{DelegationStatus, PortableDelegation};
use crate::encryption::{Envelope, WriterCheck};
use crate::error::{Error, Result};
use crate::kv::PutOptions;
use crate::session::now;

/// Names a secret may not have, because as an environment variable they change how a
/// process (its loader, shell, interpreter, VM, TLS stack, or a `tc` it runs) behaves rather
/// than carrying a value: a secret of that name would let whoever can write the vault run code
/// in every `secrets run`. Refused when storing, granting and running.
pub const DENIED_NAMES: &[&str] = &[
    // Where programs and libraries are found, and the shell's own behaviour.
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "GLOBIGNORE",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "ZDOTDIR",
    "TMPDIR",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    // The C library and the loader.
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "LOCPATH",
    "NLSPATH",
    // Interpreters and VMs.
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "RUBYOPT",
    "RUBYLIB",
    "PERLLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "DOTNET_STARTUP_HOOKS",
    "RUSTC_WRAPPER",
    "GOFLAGS",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    // Where network traffic goes (a planted proxy sees every request; a planted `NO_PROXY`
    // routes around the one the user relies on), and which Docker daemon (and credential
    // helpers) a `docker` talks to.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    // TLS trust and key logging.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SSLKEYLOGFILE",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
];

/// Name prefixes refused for the same reason (`LD_PRELOAD`, `DYLD_INSERT_LIBRARIES`,
/// `PYTHONSTARTUP`, `PERL5OPT`, `GIT_SSH_COMMAND`, exported bash functions, npm's config,
/// `tc`'s and the node's own settings, …).
pub const DENIED_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "PERL5",
    "GIT_",
    "BASH_FUNC_",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "NPM_CONFIG_",
    "MALLOC_",
    "CORECLR_",
    "COR_",
    "TC_",
    "TINYCLOUD_",
];

/// Why `name` may not be a secret, if it is on the deny list.
pub fn denied(name: &str) -> Option<&'static str> {
    if DENIED_NAMES.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some("as an environment variable it changes how programs run")
    } else {
        None
    }
}

/// Checks a secret name's form: `^[A-Z][A-Z0-9_]*$` (after trimming). Names on the deny list
/// pass (so they can be read, listed and deleted); see [`check_name`].
pub fn check_name_syntax(name: &str) -> Result<&str> {
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

/// Checks a name a secret may be stored, granted or run under: [`check_name_syntax`] and not
/// on the deny list ([`DENIED_NAMES`], [`DENIED_PREFIXES`]).
pub fn check_name(name: &str) -> Result<&str> {
    let n = check_name_syntax(name)?;
    match denied(n) {
        Some(why) => Err(Error::InvalidInput(format!(
            "secret name {n} is refused: {why}"
        ))),
        None => Ok(n),
    }
}

/// Checks a value: an environment cannot carry a NUL byte, so such a value could never be
/// run with.
pub fn check_value(value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(
            "a secret value cannot contain a NUL byte (environment variables cannot carry one)"
                .into(),
        ));
    }
    Ok(())
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
    let n = check_name_syntax(name)?;
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
    /// Who wrote the stored envelope.
    pub writer: Writer,
}

/// Who wrote a stored secret, from the envelope's writer signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// One of the owner's own session keys (known to this client, see
    /// [`TinyCloud::owner_session_keys`]; its proof is the owner's delegation to that key,
    /// granting `kv/put` there): the owner.
    Owner(Did),
    /// Another key, e.g. a delegate or co-writer holding write access (even one granted by
    /// the owner's wallet), or an owner session key this client does not know (another
    /// device's): its `did:key`. Also a key whose owner proof the node does not know.
    Other(Did),
    /// A key acting under the owner's proof, but the node reports that proof (or an ancestor)
    /// revoked: a retired or stolen session key. Not the owner.
    Revoked(Did),
    /// A key acting under the owner's proof, but the envelope's signed write time is outside
    /// the proof's validity window (or missing): written before the proof began or after it
    /// expired. Not the owner.
    Expired(Did),
    /// No writer signature (stored before writers were recorded, or by another client).
    Unsigned,
    /// A signature that does not verify: the envelope was altered or forged.
    Invalid,
}

impl Writer {
    /// Whether the vault's owner wrote it.
    pub fn is_owner(&self) -> bool {
        matches!(self, Writer::Owner(_))
    }

    /// The writer's DID, when the signature verifies.
    pub fn did(&self) -> Option<&Did> {
        match self {
            Writer::Owner(d) | Writer::Other(d) | Writer::Revoked(d) | Writer::Expired(d) => {
                Some(d)
            }
            Writer::Unsigned | Writer::Invalid => None,
        }
    }

    /// `owner`, `other`, `revoked`, `expired`, `unsigned` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Writer::Owner(_) => "owner",
            Writer::Other(_) => "other",
            Writer::Revoked(_) => "revoked",
            Writer::Expired(_) => "expired",
            Writer::Unsigned => "unsigned",
            Writer::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Writer::Owner(d) => write!(f, "owner ({d})"),
            Writer::Other(d) => write!(f, "{d} (not the owner)"),
            Writer::Revoked(d) => write!(f, "{d} (REVOKED owner session: not the owner)"),
            Writer::Expired(d) => write!(
                f,
                "{d} (written outside its owner session's validity: not the owner)"
            ),
            Writer::Unsigned => f.write_str("unknown (no writer signature)"),
            Writer::Invalid => f.write_str("INVALID writer signature"),
        }
    }
}

/// A secret read with its value.
#[derive(Clone, Debug)]
pub struct Secret {
    /// Its metadata (incl. the writer).
    pub info: SecretInfo,
    /// The value.
    pub value: String,
}

/// Largest stored envelope read (a 1 MiB value, base64, plus the writer's proof).
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// Signed metadata: the secret's version (plain, so `ls` shows it without a decrypt).
pub const META_VERSION: &str = "x-vault-secret-version";
/// Signed metadata: when this envelope was written (RFC 3339), checked against the writer's
/// proof.
pub const META_WRITTEN_AT: &str = "x-vault-written-at";

/// The signed version recorded in `env`'s metadata, if any.
pub fn signed_version(env: &Envelope) -> Option<u64> {
    env.metadata.get(META_VERSION).and_then(Value::as_u64)
}

/// The signed write time recorded in `env`'s metadata, if any.
pub fn signed_written_at(env: &Envelope) -> Option<&str> {
    env.metadata.get(META_WRITTEN_AT).and_then(Value::as_str)
}

/// Who wrote `env`, stored at `path` of `space`, judged from the envelope alone (no I/O): the
/// owner if the writer signature verifies, the envelope's signed `aad` names this location,
/// the signing key is one of `owner_keys` (the owner's own session keys, as this client knows
/// them: [`TinyCloud::owner_session_keys`]), its proof is a delegation from the space's owner
/// to that key covering `kv/put` on the path, and `written_at` (the signed write time) lies
/// within the proof's validity window. Any other key is [`Writer::Other`], even one holding an
/// owner-signed `kv/put` grant (a co-writer granted by the owner's wallet is not the owner).
/// Whether the proof has since been revoked needs the node: [`Secrets::writer`] and
/// [`Secrets::read`] ask it.
pub fn writer_of(
    env: &Envelope,
    space: &SpaceId,
    path: &str,
    written_at: Option<&str>,
    owner_keys: &[Did],
) -> Writer {
    match env.check_writer() {
        WriterCheck::Unsigned => Writer::Unsigned,
        WriterCheck::Invalid => Writer::Invalid,
        WriterCheck::Signed { key, proof } => {
            // Moved from elsewhere: the location is signed, so this is not that write.
            if STANDARD.decode(&env.aad).ok().as_deref() != Some(aad(space, path).as_slice()) {
                return Writer::Invalid;
            }
            // Deny by default: only the owner's own session keys speak for the owner.
            if !owner_keys.contains(&key) {
                return Writer::Other(key);
            }
            let put = "tinycloud.kv/put".parse::<tinycloud_auth::ability::Ability>();
            let resource = format!("{space}/kv/{path}").parse::<Resource>();
            let Some(d) = proof.filter(|d| {
                matches!((&put, &resource), (Ok(put), Ok(resource))
                    if &d.info().issuer == space.owner() && d.info().grants(resource, put))
            }) else {
                return Writer::Other(key);
            };
            let Some(at) = written_at.and_then(tinycloud_auth::timestamp::Timestamp::parse_rfc3339)
            else {
                return Writer::Expired(key);
            };
            let info = d.info();
            // A SIWE sign-in without `notBefore` starts when it was issued.
            let start = info.not_before.or(match d.token() {
                tinycloud_auth::token::DelegationToken::Cacao(c) => Some(
                    tinycloud_auth::timestamp::Timestamp::from(c.message().issued_at.datetime()),
                ),
                _ => None,
            });
            if start.is_some_and(|n| at < n) || info.expiration.is_some_and(|e| at >= e) {
                return Writer::Expired(key);
            }
            Writer::Owner(space.owner().clone())
        }
    }
}

/// The CID of the proof `env`'s writer acted under, when the writer signature verifies.
fn proof_cid(env: &Envelope) -> Option<Cid> {
    match env.check_writer() {
        WriterCheck::Signed { proof: Some(d), .. } => Some(d.info().cid),
        _ => None,
    }
}

/// The secrets of one `secrets` space.
pub struct Secrets<'a> {
    client: &'a TinyCloud,
    space: SpaceId,
    network: NetworkId,
    /// What the node said of each writer proof, asked once per `Secrets`.
    proof_status: Mutex<HashMap<Cid, DelegationStatus>>,
    /// The owner's own session keys (from the client, when this `Secrets` was made).
    owner_keys: Vec<Did>,
}

fn rfc3339_now() -> String {
    now().to_rfc3339()
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
    async fn write_payload(&self, path: &str, payload: &SecretPayload) -> Result<Writer> {
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
    async fn envelope(&self, path: &str) -> Result<Envelope> {
        let obj = self.kv().get_capped(path, MAX_ENVELOPE_BYTES).await?;
        serde_json::from_slice(&obj.data)
            .map_err(|_| Error::Token("stored value is not an encryption envelope".into()))
    }

    /// [`writer_of`], then for an owner write: asks the node (once per proof) whether the
    /// proof is revoked. Revoked: [`Writer::Revoked`]; unknown to the node: [`Writer::Other`].
    async fn confirm_writer(&self, env: &Envelope, writer: Writer) -> Result<Writer> {
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

    async fn read_payload(&self, path: &str) -> Result<(SecretPayload, Writer)> {
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
    async fn newest_kept(&self, path: &str) -> Result<Option<u64>> {
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

fn info(name: &str, p: &SecretPayload, writer: Writer) -> SecretInfo {
    SecretInfo {
        name: name.trim().to_owned(),
        version: p.version,
        created_at: p.created_at.clone(),
        updated_at: p.updated_at.clone(),
        writer,
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
        assert!(check_name_syntax(".history").is_err());
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
        // Deny-listed names have a path (to read or delete a planted one) but are refused.
        assert!(resolve_secret_path("LD_PRELOAD", None).is_ok());
        for denied in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "IFS",
            "NODE_OPTIONS",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "GIT_SSH_COMMAND",
            "BASH_FUNC_X",
            "TC_HOME",
        ] {
            let e = check_name(denied).unwrap_err().to_string();
            assert!(e.contains("changes how programs run"), "{denied}: {e}");
        }
        for fine in [
            "API_KEY",
            "PATHS_FILE",
            "OPENAI_API_KEY",
            "DATABASE_URL",
            "ENVIRONMENT",
        ] {
            assert_eq!(check_name(fine).unwrap(), fine);
        }
        assert!(check_value("a\0b").is_err());
        assert!(check_value("ok").is_ok());
        for bad in ["", "  ", "!!!", "default", "Global", "--"] {
            assert!(canonical_scope(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            list_prefix(Some("prod")).unwrap(),
            "vault/secrets/scoped/prod/"
        );
    }
}

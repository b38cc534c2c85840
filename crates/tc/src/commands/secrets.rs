//! `tc secrets …`: the secret manager on top of the SDK's convention (values encrypted to the
//! owner's `default` network, stored in the owner's `secrets` space, decrypted through the
//! node). Values come from stdin or a hidden prompt, never from the command line, and are never
//! printed (except by `get`), logged, written to disk or put in a child's argv.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Read as _};

use anyhow::Result;
use serde_json::{json, Value};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{path_extends, NetworkId, Resource, SpaceId};
use tinycloud_auth::session::capability;
use tinycloud_sdk::secrets::{self as sdk, Secrets};
use tinycloud_sdk::{Error as SdkError, TinyCloud};

use super::auth::{consent, delegation_end, ensure_held, parse_did, profile_owner_signer};
use super::{emit_document, Ctx};
use crate::cli::{SecretGrantArgs, SecretRunArgs, SecretValueArgs};
use crate::error::{ChildExit, CliError, Exit};
use crate::output::confirm;
use crate::profile::{Posture, Profile};
use tinycloud_sdk::terminal::field;

/// The space secrets live in.
const SPACE: &str = "secrets";
/// The network they are encrypted to.
const NETWORK: &str = "default";
/// Longest value accepted (secrets are small; this stops an accidental `< big.iso`).
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Checks a name's form without echoing it: a value typed where the name belongs must not be
/// printed. Deny-listed names pass (to read, list or delete a planted one).
fn name_syntax_arg(name: &str) -> Result<String, CliError> {
    sdk::check_name_syntax(name)
        .map(str::to_owned)
        .map_err(|_| {
            CliError::usage("invalid secret name: use A-Z, 0-9 and _, starting with a letter")
                .hint("e.g. OPENAI_API_KEY")
        })
}

/// A name a secret may be stored, granted or run under: well-formed and not on the deny list.
fn name_arg(name: &str) -> Result<String, CliError> {
    let n = name_syntax_arg(name)?;
    match sdk::denied(&n) {
        None => Ok(n),
        Some(why) => Err(CliError::usage(format!(
            "secret name {n} is refused: {why}"
        ))
        .hint("pick another name (e.g. APP_PATH); the list is in the README (tc secrets: names that are refused)")),
    }
}

/// Longest `--env-file` read.
const MAX_ENV_FILE_BYTES: u64 = 64 * 1024;

/// The names listed in an `--env-file`: one per line, blank lines and `#` comments skipped.
fn names_from_file(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let text = super::read_capped_file(path, MAX_ENV_FILE_BYTES)?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(name_arg)
        .collect()
}

/// The canonical scope, if one is given.
fn scope_arg(scope: Option<&str>) -> Result<Option<String>, CliError> {
    scope
        .map(|s| {
            sdk::canonical_scope(s).map_err(|e| match e {
                SdkError::InvalidInput(m) => CliError::usage(m),
                other => CliError::usage(other.to_string()),
            })
        })
        .transpose()
}

/// `"NAME"` or `"NAME" in scope "s"`.
fn label(name: &str, scope: Option<&str>) -> String {
    match scope {
        Some(s) => format!("\"{name}\" in scope \"{s}\""),
        None => format!("\"{name}\""),
    }
}

/// Adds `scope` to a JSON result when one was given.
fn with_scope(mut value: Value, scope: Option<&str>) -> Value {
    if let (Some(s), Some(obj)) = (scope, value.as_object_mut()) {
        obj.insert("scope".into(), json!(s));
    }
    value
}

/// `put`/`rotate` refuse a value passed as an argument, without repeating it.
fn refuse_value_in_argv(args: &SecretValueArgs, verb: &str) -> Result<(), CliError> {
    if args.value_in_argv.is_empty() {
        return Ok(());
    }
    Err(CliError::usage(
        "secret values are not accepted as arguments (they would stay in shell history and show in the process list); nothing was stored",
    )
    .hint(format!(
        "pipe the value: printf '%s' \"$VALUE\" | tc secrets {verb} NAME --stdin, or run `tc secrets {verb} NAME` in a terminal to type it at a hidden prompt"
    )))
}

/// Removes one trailing line ending (`echo value |` adds one).
fn strip_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// The value: stdin when asked or piped, else typed twice at a hidden prompt.
fn read_value(from_stdin: bool, name: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let value = if from_stdin || !stdin.is_terminal() {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(CliError::usage(format!(
                "the value is larger than {} KiB; nothing was stored",
                MAX_VALUE_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            CliError::usage("the value is not UTF-8 text; nothing was stored")
                .hint("encode binary values first, e.g. with base64")
        })?;
        strip_newline(text)
    } else {
        prompt(name)?
    };
    if value.is_empty() {
        return Err(CliError::usage("the value is empty; nothing was stored").hint(
            "pipe it: printf '%s' \"$VALUE\" | tc secrets put NAME --stdin, or type it at the prompt",
        ));
    }
    if sdk::check_value(&value).is_err() {
        return Err(CliError::usage(
            "the value contains a NUL byte, which an environment variable cannot carry; nothing was stored",
        )
        .hint("encode binary values first, e.g. with base64"));
    }
    Ok(value)
}

/// Asks for the value twice on the terminal without echoing it.
fn prompt(name: &str) -> Result<String, CliError> {
    let term = console::Term::stderr();
    if !term.is_term() {
        return Err(
            CliError::usage("no value: there is no terminal to prompt on")
                .hint("pipe the value: printf '%s' \"$VALUE\" | tc secrets put NAME --stdin"),
        );
    }
    let read = |question: &str| -> Result<String, CliError> {
        term.write_str(question)
            .and_then(|()| term.read_secure_line())
            .map_err(|e| CliError::general(format!("cannot read the value: {e}")))
    };
    let first = read(&format!("Value for {name} (input hidden): "))?;
    let second = read("Repeat to confirm: ")?;
    if first != second {
        return Err(CliError::usage(
            "the two entries differ; nothing was stored",
        ));
    }
    Ok(first)
}

/// The owner whose secrets this profile acts on: the signed-in owner, or for a delegate the
/// owner named by its delegation (a `secrets` space or an encryption network), else the owner
/// of the delegation's space.
fn secrets_owner(profile: &Profile, client: &TinyCloud) -> Result<Did> {
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
fn granted_names(caps: &[Capability], space: &SpaceId, prefix: &str) -> (Vec<String>, bool) {
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
struct Vault {
    profile: Profile,
    client: TinyCloud,
    owner: Did,
}

impl Vault {
    fn open(ctx: &Ctx) -> Result<Vault> {
        let (profile, client) = ctx.session_client()?;
        let owner = secrets_owner(&profile, &client)?;
        Ok(Vault {
            profile,
            client,
            owner,
        })
    }

    fn is_owner(&self) -> bool {
        self.profile.config.posture == Posture::LocalOwnerKey
    }

    fn secrets(&self) -> Result<Secrets<'_>> {
        Ok(self.client.secrets_of(&self.owner)?)
    }

    fn space(&self) -> Result<SpaceId, CliError> {
        SpaceId::new(self.owner.clone(), SPACE).map_err(|e| CliError::general(e.to_string()))
    }

    fn network(&self, name: &str) -> Result<NetworkId, CliError> {
        if name.starts_with(NetworkId::PREFIX) {
            return name
                .parse()
                .map_err(|e| CliError::usage(format!("invalid network id: {e}")));
        }
        NetworkId::new(self.owner.clone(), name)
            .map_err(|e| CliError::usage(format!("invalid network name {name:?}: {e}")))
    }

    /// Writing secrets is the owner's: delegates are refused before anything is read.
    fn require_owner(&self, verb: &str) -> Result<(), CliError> {
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
    async fn host_space(&self, ctx: &Ctx) -> Result<()> {
        let signer = profile_owner_signer(&self.profile)?;
        let space = self.space()?;
        self.client.host_space(&signer, &space).await?;
        ctx.out
            .note(&format!("Created your secrets space ({space})."));
        Ok(())
    }

    /// What a failed secret operation means for the user. Never includes a value.
    fn failure(&self, e: SdkError, name: &str, scope: Option<&str>, verb: &str) -> anyhow::Error {
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
    async fn readable_names(&self, scope: Option<&str>) -> Result<Vec<String>> {
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

/// `tc secrets put`.
pub async fn put(ctx: &Ctx, args: &SecretValueArgs) -> Result<()> {
    refuse_value_in_argv(args, "put")?;
    let name = name_arg(&args.name)?;
    let scope = scope_arg(args.scope.as_deref())?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    vault.require_owner("store")?;
    let value = read_value(args.stdin, &name)?;
    let secrets = vault.secrets()?;
    let stored = match secrets.put(&name, &value, scope).await {
        Err(SdkError::NotFound(m)) if m.contains("Space not found") => {
            vault.host_space(ctx).await?;
            secrets.put(&name, &value, scope).await
        }
        other => other,
    };
    drop(value);
    let info = stored.map_err(|e| vault.failure(e, &name, scope, "store"))?;
    ctx.out.done(
        &with_scope(
            json!({"name": info.name, "version": info.version, "written": true}),
            scope,
        ),
        || {
            format!(
                "Stored secret {} (version {})",
                label(&name, scope),
                info.version
            )
        },
    )?;
    Ok(())
}

/// `tc secrets rotate`.
pub async fn rotate(ctx: &Ctx, args: &SecretValueArgs) -> Result<()> {
    refuse_value_in_argv(args, "rotate")?;
    let name = name_arg(&args.name)?;
    let scope = scope_arg(args.scope.as_deref())?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    vault.require_owner("rotate")?;
    let secrets = vault.secrets()?;
    // Fail on a missing secret before asking for a new value.
    secrets
        .info(&name, scope)
        .await
        .map_err(|e| vault.failure(e, &name, scope, "rotate"))?;
    let value = read_value(args.stdin, &name)?;
    let rotated = secrets.rotate(&name, &value, scope).await;
    drop(value);
    let info = rotated.map_err(|e| vault.failure(e, &name, scope, "rotate"))?;
    let previous = info.version.saturating_sub(1);
    ctx.out.done(
        &with_scope(
            json!({
                "name": info.name,
                "version": info.version,
                "previousVersion": previous,
                "rotated": true,
            }),
            scope,
        ),
        || {
            format!(
                "Rotated secret {}: now version {} (version {previous} kept)",
                label(&name, scope),
                info.version
            )
        },
    )?;
    Ok(())
}

/// `tc secrets get`.
pub async fn get(ctx: &Ctx, name: &str, scope: Option<&str>, raw: bool) -> Result<()> {
    let name = name_syntax_arg(name)?;
    let scope = scope_arg(scope)?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    let value = vault
        .secrets()?
        .get(&name, scope)
        .await
        .map_err(|e| vault.failure(e, &name, scope, "read"))?;
    if raw {
        ctx.out.raw(value.as_bytes())?;
    } else if ctx.out.json {
        ctx.out.result(
            &with_scope(json!({"name": name, "value": value}), scope),
            String::new,
        )?;
    } else {
        ctx.out.raw(format!("{value}\n").as_bytes())?;
    }
    Ok(())
}

/// `{"kind": "owner" | "other" | "unsigned" | "invalid", "did": …}`.
fn writer_json(w: &sdk::Writer) -> Value {
    json!({"kind": w.kind(), "did": w.did().map(ToString::to_string)})
}

/// `tc secrets ls`: each secret with who wrote it (from its envelope's writer signature).
pub async fn ls(ctx: &Ctx, scope: Option<&str>) -> Result<()> {
    let scope = scope_arg(scope)?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    let names = vault.readable_names(scope).await?;
    let secrets = vault.secrets()?;
    let mut writers = serde_json::Map::new();
    let mut versions = serde_json::Map::new();
    let mut lines = Vec::with_capacity(names.len());
    for name in &names {
        let (json, human, version) = match secrets.signed_info(name, scope).await {
            Ok((v, w)) => (writer_json(&w), w.to_string(), v),
            Err(_) => (
                json!({"kind": "unknown", "did": null}),
                "unknown (not readable)".into(),
                None,
            ),
        };
        versions.insert(name.clone(), json!(version));
        let shown = version.map_or_else(|| "v?".to_owned(), |v| format!("v{v}"));
        let refused = if sdk::denied(name).is_some() {
            "  [refused name: never injected by `run`; remove it with `tc secrets rm`]"
        } else {
            ""
        };
        lines.push(format!(
            "{}  {shown}  written by {}{refused}",
            field(name),
            field(&human)
        ));
        writers.insert(name.clone(), json);
    }
    ctx.out.result(
        &with_scope(
            json!({"secrets": names, "count": names.len(), "writers": writers, "versions": versions}),
            scope,
        ),
        || lines.join("\n"),
    )?;
    if names.is_empty() {
        ctx.out.note(&match scope {
            Some(s) => format!("No secrets in scope \"{s}\"."),
            None => "No secrets.".into(),
        });
    }
    Ok(())
}

/// `tc secrets rm`.
pub async fn rm(ctx: &Ctx, name: &str, scope: Option<&str>) -> Result<()> {
    let name = name_syntax_arg(name)?;
    let scope = scope_arg(scope)?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    vault
        .secrets()?
        .delete(&name, scope)
        .await
        .map_err(|e| vault.failure(e, &name, scope, "delete"))?;
    ctx.out.done(
        &with_scope(json!({"name": name, "deleted": true}), scope),
        || format!("Deleted secret {}", label(&name, scope)),
    )?;
    Ok(())
}

/// `tc secrets info`.
pub async fn info(ctx: &Ctx, name: &str, scope: Option<&str>) -> Result<()> {
    let name = name_syntax_arg(name)?;
    let scope = scope_arg(scope)?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    let info = vault
        .secrets()?
        .info(&name, scope)
        .await
        .map_err(|e| vault.failure(e, &name, scope, "read"))?;
    ctx.out.result(
        &with_scope(
            json!({
                "name": info.name,
                "version": info.version,
                "createdAt": info.created_at,
                "updatedAt": info.updated_at,
                "writer": writer_json(&info.writer),
            }),
            scope,
        ),
        || {
            format!(
                "name:    {}\nversion: {}\ncreated: {}\nupdated: {}\nwriter:  {}",
                info.name,
                field(&info.version.to_string()),
                field(&info.created_at),
                field(&info.updated_at),
                field(&info.writer.to_string())
            )
        },
    )?;
    Ok(())
}

/// `tc secrets grant`: one delegation with `tinycloud.kv/get` on each secret and
/// `tinycloud.encryption/decrypt` on the network, shown in plain language before signing.
pub async fn grant(ctx: &Ctx, args: &SecretGrantArgs) -> Result<()> {
    let to = parse_did(&args.to)?;
    let mut names = args
        .names
        .iter()
        .map(|n| name_arg(n))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    let scope = scope_arg(args.scope.as_deref())?;
    let scope = scope.as_deref();
    let vault = Vault::open(ctx)?;
    let session = vault.client.active_session()?;
    let space = vault.space()?;
    let network = vault.network(NETWORK)?;
    let mut caps = Vec::with_capacity(names.len() + 1);
    for name in &names {
        let path = sdk::resolve_secret_path(name, scope)?;
        caps.push(
            capability(&format!("{space}/kv/{path}"), "tinycloud.kv/get")
                .map_err(CliError::general)?,
        );
    }
    caps.push(
        capability(&network.to_string(), "tinycloud.encryption/decrypt")
            .map_err(CliError::general)?,
    );
    ensure_held(&session, &caps)?;
    if vault.is_owner() {
        let kv = vault.client.kv_in(space.clone());
        for name in &names {
            let path = sdk::resolve_secret_path(name, scope)?;
            if matches!(kv.head(&path).await, Ok(None) | Err(SdkError::NotFound(_))) {
                ctx.out.notice(&format!(
                    "note: secret {} does not exist yet; the grant covers it once it is stored",
                    label(name, scope)
                ));
            }
        }
    }
    let until = delegation_end(&session, args.duration);
    let viewer = vault.is_owner().then(|| vault.owner.clone());
    ctx.out
        .notice(&consent(&to.to_string(), &caps, viewer, until));
    confirm(&ctx.out, "Sign this delegation?", args.yes)?;
    vault.client.ensure_network(&network).await?;
    let portable = vault.client.delegate_to(&to, caps, args.duration).await?;
    let value = serde_json::to_value(&portable)?;
    emit_document(ctx, args.output.as_deref(), &value, |path| {
        (
            with_scope(
                json!({
                    "cid": portable.cid,
                    "delegate": portable.delegate_did,
                    "expiry": portable.expiry,
                    "secrets": names,
                    "networkId": network.to_string(),
                    "output": path,
                }),
                scope,
            ),
            format!(
                "Granted read access to {} until {}: delegation {} written to {}.\nThe recipient uses it with: tc delegate use {}\nRevoke it with: tc secrets revoke {}",
                names.join(", "),
                portable.expiry,
                portable.cid,
                path.display(),
                path.display(),
                portable.cid
            ),
        )
    })?;
    Ok(())
}

/// `tc secrets audit`.
pub async fn audit(
    ctx: &Ctx,
    name: Option<&str>,
    scope: Option<&str>,
    network: &str,
) -> Result<()> {
    let vault = Vault::open(ctx)?;
    let network = vault.network(network)?;
    // With a name: the secret's envelope hashes, which the node records on every decrypt.
    let only = match name {
        Some(name) => {
            let name = name_syntax_arg(name)?;
            let scope = scope_arg(scope)?;
            let hashes = vault
                .secrets()?
                .envelope_hashes(&name, scope.as_deref())
                .await
                .map_err(|e| vault.failure(e, &name, scope.as_deref(), "read"))?;
            Some(hashes)
        }
        None => None,
    };
    let mut doc = match vault.client.network_audit(&network).await {
        Ok(doc) => doc,
        Err(SdkError::NotFound(_)) => {
            return Err(CliError::new(
                Exit::NotFound,
                "NOT_FOUND",
                format!("encryption network {network} not found"),
            )
            .hint("it is created by the first `tc secrets put`")
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    if let (Some(hashes), Some(records)) = (&only, doc["records"].as_array_mut()) {
        records.retain(|r| {
            r["envelopeHash"]
                .as_str()
                .is_some_and(|h| hashes.iter().any(|k| k == h))
        });
    }
    let records = doc["records"].as_array().cloned().unwrap_or_default();
    let cut = doc["nextCursor"].is_string();
    ctx.out.result(&doc, || {
        if records.is_empty() {
            return match name {
                Some(name) => format!("No decrypt requests recorded for secret {name:?}."),
                None => format!("No decrypt requests recorded for {network}."),
            };
        }
        records
            .iter()
            .map(|r| {
                format!(
                    "{}  {:<12}  {}",
                    field(r["at"].as_str().unwrap_or("-")),
                    field(r["outcome"].as_str().unwrap_or("-")),
                    field(r["actor"].as_str().unwrap_or("-")),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    if cut {
        ctx.out.notice(&format!(
            "note: the trail is longer than {} pages; older records were not read",
            doc["pages"]
        ));
    }
    Ok(())
}

/// Exit code of a finished child, shell style (128 + signal when killed by one).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

/// What `run` does with one readable secret.
#[derive(Debug, PartialEq, Eq)]
enum RunChoice {
    /// Inject it.
    Inject,
    /// Inject it, warning that someone other than the owner wrote it (it was named).
    InjectWithWarning(String),
    /// Leave it out: a short code (for `--json`) and why.
    Skip(&'static str, String),
}

/// What `run` tells the user: per secret left out or injected with a warning, and the
/// injected names (never values). Human text on stderr, or with `--json` one JSON object on
/// stderr (`{"secretsRun": …}`); `--quiet` hides both.
#[derive(Default)]
struct RunReport {
    skipped: Vec<(String, &'static str, String)>,
    warnings: Vec<(String, String)>,
    missing: Vec<String>,
    lines: Vec<(bool, String)>,
}

impl RunReport {
    fn skip(&mut self, name: &str, scope: Option<&str>, code: &'static str, why: String) {
        self.lines.push((
            true,
            format!(
                "warning: secret {} not injected: {why}",
                label(&field(name), scope)
            ),
        ));
        self.skipped.push((name.to_owned(), code, why));
    }

    fn warn(&mut self, name: &str, scope: Option<&str>, why: String) {
        self.lines.push((
            true,
            format!("warning: secret {} is {why}", label(&field(name), scope)),
        ));
        self.warnings.push((name.to_owned(), why));
    }

    fn missing(&mut self, name: &str, scope: Option<&str>) {
        self.lines.push((
            false,
            format!(
                "note: secret {} is granted but does not exist; skipped",
                label(&field(name), scope)
            ),
        ));
        self.missing.push(name.to_owned());
    }

    fn emit(&self, ctx: &Ctx, injected: &[String], scope: Option<&str>) {
        if ctx.out.json {
            let skipped: Vec<Value> = self
                .skipped
                .iter()
                .map(|(n, code, why)| json!({"name": n, "reason": code, "message": why}))
                .collect();
            let warnings: Vec<Value> = self
                .warnings
                .iter()
                .map(|(n, why)| json!({"name": n, "message": why}))
                .collect();
            ctx.out.event(&with_scope(
                json!({"secretsRun": {
                    "injected": injected,
                    "skipped": skipped,
                    "warnings": warnings,
                    "missing": self.missing,
                }}),
                scope,
            ));
            return;
        }
        for (notice, line) in &self.lines {
            if *notice {
                ctx.out.notice(line);
            } else {
                ctx.out.note(line);
            }
        }
        if injected.is_empty() {
            ctx.out
                .notice("No secrets to add; running the command with the current environment.");
        } else {
            ctx.out.notice(&format!(
                "Running with {} secret{} in the environment: {}",
                injected.len(),
                if injected.len() == 1 { "" } else { "s" },
                injected.join(", ")
            ));
        }
    }
}

/// The rule of `run`: deny-listed names and values an environment cannot carry are never
/// injected; a secret the owner did not write is injected only when the user named it.
fn run_choice(name: &str, value: &str, writer: &sdk::Writer, named: bool) -> RunChoice {
    if let Some(why) = sdk::denied(name) {
        return RunChoice::Skip("refused-name", format!("its name is refused ({why})"));
    }
    if sdk::check_value(value).is_err() {
        return RunChoice::Skip("nul-value", "its value contains a NUL byte".into());
    }
    if writer.is_owner() {
        return RunChoice::Inject;
    }
    let who = writer.to_string();
    if named {
        RunChoice::InjectWithWarning(format!("written by {who}"))
    } else {
        RunChoice::Skip(
            "not-owner",
            format!("written by {who}; name it with --only to use it anyway"),
        )
    }
}

/// `tc secrets run`.
pub async fn run(ctx: &Ctx, args: &SecretRunArgs) -> Result<()> {
    let scope = scope_arg(args.scope.as_deref())?;
    let scope = scope.as_deref();
    let mut only = args
        .only
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| name_arg(n))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(file) = &args.env_file {
        only.extend(names_from_file(file)?);
    }
    only.sort();
    only.dedup();
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(CliError::usage("no command to run")
            .hint("tc secrets run -- <command> [args…]")
            .into());
    };
    let vault = Vault::open(ctx)?;
    let explicit = !only.is_empty() || args.env_file.is_some();
    let candidates = if explicit {
        only
    } else {
        vault.readable_names(scope).await?
    };
    let secrets = vault.secrets()?;
    let mut names = Vec::with_capacity(candidates.len());
    let mut env: Vec<(String, String)> = Vec::with_capacity(candidates.len());
    let mut report = RunReport::default();
    for name in candidates {
        if let Some(why) = sdk::denied(&name) {
            report.skip(
                &name,
                scope,
                "refused-name",
                format!("its name is refused ({why}); remove it with `tc secrets rm {name}`"),
            );
            continue;
        }
        match secrets.read(&name, scope).await {
            Ok(secret) => {
                match run_choice(&name, &secret.value, &secret.info.writer, explicit) {
                    RunChoice::Inject => {}
                    RunChoice::InjectWithWarning(why) => report.warn(&name, scope, why),
                    RunChoice::Skip(code, why) => {
                        report.skip(&name, scope, code, why);
                        continue;
                    }
                }
                env.push((name.clone(), secret.value));
                names.push(name);
            }
            // A delegation may name secrets the owner has not stored (yet).
            Err(SdkError::NotFound(_)) if !explicit => report.missing(&name, scope),
            // An older envelope stored again: never injected; named, the run fails.
            Err(e @ SdkError::RolledBack { .. }) if !explicit => {
                report.skip(&name, scope, "rolled-back", e.to_string());
            }
            Err(e) => return Err(vault.failure(e, &name, scope, "read")),
        }
    }
    report.emit(ctx, &names, scope);
    let mut command = std::process::Command::new(program);
    command.args(program_args);
    // Values go only into the child's environment: not its argv, not ours, not a file.
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let spawned = command.spawn();
    drop(command);
    drop(env);
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_owned()),
                _ => (126, e.to_string()),
            };
            ctx.out.error(&CliError::general(format!(
                "cannot run {}: {what}",
                display_program(program)
            )));
            return Err(ChildExit(code).into());
        }
    };
    let mut child = child;
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    // Ctrl-C reaches the child (same process group); stay alive to report its exit code.
    let status = loop {
        tokio::select! {
            r = &mut wait => break r,
            sig = tokio::signal::ctrl_c() => {
                if sig.is_err() {
                    break (&mut wait).await;
                }
            }
        }
    };
    let status = status
        .map_err(|e| CliError::general(format!("cannot wait for the command: {e}")))?
        .map_err(|e| CliError::general(format!("cannot wait for the command: {e}")))?;
    match exit_code(status) {
        0 => Ok(()),
        code => Err(ChildExit(u8::try_from(code & 0xff).unwrap_or(1)).into()),
    }
}

fn display_program(program: &OsString) -> String {
    program.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(strip_newline("sk-1\n".into()), "sk-1");
        assert_eq!(strip_newline("sk-1\r\n".into()), "sk-1");
        assert_eq!(strip_newline("sk-1\n\n".into()), "sk-1\n");
        assert_eq!(strip_newline("sk-1".into()), "sk-1");
    }

    #[test]
    fn invalid_names_are_not_echoed() {
        let e = name_arg("sk-live-123").unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(!e.message.contains("sk-live"), "{}", e.message);
        assert_eq!(name_arg(" API_KEY ").unwrap(), "API_KEY");
    }
}

//! `tc init` and `tc auth …`: owner sign-in, status, logout, and the delegate flow
//! (request → grant → import).

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use tinycloud_auth::did::Did;
use tinycloud_auth::text::{consent_text, describe, RenderContext};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_sdk::delegation::missing_capabilities;
use tinycloud_sdk::openkey::{ApprovalMode, OpenKeySigner, Prompt, Prompter};
use tinycloud_sdk::session::{now, Jwk, Session};
use tinycloud_sdk::{Error as SdkError, LocalSigner, Signer};

use tinycloud_sdk::terminal::short_field;

use super::{emit_document, read_source, Ctx};
use crate::artifact::{
    parse_cap_spec, parse_delegation, AuthRequest, DelegationArtifact, DELEGATION_KIND,
    REQUEST_KIND, VERSION,
};
use crate::cli::{GrantArgs, InitArgs, LoginArgs, RequestArgs};
use crate::duration;
use crate::error::CliError;
use crate::output::confirm;
use crate::profile::{check_name, now_rfc3339, OwnerKey, Posture, Profile, ProfileConfig};

/// Chain id of locally generated owner accounts.
const DEFAULT_CHAIN_ID: u64 = 1;
/// Default lifetime of a granted request that names none.
const DEFAULT_GRANT_SECS: i64 = 7 * 24 * 3600;

/// Where the owner key came from (reported, never the key itself).
#[derive(Clone, Copy)]
enum KeySource {
    File,
    Env,
    Profile,
    Generated,
    OpenKey,
}

impl KeySource {
    fn as_str(self) -> &'static str {
        match self {
            KeySource::File => "key-file",
            KeySource::Env => "env",
            KeySource::Profile => "profile",
            KeySource::Generated => "generated",
            KeySource::OpenKey => "openkey",
        }
    }
}

/// The `did:key` of a session key.
pub fn key_did(key: &Jwk) -> Result<Did, SdkError> {
    Ok(key.secret_key()?.did())
}

fn signer_from_hex(hex: &str, chain_id: u64, origin: &str) -> Result<LocalSigner, CliError> {
    // The SDK's messages never echo the key.
    LocalSigner::from_hex(hex, chain_id)
        .map_err(|e| CliError::usage(format!("the owner key from {origin} is unusable: {e}")))
}

fn read_key_file(path: &Path, chain_id: u64) -> Result<LocalSigner, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim();
    let hex = if text.starts_with('{') {
        serde_json::from_str::<OwnerKey>(text)
            .map_err(|_| {
                CliError::usage(format!(
                    "{} is JSON without a \"privateKey\" field",
                    path.display()
                ))
            })?
            .private_key
    } else {
        text.to_owned()
    };
    signer_from_hex(&hex, chain_id, &path.display().to_string())
}

fn env_key() -> Option<(String, &'static str)> {
    ["TINYCLOUD_PRIVATE_KEY", "TC_PRIVATE_KEY"]
        .into_iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, name))
        })
}

/// Picks the owner key: --key-file, then the environment, then owner.json, then --generate.
fn owner_signer(
    profile: &Profile,
    args: &LoginArgs,
    chain_id: u64,
) -> Result<(LocalSigner, KeySource), CliError> {
    if let Some(path) = &args.key_file {
        return Ok((read_key_file(path, chain_id)?, KeySource::File));
    }
    if let Some((hex, name)) = env_key() {
        return Ok((signer_from_hex(&hex, chain_id, name)?, KeySource::Env));
    }
    if let Some(stored) = profile.owner_key()? {
        let origin = profile.dir().join("owner.json").display().to_string();
        return Ok((
            signer_from_hex(&stored.private_key, chain_id, &origin)?,
            KeySource::Profile,
        ));
    }
    if args.generate {
        let signer = LocalSigner::generate(chain_id);
        // Stored before signing in, so a failed sign-in never loses the new key.
        profile.save_owner_key(&OwnerKey {
            private_key: signer.to_hex(),
            address: signer.eth_address().to_eip55(),
        })?;
        return Ok((signer, KeySource::Generated));
    }
    Err(CliError::usage(format!(
        "no owner key for profile {:?}",
        profile.config.name
    ))
    .hint("pass --generate to create one, --key-file <file>, or set TINYCLOUD_PRIVATE_KEY=0x…"))
}

/// The owner key of a signed-in owner profile, for signing what a session key cannot (hosting a
/// new space): the environment's key, else `owner.json`. It must be the profile's owner.
pub fn profile_owner_signer(profile: &Profile) -> Result<LocalSigner, CliError> {
    let chain_id = profile.config.chain_id;
    let signer = match env_key() {
        Some((hex, name)) => signer_from_hex(&hex, chain_id, name)?,
        None => match profile.owner_key()? {
            Some(stored) => {
                let origin = profile.dir().join("owner.json").display().to_string();
                signer_from_hex(&stored.private_key, chain_id, &origin)?
            }
            None => {
                return Err(CliError::usage(format!(
                    "profile {:?} holds no owner key to sign with",
                    profile.config.name
                ))
                .hint("set TINYCLOUD_PRIVATE_KEY=0x… to the owner's key and retry"))
            }
        },
    };
    let did = Did::pkh(chain_id, signer.eth_address())
        .map_err(|e| CliError::usage(e.to_string()))?
        .to_string();
    if profile
        .config
        .owner_did
        .as_deref()
        .is_some_and(|o| o != did)
    {
        return Err(CliError::usage(format!(
            "the available owner key ({did}) is not the owner of profile {:?}",
            profile.config.name
        ))
        .hint("use the key this profile signed in with (TINYCLOUD_PRIVATE_KEY or owner.json)"));
    }
    Ok(signer)
}

fn delegate_profile_error(name: &str) -> CliError {
    CliError::usage(format!(
        "profile {name:?} is a session-only (delegate) profile and has no owner key"
    ))
    .hint("get authority with `tc auth request` + `tc auth import`, or create an owner profile: `tc init --name owner --generate`")
}

/// An OpenKey-held owner key: each signature is approved by the person in OpenKey (browser on
/// this machine with a loopback callback, or `--device`: a code to enter on any browser).
fn openkey_signer(url: &str, device: bool, chain_id: u64) -> Result<OpenKeySigner, CliError> {
    let mode = if device {
        ApprovalMode::Device
    } else {
        ApprovalMode::Browser
    };
    let prompt: Prompter = std::sync::Arc::new(move |p: &Prompt| match p {
        Prompt::Open(link) => {
            eprintln!("Approve in OpenKey: {link}");
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            };
            let _ = std::process::Command::new(opener)
                .arg(link)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
        Prompt::EnterCode { uri, code, .. } => {
            eprintln!("To approve, open {uri} and enter the code {code}");
        }
    });
    OpenKeySigner::new(url, mode, chain_id, prompt).map_err(|e| CliError::usage(e.to_string()))
}

/// `tc auth login` (and `tc init` without --session-only).
pub async fn login(ctx: &Ctx, name: &str, args: &LoginArgs) -> Result<()> {
    check_name(name)?;
    let existing = ctx.home.load(name)?;
    if existing
        .as_ref()
        .is_some_and(|p| p.config.posture == Posture::DelegateSession)
    {
        return Err(delegate_profile_error(name).into());
    }
    let host = ctx.host(existing.as_ref());
    let mut profile = match existing {
        Some(p) => p,
        None => Profile::new(
            &ctx.home,
            ProfileConfig {
                name: name.to_owned(),
                host: host.clone(),
                chain_id: DEFAULT_CHAIN_ID,
                space_name: "default".into(),
                did: String::new(),
                session_did: String::new(),
                owner_did: None,
                space_id: None,
                posture: Posture::LocalOwnerKey,
                node_did: None,
                created_at: now_rfc3339(),
                owner_session_dids: Vec::new(),
            },
        )?,
    };
    if let Some(space) = &args.space {
        profile.config.space_name = space.clone();
    }
    let (signer, source): (Box<dyn Signer>, KeySource) = match &args.openkey {
        Some(url) => (
            Box::new(openkey_signer(url, args.device, profile.config.chain_id)?),
            KeySource::OpenKey,
        ),
        None => {
            let (s, source) = owner_signer(&profile, args, profile.config.chain_id)?;
            (Box::new(s), source)
        }
    };
    if matches!(source, KeySource::Generated) {
        ctx.out.note(&format!(
            "Created a new owner key in {} (mode 0600). It controls your space: keep it safe.",
            profile.dir().join("owner.json").display()
        ));
    }

    let mut config = ctx.config(Some(&profile))?;
    config.host = host.trim_end_matches('/').to_owned();
    config.space_name = profile.config.space_name.clone();
    if let Some(domain) = &args.domain {
        config.domain = domain.clone();
    }
    let client = tinycloud_sdk::TinyCloud::new(config)?;
    let session = client.sign_in(signer.as_ref()).await?;
    let node_did = client.node_did().await?.to_string();

    let owner_did = Did::pkh(profile.config.chain_id, signer.address().await?)
        .map_err(|e| CliError::usage(e.to_string()))?
        .to_string();
    let session_did = key_did(&session.session_key)?.to_string();
    profile.save_key(&session.session_key)?;
    profile.save_session(&session)?;
    let c = &mut profile.config;
    c.host = host;
    c.did = owner_did.clone();
    c.session_did = session_did.clone();
    c.remember_owner_session(&session_did);
    c.owner_did = Some(owner_did.clone());
    c.space_id = Some(session.tinycloud_session.space_id.clone());
    c.node_did = Some(node_did);
    profile.save()?;
    ctx.home.set_default_if_unset(name)?;

    let c = &profile.config;
    let value = json!({
        "profile": c.name,
        "authenticated": true,
        "did": owner_did,
        "ownerDid": owner_did,
        "sessionDid": session_did,
        "spaceId": c.space_id,
        "host": c.host,
        "posture": c.posture.as_str(),
        "expiresAt": session.expires_at,
        "ownerKey": source.as_str(),
    });
    ctx.out.result(&value, || {
        format!(
            "Signed in as {owner_did}\nspace:   {}\nsession: {session_did}\nexpires: {}",
            c.space_id.as_deref().unwrap_or_default(),
            session.expires_at
        )
    })?;
    Ok(())
}

/// `tc init`.
pub async fn init(ctx: &Ctx, args: InitArgs) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| ctx.profile.clone());
    check_name(&name)?;
    if !args.session_only {
        return login(ctx, &name, &args.login).await;
    }
    let profile = match ctx.home.load(&name)? {
        Some(p) if p.config.posture == Posture::DelegateSession => p,
        Some(_) => {
            return Err(CliError::usage(format!(
                "profile {name:?} already exists as an owner profile"
            ))
            .hint("pick another name: `tc init --session-only --name agent`")
            .into())
        }
        None => {
            let key = Jwk::generate();
            let did = key_did(&key)?.to_string();
            let p = Profile::new(
                &ctx.home,
                ProfileConfig {
                    name: name.clone(),
                    host: ctx.host(None),
                    chain_id: DEFAULT_CHAIN_ID,
                    space_name: "default".into(),
                    did: did.clone(),
                    session_did: did,
                    owner_did: None,
                    space_id: None,
                    posture: Posture::DelegateSession,
                    node_did: None,
                    created_at: now_rfc3339(),
                    owner_session_dids: Vec::new(),
                },
            )?;
            p.save_key(&key)?;
            p.save()?;
            ctx.home.set_default_if_unset(&name)?;
            p
        }
    };
    let c = &profile.config;
    ctx.out.result(
        &json!({
            "profile": c.name,
            "did": c.did,
            "sessionDid": c.session_did,
            "posture": c.posture.as_str(),
            "host": c.host,
        }),
        || c.did.clone(),
    )?;
    ctx.out.note(&format!(
        "Give this DID to the owner, e.g.: tc delegate create --to {} --path notes/ --actions get,list -o deleg.json\nor ask for capabilities: tc -p {} auth request --cap kv:notes/:get,list --emit req.json",
        c.did, c.name
    ));
    Ok(())
}

fn session_state(session: Option<&Session>) -> &'static str {
    match session {
        None => "none",
        Some(s) if s.validate().is_err() => "invalid",
        Some(s) if s.is_expired(now()) => "expired",
        Some(_) => "active",
    }
}

/// `tc auth status`.
pub fn status(ctx: &Ctx) -> Result<()> {
    let Some(profile) = ctx.load_profile()? else {
        let value = json!({
            "authenticated": false,
            "profile": ctx.profile,
            "did": null,
            "sessionDid": null,
            "ownerDid": null,
            "spaceId": null,
            "host": ctx.host(None),
            "posture": null,
            "expiresAt": null,
            "session": "none",
        });
        ctx.out.result(&value, || {
            format!(
                "profile: {} (does not exist)\nauthenticated: no\nhint: run `tc auth login --generate` (owner) or `tc init --session-only` (agent)",
                ctx.profile
            )
        })?;
        return Ok(());
    };
    // A corrupt session file reads as "invalid", not as a failure of `status`.
    let session = profile.session().ok().flatten();
    let state = session_state(session.as_ref());
    let authenticated = state == "active";
    let c = &profile.config;
    let space_id = session
        .as_ref()
        .map(|s| s.tinycloud_session.space_id.clone())
        .or_else(|| c.space_id.clone());
    let expires_at = session.as_ref().map(|s| s.expires_at.clone());
    let host = ctx.host(Some(&profile));
    let value = json!({
        "authenticated": authenticated,
        "did": c.did,
        "sessionDid": c.session_did,
        "ownerDid": c.owner_did,
        "spaceId": space_id,
        "host": host,
        "profile": c.name,
        "posture": c.posture.as_str(),
        "expiresAt": expires_at,
        "session": state,
    });
    ctx.out.result(&value, || {
        let auth = match state {
            "active" => format!(
                "yes (until {})",
                expires_at.as_deref().unwrap_or_default()
            ),
            "expired" => "no (session expired)".into(),
            "invalid" => "no (stored session is invalid)".into(),
            _ => "no".into(),
        };
        format!(
            "profile:       {}\nposture:       {}\nauthenticated: {auth}\ndid:           {}\nsession did:   {}\nowner:         {}\nspace:         {}\nhost:          {host}",
            c.name,
            c.posture.as_str(),
            c.did,
            c.session_did,
            c.owner_did.as_deref().unwrap_or("-"),
            space_id.as_deref().unwrap_or("-"),
        )
    })?;
    Ok(())
}

/// `tc auth logout`.
pub fn logout(ctx: &Ctx) -> Result<()> {
    if let Some(profile) = ctx.load_profile()? {
        profile.clear_session()?;
    }
    ctx.out.done(
        &json!({"profile": ctx.profile, "authenticated": false}),
        || {
            format!(
                "Signed out of profile {:?} (keys kept; session removed)",
                ctx.profile
            )
        },
    )?;
    Ok(())
}

/// `tc auth request`.
pub fn request(ctx: &Ctx, args: &RequestArgs) -> Result<()> {
    let profile = ctx.load_profile()?.ok_or_else(|| {
        CliError::usage(format!("profile {:?} does not exist", ctx.profile)).hint(format!(
            "create it first: `tc init --session-only --name {}`",
            ctx.profile
        ))
    })?;
    let requested = args
        .caps
        .iter()
        .map(|s| parse_cap_spec(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::usage)?;
    let session_did = key_did(&profile.key()?)?.to_string();
    let request = AuthRequest {
        kind: REQUEST_KIND.into(),
        version: VERSION,
        request_id: uuid::Uuid::new_v4().to_string(),
        created_at: now_rfc3339(),
        profile: profile.config.name.clone(),
        host: ctx.host(Some(&profile)),
        session_did,
        requested,
        requested_expiry: Some(format!("{}s", args.expiry)),
    };
    let value = serde_json::to_value(&request)?;
    emit_document(ctx, args.emit.as_deref(), &value, |path| {
        (
            json!({"requestId": request.request_id, "emitted": path, "sessionDid": request.session_did}),
            format!(
                "Wrote request {} to {}.\nAsk the owner to run: tc auth grant {} -o grant.json\nthen: tc -p {} auth import grant.json",
                request.request_id,
                path.display(),
                path.display(),
                request.profile
            ),
        )
    })?;
    Ok(())
}

/// Seconds until a requested expiry (`7d`, `3600s` or an RFC 3339 instant).
fn requested_secs(expiry: Option<&str>) -> Result<i64, CliError> {
    let Some(e) = expiry else {
        return Ok(DEFAULT_GRANT_SECS);
    };
    if let Ok(secs) = duration::parse_secs(e) {
        return Ok(secs);
    }
    let at = Timestamp::parse_rfc3339(e)
        .ok_or_else(|| CliError::usage(format!("invalid requestedExpiry {e:?}")))?;
    let secs = (at.as_millis() - now().as_millis()) / 1000;
    if secs <= 0 {
        return Err(CliError::usage(format!(
            "the request asked for an expiry in the past ({e})"
        )));
    }
    Ok(secs)
}

/// Who a request targets: a `did:key` (a fragment is ignored).
pub fn parse_did(s: &str) -> Result<Did, CliError> {
    let bare = s.trim().split('#').next().unwrap_or_default();
    bare.parse::<Did>()
        .map_err(|e| CliError::usage(format!("invalid DID {s:?}: {e}")))
}

/// Refuses to delegate capabilities the session does not hold itself.
pub fn ensure_held(
    session: &Session,
    caps: &[tinycloud_auth::capability::Capability],
) -> Result<()> {
    let missing = missing_capabilities(caps, &session.capabilities()?);
    if !missing.is_empty() {
        return Err(SdkError::MissingCapabilities(missing).into());
    }
    Ok(())
}

/// When a delegation lasting `secs` from now ends: never after the session it rests on.
pub fn delegation_end(session: &Session, secs: i64) -> Timestamp {
    let wanted = now().plus_secs(secs);
    session.expires().map_or(wanted, |e| e.min(wanted))
}

/// The consent text shown before signing a delegation.
pub fn consent(
    grantee: &str,
    caps: &[tinycloud_auth::capability::Capability],
    viewer: Option<Did>,
    expiration: Timestamp,
) -> String {
    consent_text(
        grantee,
        caps,
        &RenderContext {
            viewer,
            expiration: Some(expiration),
        },
    )
}

/// `tc auth grant`.
pub async fn grant(ctx: &Ctx, args: &GrantArgs) -> Result<()> {
    let text = read_source(args.source.as_deref())?;
    let request: AuthRequest = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("not a capability request: {e}")))?;
    if request.kind != REQUEST_KIND || request.version != VERSION {
        return Err(CliError::usage(format!(
            "not a capability request (kind {:?}, version {})",
            request.kind, request.version
        ))
        .into());
    }
    if request.requested.is_empty() {
        return Err(CliError::usage("the request asks for nothing").into());
    }
    let to = parse_did(&request.session_did)?;
    let (profile, client) = ctx.session_client()?;
    let session = client.active_session()?;
    let space = client.space()?;
    for r in &request.requested {
        if let Some(s) = &r.space {
            if s != &space.to_string() && s != space.name() {
                return Err(CliError::usage(format!(
                    "the request asks for space {s:?}, but this profile acts on {space}"
                ))
                .into());
            }
        }
    }
    let grants: Vec<_> = request.requested.iter().map(|r| r.to_grant()).collect();
    let caps = client.grant_capabilities(&grants)?;
    ensure_held(&session, &caps)?;
    let secs = requested_secs(request.requested_expiry.as_deref())?;
    let until = delegation_end(&session, secs);
    let viewer = (profile.config.posture == Posture::LocalOwnerKey).then(|| space.owner().clone());
    // The request's labels are untrusted: escaped and cut short, and printed first; the text
    // that follows is rendered only from the capabilities being signed.
    ctx.out.notice(&format!(
        "Request {} from profile \"{}\" (node {}).\nWhat you sign (from the capabilities themselves, not from the request's labels):\n{}",
        short_field(&request.request_id, 80),
        short_field(&request.profile, 80),
        short_field(&request.host, 120),
        consent(&to.to_string(), &caps, viewer, until)
    ));
    confirm(&ctx.out, "Sign this delegation?", args.yes)?;
    let portable = client.delegate_to(&to, caps, secs).await?;
    let artifact = DelegationArtifact {
        kind: DELEGATION_KIND.into(),
        version: VERSION,
        request_id: Some(request.request_id.clone()),
        delegation_cid: portable.cid.clone(),
        delegation: portable,
    };
    let value = serde_json::to_value(&artifact)?;
    emit_document(ctx, args.output.as_deref(), &value, |path| {
        (
            json!({
                "requestId": artifact.request_id,
                "delegationCid": artifact.delegation_cid,
                "output": path,
            }),
            format!(
                "Granted: delegation {} written to {}.\nThe requester imports it with: tc auth import {}",
                artifact.delegation_cid,
                path.display(),
                path.display()
            ),
        )
    })?;
    Ok(())
}

/// `tc auth import` and `tc delegate use`: a received delegation becomes the session of this
/// session-only profile.
pub async fn import(ctx: &Ctx, source: Option<&str>) -> Result<()> {
    let mut profile = ctx.load_profile()?.ok_or_else(|| {
        CliError::usage(format!("profile {:?} does not exist", ctx.profile)).hint(format!(
            "create the receiving profile first: `tc init --session-only --name {}`",
            ctx.profile
        ))
    })?;
    if profile.config.posture != Posture::DelegateSession {
        return Err(CliError::usage(format!(
            "profile {:?} is an owner profile; delegations are imported into session-only profiles",
            profile.config.name
        ))
        .hint("create one with `tc init --session-only --name agent` and import with `-p agent`")
        .into());
    }
    let text = read_source(source)?;
    let (portable, delegation, request_id) = parse_delegation(&text)?;
    let client = ctx.client(Some(&profile))?;
    let session = client.use_delegation(profile.key()?, &portable)?;
    let host = ctx.host(Some(&profile));
    if let Some(h) = &portable.host {
        if h.trim_end_matches('/') != host {
            ctx.out.note(&format!(
                "note: the delegation was issued on {h}, this profile uses {host} (change with --host)"
            ));
        }
    }
    profile.save_session(&session)?;
    // From the signed token (the file's own fields were checked against it).
    let owner = tinycloud_sdk::delegation::PortableDelegation::token_owner(&delegation)
        .ok()
        .map(|o| o.to_string());
    profile.config.space_id = Some(portable.space_id.clone());
    profile.config.owner_did = owner.clone();
    // Pin the node: kept if already pinned (a mismatch is refused), else learned now.
    match client.node_did().await {
        Ok(did) => profile.config.node_did = Some(did.to_string()),
        Err(e @ SdkError::NodeMismatch { .. }) => return Err(e.into()),
        Err(_) if profile.config.node_did.is_some() => {}
        Err(e) => ctx.out.notice(&format!(
            "note: the node's DID could not be pinned ({e}); pin it later with `tc auth pin-node`"
        )),
    }
    profile.save()?;
    let lines = describe(
        &delegation.info().capabilities,
        &RenderContext {
            viewer: None,
            expiration: delegation.info().expiration,
        },
    );
    let value: Value = json!({
        "profile": profile.config.name,
        "delegationCid": portable.cid,
        "requestId": request_id,
        "spaceId": portable.space_id,
        "ownerDid": owner,
        "delegator": portable.delegator_did,
        "expiresAt": session.expires_at,
        "capabilities": lines,
    });
    ctx.out.done(&value, || {
        format!(
            "Imported delegation {} into profile {:?}.\n{}",
            portable.cid,
            profile.config.name,
            portable.describe(&delegation).trim_end()
        )
    })?;
    Ok(())
}

/// `tc auth pin-node`: fetches the node's DID and pins it in the profile.
pub async fn pin_node(ctx: &Ctx, yes: bool) -> Result<()> {
    let mut profile = ctx.require_profile()?;
    let mut config = ctx.config(Some(&profile))?;
    config.node_did = None;
    let client = tinycloud_sdk::TinyCloud::new(config)?;
    let did = client.node_did().await?.to_string();
    let host = ctx.host(Some(&profile));
    let previous = profile.config.node_did.clone();
    if previous.as_deref() != Some(did.as_str()) {
        ctx.out.notice(&format!(
            "The node at {} identifies as {}\n(pinned until now: {})",
            short_field(&host, 120),
            short_field(&did, 200),
            previous.as_deref().unwrap_or("nothing")
        ));
        if previous.is_some() {
            confirm(&ctx.out, "Trust this node from now on?", yes)?;
        }
    }
    profile.config.node_did = Some(did.clone());
    profile.save()?;
    ctx.out.done(
        &json!({"profile": profile.config.name, "host": host, "nodeDid": did, "previous": previous}),
        || format!("Pinned node {did} for profile {:?}", profile.config.name),
    )?;
    Ok(())
}

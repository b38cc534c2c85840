//! Sharing secrets and watching their use: `grant` (one delegation reading the named secrets
//! and decrypting on the owner's network, shown in plain language before signing) and
//! `audit` (the network's decrypt trail, optionally for one secret).

use anyhow::Result;
use serde_json::json;
use tinycloud_auth::session::capability;
use tinycloud_sdk::secrets::{self as sdk};
use tinycloud_sdk::terminal::field;
use tinycloud_sdk::Error as SdkError;

use super::args::{label, name_arg, name_syntax_arg, scope_arg, with_scope};
use super::vault::Vault;
use super::NETWORK;
use crate::cli::SecretGrantArgs;
use crate::commands::auth::{consent, delegation_end, ensure_held, parse_did};
use crate::commands::{emit_document, Ctx};
use crate::error::{CliError, Exit};
use crate::output::confirm;
use crate::table;

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
        table::columns(records.iter().map(|r| {
            ["at", "outcome", "actor"]
                .map(|k| field(r[k].as_str().unwrap_or("-")).into_owned())
                .to_vec()
        }))
    })?;
    if cut {
        ctx.out.notice(&format!(
            "note: the trail is longer than {} pages; older records were not read",
            doc["pages"]
        ));
    }
    Ok(())
}

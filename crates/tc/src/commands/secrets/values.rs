//! The commands on stored values: `put`, `rotate` (the owner's), `get`, `ls` (with who
//! wrote each secret), `rm` and `info`.

use anyhow::Result;
use serde_json::{json, Value};
use tinycloud_sdk::secrets::{self as sdk};
use tinycloud_sdk::terminal::field;
use tinycloud_sdk::Error as SdkError;

use super::args::{label, name_arg, name_syntax_arg, scope_arg, with_scope};
use super::input::{read_value, refuse_value_in_argv};
use super::vault::Vault;
use crate::cli::SecretValueArgs;
use crate::commands::Ctx;
use crate::table;

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
        lines.push(vec![
            field(name).into_owned(),
            shown,
            format!("written by {}{refused}", field(&human)),
        ]);
        writers.insert(name.clone(), json);
    }
    ctx.out.result(
        &with_scope(
            json!({"secrets": names, "count": names.len(), "writers": writers, "versions": versions}),
            scope,
        ),
        || table::columns(lines),
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

//! `tc delegate …`: create (after showing what it allows), list (the space's, or with `--all`
//! the account's through `POST /delegation/query`), revoke. `use` is
//! `auth::import`.

use anyhow::Result;
use serde_json::{json, Value};
use tinycloud_auth::cid::parse_cid;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::capability;
use tinycloud_auth::text::{describe, RenderContext};
use tinycloud_sdk::delegation::{DelegationQuery, Grant};

use super::auth::{consent, delegation_end, ensure_held, parse_did};
use tinycloud_sdk::terminal::field;

use super::{emit_document, Ctx};
use crate::artifact::full_action;
use crate::cli::CreateArgs;
use crate::error::CliError;
use crate::output::confirm;
use crate::profile::Posture;

/// `tc delegate create`.
pub async fn create(ctx: &Ctx, args: &CreateArgs) -> Result<()> {
    let to = parse_did(&args.to)?;
    if !args.path.is_empty() {
        tinycloud_auth::resource::validate_path(&args.path)
            .map_err(|e| CliError::usage(format!("invalid path {:?}: {e}", args.path)))?;
    }
    let actions = args
        .actions
        .iter()
        .map(|a| full_action(&args.service, a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::usage)?;
    let (profile, client) = ctx.session_client()?;
    let session = client.active_session()?;
    let caps = match &args.space {
        None => client.grant_capabilities(&[Grant {
            service: args.service.clone(),
            path: args.path.clone(),
            actions,
        }])?,
        Some(name) => {
            let space = other_space(name, &client.space()?)?;
            let resource = if args.path.is_empty() {
                format!("{space}/{}", args.service)
            } else {
                format!("{space}/{}/{}", args.service, args.path)
            };
            actions
                .iter()
                .map(|a| capability(&resource, a).map_err(CliError::usage))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    ensure_held(&session, &caps)?;
    let until = delegation_end(&session, args.expiry);
    let viewer = (profile.config.posture == Posture::LocalOwnerKey)
        .then(|| client.space().map(|s| s.owner().clone()))
        .transpose()?;
    ctx.out
        .notice(&consent(&to.to_string(), &caps, viewer, until));
    confirm(&ctx.out, "Sign this delegation?", args.yes)?;
    let portable = client.delegate_to(&to, caps, args.expiry).await?;
    let value = serde_json::to_value(&portable)?;
    emit_document(ctx, args.output.as_deref(), &value, |path| {
        (
            json!({
                "cid": portable.cid,
                "delegate": portable.delegate_did,
                "expiry": portable.expiry,
                "output": path,
            }),
            format!(
                "Delegation {} written to {}.\nThe recipient uses it with: tc delegate use {}\nRevoke it with: tc delegate revoke {}",
                portable.cid,
                path.display(),
                path.display(),
                portable.cid
            ),
        )
    })?;
    Ok(())
}

/// `--space`: a space id, or the name of another space of the session space's owner.
fn other_space(name: &str, session_space: &SpaceId) -> Result<SpaceId, CliError> {
    let parsed = if name.contains(':') {
        name.parse::<SpaceId>()
    } else {
        SpaceId::new(session_space.owner().clone(), name)
    };
    parsed.map_err(|e| CliError::usage(format!("invalid space {name:?}: {e}")))
}

/// One plain-language line per resource of a delegation listed by the node.
fn describe_listed(caps: &Value) -> Vec<String> {
    let parsed: Vec<_> = caps
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| capability(c["resource"].as_str()?, c["ability"].as_str()?).ok())
                .collect()
        })
        .unwrap_or_default();
    describe(&parsed, &RenderContext::default())
}

/// `tc delegate ls`.
pub async fn ls(ctx: &Ctx) -> Result<()> {
    let (_, client) = ctx.session_client()?;
    let all = client.capabilities().await?;
    let mut rows: Vec<Value> = all
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(cid, d)| {
                    json!({
                        "cid": cid,
                        "delegator": d["delegator"],
                        "delegate": d["delegate"],
                        "capabilities": d["capabilities"].as_array().map(|caps| {
                            caps.iter()
                                .map(|c| json!({"resource": c["resource"], "ability": c["ability"]}))
                                .collect::<Vec<_>>()
                        }).unwrap_or_default(),
                        "parents": d["parents"],
                        "revoked": d["revoked"].as_bool().unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort_by(|a, b| a["cid"].as_str().cmp(&b["cid"].as_str()));
    ctx.out
        .result(&json!({"delegations": rows, "count": rows.len()}), || {
            if rows.is_empty() {
                return "No delegations.".into();
            }
            let mut out = String::new();
            for r in &rows {
                let revoked = if r["revoked"] == true {
                    "  (revoked)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "{}{revoked}\n  from: {}\n  to:   {}\n",
                    field(r["cid"].as_str().unwrap_or_default()),
                    field(r["delegator"].as_str().unwrap_or_default()),
                    field(r["delegate"].as_str().unwrap_or_default()),
                ));
                for line in describe_listed(&r["capabilities"]) {
                    out.push_str(&format!("  - {}\n", field(&line)));
                }
            }
            out
        })?;
    Ok(())
}

/// `tc delegate ls --all`: every delegation the account issued or received, with its status.
pub async fn ls_all(ctx: &Ctx) -> Result<()> {
    let (_, client) = ctx.session_client()?;
    let items = client.all_delegations(&DelegationQuery::default()).await?;
    let rows: Vec<Value> = items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    ctx.out
        .result(&json!({"delegations": rows, "count": rows.len()}), || {
            if items.is_empty() {
                return "No delegations.".into();
            }
            let mut out = String::new();
            for d in &items {
                out.push_str(&format!(
                    "{}  {} ({})\n  from: {}\n  to:   {}\n",
                    field(&d.cid),
                    field(&d.direction),
                    d.status.as_str(),
                    field(&d.delegator_did),
                    field(&d.delegate_did),
                ));
                if let Some(exp) = &d.expires_at {
                    out.push_str(&format!("  expires: {}\n", field(exp)));
                }
                if let Some(at) = &d.revoked_at {
                    out.push_str(&format!("  revoked: {}\n", field(at)));
                }
                if let Some(anc) = &d.revoked_ancestor_cid {
                    out.push_str(&format!("  revoked through: {}\n", field(anc)));
                }
                let caps: Vec<_> = d
                    .resources
                    .iter()
                    .flat_map(|r| {
                        r.actions
                            .iter()
                            .filter_map(|a| capability(&r.resource, a).ok())
                    })
                    .collect();
                for line in describe(&caps, &RenderContext::default()) {
                    out.push_str(&format!("  - {}\n", field(&line)));
                }
            }
            out
        })?;
    Ok(())
}

/// `tc delegate revoke`.
pub async fn revoke(ctx: &Ctx, cid: &str) -> Result<()> {
    let parsed =
        parse_cid(cid.trim()).map_err(|e| CliError::usage(format!("invalid CID {cid:?}: {e}")))?;
    let (_, client) = ctx.session_client()?;
    client.revoke(&parsed).await?;
    ctx.out
        .done(&json!({"cid": parsed.to_string(), "revoked": true}), || {
            format!("Revoked {parsed} (and everything delegated from it)")
        })?;
    Ok(())
}

//! The JSON artifacts of the delegate flow and the `--cap` syntax.
//!
//! - request (`tc auth request`, agent → owner): `{kind:"tinycloud.auth.request", version:1, …}`
//! - delegation (`tc auth grant`, owner → agent): `{kind:"tinycloud.auth.delegation",
//!   version:1, requestId, delegationCid, delegation: <PortableDelegation>}`

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::validate_path;
use tinycloud_auth::token::Delegation;
use tinycloud_sdk::delegation::{Grant, PortableDelegation};

use crate::error::CliError;

/// Kind of a capability request.
pub const REQUEST_KIND: &str = "tinycloud.auth.request";
/// Kind of a granted delegation.
pub const DELEGATION_KIND: &str = "tinycloud.auth.delegation";
/// Artifact format version.
pub const VERSION: u32 = 1;

/// One requested capability set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedCap {
    /// Short service name (`kv`, `sql`, …).
    pub service: String,
    /// Space name or id, when the request names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// Path inside the service; empty for the whole service.
    pub path: String,
    /// Full abilities (`tinycloud.kv/get`).
    pub actions: Vec<String>,
}

impl RequestedCap {
    /// As an SDK grant in the granter's space.
    pub fn to_grant(&self) -> Grant {
        Grant {
            service: self.service.clone(),
            path: self.path.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// A capability request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    /// [`REQUEST_KIND`].
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    /// Random id, echoed in the grant.
    pub request_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// The requesting profile.
    pub profile: String,
    /// The node it uses.
    pub host: String,
    /// Who the delegation must target (`did:key:…`, no fragment).
    pub session_did: String,
    /// What it asks for.
    pub requested: Vec<RequestedCap>,
    /// How long, e.g. `7d` (or an RFC 3339 instant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_expiry: Option<String>,
}

/// A granted delegation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegationArtifact {
    /// [`DELEGATION_KIND`].
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    /// The request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// CID of the delegation.
    pub delegation_cid: String,
    /// The delegation.
    pub delegation: PortableDelegation,
}

fn check_service(service: &str) -> Result<(), String> {
    let ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid service {service:?}"))
    }
}

/// Expands `get` to `tinycloud.<service>/get` and checks the result is an ability.
pub fn full_action(service: &str, action: &str) -> Result<String, String> {
    let action = action.trim();
    if action.is_empty() {
        return Err("empty action".into());
    }
    let full = if action.contains('/') {
        action.to_owned()
    } else {
        format!("tinycloud.{service}/{action}")
    };
    full.parse::<Ability>()
        .map_err(|e| format!("invalid action {action:?}: {e}"))?;
    Ok(full)
}

/// Parses `<service>:<path>:<actions-csv>` (e.g. `kv:notes/:get,list`) or the reference form
/// `tinycloud.<service>:<space>:<path>:<actions-csv>`.
pub fn parse_cap_spec(spec: &str) -> Result<RequestedCap, String> {
    let bad = || {
        format!("invalid capability {spec:?}: expected <service>:<path>:<actions>, e.g. kv:notes/:get,list")
    };
    let (service, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (middle, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
    let (service, space, path) = match service.strip_prefix("tinycloud.") {
        Some(s) => match middle.rsplit_once(':') {
            Some((space, path)) => (s, Some(space.to_owned()), path),
            None => (s, None, middle),
        },
        None => (service, None, middle),
    };
    check_service(service)?;
    if !path.is_empty() {
        validate_path(path).map_err(|e| format!("invalid path {path:?}: {e}"))?;
    }
    let actions = actions
        .split(',')
        .map(|a| full_action(service, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RequestedCap {
        service: service.to_owned(),
        space: space.filter(|s| !s.is_empty()),
        path: path.to_owned(),
        actions,
    })
}

/// Reads what `tc auth import` / `tc delegate use` accept: a delegation artifact or a bare
/// portable delegation. Returns the request id when there is one.
pub fn parse_delegation(
    text: &str,
) -> Result<(PortableDelegation, Delegation, Option<String>), CliError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| CliError::usage(format!("not a delegation (must be valid JSON): {e}")))?;
    let (portable, request_id) = match value.get("kind").and_then(Value::as_str) {
        Some(DELEGATION_KIND) => {
            let a: DelegationArtifact = serde_json::from_value(value)
                .map_err(|e| CliError::usage(format!("invalid delegation artifact: {e}")))?;
            if a.version != VERSION {
                return Err(CliError::usage(format!(
                    "unsupported delegation artifact version {}",
                    a.version
                )));
            }
            if a.delegation.cid != a.delegation_cid {
                return Err(CliError::usage(
                    "the artifact's delegationCid does not match its delegation",
                ));
            }
            (a.delegation, a.request_id)
        }
        Some(REQUEST_KIND) => {
            return Err(
                CliError::usage("this is a capability request, not a delegation")
                    .hint("the owner grants it with `tc auth grant <file>`; import the result"),
            )
        }
        Some(other) => {
            return Err(CliError::usage(format!(
                "unsupported artifact kind {other:?}"
            )))
        }
        None => {
            let p: PortableDelegation = serde_json::from_value(value)
                .map_err(|e| CliError::usage(format!("not a portable delegation: {e}")))?;
            (p, None)
        }
    };
    let json = serde_json::to_string(&portable)
        .map_err(|e| CliError::general(format!("cannot re-encode the delegation: {e}")))?;
    let (portable, delegation) =
        PortableDelegation::from_json(&json).map_err(|e| CliError::usage(e.to_string()))?;
    Ok((portable, delegation, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_specs() {
        let c = parse_cap_spec("kv:notes/:get,list").unwrap();
        assert_eq!(c.service, "kv");
        assert_eq!(c.path, "notes/");
        assert_eq!(c.space, None);
        assert_eq!(c.actions, ["tinycloud.kv/get", "tinycloud.kv/list"]);
        let whole = parse_cap_spec("kv::get").unwrap();
        assert_eq!(whole.path, "");
        let full = parse_cap_spec("sql:main:tinycloud.sql/read").unwrap();
        assert_eq!(full.actions, ["tinycloud.sql/read"]);
    }

    #[test]
    fn reference_specs() {
        let c = parse_cap_spec(
            "tinycloud.kv:tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default:notes/a.md:get",
        )
        .unwrap();
        assert_eq!(c.service, "kv");
        assert_eq!(
            c.space.as_deref(),
            Some("tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default")
        );
        assert_eq!(c.path, "notes/a.md");
        let named = parse_cap_spec("tinycloud.kv:default:notes/:get").unwrap();
        assert_eq!(named.space.as_deref(), Some("default"));
        assert_eq!(named.path, "notes/");
    }

    #[test]
    fn bad_specs() {
        for bad in [
            "",
            "kv",
            "kv:notes/",
            "kv:notes/:",
            "KV:notes/:get",
            "kv:notes/../x:get",
            "kv:notes/:get,,list",
        ] {
            assert!(parse_cap_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_are_not_delegations() {
        let req = serde_json::json!({"kind": REQUEST_KIND, "version": 1});
        let e = parse_delegation(&req.to_string()).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(parse_delegation("{not json").is_err());
    }
}

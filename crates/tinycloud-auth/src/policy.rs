//! Policy capabilities: the normalized `{service, space, path, actions, caveats?}` form that
//! apps and manifests use to name a capability inside one of the owner's spaces, with strict
//! validation, canonicalization (NFC paths, decoded unreserved percent-escapes, sorted
//! de-duplicated actions, JCS), a SHA-256 identity hash, and containment.
//!
//! Path rule here is the policy one: a path ending in `/` is a prefix, any other path names
//! exactly one key (so `docs/index.md` does not cover `docs/index.md/child`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::ability::{registry_actions, Ability};
use crate::resource::validate_path;
use crate::sql_caveat::{self, SqlCaveat, SqlCaveatError};

/// Rejections; [`PolicyError::code`] gives the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not an object, or a required field missing or of the wrong type.
    #[error("malformed policy capability: {0}")]
    Malformed(String),
    /// A key other than service, space, path, actions, caveats.
    #[error("unknown policy capability key {0:?}")]
    UnknownKey(String),
    /// A path with dot segments, control characters or invalid escapes.
    #[error("malformed path {0:?}")]
    MalformedPath(String),
    /// A space that is not a concrete space name.
    #[error("malformed space {0:?}")]
    MalformedSpace(String),
    /// An action outside the service's registry.
    #[error("action {0:?} is not a registered action of the service")]
    MalformedAction(String),
    /// A short action name (`read`) where a full ability (`tinycloud.kv/get`) is required.
    #[error("action {0:?} must be a full ability such as tinycloud.kv/get")]
    ShortActionName(String),
    /// No actions.
    #[error("a policy capability needs at least one action")]
    EmptyActions,
    /// Unknown service.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// Caveats that are not a valid SQL caveat object.
    #[error("invalid caveats: {0}")]
    Caveats(#[from] SqlCaveatError),
}

impl PolicyError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Malformed(_) => "policy-capability-malformed",
            PolicyError::UnknownKey(_) => "policy-capability-unknown-key",
            PolicyError::MalformedPath(_) => "policy-capability-malformed-path",
            PolicyError::MalformedSpace(_) => "policy-capability-malformed-space",
            PolicyError::MalformedAction(_) => "policy-capability-malformed-action",
            PolicyError::ShortActionName(_) => "policy-capability-malformed-action-shortname",
            PolicyError::EmptyActions => "policy-capability-empty-actions",
            PolicyError::UnknownService(_) => "policy-capability-malformed-service",
            PolicyError::Caveats(e) => e.code(),
        }
    }
}

/// Why one policy capability does not contain another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainmentError {
    /// Different service.
    #[error("service differs")]
    ServiceMismatch,
    /// Different space.
    #[error("space differs")]
    SpaceMismatch,
    /// Path outside the granted path.
    #[error("path outside the granted path")]
    PathMismatch,
    /// An action not granted.
    #[error("action {0} not granted")]
    ActionNotSubset(String),
    /// Caveats wider than the granted ones.
    #[error("caveats widen the grant")]
    CaveatsWidened,
    /// SQL caveat containment.
    #[error("{0}")]
    Sql(#[from] SqlCaveatError),
}

impl ContainmentError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ContainmentError::ServiceMismatch => "containment-service-mismatch",
            ContainmentError::SpaceMismatch => "containment-space-mismatch",
            ContainmentError::PathMismatch => "containment-path-mismatch",
            ContainmentError::ActionNotSubset(_) => "containment-action-not-subset",
            ContainmentError::CaveatsWidened => "containment-caveats-widened",
            ContainmentError::Sql(e) => e.code(),
        }
    }
}

/// A validated, canonical policy capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCapability {
    /// Ability namespace, e.g. `tinycloud.kv`.
    pub service: String,
    /// Space name inside the owner's account, e.g. `applications`.
    pub space: String,
    /// Path (prefix when it ends in `/`).
    pub path: String,
    /// Sorted, de-duplicated full abilities.
    pub actions: Vec<String>,
    /// Caveat object, if any.
    pub caveats: Option<Map<String, Value>>,
}

/// Domain separator of the capability hash.
pub const HASH_DOMAIN: &str = "xyz.tinycloud.policy/PolicyCapability/v0";

const KEYS: [&str; 5] = ["service", "space", "path", "actions", "caveats"];

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, PolicyError> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| PolicyError::Malformed(format!("`{key}` must be a string")))
}

/// Decodes `%XX` escapes of RFC 3986 unreserved characters; other escapes are kept (upper-case
/// hex). Invalid escapes are errors.
fn decode_unreserved(path: &str) -> Result<String, PolicyError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| PolicyError::MalformedPath(crate::excerpt::truncate(path)))?;
            let byte = u8::from_str_radix(hex, 16)
                .map_err(|_| PolicyError::MalformedPath(crate::excerpt::truncate(path)))?;
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(byte as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

impl PolicyCapability {
    /// Validates and canonicalizes a JSON policy capability.
    pub fn from_json(value: &Value) -> Result<Self, PolicyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| PolicyError::Malformed("not a JSON object".into()))?;
        for key in ["service", "space", "path", "actions"] {
            if !obj.contains_key(key) {
                return Err(PolicyError::Malformed(format!("missing `{key}`")));
            }
        }
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(PolicyError::UnknownKey(crate::excerpt::truncate(k)));
        }
        let service = required_str(obj, "service")?;
        let registry =
            registry_actions(service).ok_or_else(|| PolicyError::UnknownService(service.into()))?;
        let space = required_str(obj, "space")?;
        let space_ok = !space.is_empty()
            && space
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
        if !space_ok {
            return Err(PolicyError::MalformedSpace(crate::excerpt::truncate(space)));
        }
        let raw_path = required_str(obj, "path")?;
        let path: String = decode_unreserved(raw_path)?.nfc().collect();
        validate_path(&path)
            .map_err(|_| PolicyError::MalformedPath(crate::excerpt::truncate(raw_path)))?;
        let actions = obj
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| PolicyError::Malformed("`actions` must be an array".into()))?;
        let mut set = BTreeSet::new();
        for a in actions {
            let a = a
                .as_str()
                .ok_or_else(|| PolicyError::Malformed("actions must be strings".into()))?;
            let Ok(ability) = a.parse::<Ability>() else {
                return Err(if a.contains('/') {
                    PolicyError::MalformedAction(crate::excerpt::truncate(a))
                } else {
                    PolicyError::ShortActionName(crate::excerpt::truncate(a))
                });
            };
            if ability.namespace() != service || !registry.contains(&ability.name()) {
                return Err(PolicyError::MalformedAction(crate::excerpt::truncate(a)));
            }
            set.insert(a.to_owned());
        }
        if set.is_empty() {
            return Err(PolicyError::EmptyActions);
        }
        let caveats = match obj.get("caveats") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                // Shape only here: containment validates the SQL after the narrowing rules, so
                // that a widened request reports the narrowing rule it breaks.
                SqlCaveat::from_caveat_unvalidated(m)?;
                Some(m.clone())
            }
            Some(_) => return Err(PolicyError::Malformed("`caveats` must be an object".into())),
        };
        Ok(PolicyCapability {
            service: service.to_owned(),
            space: space.to_owned(),
            path,
            actions: set.into_iter().collect(),
            caveats,
        })
    }

    /// The canonical JSON object.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("service".into(), self.service.clone().into());
        obj.insert("space".into(), self.space.clone().into());
        obj.insert("path".into(), self.path.clone().into());
        obj.insert(
            "actions".into(),
            Value::Array(self.actions.iter().cloned().map(Value::String).collect()),
        );
        if let Some(c) = &self.caveats {
            obj.insert("caveats".into(), Value::Object(c.clone()));
        }
        Value::Object(obj)
    }

    /// JCS (RFC 8785) bytes of the canonical object.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// Lower-case hex SHA-256 of `DOMAIN || 0x00 || canonical bytes` (domain-separated so a
    /// capability hash can never collide with another structure's hash).
    pub fn hash_hex(&self) -> String {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN.as_bytes());
        h.update([0u8]);
        h.update(self.canonical_bytes());
        hex::encode(h.finalize())
    }

    /// Whether `req` is contained in `self` (the grant).
    pub fn contains(&self, req: &PolicyCapability) -> Result<(), ContainmentError> {
        if self.service != req.service {
            return Err(ContainmentError::ServiceMismatch);
        }
        if self.space != req.space {
            return Err(ContainmentError::SpaceMismatch);
        }
        let path_ok = if self.path.ends_with('/') {
            req.path.starts_with(&self.path)
        } else {
            req.path == self.path
        };
        if !path_ok {
            return Err(ContainmentError::PathMismatch);
        }
        for action in &req.actions {
            let wanted: Ability = action
                .parse()
                .map_err(|_| ContainmentError::ActionNotSubset(action.clone()))?;
            let granted = self
                .actions
                .iter()
                .filter_map(|a| a.parse::<Ability>().ok())
                .any(|held| held.covers(&wanted));
            if !granted {
                return Err(ContainmentError::ActionNotSubset(action.clone()));
            }
        }
        match (&self.caveats, &req.caveats) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(ContainmentError::CaveatsWidened),
            (Some(g), Some(r)) => match (
                SqlCaveat::from_caveat(g)?,
                SqlCaveat::from_caveat_unvalidated(r)?,
            ) {
                (Some(gs), Some(rs)) => Ok(sql_caveat::contains(&gs, &rs)?),
                _ if g == r => Ok(()),
                _ => Err(ContainmentError::CaveatsWidened),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_unreserved_only() {
        assert_eq!(decode_unreserved("a%2Db%2fc%7e").unwrap(), "a-b%2Fc~");
        assert!(decode_unreserved("a%2").is_err());
        assert!(decode_unreserved("a%zz").is_err());
    }

    #[test]
    fn short_names_and_foreign_actions() {
        let base = json!({"service":"tinycloud.kv","space":"s","path":"p/","actions":["get"]});
        assert_eq!(
            PolicyCapability::from_json(&base).unwrap_err().code(),
            "policy-capability-malformed-action-shortname"
        );
        let foreign = json!({"service":"tinycloud.kv","space":"s","path":"p/","actions":["tinycloud.sql/read"]});
        assert_eq!(
            PolicyCapability::from_json(&foreign).unwrap_err().code(),
            "policy-capability-malformed-action"
        );
    }
}

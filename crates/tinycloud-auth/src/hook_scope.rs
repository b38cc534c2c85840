//! Hook subscription scopes: what a subscriber watches (one service of one space, optionally
//! under a path prefix and only for some write abilities), the `<space>/hooks/<service>[/…]`
//! resource a subscription needs, and which write events fall in a scope. Shared by the node
//! (which enforces it) and clients (which build it), so the rule exists once.

use serde::{Deserialize, Serialize};

use crate::ability::Ability;
use crate::resource::{validate_path, SpaceId};

/// A scope the node cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookScopeError {
    /// Only `kv` and `sql` have write events.
    #[error("unsupported hook service {0:?} (kv or sql)")]
    Service(String),
    /// The prefix is not a valid resource path.
    #[error("invalid path prefix: {0}")]
    Path(String),
    /// An ability filter that names no write ability of the service.
    #[error("ability filter {ability:?} is not a {service} write ability")]
    Ability {
        /// The filter.
        ability: String,
        /// The scope's service.
        service: String,
    },
}

/// What a subscriber wants to see. Serialized as the wire expects: `{space, service,
/// pathPrefix?, abilities?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookScope {
    /// Space id.
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware path prefix (`notes` matches `notes` and `notes/…`, not `notesx`). For
    /// SQL, paths are `<db>/<table>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only these abilities (e.g. `tinycloud.kv/put`, `tinycloud.kv/del`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
}

/// The write abilities of a hook service.
fn write_abilities(service: &str) -> &'static [&'static str] {
    match service {
        "kv" => &["tinycloud.kv/put", "tinycloud.kv/del"],
        "sql" => &[
            "tinycloud.sql/write",
            "tinycloud.sql/admin",
            "tinycloud.sql/schema",
        ],
        _ => &[],
    }
}

/// The canonical text of an ability (`kv/delete` → `kv/del`); unparsable text as is.
fn canonical(ability: &str) -> String {
    ability
        .parse::<Ability>()
        .map(|a| a.canonical().to_string())
        .unwrap_or_else(|_| ability.to_owned())
}

impl HookScope {
    /// Every write to `service` (`kv` or `sql`) in `space`.
    pub fn new(space: &SpaceId, service: &str) -> Self {
        HookScope {
            space: space.to_string(),
            service: service.to_owned(),
            path_prefix: None,
            abilities: None,
        }
    }

    /// Only paths under `prefix` (segment-aware; leading and trailing `/` are ignored).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only events of these abilities.
    pub fn with_abilities(mut self, abilities: &[&str]) -> Self {
        self.abilities = Some(abilities.iter().map(|a| (*a).to_owned()).collect());
        self
    }

    /// The prefix without surrounding slashes; `None` for the whole service.
    pub fn prefix(&self) -> Option<&str> {
        self.path_prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
    }

    /// Validates a scope and trims `/` from its prefix. Ability filters keep their spelling
    /// (deprecated aliases such as `tinycloud.kv/delete` are accepted and match their target).
    pub fn normalized(mut self) -> Result<HookScope, HookScopeError> {
        let allowed = write_abilities(&self.service);
        if allowed.is_empty() {
            return Err(HookScopeError::Service(self.service));
        }
        let prefix = self.prefix().map(str::to_owned);
        if let Some(p) = &prefix {
            validate_path(p).map_err(|e| HookScopeError::Path(e.to_string()))?;
        }
        self.path_prefix = prefix;
        if let Some(bad) = self
            .abilities
            .iter()
            .flatten()
            .find(|a| !allowed.contains(&canonical(a).as_str()))
        {
            return Err(HookScopeError::Ability {
                ability: bad.clone(),
                service: self.service,
            });
        }
        Ok(self)
    }

    /// The `<space>/hooks/<service>[/<prefix>]` resource a subscription needs.
    pub fn resource(&self) -> String {
        match self.prefix() {
            Some(p) => format!("{}/hooks/{}/{p}", self.space, self.service),
            None => format!("{}/hooks/{}", self.space, self.service),
        }
    }

    /// Whether a write event (space, service, path, ability) falls in the scope: the same
    /// space and service, a path equal to or under the prefix (by whole segments), and an
    /// ability the filter names (compared in canonical form).
    pub fn matches(&self, space: &str, service: &str, path: &str, ability: &str) -> bool {
        space == self.space
            && service == self.service
            && self.prefix().is_none_or(|p| {
                path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
            })
            && self.abilities.as_ref().is_none_or(|filter| {
                let ability = canonical(ability);
                filter.iter().any(|f| canonical(f) == ability)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(service: &str, prefix: Option<&str>, abilities: Option<&[&str]>) -> HookScope {
        HookScope {
            space: "tinycloud:pkh:eip155:1:0xabc:default".into(),
            service: service.into(),
            path_prefix: prefix.map(Into::into),
            abilities: abilities.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn normalizing_validates_and_trims() {
        let s = scope("kv", Some("/notes/"), None).normalized().unwrap();
        assert_eq!(s.path_prefix.as_deref(), Some("notes"));
        assert_eq!(s.resource(), format!("{}/hooks/kv/notes", s.space));
        let whole = scope("kv", Some("//"), None).normalized().unwrap();
        assert_eq!(whole.path_prefix, None);
        assert_eq!(whole.resource(), format!("{}/hooks/kv", whole.space));
        assert!(matches!(
            scope("duckdb", None, None).normalized(),
            Err(HookScopeError::Service(_))
        ));
        assert!(matches!(
            scope("kv", Some("a/../b"), None).normalized(),
            Err(HookScopeError::Path(_))
        ));
        assert!(matches!(
            scope("kv", None, Some(&["tinycloud.kv/get"])).normalized(),
            Err(HookScopeError::Ability { .. })
        ));
        assert!(matches!(
            scope("sql", None, Some(&["tinycloud.kv/put"])).normalized(),
            Err(HookScopeError::Ability { .. })
        ));
        assert!(scope("kv", None, Some(&["tinycloud.kv/delete"]))
            .normalized()
            .is_ok());
    }

    #[test]
    fn matching_is_segment_and_alias_aware() {
        let s = scope("kv", Some("notes"), Some(&["tinycloud.kv/delete"]));
        let space = s.space.clone();
        assert!(s.matches(&space, "kv", "notes/a", "tinycloud.kv/del"));
        assert!(s.matches(&space, "kv", "notes", "tinycloud.kv/delete"));
        assert!(!s.matches(&space, "kv", "notesx", "tinycloud.kv/del"));
        assert!(!s.matches(&space, "kv", "notes/a", "tinycloud.kv/put"));
        assert!(!s.matches(&space, "sql", "notes/a", "tinycloud.kv/del"));
        assert!(!s.matches("tinycloud:other", "kv", "notes/a", "tinycloud.kv/del"));
        let all = scope("sql", None, None);
        assert!(all.matches(&space, "sql", "db/t", "tinycloud.sql/write"));
    }
}

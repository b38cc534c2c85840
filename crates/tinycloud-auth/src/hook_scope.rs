//! Hook subscription scopes: what a subscriber watches (one service of one space, optionally
//! under a path prefix and only for some write abilities), the `<space>/hooks/<service>[/…]`
//! resource a subscription needs, and which write events fall in a scope. Shared by the node
//! (which enforces it) and clients (which build it), so the rule exists once.

use serde::{Deserialize, Serialize};

use crate::ability::Ability;
use crate::resource::{
    database_extends, sql_database, sql_event_database, validate_path, SpaceId, SQL_SERVICE,
};

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
    /// SQL it names databases the way SQL resources do: `app1` is database `app1` only (never
    /// `app1/secrets`), `xyz.listen/` the databases under it.
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

    /// The prefix without surrounding slashes (for SQL, a trailing `/` is kept: it makes the
    /// prefix a namespace of databases); `None` for the whole service.
    pub fn prefix(&self) -> Option<&str> {
        self.path_prefix
            .as_deref()
            .map(|p| {
                if self.service == SQL_SERVICE {
                    p.trim_start_matches('/')
                } else {
                    p.trim_matches('/')
                }
            })
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
        match &prefix {
            Some(p) if self.service == SQL_SERVICE => {
                sql_database(Some(p.strip_suffix('/').unwrap_or(p)))
                    .map_err(|e| HookScopeError::Path(e.to_string()))?;
            }
            Some(p) => validate_path(p).map_err(|e| HookScopeError::Path(e.to_string()))?,
            None => {}
        }
        self.path_prefix = prefix;
        // An empty filter means every write ability, as in the reference (whose clients send
        // `"abilities": []` for "no filter"); kept as an empty list it would match nothing.
        if self.abilities.as_ref().is_some_and(Vec::is_empty) {
            self.abilities = None;
        }
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
    /// space and service, a path equal to or under the prefix (by whole segments; for SQL, an
    /// event of a database the prefix names, as SQL containment decides — the event path is
    /// `<db>/<table>` as [`sql_event_path`](crate::resource::sql_event_path) builds it), and an
    /// ability the filter names (compared in canonical form).
    pub fn matches(&self, space: &str, service: &str, path: &str, ability: &str) -> bool {
        space == self.space
            && service == self.service
            && self.prefix().is_none_or(|p| {
                if self.service == SQL_SERVICE {
                    sql_event_database(path).is_some_and(|db| database_extends(db, p))
                } else {
                    crate::resource::path_extends(path, p)
                }
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
        // `"abilities": []` (what reference clients send for "no filter") is every write.
        let any = scope("kv", None, Some(&[])).normalized().unwrap();
        assert_eq!(any.abilities, None);
        assert!(any.matches(&any.space, "kv", "a", "tinycloud.kv/put"));
        assert!(any.matches(&any.space, "kv", "a", "tinycloud.kv/del"));
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

    #[test]
    fn sql_scopes_are_database_exact() {
        use crate::resource::sql_event_path;
        let w = "tinycloud.sql/write";
        let app1 = scope("sql", Some("/app1"), None).normalized().unwrap();
        let space = app1.space.clone();
        let ev = |db: &str, table: &str| sql_event_path(db, table);
        assert!(app1.matches(&space, "sql", &ev("app1", "t"), w));
        assert!(!app1.matches(&space, "sql", &ev("app1/secrets", "t"), w));
        assert!(!app1.matches(&space, "sql", &ev("app10", "t"), w));
        // a table name with `/` cannot pose as another database
        assert_eq!(ev("app1/secrets", "a/b"), "app1/secrets/a%2Fb");
        assert!(!app1.matches(&space, "sql", &ev("app1/secrets", "a/b"), w));
        assert!(app1.matches(&space, "sql", &ev("app1", "secrets/t"), w));
        // a trailing `/` is a namespace of databases
        let ns = scope("sql", Some("xyz.listen/"), None)
            .normalized()
            .unwrap();
        assert_eq!(ns.prefix(), Some("xyz.listen/"));
        assert!(ns.matches(&space, "sql", &ev("xyz.listen/chats", "t"), w));
        assert!(!ns.matches(&space, "sql", &ev("xyz.listen", "t"), w));
        assert_eq!(ns.resource(), format!("{space}/hooks/sql/xyz.listen/"));
        // SQL prefixes must be database names
        for bad in ["app1//", "a b", ".hidden", "a/../b"] {
            assert!(
                matches!(
                    scope("sql", Some(bad), None).normalized(),
                    Err(HookScopeError::Path(_))
                ),
                "{bad}"
            );
        }
        // the hooks grant on one database does not cover another's scope
        let space = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";
        let app1 = HookScope {
            space: space.into(),
            ..app1
        };
        let grant: crate::resource::Resource = format!("{space}/hooks/sql/app1").parse().unwrap();
        let other: crate::resource::Resource =
            format!("{space}/hooks/sql/app1/secrets").parse().unwrap();
        let same: crate::resource::Resource = app1.resource().parse().unwrap();
        assert!(same.extends(&grant));
        assert!(!other.extends(&grant));
        let whole: crate::resource::Resource = format!("{space}/hooks/sql").parse().unwrap();
        assert!(other.extends(&whole));
        let kv_grant: crate::resource::Resource =
            format!("{space}/hooks/kv/notes").parse().unwrap();
        let kv_child: crate::resource::Resource =
            format!("{space}/hooks/kv/notes/a").parse().unwrap();
        assert!(
            kv_child.extends(&kv_grant),
            "kv hook scopes stay segment-aware"
        );
    }
}

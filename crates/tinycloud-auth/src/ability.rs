//! Abilities (`tinycloud.kv/get`, …): the registry of the reference protocol, deprecated aliases
//! and implications.
//!
//! Containment rule: a held ability satisfies a required one when, after resolving aliases, the
//! required ability is in the held ability's implication closure. Unknown abilities (outside the
//! registry) only satisfy themselves.

use std::fmt;
use std::str::FromStr;

use crate::excerpt::truncate;

/// Errors parsing an ability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbilityError {
    /// Not `<namespace>/<name>` with non-empty parts.
    #[error("invalid ability {0:?}: expected <namespace>/<name>")]
    Malformed(String),
}

/// An ability: `<namespace>/<name>`, e.g. `tinycloud.kv/get`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ability {
    namespace: String,
    name: String,
}

fn valid_part(s: &str, allow_star: bool) -> bool {
    (allow_star && s == "*")
        || (!s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
}

impl Ability {
    /// Builds an ability from its two parts.
    pub fn new(namespace: &str, name: &str) -> Result<Self, AbilityError> {
        if !valid_part(namespace, false) || !valid_part(name, true) {
            return Err(AbilityError::Malformed(truncate(&format!(
                "{namespace}/{name}"
            ))));
        }
        Ok(Ability {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The namespace (`tinycloud.kv`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The action name (`get`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The short service name of a `tinycloud.<service>` namespace.
    pub fn service(&self) -> Option<&str> {
        self.namespace.strip_prefix("tinycloud.")
    }

    /// The canonical form: deprecated aliases resolved (`kv/delete` → `kv/del`,
    /// `sql/select` → `sql/read`, `duckdb/select` → `duckdb/read`).
    pub fn canonical(&self) -> Ability {
        match alias_target(&self.namespace, &self.name) {
            Some(target) => Ability {
                namespace: self.namespace.clone(),
                name: target.to_owned(),
            },
            None => self.clone(),
        }
    }

    /// Whether this (held) ability satisfies `required`.
    pub fn covers(&self, required: &Ability) -> bool {
        if self.namespace != required.namespace {
            return false;
        }
        let held = self.canonical();
        let req = required.canonical();
        held.name == req.name || implies(&held.namespace, &held.name, &req.name)
    }

    /// Whether the ability is in the reference's registry (aliases included).
    pub fn is_registered(&self) -> bool {
        registry_actions(&self.namespace)
            .is_some_and(|actions| actions.contains(&self.name.as_str()))
    }
}

impl FromStr for Ability {
    type Err = AbilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ns, name) = s
            .split_once('/')
            .ok_or_else(|| AbilityError::Malformed(truncate(s)))?;
        Ability::new(ns, name)
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ability({self})")
    }
}

/// Every registered action per namespace, including deprecated aliases.
pub fn registry_actions(namespace: &str) -> Option<&'static [&'static str]> {
    Some(match namespace {
        "tinycloud.kv" => &["get", "list", "metadata", "put", "del", "delete"],
        "tinycloud.sql" => &["read", "write", "schema", "admin", "*", "select"],
        "tinycloud.duckdb" => &["read", "write", "admin", "import", "export", "*", "select"],
        "tinycloud.capabilities" => &["read"],
        "tinycloud.delegation" => &["status", "list", "revoke"],
        "tinycloud.hooks" => &["subscribe", "register", "list", "unregister"],
        "tinycloud.encryption" => &["decrypt", "network.create", "network.revoke"],
        "tinycloud.space" => &["host", "create", "list", "info"],
        "tinycloud.vfs" => &["get", "list", "metadata", "put", "delete"],
        _ => return None,
    })
}

fn alias_target(namespace: &str, name: &str) -> Option<&'static str> {
    match (namespace, name) {
        ("tinycloud.kv", "delete") => Some("del"),
        ("tinycloud.sql", "select") | ("tinycloud.duckdb", "select") => Some("read"),
        _ => None,
    }
}

/// Direct implications (`held` ⊇ each listed name), on canonical names. The closure is small
/// enough to walk directly.
fn direct_implications(namespace: &str, held: &str) -> &'static [&'static str] {
    match (namespace, held) {
        ("tinycloud.sql", "*") => &["read", "write", "schema", "admin"],
        ("tinycloud.sql", "admin") => &["schema"],
        ("tinycloud.duckdb", "*") => &["read", "write", "admin", "import", "export"],
        _ => &[],
    }
}

fn implies(namespace: &str, held: &str, required: &str) -> bool {
    direct_implications(namespace, held)
        .iter()
        .any(|n| *n == required || implies(namespace, n, required))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ability {
        s.parse().unwrap()
    }

    #[test]
    fn aliases_are_symmetric() {
        assert!(a("tinycloud.kv/delete").covers(&a("tinycloud.kv/del")));
        assert!(a("tinycloud.kv/del").covers(&a("tinycloud.kv/delete")));
        assert!(a("tinycloud.sql/select").covers(&a("tinycloud.sql/read")));
        assert!(a("tinycloud.sql/read").covers(&a("tinycloud.sql/select")));
    }

    #[test]
    fn implications() {
        assert!(a("tinycloud.sql/admin").covers(&a("tinycloud.sql/schema")));
        assert!(!a("tinycloud.sql/schema").covers(&a("tinycloud.sql/admin")));
        for n in ["read", "select", "write", "schema", "admin", "*"] {
            assert!(
                a("tinycloud.sql/*").covers(&a(&format!("tinycloud.sql/{n}"))),
                "{n}"
            );
        }
        assert!(!a("tinycloud.sql/write").covers(&a("tinycloud.sql/*")));
        assert!(a("tinycloud.duckdb/*").covers(&a("tinycloud.duckdb/import")));
        assert!(!a("tinycloud.kv/put").covers(&a("tinycloud.kv/get")));
        assert!(!a("tinycloud.kv/get").covers(&a("tinycloud.sql/get")));
        assert!(
            !a("tinycloud.kv/*").covers(&a("tinycloud.kv/get")),
            "no kv wildcard in the registry"
        );
    }

    #[test]
    fn parse_errors() {
        for bad in ["", "kv", "/get", "kv/", "kv/get/x", "kv/ge t", "*/get"] {
            assert!(bad.parse::<Ability>().is_err(), "{bad:?}");
        }
        assert_eq!(
            a("tinycloud.encryption/network.create").name(),
            "network.create"
        );
        assert_eq!(a("tinycloud.kv/get").service(), Some("kv"));
    }

    #[test]
    fn registry() {
        assert!(a("tinycloud.kv/delete").is_registered());
        assert!(!a("tinycloud.kv/sudo").is_registered());
        assert!(!a("tinycloud.sql/execute").is_registered());
        assert!(!a("credential/present").is_registered());
    }
}

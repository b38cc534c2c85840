//! Capabilities (resource + ability + caveats), the attenuation map shared by ReCap and UCAN
//! (`{ "<resource>": { "<ability>": [ {caveat}, … ] } }`), and containment.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::ability::{Ability, AbilityError};
use crate::did::Did;
use crate::resource::{Resource, ResourceError, SpaceResource};
use crate::sql_caveat::{self, SqlCaveat, SqlCaveatError};

/// One caveat object.
pub type Caveat = Map<String, Value>;

/// The wire form of attenuations: resource URI → ability → caveat list.
pub type AttMap = BTreeMap<String, BTreeMap<String, Vec<Caveat>>>;

/// Maximum number of (resource, ability) pairs in one token.
pub const MAX_CAPABILITIES: usize = 256;

/// Errors turning an attenuation map into capabilities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// A resource URI that does not parse.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// An ability that does not parse.
    #[error(transparent)]
    Ability(#[from] AbilityError),
    /// A SQL caveat that is malformed or not allowed.
    #[error("invalid SQL caveat: {0}")]
    SqlCaveat(#[from] SqlCaveatError),
    /// Too many capabilities in one token.
    #[error("too many capabilities (maximum {MAX_CAPABILITIES})")]
    TooMany,
    /// No capability at all.
    #[error("no capabilities")]
    Empty,
}

/// Caveats on one capability: a disjunction of caveat objects. An empty list or a list that
/// contains an empty object (`[{}]`) means "unconstrained"; all unconstrained lists are equal.
#[derive(Clone, Default)]
pub struct Caveats(Vec<Caveat>);

impl PartialEq for Caveats {
    fn eq(&self, other: &Self) -> bool {
        (self.is_unconstrained() && other.is_unconstrained()) || self.0 == other.0
    }
}
impl Eq for Caveats {}

/// Why a child's caveats are not within its parent's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaveatError {
    /// The parent is constrained and the child is not (or is constrained differently).
    #[error("caveats widen the parent's caveats")]
    Widened,
    /// SQL caveat containment failed.
    #[error("{0}")]
    Sql(#[from] SqlCaveatError),
}

impl Caveats {
    /// No constraint (`[{}]` on the wire).
    pub fn unconstrained() -> Self {
        Caveats(Vec::new())
    }

    /// Wraps caveat objects as they appear on the wire.
    pub fn from_objects(objects: Vec<Caveat>) -> Self {
        Caveats(objects)
    }

    /// The caveat objects (possibly empty).
    pub fn objects(&self) -> &[Caveat] {
        &self.0
    }

    /// Whether no constraint applies.
    pub fn is_unconstrained(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(Map::is_empty)
    }

    /// The wire list: `[{}]` when unconstrained (the reference node refuses `[]`).
    pub fn to_wire(&self) -> Vec<Caveat> {
        if self.is_unconstrained() {
            vec![Map::new()]
        } else {
            self.0.clone()
        }
    }

    /// The SQL caveats among the objects.
    pub fn sql_caveats(&self) -> Result<Vec<SqlCaveat>, SqlCaveatError> {
        let mut out = Vec::new();
        for obj in &self.0 {
            if let Some(c) = SqlCaveat::from_caveat(obj)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Whether `self` (child) is within `parent`: an unconstrained parent allows anything;
    /// otherwise every child alternative must be within some parent alternative, where SQL
    /// caveats use SQL containment and other caveats must be equal.
    pub fn contained_in(&self, parent: &Caveats) -> Result<(), CaveatError> {
        if parent.is_unconstrained() {
            return Ok(());
        }
        if self.is_unconstrained() {
            return Err(CaveatError::Widened);
        }
        for child in &self.0 {
            let mut last_sql_err = None;
            let mut found = false;
            for p in &parent.0 {
                // The child is validated by `contains` after the narrowing checks, so that the
                // reported reason is the narrowing rule it breaks.
                match (
                    SqlCaveat::from_caveat(p)?,
                    SqlCaveat::from_caveat_unvalidated(child)?,
                ) {
                    (Some(ps), Some(cs)) => match sql_caveat::contains(&ps, &cs) {
                        Ok(()) => found = true,
                        Err(e) => last_sql_err = Some(e),
                    },
                    _ => found = p == child,
                }
                if found {
                    break;
                }
            }
            if !found {
                return Err(last_sql_err.map_or(CaveatError::Widened, CaveatError::Sql));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Caveats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            Value::Array(self.0.iter().cloned().map(Value::Object).collect())
        )
    }
}

/// A single capability.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Capability {
    /// What it applies to.
    pub resource: Resource,
    /// What may be done.
    pub ability: Ability,
    /// Constraints.
    pub caveats: Caveats,
}

/// Why a capability is not covered by another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCovered {
    /// Resource outside the parent's.
    #[error("resource not within the parent's resource")]
    Resource,
    /// Ability not implied by the parent's.
    #[error("ability not granted by the parent")]
    Ability,
    /// Caveats wider than the parent's.
    #[error("caveats: {0}")]
    Caveats(#[from] CaveatError),
}

impl Capability {
    /// An unconstrained capability.
    pub fn new(resource: Resource, ability: Ability) -> Self {
        Capability {
            resource,
            ability,
            caveats: Caveats::unconstrained(),
        }
    }

    /// The `<space>/<service>/…` resource of a `tinycloud.<service>/…` capability; `None` when
    /// the ability belongs to another service than the resource names (`tinycloud.kv/get` on
    /// `<space>/sql/db`) or the resource is not in a space. A service acts only on its own
    /// resources.
    pub fn service_resource(&self) -> Option<&SpaceResource> {
        match &self.resource {
            Resource::Space(r) if self.ability.service() == Some(r.service()) => Some(r),
            _ => None,
        }
    }

    /// Whether this capability grants `ability` on `resource`: the resource lies within this
    /// one's (segment-aware for space paths, exact for CIDs and networks) and the ability is
    /// covered. Caveats are not consulted: the service that enforces them does that.
    pub fn grants(&self, resource: &Resource, ability: &Ability) -> bool {
        resource.extends(&self.resource) && self.ability.covers(ability)
    }

    /// Whether `self` is covered by `parent` (resource, ability and caveat containment).
    pub fn covered_by(&self, parent: &Capability) -> Result<(), NotCovered> {
        if !self.resource.extends(&parent.resource) {
            return Err(NotCovered::Resource);
        }
        if !parent.ability.covers(&self.ability) {
            return Err(NotCovered::Ability);
        }
        self.caveats.contained_in(&parent.caveats)?;
        Ok(())
    }

    /// Whether `issuer` holds this capability without a parent: it owns the space or the
    /// encryption network the resource names.
    pub fn is_root_authority(&self, issuer: &Did) -> bool {
        self.resource.root_owner() == Some(issuer)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.ability, self.resource)
    }
}

/// A caveat that the service of an ability does not enforce: refused, never ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("caveats on {ability} are not enforced by this node ({reason}); a grant constrained this way is refused")]
pub struct UnenforcedCaveat {
    /// The constrained ability.
    pub ability: String,
    /// Which caveat was not understood.
    pub reason: String,
}

/// The one rule for which caveats a service enforces (deny by default). `tinycloud.sql`
/// enforces the SQL caveats of [`crate::sql_caveat`] (named statements, `readOnly`, table and
/// column lists), and every caveat object on a SQL ability must be one of them. No other
/// service defines a caveat (KV, hooks, encryption, capabilities, space, delegation), so any
/// constraint on their abilities is refused: a grant the node cannot honour as written must
/// not run wider than written. The node applies this at delegation registration and to the
/// effective caveats of every invocation.
pub fn check_caveats_enforced(
    ability: &Ability,
    caveats: &Caveats,
) -> Result<(), UnenforcedCaveat> {
    if caveats.is_unconstrained() {
        return Ok(());
    }
    let refuse = |reason: String| UnenforcedCaveat {
        ability: ability.to_string(),
        reason,
    };
    if ability.service() != Some(crate::resource::SQL_SERVICE) {
        return Err(refuse("the service defines no caveats".into()));
    }
    for obj in caveats.objects() {
        match SqlCaveat::from_caveat(obj) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(refuse("not a SQL caveat".into())),
            Err(e) => return Err(refuse(e.to_string())),
        }
    }
    Ok(())
}

/// Parses every (resource, ability) pair of an attenuation map. SQL caveats are validated.
pub fn capabilities_from_att(att: &AttMap) -> Result<Vec<Capability>, CapabilityError> {
    let mut caps = Vec::new();
    for (resource, abilities) in att {
        let resource: Resource = resource.parse()?;
        for (ability, caveats) in abilities {
            if caps.len() >= MAX_CAPABILITIES {
                return Err(CapabilityError::TooMany);
            }
            let caveats = Caveats::from_objects(caveats.clone());
            caveats.sql_caveats()?;
            caps.push(Capability {
                resource: resource.clone(),
                ability: ability.parse()?,
                caveats,
            });
        }
    }
    Ok(caps)
}

/// Builds the wire attenuation map of a capability set (unconstrained caveats as `[{}]`).
pub fn att_from_capabilities(caps: &[Capability]) -> AttMap {
    let mut att = AttMap::new();
    for cap in caps {
        let entry = att
            .entry(cap.resource.to_string())
            .or_default()
            .entry(cap.ability.to_string())
            .or_default();
        for c in cap.caveats.to_wire() {
            if !entry.contains(&c) {
                entry.push(c);
            }
        }
    }
    att
}

/// Parses an attenuation map from JSON, with precise errors for the wrong shapes.
pub fn att_from_json(value: &Value) -> Result<AttMap, String> {
    let obj = value.as_object().ok_or("att must be a JSON object")?;
    let mut att = AttMap::new();
    for (resource, abilities) in obj {
        let abilities = abilities
            .as_object()
            .ok_or_else(|| format!("att entry for {resource:?} must be an object"))?;
        let mut by_ability = BTreeMap::new();
        for (ability, caveats) in abilities {
            let list = caveats
                .as_array()
                .ok_or_else(|| format!("caveats of {ability:?} must be an array"))?;
            let mut objects = Vec::with_capacity(list.len());
            for c in list {
                objects.push(
                    c.as_object()
                        .cloned()
                        .ok_or_else(|| format!("each caveat of {ability:?} must be an object"))?,
                );
            }
            by_ability.insert(ability.clone(), objects);
        }
        att.insert(resource.clone(), by_ability);
    }
    Ok(att)
}

/// Serializes an attenuation map as a JSON value.
pub fn att_to_json(att: &AttMap) -> Value {
    let mut obj = Map::new();
    for (resource, abilities) in att {
        let mut inner = Map::new();
        for (ability, caveats) in abilities {
            inner.insert(
                ability.clone(),
                Value::Array(caveats.iter().cloned().map(Value::Object).collect()),
            );
        }
        obj.insert(resource.clone(), Value::Object(inner));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grants_is_segment_aware_and_ability_aware() {
        let space = "tinycloud:pkh:eip155:1:0x6da01670d8fc844e736095918bbe11fe8d564163:default";
        let cap = Capability::new(
            format!("{space}/kv/notes").parse().unwrap(),
            "tinycloud.kv/get".parse().unwrap(),
        );
        let get: Ability = "tinycloud.kv/get".parse().unwrap();
        let put: Ability = "tinycloud.kv/put".parse().unwrap();
        let res = |p: &str| -> Resource { format!("{space}/kv/{p}").parse().unwrap() };
        assert!(cap.grants(&res("notes"), &get));
        assert!(cap.grants(&res("notes/a"), &get));
        assert!(!cap.grants(&res("notesx"), &get));
        assert!(!cap.grants(&res("notes/a"), &put));
        // Another service or space is never granted.
        let sql: Resource = format!("{space}/sql/notes").parse().unwrap();
        assert!(!cap.grants(&sql, &get));
        let other: Resource = format!("{}x/kv/notes", &space[..space.len() - 1])
            .parse()
            .unwrap();
        assert!(!cap.grants(&other, &get));
    }

    #[test]
    fn a_service_acts_only_on_its_own_resources() {
        let space = "tinycloud:pkh:eip155:1:0x6da01670d8fc844e736095918bbe11fe8d564163:default";
        let c = |res: &str, ab: &str| {
            Capability::new(
                format!("{space}/{res}").parse().unwrap(),
                ab.parse().unwrap(),
            )
        };
        let kv = c("kv/notes", "tinycloud.kv/get");
        assert_eq!(kv.service_resource().map(|r| r.service()), Some("kv"));
        assert!(c("sql/db", "tinycloud.kv/get").service_resource().is_none());
        assert!(c("kv/notes", "tinycloud.sql/read")
            .service_resource()
            .is_none());
        assert_eq!(
            c("sql/db", "tinycloud.sql/read")
                .service_resource()
                .map(|r| r.path()),
            Some(Some("db"))
        );
    }

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    fn cap(res: &str, ab: &str, caveats: Value) -> Capability {
        let objs = caveats
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_object().unwrap().clone())
            .collect();
        Capability {
            resource: res.parse().unwrap(),
            ability: ab.parse().unwrap(),
            caveats: Caveats::from_objects(objs),
        }
    }

    #[test]
    fn empty_list_and_empty_object_are_unconstrained() {
        assert!(Caveats::from_objects(vec![]).is_unconstrained());
        assert!(Caveats::from_objects(vec![Map::new()]).is_unconstrained());
        assert_eq!(Caveats::unconstrained().to_wire(), vec![Map::new()]);
    }

    #[test]
    fn caveat_containment() {
        let parent = cap(&format!("{SPACE}/kv/docs"), "tinycloud.kv/get", json!([{}]));
        let child = cap(
            &format!("{SPACE}/kv/docs/a"),
            "tinycloud.kv/get",
            json!([{"x": 1}]),
        );
        assert!(child.covered_by(&parent).is_ok(), "child may add caveats");
        assert_eq!(parent.covered_by(&child), Err(NotCovered::Resource),);
        let p2 = cap(
            &format!("{SPACE}/kv/docs"),
            "tinycloud.kv/get",
            json!([{"x": 1}]),
        );
        let c2 = cap(&format!("{SPACE}/kv/docs"), "tinycloud.kv/get", json!([{}]));
        assert_eq!(
            c2.covered_by(&p2),
            Err(NotCovered::Caveats(CaveatError::Widened))
        );
        let c3 = cap(
            &format!("{SPACE}/kv/docs"),
            "tinycloud.kv/get",
            json!([{"x": 2}]),
        );
        assert!(c3.covered_by(&p2).is_err());
        let c4 = cap(
            &format!("{SPACE}/kv/docs"),
            "tinycloud.kv/get",
            json!([{"x": 1}]),
        );
        assert!(c4.covered_by(&p2).is_ok());
    }

    #[test]
    fn ability_and_resource_rules() {
        let parent = cap(
            &format!("{SPACE}/sql/main"),
            "tinycloud.sql/admin",
            json!([{}]),
        );
        assert!(cap(
            &format!("{SPACE}/sql/main"),
            "tinycloud.sql/schema",
            json!([{}])
        )
        .covered_by(&parent)
        .is_ok());
        assert_eq!(
            cap(
                &format!("{SPACE}/sql/main"),
                "tinycloud.sql/write",
                json!([{}])
            )
            .covered_by(&parent),
            Err(NotCovered::Ability)
        );
    }

    #[test]
    fn att_round_trip() {
        let v = json!({
            format!("{SPACE}/kv/a"): {"tinycloud.kv/get": [{}], "tinycloud.kv/put": [{}]},
            format!("{SPACE}/sql/db"): {"tinycloud.sql/read": [{"x": 1}]}
        });
        let att = att_from_json(&v).unwrap();
        let caps = capabilities_from_att(&att).unwrap();
        assert_eq!(caps.len(), 3);
        assert_eq!(att_from_capabilities(&caps), att);
        assert_eq!(att_to_json(&att), v);
        assert!(att_from_json(&json!({"a": []})).is_err());
        assert!(att_from_json(&json!({"a": {"b": {}}})).is_err());
        assert!(att_from_json(&json!({"a": {"b": [1]}})).is_err());
    }

    #[test]
    fn a_service_refuses_every_caveat_it_does_not_enforce() {
        let check = |ab: &str, caveats: Value| {
            let c = cap(&format!("{SPACE}/kv"), ab, caveats);
            check_caveats_enforced(&c.ability, &c.caveats)
        };
        // Unconstrained is always fine.
        for ab in [
            "tinycloud.kv/get",
            "tinycloud.sql/read",
            "tinycloud.hooks/subscribe",
            "tinycloud.encryption/decrypt",
            "tinycloud.capabilities/read",
            "tinycloud.space/host",
            "tinycloud.delegation/revoke",
            "other.service/act",
        ] {
            assert!(check(ab, json!([{}])).is_ok(), "{ab}");
            assert!(check(ab, json!([])).is_ok(), "{ab}");
            // Services without caveats refuse any constraint, even one that looks like SQL.
            if !ab.starts_with("tinycloud.sql") {
                assert!(check(ab, json!([{"pathPrefix": "a"}])).is_err(), "{ab}");
                assert!(check(ab, json!([{"readOnly": true}])).is_err(), "{ab}");
            }
        }
        // SQL enforces SQL caveats, and only those.
        assert!(check(
            "tinycloud.sql/write",
            json!([{"readOnly": true, "tables": ["t"]}])
        )
        .is_ok());
        let e = check(
            "tinycloud.sql/write",
            json!([{"readOnly": true}, {"rows": 5}]),
        )
        .unwrap_err();
        assert_eq!(e.ability, "tinycloud.sql/write");
        assert!(check("tinycloud.sql/read", json!([{"readOnly": true, "x": 1}])).is_err());
    }

    #[test]
    fn root_authority() {
        let c = cap(&format!("{SPACE}/kv"), "tinycloud.kv/get", json!([{}]));
        let owner: Did = "did:pkh:eip155:1:0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
            .parse()
            .unwrap();
        assert!(c.is_root_authority(&owner));
        let other: Did = "did:pkh:eip155:2:0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
            .parse()
            .unwrap();
        assert!(!c.is_root_authority(&other));
    }
}

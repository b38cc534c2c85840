//! Space ids (`tinycloud:<did suffix>:<name>`) and resource URIs (`<space>/<service>[/<path>]`,
//! `urn:cid:<cid>`, `urn:tinycloud:encryption:<owner did>:<name>`), with segment-aware
//! containment.

use std::fmt;
use std::str::FromStr;

use crate::cid::{parse_cid, Cid};
use crate::did::{Did, DidError};
use crate::excerpt::truncate;

/// Errors parsing a space id or resource URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Not of the form `tinycloud:<did suffix>:<name>`.
    #[error("invalid space id {0:?}: expected tinycloud:<did without 'did:'>:<name>")]
    InvalidSpaceId(String),
    /// Space name empty or with characters outside `[A-Za-z0-9._~-]`.
    #[error("invalid space name {0:?}: use letters, digits, '.', '_', '~' or '-'")]
    InvalidSpaceName(String),
    /// The owner DID inside a space id or network id.
    #[error("invalid owner DID: {0}")]
    Owner(#[from] DidError),
    /// `<space>` without `/<service>`.
    #[error("resource {0:?} names no service")]
    MissingService(String),
    /// Service name not `[a-z][a-z0-9-]*`.
    #[error("invalid service name {0:?}")]
    InvalidService(String),
    /// A path containing `.` or `..` segments, or control characters. Keys are never
    /// normalized, so such paths are refused instead of rewritten.
    #[error("invalid path {0:?}: '.' and '..' segments and control characters are not allowed")]
    InvalidPath(String),
    /// `urn:cid:` with a bad CID.
    #[error("invalid urn:cid resource {0:?}")]
    InvalidCidUrn(String),
    /// `urn:tinycloud:encryption:` with a bad owner or name.
    #[error("invalid encryption network id {0:?}: expected urn:tinycloud:encryption:<owner did>:<name> with name matching ^[a-z0-9][a-z0-9-]*$")]
    InvalidNetworkId(String),
    /// Not a URI at all (no scheme).
    #[error("invalid resource URI {0:?}")]
    InvalidUri(String),
    /// An SQL resource path that is not a database name (see [`sql_database`]).
    #[error("invalid SQL database name {0:?}: use '/'-separated segments of letters, digits, '.', '_' or '-' (not starting with '.'), at most 128 bytes")]
    InvalidDatabase(String),
}

/// Maximum length of any resource URI we accept.
pub const MAX_RESOURCE_LEN: usize = 4096;

/// A space: a named container owned by a DID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceId {
    owner: Did,
    name: String,
}

fn valid_space_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

impl SpaceId {
    /// A space owned by `owner` with `name`.
    pub fn new(owner: Did, name: &str) -> Result<Self, ResourceError> {
        if !valid_space_name(name) {
            return Err(ResourceError::InvalidSpaceName(truncate(name)));
        }
        Ok(SpaceId {
            owner,
            name: name.to_owned(),
        })
    }

    /// The owner principal (root authority over the space).
    pub fn owner(&self) -> &Did {
        &self.owner
    }

    /// The space name (`default`, `secrets`, `public`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a world-readable `public` space.
    pub fn is_public(&self) -> bool {
        self.name == "public"
    }

    /// A resource in this space.
    pub fn resource(&self, service: &str, path: Option<&str>) -> Result<Resource, ResourceError> {
        Ok(Resource::Space(SpaceResource::new(
            self.clone(),
            service,
            path.map(str::to_owned),
        )?))
    }
}

impl FromStr for SpaceId {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ResourceError::InvalidSpaceId(truncate(s));
        let rest = s.strip_prefix("tinycloud:").ok_or_else(bad)?;
        if rest.contains(['/', '?', '#']) {
            return Err(bad());
        }
        let (suffix, name) = rest.rsplit_once(':').ok_or_else(bad)?;
        if suffix.is_empty() {
            return Err(bad());
        }
        let owner: Did = format!("did:{suffix}").parse()?;
        SpaceId::new(owner, name)
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tinycloud:{}:{}", self.owner.suffix(), self.name)
    }
}

impl fmt::Debug for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpaceId({self})")
    }
}

/// An encryption network: `urn:tinycloud:encryption:<owner did>:<name>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId {
    owner: Did,
    name: String,
}

fn valid_network_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl NetworkId {
    /// URN prefix.
    pub const PREFIX: &'static str = "urn:tinycloud:encryption:";

    /// A network owned by `owner`.
    pub fn new(owner: Did, name: &str) -> Result<Self, ResourceError> {
        if !valid_network_name(name) {
            return Err(ResourceError::InvalidNetworkId(truncate(name)));
        }
        Ok(NetworkId {
            owner,
            name: name.to_owned(),
        })
    }

    /// The owner (root authority over the network).
    pub fn owner(&self) -> &Did {
        &self.owner
    }

    /// The network name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for NetworkId {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ResourceError::InvalidNetworkId(truncate(s));
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        let (did, name) = rest.rsplit_once(':').ok_or_else(bad)?;
        let owner: Did = did.parse().map_err(|_| bad())?;
        NetworkId::new(owner, name).map_err(|_| bad())
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}:{}", Self::PREFIX, self.owner, self.name)
    }
}

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkId({self})")
    }
}

/// A resource inside a space: `<space>/<service>[/<path>][?query][#fragment]`.
///
/// `path: None` ("no path", e.g. `…/kv`) is the whole service; `Some("")` (`…/kv/`) is the
/// empty path, which is *not* the same thing (see [`SpaceResource::extends`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceResource {
    space: SpaceId,
    service: String,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
}

fn valid_service(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
}

/// Checks a resource path: no `.`/`..` segments, no control characters, no `?`/`#`.
pub fn validate_path(path: &str) -> Result<(), ResourceError> {
    let bad_segment = path.split('/').any(|seg| seg == "." || seg == "..");
    let bad_char = path.chars().any(|c| c.is_control() || c == '?' || c == '#');
    if bad_segment || bad_char || path.len() > MAX_RESOURCE_LEN {
        return Err(ResourceError::InvalidPath(truncate(path)));
    }
    Ok(())
}

impl SpaceResource {
    /// A resource with no query or fragment.
    pub fn new(space: SpaceId, service: &str, path: Option<String>) -> Result<Self, ResourceError> {
        if !valid_service(service) {
            return Err(ResourceError::InvalidService(truncate(service)));
        }
        if let Some(p) = &path {
            validate_path(p)?;
        }
        Ok(SpaceResource {
            space,
            service: service.to_owned(),
            path,
            query: None,
            fragment: None,
        })
    }

    /// The space.
    pub fn space(&self) -> &SpaceId {
        &self.space
    }

    /// The short service name (`kv`, `sql`, `hooks`, …).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The path, `None` when the resource names the whole service.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The fragment, without `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// Segment-aware containment: `self` is within `parent`.
    ///
    /// SQL resources (service `sql`) are database-exact instead: see [`database_extends`]. So
    /// are the SQL hook resources (`<space>/hooks/sql/<db>`): a grant to watch one database
    /// never covers another whose name extends it.
    ///
    /// Same space, service, query and fragment, and: a parent with no path covers everything; a
    /// parent with a path never covers a child without one; otherwise the child path starts with
    /// the parent path and either the parent ends with `/`, the two are equal, or the next child
    /// byte is `/`. So `docs` covers `docs` and `docs/x` but not `docsx`; `docs/` covers
    /// `docs/x`; `""` covers only `""` and paths beginning with `/`.
    pub fn extends(&self, parent: &SpaceResource) -> bool {
        if self.space != parent.space
            || self.service != parent.service
            || self.query != parent.query
            || self.fragment != parent.fragment
        {
            return false;
        }
        match (&parent.path, &self.path) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(c)) if self.service == SQL_SERVICE => database_extends(c, p),
            (Some(p), Some(c)) if self.service == HOOKS_SERVICE => {
                match (p.strip_prefix("sql/"), c.strip_prefix("sql/")) {
                    (Some(p), Some(c)) => database_extends(c, p),
                    _ => path_extends(c, p),
                }
            }
            (Some(p), Some(c)) => path_extends(c, p),
        }
    }

    /// The SQL database this `<space>/sql[/<name>]` resource names; see [`sql_database`].
    pub fn sql_database(&self) -> Result<&str, ResourceError> {
        sql_database(self.path())
    }
}

/// The short name of the SQL service, whose paths name databases.
pub const SQL_SERVICE: &str = "sql";

/// The short name of the hooks service, whose `sql/<db>` paths name databases.
pub const HOOKS_SERVICE: &str = "hooks";

/// Longest SQL database name, in bytes.
pub const MAX_SQL_DATABASE_LEN: usize = 128;

/// The database an SQL resource path names: the whole path (`xyz.tinycloud.listen/conversations`
/// is one database, not `conversations`), `default` when there is no path. A name is
/// `/`-separated non-empty segments of ASCII letters, digits, `.`, `_` and `-`, none starting
/// with `.`, at most [`MAX_SQL_DATABASE_LEN`] bytes; anything else (the empty path `sql/`, a
/// trailing or doubled `/`, other characters) names no database and is refused, never
/// rewritten.
pub fn sql_database(path: Option<&str>) -> Result<&str, ResourceError> {
    let Some(name) = path else {
        return Ok("default");
    };
    let segment_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if name.len() > MAX_SQL_DATABASE_LEN || !name.split('/').all(segment_ok) {
        return Err(ResourceError::InvalidDatabase(truncate(name)));
    }
    Ok(name)
}

/// Containment of SQL resource paths, which name whole databases: a grant on a database covers
/// exactly that database (`app1` never covers `app1/secrets`); only a grant whose path ends
/// with `/` is a namespace and covers every database whose name starts with it
/// (`xyz.tinycloud.listen/` covers `xyz.tinycloud.listen/conversations`). A grant with no path
/// (the whole service) covers every database; see [`SpaceResource::extends`].
pub fn database_extends(child: &str, parent: &str) -> bool {
    if parent.ends_with('/') {
        child.starts_with(parent)
    } else {
        child == parent
    }
}

/// The path of an SQL write event: `<db>/<table>`, with `%` and `/` in the table name
/// percent-encoded, so the database is exactly what precedes the last `/` even when database
/// names have several segments (see [`sql_event_database`]).
pub fn sql_event_path(db: &str, table: &str) -> String {
    let mut out = String::with_capacity(db.len() + table.len() + 1);
    out.push_str(db);
    out.push('/');
    for ch in table.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The database of an SQL write event path built by [`sql_event_path`]; `None` when the path
/// has no table part.
pub fn sql_event_database(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(db, _)| db)
}

/// Segment-aware prefix rule used by resource containment and KV list authorization.
pub fn path_extends(child: &str, parent: &str) -> bool {
    child.starts_with(parent)
        && (parent.ends_with('/')
            || child.len() == parent.len()
            || child.as_bytes().get(parent.len()) == Some(&b'/'))
}

impl fmt::Display for SpaceResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.space, self.service)?;
        if let Some(p) = &self.path {
            write!(f, "/{p}")?;
        }
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        if let Some(fr) = &self.fragment {
            write!(f, "#{fr}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpaceResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpaceResource({self})")
    }
}

/// Any resource a capability can name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A service (and path) inside a space.
    Space(SpaceResource),
    /// `urn:cid:<cid>`: a delegation, as the target of revocation or status queries.
    Cid(Cid),
    /// `urn:tinycloud:encryption:<owner>:<name>`.
    Network(NetworkId),
    /// Any other URI; only matched by string prefix.
    Other(String),
}

impl Resource {
    /// The space, for space resources.
    pub fn space(&self) -> Option<&SpaceId> {
        match self {
            Resource::Space(r) => Some(r.space()),
            _ => None,
        }
    }

    /// The DID with root authority over this resource (space or network owner).
    pub fn root_owner(&self) -> Option<&Did> {
        match self {
            Resource::Space(r) => Some(r.space().owner()),
            Resource::Network(n) => Some(n.owner()),
            Resource::Cid(_) | Resource::Other(_) => None,
        }
    }

    /// Whether `self` is within `parent`: segment-aware for space resources, exact for CIDs and
    /// encryption networks, string prefix for other URIs.
    pub fn extends(&self, parent: &Resource) -> bool {
        match (self, parent) {
            (Resource::Space(c), Resource::Space(p)) => c.extends(p),
            (Resource::Cid(c), Resource::Cid(p)) => c == p,
            (Resource::Network(c), Resource::Network(p)) => c == p,
            (Resource::Other(c), Resource::Other(p)) => c.starts_with(p.as_str()),
            _ => false,
        }
    }
}

impl FromStr for Resource {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_RESOURCE_LEN {
            return Err(ResourceError::InvalidUri(truncate(s)));
        }
        if s.starts_with("tinycloud:") {
            return parse_space_resource(s).map(Resource::Space);
        }
        if let Some(cid) = s.strip_prefix("urn:cid:") {
            return parse_cid(cid)
                .map(Resource::Cid)
                .map_err(|_| ResourceError::InvalidCidUrn(truncate(s)));
        }
        if s.starts_with(NetworkId::PREFIX) {
            return s.parse().map(Resource::Network);
        }
        let scheme_ok = s
            .split_once(':')
            .map(|(scheme, _)| {
                let b = scheme.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphabetic()
                    && b.iter()
                        .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
            })
            .unwrap_or(false);
        if !scheme_ok || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ResourceError::InvalidUri(truncate(s)));
        }
        Ok(Resource::Other(s.to_owned()))
    }
}

fn parse_space_resource(s: &str) -> Result<SpaceResource, ResourceError> {
    let (without_fragment, fragment) = match s.split_once('#') {
        Some((a, f)) => (a, Some(f.to_owned())),
        None => (s, None),
    };
    let (without_query, query) = match without_fragment.split_once('?') {
        Some((a, q)) => (a, Some(q.to_owned())),
        None => (without_fragment, None),
    };
    let (space, rest) = without_query
        .split_once('/')
        .ok_or_else(|| ResourceError::MissingService(truncate(s)))?;
    let space: SpaceId = space.parse()?;
    let (service, path) = match rest.split_once('/') {
        Some((svc, p)) => (svc, Some(p.to_owned())),
        None => (rest, None),
    };
    let mut r = SpaceResource::new(space, service, path)?;
    r.query = query;
    r.fragment = fragment;
    Ok(r)
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Space(r) => r.fmt(f),
            Resource::Cid(c) => write!(f, "urn:cid:{c}"),
            Resource::Network(n) => n.fmt(f),
            Resource::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    fn r(s: &str) -> Resource {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn space_id_round_trip_and_owner() {
        let sp: SpaceId = SPACE.parse().unwrap();
        assert_eq!(sp.to_string(), SPACE);
        assert_eq!(sp.name(), "default");
        assert_eq!(
            sp.owner().to_string(),
            "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        let lower: SpaceId = SPACE.to_lowercase().parse().unwrap();
        assert_eq!(lower, sp, "address case is canonicalized");
    }

    #[test]
    fn space_id_rejects_malformed() {
        for bad in [
            "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:",
            "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
            "tinycloud::default",
            "kepler:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default",
            "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:de fault",
            "tinycloud:web:example.com:default",
        ] {
            assert!(bad.parse::<SpaceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn no_path_differs_from_empty_path() {
        let whole = r(&format!("{SPACE}/kv"));
        let empty = r(&format!("{SPACE}/kv/"));
        let Resource::Space(w) = &whole else { panic!() };
        let Resource::Space(e) = &empty else { panic!() };
        assert_eq!(w.path(), None);
        assert_eq!(e.path(), Some(""));
        assert_ne!(whole, empty);
        assert_eq!(whole.to_string(), format!("{SPACE}/kv"));
        assert_eq!(empty.to_string(), format!("{SPACE}/kv/"));
        // whole service covers the empty path; the empty path covers only itself and "/…".
        assert!(empty.extends(&whole));
        assert!(!whole.extends(&empty));
        assert!(!r(&format!("{SPACE}/kv/a")).extends(&empty));
        assert!(r(&format!("{SPACE}/kv//a")).extends(&empty));
    }

    #[test]
    fn segment_aware_containment() {
        let docs = r(&format!("{SPACE}/kv/docs"));
        assert!(r(&format!("{SPACE}/kv/docs")).extends(&docs));
        assert!(r(&format!("{SPACE}/kv/docs/a")).extends(&docs));
        assert!(!r(&format!("{SPACE}/kv/docsx")).extends(&docs));
        assert!(!r(&format!("{SPACE}/kv")).extends(&docs));
        let slash = r(&format!("{SPACE}/kv/docs/"));
        assert!(r(&format!("{SPACE}/kv/docs/x")).extends(&slash));
        assert!(!r(&format!("{SPACE}/kv/docs")).extends(&slash));
        assert!(!r(&format!("{SPACE}/sql/docs")).extends(&docs));
        let other_space = SPACE.replace(":default", ":secrets");
        assert!(!r(&format!("{other_space}/kv/docs")).extends(&docs));
    }

    #[test]
    fn sql_containment_is_database_exact() {
        let app1 = r(&format!("{SPACE}/sql/app1"));
        assert!(app1.extends(&app1));
        for other in ["app1/secrets", "app1/", "app1x", "APP1", "app1/x/y", ""] {
            assert!(
                !r(&format!("{SPACE}/sql/{other}")).extends(&app1),
                "{other:?} within app1"
            );
        }
        assert!(!r(&format!("{SPACE}/sql")).extends(&app1));
        // The whole service covers every database.
        let whole = r(&format!("{SPACE}/sql"));
        for db in [
            "default",
            "app1",
            "app1/secrets",
            "xyz.tinycloud.listen/conversations",
        ] {
            assert!(r(&format!("{SPACE}/sql/{db}")).extends(&whole), "{db}");
        }
        // A trailing slash is a namespace: the databases under it, not the bare prefix.
        let ns = r(&format!("{SPACE}/sql/xyz.tinycloud.listen/"));
        assert!(r(&format!("{SPACE}/sql/xyz.tinycloud.listen/conversations")).extends(&ns));
        assert!(r(&format!("{SPACE}/sql/xyz.tinycloud.listen/a/b")).extends(&ns));
        assert!(ns.extends(&ns));
        assert!(!r(&format!("{SPACE}/sql/xyz.tinycloud.listen")).extends(&ns));
        assert!(!r(&format!("{SPACE}/sql/xyz.tinycloud.listenx/a")).extends(&ns));
        let multi = r(&format!("{SPACE}/sql/xyz.tinycloud.listen/conversations"));
        assert!(!r(&format!("{SPACE}/sql/xyz.tinycloud.listen/conversations/x")).extends(&multi));
        // Other services keep segment-aware containment.
        let docs = r(&format!("{SPACE}/kv/app1"));
        assert!(r(&format!("{SPACE}/kv/app1/secrets")).extends(&docs));
    }

    #[test]
    fn sql_database_names() {
        assert_eq!(sql_database(None), Ok("default"));
        for ok in [
            "default",
            "app1",
            "xyz.tinycloud.listen/conversations",
            "a/b/c",
            "A-b_c.d",
        ] {
            assert_eq!(sql_database(Some(ok)), Ok(ok));
        }
        let long = "a".repeat(MAX_SQL_DATABASE_LEN + 1);
        for bad in [
            "",
            "app1/",
            "/app1",
            "a//b",
            ".hidden",
            "a/.b",
            "a b",
            "a%2Fb",
            "a\\b",
            "ä",
            "a:b",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    sql_database(Some(bad)),
                    Err(ResourceError::InvalidDatabase(_))
                ),
                "{bad:?}"
            );
        }
        assert!(sql_database(Some(&"a".repeat(MAX_SQL_DATABASE_LEN))).is_ok());
        let Resource::Space(s) = r(&format!("{SPACE}/sql/xyz.tinycloud.listen/conversations"))
        else {
            panic!()
        };
        assert_eq!(s.sql_database(), Ok("xyz.tinycloud.listen/conversations"));
    }

    #[test]
    fn dot_segments_are_refused() {
        for bad in ["notes/../secret", "./a", "a/.", "..", "a/\u{0}b"] {
            assert!(
                matches!(
                    format!("{SPACE}/kv/{bad}").parse::<Resource>(),
                    Err(ResourceError::InvalidPath(_))
                ),
                "{bad:?}"
            );
        }
        assert!(format!("{SPACE}/kv/a..b/.c/..d")
            .parse::<Resource>()
            .is_ok());
    }

    #[test]
    fn urns() {
        let cid = crate::cid::blake3_cid(b"x");
        let res = r(&format!("urn:cid:{cid}"));
        assert_eq!(res, Resource::Cid(cid));
        assert!(matches!(
            "urn:cid:bafy.parent.A".parse::<Resource>(),
            Err(ResourceError::InvalidCidUrn(_))
        ));
        let net = "urn:tinycloud:encryption:did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";
        let n = r(net);
        assert_eq!(n.to_string(), net);
        assert_eq!(
            n.root_owner().unwrap().to_string(),
            "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        assert!(n.extends(&n));
        assert!(!r(&format!("{net}-2")).extends(&n));
        for bad in [
            "urn:tinycloud:encryption:did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:Default",
            "urn:tinycloud:encryption:did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:-a",
            "urn:tinycloud:encryption:nodid:default",
        ] {
            assert!(bad.parse::<Resource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn other_uris_match_by_prefix() {
        let p = r("https://example.com/a");
        assert!(r("https://example.com/a/b").extends(&p));
        assert!(!r("https://example.com/b").extends(&p));
        assert!("no scheme".parse::<Resource>().is_err());
        assert!("".parse::<Resource>().is_err());
    }

    #[test]
    fn query_and_fragment_round_trip() {
        let s = format!("{SPACE}/kv/a?x=1#frag");
        let res = r(&s);
        assert_eq!(res.to_string(), s);
        assert!(!r(&format!("{SPACE}/kv/a")).extends(&res));
    }
}

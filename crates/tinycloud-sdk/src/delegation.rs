//! Delegating to other keys (apps, backends, devices, agents) without a wallet prompt, the
//! portable delegation format another process imports, and revocation.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::resource::{Resource, SpaceId};
use tinycloud_auth::session::capability;
use tinycloud_auth::text::{consent_text, RenderContext};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, REVOKE_ABILITY};
use tinycloud_auth::ucan::UcanBuilder;

use crate::client::TinyCloud;
use crate::error::{Error, Result};
use crate::session::{now, Jwk, Session};

/// The current portable format version.
pub const PORTABLE_VERSION: u32 = 1;

/// One granted resource in a portable delegation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortableResource {
    /// Short service (`kv`, `sql`, …) or `encryption`.
    pub service: String,
    /// Space id (or `encryption` for network resources).
    pub space: String,
    /// Path inside the service (or the network id).
    pub path: String,
    /// Abilities (`tinycloud.kv/get`, …).
    pub actions: Vec<String>,
}

/// A delegation in a form another process can import (JSON, versioned).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortableDelegation {
    /// Format version.
    pub version: u32,
    /// CID of the delegation.
    pub cid: String,
    /// `{"Authorization": "<token>"}`.
    pub delegation_header: HashMap<String, String>,
    /// The owner's address.
    pub owner_address: String,
    /// Chain id.
    pub chain_id: u64,
    /// Node URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Space of the first resource.
    pub space_id: String,
    /// Path of the first resource.
    pub path: String,
    /// Actions of the first resource.
    pub actions: Vec<String>,
    /// Expiry (RFC 3339).
    pub expiry: String,
    /// Who receives it.
    #[serde(rename = "delegateDID")]
    pub delegate_did: String,
    /// Who issued it.
    #[serde(rename = "delegatorDID")]
    pub delegator_did: String,
    /// The parent (the issuer's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_cid: Option<String>,
    /// Every granted resource (authoritative; the flat fields mirror the first).
    pub resources: Vec<PortableResource>,
}

/// A capability request: a path in the session's primary space and actions.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Service (`kv`, `sql`, `hooks`, …).
    pub service: String,
    /// Path inside the service; empty for the whole service.
    pub path: String,
    /// Actions, short (`get`) or full (`tinycloud.kv/get`).
    pub actions: Vec<String>,
}

impl Grant {
    /// A KV grant.
    pub fn kv(path: &str, actions: &[&str]) -> Self {
        Grant {
            service: "kv".into(),
            path: path.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn capabilities(&self, space: &SpaceId) -> Result<Vec<Capability>> {
        let res = if self.path.is_empty() {
            format!("{space}/{}", self.service)
        } else {
            format!("{space}/{}/{}", self.service, self.path)
        };
        self.actions
            .iter()
            .map(|a| {
                let full = if a.contains('/') {
                    a.clone()
                } else {
                    format!("tinycloud.{}/{a}", self.service)
                };
                capability(&res, &full).map_err(Error::InvalidInput)
            })
            .collect()
    }
}

fn portable_resources(caps: &[Capability]) -> Vec<PortableResource> {
    let mut out: Vec<PortableResource> = Vec::new();
    for c in caps {
        let (service, space, path) = match &c.resource {
            Resource::Space(r) => (
                r.service().to_owned(),
                r.space().to_string(),
                r.path().unwrap_or_default().to_owned(),
            ),
            Resource::Network(n) => ("encryption".into(), "encryption".into(), n.to_string()),
            other => ("other".into(), String::new(), other.to_string()),
        };
        match out
            .iter_mut()
            .find(|r| r.service == service && r.space == space && r.path == path)
        {
            Some(r) => r.actions.push(c.ability.to_string()),
            None => out.push(PortableResource {
                service,
                space,
                path,
                actions: vec![c.ability.to_string()],
            }),
        }
    }
    out
}

impl PortableDelegation {
    /// Builds the portable form of a delegation the node accepted.
    pub fn from_delegation(
        d: &Delegation,
        owner_address: &str,
        chain_id: u64,
        host: Option<String>,
    ) -> Self {
        let info = d.info();
        let resources = portable_resources(&info.capabilities);
        let first = resources.first().cloned().unwrap_or(PortableResource {
            service: String::new(),
            space: String::new(),
            path: String::new(),
            actions: vec![],
        });
        PortableDelegation {
            version: PORTABLE_VERSION,
            cid: d.cid().to_string(),
            delegation_header: HashMap::from([("Authorization".to_string(), d.to_header())]),
            owner_address: owner_address.to_owned(),
            chain_id,
            host,
            space_id: first.space.clone(),
            path: first.path.clone(),
            actions: first.actions.clone(),
            expiry: info
                .expiration
                .map(Timestamp::to_rfc3339)
                .unwrap_or_default(),
            delegate_did: info.delegatee.to_string(),
            delegator_did: info.issuer.to_string(),
            parent_cid: info.parents.first().map(ToString::to_string),
            resources,
        }
    }

    /// Parses JSON, checking the version and that the token matches the stated CID and parties.
    pub fn from_json(text: &str) -> Result<(Self, Delegation)> {
        let p: PortableDelegation = serde_json::from_str(text).map_err(|e| {
            Error::InvalidInput(format!(
                "not a portable delegation (must be valid JSON): {e}"
            ))
        })?;
        if p.version != PORTABLE_VERSION {
            return Err(Error::InvalidInput(format!(
                "unsupported portable delegation version {}",
                p.version
            )));
        }
        let header = p.delegation_header.get("Authorization").ok_or_else(|| {
            Error::InvalidInput("delegationHeader.Authorization is missing".into())
        })?;
        let d = Delegation::from_header(header).map_err(|e| Error::Token(e.to_string()))?;
        if d.cid().to_string() != p.cid {
            return Err(Error::InvalidInput(
                "the delegation's bytes do not match its stated CID".into(),
            ));
        }
        if d.info().delegatee.to_string() != p.delegate_did {
            return Err(Error::InvalidInput(
                "the delegation's audience does not match delegateDID".into(),
            ));
        }
        p.check_against(&d)?;
        Ok((p, d))
    }

    /// The owner the signed token's resources belong to (every space and network it names must
    /// have the same owner).
    pub fn token_owner(d: &Delegation) -> Result<Did> {
        let mut owner: Option<&Did> = None;
        for c in &d.info().capabilities {
            let o = match &c.resource {
                Resource::Space(r) => r.space().owner(),
                Resource::Network(n) => n.owner(),
                _ => continue,
            };
            match owner {
                Some(prev) if prev != o => {
                    return Err(Error::InvalidInput(
                        "the delegation names resources of more than one owner".into(),
                    ))
                }
                _ => owner = Some(o),
            }
        }
        owner
            .cloned()
            .ok_or_else(|| Error::InvalidInput("the delegation names no space or network".into()))
    }

    /// Refuses a file whose unsigned fields (space, owner, delegator, resources, expiry)
    /// disagree with what the signed token says: only the token is believed.
    fn check_against(&self, d: &Delegation) -> Result<()> {
        let signed =
            PortableDelegation::from_delegation(d, &self.owner_address, self.chain_id, None);
        let mismatch = |field: &str| {
            Err(Error::InvalidInput(format!(
                "the file's {field} does not match the signed delegation; refused"
            )))
        };
        if self.space_id != signed.space_id {
            return mismatch("spaceId");
        }
        if self.delegator_did != signed.delegator_did {
            return mismatch("delegatorDID");
        }
        if self.resources != signed.resources
            || self.path != signed.path
            || self.actions != signed.actions
        {
            return mismatch("resources");
        }
        if self.expiry != signed.expiry {
            return mismatch("expiry");
        }
        if self.parent_cid != signed.parent_cid {
            return mismatch("parentCid");
        }
        match Self::token_owner(d)? {
            Did::Pkh { chain_id, address } => {
                if !self.owner_address.eq_ignore_ascii_case(&address.to_eip55())
                    || self.chain_id != chain_id
                {
                    return mismatch("ownerAddress/chainId");
                }
            }
            Did::Key(_) => {}
        }
        Ok(())
    }

    /// The consent text of what it grants.
    pub fn describe(&self, d: &Delegation) -> String {
        consent_text(
            &self.delegate_did,
            &d.info().capabilities,
            &RenderContext {
                viewer: None,
                expiration: d.info().expiration,
            },
        )
    }
}

/// Which requested capabilities `held` does not cover (resource + ability).
pub fn missing_capabilities(requested: &[Capability], held: &[Capability]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| {
            !held
                .iter()
                .any(|h| r.resource.extends(&h.resource) && h.ability.covers(&r.ability))
        })
        .map(|r| format!("{} {}", r.ability, r.resource))
        .collect()
}

impl TinyCloud {
    /// The capabilities `grants` would give, in the session's primary space.
    pub fn grant_capabilities(&self, grants: &[Grant]) -> Result<Vec<Capability>> {
        let space = self.space()?;
        let mut caps = Vec::new();
        for g in grants {
            caps.extend(g.capabilities(&space)?);
        }
        if caps.is_empty() {
            return Err(Error::InvalidInput("nothing to delegate".into()));
        }
        Ok(caps)
    }

    /// Delegates `caps` to `delegate` for `secs` seconds (capped at the session's expiry),
    /// signed by the session key — no wallet prompt — and registers it with the node. Refused
    /// with [`Error::MissingCapabilities`] listing every capability the session lacks.
    pub async fn delegate_to(
        &self,
        delegate: &Did,
        caps: Vec<Capability>,
        secs: i64,
    ) -> Result<PortableDelegation> {
        let s = self.active_session()?;
        let session_exp = s.expires().ok_or_else(|| Error::SessionExpired {
            expired_at: s.expires_at.clone(),
        })?;
        if session_exp <= now().plus_secs(60) {
            return Err(Error::SessionExpired {
                expired_at: s.expires_at.clone(),
            });
        }
        let held = s.capabilities()?;
        let missing = missing_capabilities(&caps, &held);
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
        let key = s.key()?;
        let exp = now().plus_secs(secs).min(session_exp);
        let ucan = UcanBuilder::new(
            key.did().verification_method(),
            DidUrl::from(delegate.clone()),
            format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        )
        .expiration(exp)
        .proof(s.delegation_cid()?)
        .capabilities(caps)
        .sign(&key)
        .map_err(|e| Error::Token(e.to_string()))?;
        self.post_delegation(ucan.as_str()).await?;
        let d = Delegation::from_ucan(ucan);
        Ok(PortableDelegation::from_delegation(
            &d,
            &s.address,
            s.chain_id,
            Some(self.config().host.clone()),
        ))
    }

    /// Session-only mode: act under a received delegation with the given session key (whose
    /// DID the delegation must target).
    pub fn use_delegation(&self, key: Jwk, portable: &PortableDelegation) -> Result<Session> {
        let header = portable
            .delegation_header
            .get("Authorization")
            .ok_or_else(|| {
                Error::InvalidInput("delegationHeader.Authorization is missing".into())
            })?;
        let mine = key.secret_key()?.did();
        let d = Delegation::from_header(header).map_err(|e| Error::Token(e.to_string()))?;
        if d.info().delegatee != mine {
            return Err(Error::InvalidInput(format!(
                "Delegation targets {} but this key's DID is {mine}",
                d.info().delegatee
            )));
        }
        let session = Session::new(
            key,
            header,
            portable.space_id.clone(),
            portable.owner_address.clone(),
            portable.chain_id,
            portable
                .host
                .clone()
                .unwrap_or_else(|| self.config().host.clone()),
        )?;
        if session.is_expired(now()) {
            return Err(Error::SessionExpired {
                expired_at: session.expires_at.clone(),
            });
        }
        self.set_session(Some(session.clone()));
        Ok(session)
    }

    /// Revokes a delegation (and its whole subtree). The session key signs; the node accepts it
    /// if the key issued or received the delegation, or (through the session's
    /// `tinycloud.delegation/revoke` grant) if the owner owns the space.
    pub async fn revoke(&self, cid: &Cid) -> Result<()> {
        let cap =
            capability(&format!("urn:cid:{cid}"), REVOKE_ABILITY).map_err(Error::InvalidInput)?;
        // First as the key itself; if refused, with the session delegation as proof so the
        // owner's authority applies.
        let token = self.self_invocation(vec![cap.clone()])?;
        match self.post_revoke(&token, cid).await {
            Err(Error::PermissionDenied { .. }) => {
                let token = self.invocation(vec![cap])?;
                self.post_revoke(&token, cid).await
            }
            other => other,
        }
    }

    /// What the node says of one delegation (`POST /delegation/status`, invoked by the session
    /// key under the session's delegation): revoked (itself or an ancestor) wins over expired.
    pub async fn delegation_status(&self, cid: &Cid) -> Result<DelegationStatus> {
        let cap = capability(&format!("urn:cid:{cid}"), "tinycloud.delegation/status")
            .map_err(Error::InvalidInput)?;
        // Under the session's delegation: the node answers a key acting for the owner of a
        // space the delegation names, not only its own delegator or delegate.
        let token = self.invocation(vec![cap])?;
        let req = self
            .http()
            .post(self.url("/delegation/status"))
            .header("authorization", token)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "cid": cid.to_string() }).to_string());
        let r = self.send(req, |s| s == 200 || s == 404).await?;
        let v: serde_json::Value = crate::error::read_json(r, 16 * 1024).await?;
        parse_status(&v, cid)
    }

    async fn post_revoke(&self, token: &str, cid: &Cid) -> Result<()> {
        let req = self
            .http()
            .post(self.url("/revoke"))
            .header("authorization", token);
        let v: serde_json::Value = self.send_for_json(req).await?;
        if v["revoked"] != true || v["cid"].as_str() != Some(&cid.to_string()) {
            let receipt: String = v.to_string().chars().take(300).collect();
            return Err(Error::Node {
                status: 200,
                message: format!("unexpected revocation receipt: {receipt}"),
            });
        }
        Ok(())
    }
}

/// Reads a `/delegation/status` answer (`{cid, status, exists, active, revoked, expired}`),
/// which must name the delegation asked about.
fn parse_status(v: &serde_json::Value, cid: &Cid) -> Result<DelegationStatus> {
    let bad = || Error::Node {
        status: 200,
        message: "unexpected delegation status answer".into(),
    };
    if v["cid"].as_str() != Some(&cid.to_string()) {
        return Err(bad());
    }
    Ok(match v["status"].as_str() {
        Some("active") => DelegationStatus::Active,
        Some("revoked") => DelegationStatus::Revoked,
        Some("expired") => DelegationStatus::Expired,
        Some("not_found") => DelegationStatus::NotFound,
        // A reference node's answer when it cannot tell.
        Some("unavailable") => DelegationStatus::Unavailable,
        _ => return Err(bad()),
    })
}

/// A delegation's status on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelegationStatus {
    /// Valid now.
    Active,
    /// Revoked, itself or an ancestor.
    Revoked,
    /// Past its expiry (not revoked).
    Expired,
    /// The node does not know it.
    NotFound,
    /// The node knows it but cannot tell its state (a reference node's `unavailable`).
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `/delegation/status` answers in the documented shape (node-protocol.md §1.7).
    #[test]
    fn reference_status_answers_parse() {
        let cid = tinycloud_auth::cid::blake3_cid(b"a delegation");
        let c = cid.to_string();
        for (status, want) in [
            ("active", DelegationStatus::Active),
            ("revoked", DelegationStatus::Revoked),
            ("expired", DelegationStatus::Expired),
            ("unavailable", DelegationStatus::Unavailable),
        ] {
            let v = json!({"cid": c, "status": status, "exists": true,
                "active": status == "active", "revoked": status == "revoked",
                "expired": status == "expired"});
            assert_eq!(parse_status(&v, &cid).unwrap(), want, "{status}");
        }
        let gone = json!({"cid": c, "status": "not_found", "exists": false, "active": false,
            "revoked": false, "expired": false});
        assert_eq!(
            parse_status(&gone, &cid).unwrap(),
            DelegationStatus::NotFound
        );
        // An answer about another delegation, or an unknown state, is refused.
        let other = tinycloud_auth::cid::blake3_cid(b"another").to_string();
        assert!(parse_status(&json!({"cid": other, "status": "active"}), &cid).is_err());
        assert!(parse_status(&json!({"cid": c, "status": "fine"}), &cid).is_err());
    }
}

/// Which side of the account a listed delegation is on (`POST /delegation/query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryDirection {
    /// Issued by the account (or one of its session keys, under its authority).
    Granted,
    /// Addressed to the account (or to the asking key).
    Received,
    /// Both.
    All,
}

/// A listed delegation's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Valid now.
    Active,
    /// Not valid yet (it or an ancestor starts later).
    Pending,
    /// Past its (or an ancestor's) expiry.
    Expired,
    /// Revoked itself.
    Revoked,
    /// Revoked through an ancestor.
    AncestorRevoked,
    /// A state this SDK does not know (a newer node).
    #[serde(other)]
    Unknown,
}

impl Lifecycle {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Pending => "pending",
            Lifecycle::Expired => "expired",
            Lifecycle::Revoked => "revoked",
            Lifecycle::AncestorRevoked => "ancestor_revoked",
            Lifecycle::Unknown => "unknown",
        }
    }
}

/// A `POST /delegation/query` request; every field optional (the node's defaults: both
/// directions, any status, any space, 50 per page).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegationQuery {
    /// Granted, received or both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<QueryDirection>,
    /// Only this state (`Revoked` includes revocation through an ancestor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Lifecycle>,
    /// Only delegations naming this space (id or name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// Page size, 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One page of an account's delegations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegationPage {
    /// The node's answer schema version (2).
    #[serde(default)]
    pub schema_version: u32,
    /// The delegations, newest first.
    pub items: Vec<ListedDelegation>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A delegation as the node lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedDelegation {
    /// Its CID.
    pub cid: String,
    /// `granted` or `received`.
    pub direction: String,
    /// Who issued it.
    pub delegator_did: String,
    /// Who received it.
    pub delegate_did: String,
    /// What it grants, per resource.
    #[serde(default)]
    pub resources: Vec<ListedResource>,
    /// What it rests on.
    #[serde(default)]
    pub parents: Vec<String>,
    /// When it was signed (RFC 3339), when known.
    #[serde(default)]
    pub issued_at: Option<String>,
    /// Start of validity (RFC 3339).
    #[serde(default)]
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Where it stands.
    pub status: Lifecycle,
    /// When it was revoked (itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// The revoked ancestor that revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ancestor_cid: Option<String>,
}

/// A resource of a [`ListedDelegation`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListedResource {
    /// The resource URI.
    pub resource: String,
    /// Abilities granted on it.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Per action, its caveats.
    #[serde(default)]
    pub caveats: Vec<serde_json::Value>,
}

/// Most pages [`TinyCloud::all_delegations`] reads (100 delegations each).
pub const MAX_QUERY_PAGES: usize = 1_000;

impl TinyCloud {
    /// One page of the delegations the session's account issued or received
    /// (`POST /delegation/query`, invoked with `tinycloud.delegation/list` on the primary
    /// space's `delegation` service under the session's delegation).
    pub async fn query_delegations(&self, query: &DelegationQuery) -> Result<DelegationPage> {
        let space = self.space()?;
        let cap = capability(&format!("{space}/delegation"), "tinycloud.delegation/list")
            .map_err(Error::InvalidInput)?;
        let token = self.invocation(vec![cap])?;
        let body = serde_json::to_string(query).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let req = self
            .http()
            .post(self.url("/delegation/query"))
            .header("authorization", token)
            .header("content-type", "application/json")
            .body(body);
        self.send_for_json(req).await
    }

    /// Every delegation matching `query`, page after page (`limit` per page, default 100; its
    /// `cursor` is ignored), at most [`MAX_QUERY_PAGES`] pages.
    pub async fn all_delegations(&self, query: &DelegationQuery) -> Result<Vec<ListedDelegation>> {
        let mut q = DelegationQuery {
            limit: Some(query.limit.unwrap_or(100)),
            cursor: None,
            ..query.clone()
        };
        let mut out = Vec::new();
        for _ in 0..MAX_QUERY_PAGES {
            let page = self.query_delegations(&q).await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if Some(&c) != q.cursor.as_ref() => q.cursor = Some(c),
                Some(_) => {
                    return Err(Error::Node {
                        status: 200,
                        message: "the node repeated a delegation query cursor".into(),
                    })
                }
                None => return Ok(out),
            }
        }
        Err(Error::Node {
            status: 200,
            message: format!("more than {MAX_QUERY_PAGES} pages of delegations"),
        })
    }
}

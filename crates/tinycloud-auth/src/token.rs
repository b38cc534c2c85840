//! The three things a client sends in `Authorization`: delegations (`/delegate`, CACAO or
//! UCAN), invocations (`/invoke` and every data route, UCAN) and revocations (`/revoke`).
//! Decoding here parses, verifies the signature (and, for SIWE, the ReCap statement) and
//! reduces the token to the facts chain validation needs.

use std::collections::BTreeSet;

use crate::ability::Ability;
use crate::cacao::{is_ucan_header, Cacao, CacaoError};
use crate::capability::{Capability, CapabilityError};
use crate::chain::{DelegationInfo, InvocationInfo};
use crate::cid::{parse_cid, Cid};
use crate::did::{Did, DidError, DidUrl};
use crate::recap::{Recap, RecapError};
use crate::resource::Resource;
use crate::timestamp::Timestamp;
use crate::ucan::{Ucan, UcanError};

/// The ability that revokes a delegation.
pub const REVOKE_ABILITY: &str = "tinycloud.delegation/revoke";

/// Errors decoding or verifying a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty header.
    #[error("missing Authorization token")]
    Missing,
    /// CACAO problems.
    #[error(transparent)]
    Cacao(#[from] CacaoError),
    /// UCAN problems.
    #[error(transparent)]
    Ucan(#[from] UcanError),
    /// ReCap problems (SIWE delegations).
    #[error("ReCap: {0}")]
    Recap(#[from] RecapError),
    /// Capability problems.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// SIWE `URI` of a delegation is not a DID.
    #[error("SIWE URI must be the delegate's DID: {0}")]
    Audience(DidError),
    /// Invocations must be UCANs.
    #[error("invocations must be UCAN JWTs")]
    InvocationNotUcan,
    /// A revocation that names no target.
    #[error("revocation names no target (expected a urn:cid: resource with {REVOKE_ABILITY})")]
    NoRevocationTarget,
}

/// Strips an optional `Bearer ` prefix and surrounding whitespace.
pub fn strip_bearer(header: &str) -> &str {
    let h = header.trim();
    h.strip_prefix("Bearer ").map(str::trim).unwrap_or(h)
}

/// A verified delegation.
#[derive(Clone, Debug)]
pub enum DelegationToken {
    /// SIWE + ReCap.
    Cacao(Cacao),
    /// UCAN JWT.
    Ucan(Ucan),
}

/// A decoded, signature-verified delegation and its chain facts.
#[derive(Clone, Debug)]
pub struct Delegation {
    token: DelegationToken,
    info: DelegationInfo,
}

impl Delegation {
    /// Decodes and verifies an `Authorization` header value: the signature, and for SIWE the
    /// ReCap statement. Time and chain are checked by [`crate::chain::validate_delegation`].
    pub fn from_header(header: &str) -> Result<Self, TokenError> {
        let header = strip_bearer(header);
        if header.is_empty() {
            return Err(TokenError::Missing);
        }
        if is_ucan_header(header) {
            let ucan = Ucan::decode_verified(header)?;
            Ok(Self::from_ucan(ucan))
        } else {
            let cacao = Cacao::from_header(header)?;
            cacao.verify()?;
            Self::from_cacao(cacao)
        }
    }

    /// Wraps a verified UCAN.
    pub fn from_ucan(ucan: Ucan) -> Self {
        let info = DelegationInfo {
            cid: ucan.cid(),
            issuer: ucan.issuer().did().clone(),
            delegatee: ucan.audience().did().clone(),
            not_before: ucan.not_before(),
            expiration: ucan.expiration(),
            parents: ucan.proofs().to_vec(),
            capabilities: ucan.capabilities().to_vec(),
            terminal: ucan.is_terminal(),
        };
        Delegation {
            token: DelegationToken::Ucan(ucan),
            info,
        }
    }

    /// Wraps a verified CACAO: capabilities and parents come from its ReCap (with empty
    /// caveats, as the reference extracts them), the delegatee from the SIWE `URI`.
    pub fn from_cacao(cacao: Cacao) -> Result<Self, TokenError> {
        let msg = cacao.message();
        let recap =
            Recap::extract(msg.resources.as_deref().unwrap_or_default())?.unwrap_or_default();
        if !recap.att.is_empty() {
            recap.verify_statement(msg.statement.as_deref())?;
        }
        let capabilities = recap
            .capabilities()?
            .into_iter()
            .map(|c| Capability::new(c.resource, c.ability))
            .collect();
        let delegatee = msg
            .uri
            .parse::<DidUrl>()
            .map_err(TokenError::Audience)?
            .into_did();
        let info = DelegationInfo {
            cid: cacao.cid(),
            issuer: cacao.issuer().clone(),
            delegatee,
            not_before: msg
                .not_before
                .as_ref()
                .map(|t| Timestamp::from(t.datetime())),
            expiration: msg
                .expiration_time
                .as_ref()
                .map(|t| Timestamp::from(t.datetime())),
            parents: recap.prf,
            capabilities,
            terminal: false,
        };
        Ok(Delegation {
            token: DelegationToken::Cacao(cacao),
            info,
        })
    }

    /// The chain facts.
    pub fn info(&self) -> &DelegationInfo {
        &self.info
    }

    /// Consumes into the chain facts.
    pub fn into_info(self) -> DelegationInfo {
        self.info
    }

    /// The CID over the exact bytes.
    pub fn cid(&self) -> Cid {
        self.info.cid
    }

    /// The underlying token.
    pub fn token(&self) -> &DelegationToken {
        &self.token
    }

    /// The `Authorization` value that reproduces the exact bytes (and so the CID).
    pub fn to_header(&self) -> String {
        match &self.token {
            DelegationToken::Cacao(c) => c.to_header(),
            DelegationToken::Ucan(u) => u.as_str().to_owned(),
        }
    }

    /// The spaces named by the delegation's capabilities, and those created by it
    /// (`tinycloud.space/host` on `<space>/space`).
    pub fn spaces(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let host: Ability = Ability::new("tinycloud.space", "host")
            .unwrap_or_else(|_| unreachable!("static ability is valid"));
        let mut named = BTreeSet::new();
        let mut hosted = BTreeSet::new();
        for cap in &self.info.capabilities {
            if let Some(space) = cap.resource.space() {
                named.insert(space.to_string());
                if cap.ability == host {
                    hosted.insert(space.to_string());
                }
            }
        }
        (named, hosted)
    }
}

/// A decoded, signature-verified invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    ucan: Ucan,
    info: InvocationInfo,
}

impl Invocation {
    /// Decodes and verifies an invocation header (always a UCAN).
    pub fn from_header(header: &str) -> Result<Self, TokenError> {
        let header = strip_bearer(header);
        if header.is_empty() {
            return Err(TokenError::Missing);
        }
        if !is_ucan_header(header) {
            return Err(TokenError::InvocationNotUcan);
        }
        Ok(Self::from_ucan(Ucan::decode_verified(header)?))
    }

    /// Wraps a verified UCAN.
    pub fn from_ucan(ucan: Ucan) -> Self {
        let info = InvocationInfo {
            invoker: ucan.issuer().did().clone(),
            not_before: ucan.not_before(),
            expiration: ucan.expiration(),
            parents: ucan.proofs().to_vec(),
            capabilities: ucan.capabilities().to_vec(),
        };
        Invocation { ucan, info }
    }

    /// The chain facts.
    pub fn info(&self) -> &InvocationInfo {
        &self.info
    }

    /// The UCAN.
    pub fn ucan(&self) -> &Ucan {
        &self.ucan
    }

    /// CID of the JWT bytes (the replay key).
    pub fn cid(&self) -> Cid {
        self.ucan.cid()
    }

    /// The invoker principal.
    pub fn invoker(&self) -> &Did {
        &self.info.invoker
    }

    /// The target of a revocation: the `urn:cid:` resource invoked with
    /// `tinycloud.delegation/revoke`, else the first proof (as the reference does).
    pub fn revocation_target(&self) -> Result<Cid, TokenError> {
        let revoke: Ability = REVOKE_ABILITY
            .parse()
            .unwrap_or_else(|_| unreachable!("static ability is valid"));
        self.info
            .capabilities
            .iter()
            .find_map(|c| match &c.resource {
                Resource::Cid(cid) if c.ability == revoke => Some(*cid),
                _ => None,
            })
            .or_else(|| self.info.parents.first().copied())
            .ok_or(TokenError::NoRevocationTarget)
    }
}

/// A revocation in CACAO form: a SIWE message whose `URI` is `ucan:<cid>`.
pub fn cacao_revocation_target(cacao: &Cacao) -> Option<Cid> {
    cacao
        .message()
        .uri
        .strip_prefix("ucan:")
        .and_then(|c| parse_cid(c).ok())
}

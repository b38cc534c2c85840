//! The three things a client sends in `Authorization`: delegations (`/delegate`, CACAO or
//! UCAN), invocations (`/invoke` and every data route, UCAN) and revocations (`/revoke`).
//! Decoding here parses, verifies the signature (and, for SIWE, the ReCap statement) and
//! reduces the token to the facts chain validation needs.

use std::collections::BTreeSet;

use crate::ability::Ability;
use crate::cacao::{is_ucan_header, Cacao, CacaoError};
use crate::capability::CapabilityError;
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
            authority: ucan.authority(),
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

    /// Wraps a verified CACAO: capabilities (with their ReCap caveats, the `nb` objects of each
    /// ability, enforced exactly like UCAN caveats) and parents come from its ReCap, the
    /// delegatee from the SIWE `URI`.
    pub fn from_cacao(cacao: Cacao) -> Result<Self, TokenError> {
        let msg = cacao.message();
        let recap =
            Recap::extract(msg.resources.as_deref().unwrap_or_default())?.unwrap_or_default();
        if !recap.att.is_empty() {
            recap.verify_statement(msg.statement.as_deref())?;
        }
        let capabilities = recap.capabilities()?;
        let delegatee = msg
            .uri
            .parse::<DidUrl>()
            .map_err(TokenError::Audience)?
            .into_did();
        let info = DelegationInfo {
            cid: cacao.cid(),
            authority: cacao.authority(),
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

    /// CID of the JWT bytes.
    pub fn cid(&self) -> Cid {
        self.ucan.cid()
    }

    /// The single-use key: the authority identity of the signed `header.payload`, so a
    /// re-encoded signature does not make a used invocation fresh.
    pub fn replay_key(&self) -> [u8; 32] {
        self.ucan.authority_digest()
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

/// The authority identity of a stored delegation's `Authorization` value, decoded without
/// verifying its signature (it was verified when it was registered).
pub fn authority_of_header(header: &str) -> Result<Cid, TokenError> {
    let header = strip_bearer(header);
    if is_ucan_header(header) {
        Ok(Ucan::decode(header)?.authority())
    } else {
        Ok(Cacao::from_header(header)?.authority())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Caveats;
    use crate::eth::{sign_eip191, EthAddress};
    use crate::keys::SecretKey;
    use crate::session::{capability, invocation, SiweDelegationRequest};

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF:default";

    fn wallet() -> k256::ecdsa::SigningKey {
        let mut b = [0u8; 32];
        b[31] = 2;
        k256::ecdsa::SigningKey::from_slice(&b).unwrap()
    }

    fn siwe(caps: Vec<crate::capability::Capability>) -> Cacao {
        let w = wallet();
        let req = SiweDelegationRequest {
            domain: "app.example".into(),
            address: EthAddress::from_verifying_key(w.verifying_key()),
            chain_id: 1,
            delegate: SecretKey::ed25519_from_seed(&[9; 32]).did().to_string(),
            nonce: "abcdefgh1234".into(),
            issued_at: Timestamp::from_secs(1_767_225_600),
            expiration: Some(Timestamp::from_secs(1_767_229_200)),
            not_before: None,
            capabilities: caps,
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().unwrap();
        let sig = sign_eip191(&w, msg.to_string().as_bytes()).unwrap();
        Cacao::new(msg, sig.to_vec()).unwrap()
    }

    #[test]
    fn recap_caveats_are_carried_into_the_capabilities() {
        let mut sql = capability(&format!("{SPACE}/sql/app"), "tinycloud.sql/write").unwrap();
        let caveat = serde_json::json!({"readOnly": true, "tables": ["notes"]});
        sql.caveats = Caveats::from_objects(vec![caveat.as_object().unwrap().clone()]);
        let kv = capability(&format!("{SPACE}/kv"), "tinycloud.kv/get").unwrap();
        let c = siwe(vec![sql.clone(), kv.clone()]);
        let owner = c.issuer().to_string();
        assert_eq!(format!("tinycloud:{}:default", &owner[4..]), SPACE);
        let d = Delegation::from_header(&c.to_header()).unwrap();
        let caps = &d.info().capabilities;
        let got = caps.iter().find(|x| x.ability == sql.ability).unwrap();
        assert!(!got.caveats.is_unconstrained());
        assert_eq!(got.caveats, sql.caveats);
        let got = caps.iter().find(|x| x.ability == kv.ability).unwrap();
        assert!(got.caveats.is_unconstrained());
        assert_eq!(d.info().authority, c.authority());
        assert_eq!(authority_of_header(&d.to_header()).unwrap(), c.authority());
    }

    #[test]
    fn the_single_use_key_ignores_the_signature_encoding() {
        let k = SecretKey::ed25519_from_seed(&[3; 32]);
        let cap = capability(&format!("{SPACE}/kv/a"), "tinycloud.kv/get").unwrap();
        let inv = invocation(
            &k,
            None,
            &[],
            vec![cap],
            Timestamp::from_secs(1_767_225_600),
            60,
            "urn:uuid:1",
            vec![],
        )
        .unwrap();
        let jwt = inv.as_str();
        let decoded = Invocation::from_header(jwt).unwrap();
        // Any other signature text over the same `header.payload` has the same key (here an
        // invalid one, decoded without verification).
        let (input, _) = jwt.rsplit_once('.').unwrap();
        let other = Ucan::decode(&format!("{input}.{}", "A".repeat(86))).unwrap();
        assert_ne!(other.cid(), decoded.cid());
        assert_eq!(other.authority_digest(), decoded.replay_key());
        assert_eq!(
            authority_of_header(&format!("{input}.AAAA")).unwrap(),
            decoded.ucan().authority()
        );
        // Non-canonical base64url of the signature (stray trailing bits) is refused.
        let (_, sig) = jwt.rsplit_once('.').unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        // 64-byte signatures end with 2 significant bits in the last of 86 characters.
        let twin = alphabet.as_bytes()[idx | 1] as char;
        let twin = if twin == last {
            alphabet.as_bytes()[idx ^ 1] as char
        } else {
            twin
        };
        let bad = format!("{input}.{}{twin}", &sig[..sig.len() - 1]);
        assert!(matches!(
            Invocation::from_header(&bad),
            Err(TokenError::Ucan(UcanError::Base64("signature")))
        ));
    }
}

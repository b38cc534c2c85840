//! Building the tokens a client sends: the owner's SIWE + ReCap sign-in (session delegation),
//! the space-host delegation, and UCAN invocations. Pure: the caller supplies time, nonces and
//! keys, and signs the SIWE text with whatever wallet it has.

use k256::ecdsa::SigningKey;
use time::OffsetDateTime;

use crate::ability::Ability;
use crate::cacao::{Cacao, CacaoError};
use crate::capability::Capability;
use crate::cid::Cid;
use crate::did::{Did, DidUrl};
use crate::eth::{sign_eip191, EthAddress, SignatureError};
use crate::keys::SecretKey;
use crate::recap::Recap;
use crate::resource::{Resource, ResourceError, SpaceId};
use crate::siwe::{Message, SiweError, TimeField, TimeStamp};
use crate::timestamp::Timestamp;
use crate::ucan::{Ucan, UcanBuilder, UcanError};

/// The domain the reference SDK puts in sign-in messages by default.
pub const DEFAULT_DOMAIN: &str = "app.tinycloud.xyz";
/// Default session lifetime (7 days), in seconds.
pub const DEFAULT_SESSION_SECS: i64 = 7 * 24 * 3600;
/// Default invocation lifetime, in seconds.
pub const DEFAULT_INVOCATION_TTL_SECS: i64 = 120;

/// Everything needed to write a SIWE + ReCap delegation from a wallet to a delegate.
#[derive(Clone, Debug)]
pub struct SiweDelegationRequest {
    /// `domain` of the SIWE message.
    pub domain: String,
    /// The wallet address.
    pub address: EthAddress,
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// The delegate: a session verification method (`did:key:z…#z…`) or a host DID.
    pub delegate: String,
    /// SIWE nonce (at least 8 alphanumerics).
    pub nonce: String,
    /// `Issued At`.
    pub issued_at: Timestamp,
    /// `Expiration Time`.
    pub expiration: Option<Timestamp>,
    /// `Not Before`.
    pub not_before: Option<Timestamp>,
    /// Granted capabilities (written to the ReCap; caveats are not carried by SIWE grants).
    pub capabilities: Vec<Capability>,
    /// Parent delegations, for wallets acting on authority delegated to them.
    pub parents: Vec<Cid>,
    /// A statement shown before the ReCap rendering.
    pub statement: Option<String>,
}

/// Why a sign-in could not be written and signed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The SIWE message is invalid (bad nonce, domain, time).
    #[error("SIWE message: {0}")]
    Message(#[from] SiweError),
    /// The wallet could not sign.
    #[error("signing: {0}")]
    Signature(#[from] SignatureError),
    /// The signed message does not make a CACAO.
    #[error("CACAO: {0}")]
    Cacao(#[from] CacaoError),
}

fn stamp(t: Timestamp, field: TimeField) -> Result<TimeStamp, SiweError> {
    let dt: OffsetDateTime = t.to_datetime();
    TimeStamp::from_datetime(dt).map_err(|source| SiweError::InvalidTimeStamp { field, source })
}

impl SiweDelegationRequest {
    /// The exact EIP-4361 message to sign.
    pub fn to_message(&self) -> Result<Message, SiweError> {
        let recap = Recap::from_capabilities(&self.capabilities, self.parents.clone());
        let message = Message {
            scheme: None,
            domain: self.domain.clone(),
            address: self.address,
            statement: Some(recap.statement_with(self.statement.as_deref())),
            uri: self.delegate.clone(),
            version: 1,
            chain_id: self.chain_id,
            nonce: self.nonce.clone(),
            issued_at: stamp(self.issued_at, TimeField::IssuedAt)?,
            expiration_time: self
                .expiration
                .map(|t| stamp(t, TimeField::ExpirationTime))
                .transpose()?,
            not_before: self
                .not_before
                .map(|t| stamp(t, TimeField::NotBefore))
                .transpose()?,
            request_id: None,
            resources: Some(vec![recap.to_resource()]),
        };
        message.validate()?;
        Ok(message)
    }

    /// The message signed (EIP-191) by `wallet`, the key of [`Self::address`], as a CACAO:
    /// the one sign-in builder for holders of a local key (tests, bench). A client whose
    /// signer is remote signs [`Self::to_message`] itself and calls [`Cacao::new`].
    pub fn sign(&self, wallet: &SigningKey) -> Result<Cacao, SignInError> {
        let message = self.to_message()?;
        let signature = sign_eip191(wallet, message.to_string().as_bytes())?;
        Ok(Cacao::new(message, signature.to_vec())?)
    }
}

/// The capability that creates a space: `tinycloud.space/host` on `<space>/space`.
pub fn host_capability(space: &SpaceId) -> Result<Capability, ResourceError> {
    let ability = Ability::new("tinycloud.space", "host")
        .unwrap_or_else(|_| unreachable!("static ability is valid"));
    Ok(Capability::new(space.resource("space", None)?, ability))
}

/// Builds a single-use invocation: `iss` the session verification method, `aud` the session
/// DID itself (or `audience`, e.g. the node DID for encryption routes), `prf` the proofs.
#[allow(clippy::too_many_arguments)]
pub fn invocation(
    key: &SecretKey,
    audience: Option<Did>,
    proofs: &[Cid],
    capabilities: Vec<Capability>,
    now: Timestamp,
    ttl_secs: i64,
    nonce: &str,
    facts: Vec<serde_json::Map<String, serde_json::Value>>,
) -> Result<Ucan, UcanError> {
    let did = key.did();
    let aud: DidUrl = audience.unwrap_or_else(|| did.clone()).into();
    let mut b = UcanBuilder::new(did.verification_method(), aud, nonce)
        .expiration(now.plus_secs(ttl_secs))
        .capabilities(capabilities);
    for p in proofs {
        b = b.proof(*p);
    }
    for f in facts {
        b = b.fact(f);
    }
    b.sign(key)
}

/// Convenience: one capability on a resource string.
pub fn capability(resource: &str, ability: &str) -> Result<Capability, String> {
    let r: Resource = resource.parse().map_err(|e: ResourceError| e.to_string())?;
    let a: Ability = ability
        .parse()
        .map_err(|e: crate::ability::AbilityError| e.to_string())?;
    Ok(Capability::new(r, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cacao::Cacao;
    use crate::chain::{validate_invocation, MemoryChain, DEFAULT_MAX_INVOCATION_LIFETIME_SECS};
    use crate::eth::sign_eip191;
    use crate::token::{Delegation, Invocation};

    fn wallet() -> k256::ecdsa::SigningKey {
        let mut b = [0u8; 32];
        b[31] = 1;
        k256::ecdsa::SigningKey::from_slice(&b).unwrap()
    }

    #[test]
    fn sign_in_delegate_invoke_end_to_end() {
        let wallet = wallet();
        let address = EthAddress::from_verifying_key(wallet.verifying_key());
        assert_eq!(
            address.to_eip55(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        let owner = Did::pkh(1, address).unwrap();
        let space = SpaceId::new(owner.clone(), "default").unwrap();
        let session = SecretKey::ed25519_from_seed(&[9; 32]);
        let now = Timestamp::from_secs(1_800_000_000);
        let req = SiweDelegationRequest {
            domain: DEFAULT_DOMAIN.into(),
            address,
            chain_id: 1,
            delegate: session.did().verification_method().to_string(),
            nonce: "abcdefgh1234".into(),
            issued_at: now,
            expiration: Some(now.plus_secs(DEFAULT_SESSION_SECS)),
            not_before: None,
            capabilities: vec![
                capability(&format!("{space}/kv"), "tinycloud.kv/get").unwrap(),
                capability(&format!("{space}/kv"), "tinycloud.kv/put").unwrap(),
            ],
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().unwrap();
        let text = msg.to_string();
        assert!(text.contains("(1) 'tinycloud.kv': 'get', 'put' for 'tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv'."), "{text}");
        let sig = sign_eip191(&wallet, text.as_bytes());
        let cacao = Cacao::new(msg, sig.unwrap().to_vec()).unwrap();
        let header = cacao.to_header();
        assert!(
            header.ends_with('=') || header.len() % 4 == 0,
            "padded base64url"
        );

        let d = Delegation::from_header(&header).unwrap();
        assert_eq!(d.cid(), cacao.cid());
        assert_eq!(d.to_header(), header);
        assert_eq!(d.info().issuer, owner);
        assert_eq!(d.info().delegatee, session.did());
        assert_eq!(d.info().capabilities.len(), 2);
        let mut chain = MemoryChain::default();
        chain.register(d.info().clone(), now).unwrap();

        let inv = invocation(
            &session,
            None,
            &[d.cid()],
            vec![capability(&format!("{space}/kv/notes/a"), "tinycloud.kv/get").unwrap()],
            now,
            DEFAULT_INVOCATION_TTL_SECS,
            "urn:uuid:00000000-0000-4000-8000-000000000000",
            vec![],
        )
        .unwrap();
        let parsed = Invocation::from_header(inv.as_str()).unwrap();
        validate_invocation(
            parsed.info(),
            &chain,
            now,
            DEFAULT_MAX_INVOCATION_LIFETIME_SECS,
        )
        .unwrap();

        // Tampering with the CACAO signature is caught.
        let mut bad = cacao.signature().to_vec();
        bad[5] ^= 1;
        let forged = Cacao::new(cacao.message().clone(), bad).unwrap();
        assert!(Delegation::from_header(&forged.to_header()).is_err());
        // So is a statement that no longer matches the ReCap.
        let mut msg2 = cacao.message().clone();
        msg2.statement = Some("I authorize nothing.".into());
        let sig2 = sign_eip191(&wallet, msg2.to_string().as_bytes());
        let mismatched = Cacao::new(msg2, sig2.unwrap().to_vec()).unwrap();
        assert!(matches!(
            Delegation::from_header(&mismatched.to_header()),
            Err(crate::token::TokenError::Recap(_))
        ));
    }

    #[test]
    fn sign_is_the_message_signed_by_the_wallet() {
        let wallet = wallet();
        let address = EthAddress::from_verifying_key(wallet.verifying_key());
        let space = SpaceId::new(Did::pkh(1, address).unwrap(), "default").unwrap();
        let req = SiweDelegationRequest {
            domain: DEFAULT_DOMAIN.into(),
            address,
            chain_id: 1,
            delegate: SecretKey::ed25519_from_seed(&[4; 32])
                .did()
                .verification_method()
                .to_string(),
            nonce: "signnonce1".into(),
            issued_at: Timestamp::from_secs(1_800_000_000),
            expiration: None,
            not_before: None,
            capabilities: vec![capability(&format!("{space}/kv"), "tinycloud.kv/get").unwrap()],
            parents: vec![],
            statement: None,
        };
        let cacao = req.sign(&wallet).unwrap();
        let msg = req.to_message().unwrap();
        let sig = sign_eip191(&wallet, msg.to_string().as_bytes()).unwrap();
        assert_eq!(
            cacao.to_header(),
            Cacao::new(msg, sig.to_vec()).unwrap().to_header()
        );
        let d = Delegation::from_header(&cacao.to_header()).unwrap();
        assert_eq!(d.info().issuer, Did::pkh(1, address).unwrap());
        let bad = SiweDelegationRequest {
            nonce: "short".into(),
            ..req
        };
        assert!(matches!(bad.sign(&wallet), Err(SignInError::Message(_))));
    }

    #[test]
    fn host_delegation_has_no_expiry_and_names_the_space() {
        let wallet = wallet();
        let address = EthAddress::from_verifying_key(wallet.verifying_key());
        let space = SpaceId::new(Did::pkh(1, address).unwrap(), "secrets").unwrap();
        let host = SecretKey::ed25519_from_seed(&[3; 32]).did();
        let req = SiweDelegationRequest {
            domain: DEFAULT_DOMAIN.into(),
            address,
            chain_id: 1,
            delegate: host.to_string(),
            nonce: "hostnonce1".into(),
            issued_at: Timestamp::from_secs(1_800_000_000),
            expiration: None,
            not_before: None,
            capabilities: vec![host_capability(&space).unwrap()],
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().unwrap();
        let sig = sign_eip191(&wallet, msg.to_string().as_bytes());
        let d =
            Delegation::from_header(&Cacao::new(msg, sig.unwrap().to_vec()).unwrap().to_header())
                .unwrap();
        let (named, hosted) = d.spaces();
        assert!(named.contains(&space.to_string()));
        assert!(hosted.contains(&space.to_string()));
        assert_eq!(d.info().expiration, None);
    }
}

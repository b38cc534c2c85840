//! Decentralized identifiers used by TinyCloud: `did:pkh:eip155` (owner accounts) and `did:key`
//! (session, node and host keys), plus DID URLs (`did:key:z…#z…`).
//!
//! A [`Did`] is always the canonical *principal*: no fragment, EIP-55 address case, the
//! multibase key exactly as encoded. Comparing two principals is comparing two `Did`s.

use std::fmt;
use std::str::FromStr;

use crate::eth::EthAddress;
use crate::excerpt::truncate;
use crate::keys::{KeyError, PublicKey, SecretKey};

/// Errors from parsing a DID or DID URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// The text does not start with `did:`.
    #[error("not a DID: {0:?}")]
    NotADid(String),
    /// A DID method other than `pkh` and `key`.
    #[error("unsupported DID method {0:?} (supported: did:pkh:eip155, did:key)")]
    UnsupportedMethod(String),
    /// `did:pkh` with a namespace other than `eip155`.
    #[error("unsupported did:pkh namespace {0:?} (supported: eip155)")]
    UnsupportedPkhNamespace(String),
    /// `did:pkh:eip155` without exactly `<chain>:<address>`.
    #[error("malformed did:pkh: expected did:pkh:eip155:<chain id>:<0x address>")]
    MalformedPkh,
    /// Chain id not a positive decimal integer.
    #[error("invalid chain id {0:?}: must be a positive decimal integer")]
    InvalidChainId(String),
    /// Address not `0x` + 40 hex digits.
    #[error("invalid Ethereum address {0:?}")]
    InvalidAddress(String),
    /// `did:key` whose key part cannot be decoded.
    #[error("invalid did:key: {0}")]
    InvalidKey(#[from] KeyError),
    /// A fragment that is empty, or on a `did:key` does not name the key itself.
    #[error("invalid DID URL fragment {0:?}")]
    InvalidFragment(String),
}

/// A canonical DID principal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Did {
    /// `did:pkh:eip155:<chain_id>:<EIP-55 address>`.
    Pkh {
        /// EIP-155 chain id, never 0.
        chain_id: u64,
        /// The account address.
        address: EthAddress,
    },
    /// `did:key:z…`.
    Key(DidKey),
}

/// A `did:key`: a public key and its multibase text (`z…`). The decoded key is shared, so
/// DIDs stay small and cheap to clone.
#[derive(Clone)]
pub struct DidKey {
    key: std::sync::Arc<PublicKey>,
    id: String,
}

impl DidKey {
    /// Builds the `did:key` of a public key.
    pub fn from_public_key(key: PublicKey) -> Self {
        let id = key.to_multibase();
        Self {
            key: std::sync::Arc::new(key),
            id,
        }
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The multibase method-specific id (`z6Mk…`), also the fragment of its verification method.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl PartialEq for DidKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for DidKey {}
impl std::hash::Hash for DidKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl PartialOrd for DidKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DidKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl Did {
    /// The `did:pkh:eip155` DID of an account.
    pub fn pkh(chain_id: u64, address: EthAddress) -> Result<Self, DidError> {
        if chain_id == 0 {
            return Err(DidError::InvalidChainId("0".into()));
        }
        Ok(Did::Pkh { chain_id, address })
    }

    /// The `did:key` of a public key.
    pub fn key(key: PublicKey) -> Self {
        Did::Key(DidKey::from_public_key(key))
    }

    /// The verification key, when the DID embeds one (`did:key`).
    pub fn public_key(&self) -> Option<&PublicKey> {
        match self {
            Did::Key(k) => Some(k.public_key()),
            Did::Pkh { .. } => None,
        }
    }

    /// The DID without its leading `did:` (used inside space ids).
    pub fn suffix(&self) -> String {
        let s = self.to_string();
        s.strip_prefix("did:").map(str::to_owned).unwrap_or(s)
    }

    /// The verification-method DID URL of a `did:key` (`did:key:z…#z…`); for other DIDs the DID
    /// itself without a fragment.
    pub fn verification_method(&self) -> DidUrl {
        match self {
            Did::Key(k) => DidUrl {
                did: self.clone(),
                fragment: Some(k.id.clone()),
            },
            Did::Pkh { .. } => DidUrl {
                did: self.clone(),
                fragment: None,
            },
        }
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Did::Pkh { chain_id, address } => write!(f, "did:pkh:eip155:{chain_id}:{address}"),
            Did::Key(k) => write!(f, "did:key:{}", k.id),
        }
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

fn parse_chain_id(s: &str) -> Result<u64, DidError> {
    let valid = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && !(s.len() > 1 && s.starts_with('0'));
    let id: u64 = if valid {
        s.parse()
            .map_err(|_| DidError::InvalidChainId(s.to_owned()))?
    } else {
        return Err(DidError::InvalidChainId(s.to_owned()));
    };
    if id == 0 {
        return Err(DidError::InvalidChainId(s.to_owned()));
    }
    Ok(id)
}

impl FromStr for Did {
    type Err = DidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("did:")
            .ok_or_else(|| DidError::NotADid(truncate(s)))?;
        let (method, specific) = rest
            .split_once(':')
            .ok_or_else(|| DidError::NotADid(truncate(s)))?;
        match method {
            "pkh" => {
                let (ns, tail) = specific.split_once(':').ok_or(DidError::MalformedPkh)?;
                if ns != "eip155" {
                    return Err(DidError::UnsupportedPkhNamespace(truncate(ns)));
                }
                let (chain, addr) = tail.split_once(':').ok_or(DidError::MalformedPkh)?;
                let chain_id = parse_chain_id(chain)?;
                let address = EthAddress::parse_any_case(addr)
                    .map_err(|_| DidError::InvalidAddress(truncate(addr)))?;
                Ok(Did::Pkh { chain_id, address })
            }
            "key" => {
                let key = PublicKey::from_multibase(specific)?;
                Ok(Did::Key(DidKey {
                    key: std::sync::Arc::new(key),
                    id: specific.to_owned(),
                }))
            }
            other => Err(DidError::UnsupportedMethod(truncate(other))),
        }
    }
}

/// A DID with an optional fragment (a verification method such as `did:key:z…#z…`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DidUrl {
    did: Did,
    fragment: Option<String>,
}

impl DidUrl {
    /// The principal: the DID with the fragment stripped.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The fragment, without `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// Consumes the URL, returning the principal.
    pub fn into_did(self) -> Did {
        self.did
    }
}

impl From<Did> for DidUrl {
    fn from(did: Did) -> Self {
        DidUrl {
            did,
            fragment: None,
        }
    }
}

impl FromStr for DidUrl {
    type Err = DidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (did_part, fragment) = match s.split_once('#') {
            Some((d, f)) => (d, Some(f)),
            None => (s, None),
        };
        let did: Did = did_part.parse()?;
        if let Some(f) = fragment {
            let ok = !f.is_empty()
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(&b))
                && match &did {
                    // A did:key has one verification method, named by the key itself.
                    Did::Key(k) => f == k.id,
                    Did::Pkh { .. } => true,
                };
            if !ok {
                return Err(DidError::InvalidFragment(truncate(f)));
            }
        }
        Ok(DidUrl {
            did,
            fragment: fragment.map(str::to_owned),
        })
    }
}

impl fmt::Display for DidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fragment {
            Some(frag) => write!(f, "{}#{}", self.did, frag),
            None => write!(f, "{}", self.did),
        }
    }
}

impl fmt::Debug for DidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DidUrl({self})")
    }
}

/// Compares two DID strings as principals (fragments stripped, canonical form). Unparseable
/// input never matches.
pub fn principal_matches(a: &str, b: &str) -> bool {
    match (a.parse::<DidUrl>(), b.parse::<DidUrl>()) {
        (Ok(a), Ok(b)) => a.did == b.did,
        _ => false,
    }
}

impl SecretKey {
    /// The key's `did:key`. (Here rather than in `keys.rs`, so identities depend on keys and
    /// never the other way round.)
    pub fn did(&self) -> Did {
        Did::key(self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

    #[test]
    fn pkh_canonicalizes_address_case() {
        let lower: Did = format!("did:pkh:eip155:1:{}", ADDR.to_lowercase())
            .parse()
            .unwrap();
        assert_eq!(lower.to_string(), format!("did:pkh:eip155:1:{ADDR}"));
        let checksummed: Did = format!("did:pkh:eip155:1:{ADDR}").parse().unwrap();
        assert_eq!(lower, checksummed);
    }

    #[test]
    fn pkh_rejects_chain_zero_and_garbage() {
        for bad in [
            format!("did:pkh:eip155:0:{ADDR}"),
            format!("did:pkh:eip155:01:{ADDR}"),
            format!("did:pkh:eip155:-1:{ADDR}"),
            format!("did:pkh:eip155::{ADDR}"),
            "did:pkh:eip155:1:0x1234".to_string(),
            format!("did:pkh:solana:1:{ADDR}"),
            "did:pkh:eip155:1".to_string(),
            "did:web:example.com".to_string(),
            "notadid".to_string(),
            "did:".to_string(),
        ] {
            assert!(bad.parse::<Did>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn did_url_fragment_rules() {
        let key = crate::keys::tests::ed25519_did();
        let s = key.to_string();
        let id = s.strip_prefix("did:key:").unwrap();
        let vm: DidUrl = format!("{s}#{id}").parse().unwrap();
        assert_eq!(vm.did(), &key);
        assert_eq!(vm.to_string(), format!("{s}#{id}"));
        assert_eq!(key.verification_method(), vm);
        assert!(format!("{s}#other").parse::<DidUrl>().is_err());
        assert!(format!("{s}#").parse::<DidUrl>().is_err());
        assert!(principal_matches(&format!("{s}#{id}"), &s));
        assert!(!principal_matches(&s, "did:key:zNope"));
    }

    #[test]
    fn suffix_strips_did_prefix() {
        let d: Did = format!("did:pkh:eip155:137:{ADDR}").parse().unwrap();
        assert_eq!(d.suffix(), format!("pkh:eip155:137:{ADDR}"));
    }
}

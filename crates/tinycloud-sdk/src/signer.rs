//! Who signs the owner's SIWE messages. A local key is one implementation; OpenKey, a hardware
//! wallet or a browser wallet implement the same trait.

use async_trait::async_trait;
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::siwe::Message;

use crate::error::{Error, Result};

/// An Ethereum account that can sign EIP-191 (`personal_sign`) messages.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The account address.
    async fn address(&self) -> Result<EthAddress>;
    /// The EIP-155 chain id the account signs for.
    async fn chain_id(&self) -> Result<u64>;
    /// Signs `message` with EIP-191; returns the 65-byte `r || s || v` signature.
    async fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// Signs a SIWE message; returns the message actually signed and the signature. A signer
    /// may sign a narrower message than asked (OpenKey lets the person remove capabilities or
    /// shorten the expiry): callers build the delegation from the returned message. The default
    /// signs `message` unchanged.
    async fn sign_siwe(&self, message: &Message) -> Result<(Message, Vec<u8>)> {
        let sig = self.sign_message(message.to_string().as_bytes()).await?;
        Ok((message.clone(), sig))
    }
}

/// A secp256k1 private key held in memory.
pub struct LocalSigner {
    key: k256::ecdsa::SigningKey,
    chain_id: u64,
}

impl LocalSigner {
    /// From a `0x`-prefixed (or bare) 64-digit hex private key.
    pub fn from_hex(hex_key: &str, chain_id: u64) -> Result<Self> {
        let h = hex_key.trim();
        let h = h.strip_prefix("0x").unwrap_or(h);
        let bytes = hex::decode(h)
            .map_err(|_| Error::InvalidInput("private key must be 64 hex digits".into()))?;
        let key = k256::ecdsa::SigningKey::from_slice(&bytes).map_err(|_| {
            Error::InvalidInput("private key is not a valid secp256k1 scalar".into())
        })?;
        Ok(LocalSigner { key, chain_id })
    }

    /// A fresh random key.
    pub fn generate(chain_id: u64) -> Self {
        LocalSigner {
            key: k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
            chain_id,
        }
    }

    /// The private key as `0x…` hex (for storing in a 0600 profile file; never log it).
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.key.to_bytes()))
    }

    /// The address.
    pub fn eth_address(&self) -> EthAddress {
        EthAddress::from_verifying_key(self.key.verifying_key())
    }
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalSigner({})", self.eth_address())
    }
}

#[async_trait]
impl Signer for LocalSigner {
    async fn address(&self) -> Result<EthAddress> {
        Ok(self.eth_address())
    }

    async fn chain_id(&self) -> Result<u64> {
        Ok(self.chain_id)
    }

    async fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>> {
        sign_eip191(&self.key, message)
            .map(|s| s.to_vec())
            .map_err(|e| Error::Signer(e.to_string()))
    }
}

//! TEMPORARY stub; replaced by the real module.
use k256::ecdsa::{SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EthAddress(pub [u8; 20]);

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("bad address")]
    Bad,
}
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("bad sig")]
    Bad,
}

impl EthAddress {
    pub fn parse_any_case(s: &str) -> Result<Self, AddressError> {
        let h = s.strip_prefix("0x").ok_or(AddressError::Bad)?;
        let v = hex::decode(h).map_err(|_| AddressError::Bad)?;
        Ok(Self(v.try_into().map_err(|_| AddressError::Bad)?))
    }
    pub fn parse_checksummed(s: &str) -> Result<Self, AddressError> {
        let a = Self::parse_any_case(s)?;
        if a.to_eip55() == s {
            Ok(a)
        } else {
            Err(AddressError::Bad)
        }
    }
    pub fn to_eip55(&self) -> String {
        let h = hex::encode(self.0);
        let d = Keccak256::digest(h.as_bytes());
        let mut out = String::from("0x");
        for (i, c) in h.chars().enumerate() {
            let nib = (d[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
            if nib >= 8 {
                out.push(c.to_ascii_uppercase())
            } else {
                out.push(c)
            }
        }
        out
    }
    pub fn from_verifying_key(k: &VerifyingKey) -> Self {
        let p = k.to_encoded_point(false);
        let d = Keccak256::digest(&p.as_bytes()[1..]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&d[12..]);
        Self(a)
    }
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}
impl std::fmt::Display for EthAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_eip55())
    }
}
pub fn eip191_hash(m: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(format!("\x19Ethereum Signed Message:\n{}", m.len()).as_bytes());
    h.update(m);
    h.finalize().into()
}
pub fn recover_eip191(m: &[u8], sig: &[u8]) -> Result<EthAddress, SignatureError> {
    if sig.len() != 65 {
        return Err(SignatureError::Bad);
    }
    let s = k256::ecdsa::Signature::from_slice(&sig[..64]).map_err(|_| SignatureError::Bad)?;
    let v = match sig[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(SignatureError::Bad),
    };
    let id = k256::ecdsa::RecoveryId::from_byte(v).ok_or(SignatureError::Bad)?;
    let k = VerifyingKey::recover_from_prehash(&eip191_hash(m), &s, id)
        .map_err(|_| SignatureError::Bad)?;
    Ok(EthAddress::from_verifying_key(&k))
}
pub fn sign_eip191(key: &SigningKey, m: &[u8]) -> [u8; 65] {
    let (s, id) = key.sign_prehash_recoverable(&eip191_hash(m)).expect("sign");
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&s.to_bytes());
    out[64] = 27 + id.to_byte();
    out
}

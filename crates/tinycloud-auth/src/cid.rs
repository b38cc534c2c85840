//! Content identifiers: every delegation, invocation and revocation is named by
//! CIDv1(raw, blake3-256) over the exact bytes received (`bafkr4i…` in base32).

use std::str::FromStr;

pub use ::cid::Cid;

/// Multicodec `raw`.
pub const RAW_CODEC: u64 = 0x55;
/// Multihash code of BLAKE3 with a 32-byte digest.
pub const BLAKE3_MH: u64 = 0x1e;

/// Errors parsing a CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    /// Not a valid multibase CID string.
    #[error("invalid CID {0:?}")]
    Invalid(String),
}

/// The CID of `bytes`: CIDv1, codec raw, multihash blake3-256.
pub fn blake3_cid(bytes: &[u8]) -> Cid {
    let digest = blake3::hash(bytes);
    from_blake3_digest(digest.as_bytes())
}

/// The CID for a blake3 digest computed elsewhere.
pub fn from_blake3_digest(digest: &[u8; 32]) -> Cid {
    // `wrap` only fails for digests longer than the multihash capacity (64 bytes).
    let mh = ::cid::multihash::Multihash::<64>::wrap(BLAKE3_MH, digest)
        .unwrap_or_else(|_| unreachable!("32-byte digest fits a 64-byte multihash"));
    Cid::new_v1(RAW_CODEC, mh)
}

/// Parses any multibase CID text (base32 `bafk…`, base58btc `z…`, …) or a CIDv0.
pub fn parse_cid(s: &str) -> Result<Cid, CidError> {
    if s.len() > 256 {
        return Err(CidError::Invalid(crate::excerpt::truncate(s)));
    }
    Cid::from_str(s).map_err(|_| CidError::Invalid(crate::excerpt::truncate(s)))
}

/// The base58btc rendering used inside ReCap `prf` arrays.
pub fn to_base58btc(cid: &Cid) -> String {
    cid.to_string_of_base(multibase::Base::Base58Btc)
        .unwrap_or_else(|_| cid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_cid_is_bafkr4i_and_parses_from_both_bases() {
        let cid = blake3_cid(b"hello");
        let s = cid.to_string();
        assert!(s.starts_with("bafkr4i"), "{s}");
        assert_eq!(parse_cid(&s).unwrap(), cid);
        let z = to_base58btc(&cid);
        assert!(z.starts_with('z'));
        assert_eq!(parse_cid(&z).unwrap(), cid);
        assert_eq!(cid.hash().digest(), blake3::hash(b"hello").as_bytes());
    }

    #[test]
    fn bad_cids_are_errors() {
        for bad in ["", "bafy", "zzzz", "bafy.parent.A", "not a cid"] {
            assert!(parse_cid(bad).is_err(), "{bad}");
        }
    }
}

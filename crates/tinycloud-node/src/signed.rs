//! Signed KV URLs: ticket ids, content-hash bindings and single byte ranges.
//!
//! A ticket id is `base64url(nonce ‖ mac)` with a 16-byte random nonce and a 32-byte BLAKE3
//! MAC of it under a node-derived key: unguessable, and a forged or altered id is refused in
//! constant time before any storage is read. The index stores only the BLAKE3 hash of the id,
//! so reading the database does not yield working bearer URLs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

use crate::store::Hash;

/// The longest lifetime of a signed URL (seconds), whatever the request or configuration say.
pub const MAX_TTL_SECS: u64 = 300;

const NONCE_LEN: usize = 16;
/// Length of a ticket id (base64url of 48 bytes).
pub const TICKET_ID_LEN: usize = 64;

/// Mints a ticket id; returns it with the hash it is stored under.
pub fn mint_id(key: &[u8; 32]) -> (String, Hash) {
    let mut bytes = [0u8; NONCE_LEN + 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes[..NONCE_LEN]);
    let mac = blake3::keyed_hash(key, &bytes[..NONCE_LEN]);
    bytes[NONCE_LEN..].copy_from_slice(mac.as_bytes());
    let id = URL_SAFE_NO_PAD.encode(bytes);
    let hash = *blake3::hash(id.as_bytes()).as_bytes();
    (id, hash)
}

/// The storage hash of a ticket id minted by this node (MAC checked in constant time), or
/// `None` for anything else.
pub fn check_id(key: &[u8; 32], id: &str) -> Option<Hash> {
    if id.len() != TICKET_ID_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    if bytes.len() != NONCE_LEN + 32 {
        return None;
    }
    let (nonce, mac) = bytes.split_at(NONCE_LEN);
    let mac: [u8; 32] = mac.try_into().ok()?;
    // `blake3::Hash` equality is constant-time.
    if blake3::keyed_hash(key, nonce) != blake3::Hash::from(mac) {
        return None;
    }
    Some(*blake3::hash(id.as_bytes()).as_bytes())
}

/// A content hash as a client names it: 64 hex digits, optionally as the ETag
/// `"blake3-<hex>"` (quotes and prefix optional, as the reference accepts).
pub fn parse_content_hash(v: &str) -> Option<Hash> {
    let t = v.trim().trim_matches('"');
    let hex = t.strip_prefix("blake3-").unwrap_or(t);
    if hex.len() != 64 {
        return None;
    }
    hex::decode(hex).ok()?.try_into().ok()
}

/// One byte range of a `Range: bytes=…` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `a-b` (inclusive).
    Inclusive(u64, u64),
    /// `a-`.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// Parses a `Range` header holding one byte range. Other units, several ranges and malformed
/// ranges are errors (400, as the reference answers).
pub fn parse_range(v: &str) -> Result<ByteRange, &'static str> {
    let spec = v
        .trim()
        .strip_prefix("bytes=")
        .ok_or("Range must use bytes")?;
    if spec.contains(',') {
        return Err("multiple byte ranges are not supported");
    }
    let (a, b) = spec.split_once('-').ok_or("Range must contain '-'")?;
    let num = |s: &str, what| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(what);
        }
        s.parse::<u64>().map_err(|_| what)
    };
    match (a.trim(), b.trim()) {
        ("", "") => Err("Range must include a start or suffix length"),
        ("", n) => match num(n, "invalid byte range suffix")? {
            0 => Err("byte range suffix must be greater than zero"),
            n => Ok(ByteRange::Suffix(n)),
        },
        (a, "") => Ok(ByteRange::From(num(a, "invalid byte range start")?)),
        (a, b) => {
            let (a, b) = (
                num(a, "invalid byte range start")?,
                num(b, "invalid byte range end")?,
            );
            if a > b {
                return Err("byte range start must not exceed end");
            }
            Ok(ByteRange::Inclusive(a, b))
        }
    }
}

impl ByteRange {
    /// The inclusive `(first, last)` byte positions in an object of `size` bytes, or `None`
    /// when the range is not satisfiable (416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        match self {
            ByteRange::Inclusive(a, b) => (a <= last).then(|| (a, b.min(last))),
            ByteRange::From(a) => (a <= last).then_some((a, last)),
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), last)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_verify_and_tampering_is_refused() {
        let key = [5u8; 32];
        let (id, hash) = mint_id(&key);
        assert_eq!(id.len(), TICKET_ID_LEN);
        assert_eq!(check_id(&key, &id), Some(hash));
        assert_ne!(mint_id(&key).0, id, "ids are random");
        assert_eq!(check_id(&[6u8; 32], &id), None, "another node's key");
        let mut chars: Vec<char> = id.chars().collect();
        for i in [0, 20, 40, 63] {
            let orig = chars[i];
            chars[i] = if orig == 'A' { 'B' } else { 'A' };
            assert_eq!(check_id(&key, &chars.iter().collect::<String>()), None);
            chars[i] = orig;
        }
        assert_eq!(check_id(&key, &id[..63]), None);
        assert_eq!(check_id(&key, &format!("{id}A")), None);
        assert_eq!(check_id(&key, ""), None);
        assert_eq!(check_id(&key, &"!".repeat(64)), None);
    }

    #[test]
    fn content_hashes() {
        let h = [0xabu8; 32];
        let hex = hex::encode(h);
        assert_eq!(parse_content_hash(&hex), Some(h));
        assert_eq!(parse_content_hash(&hex.to_uppercase()), Some(h));
        assert_eq!(parse_content_hash(&format!("\"blake3-{hex}\"")), Some(h));
        assert_eq!(parse_content_hash(&format!("blake3-{hex}")), Some(h));
        assert_eq!(parse_content_hash("\"blake3-test\""), None);
        assert_eq!(parse_content_hash(&hex[..62]), None);
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range("bytes=10-19"), Ok(Inclusive(10, 19)));
        assert_eq!(parse_range("bytes=10-"), Ok(From(10)));
        assert_eq!(parse_range("bytes=-10"), Ok(Suffix(10)));
        for bad in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=20-10",
            "bytes=-",
            "bytes=-0",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1",
            "bytes=99999999999999999999999-",
        ] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!(Inclusive(0, 4).resolve(10), Some((0, 4)));
        assert_eq!(Inclusive(5, 100).resolve(10), Some((5, 9)));
        assert_eq!(Inclusive(10, 12).resolve(10), None);
        assert_eq!(From(9).resolve(10), Some((9, 9)));
        assert_eq!(From(10).resolve(10), None);
        assert_eq!(Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(Suffix(3).resolve(0), None);
        assert_eq!(From(0).resolve(0), None);
    }
}

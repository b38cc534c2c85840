//! A foreign client: builds tokens and requests the way the reference clients (the JS SDK and
//! its WASM session code) do, from the documented wire shapes only
//! (the reference protocol description, §2.4–2.6, §2.9, §12), with primitive crates —
//! ed25519-dalek, k256, sha3 (keccak), blake3, base64, serde_json, a JCS canonicalizer and a
//! hand-written DAG-CBOR encoder. Nothing here uses `tinycloud_auth` or `tinycloud_sdk`: the
//! point is not to trust this project's own encoders.
//!
//! What it reproduces byte for byte:
//! - SIWE (EIP-4361) text with a ReCap (EIP-5573) statement and a `urn:recap:` resource
//!   (JCS JSON, base64url without padding, recap `prf` CIDs in base58btc);
//! - EIP-191 `personal_sign` signatures (65 bytes, `v` = 27/28 as ethers produces);
//! - CACAO as canonical DAG-CBOR, sent as **padded** base64url;
//! - UCAN 0.10 JWTs (EdDSA, `did:key:z6Mk…`, `ucv`, `att`, `prf` as base32 `bafkr4i…` CIDs);
//! - CIDs: CIDv1(raw 0x55, blake3-256 0x1e) over the exact bytes (JWT ASCII, CACAO CBOR);
//! - the sign-in flow: session SIWE → `/delegate`; when the space is `skipped`,
//!   `/peer/generate/<space>` → host SIWE (`tinycloud.space/host`) → `/delegate` → re-post.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{json, Map, Value};
use sha3::Digest as _;

mod client;
mod tokens;
pub use client::*;
pub use tokens::*;

// ---------------------------------------------------------------------------------------------
// Routes covered by the conformance suite.
// ---------------------------------------------------------------------------------------------

/// Every (method, path) of the node's OpenAPI document, with the conformance test that covers
/// it. `conformance::discovery::every_documented_route_is_covered` fails when the document has
/// a route this list lacks (or this list names one the document does not have): add one line
/// per new route, pointing at its test.
#[rustfmt::skip]
pub const COVERED_ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/healthz", "discovery::healthz_and_options"),
    ("get", "/info", "discovery::info_fields_and_casing"),
    ("get", "/version", "discovery::info_fields_and_casing"),
    ("get", "/openapi.json", "discovery::every_documented_route_is_covered"),
    ("get", "/peer/generate/{space}", "delegation::sign_in_flow_as_the_js_sdk"),
    ("post", "/delegate", "delegation::sign_in_flow_as_the_js_sdk"),
    ("post", "/revoke", "delegation::ucan_delegation_status_and_revoke"),
    ("post", "/delegation/status", "delegation::ucan_delegation_status_and_revoke"),
    ("post", "/invoke", "kv::put_get_metadata_headers"),
    ("post", "/encryption/networks", "encryption::network_descriptor_and_signed_decrypt"),
    ("get", "/encryption/networks/{id}", "encryption::network_descriptor_and_signed_decrypt"),
    ("post", "/encryption/networks/{id}/decrypt", "encryption::network_descriptor_and_signed_decrypt"),
    ("post", "/encryption/networks/{id}/revoke", "encryption::network_descriptor_and_signed_decrypt"),
    ("get", "/encryption/networks/{id}/audit", "encryption::network_descriptor_and_signed_decrypt"),
    ("get", "/.well-known/encryption/network/{name}", "encryption::network_descriptor_and_signed_decrypt"),
    ("post", "/hooks/tickets", "hooks::raw_sse_framing_of_a_write"),
    ("get", "/hooks/events", "hooks::raw_sse_framing_of_a_write"),
    ("post", "/hooks/webhooks", "webhooks::delivery_headers_and_body"),
    ("get", "/hooks/webhooks", "webhooks::delivery_headers_and_body"),
    ("delete", "/hooks/webhooks/{id}", "webhooks::delivery_headers_and_body"),
    ("get", "/hooks/webhooks/{id}/deliveries", "webhooks::delivery_headers_and_body"),
    ("get", "/public/{space}/kv", "public::public_reads_as_an_anonymous_client"),
    ("get", "/public/{space}/kv/{key}", "public::public_reads_as_an_anonymous_client"),
    ("head", "/public/{space}/kv/{key}", "public::public_reads_as_an_anonymous_client"),
    ("post", "/delegation/query", "operations::delegation_query_as_a_reference_client"),
    ("get", "/.well-known/tinycloud/node-keys", "operations::node_keys"),
    ("put", "/admin/quota/{space}", "operations::admin_quota_api"),
    ("get", "/admin/quota/{space}", "operations::admin_quota_api"),
    ("delete", "/admin/quota/{space}", "operations::admin_quota_api"),
    ("get", "/admin/quota", "operations::admin_quota_api"),
    ("get", "/admin/usage", "operations::admin_quota_api"),
    ("post", "/signed/kv", "operations::signed_kv_url_as_a_reference_client"),
    ("get", "/signed/kv/{ticket}", "operations::signed_kv_url_as_a_reference_client"),
];

// ---------------------------------------------------------------------------------------------
// Encodings
// ---------------------------------------------------------------------------------------------

pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub fn b64url_padded(b: &[u8]) -> String {
    URL_SAFE.encode(b)
}

pub fn b64std(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// RFC 4648 base32, lower case, no padding (multibase `b`).
pub fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | byte as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Bitcoin base58 (multibase `z` without the prefix).
pub fn base58btc(data: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let zeros = data.iter().take_while(|b| **b == 0).count();
    let mut digits: Vec<u8> = vec![];
    for &byte in data {
        let mut carry = byte as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut s = "1".repeat(zeros);
    for d in digits.iter().rev() {
        s.push(ALPHABET[*d as usize] as char);
    }
    s
}

/// The binary CIDv1 (raw, blake3-256) of `bytes`.
pub fn cid_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut c = vec![0x01, 0x55, 0x1e, 0x20];
    c.extend_from_slice(blake3::hash(bytes).as_bytes());
    c
}

/// The CID as the node and the JS SDK print it: base32 `bafkr4i…`.
pub fn cid(bytes: &[u8]) -> String {
    format!("b{}", base32_lower(&cid_bytes(bytes)))
}

/// The same CID in base58btc (`z…`), the form ReCap `prf` entries use.
pub fn cid_base58(bytes: &[u8]) -> String {
    format!("z{}", base58btc(&cid_bytes(bytes)))
}

/// RFC 8785 (JCS) bytes of a JSON value.
pub fn jcs(v: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v).expect("JCS")
}

/// SHA-256 hex of the canonical JSON (the encryption protocol's "canonical hash").
pub fn canonical_hash(v: &Value) -> String {
    hex::encode(sha2::Sha256::digest(jcs(v)))
}

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// RFC 3339 with milliseconds and `Z`, as `Date.prototype.toISOString` renders it.
pub fn iso(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).expect("time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A SIWE nonce as the `siwe` JS package generates one (alphanumeric, ≥ 8 chars).
pub fn siwe_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..17].to_owned()
}

pub fn uuid_nonce() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// Percent-encodes a path segment (`encodeURIComponent`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// DAG-CBOR (the subset a CACAO needs)
// ---------------------------------------------------------------------------------------------

/// A CBOR value; maps are written in DAG-CBOR canonical key order (shorter keys first, then
/// bytewise), as the reference's `serde_ipld_dagcbor` writes them.
pub enum Cbor {
    Uint(u64),
    Text(String),
    Bytes(Vec<u8>),
    Array(Vec<Cbor>),
    Map(Vec<(String, Cbor)>),
}

fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 0x100 {
        out.extend([m | 24, n as u8]);
    } else if n < 0x1_0000 {
        out.push(m | 25);
        out.extend((n as u16).to_be_bytes());
    } else if n < 0x1_0000_0000 {
        out.push(m | 26);
        out.extend((n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend(n.to_be_bytes());
    }
}

impl Cbor {
    pub fn text(s: &str) -> Cbor {
        Cbor::Text(s.to_owned())
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Uint(n) => cbor_head(out, 0, *n),
            Cbor::Bytes(b) => {
                cbor_head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(s) => {
                cbor_head(out, 3, s.len() as u64);
                out.extend(s.as_bytes());
            }
            Cbor::Array(a) => {
                cbor_head(out, 4, a.len() as u64);
                for v in a {
                    v.encode(out);
                }
            }
            Cbor::Map(m) => {
                let mut entries: Vec<&(String, Cbor)> = m.iter().collect();
                entries
                    .sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
                cbor_head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    cbor_head(out, 3, k.len() as u64);
                    out.extend(k.as_bytes());
                    v.encode(out);
                }
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![];
        self.encode(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// An Ed25519 session key (`did:key:z6Mk…`).
pub struct EdKey {
    pub sk: ed25519_dalek::SigningKey,
}

impl EdKey {
    pub fn random() -> EdKey {
        EdKey {
            sk: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// `did:key:z…`: multicodec ed25519-pub (0xed 0x01) + the 32-byte key, base58btc.
    pub fn did(&self) -> String {
        let mut b = vec![0xed, 0x01];
        b.extend_from_slice(self.sk.verifying_key().as_bytes());
        format!("did:key:z{}", base58btc(&b))
    }

    /// The verification-method form `did:key:z…#z…` the SDK puts in `iss` and the SIWE `URI`.
    pub fn vm(&self) -> String {
        let did = self.did();
        let frag = did.trim_start_matches("did:key:").to_owned();
        format!("{did}#{frag}")
    }

    /// The public JWK (`kty: OKP`, `crv: Ed25519`) as the WASM signer may embed it.
    pub fn jwk(&self) -> Value {
        json!({"alg": "EdDSA", "crv": "Ed25519", "kty": "OKP", "x": b64url(self.sk.verifying_key().as_bytes())})
    }
}

/// Decodes `did:key:z6Mk…` to an Ed25519 verifying key (for checking the node's signatures).
pub fn ed25519_from_did_key(did: &str) -> ed25519_dalek::VerifyingKey {
    let z = did.strip_prefix("did:key:z").expect("did:key:z…");
    let bytes = base58_decode(z);
    assert_eq!(&bytes[..2], &[0xed, 0x01], "ed25519 multicodec");
    let key: [u8; 32] = bytes[2..].try_into().expect("32-byte key");
    ed25519_dalek::VerifyingKey::from_bytes(&key).expect("valid key")
}

fn base58_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let zeros = s.bytes().take_while(|b| *b == b'1').count();
    let mut bytes: Vec<u8> = vec![];
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|a| *a == c).expect("base58") as u32;
        for b in bytes.iter_mut() {
            carry += (*b as u32) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    out
}

/// An Ethereum wallet (secp256k1) signing with EIP-191 `personal_sign`.
pub struct Wallet {
    pub sk: k256::ecdsa::SigningKey,
}

impl Wallet {
    pub fn random() -> Wallet {
        Wallet {
            sk: k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// EIP-55 checksummed `0x…` address.
    pub fn address(&self) -> String {
        eip55(self.sk.verifying_key())
    }

    pub fn did(&self) -> String {
        format!("did:pkh:eip155:1:{}", self.address())
    }

    /// The space id the SDK derives: `tinycloud:pkh:eip155:1:<address>:<name>`.
    pub fn space(&self, name: &str) -> String {
        format!("tinycloud:pkh:eip155:1:{}:{name}", self.address())
    }

    /// EIP-191 `personal_sign`: keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ msg),
    /// 65 bytes r ‖ s ‖ v with v = 27 + recovery id (what ethers returns).
    pub fn personal_sign(&self, msg: &str) -> Vec<u8> {
        let mut data = format!("\x19Ethereum Signed Message:\n{}", msg.len()).into_bytes();
        data.extend_from_slice(msg.as_bytes());
        let digest = sha3::Keccak256::new_with_prefix(&data);
        let (sig, rec) = self.sk.sign_digest_recoverable(digest).expect("sign");
        let mut out = sig.to_bytes().to_vec();
        out.push(27 + rec.to_byte());
        out
    }
}

/// The EIP-55 address that signed `msg` with EIP-191 (`v` 27/28 or 0/1).
pub fn recover_address(msg: &str, sig: &[u8]) -> String {
    let mut data = format!("\x19Ethereum Signed Message:\n{}", msg.len()).into_bytes();
    data.extend_from_slice(msg.as_bytes());
    let digest = sha3::Keccak256::new_with_prefix(&data);
    let v = sig[64];
    let rec = k256::ecdsa::RecoveryId::from_byte(if v >= 27 { v - 27 } else { v }).expect("v");
    let s = k256::ecdsa::Signature::from_slice(&sig[..64]).expect("r, s");
    let key = k256::ecdsa::VerifyingKey::recover_from_digest(digest, &s, rec).expect("recover");
    eip55(&key)
}

fn eip55(key: &k256::ecdsa::VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let lower = hex::encode(&hash[12..]);
    let check = hex::encode(keccak256(lower.as_bytes()));
    let mut out = String::from("0x");
    for (c, h) in lower.chars().zip(check.chars()) {
        if c.is_ascii_alphabetic() && h.to_digit(16).unwrap_or(0) >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

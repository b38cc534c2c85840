//! CACAO (CAIP-74) for Sign-In with Ethereum: the DAG-CBOR container of a signed SIWE message.
//!
//! `{h: {t: "eip4361"}, p: {domain, iss, statement?, aud, version, nonce, iat, exp?, nbf?,
//! request_id?, resources?, scheme?}, s: {t: "eip191", s: <65 bytes>}}`. The `Authorization`
//! header value is the **padded** base64url of the CBOR bytes, and the CID is computed over
//! exactly the bytes received. Verification rebuilds the EIP-4361 text from `p` and recovers the
//! signer.
//!
//! # One authority, one encoding
//!
//! The signature covers only the SIWE text, not the container, so a decoder that accepted
//! several containers for one text would let anyone holding a CACAO mint "new" delegations
//! (new CIDs) of the same signed authority. Decoding therefore accepts only the canonical
//! DAG-CBOR encoding: the decoded fields are re-encoded and must reproduce the received bytes
//! (no unknown keys, integer `version`, canonical key order, minimal lengths, EIP-55 `iss`).
//! The one freedom left is the signature itself (recovery byte `v` as 27/28 or 0/1, both
//! produced by real wallets); [`Cacao::authority`] names the signed text, so every such
//! encoding shares one authority identity and a revocation of one covers all.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::chain::authority_cid;
use crate::cid::{blake3_cid, Cid};
use crate::did::{Did, DidError};
use crate::siwe::{Message, TimeStamp};

/// Largest CACAO accepted (bytes of CBOR).
pub const MAX_CACAO_LEN: usize = 64 * 1024;

/// Key-derivation context of the authority identity of a SIWE CACAO (over the SIWE text).
pub const SIWE_AUTHORITY_CONTEXT: &str =
    "tinycloud.xyz 2026-01 authority identity: EIP-4361 message signed with EIP-191";

/// Errors decoding, encoding or verifying a CACAO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacaoError {
    /// Larger than [`MAX_CACAO_LEN`].
    #[error("CACAO larger than {MAX_CACAO_LEN} bytes")]
    TooLarge,
    /// Header value not canonical padded base64url.
    #[error("CACAO header is not valid padded base64url")]
    Base64,
    /// Not DAG-CBOR of the expected shape.
    #[error("invalid CACAO CBOR: {0}")]
    Cbor(String),
    /// `h.t` other than `eip4361`.
    #[error("unsupported CACAO payload type {0:?} (supported: eip4361)")]
    UnsupportedHeader(String),
    /// `s.t` other than `eip191`.
    #[error("unsupported CACAO signature type {0:?} (supported: eip191)")]
    UnsupportedSignature(String),
    /// `iss` not a `did:pkh:eip155` DID.
    #[error("CACAO issuer must be did:pkh:eip155: {0}")]
    Issuer(String),
    /// A payload field not valid in a SIWE message.
    #[error("CACAO payload is not a valid SIWE message: {0}")]
    Payload(String),
    /// The signature does not recover the issuer.
    #[error("CACAO signature does not verify: {0}")]
    Signature(String),
    /// Valid CBOR of the right shape, but not the one canonical encoding of its content.
    #[error("CACAO is not canonically encoded DAG-CBOR: {0}")]
    NonCanonical(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    t: String,
}

/// Fields declared in DAG-CBOR canonical key order (length first, then bytes); the encoder
/// sorts them anyway.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePayload {
    aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<String>,
    iat: String,
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<String>,
    nonce: String,
    domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    statement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    #[serde(with = "serde_bytes")]
    s: Vec<u8>,
    t: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    h: WireHeader,
    p: WirePayload,
    s: WireSignature,
}

impl Wire {
    /// The canonical container of a SIWE message and its signature.
    fn of(message: &Message, issuer: &Did, signature: &[u8]) -> Wire {
        Wire {
            h: WireHeader {
                t: "eip4361".into(),
            },
            p: WirePayload {
                aud: message.uri.clone(),
                exp: message
                    .expiration_time
                    .as_ref()
                    .map(|t| t.as_str().to_owned()),
                iat: message.issued_at.as_str().to_owned(),
                iss: issuer.to_string(),
                nbf: message.not_before.as_ref().map(|t| t.as_str().to_owned()),
                nonce: message.nonce.clone(),
                domain: message.domain.clone(),
                scheme: message.scheme.clone(),
                version: 1,
                resources: message.resources.clone(),
                statement: message.statement.clone(),
                request_id: message.request_id.clone(),
            },
            s: WireSignature {
                s: signature.to_vec(),
                t: "eip191".into(),
            },
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CacaoError> {
        serde_ipld_dagcbor::to_vec(self).map_err(|e| CacaoError::Cbor(e.to_string()))
    }
}

/// A decoded SIWE CACAO. Keeps the exact bytes it was decoded from.
#[derive(Clone, Debug)]
pub struct Cacao {
    bytes: Vec<u8>,
    authority: Cid,
    message: Message,
    issuer: Did,
    signature: Vec<u8>,
}

fn payload_err(field: &str, e: impl std::fmt::Display) -> CacaoError {
    CacaoError::Payload(format!("{field}: {e}"))
}

fn timestamp(field: &str, s: &str) -> Result<TimeStamp, CacaoError> {
    TimeStamp::parse(s).map_err(|e| payload_err(field, e))
}

impl Cacao {
    /// Wraps a signed SIWE message. The signature is not checked here; see [`Cacao::verify`].
    pub fn new(message: Message, signature: Vec<u8>) -> Result<Self, CacaoError> {
        let issuer = Did::pkh(message.chain_id, message.address)
            .map_err(|e| CacaoError::Issuer(e.to_string()))?;
        let bytes = Wire::of(&message, &issuer, &signature).encode()?;
        Ok(Cacao {
            bytes,
            authority: authority_cid(SIWE_AUTHORITY_CONTEXT, message.to_string().as_bytes()),
            message,
            issuer,
            signature,
        })
    }

    /// Decodes CBOR bytes (no signature check). Only the canonical encoding is accepted (see
    /// the module docs).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CacaoError> {
        if bytes.len() > MAX_CACAO_LEN {
            return Err(CacaoError::TooLarge);
        }
        let wire: Wire =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| CacaoError::Cbor(e.to_string()))?;
        if wire.h.t != "eip4361" {
            return Err(CacaoError::UnsupportedHeader(crate::excerpt::truncate(
                &wire.h.t,
            )));
        }
        if wire.s.t != "eip191" {
            return Err(CacaoError::UnsupportedSignature(crate::excerpt::truncate(
                &wire.s.t,
            )));
        }
        let p = wire.p;
        let issuer: Did = p
            .iss
            .parse()
            .map_err(|e: DidError| CacaoError::Issuer(e.to_string()))?;
        let Did::Pkh { chain_id, address } = issuer.clone() else {
            return Err(CacaoError::Issuer(issuer.to_string()));
        };
        if p.version != 1 {
            return Err(payload_err("version", "must be the integer 1"));
        }
        let message = Message {
            scheme: p.scheme,
            domain: p.domain,
            address,
            statement: p.statement,
            uri: p.aud,
            version: 1,
            chain_id,
            nonce: p.nonce,
            issued_at: timestamp("iat", &p.iat)?,
            expiration_time: p.exp.as_deref().map(|s| timestamp("exp", s)).transpose()?,
            not_before: p.nbf.as_deref().map(|s| timestamp("nbf", s)).transpose()?,
            request_id: p.request_id,
            resources: p.resources,
        };
        // Round-trip through the EIP-4361 grammar so only well-formed messages are accepted.
        let text = message.to_string();
        let reparsed: Message = text.parse().map_err(|e| payload_err("message", e))?;
        if reparsed != message {
            return Err(payload_err(
                "message",
                "fields do not survive EIP-4361 serialization",
            ));
        }
        let signature = wire.s.s;
        // One content, one encoding: the canonical container must reproduce the bytes.
        if Wire::of(&message, &issuer, &signature).encode()? != bytes {
            return Err(CacaoError::NonCanonical(
                "re-encoding the decoded fields does not reproduce the bytes",
            ));
        }
        Ok(Cacao {
            bytes: bytes.to_vec(),
            authority: authority_cid(SIWE_AUTHORITY_CONTEXT, text.as_bytes()),
            message,
            issuer,
            signature,
        })
    }

    /// Decodes an `Authorization` header value (padded base64url).
    pub fn from_header(header: &str) -> Result<Self, CacaoError> {
        if header.len() > MAX_CACAO_LEN * 4 / 3 + 4 {
            return Err(CacaoError::TooLarge);
        }
        let bytes = URL_SAFE.decode(header).map_err(|_| CacaoError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The padded base64url header value.
    pub fn to_header(&self) -> String {
        URL_SAFE.encode(&self.bytes)
    }

    /// The CBOR bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// CIDv1(raw, blake3) of the CBOR bytes.
    pub fn cid(&self) -> Cid {
        blake3_cid(&self.bytes)
    }

    /// The authority identity: derived from the signed SIWE text alone, so it is the same for
    /// every encoding of the signature (see [`crate::chain::DelegationInfo::authority`]).
    pub fn authority(&self) -> Cid {
        self.authority
    }

    /// The SIWE message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The signer (`did:pkh:eip155:<chain>:<address>`).
    pub fn issuer(&self) -> &Did {
        &self.issuer
    }

    /// The EIP-191 signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the EIP-191 signature against the issuer address.
    pub fn verify(&self) -> Result<(), CacaoError> {
        self.message
            .verify_eip191(&self.signature)
            .map_err(|e| CacaoError::Signature(e.to_string()))
    }
}

/// Whether an `Authorization` value is a UCAN (JWTs contain `.`, base64url never does).
pub fn is_ucan_header(header: &str) -> bool {
    header.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::{sign_eip191, EthAddress};
    use crate::siwe::Message;

    fn signed() -> (Message, Vec<u8>) {
        let mut b = [0u8; 32];
        b[31] = 2;
        let key = k256::ecdsa::SigningKey::from_slice(&b).unwrap();
        let address = EthAddress::from_verifying_key(key.verifying_key());
        let text = format!(
            "example.com wants you to sign in with your Ethereum account:\n{address}\n\nHello.\n\nURI: did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp\nVersion: 1\nChain ID: 1\nNonce: abcdefgh\nIssued At: 2026-01-01T00:00:00.000Z\nExpiration Time: 2026-01-08T00:00:00.000Z\nRequest ID: r1\nResources:\n- https://example.com/x"
        );
        let msg: Message = text.parse().unwrap();
        let sig = sign_eip191(&key, text.as_bytes()).unwrap().to_vec();
        (msg, sig)
    }

    #[test]
    fn encode_decode_verify_round_trip() {
        let (msg, sig) = signed();
        let c = Cacao::new(msg.clone(), sig).unwrap();
        c.verify().unwrap();
        let header = c.to_header();
        let d = Cacao::from_header(&header).unwrap();
        assert_eq!(d.as_bytes(), c.as_bytes());
        assert_eq!(d.message(), &msg);
        assert_eq!(d.cid(), blake3_cid(c.as_bytes()));
        assert_eq!(d.cid().to_string()[..7].to_owned(), "bafkr4i");
        d.verify().unwrap();
        assert!(!is_ucan_header(&header));
    }

    #[test]
    fn wire_layout_matches_the_reference_field_names() {
        let (msg, sig) = signed();
        let c = Cacao::new(msg, sig).unwrap();
        let v: ipld_like::Value = serde_ipld_dagcbor::from_slice(c.as_bytes()).unwrap();
        let ipld_like::Value::Map(top) = v else {
            panic!()
        };
        let keys: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["h", "p", "s"]);
        let ipld_like::Value::Map(p) = &top[1].1 else {
            panic!()
        };
        let pkeys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        // DAG-CBOR canonical order: by length, then bytes. `request_id` is snake_case and
        // `version` an integer, as the reference encodes them.
        assert_eq!(
            pkeys,
            [
                "aud",
                "exp",
                "iat",
                "iss",
                "nonce",
                "domain",
                "version",
                "resources",
                "statement",
                "request_id"
            ]
        );
        assert!(matches!(p[6].1, ipld_like::Value::Int(1)));
    }

    /// A tiny ordered view of DAG-CBOR for the layout test.
    mod ipld_like {
        use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

        #[derive(Debug)]
        pub enum Value {
            Map(Vec<(String, Value)>),
            Int(i128),
            Other,
        }

        impl<'de> Deserialize<'de> for Value {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Value;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("any")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, v)) = a.next_entry::<String, Value>()? {
                            out.push((k, v));
                        }
                        Ok(Value::Map(out))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                        while a.next_element::<Value>()?.is_some() {}
                        Ok(Value::Other)
                    }
                    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                        Ok(Value::Int(v.into()))
                    }
                    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                        Ok(Value::Int(v.into()))
                    }
                    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_bytes<E>(self, _: &[u8]) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                }
                d.deserialize_any(V)
            }
        }
    }

    /// Replaces the first occurrence of `from` in `bytes` by `to`.
    fn swap(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern present");
        let mut out = bytes[..at].to_vec();
        out.extend_from_slice(to);
        out.extend_from_slice(&bytes[at + from.len()..]);
        out
    }

    #[test]
    fn every_re_encoding_of_the_container_is_refused() {
        let (msg, sig) = signed();
        let c = Cacao::new(msg, sig).unwrap();
        let b = c.as_bytes();
        // `version` as text "1" instead of the integer.
        let text_version = swap(b, b"gversion\x01", b"gversiona1");
        // `version` as a non-minimal integer (one-byte argument for 1).
        let long_int = swap(b, b"gversion\x01", b"gversion\x18\x01");
        // An extra key in `h` (map of 1 -> 2; "u" sorts after "t").
        let extra_h = swap(b, b"\xa1atgeip4361", b"\xa2atgeip4361auax");
        // An extra key at the top level (map of 3 -> 4, "z" appended last).
        let mut extra_top = b.to_vec();
        extra_top[0] = 0xa4;
        extra_top.extend_from_slice(b"\x61z\x00");
        // An extra key in `s`.
        let extra_s = swap(b, b"\xa2as", b"\xa3aa\x00as");
        // `requestId` (the reference writes `request_id`).
        let camel = swap(b, b"jrequest_id", b"irequestId");
        // Keys out of canonical order: `h` moved after `p`.
        let h_part = b"\x61h\xa1\x61t\x67eip4361".to_vec();
        let mut reordered = vec![b[0]];
        let rest = &b[1 + h_part.len()..];
        let s_at = rest.windows(3).rposition(|w| w == b"\x61s\xa2").unwrap();
        reordered.extend_from_slice(&rest[..s_at]);
        reordered.extend_from_slice(&h_part);
        reordered.extend_from_slice(&rest[s_at..]);
        assert_eq!(&b[1..1 + h_part.len()], &h_part[..], "layout assumption");
        // An indefinite-length top-level map.
        let mut indefinite = vec![0xbf];
        indefinite.extend_from_slice(&b[1..]);
        indefinite.push(0xff);
        // A lowercase issuer address (same SIWE text, other bytes).
        let iss = c.issuer().to_string();
        let lower = iss.to_lowercase();
        let lower_iss = swap(b, iss.as_bytes(), lower.as_bytes());
        assert_ne!(iss, lower);
        for (name, bytes) in [
            ("text version", text_version),
            ("non-minimal integer", long_int),
            ("extra key in h", extra_h),
            ("extra top-level key", extra_top),
            ("extra key in s", extra_s),
            ("camelCase requestId", camel),
            ("non-canonical key order", reordered),
            ("indefinite-length map", indefinite),
            ("lowercase issuer", lower_iss),
        ] {
            assert_ne!(bytes, b, "{name}: the variant differs");
            assert!(Cacao::from_bytes(&bytes).is_err(), "{name} accepted");
        }
    }

    #[test]
    fn signature_encodings_share_one_authority() {
        let (msg, sig) = signed();
        let c = Cacao::new(msg.clone(), sig.clone()).unwrap();
        let mut zero_based = sig.clone();
        zero_based[64] -= 27;
        let z = Cacao::new(msg, zero_based).unwrap();
        // Both forms are what wallets produce: accepted, verified, distinct CIDs (the bytes
        // differ), one authority (the signed text is the same).
        let z = Cacao::from_bytes(z.as_bytes()).unwrap();
        z.verify().unwrap();
        c.verify().unwrap();
        assert_ne!(c.cid(), z.cid());
        assert_eq!(c.authority(), z.authority());
        assert_eq!(
            c.authority(),
            authority_cid(SIWE_AUTHORITY_CONTEXT, c.message().to_string().as_bytes())
        );
        assert_ne!(c.authority(), c.cid());
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        let (msg, sig) = signed();
        let c = Cacao::new(msg.clone(), sig.clone()).unwrap();
        let header = c.to_header();
        let unpadded = header.trim_end_matches('=');
        if unpadded.len() != header.len() {
            assert_eq!(
                Cacao::from_header(unpadded).unwrap_err(),
                CacaoError::Base64
            );
        }
        assert_eq!(Cacao::from_header("@@@@").unwrap_err(), CacaoError::Base64);
        let truncated = &c.as_bytes()[..c.as_bytes().len() / 2];
        assert!(matches!(
            Cacao::from_bytes(truncated),
            Err(CacaoError::Cbor(_))
        ));
        assert!(matches!(
            Cacao::from_bytes(&[0xff, 0x00]),
            Err(CacaoError::Cbor(_))
        ));
        assert_eq!(
            Cacao::from_bytes(&vec![0u8; MAX_CACAO_LEN + 1]).unwrap_err(),
            CacaoError::TooLarge
        );
        // wrong signature type / payload type
        let swap = |from: &[u8], to: &[u8]| {
            let mut b = c.as_bytes().to_vec();
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + from.len()].copy_from_slice(to);
            Cacao::from_bytes(&b)
        };
        assert!(matches!(
            swap(b"eip191", b"eip192"),
            Err(CacaoError::UnsupportedSignature(_))
        ));
        assert!(matches!(
            swap(b"eip4361", b"eip4362"),
            Err(CacaoError::UnsupportedHeader(_))
        ));
        // a payload that is not a valid SIWE message (nonce too short after tampering)
        assert!(matches!(
            swap(b"abcdefgh", b"abc\ndefg"),
            Err(CacaoError::Payload(_))
        ));
        // a different signer fails verification
        let mut other = sig.clone();
        other[10] ^= 0x55;
        let forged = Cacao::new(msg, other).unwrap();
        assert!(matches!(forged.verify(), Err(CacaoError::Signature(_))));
    }
}

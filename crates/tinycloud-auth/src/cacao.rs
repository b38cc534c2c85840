//! CACAO (CAIP-74) for Sign-In with Ethereum: the DAG-CBOR container of a signed SIWE message.
//!
//! `{h: {t: "eip4361"}, p: {domain, iss, statement?, aud, version, nonce, iat, exp?, nbf?,
//! request_id?, resources?}, s: {t: "eip191", s: <65 bytes>}}`. The `Authorization` header
//! value is the **padded** base64url of the CBOR bytes, and the CID is computed over exactly
//! the bytes received. Verification rebuilds the EIP-4361 text from `p` and recovers the signer.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::cid::{blake3_cid, Cid};
use crate::did::{Did, DidError};
use crate::siwe::{Message, TimeStamp};

/// Largest CACAO accepted (bytes of CBOR).
pub const MAX_CACAO_LEN: usize = 64 * 1024;

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
}

#[derive(Serialize, Deserialize)]
struct WireHeader {
    t: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireVersion {
    Int(u64),
    Text(String),
}

/// Fields declared in DAG-CBOR canonical key order (length first, then bytes).
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
    version: WireVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    statement: Option<String>,
    #[serde(default, alias = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireSignature {
    t: String,
    #[serde(with = "serde_bytes")]
    s: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    h: WireHeader,
    p: WirePayload,
    s: WireSignature,
}

/// A decoded SIWE CACAO. Keeps the exact bytes it was decoded from.
#[derive(Clone, Debug)]
pub struct Cacao {
    bytes: Vec<u8>,
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
        let wire = Wire {
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
                version: WireVersion::Int(1),
                resources: message.resources.clone(),
                statement: message.statement.clone(),
                request_id: message.request_id.clone(),
            },
            s: WireSignature {
                t: "eip191".into(),
                s: signature.clone(),
            },
        };
        let bytes =
            serde_ipld_dagcbor::to_vec(&wire).map_err(|e| CacaoError::Cbor(e.to_string()))?;
        Ok(Cacao {
            bytes,
            message,
            issuer,
            signature,
        })
    }

    /// Decodes CBOR bytes (no signature check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CacaoError> {
        if bytes.len() > MAX_CACAO_LEN {
            return Err(CacaoError::TooLarge);
        }
        let wire: Wire =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| CacaoError::Cbor(e.to_string()))?;
        if wire.h.t != "eip4361" {
            return Err(CacaoError::UnsupportedHeader(crate::did::truncate(
                &wire.h.t,
            )));
        }
        if wire.s.t != "eip191" {
            return Err(CacaoError::UnsupportedSignature(crate::did::truncate(
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
        match &p.version {
            WireVersion::Int(1) => {}
            WireVersion::Text(t) if t == "1" => {}
            _ => return Err(payload_err("version", "must be 1")),
        }
        let message = Message {
            scheme: None,
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
        Ok(Cacao {
            bytes: bytes.to_vec(),
            message,
            issuer,
            signature: wire.s.s,
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

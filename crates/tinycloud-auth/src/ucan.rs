//! UCAN 0.10 JWTs: parse, verify and create delegations and invocations.
//!
//! `header.payload.signature`, each part base64url without padding. Header
//! `{"alg","typ":"JWT","ucv":"0.10.0"}`; payload `iss`, `aud`, `nbf?`, `exp`, `nnc`, `fct?`,
//! `prf`, `att`. The signature covers the exact ASCII of `header.payload`, and the token's CID is
//! over the exact JWT bytes, so a parsed token keeps its original text.
//!
//! Every part must be canonical unpadded base64url (no padding, no stray trailing bits). The
//! signature is the only part a third party could re-encode (an ECDSA twin, say), so the
//! token's authority identity ([`Ucan::authority`]: revocation of delegations, the single-use
//! key of invocations) is derived from `header.payload` alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::capability::{
    att_from_capabilities, att_from_json, att_to_json, capabilities_from_att, AttMap, Capability,
    CapabilityError,
};
use crate::chain::{authority_cid, authority_digest};
use crate::cid::{blake3_cid, parse_cid, Cid};
use crate::did::{Did, DidError, DidUrl};
use crate::keys::{SecretKey, SignatureError};
use crate::timestamp::Timestamp;

/// Largest JWT accepted (bytes).
pub const MAX_JWT_LEN: usize = 64 * 1024;
/// Most proofs a token may cite.
pub const MAX_PROOFS: usize = 64;
/// Key-derivation context of the authority identity of a UCAN (over `header.payload`).
pub const JWT_AUTHORITY_CONTEXT: &str =
    "tinycloud.xyz 2026-01 authority identity: UCAN JWT signing input";
/// The fact key that marks a delegation as terminal (not re-delegatable).
pub const DELEGATION_MODE_FACT: &str = "xyz.tinycloud.policy/delegationMode";

/// Errors decoding, verifying or building a UCAN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UcanError {
    /// Larger than [`MAX_JWT_LEN`].
    #[error("UCAN is larger than {MAX_JWT_LEN} bytes")]
    TooLarge,
    /// Not three dot-separated parts.
    #[error("UCAN is not a JWT (expected header.payload.signature)")]
    NotAJwt,
    /// A part is not canonical unpadded base64url.
    #[error("UCAN {0} is not valid unpadded base64url")]
    Base64(&'static str),
    /// A part is not the expected JSON.
    #[error("UCAN {part} is not valid JSON: {reason}")]
    Json {
        /// `header` or `payload`.
        part: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// `typ` not JWT or `ucv` not 0.10.x.
    #[error("unsupported UCAN header: {0}")]
    Header(String),
    /// A payload field is missing or has the wrong type.
    #[error("invalid UCAN field `{field}`: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// `iss` or `aud` not a supported DID.
    #[error("invalid UCAN {field}: {source}")]
    Did {
        /// `iss` or `aud`.
        field: &'static str,
        /// Parse error.
        source: DidError,
    },
    /// The issuer DID carries no key to verify with (e.g. `did:pkh` cannot sign a JWT here).
    #[error("UCAN issuer {0} has no verification key (only did:key issuers can sign UCANs)")]
    IssuerHasNoKey(String),
    /// Bad capability in `att`.
    #[error("invalid UCAN capability: {0}")]
    Capability(#[from] CapabilityError),
    /// Signature verification failed.
    #[error("UCAN signature: {0}")]
    Signature(#[from] SignatureError),
}

fn field(field: &'static str, reason: impl Into<String>) -> UcanError {
    UcanError::Field {
        field,
        reason: reason.into(),
    }
}

/// A decoded UCAN. Construct with [`Ucan::decode`] (parse only) or [`UcanBuilder::sign`].
#[derive(Clone, Debug)]
pub struct Ucan {
    raw: String,
    alg: String,
    issuer: DidUrl,
    audience: DidUrl,
    not_before: Option<Timestamp>,
    expiration: Option<Timestamp>,
    nonce: Option<String>,
    facts: Vec<Map<String, Value>>,
    proofs: Vec<Cid>,
    att: AttMap,
    capabilities: Vec<Capability>,
    signature: Vec<u8>,
}

fn b64_json(part: &'static str, text: &str) -> Result<Map<String, Value>, UcanError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| UcanError::Base64(part))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| UcanError::Json {
        part,
        reason: e.to_string(),
    })?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(UcanError::Json {
            part,
            reason: "not an object".into(),
        }),
    }
}

fn numeric_date(v: Option<&Value>, name: &'static str) -> Result<Option<Timestamp>, UcanError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(Timestamp::from_numeric_date)
            .map(Some)
            .ok_or_else(|| field(name, "not a valid NumericDate")),
        Some(_) => Err(field(name, "must be a number")),
    }
}

fn did_url(v: Option<&Value>, name: &'static str) -> Result<DidUrl, UcanError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| field(name, "must be a DID string"))?;
    s.parse().map_err(|source| UcanError::Did {
        field: name,
        source,
    })
}

impl Ucan {
    /// Parses a JWT without verifying its signature. Structure and field types are checked.
    pub fn decode(jwt: &str) -> Result<Ucan, UcanError> {
        if jwt.len() > MAX_JWT_LEN {
            return Err(UcanError::TooLarge);
        }
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(UcanError::NotAJwt);
        };
        let header = b64_json("header", h)?;
        let payload = b64_json("payload", p)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| UcanError::Base64("signature"))?;

        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| UcanError::Header("missing alg".into()))?
            .to_owned();
        if let Some(typ) = header.get("typ") {
            if typ.as_str() != Some("JWT") {
                return Err(UcanError::Header("typ must be \"JWT\"".into()));
            }
        }
        match header.get("ucv").and_then(Value::as_str) {
            Some(v) if v.starts_with("0.10.") => {}
            _ => return Err(UcanError::Header("ucv must be 0.10.x".into())),
        }

        let issuer = did_url(payload.get("iss"), "iss")?;
        // Invocations are self-addressed: reuse the issuer's decoded key instead of decoding
        // (and decompressing) the same did:key twice.
        let audience = match payload.get("aud").and_then(Value::as_str) {
            Some(aud) if aud == issuer.to_string() => issuer.clone(),
            Some(aud) if aud == issuer.did().to_string() => DidUrl::from(issuer.did().clone()),
            _ => did_url(payload.get("aud"), "aud")?,
        };
        let not_before = numeric_date(payload.get("nbf"), "nbf")?;
        let expiration = numeric_date(payload.get("exp"), "exp")?;
        let nonce = match payload.get("nnc") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= 256 => Some(s.clone()),
            Some(_) => return Err(field("nnc", "must be a string of at most 256 bytes")),
        };
        let facts = match payload.get("fct") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|f| f.as_object().cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| field("fct", "every fact must be a JSON object"))?,
            // Some clients send a single fact object.
            Some(Value::Object(m)) => vec![m.clone()],
            Some(_) => return Err(field("fct", "must be an array of objects")),
        };
        let proofs = match payload.get("prf") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_PROOFS {
                    return Err(field("prf", format!("more than {MAX_PROOFS} proofs")));
                }
                items
                    .iter()
                    .map(|v| {
                        let s = v
                            .as_str()
                            .ok_or_else(|| field("prf", "proofs must be CID strings"))?;
                        parse_cid(s).map_err(|e| field("prf", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err(field("prf", "must be an array")),
        };
        let att = att_from_json(payload.get("att").unwrap_or(&Value::Null))
            .map_err(|r| field("att", r))?;
        let capabilities = capabilities_from_att(&att)?;

        Ok(Ucan {
            raw: jwt.to_owned(),
            alg,
            issuer,
            audience,
            not_before,
            expiration,
            nonce,
            facts,
            proofs,
            att,
            capabilities,
            signature,
        })
    }

    /// Parses and verifies the signature against the issuer's `did:key`.
    pub fn decode_verified(jwt: &str) -> Result<Ucan, UcanError> {
        let ucan = Self::decode(jwt)?;
        ucan.verify_signature()?;
        Ok(ucan)
    }

    /// Verifies the signature over `header.payload` with the issuer's key.
    pub fn verify_signature(&self) -> Result<(), UcanError> {
        let key = self
            .issuer
            .did()
            .public_key()
            .ok_or_else(|| UcanError::IssuerHasNoKey(self.issuer.did().to_string()))?;
        key.verify_jwt(&self.alg, self.signing_input().as_bytes(), &self.signature)?;
        Ok(())
    }

    /// The exact JWT text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// CIDv1(raw, blake3) of the JWT bytes.
    pub fn cid(&self) -> Cid {
        blake3_cid(self.raw.as_bytes())
    }

    /// The signing input `header.payload`: exactly what the signature covers.
    pub fn signing_input(&self) -> &str {
        let end = self.raw.rfind('.').unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    /// The authority identity as a digest: the same for every encoding of the signature.
    pub fn authority_digest(&self) -> [u8; 32] {
        authority_digest(JWT_AUTHORITY_CONTEXT, self.signing_input().as_bytes())
    }

    /// The authority identity as a CID (see [`crate::chain::DelegationInfo::authority`]).
    pub fn authority(&self) -> Cid {
        authority_cid(JWT_AUTHORITY_CONTEXT, self.signing_input().as_bytes())
    }

    /// The issuer DID URL (`iss`).
    pub fn issuer(&self) -> &DidUrl {
        &self.issuer
    }

    /// The audience DID URL (`aud`).
    pub fn audience(&self) -> &DidUrl {
        &self.audience
    }

    /// `nbf`.
    pub fn not_before(&self) -> Option<Timestamp> {
        self.not_before
    }

    /// `exp` (`None` when null or absent).
    pub fn expiration(&self) -> Option<Timestamp> {
        self.expiration
    }

    /// `nnc`.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// `fct` objects.
    pub fn facts(&self) -> &[Map<String, Value>] {
        &self.facts
    }

    /// The first fact value stored under `key`.
    pub fn fact(&self, key: &str) -> Option<&Value> {
        self.facts.iter().find_map(|f| f.get(key))
    }

    /// `prf` CIDs.
    pub fn proofs(&self) -> &[Cid] {
        &self.proofs
    }

    /// The raw attenuation map.
    pub fn att(&self) -> &AttMap {
        &self.att
    }

    /// Every (resource, ability) pair of `att`.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Whether a fact marks this delegation as terminal.
    pub fn is_terminal(&self) -> bool {
        self.facts
            .iter()
            .any(|f| f.get(DELEGATION_MODE_FACT).and_then(Value::as_str) == Some("terminal"))
    }
}

/// Builds and signs a UCAN.
#[derive(Clone, Debug)]
pub struct UcanBuilder {
    issuer: DidUrl,
    audience: DidUrl,
    not_before: Option<Timestamp>,
    expiration: Option<Timestamp>,
    nonce: String,
    facts: Vec<Map<String, Value>>,
    proofs: Vec<Cid>,
    capabilities: Vec<Capability>,
}

impl UcanBuilder {
    /// A token from `issuer` (usually a verification method `did:key:z…#z…`) to `audience`.
    /// `nonce` must be unique per token (the SDK uses `urn:uuid:<v4>`).
    pub fn new(issuer: DidUrl, audience: DidUrl, nonce: impl Into<String>) -> Self {
        UcanBuilder {
            issuer,
            audience,
            not_before: None,
            expiration: None,
            nonce: nonce.into(),
            facts: Vec::new(),
            proofs: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    /// Sets `exp`.
    pub fn expiration(mut self, exp: Timestamp) -> Self {
        self.expiration = Some(exp);
        self
    }

    /// Sets `nbf`.
    pub fn not_before(mut self, nbf: Timestamp) -> Self {
        self.not_before = Some(nbf);
        self
    }

    /// Adds a fact object.
    pub fn fact(mut self, fact: Map<String, Value>) -> Self {
        self.facts.push(fact);
        self
    }

    /// Marks the delegation terminal (its audience cannot re-delegate it).
    pub fn terminal(self) -> Self {
        let mut f = Map::new();
        f.insert(
            DELEGATION_MODE_FACT.into(),
            Value::String("terminal".into()),
        );
        self.fact(f)
    }

    /// Adds a proof.
    pub fn proof(mut self, cid: Cid) -> Self {
        self.proofs.push(cid);
        self
    }

    /// Adds a capability.
    pub fn capability(mut self, cap: Capability) -> Self {
        self.capabilities.push(cap);
        self
    }

    /// Adds several capabilities.
    pub fn capabilities(mut self, caps: impl IntoIterator<Item = Capability>) -> Self {
        self.capabilities.extend(caps);
        self
    }

    /// Signs with `key`, which must be the issuer's key.
    pub fn sign(self, key: &SecretKey) -> Result<Ucan, UcanError> {
        let expected: Did = key.did();
        if self.issuer.did() != &expected {
            return Err(field(
                "iss",
                format!("signing key {expected} is not the issuer"),
            ));
        }
        let header = serde_json::json!({
            "alg": key.public_key().jwt_alg(),
            "typ": "JWT",
            "ucv": "0.10.0",
        });
        let mut payload = Map::new();
        payload.insert("iss".into(), self.issuer.to_string().into());
        payload.insert("aud".into(), self.audience.to_string().into());
        if let Some(nbf) = self.not_before {
            payload.insert("nbf".into(), numeric_json(nbf));
        }
        payload.insert(
            "exp".into(),
            self.expiration.map_or(Value::Null, numeric_json),
        );
        payload.insert("nnc".into(), self.nonce.into());
        if !self.facts.is_empty() {
            payload.insert(
                "fct".into(),
                Value::Array(self.facts.into_iter().map(Value::Object).collect()),
            );
        }
        payload.insert(
            "prf".into(),
            Value::Array(self.proofs.iter().map(|c| c.to_string().into()).collect()),
        );
        payload.insert(
            "att".into(),
            att_to_json(&att_from_capabilities(&self.capabilities)),
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string())
        );
        let sig = key.sign(signing_input.as_bytes());
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
        Ucan::decode(&jwt)
    }
}

fn numeric_json(t: Timestamp) -> Value {
    if t.as_millis() % 1000 == 0 {
        Value::from(t.as_secs())
    } else {
        serde_json::Number::from_f64(t.as_numeric_date()).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ability::Ability;
    use crate::resource::Resource;

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    fn key(seed: u8) -> SecretKey {
        SecretKey::ed25519_from_seed(&[seed; 32])
    }

    fn kv_get(path: &str) -> Capability {
        Capability::new(
            format!("{SPACE}/kv/{path}").parse::<Resource>().unwrap(),
            "tinycloud.kv/get".parse::<Ability>().unwrap(),
        )
    }

    fn sample(k: &SecretKey) -> Ucan {
        UcanBuilder::new(k.did().verification_method(), k.did().into(), "urn:uuid:1")
            .expiration(Timestamp::from_millis(1_767_225_720_500))
            .proof(blake3_cid(b"parent"))
            .capability(kv_get("a"))
            .sign(k)
            .unwrap()
    }

    #[test]
    fn sign_decode_verify_round_trip() {
        let k = key(1);
        let u = sample(&k);
        let again = Ucan::decode_verified(u.as_str()).unwrap();
        assert_eq!(again.as_str(), u.as_str());
        assert_eq!(again.issuer().did(), &k.did());
        assert_eq!(again.expiration().unwrap().as_millis(), 1_767_225_720_500);
        assert_eq!(again.capabilities(), &[kv_get("a")]);
        assert_eq!(again.proofs(), &[blake3_cid(b"parent")]);
        assert_eq!(again.cid(), blake3_cid(u.as_str().as_bytes()));
        assert!(!again.is_terminal());
        // unconstrained caveat is written [{}]
        let payload = u.as_str().split('.').nth(1).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(json.contains(r#""tinycloud.kv/get":[{}]"#), "{json}");
        assert!(json.contains("1767225720.5"), "{json}");
    }

    #[test]
    fn tampering_is_detected() {
        let k = key(2);
        let u = sample(&k);
        let mut parts: Vec<String> = u.as_str().split('.').map(String::from).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["exp"] = Value::from(9_999_999_999u64);
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        let forged = parts.join(".");
        assert!(matches!(
            Ucan::decode_verified(&forged),
            Err(UcanError::Signature(SignatureError::Invalid))
        ));
        // signed by a key other than iss
        let other =
            UcanBuilder::new(k.did().verification_method(), k.did().into(), "n").sign(&key(3));
        assert!(other.is_err());
    }

    #[test]
    fn empty_caveat_list_accepted_as_unconstrained() {
        let k = key(4);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT","ucv":"0.10.0"}"#);
        let payload = serde_json::json!({
            "iss": k.did().verification_method().to_string(),
            "aud": k.did().to_string(),
            "exp": 2000000000.25,
            "nnc": "n",
            "prf": [],
            "att": {format!("{SPACE}/kv/a"): {"tinycloud.kv/get": []}},
        });
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload.to_string()));
        let jwt = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(k.sign(input.as_bytes()))
        );
        let u = Ucan::decode_verified(&jwt).unwrap();
        assert!(u.capabilities()[0].caveats.is_unconstrained());
    }

    #[test]
    fn malformed_tokens_are_typed_errors() {
        let k = key(5);
        let u = sample(&k);
        let s = u.as_str();
        assert_eq!(Ucan::decode("abc").unwrap_err(), UcanError::NotAJwt);
        assert_eq!(Ucan::decode("a.b.c.d").unwrap_err(), UcanError::NotAJwt);
        assert!(matches!(
            Ucan::decode(&format!("{s}=")),
            Err(UcanError::Base64(_))
        ));
        assert!(matches!(
            Ucan::decode("e30.e30.AA"),
            Err(UcanError::Header(_))
        ));
        let big = "a".repeat(MAX_JWT_LEN + 1);
        assert_eq!(Ucan::decode(&big).unwrap_err(), UcanError::TooLarge);
        let (h, rest) = s.split_once('.').unwrap();
        let truncated = format!("{}.{}", &h[..h.len() - 3], rest);
        assert!(Ucan::decode(&truncated).is_err());
    }

    #[test]
    fn terminal_fact() {
        let k = key(6);
        let u = UcanBuilder::new(k.did().verification_method(), key(7).did().into(), "n")
            .terminal()
            .capability(kv_get("x"))
            .sign(&k)
            .unwrap();
        assert!(Ucan::decode(u.as_str()).unwrap().is_terminal());
    }
}

//! ReCap (EIP-5573): capabilities carried in a SIWE message.
//!
//! The capability object `{"att": {...}, "prf": ["z…"]}` is serialized with JCS (RFC 8785),
//! encoded base64url without padding and appended to the SIWE `Resources:` as
//! `urn:recap:<…>`. The SIWE statement must end with a deterministic rendering of the same
//! capabilities, which [`Recap::statement`] produces and [`Recap::verify_statement`] checks.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::capability::{
    att_from_capabilities, att_from_json, att_to_json, capabilities_from_att, AttMap, Capability,
    CapabilityError,
};
use crate::cid::{parse_cid, to_base58btc, Cid};

/// The scheme prefix of a ReCap resource.
pub const RECAP_PREFIX: &str = "urn:recap:";
/// The fixed opening of the ReCap statement.
pub const STATEMENT_PREFIX: &str =
    "I further authorize the stated URI to perform the following actions on my behalf:";
/// Largest encoded ReCap accepted (bytes).
pub const MAX_RECAP_LEN: usize = 64 * 1024;

/// Errors building, decoding or verifying a ReCap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecapError {
    /// The resource does not start with `urn:recap:`.
    #[error("not a urn:recap: resource")]
    NotARecap,
    /// More than one `urn:recap:` resource.
    #[error("more than one urn:recap: resource")]
    Multiple,
    /// Larger than [`MAX_RECAP_LEN`].
    #[error("ReCap larger than {MAX_RECAP_LEN} bytes")]
    TooLarge,
    /// Not canonical unpadded base64url.
    #[error("ReCap is not valid unpadded base64url")]
    Base64,
    /// Not the expected JSON.
    #[error("invalid ReCap JSON: {0}")]
    Json(String),
    /// A `prf` entry is not a CID.
    #[error("invalid ReCap proof: {0}")]
    Proof(String),
    /// The statement does not end with the capability rendering.
    #[error("SIWE statement does not match the ReCap capabilities")]
    StatementMismatch,
    /// An attenuation is not a valid TinyCloud capability.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
}

/// A decoded ReCap capability object.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Recap {
    /// Resource URI → ability → caveats, exactly as encoded.
    pub att: AttMap,
    /// Parent delegations.
    pub prf: Vec<Cid>,
}

impl Recap {
    /// A ReCap granting `caps` (unconstrained caveats written `[{}]`) with `prf` parents.
    pub fn from_capabilities(caps: &[Capability], prf: Vec<Cid>) -> Self {
        Recap {
            att: att_from_capabilities(caps),
            prf,
        }
    }

    /// The typed capabilities (resources and abilities parsed, SQL caveats validated).
    pub fn capabilities(&self) -> Result<Vec<Capability>, CapabilityError> {
        capabilities_from_att(&self.att)
    }

    /// The JCS-canonical JSON bytes.
    pub fn to_jcs(&self) -> Vec<u8> {
        let mut obj = Map::new();
        obj.insert("att".into(), att_to_json(&self.att));
        obj.insert(
            "prf".into(),
            Value::Array(self.prf.iter().map(|c| to_base58btc(c).into()).collect()),
        );
        // Serializing a serde_json::Value cannot fail.
        serde_json_canonicalizer::to_vec(&Value::Object(obj)).unwrap_or_default()
    }

    /// The `urn:recap:…` resource URI.
    pub fn to_resource(&self) -> String {
        format!("{RECAP_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_jcs()))
    }

    /// Decodes a `urn:recap:…` resource URI.
    pub fn from_resource(uri: &str) -> Result<Self, RecapError> {
        let b64 = uri
            .strip_prefix(RECAP_PREFIX)
            .ok_or(RecapError::NotARecap)?;
        if b64.len() > MAX_RECAP_LEN {
            return Err(RecapError::TooLarge);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| RecapError::Base64)?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| RecapError::Json(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| RecapError::Json("not an object".into()))?;
        if let Some(k) = obj.keys().find(|k| *k != "att" && *k != "prf") {
            return Err(RecapError::Json(format!("unknown key {k:?}")));
        }
        let att = att_from_json(obj.get("att").unwrap_or(&Value::Object(Map::new())))
            .map_err(RecapError::Json)?;
        let prf = match obj.get("prf") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    let s = v
                        .as_str()
                        .ok_or_else(|| RecapError::Proof("not a string".into()))?;
                    parse_cid(s).map_err(|e| RecapError::Proof(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(RecapError::Json("prf must be an array".into())),
        };
        Ok(Recap { att, prf })
    }

    /// Finds the ReCap among SIWE resources. EIP-5573 places it last; a ReCap elsewhere is
    /// accepted as long as there is exactly one.
    pub fn extract(resources: &[String]) -> Result<Option<Recap>, RecapError> {
        let mut found = resources.iter().filter(|r| r.starts_with(RECAP_PREFIX));
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(RecapError::Multiple);
        }
        Self::from_resource(first).map(Some)
    }

    /// The statement rendering: the fixed prefix, then for each resource (sorted) and each
    /// ability namespace under it (sorted) ` (n) '<namespace>': '<name>', … for '<resource>'.`
    /// with names sorted and `n` counting from 1 across all lines.
    pub fn statement(&self) -> String {
        let mut out = String::from(STATEMENT_PREFIX);
        let mut n = 0usize;
        for (resource, abilities) in &self.att {
            let mut by_ns: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for ability in abilities.keys() {
                let (ns, name) = ability.split_once('/').unwrap_or((ability.as_str(), ""));
                by_ns.entry(ns).or_default().insert(name);
            }
            for (ns, names) in by_ns {
                n += 1;
                let names: Vec<String> = names.iter().map(|a| format!("'{a}'")).collect();
                out.push_str(&format!(
                    " ({n}) '{ns}': {} for '{resource}'.",
                    names.join(", ")
                ));
            }
        }
        out
    }

    /// Checks that a SIWE statement is the rendering, optionally preceded by a user statement
    /// and one space.
    pub fn verify_statement(&self, statement: Option<&str>) -> Result<(), RecapError> {
        let expected = self.statement();
        let st = statement.ok_or(RecapError::StatementMismatch)?;
        if st == expected
            || st
                .strip_suffix(expected.as_str())
                .is_some_and(|head| head.ends_with(' '))
        {
            Ok(())
        } else {
            Err(RecapError::StatementMismatch)
        }
    }

    /// The statement a SIWE message carrying this ReCap must have, given an optional user
    /// statement.
    pub fn statement_with(&self, user_statement: Option<&str>) -> String {
        match user_statement {
            Some(s) if !s.is_empty() => format!("{s} {}", self.statement()),
            _ => self.statement(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::blake3_cid;

    #[test]
    fn statement_rendering() {
        let v = serde_json::json!({
            "tinycloud:pkh:eip155:1:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266:bench/kv/depth-0": {"tinycloud.kv/get": [{}]},
        });
        let recap = Recap {
            att: att_from_json(&v).unwrap(),
            prf: vec![],
        };
        assert_eq!(
            recap.statement(),
            "I further authorize the stated URI to perform the following actions on my behalf: (1) 'tinycloud.kv': 'get' for 'tinycloud:pkh:eip155:1:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266:bench/kv/depth-0'."
        );
        recap.verify_statement(Some(&recap.statement())).unwrap();
        recap
            .verify_statement(Some(&format!("Hello. {}", recap.statement())))
            .unwrap();
        assert_eq!(
            recap.verify_statement(Some(&format!("Hello.{}", recap.statement()))),
            Err(RecapError::StatementMismatch)
        );
        assert_eq!(
            recap.verify_statement(None),
            Err(RecapError::StatementMismatch)
        );
    }

    #[test]
    fn namespaces_sort_separately_from_full_ability_strings() {
        let v = serde_json::json!({"x:y": {"a/z": [{}], "a.b/y": [{}]}});
        let recap = Recap {
            att: att_from_json(&v).unwrap(),
            prf: vec![],
        };
        assert!(recap
            .statement()
            .ends_with(" (1) 'a': 'z' for 'x:y'. (2) 'a.b': 'y' for 'x:y'."));
    }

    #[test]
    fn proofs_are_base58btc_in_jcs_and_parse_back() {
        let cid = blake3_cid(b"p");
        let recap = Recap {
            att: AttMap::new(),
            prf: vec![cid],
        };
        let jcs = String::from_utf8(recap.to_jcs()).unwrap();
        assert_eq!(
            jcs,
            format!(r#"{{"att":{{}},"prf":["{}"]}}"#, to_base58btc(&cid))
        );
        assert_eq!(Recap::from_resource(&recap.to_resource()).unwrap(), recap);
    }

    #[test]
    fn malformed_recaps() {
        assert_eq!(Recap::from_resource("urn:x"), Err(RecapError::NotARecap));
        assert_eq!(
            Recap::from_resource("urn:recap:e30="),
            Err(RecapError::Base64)
        );
        assert!(matches!(
            Recap::from_resource(&format!("urn:recap:{}", URL_SAFE_NO_PAD.encode("[]"))),
            Err(RecapError::Json(_))
        ));
        assert!(matches!(
            Recap::from_resource(&format!(
                "urn:recap:{}",
                URL_SAFE_NO_PAD.encode(r#"{"att":{},"prf":["nope"]}"#)
            )),
            Err(RecapError::Proof(_))
        ));
        let one = Recap::default().to_resource();
        assert_eq!(
            Recap::extract(&[one.clone(), one]),
            Err(RecapError::Multiple)
        );
        assert_eq!(Recap::extract(&["https://x".into()]), Ok(None));
    }
}

//! The policy-capability vectors of the reference (`shared/vectors/tinycloud/core/policy-capability/`):
//! canonicalization and hashing, containment (attenuation) and rejection at the boundary.
//! Every case of every file runs; none is skipped (none of them exercises policy v3 selectors).

use serde_json::Value;
use tinycloud_auth::policy::PolicyCapability;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/vectors/tinycloud/core/policy-capability/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn vectors(file: &str) -> Vec<Value> {
    load(file)["vectors"].as_array().unwrap().clone()
}

#[test]
fn canonicalization_and_hash() {
    let cases = vectors("canonicalization-vectors.json");
    assert!(!cases.is_empty());
    for v in cases {
        let name = v["name"].as_str().unwrap();
        let cap =
            PolicyCapability::from_json(&v["input"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cap.to_json(), v["canonical"], "{name}: canonical form");
        assert_eq!(
            hex::encode(cap.canonical_bytes()),
            v["canonical_jcs_utf8_hex"].as_str().unwrap(),
            "{name}: JCS bytes"
        );
        assert_eq!(
            cap.hash_hex(),
            v["policy_capability_hash_hex"].as_str().unwrap(),
            "{name}: hash"
        );
        // canonicalization is idempotent
        let again = PolicyCapability::from_json(&cap.to_json()).unwrap();
        assert_eq!(again, cap, "{name}: idempotent");
    }
}

#[test]
fn containment() {
    let cases = vectors("containment-vectors.json");
    assert!(cases.len() >= 20);
    for v in cases {
        let name = v["name"].as_str().unwrap();
        let expected = v["contained"].as_bool().unwrap();
        let result = PolicyCapability::from_json(&v["auth"])
            .map_err(|e| e.code().to_owned())
            .and_then(|auth| {
                let req =
                    PolicyCapability::from_json(&v["req"]).map_err(|e| e.code().to_owned())?;
                auth.contains(&req).map_err(|e| e.code().to_owned())
            });
        match (expected, result) {
            (true, Ok(())) => {}
            (false, Err(code)) => assert_eq!(
                code,
                v["rejection_code"].as_str().unwrap(),
                "{name}: rejection code"
            ),
            (want, got) => panic!("{name}: expected contained={want}, got {got:?}"),
        }
    }
}

#[test]
fn rejection() {
    let cases = vectors("rejection-vectors.json");
    assert!(!cases.is_empty());
    for v in cases {
        let name = v["name"].as_str().unwrap();
        let err = PolicyCapability::from_json(&v["input"])
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(
            err.code(),
            v["rejection_code"].as_str().unwrap(),
            "{name}: {err}"
        );
    }
}

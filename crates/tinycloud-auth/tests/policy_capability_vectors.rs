//! Policy capabilities against the project's vectors (`tests/vectors/tinycloud/policy/`):
//! normalization with its JCS bytes and identity hash, containment (attenuation), and the
//! refusals at the boundary. Every case of every file runs.

use tinycloud_testkit::vectors as support;

use serde_json::Value;
use tinycloud_auth::policy::{PolicyCapability, HASH_DOMAIN};

fn expected<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no `{key}`", support::id(case)))
}

#[test]
fn canonical_form_bytes_and_hash() {
    let file = support::json("tinycloud/policy/canonical.json");
    assert_eq!(file["domain"], HASH_DOMAIN, "hash domain");
    for case in support::cases("tinycloud/policy/canonical.json", "cases") {
        let id = support::id(&case);
        let cap =
            PolicyCapability::from_json(&case["given"]).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(cap.to_json(), case["normalized"], "{id}: normalized form");
        assert_eq!(
            hex::encode(cap.canonical_bytes()),
            expected(&case, "jcs_hex"),
            "{id}: JCS bytes"
        );
        assert_eq!(cap.hash_hex(), expected(&case, "sha256_hex"), "{id}: hash");
        // The normalized form is a fixed point.
        let again = PolicyCapability::from_json(&case["normalized"])
            .unwrap_or_else(|e| panic!("{id}: normalized form refused: {e}"));
        assert_eq!(again, cap, "{id}: normalizing twice");
    }
}

#[test]
fn containment() {
    for case in support::cases("tinycloud/policy/containment.json", "cases") {
        let id = support::id(&case);
        let parse = |key: &str| PolicyCapability::from_json(&case[key]).map_err(|e| e.code());
        let outcome = parse("grant").and_then(|grant| {
            let request = parse("request")?;
            grant.contains(&request).map_err(|e| e.code())
        });
        match (expected(&case, "expect"), outcome) {
            ("contained", Ok(())) => {}
            (code, Err(got)) if code == got => {}
            (want, got) => panic!("{id}: expected {want}, got {got:?}"),
        }
    }
}

#[test]
fn malformed_capabilities_are_refused() {
    for case in support::cases("tinycloud/policy/malformed.json", "cases") {
        let id = support::id(&case);
        let err = PolicyCapability::from_json(&case["given"])
            .err()
            .unwrap_or_else(|| panic!("{id}: accepted"));
        assert_eq!(err.code(), expected(&case, "expect"), "{id}: {err}");
        assert!(!err.to_string().is_empty(), "{id}: empty message");
    }
}

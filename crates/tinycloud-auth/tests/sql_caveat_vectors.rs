//! Runs the TinyCloud SQL caveat conformance vectors
//! (`shared/vectors/tinycloud/{core,node}/sql-caveat/`, from
//! `TinyCloudLabs/tinycloud-node` `.../tests/fixtures/w1/sql-caveat/`; see
//! `shared/vectors/README.md` for provenance).
//!
//! Vector invocations are tagged with `kind`; the node wire format uses
//! `action`, so the harness renames the key before parsing a [`SqlRequest`].

use serde_json::Value;
use tinycloud_auth::sql_caveat::{
    check_request, contains, ConstrainedStatements, SqlCaveat, SqlCaveatError, SqlRequest,
};

const CORE_CONTAINMENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/tinycloud/core/sql-caveat/containment.json"
);
const CORE_REJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/tinycloud/core/sql-caveat/reject.json"
);
const NODE_ACCEPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/tinycloud/node/sql-caveat/accept.json"
);
const NODE_REJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/tinycloud/node/sql-caveat/reject.json"
);

fn load(path: &str, list: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    let cases = json[list]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no `{list}`"));
    assert!(!cases.is_empty(), "{path}: empty `{list}`");
    cases.clone()
}

fn case_name(case: &Value) -> String {
    case["case"]
        .as_str()
        .or_else(|| case["name"].as_str())
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// Parses (and validates) a caveat object.
fn parse_caveat(value: &Value) -> Result<SqlCaveat, SqlCaveatError> {
    SqlCaveat::from_value(value).map(|c| c.expect("vector caveat is a SQL caveat"))
}

/// Parses a caveat without validation, for the "slipped through" case.
fn parse_unvalidated(value: &Value) -> SqlCaveat {
    let map = value.as_object().expect("caveat object");
    SqlCaveat::from_caveat_unvalidated(map)
        .expect("well-shaped caveat")
        .expect("SQL caveat")
}

/// Converts a vector invocation (`kind`) to a wire request (`action`).
fn request(invocation: &Value) -> SqlRequest {
    let mut body = invocation.as_object().expect("invocation object").clone();
    let kind = body.remove("kind").expect("invocation kind");
    body.insert("action".into(), kind);
    SqlRequest::from_value(&Value::Object(body)).expect("valid request")
}

/// Runs one enforcement case: parse the caveat, then check the invocation.
/// A case without invocation only checks the caveat parse.
fn enforce(case: &Value) -> Result<(), SqlCaveatError> {
    let caveat_json = &case["auth_capability"]["caveats"];
    let invocation = &case["invocation"];
    if invocation.is_null() {
        return parse_caveat(caveat_json).map(drop);
    }
    let caveat = match parse_caveat(caveat_json) {
        Ok(caveat) => caveat,
        Err(err) => {
            // The caveat itself is rejected up-front; the invocation must
            // *still* be blocked if such a caveat slipped through.
            let unvalidated = parse_unvalidated(caveat_json);
            let again = check_request(&unvalidated, &request(invocation))
                .expect_err("invocation under a malformed caveat must fail");
            assert_eq!(
                again.code(),
                err.code(),
                "{}: invocation check",
                case_name(case)
            );
            return Err(err);
        }
    };
    check_request(&caveat, &request(invocation)).map(drop)
}

fn run_reject_file(path: &str) -> usize {
    let cases = load(path, "cases");
    for case in &cases {
        let name = case_name(case);
        let expected = case["rejection_code"].as_str().expect("rejection_code");
        let err = enforce(case).expect_err(&format!("{name}: expected rejection {expected}"));
        assert_eq!(err.code(), expected, "{name}: wrong rejection code ({err})");
        assert!(!err.to_string().is_empty(), "{name}: empty message");
    }
    cases.len()
}

#[test]
fn core_reject_vectors() {
    assert_eq!(run_reject_file(CORE_REJECT), 12);
}

#[test]
fn node_reject_vectors() {
    assert_eq!(run_reject_file(NODE_REJECT), 12);
}

#[test]
fn node_accept_vectors() {
    let cases = load(NODE_ACCEPT, "cases");
    for case in &cases {
        let name = case_name(case);
        assert_eq!(case["expected"], "accept", "{name}");
        if let Err(err) = enforce(case) {
            panic!("{name}: expected accept, got {} ({err})", err.code());
        }
    }
    assert_eq!(cases.len(), 3);
}

#[test]
fn node_accept_vectors_bind_fixed_params() {
    for case in load(NODE_ACCEPT, "cases") {
        let name = case_name(&case);
        let caveat = parse_caveat(&case["auth_capability"]["caveats"]).expect(&name);
        let out = check_request(&caveat, &request(&case["invocation"])).expect(&name);
        let tinycloud_auth::sql_caveat::Authorized::Statement(bound) = out else {
            panic!("{name}: constrained caveat must yield a bound statement");
        };
        let expected = match name.as_str() {
            "search-primitive-bind-allowed" => "%standup%",
            _ => "conv_456",
        };
        assert_eq!(bound.params, vec![Value::from(expected)], "{name}");
    }
}

#[test]
fn core_containment_vectors() {
    let cases = load(CORE_CONTAINMENT, "vectors");
    for case in &cases {
        let name = case_name(case);
        let parent = parse_caveat(&case["auth_caveat"]).expect(&name);
        // The child is checked by `contains`, which validates it after the
        // narrowing rules (the `adds-statement` child adds a DELETE).
        let child = parse_unvalidated(&case["req_caveat"]);
        let result = contains(&parent, &child);
        if case["contained"] == Value::Bool(true) {
            assert_eq!(result, Ok(()), "{name}: expected contained");
        } else {
            let expected = case["rejection_code"].as_str().expect("rejection_code");
            let err = result.expect_err(&format!("{name}: expected {expected}"));
            assert_eq!(err.code(), expected, "{name}: wrong rejection code ({err})");
        }
    }
    assert_eq!(cases.len(), 6);
}

#[test]
fn containment_vector_caveats_round_trip() {
    for case in load(CORE_CONTAINMENT, "vectors") {
        let parent: ConstrainedStatements =
            serde_json::from_value(case["auth_caveat"].clone()).expect("typed caveat");
        assert_eq!(
            serde_json::to_value(&parent).ok().as_ref(),
            Some(&case["auth_caveat"])
        );
    }
}

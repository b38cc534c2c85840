//! SQL caveats against the project's vectors (`tests/vectors/tinycloud/sql-caveat/`): narrowing
//! a constrained-statements caveat when it is delegated, and enforcing one against requests —
//! which calls run with which bound values, which are refused with which code.

use tinycloud_testkit::vectors as support;

use serde_json::Value;
use tinycloud_auth::sql_caveat::{
    check_request, contains, Authorized, ConstrainedStatements, SqlCaveat, SqlCaveatError,
    SqlRequest,
};

/// Parses and validates a caveat object.
fn caveat(value: &Value) -> Result<SqlCaveat, SqlCaveatError> {
    SqlCaveat::from_value(value).map(|c| c.expect("a SQL caveat"))
}

/// Parses a caveat without validating it: what a caveat that slipped past validation would be.
fn unvalidated(value: &Value) -> SqlCaveat {
    let map = value.as_object().expect("caveat object");
    SqlCaveat::from_caveat_unvalidated(map)
        .expect("well-shaped caveat")
        .expect("a SQL caveat")
}

/// The caveat a case names, from the file's `caveats` table.
fn named_caveat<'a>(file: &'a Value, case: &Value) -> &'a Value {
    let name = case["caveat"].as_str().expect("caveat name");
    let value = &file["caveats"][name];
    assert!(
        value.is_object(),
        "{}: no caveat {name:?}",
        support::id(case)
    );
    value
}

/// Runs one enforcement case: the caveat is parsed, then the call (if any) is checked.
fn enforce(caveat_json: &Value, call: &Value) -> Result<Authorized, SqlCaveatError> {
    let request = || SqlRequest::from_value(call).expect("well-formed call");
    match caveat(caveat_json) {
        Ok(_) if call.is_null() => Ok(Authorized::Unchanged),
        Ok(c) => check_request(&c, &request()),
        Err(err) => {
            if !call.is_null() {
                // A refused caveat that slipped through must still refuse the call, for the
                // same reason.
                let again = check_request(&unvalidated(caveat_json), &request())
                    .expect_err("a call under a refused caveat must be refused");
                assert_eq!(again.code(), err.code(), "call under a refused caveat");
            }
            Err(err)
        }
    }
}

#[test]
fn allowed_calls_bind_their_values() {
    let file = support::json("tinycloud/sql-caveat/allowed.json");
    let cases = support::cases("tinycloud/sql-caveat/allowed.json", "cases");
    for case in &cases {
        let id = support::id(case);
        let out = enforce(named_caveat(&file, case), &case["call"])
            .unwrap_or_else(|e| panic!("{id}: refused with {} ({e})", e.code()));
        let Authorized::Statement(bound) = out else {
            panic!("{id}: a constrained caveat must yield the statement to run");
        };
        let statement = &file["caveats"][case["caveat"].as_str().unwrap()]["statements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == case["call"]["name"])
            .unwrap_or_else(|| panic!("{id}: statement not in the caveat"))["sql"];
        assert_eq!(
            bound.sql,
            statement.as_str().unwrap(),
            "{id}: the caveat's SQL runs"
        );
        assert_eq!(
            Value::from(bound.params),
            case["binds"],
            "{id}: bound values"
        );
    }
    assert_eq!(cases.len(), 5);
}

#[test]
fn refused_calls_and_caveats() {
    let file = support::json("tinycloud/sql-caveat/refused.json");
    let cases = support::cases("tinycloud/sql-caveat/refused.json", "cases");
    for case in &cases {
        let id = support::id(case);
        let want = case["expect"].as_str().expect("expect");
        let err = enforce(named_caveat(&file, case), &case["call"])
            .err()
            .unwrap_or_else(|| panic!("{id}: allowed, expected {want}"));
        assert_eq!(err.code(), want, "{id}: {err}");
        assert!(!err.to_string().is_empty(), "{id}: empty message");
    }
    assert_eq!(cases.len(), 17);
}

#[test]
fn narrowing_on_delegation() {
    let cases = support::cases("tinycloud/sql-caveat/narrowing.json", "cases");
    for case in &cases {
        let id = support::id(case);
        let parent = caveat(&case["parent"]).unwrap_or_else(|e| panic!("{id}: parent: {e}"));
        // `contains` validates the child after the narrowing rules (so a child that adds a
        // DELETE reports the added statement), hence the unvalidated parse.
        let result = contains(&parent, &unvalidated(&case["child"]));
        match (case["expect"].as_str().expect("expect"), result) {
            ("contained", Ok(())) => {}
            (code, Err(e)) if e.code() == code => {}
            (want, got) => panic!("{id}: expected {want}, got {got:?}"),
        }
    }
    assert_eq!(cases.len(), 8);
}

#[test]
fn caveats_round_trip_through_the_typed_form() {
    let file = support::json("tinycloud/sql-caveat/allowed.json");
    let table = file["caveats"].as_object().expect("caveats table");
    let narrowing = support::cases("tinycloud/sql-caveat/narrowing.json", "cases");
    let parents = narrowing.iter().map(|c| &c["parent"]);
    for value in table.values().chain(parents) {
        let typed: ConstrainedStatements =
            serde_json::from_value(value.clone()).expect("typed caveat");
        assert_eq!(serde_json::to_value(&typed).unwrap(), *value);
    }
}

//! The repository's test vectors (`tests/vectors/` at the root), for the core's vector suites
//! and the node's end-to-end runs of them. A missing, unreadable, malformed or empty file
//! fails the test with its path.

use std::path::PathBuf;

use serde_json::Value;

/// The path of `tests/vectors/<rel>`.
pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(rel)
}

/// The text of a vector file; panics if it is missing or blank.
pub fn text(rel: &str) -> String {
    let path = path(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vector file {}: {e}", path.display()));
    assert!(
        !text.trim().is_empty(),
        "vector file {} is empty",
        path.display()
    );
    text
}

/// A JSON vector file.
pub fn json(rel: &str) -> Value {
    serde_json::from_str(&text(rel))
        .unwrap_or_else(|e| panic!("vector file {}: {e}", path(rel).display()))
}

/// The non-empty array `key` of a JSON vector file.
pub fn cases(rel: &str, key: &str) -> Vec<Value> {
    let file = json(rel);
    let cases = file[key]
        .as_array()
        .unwrap_or_else(|| panic!("vector file {}: no `{key}` array", path(rel).display()));
    assert!(
        !cases.is_empty(),
        "vector file {}: `{key}` has no cases",
        path(rel).display()
    );
    cases.clone()
}

/// A case's `id`.
pub fn id(case: &Value) -> &str {
    case["id"].as_str().unwrap_or("<case without id>")
}

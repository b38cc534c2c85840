//! SQL requests and their enforcement against a [`SqlCaveat`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{
    analyze_sql, index_in_range, is_primitive, read_only_analysis, single_statement_analysis,
    ConstrainedStatements, FixedParam, SqlCaveat, SqlCaveatError, SqlCaveats,
};

/// A SQL service request body, tagged by `action` as on the node's wire.
///
/// `executeStatement` is also accepted as `execute_statement` (the spelling
/// some SDK versions send).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum SqlRequest {
    /// A raw read query.
    Query {
        /// Statement text.
        sql: String,
        /// Positional bind values.
        #[serde(default)]
        params: Vec<Value>,
        /// Optional row bound.
        #[serde(default, rename = "maxRows", skip_serializing_if = "Option::is_none")]
        max_rows: Option<u64>,
        /// Optional byte bound.
        #[serde(default, rename = "maxBytes", skip_serializing_if = "Option::is_none")]
        max_bytes: Option<u64>,
    },
    /// A raw statement execution.
    Execute {
        /// Statement text.
        sql: String,
        /// Positional bind values.
        #[serde(default)]
        params: Vec<Value>,
        /// Optional DDL statements run first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Vec<String>>,
    },
    /// Several raw statements in one transaction.
    Batch {
        /// The statements.
        statements: Vec<BatchStatement>,
    },
    /// A statement named by the caveat.
    #[serde(alias = "execute_statement")]
    ExecuteStatement {
        /// Statement name.
        name: String,
        /// Caller bind values for the free indexes.
        #[serde(default)]
        params: StatementParams,
    },
    /// Export of the whole database file.
    Export,
}

/// One statement of a [`SqlRequest::Batch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStatement {
    /// Statement text.
    pub sql: String,
    /// Positional bind values.
    #[serde(default)]
    pub params: Vec<Value>,
}

/// Caller parameters of `executeStatement`: a JSON array (element `i` is the
/// value for index `i`) or an object keyed by canonical decimal index
/// strings (`{"1": "x"}`), which allows leaving fixed indexes out. `null` or
/// absence means no parameters.
///
/// With the array form every element up to the last counts as supplied, so
/// a statement whose index 0 is fixed must use the object form to pass
/// index 1 (`[null, "x"]` is an override of index 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatementParams {
    /// Array form.
    Positional(Vec<Value>),
    /// Object form keyed by index strings.
    ByIndex(Map<String, Value>),
}

impl Default for StatementParams {
    fn default() -> Self {
        Self::Positional(Vec::new())
    }
}

impl<'de> Deserialize<'de> for StatementParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(Self::default()),
            Value::Array(values) => Ok(Self::Positional(values)),
            Value::Object(map) => Ok(Self::ByIndex(map)),
            _ => Err(serde::de::Error::custom(
                "params must be an array or an object",
            )),
        }
    }
}

impl StatementParams {
    /// The supplied values by index; object keys must be canonical decimal
    /// `u32` strings (`"0"`, `"12"`, not `"01"` or `"+1"`).
    pub fn by_index(&self) -> Result<BTreeMap<u32, &Value>, SqlCaveatError> {
        match self {
            Self::Positional(values) => values
                .iter()
                .enumerate()
                .map(|(i, v)| Ok((position_index(i)?, v)))
                .collect(),
            Self::ByIndex(map) => map.iter().map(|(k, v)| Ok((parse_index(k)?, v))).collect(),
        }
    }
}

/// A statement ready to run: SQL plus one value per `?` placeholder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoundStatement {
    /// The statement text, exactly as listed in the caveat.
    pub sql: String,
    /// Values for placeholders `0..n`: fixed params at their pinned indexes,
    /// caller values at the free ones.
    pub params: Vec<Value>,
}

/// The outcome of [`check_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Authorized {
    /// Run this statement (from `executeStatement`) instead of anything in
    /// the request.
    Statement(BoundStatement),
    /// Run the request as sent; the node's SQLite authorizer still applies
    /// [`SqlCaveat::tables`], [`SqlCaveat::columns`] and
    /// [`SqlCaveat::read_only`].
    Unchanged,
}

impl SqlRequest {
    /// Parses a request body.
    pub fn from_value(value: &Value) -> Result<Self, SqlCaveatError> {
        Self::deserialize(value).map_err(|e| SqlCaveatError::MalformedRequest(e.to_string()))
    }
}

/// Checks `request` against `caveat`.
///
/// Constrained-statements caveats block `query`, `execute`, `batch` and
/// `export`; `executeStatement` must name a listed statement and is returned
/// as a [`BoundStatement`]. Parameter checks run in this order: any caller
/// value at a fixed index (`sql-fixed-param-override`), then per free value
/// range, primitive type (`sql-non-primitive-bind`) and escape sequences
/// (`sql-escape-blocked`), then missing values.
///
/// General caveats: when `statements` is present only `executeStatement` of
/// those statements is allowed; when `readOnly` is true every SQL text must
/// be a single read-only statement (`schema` DDL included); `export` is
/// blocked when statements, tables or columns are restricted (an export
/// would reveal everything).
pub fn check_request(
    caveat: &SqlCaveat,
    request: &SqlRequest,
) -> Result<Authorized, SqlCaveatError> {
    match caveat {
        SqlCaveat::Constrained(c) => check_constrained(c, request).map(Authorized::Statement),
        SqlCaveat::General(g) => check_general(g, request),
    }
}

/// Enforcement for the constrained-statements profile.
fn check_constrained(
    caveat: &ConstrainedStatements,
    request: &SqlRequest,
) -> Result<BoundStatement, SqlCaveatError> {
    match request {
        SqlRequest::Query { .. } => Err(SqlCaveatError::RawQueryBlocked),
        SqlRequest::Execute { .. } => Err(SqlCaveatError::RawExecuteBlocked),
        SqlRequest::Batch { .. } => Err(SqlCaveatError::BatchBlocked),
        SqlRequest::Export => Err(SqlCaveatError::ExportBlocked),
        SqlRequest::ExecuteStatement { name, params } => {
            let statement = caveat
                .statement(name)
                .ok_or_else(|| SqlCaveatError::StatementNotAllowed(name.clone()))?;
            // Read-only is enforced regardless of the flag: the profile is
            // read-only by definition.
            bind(name, &statement.sql, &statement.fixed_params, params, true)
        }
    }
}

/// Enforcement for the general `SqlCaveats` form.
fn check_general(caveat: &SqlCaveats, request: &SqlRequest) -> Result<Authorized, SqlCaveatError> {
    let named_only = caveat.statements.is_some();
    let read_only = caveat.read_only == Some(true);
    match request {
        SqlRequest::Query { .. } if named_only => Err(SqlCaveatError::RawQueryBlocked),
        SqlRequest::Execute { .. } if named_only => Err(SqlCaveatError::RawExecuteBlocked),
        SqlRequest::Batch { .. } if named_only => Err(SqlCaveatError::BatchBlocked),
        SqlRequest::Export if named_only || caveat.tables.is_some() || caveat.columns.is_some() => {
            Err(SqlCaveatError::ExportBlocked)
        }
        SqlRequest::ExecuteStatement { name, params } => {
            let statement = caveat
                .statement(name)
                .ok_or_else(|| SqlCaveatError::StatementNotAllowed(name.clone()))?;
            bind(name, &statement.sql, &[], params, read_only).map(Authorized::Statement)
        }
        _ if read_only => {
            raw_sql(request).try_for_each(require_read_only)?;
            Ok(Authorized::Unchanged)
        }
        _ => Ok(Authorized::Unchanged),
    }
}

/// Every raw SQL text a request carries.
fn raw_sql(request: &SqlRequest) -> Box<dyn Iterator<Item = &str> + '_> {
    match request {
        SqlRequest::Query { sql, .. } => Box::new(std::iter::once(sql.as_str())),
        SqlRequest::Execute { sql, schema, .. } => Box::new(
            schema
                .iter()
                .flatten()
                .map(String::as_str)
                .chain(std::iter::once(sql.as_str())),
        ),
        SqlRequest::Batch { statements } => Box::new(statements.iter().map(|s| s.sql.as_str())),
        SqlRequest::ExecuteStatement { .. } | SqlRequest::Export => Box::new(std::iter::empty()),
    }
}

/// Raw SQL under a read-only caveat: one read-only statement, else blocked.
fn require_read_only(sql: &str) -> Result<(), SqlCaveatError> {
    match analyze_sql(sql) {
        Ok(a) if a.is_read_only() => Ok(()),
        Ok(_) => Err(SqlCaveatError::WriteBlocked(None)),
        Err(e) => Err(e),
    }
}

/// Binds a caveat statement, in this order of checks:
///
/// 1. the SQL is re-analyzed: a write (when `read_only`) →
///    `sql-write-blocked`; non-`?` parameters → `sql-unsupported-placeholder`;
/// 2. caller indexes are parsed, then **any** caller value at a fixed index,
///    whatever its type, → `sql-fixed-param-override`;
/// 3. per free caller value: beyond the placeholders →
///    `sql-param-out-of-range`; object/array → `sql-non-primitive-bind`;
///    string with an escape sequence → `sql-escape-blocked`;
/// 4. every placeholder must then have a value → `sql-param-missing`.
fn bind(
    name: &str,
    sql: &str,
    fixed: &[FixedParam],
    params: &StatementParams,
    read_only: bool,
) -> Result<BoundStatement, SqlCaveatError> {
    let analysis = if read_only {
        read_only_analysis(name, sql)?
    } else {
        single_statement_analysis(sql)?
    };
    if analysis.has_other_params {
        return Err(SqlCaveatError::UnsupportedPlaceholder(name.to_owned()));
    }
    let placeholders = analysis.placeholder_count;
    let fixed = fixed_by_index(name, fixed, placeholders)?;
    let caller = params.by_index()?;
    if let Some(&index) = caller.keys().find(|i| fixed.contains_key(i)) {
        return Err(SqlCaveatError::FixedParamOverride {
            statement: name.to_owned(),
            index,
        });
    }
    for (&index, value) in &caller {
        check_caller_value(name, index, value, placeholders)?;
    }
    (0..placeholders)
        .map(|i| {
            let index = position_index(i)?;
            fixed
                .get(&index)
                .or_else(|| caller.get(&index))
                .map(|v| (*v).clone())
                .ok_or_else(|| SqlCaveatError::ParamMissing {
                    statement: name.to_owned(),
                    index,
                })
        })
        .collect::<Result<_, _>>()
        .map(|params| BoundStatement {
            sql: sql.to_owned(),
            params,
        })
}

/// Fixed params keyed by index, re-checked (unique, primitive, in range) in
/// case the caveat was constructed without validation.
fn fixed_by_index<'a>(
    name: &str,
    fixed: &'a [FixedParam],
    placeholders: usize,
) -> Result<BTreeMap<u32, &'a Value>, SqlCaveatError> {
    let mut map = BTreeMap::new();
    for param in fixed {
        param.validate(name, placeholders)?;
        if map.insert(param.index, &param.value).is_some() {
            return Err(SqlCaveatError::DuplicateFixedParam {
                statement: name.to_owned(),
                index: param.index,
            });
        }
    }
    Ok(map)
}

/// Checks one caller value at a free index.
fn check_caller_value(
    name: &str,
    index: u32,
    value: &Value,
    placeholders: usize,
) -> Result<(), SqlCaveatError> {
    let statement = || name.to_owned();
    if !index_in_range(index, placeholders) {
        return Err(SqlCaveatError::ParamOutOfRange {
            statement: statement(),
            index,
            placeholders,
        });
    }
    if !is_primitive(value) {
        return Err(SqlCaveatError::NonPrimitiveBind {
            statement: statement(),
            index,
        });
    }
    if value.as_str().is_some_and(has_escape_sequence) {
        return Err(SqlCaveatError::EscapeBlocked {
            statement: statement(),
            index,
        });
    }
    Ok(())
}

/// Whether a caller string carries a statement or comment escape: `;`,
/// `--`, `/*`, `*/` or NUL.
///
/// Values are always *bound* (never spliced into SQL text), so SQLite treats
/// them as data and this cannot change what the statement does. The check is
/// defence in depth matching the reference node, which rejects such values
/// before binding (in case a value is ever logged, echoed into SQL by a
/// client, or reused by another component). It is kept minimal so ordinary
/// text passes: quotes (`don't`, `"x"`), `%` and `_` wildcards and other
/// punctuation are allowed.
pub fn has_escape_sequence(value: &str) -> bool {
    value.contains(';')
        || value.contains("--")
        || value.contains("/*")
        || value.contains("*/")
        || value.contains('\0')
}

/// A `Vec` position as a `u32` index.
fn position_index(position: usize) -> Result<u32, SqlCaveatError> {
    u32::try_from(position).map_err(|_| SqlCaveatError::InvalidParamIndex(position.to_string()))
}

/// Parses a canonical decimal `u32` index key.
fn parse_index(key: &str) -> Result<u32, SqlCaveatError> {
    let canonical = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'));
    canonical
        .then(|| key.parse().ok())
        .flatten()
        .ok_or_else(|| SqlCaveatError::InvalidParamIndex(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caveat(v: Value) -> SqlCaveat {
        SqlCaveat::from_value(&v).unwrap().unwrap()
    }

    fn constrained() -> SqlCaveat {
        caveat(
            json!({"mode": "constrained-statements", "readOnly": true, "statements": [
                {"name": "pair", "sql": "SELECT * FROM t WHERE a = ? AND b LIKE ? AND c = ?",
                 "fixedParams": [{"index": 1, "value": "pinned"}]},
                {"name": "none", "sql": "SELECT 1"}
            ]}),
        )
    }

    fn request(v: Value) -> SqlRequest {
        SqlRequest::from_value(&v).unwrap()
    }

    fn run(c: &SqlCaveat, v: Value) -> Result<Authorized, SqlCaveatError> {
        check_request(c, &request(v))
    }

    fn code(c: &SqlCaveat, v: Value) -> &'static str {
        run(c, v).expect_err("should be rejected").code()
    }

    #[test]
    fn binds_fixed_and_caller_params_in_order() {
        let out = run(
            &constrained(),
            json!({"action": "executeStatement", "name": "pair", "params": {"0": 1, "2": "don't"}}),
        )
        .unwrap();
        let Authorized::Statement(bound) = out else {
            panic!("expected statement")
        };
        assert_eq!(
            bound.params,
            vec![json!(1), json!("pinned"), json!("don't")]
        );
        assert!(bound.sql.starts_with("SELECT * FROM t"));
    }

    #[test]
    fn array_params_are_positional() {
        let c = constrained();
        let ok = json!({"action": "executeStatement", "name": "none", "params": []});
        assert!(run(&c, ok).is_ok());
        let override_ =
            json!({"action": "execute_statement", "name": "pair", "params": [1, null, 2]});
        assert_eq!(code(&c, override_), "sql-fixed-param-override");
    }

    #[test]
    fn param_count_errors() {
        let c = constrained();
        let missing = json!({"action": "executeStatement", "name": "pair", "params": {"0": 1}});
        assert_eq!(code(&c, missing), "sql-param-missing");
        let extra = json!({"action": "executeStatement", "name": "none", "params": {"3": 1}});
        assert_eq!(code(&c, extra), "sql-param-out-of-range");
        for key in ["01", "-1", "x", "", "+1", "4294967296"] {
            let bad = json!({"action": "executeStatement", "name": "pair", "params": {key: 1}});
            assert_eq!(code(&c, bad), "sql-param-invalid-index", "{key}");
        }
    }

    #[test]
    fn escape_rule() {
        for ok in [
            "don't",
            "%standup%",
            "O'Brien \"quoted\"",
            "a-b",
            "1/2*3",
            "",
        ] {
            assert!(!has_escape_sequence(ok), "{ok}");
        }
        for bad in ["a;b", "x -- y", "/* c", "c */", "nul\0"] {
            assert!(has_escape_sequence(bad), "{bad:?}");
        }
    }

    #[test]
    fn general_form_enforcement() {
        let ro = caveat(json!({"readOnly": true, "tables": ["t"]}));
        let q = |sql: &str| json!({"action": "query", "sql": sql});
        assert_eq!(
            run(&ro, q("SELECT * FROM t")).unwrap(),
            Authorized::Unchanged
        );
        assert_eq!(code(&ro, q("DELETE FROM t")), "sql-write-blocked");
        assert_eq!(code(&ro, q("SELECT 1; SELECT 2")), "sql-write-blocked");
        let ddl = json!({"action": "execute", "sql": "SELECT 1", "schema": ["CREATE TABLE x (a)"]});
        assert_eq!(code(&ro, ddl), "sql-write-blocked");
        let batch = json!({"action": "batch", "statements": [{"sql": "SELECT 1"}, {"sql": "DROP TABLE t"}]});
        assert_eq!(code(&ro, batch), "sql-write-blocked");
        assert_eq!(code(&ro, json!({"action": "export"})), "sql-export-blocked");
        assert_eq!(
            code(&ro, json!({"action": "executeStatement", "name": "x"})),
            "sql-statement-not-allowed"
        );

        let rw = caveat(json!({"readOnly": false}));
        assert!(run(&rw, q("DELETE FROM t")).is_ok());
        assert!(run(&rw, json!({"action": "export"})).is_ok());
    }

    #[test]
    fn general_named_statements() {
        let named =
            caveat(json!({"statements": [{"name": "ins", "sql": "INSERT INTO t VALUES (?)"}]}));
        let out = run(
            &named,
            json!({"action": "executeStatement", "name": "ins", "params": ["v"]}),
        );
        assert!(matches!(out, Ok(Authorized::Statement(_))));
        assert_eq!(
            code(&named, json!({"action": "query", "sql": "SELECT 1"})),
            "sql-raw-query-blocked"
        );
        assert_eq!(
            code(&named, json!({"action": "execute", "sql": "SELECT 1"})),
            "sql-raw-execute-blocked"
        );
        assert_eq!(
            code(&named, json!({"action": "batch", "statements": []})),
            "sql-batch-blocked"
        );
        assert_eq!(
            code(&named, json!({"action": "export"})),
            "sql-export-blocked"
        );
    }

    #[test]
    fn request_parsing() {
        assert!(SqlRequest::from_value(&json!({"action": "nope"})).is_err());
        assert!(SqlRequest::from_value(&json!({"action": "query"})).is_err());
        let bad_params = json!({"action": "executeStatement", "name": "a", "params": 3});
        assert_eq!(
            SqlRequest::from_value(&bad_params).unwrap_err().code(),
            "sql-request-malformed"
        );
        let null_params = json!({"action": "executeStatement", "name": "a", "params": null});
        assert!(SqlRequest::from_value(&null_params).is_ok());
        assert_eq!(
            request(json!({"action": "export", "format": "sql"})),
            SqlRequest::Export
        );
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[0-9a-z]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn check_request_never_panics(name in "pair|none|x", params in json_value()) {
            let body = json!({"action": "executeStatement", "name": name, "params": params});
            if let Ok(req) = SqlRequest::from_value(&body) {
                let _ = check_request(&constrained(), &req);
            }
        }
    }
}

//! SQL capability caveats (`tinycloud.sql`).
//!
//! A `tinycloud.sql` capability may carry one of two caveat shapes:
//!
//! * the **constrained-statements** profile
//!   (`{"mode":"constrained-statements","readOnly":true,"statements":[{"name","sql","fixedParams":[{"index","value"}]}]}`),
//!   which blocks raw SQL entirely and only allows `executeStatement` of the
//!   listed statements, with the pinned (`fixedParams`) values substituted
//!   server-side; this profile must be read-only;
//! * the general [`SqlCaveats`] form
//!   (`{"tables"?, "columns"?, "statements"?: [{"name","sql"}], "readOnly"?}`),
//!   whose `readOnly` and `statements` restrictions are checked here and whose
//!   table/column lists are exposed for the node's SQLite authorizer.
//!
//! The module offers three operations, all pure:
//!
//! * parsing and validation: [`SqlCaveat::from_caveat`];
//! * attenuation: [`contains`] (a delegated caveat may only narrow);
//! * enforcement: [`check_request`] turns a [`SqlRequest`] into an
//!   [`Authorized`] outcome, for `executeStatement` a [`BoundStatement`] with
//!   every `?` placeholder bound.
//!
//! Positions: a statement's parameter index `i` is the `i`-th (0-based)
//! anonymous `?` placeholder in source order, as counted by the
//! [`tokenizer`]. Statements bound through a caveat may only use `?`
//! (`?NNN`, `:name`, `@name` and `$name` are rejected), so the index is
//! unambiguous and matches SQLite's own numbering (`?` number `i + 1`).

mod containment;
mod error;
mod request;
pub mod tokenizer;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use containment::contains;
pub use error::SqlCaveatError;
pub use request::{
    check_request, has_escape_sequence, Authorized, BatchStatement, BoundStatement, SqlRequest,
    StatementParams,
};
pub use tokenizer::{analyze_sql, SqlAnalysis};

/// The `mode` value of the constrained-statements profile.
pub const CONSTRAINED_STATEMENTS_MODE: &str = "constrained-statements";

/// Keys that mark an object as the general [`SqlCaveats`] form.
const GENERAL_KEYS: &[&str] = &["tables", "columns", "statements", "readOnly"];

/// A SQL caveat parsed from a capability's caveat object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SqlCaveat {
    /// The constrained-statements profile.
    Constrained(ConstrainedStatements),
    /// The general `SqlCaveats` form.
    General(SqlCaveats),
}

/// Marker for the only supported `mode` value, `"constrained-statements"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConstrainedMode {
    /// `"constrained-statements"`.
    #[default]
    #[serde(rename = "constrained-statements")]
    ConstrainedStatements,
}

/// The constrained-statements caveat: only the listed statements may run,
/// through `executeStatement`, with their fixed params pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConstrainedStatements {
    /// Always `constrained-statements`.
    pub mode: ConstrainedMode,
    /// Must be `true` in this profile.
    pub read_only: bool,
    /// The allowed statements.
    pub statements: Vec<ConstrainedStatement>,
}

/// One allowed statement of a constrained-statements caveat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConstrainedStatement {
    /// Name used by `executeStatement`.
    pub name: String,
    /// The statement text (anonymous `?` placeholders only).
    pub sql: String,
    /// Values pinned by the caveat; callers may not supply these indexes.
    #[serde(default)]
    pub fixed_params: Vec<FixedParam>,
}

/// A parameter value pinned by the caveat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedParam {
    /// 0-based index of the `?` placeholder.
    pub index: u32,
    /// A JSON primitive (null, bool, number or string).
    pub value: Value,
}

/// The general SQL caveat form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlCaveats {
    /// Tables the authorizer may allow (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// Columns the authorizer may allow (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// When present, only these named statements may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<Vec<NamedStatement>>,
    /// When `Some(true)`, only read-only SQL may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// A named statement of the general form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedStatement {
    /// Name used by `executeStatement`.
    pub name: String,
    /// The statement text.
    pub sql: String,
}

impl SqlCaveat {
    /// Parses and validates the caveat object of a SQL capability.
    ///
    /// Returns `Ok(None)` when the object is not a SQL caveat: it has no
    /// `mode` key and none of `tables`, `columns`, `statements`, `readOnly`
    /// (in particular the empty object, meaning "no constraint"). An object
    /// with `mode` must be the constrained profile; any other `mode` fails
    /// closed with [`SqlCaveatError::UnknownMode`]. Unknown fields are
    /// rejected in both forms.
    pub fn from_caveat(caveat: &Map<String, Value>) -> Result<Option<Self>, SqlCaveatError> {
        let parsed = Self::from_caveat_unvalidated(caveat)?;
        if let Some(parsed) = &parsed {
            parsed.validate()?;
        }
        Ok(parsed)
    }

    /// Like [`SqlCaveat::from_caveat`] for any JSON value: `null` is "no
    /// caveat", an object is parsed, anything else is malformed.
    pub fn from_value(caveat: &Value) -> Result<Option<Self>, SqlCaveatError> {
        match caveat {
            Value::Null => Ok(None),
            Value::Object(map) => Self::from_caveat(map),
            _ => Err(SqlCaveatError::MalformedCaveat(
                "caveat is not an object".into(),
            )),
        }
    }

    /// Parses the shape only, without [`SqlCaveat::validate`].
    ///
    /// Useful for a delegated child caveat that is about to be checked with
    /// [`contains`] (which validates the child after the narrowing rules, so
    /// that e.g. an added statement is reported as such). Never authorize a
    /// request against an unvalidated caveat; [`check_request`] re-checks the
    /// statement it runs, but not the whole caveat.
    pub fn from_caveat_unvalidated(
        caveat: &Map<String, Value>,
    ) -> Result<Option<Self>, SqlCaveatError> {
        if let Some(mode) = caveat.get("mode") {
            check_mode(mode)?;
            return deserialize(caveat).map(|c| Some(Self::Constrained(c)));
        }
        if GENERAL_KEYS.iter().any(|k| caveat.contains_key(*k)) {
            return deserialize(caveat).map(|c| Some(Self::General(c)));
        }
        Ok(None)
    }

    /// Checks the caveat's own rules (see [`ConstrainedStatements::validate`]
    /// and [`SqlCaveats::validate`]).
    pub fn validate(&self) -> Result<(), SqlCaveatError> {
        match self {
            Self::Constrained(c) => c.validate(),
            Self::General(g) => g.validate(),
        }
    }

    /// Whether the caveat only allows read-only SQL.
    pub fn read_only(&self) -> bool {
        match self {
            Self::Constrained(_) => true,
            Self::General(g) => g.read_only == Some(true),
        }
    }

    /// Table allow-list for the node's SQLite authorizer (`None`: any).
    pub fn tables(&self) -> Option<&[String]> {
        match self {
            Self::Constrained(_) => None,
            Self::General(g) => g.tables.as_deref(),
        }
    }

    /// Column allow-list for the node's SQLite authorizer (`None`: any).
    pub fn columns(&self) -> Option<&[String]> {
        match self {
            Self::Constrained(_) => None,
            Self::General(g) => g.columns.as_deref(),
        }
    }

    /// The names of the statements the caveat limits execution to (empty when unrestricted).
    pub fn statement_names(&self) -> Vec<String> {
        match self {
            Self::Constrained(c) => c.statements.iter().map(|s| s.name.clone()).collect(),
            Self::General(g) => g
                .statements
                .iter()
                .flatten()
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    /// Whether this is the constrained-statements profile.
    pub fn is_constrained(&self) -> bool {
        matches!(self, Self::Constrained(_))
    }

    /// The caveat as a JSON value (the wire form).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl ConstrainedStatements {
    /// Validates the profile: `readOnly` must be true; statement names must
    /// be non-empty and unique; each SQL must be a single read-only statement
    /// with only `?` placeholders; fixed params must have unique, in-range
    /// indexes and primitive values.
    pub fn validate(&self) -> Result<(), SqlCaveatError> {
        if !self.read_only {
            return Err(SqlCaveatError::NonReadOnlyNotPermitted);
        }
        check_names(self.statements.iter().map(|s| s.name.as_str()))?;
        self.statements
            .iter()
            .try_for_each(ConstrainedStatement::validate)
    }

    /// The statement called `name`, if listed.
    pub fn statement(&self, name: &str) -> Option<&ConstrainedStatement> {
        self.statements.iter().find(|s| s.name == name)
    }
}

impl ConstrainedStatement {
    /// Validates one statement (see [`ConstrainedStatements::validate`]).
    pub fn validate(&self) -> Result<(), SqlCaveatError> {
        let analysis = read_only_analysis(&self.name, &self.sql)?;
        if analysis.has_other_params {
            return Err(SqlCaveatError::UnsupportedPlaceholder(self.name.clone()));
        }
        let mut seen = BTreeSet::new();
        for fixed in &self.fixed_params {
            if !seen.insert(fixed.index) {
                return Err(SqlCaveatError::DuplicateFixedParam {
                    statement: self.name.clone(),
                    index: fixed.index,
                });
            }
            fixed.validate(&self.name, analysis.placeholder_count)?;
        }
        Ok(())
    }

    /// The fixed param pinned at `index`, if any.
    pub fn fixed_param(&self, index: u32) -> Option<&FixedParam> {
        self.fixed_params.iter().find(|f| f.index == index)
    }
}

impl FixedParam {
    /// Checks the value is primitive and the index has a placeholder.
    fn validate(&self, statement: &str, placeholders: usize) -> Result<(), SqlCaveatError> {
        if !is_primitive(&self.value) {
            return Err(SqlCaveatError::FixedParamNonPrimitive {
                statement: statement.to_owned(),
                index: self.index,
            });
        }
        if !index_in_range(self.index, placeholders) {
            return Err(SqlCaveatError::FixedParamOutOfRange {
                statement: statement.to_owned(),
                index: self.index,
                placeholders,
            });
        }
        Ok(())
    }
}

impl SqlCaveats {
    /// Validates the general form: statement names non-empty and unique;
    /// each statement SQL a single statement, and read-only when `readOnly`
    /// is true. (Placeholder syntax is checked when a statement is bound.)
    pub fn validate(&self) -> Result<(), SqlCaveatError> {
        let Some(statements) = &self.statements else {
            return Ok(());
        };
        check_names(statements.iter().map(|s| s.name.as_str()))?;
        for statement in statements {
            if self.read_only == Some(true) {
                read_only_analysis(&statement.name, &statement.sql)?;
            } else {
                single_statement_analysis(&statement.sql)?;
            }
        }
        Ok(())
    }

    /// The named statement called `name`, if listed.
    pub fn statement(&self, name: &str) -> Option<&NamedStatement> {
        self.statements.as_ref()?.iter().find(|s| s.name == name)
    }
}

/// Accepts only `"constrained-statements"` as a `mode`.
fn check_mode(mode: &Value) -> Result<(), SqlCaveatError> {
    match mode.as_str() {
        Some(CONSTRAINED_STATEMENTS_MODE) => Ok(()),
        Some(other) => Err(SqlCaveatError::UnknownMode(other.to_owned())),
        None => Err(SqlCaveatError::MalformedCaveat(
            "`mode` is not a string".into(),
        )),
    }
}

/// Deserializes a caveat map into `T`, mapping serde errors.
fn deserialize<T: serde::de::DeserializeOwned>(
    caveat: &Map<String, Value>,
) -> Result<T, SqlCaveatError> {
    T::deserialize(Value::Object(caveat.clone()))
        .map_err(|e| SqlCaveatError::MalformedCaveat(e.to_string()))
}

/// Rejects empty and duplicate statement names.
fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), SqlCaveatError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name.is_empty() {
            return Err(SqlCaveatError::EmptyStatementName);
        }
        if !seen.insert(name) {
            return Err(SqlCaveatError::DuplicateStatement(name.to_owned()));
        }
    }
    Ok(())
}

/// Analyzes `sql`, requiring a single read-only statement.
pub(crate) fn read_only_analysis(name: &str, sql: &str) -> Result<SqlAnalysis, SqlCaveatError> {
    let analysis = analyze_sql(sql)?;
    if analysis.is_read_only() {
        Ok(analysis)
    } else {
        Err(SqlCaveatError::WriteBlocked(Some(name.to_owned())))
    }
}

/// Analyzes `sql`, requiring exactly one statement.
pub(crate) fn single_statement_analysis(sql: &str) -> Result<SqlAnalysis, SqlCaveatError> {
    let analysis = analyze_sql(sql)?;
    if analysis.statement_count == 1 {
        Ok(analysis)
    } else {
        Err(SqlCaveatError::InvalidSql("more than one statement".into()))
    }
}

/// JSON null, bool, number or string.
pub(crate) fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// Whether 0-based `index` names one of `placeholders` placeholders.
pub(crate) fn index_in_range(index: u32, placeholders: usize) -> bool {
    usize::try_from(index).is_ok_and(|i| i < placeholders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<SqlCaveat>, SqlCaveatError> {
        SqlCaveat::from_value(&v)
    }

    fn code(v: Value) -> &'static str {
        parse(v).expect_err("should fail").code()
    }

    fn constrained(statements: Value) -> Value {
        json!({"mode": "constrained-statements", "readOnly": true, "statements": statements})
    }

    #[test]
    fn empty_object_and_null_are_not_sql_caveats() {
        assert_eq!(parse(json!({})).unwrap(), None);
        assert_eq!(parse(Value::Null).unwrap(), None);
        assert_eq!(parse(json!({"other": 1})).unwrap(), None);
        assert_eq!(code(json!([1])), "sql-caveat-malformed");
    }

    #[test]
    fn parses_constrained_and_round_trips() {
        let v = constrained(json!([{"name": "a", "sql": "SELECT * FROM t WHERE id = ?",
            "fixedParams": [{"index": 0, "value": "x"}]}]));
        let c = parse(v.clone()).unwrap().unwrap();
        assert!(c.is_constrained() && c.read_only());
        assert_eq!(c.to_value(), v);
    }

    #[test]
    fn parses_general_form_and_accessors() {
        let c = parse(json!({"tables": ["t"], "columns": ["t.a"], "readOnly": true}))
            .unwrap()
            .unwrap();
        assert!(!c.is_constrained() && c.read_only());
        assert_eq!(c.tables(), Some(&["t".to_owned()][..]));
        assert_eq!(c.columns(), Some(&["t.a".to_owned()][..]));
    }

    #[test]
    fn unknown_fields_and_modes_are_rejected() {
        assert_eq!(
            code(json!({"tables": [], "extra": 1})),
            "sql-caveat-malformed"
        );
        assert_eq!(
            code(
                json!({"mode": "constrained-statements", "readOnly": true, "statements": [], "x": 1})
            ),
            "sql-caveat-malformed"
        );
        assert_eq!(
            code(json!({"mode": "free-for-all"})),
            "sql-caveat-unknown-mode"
        );
        assert_eq!(code(json!({"mode": 3})), "sql-caveat-malformed");
        assert_eq!(
            code(constrained(
                json!([{"name": "a", "sql": "SELECT 1", "extra": true}])
            )),
            "sql-caveat-malformed"
        );
    }

    #[test]
    fn constrained_validation_rules() {
        let readonly_false =
            json!({"mode": "constrained-statements", "readOnly": false, "statements": []});
        assert_eq!(code(readonly_false), "sql-non-readonly-not-permitted");
        let cases = [
            (
                json!([{"name": "", "sql": "SELECT 1"}]),
                "sql-caveat-empty-statement-name",
            ),
            (
                json!([{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}]),
                "sql-caveat-duplicate-statement",
            ),
            (
                json!([{"name": "a", "sql": "DELETE FROM t"}]),
                "sql-write-blocked",
            ),
            (
                json!([{"name": "a", "sql": "SELECT 1; SELECT 2"}]),
                "sql-write-blocked",
            ),
            (json!([{"name": "a", "sql": "SELECT 'x"}]), "sql-invalid"),
            (
                json!([{"name": "a", "sql": "SELECT :x"}]),
                "sql-unsupported-placeholder",
            ),
            (
                json!([{"name": "a", "sql": "SELECT ?, ?", "fixedParams": [
                    {"index": 1, "value": 1}, {"index": 1, "value": 2}]}]),
                "sql-caveat-duplicate-fixed-param",
            ),
            (
                json!([{"name": "a", "sql": "SELECT ?", "fixedParams": [{"index": 1, "value": 1}]}]),
                "sql-caveat-fixed-param-out-of-range",
            ),
            (
                json!([{"name": "a", "sql": "SELECT ?", "fixedParams": [{"index": 0, "value": [1]}]}]),
                "sql-caveat-fixed-param-non-primitive",
            ),
            (
                json!([{"name": "a", "sql": "SELECT ?", "fixedParams": [{"index": -1, "value": 1}]}]),
                "sql-caveat-malformed",
            ),
        ];
        for (statements, expected) in cases {
            assert_eq!(
                code(constrained(statements.clone())),
                expected,
                "{statements}"
            );
        }
    }

    #[test]
    fn general_validation_rules() {
        let write = json!({"statements": [{"name": "a", "sql": "DELETE FROM t"}]});
        assert!(parse(write.clone()).unwrap().is_some());
        let mut read_only_write = write;
        read_only_write["readOnly"] = json!(true);
        assert_eq!(code(read_only_write), "sql-write-blocked");
        let two = json!({"statements": [{"name": "a", "sql": "SELECT 1; SELECT 2"}]});
        assert_eq!(code(two), "sql-invalid");
    }
}

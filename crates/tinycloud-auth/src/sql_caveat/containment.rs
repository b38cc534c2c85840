//! Caveat containment (attenuation): a delegated SQL caveat may only narrow.

use super::{
    ConstrainedStatement, ConstrainedStatements, NamedStatement, SqlCaveat, SqlCaveatError,
    SqlCaveats,
};

/// Checks that `child` (a delegated caveat) is contained in `parent`.
///
/// Both caveats are validated (the child *after* the narrowing rules, so a
/// child that adds a write statement reports `containment-sql-statement-added`
/// rather than a validation error; the child may thus come from
/// [`SqlCaveat::from_caveat_unvalidated`]).
///
/// Constrained parent and child:
/// * the child must be read-only (`sql-non-readonly-not-permitted`);
/// * every child statement must exist in the parent under the same name
///   (`containment-sql-statement-added`) with identical SQL text
///   (`containment-sql-statement-changed`); dropping statements is fine;
/// * every parent fixed param must be kept (`containment-sql-fixed-param-dropped`)
///   with an equal value (`containment-sql-fixed-param-mismatch`). The child
///   **may pin additional indexes**: that only removes caller freedom.
///
/// General parent and child: `readOnly: true` must be kept; table, column
/// and statement lists, when the parent has them, must be present in the
/// child and be subsets (statements matched by name and identical SQL). This
/// is sound narrowing, more permissive than requiring equal caveat maps.
///
/// General parent, constrained child: allowed when the parent restricts no
/// tables or columns (a constrained child cannot be shown to respect them
/// textually) and the child's statements are among the parent's, if listed.
///
/// Constrained parent, general child: `containment-sql-mode-mismatch`.
pub fn contains(parent: &SqlCaveat, child: &SqlCaveat) -> Result<(), SqlCaveatError> {
    parent.validate()?;
    match (parent, child) {
        (SqlCaveat::Constrained(p), SqlCaveat::Constrained(c)) => constrained_contains(p, c)?,
        (SqlCaveat::General(p), SqlCaveat::General(c)) => general_contains(p, c)?,
        (SqlCaveat::General(p), SqlCaveat::Constrained(c)) => mixed_contains(p, c)?,
        (SqlCaveat::Constrained(_), SqlCaveat::General(_)) => {
            return Err(SqlCaveatError::ContainmentModeMismatch)
        }
    }
    child.validate()
}

/// Constrained parent, constrained child.
fn constrained_contains(
    parent: &ConstrainedStatements,
    child: &ConstrainedStatements,
) -> Result<(), SqlCaveatError> {
    if !child.read_only {
        return Err(SqlCaveatError::NonReadOnlyNotPermitted);
    }
    child.statements.iter().try_for_each(|c| {
        let p = parent
            .statement(&c.name)
            .ok_or_else(|| SqlCaveatError::ContainmentStatementAdded(c.name.clone()))?;
        statement_contains(p, c)
    })
}

/// One constrained statement against its parent counterpart.
fn statement_contains(
    parent: &ConstrainedStatement,
    child: &ConstrainedStatement,
) -> Result<(), SqlCaveatError> {
    if parent.sql != child.sql {
        return Err(SqlCaveatError::ContainmentStatementChanged(
            child.name.clone(),
        ));
    }
    parent.fixed_params.iter().try_for_each(|p| {
        let statement = || child.name.clone();
        match child.fixed_param(p.index) {
            None => Err(SqlCaveatError::ContainmentFixedParamDropped {
                statement: statement(),
                index: p.index,
            }),
            Some(c) if c.value != p.value => Err(SqlCaveatError::ContainmentFixedParamMismatch {
                statement: statement(),
                index: p.index,
            }),
            Some(_) => Ok(()),
        }
    })
}

/// General parent, general child.
fn general_contains(parent: &SqlCaveats, child: &SqlCaveats) -> Result<(), SqlCaveatError> {
    if parent.read_only == Some(true) && child.read_only != Some(true) {
        return Err(SqlCaveatError::ContainmentReadOnlyWidened);
    }
    list_contains(parent.tables.as_deref(), child.tables.as_deref())
        .map_err(SqlCaveatError::ContainmentTablesWidened)?;
    list_contains(parent.columns.as_deref(), child.columns.as_deref())
        .map_err(SqlCaveatError::ContainmentColumnsWidened)?;
    let Some(parent_statements) = &parent.statements else {
        return Ok(());
    };
    let child_statements = child
        .statements
        .as_ref()
        .ok_or(SqlCaveatError::ContainmentStatementsWidened)?;
    child_statements
        .iter()
        .try_for_each(|c| named_statement_listed(parent_statements, &c.name, &c.sql))
}

/// General parent, constrained child.
fn mixed_contains(
    parent: &SqlCaveats,
    child: &ConstrainedStatements,
) -> Result<(), SqlCaveatError> {
    if parent.tables.is_some() || parent.columns.is_some() {
        return Err(SqlCaveatError::ContainmentModeMismatch);
    }
    let Some(parent_statements) = &parent.statements else {
        return Ok(());
    };
    child
        .statements
        .iter()
        .try_for_each(|c| named_statement_listed(parent_statements, &c.name, &c.sql))
}

/// The parent lists a statement `name` with exactly `sql`.
fn named_statement_listed(
    parent: &[NamedStatement],
    name: &str,
    sql: &str,
) -> Result<(), SqlCaveatError> {
    match parent.iter().find(|p| p.name == name) {
        None => Err(SqlCaveatError::ContainmentStatementAdded(name.to_owned())),
        Some(p) if p.sql != sql => {
            Err(SqlCaveatError::ContainmentStatementChanged(name.to_owned()))
        }
        Some(_) => Ok(()),
    }
}

/// `child ⊆ parent` for optional allow-lists (`None` = unrestricted).
/// On failure returns the first widening item (`None`: child unrestricted).
fn list_contains(
    parent: Option<&[String]>,
    child: Option<&[String]>,
) -> Result<(), Option<String>> {
    let Some(parent) = parent else {
        return Ok(());
    };
    let child = child.ok_or(None)?;
    match child.iter().find(|c| !parent.contains(c)) {
        Some(extra) => Err(Some(extra.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql_caveat::FixedParam;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn caveat(v: Value) -> SqlCaveat {
        SqlCaveat::from_value(&v).unwrap().unwrap()
    }

    fn code(parent: Value, child: Value) -> Option<&'static str> {
        contains(&caveat(parent), &caveat(child))
            .err()
            .map(|e| e.code())
    }

    #[test]
    fn constrained_child_may_pin_more() {
        let parent = json!({"mode": "constrained-statements", "readOnly": true, "statements": [
            {"name": "a", "sql": "SELECT * FROM t WHERE x = ? AND y = ?",
             "fixedParams": [{"index": 0, "value": 1}]}]});
        let mut child = parent.clone();
        child["statements"][0]["fixedParams"] =
            json!([{"index": 0, "value": 1}, {"index": 1, "value": "z"}]);
        assert_eq!(code(parent.clone(), child.clone()), None);
        // ...but not the other way around.
        assert_eq!(
            code(child, parent.clone()),
            Some("containment-sql-fixed-param-dropped")
        );
        let mut changed = parent.clone();
        changed["statements"][0]["sql"] = json!("SELECT * FROM t WHERE y = ? AND x = ?");
        assert_eq!(
            code(parent, changed),
            Some("containment-sql-statement-changed")
        );
    }

    #[test]
    fn general_containment() {
        let parent = json!({"readOnly": true, "tables": ["a", "b"], "columns": ["a.x"]});
        let ok = json!({"readOnly": true, "tables": ["a"], "columns": ["a.x"]});
        assert_eq!(code(parent.clone(), ok), None);
        let cases = [
            (
                json!({"tables": ["a"], "columns": []}),
                "containment-sql-readonly-widened",
            ),
            (
                json!({"readOnly": true, "tables": ["c"], "columns": []}),
                "containment-sql-tables-widened",
            ),
            (
                json!({"readOnly": true, "columns": []}),
                "containment-sql-tables-widened",
            ),
            (
                json!({"readOnly": true, "tables": []}),
                "containment-sql-columns-widened",
            ),
        ];
        for (child, expected) in cases {
            assert_eq!(
                code(parent.clone(), child.clone()),
                Some(expected),
                "{child}"
            );
        }
        let named = json!({"statements": [{"name": "s", "sql": "SELECT 1"}]});
        assert_eq!(
            code(named.clone(), json!({"readOnly": false})),
            Some("containment-sql-statements-widened")
        );
        let other = json!({"statements": [{"name": "t", "sql": "SELECT 1"}]});
        assert_eq!(
            code(named.clone(), other),
            Some("containment-sql-statement-added")
        );
        assert_eq!(code(json!({"readOnly": false}), named), None);
    }

    #[test]
    fn mixed_modes() {
        let constrained = json!({"mode": "constrained-statements", "readOnly": true,
            "statements": [{"name": "s", "sql": "SELECT 1"}]});
        let general = json!({"statements": [{"name": "s", "sql": "SELECT 1"}]});
        assert_eq!(code(general.clone(), constrained.clone()), None);
        assert_eq!(
            code(json!({"tables": ["t"]}), constrained.clone()),
            Some("containment-sql-mode-mismatch")
        );
        assert_eq!(
            code(constrained, general),
            Some("containment-sql-mode-mismatch")
        );
    }

    /// Read-only statement templates with 0–3 placeholders.
    const TEMPLATES: &[&str] = &[
        "SELECT 1",
        "SELECT * FROM t WHERE id = ?",
        "SELECT a, 'it''s ?' FROM t WHERE a = ? AND b LIKE ? -- ?",
        "WITH x AS (SELECT ?) SELECT * FROM x WHERE y = ? OR z = ?",
    ];

    fn placeholder_count(template: &str) -> usize {
        crate::sql_caveat::analyze_sql(template).map_or(0, |a| a.placeholder_count)
    }

    fn primitive() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z%_' ]{0,8}".prop_map(Value::from),
        ]
    }

    fn statement(name: String) -> impl Strategy<Value = ConstrainedStatement> {
        (
            0..TEMPLATES.len(),
            proptest::collection::vec(proptest::option::of(primitive()), 3),
        )
            .prop_map(move |(t, values)| {
                let sql = TEMPLATES[t];
                let fixed_params = (0..placeholder_count(sql))
                    .zip(values)
                    .filter_map(|(i, v)| {
                        Some(FixedParam {
                            index: u32::try_from(i).ok()?,
                            value: v?,
                        })
                    })
                    .collect();
                ConstrainedStatement {
                    name: name.clone(),
                    sql: sql.to_owned(),
                    fixed_params,
                }
            })
    }

    fn constrained_caveat() -> impl Strategy<Value = ConstrainedStatements> {
        proptest::collection::btree_set("[a-z]{1,6}", 0..6)
            .prop_flat_map(|names| names.into_iter().map(statement).collect::<Vec<_>>())
            .prop_map(|statements| ConstrainedStatements {
                mode: Default::default(),
                read_only: true,
                statements,
            })
    }

    proptest! {
        #[test]
        fn containment_is_reflexive(c in constrained_caveat()) {
            let c = SqlCaveat::Constrained(c);
            prop_assert_eq!(contains(&c, &c), Ok(()));
        }

        #[test]
        fn dropping_statements_is_contained(
            parent in constrained_caveat(),
            keep in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let mut child = parent.clone();
            let mut flags = keep.into_iter();
            child.statements.retain(|_| flags.next().unwrap_or(false));
            let result = contains(&SqlCaveat::Constrained(parent), &SqlCaveat::Constrained(child));
            prop_assert_eq!(result, Ok(()));
        }

        #[test]
        fn contains_never_panics(parent in any::<String>(), child in any::<String>()) {
            let make = |sql: String| SqlCaveat::Constrained(ConstrainedStatements {
                mode: Default::default(),
                read_only: true,
                statements: vec![ConstrainedStatement {
                    name: "s".into(), sql, fixed_params: vec![],
                }],
            });
            let _ = contains(&make(parent), &make(child));
        }
    }
}

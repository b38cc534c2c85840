//! `tc sql <db> "<statement>"` and `tc sql <db> --export FILE`, in the session's space (for
//! delegates: the space the delegation names), like `tc kv`.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use tinycloud_sdk::sql::{is_query, Outcome};
use tinycloud_sdk::Error as SdkError;

use super::Ctx;
use crate::cli::SqlArgs;
use crate::error::{CliError, Exit};
use crate::output::bytes_written;
use crate::table;

/// Longest database name the node accepts.
const MAX_DB_NAME: usize = 64;

/// Checks a database name as the node does, before anything is signed (exit 2).
fn check_db(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_DB_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!("invalid database name {name:?}"))
            .hint("use 1 to 64 letters, digits, '.', '_' or '-' (not starting with '.')"))
    }
}

/// `--params`: a JSON array (exit 2 otherwise).
fn parse_params(params: Option<&str>) -> Result<Vec<Value>, CliError> {
    let Some(text) = params else {
        return Ok(vec![]);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(CliError::usage("--params must be a JSON array")
            .hint(r#"for example --params '[1, "hello", null]'"#)),
        Err(e) => Err(CliError::usage(format!("--params is not valid JSON: {e}"))
            .hint(r#"for example --params '[1, "hello", null]'"#)),
    }
}

/// The node refuses bad SQL with 400, which the SDK reports as invalid input; for `tc sql`
/// that is an error in the statement (exit 1), not a misuse of the command line.
fn sql_error(e: SdkError) -> anyhow::Error {
    match e {
        SdkError::InvalidInput(m) => {
            CliError::new(Exit::Error, "SQL_ERROR", format!("SQL error: {m}")).into()
        }
        other => other.into(),
    }
}

/// Whether the statement inserts rows (only then is SQLite's last insert rowid about it).
fn inserts(statement: &str) -> bool {
    let first = statement.split_whitespace().next().unwrap_or_default();
    ["INSERT", "REPLACE"]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
}

/// `tc sql`.
pub async fn run(ctx: &Ctx, args: SqlArgs) -> Result<()> {
    check_db(&args.db)?;
    if let Some(path) = &args.export {
        return export(ctx, &args.db, path).await;
    }
    let statement = args
        .statement
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| CliError::usage("a SQL statement is required (or --export FILE)"))?;
    let params = parse_params(args.params.as_deref())?;
    let (_, client) = ctx.session_client()?;
    let write = args.write || !is_query(statement);
    let outcome = client
        .sql(&args.db)
        .run(statement, &params, write)
        .await
        .map_err(sql_error)?;
    match outcome {
        Outcome::Rows(rows) => ctx.out.result(
            &json!({"columns": rows.columns, "rows": rows.rows, "rowCount": rows.rows.len()}),
            || table::render(&rows.columns, &rows.rows),
        )?,
        Outcome::Changes(c) => ctx.out.result(
            &json!({"changes": c.changes, "lastInsertRowId": c.last_insert_row_id}),
            || {
                let changed = format!("{} changed", table::count(c.changes, "row", "rows"));
                match c.last_insert_row_id {
                    Some(id) if inserts(statement) && c.changes > 0 => {
                        format!("{changed}, last insert id {id}")
                    }
                    _ => changed,
                }
            },
        )?,
    }
    Ok(())
}

/// `tc sql <db> --export FILE`.
async fn export(ctx: &Ctx, db: &str, path: &Path) -> Result<()> {
    let (_, client) = ctx.session_client()?;
    let bytes = client.sql(db).export().await.map_err(sql_error)?;
    tokio::fs::write(path, &bytes)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    ctx.out.done(
        &json!({"db": db, "output": path, "bytes": bytes.len()}),
        || {
            format!(
                "Wrote {} to {}",
                bytes_written(bytes.len() as u64),
                path.display()
            )
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        for ok in ["notes", "a.b-c_d", &"x".repeat(64)] {
            assert!(check_db(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(check_db(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn params_must_be_an_array() {
        assert_eq!(parse_params(None).unwrap(), Vec::<Value>::new());
        assert_eq!(
            parse_params(Some(r#"[1, "a", null]"#)).unwrap(),
            vec![json!(1), json!("a"), Value::Null]
        );
        assert_eq!(parse_params(Some("{}")).unwrap_err().exit, Exit::Usage);
        assert_eq!(parse_params(Some("[1,")).unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn bad_sql_is_exit_1_not_a_usage_error() {
        let e = sql_error(SdkError::InvalidInput("no such table: x".into()));
        let c = e.downcast_ref::<CliError>().unwrap();
        assert_eq!((c.exit, c.code), (Exit::Error, "SQL_ERROR"));
        let e = sql_error(SdkError::NotFound("db".into()));
        assert!(e.downcast_ref::<SdkError>().is_some());
    }
}

//! SQL: per-space SQLite databases. `query` returns rows (typed into serde structs with
//! [`Rows::into_structs`]), `execute` and `batch` write, `export` downloads a consistent
//! snapshot, and [`Sql::migrate`] applies ordered, idempotent migrations recorded in a table.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::capability;

use crate::client::is_success;
use crate::client::TinyCloud;
use crate::error::{Error, Result};

/// Rows of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, one array per row.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Each row as a JSON object keyed by column name.
    pub fn objects(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// Each row deserialized into `T` (fields matched by column name).
    pub fn into_structs<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.objects()
            .into_iter()
            .map(|o| {
                serde_json::from_value(Value::Object(o))
                    .map_err(|e| Error::InvalidInput(format!("row does not match the type: {e}")))
            })
            .collect()
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changes {
    /// Rows changed.
    pub changes: u64,
    /// Last inserted rowid.
    pub last_insert_row_id: Option<i64>,
}

/// What a statement produced: rows (queries, `PRAGMA`s that report, `… RETURNING`) or a
/// change count.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Rows.
    Rows(Rows),
    /// A write's effect.
    Changes(Changes),
}

fn rows(v: &Value) -> Rows {
    Rows {
        columns: v["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        rows: v["rows"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn changes(v: &Value) -> Changes {
    Changes {
        changes: v["changes"].as_u64().unwrap_or(0),
        last_insert_row_id: v["lastInsertRowId"].as_i64(),
    }
}

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "__tinycloud_sql_migrations";

/// Outcome of [`Sql::migrate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied now.
    pub applied: Vec<String>,
    /// Migrations that were already applied.
    pub skipped: Vec<String>,
}

/// One database.
pub struct Sql<'a> {
    client: &'a TinyCloud,
    space: Option<SpaceId>,
    db: String,
}

/// Which SQL ability a statement needs, from its first keyword: the node enforces the real
/// rule with SQLite's authorizer; this only picks what to ask for.
pub fn ability_for(sql: &str, write: bool) -> &'static str {
    match first_keyword(sql).as_str() {
        "PRAGMA" => "admin",
        "CREATE" | "DROP" | "ALTER" => "schema",
        _ if write => "write",
        _ => "read",
    }
}

/// Whether a statement only reads, judged by its first keyword (`SELECT`, `WITH`, `VALUES`,
/// `EXPLAIN`). A heuristic for choosing between [`Sql::query`] and [`Sql::execute`]; the node
/// decides with SQLite itself.
pub fn is_query(sql: &str) -> bool {
    let first = first_keyword(sql);
    matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "EXPLAIN")
}

fn first_keyword(sql: &str) -> String {
    sql.trim_start()
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

impl<'a> Sql<'a> {
    pub(crate) fn new(client: &'a TinyCloud, space: Option<SpaceId>, db: &str) -> Self {
        Sql {
            client,
            space,
            db: db.to_owned(),
        }
    }

    async fn call(&self, ability: &str, body: Value) -> Result<reqwest::Response> {
        let space = match &self.space {
            Some(s) => s.clone(),
            None => self.client.space()?,
        };
        let cap = capability(
            &format!("{space}/sql/{}", self.db),
            &format!("tinycloud.sql/{ability}"),
        )
        .map_err(Error::InvalidInput)?;
        let token = self.client.invocation(vec![cap])?;
        let req = self
            .client
            .http()
            .post(self.client.url("/invoke"))
            .header("authorization", token)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.client.send(req, is_success).await
    }

    async fn json(&self, ability: &str, body: Value) -> Result<Value> {
        let r = self.call(ability, body).await?;
        crate::error::read_json(r, self.client.config().max_json_bytes).await
    }

    /// Runs a read query.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        let v = self
            .json(
                ability_for(sql, false),
                json!({"action": "query", "sql": sql, "params": params}),
            )
            .await?;
        Ok(rows(&v))
    }

    /// Runs one statement as a query (`write == false`) or as a write, and returns whatever
    /// it produced: rows for statements that return them (including `… RETURNING` and
    /// reporting `PRAGMA`s), else the change count.
    pub async fn run(&self, sql: &str, params: &[Value], write: bool) -> Result<Outcome> {
        let action = if write { "execute" } else { "query" };
        let v = self
            .json(
                ability_for(sql, write),
                json!({"action": action, "sql": sql, "params": params}),
            )
            .await?;
        Ok(if v.get("columns").is_some() {
            Outcome::Rows(rows(&v))
        } else {
            Outcome::Changes(changes(&v))
        })
    }

    /// Runs one write or DDL statement.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<Changes> {
        let v = self
            .json(
                ability_for(sql, true),
                json!({"action": "execute", "sql": sql, "params": params}),
            )
            .await?;
        Ok(changes(&v))
    }

    /// Runs statements atomically (all or nothing). Signed with the strongest ability any of
    /// them needs.
    pub async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<Changes>> {
        let needs = |s: &str| match ability_for(s, true) {
            "admin" => 3,
            "schema" => 2,
            _ => 1,
        };
        let ability = match statements.iter().map(|(s, _)| needs(s)).max().unwrap_or(1) {
            3 => "admin",
            2 if statements.iter().any(|(s, _)| needs(s) == 1) => "admin",
            2 => "schema",
            _ => "write",
        };
        let stmts: Vec<Value> = statements
            .iter()
            .map(|(s, p)| json!({"sql": s, "params": p}))
            .collect();
        let v = self
            .json(ability, json!({"action": "batch", "statements": stmts}))
            .await?;
        Ok(v["results"]
            .as_array()
            .map(|rs| rs.iter().map(changes).collect())
            .unwrap_or_default())
    }

    /// A consistent snapshot of the database (SQLite file bytes).
    pub async fn export(&self) -> Result<bytes::Bytes> {
        let r = self.call("read", json!({"action": "export"})).await?;
        crate::error::read_capped(r, self.client.config().max_value_bytes, "value").await
    }

    /// Applies `migrations` (id, SQL) in order, each at most once, recording them in
    /// [`MIGRATIONS_TABLE`]. Each migration and its record are written atomically.
    pub async fn migrate(&self, migrations: &[(&str, &str)]) -> Result<MigrationReport> {
        self.batch(&[(
            &format!(
                "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            ),
            vec![],
        )])
        .await?;
        let done = self
            .query(&format!("SELECT id FROM {MIGRATIONS_TABLE}"), &[])
            .await?;
        let applied_ids: Vec<String> = done
            .rows
            .iter()
            .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut report = MigrationReport {
            applied: vec![],
            skipped: vec![],
        };
        for (id, sql) in migrations {
            if applied_ids.iter().any(|a| a == id) {
                report.skipped.push((*id).to_owned());
                continue;
            }
            let record = format!(
                "INSERT INTO {MIGRATIONS_TABLE} (id, applied_at) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            );
            self.batch(&[(sql, vec![]), (&record, vec![Value::from(*id)])])
                .await?;
            report.applied.push((*id).to_owned());
        }
        Ok(report)
    }
}

impl TinyCloud {
    /// A database in the primary space.
    pub fn sql(&self, db: &str) -> Sql<'_> {
        Sql::new(self, None, db)
    }

    /// A database in another space.
    pub fn sql_in(&self, space: SpaceId, db: &str) -> Sql<'_> {
        Sql::new(self, Some(space), db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_their_first_keyword() {
        for q in [
            "SELECT 1",
            "  select * from t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "values(1)",
            "EXPLAIN SELECT 1",
        ] {
            assert!(is_query(q), "{q}");
        }
        for w in [
            "INSERT INTO t VALUES (1)",
            "update t set a=1",
            "DELETE FROM t",
            "REPLACE INTO t VALUES (1)",
            "CREATE TABLE t (a)",
            "PRAGMA user_version",
            "",
        ] {
            assert!(!is_query(w), "{w}");
        }
        assert_eq!(ability_for("pragma x", true), "admin");
        assert_eq!(ability_for("drop table t", true), "schema");
        assert_eq!(ability_for("insert into t values (1)", true), "write");
        assert_eq!(ability_for("SELECT 1", false), "read");
    }
}

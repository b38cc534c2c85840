//! Values across the boundary: JSON parameters as SQLite values, result cells (charged by
//! their JSON size before they are converted), and the reference's response shapes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::sql::error::SqlError;

/// A JSON parameter as an SQLite value: null, integer (i64), float, string, boolean (0/1),
/// a byte array (BLOB) or `{"base64": "…"}` (BLOB).
pub fn to_sql(v: &Value) -> Result<SqlValue, SqlError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None if n.is_u64() => {
                return Err(SqlError::Invalid(format!(
                    "integer {n} does not fit in 64 bits"
                )))
            }
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(items) => SqlValue::Blob(
            items
                .iter()
                .map(|i| i.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| {
                    SqlError::Invalid("a byte-array parameter must hold numbers 0–255".into())
                })?,
        ),
        Value::Object(o) => match o.get("base64").and_then(Value::as_str) {
            Some(b) if o.len() == 1 => SqlValue::Blob(
                STANDARD
                    .decode(b)
                    .map_err(|_| SqlError::Invalid("invalid base64 blob parameter".into()))?,
            ),
            _ => {
                return Err(SqlError::Invalid(
                    "object parameters must be {\"base64\": \"…\"}".into(),
                ))
            }
        },
    })
}

/// One value of a result row. Blobs stay bytes until they are written out (as the byte
/// arrays the reference SDK expects), so a row costs about its own size in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null, number or text.
    Json(Value),
    /// A BLOB.
    Blob(Vec<u8>),
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Json(v) => v.serialize(s),
            Cell::Blob(b) => {
                let mut seq = s.serialize_seq(Some(b.len()))?;
                for x in b {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
    }
}

/// Bytes a value takes in the JSON response, at most (plus its separator): known before the
/// value is converted, so an oversized result is refused before memory is spent on it.
pub(super) fn encoded_len(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Null => 5,
        ValueRef::Integer(_) => 21,
        ValueRef::Real(_) => 25,
        // Quotes, and `\u00XX` for control characters.
        ValueRef::Text(t) => {
            3 + t
                .iter()
                .map(|&b| match b {
                    b'"' | b'\\' => 2,
                    0..=0x1f => 6,
                    _ => 1,
                })
                .sum::<usize>()
        }
        // Up to three digits and a comma per byte.
        ValueRef::Blob(b) => 2 + 4 * b.len(),
    }
}

pub(super) fn to_cell(v: ValueRef<'_>) -> Cell {
    Cell::Json(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => return Cell::Blob(b.to_vec()),
    })
}

/// What one statement did.
#[derive(Debug)]
pub enum Outcome {
    /// Rows of a query.
    Rows {
        /// Column names.
        columns: Vec<String>,
        /// Row values.
        rows: Vec<Vec<Cell>>,
    },
    /// Changes of a write.
    Changes {
        /// Rows changed.
        changes: u64,
        /// Last inserted rowid.
        last_insert_row_id: i64,
    },
}

impl Serialize for Outcome {
    /// The reference's JSON shapes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Outcome::Rows { columns, rows } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("columns", columns)?;
                m.serialize_entry("rows", rows)?;
                m.serialize_entry("rowCount", &rows.len())?;
                m.end()
            }
            Outcome::Changes {
                changes,
                last_insert_row_id,
            } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("changes", changes)?;
                m.serialize_entry("lastInsertRowId", last_insert_row_id)?;
                m.end()
            }
        }
    }
}

impl Outcome {
    /// The reference's JSON shapes, as a value (tests; answers are streamed by the handler).
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One statement to run.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// SQL text (exactly one statement).
    pub sql: String,
    /// Parameters.
    pub params: Vec<Value>,
}

/// Batch results: `{"results": [...]}`.
#[derive(serde::Serialize)]
pub struct Results<'a> {
    /// One outcome per statement.
    pub results: &'a [Outcome],
}

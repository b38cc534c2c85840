//! Text tables for people, laid out by `comfy-table`: query results (`tc sql`) in the psql
//! style — headers, a rule, one line per row, then the row count; numbers right-aligned,
//! everything else left-aligned; NULL is `NULL`, blobs are `x'…'`, control characters escaped
//! so a row stays on one line — and borderless aligned columns for listings (`tc secrets ls`,
//! `tc secrets audit`).

use std::fmt::Write as _;

use comfy_table::{Cell as TableCell, CellAlignment, Table};
use serde_json::Value;

/// The psql look: no borders, `|` between columns, a `-` rule with `+` under the header
/// (comfy-table's preset order: borders, header line and its intersections, vertical line).
const PSQL: &str = "     -+ |          ";

/// Nothing drawn at all: columns separated by padding only.
const PLAIN: &str = "                   ";

/// One rendered cell.
struct Cell {
    text: String,
    right: bool,
}

/// A blob (an array of byte values) as an SQL hex literal; `None` if `items` is not one.
fn blob(items: &[Value]) -> Option<String> {
    items
        .iter()
        .try_fold(String::from("x'"), |mut out, v| {
            let byte = u8::try_from(v.as_u64()?).ok()?;
            let _ = write!(out, "{byte:02x}");
            Some(out)
        })
        .map(|mut s| {
            s.push('\'');
            s
        })
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '\n' => "\\n".chars().collect::<Vec<_>>(),
            '\r' => "\\r".chars().collect(),
            '\t' => "\\t".chars().collect(),
            c if c.is_control() => c.escape_unicode().collect(),
            c => vec![c],
        })
        .collect()
}

fn cell(v: &Value) -> Cell {
    let (text, right) = match v {
        Value::Null => ("NULL".to_owned(), false),
        Value::Number(n) => (n.to_string(), true),
        Value::String(s) => (escape(s), false),
        Value::Bool(b) => (b.to_string(), false),
        Value::Array(items) => (blob(items).unwrap_or_else(|| escape(&v.to_string())), false),
        Value::Object(_) => (escape(&v.to_string()), false),
    };
    Cell { text, right }
}

/// Spaces around each column's content: none before the first or after the last, `gap`
/// between neighbours (split around the separator, if any).
fn pad_columns(table: &mut Table, before: u16, after: u16) {
    let n = table.column_iter().count();
    for (i, col) in table.column_iter_mut().enumerate() {
        let left = if i == 0 { 0 } else { before };
        let right = if i + 1 == n { 0 } else { after };
        col.set_padding((left, right));
    }
}

/// `(1 row)`, `(3 rows)`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The table for `columns` and `rows` (no trailing newline).
pub fn render(columns: &[String], rows: &[Vec<Value>]) -> String {
    let footer = format!("({})", count(rows.len() as u64, "row", "rows"));
    if columns.is_empty() {
        return footer;
    }
    let mut table = Table::new();
    table
        .load_preset(PSQL)
        .set_header(columns.iter().map(|name| escape(name)));
    for row in rows {
        table.add_row((0..columns.len()).map(|i| {
            let c = cell(row.get(i).unwrap_or(&Value::Null));
            let alignment = if c.right {
                CellAlignment::Right
            } else {
                CellAlignment::Left
            };
            TableCell::new(c.text).set_alignment(alignment)
        }));
    }
    pad_columns(&mut table, 1, 1);
    format!("{}\n{footer}", table.trim_fmt())
}

/// Rows of already-sanitized text as aligned columns, two spaces apart, without header or
/// lines (no trailing spaces; no trailing newline).
pub fn columns(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(PLAIN).add_rows(rows);
    pad_columns(&mut table, 0, 2);
    table.trim_fmt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligned_with_a_row_count() {
        let columns = vec!["id".to_owned(), "title".to_owned(), "data".to_owned()];
        let rows = vec![
            vec![json!(1), json!("hello"), json!(null)],
            vec![json!(10), json!("two\nlines"), json!([0, 255])],
        ];
        assert_eq!(
            render(&columns, &rows),
            "id | title      | data\n\
             ---+------------+--------\n\
             \x201 | hello      | NULL\n\
             10 | two\\nlines | x'00ff'\n\
             (2 rows)"
        );
    }

    #[test]
    fn empty_results() {
        assert_eq!(render(&["a".into()], &[]), "a\n-\n(0 rows)");
        assert_eq!(render(&[], &[]), "(0 rows)");
        assert_eq!(render(&["n".into()], &[vec![json!(1)]]), "n\n-\n1\n(1 row)");
    }

    #[test]
    fn columns_align_without_lines() {
        let rows = vec![
            vec![
                "API_KEY".to_owned(),
                "v1".to_owned(),
                "written by owner".to_owned(),
            ],
            vec!["LD_PRELOAD".to_owned(), "v12".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            columns(rows),
            "API_KEY     v1   written by owner\n\
             LD_PRELOAD  v12  x"
        );
        assert_eq!(columns(Vec::<Vec<String>>::new()), "");
    }

    #[test]
    fn arrays_that_are_not_blobs_print_as_json() {
        assert_eq!(cell(&json!([1, "a"])).text, "[1,\"a\"]");
        assert_eq!(cell(&json!([300])).text, "[300]");
        assert_eq!(cell(&json!([])).text, "x''");
    }
}

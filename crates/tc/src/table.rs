//! Aligned text tables for query results (`tc sql`): headers, a rule, one line per row, then
//! the row count. Numbers are right-aligned, everything else left-aligned; NULL is `NULL`,
//! blobs are `x'…'`, control characters are escaped so a row stays on one line.

use std::fmt::Write as _;

use serde_json::Value;

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

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(text: &str, width_to: usize, right: bool) -> String {
    let fill = " ".repeat(width_to.saturating_sub(width(text)));
    if right {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
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
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            (0..columns.len())
                .map(|i| cell(r.get(i).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|r| width(&r[i].text))
                .chain([width(name)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |parts: Vec<String>| parts.join(" | ").trim_end().to_owned();
    let mut out = vec![line(
        columns
            .iter()
            .zip(&widths)
            .map(|(name, w)| pad(&escape(name), *w, false))
            .collect(),
    )];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for row in &cells {
        out.push(line(
            row.iter()
                .zip(&widths)
                .map(|(c, w)| pad(&c.text, *w, c.right))
                .collect(),
        ));
    }
    out.push(footer);
    out.join("\n")
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
    fn arrays_that_are_not_blobs_print_as_json() {
        assert_eq!(cell(&json!([1, "a"])).text, "[1,\"a\"]");
        assert_eq!(cell(&json!([300])).text, "[300]");
        assert_eq!(cell(&json!([])).text, "x''");
    }
}

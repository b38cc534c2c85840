//! A small SQLite-flavoured tokenizer used for caveat-level checks.
//!
//! This is deliberately *not* a SQL parser. It only understands enough of the
//! lexical structure of SQLite to answer three questions reliably:
//!
//! * how many statements a string holds (semicolons outside literals and
//!   comments separate statements; empty statements are ignored),
//! * whether any statement contains a write/DDL keyword as a real token (a
//!   keyword inside a string literal, quoted identifier or comment is not a
//!   keyword, and `created_at` is not `CREATE`),
//! * how many anonymous `?` placeholders the SQL has, and whether it uses any
//!   other parameter style (`?NNN`, `:name`, `@name`, `$name`).
//!
//! The node additionally enforces read-only execution with SQLite's own
//! authorizer callback; this module is the caveat-level, I/O-free check.

use super::SqlCaveatError;

/// Keywords that make a statement a write, DDL or connection-level operation.
///
/// `REPLACE` is only counted when it is not immediately followed by `(`,
/// because `replace(x, y, z)` is an ordinary scalar function in a `SELECT`
/// (`INSERT OR REPLACE` is caught by `INSERT` anyway).
const WRITE_KEYWORDS: &[&str] = &[
    "ALTER", "ANALYZE", "ATTACH", "CREATE", "DELETE", "DETACH", "DROP", "INSERT", "PRAGMA",
    "REINDEX", "REPLACE", "UPDATE", "UPSERT", "VACUUM",
];

/// Leading keywords a read-only statement may start with.
const READ_ONLY_LEADERS: &[&str] = &["SELECT", "VALUES", "WITH"];

/// One lexical token. Literals, quoted identifiers and comments carry no text
/// because no check ever looks inside them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word (keyword or unquoted identifier), upper-cased.
    Word(String),
    /// `'…'` string literal (including `x'…'` blob bodies).
    Literal,
    /// `"…"`, `[…]` or `` `…` `` quoted identifier.
    QuotedIdent,
    /// A numeric literal.
    Number,
    /// An anonymous `?` placeholder.
    Placeholder,
    /// `?NNN`, `:name`, `@name` or `$name`.
    OtherParam,
    /// `;`
    Semicolon,
    /// Any other punctuation or operator character.
    Punct(char),
}

/// What the tokenizer learned about a SQL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlAnalysis {
    /// Number of non-empty statements (semicolon-separated).
    pub statement_count: usize,
    /// Number of anonymous `?` placeholders, in source order.
    pub placeholder_count: usize,
    /// Whether any `?NNN`, `:name`, `@name` or `$name` parameter occurs.
    pub has_other_params: bool,
    /// First write/DDL keyword found outside literals and comments, if any.
    pub write_keyword: Option<String>,
    /// First keyword of the first statement, upper-cased (if it is a word).
    pub leading_keyword: Option<String>,
}

impl SqlAnalysis {
    /// True when the SQL is exactly one statement, starts with `SELECT`,
    /// `WITH` or `VALUES`, and contains no write/DDL keyword token.
    pub fn is_read_only(&self) -> bool {
        self.statement_count == 1
            && self.write_keyword.is_none()
            && self
                .leading_keyword
                .as_deref()
                .is_some_and(|k| READ_ONLY_LEADERS.contains(&k))
    }
}

/// Tokenizes `sql` and summarizes it.
///
/// Errors with [`SqlCaveatError::InvalidSql`] on an unterminated string,
/// quoted identifier or block comment, or when there is no statement at all.
pub fn analyze_sql(sql: &str) -> Result<SqlAnalysis, SqlCaveatError> {
    let tokens = tokenize(sql)?;
    let mut analysis = SqlAnalysis {
        statement_count: 0,
        placeholder_count: 0,
        has_other_params: false,
        write_keyword: None,
        leading_keyword: None,
    };
    let mut in_statement = false;
    for (i, token) in tokens.iter().enumerate() {
        if *token == Token::Semicolon {
            in_statement = false;
            continue;
        }
        if !in_statement {
            in_statement = true;
            analysis.statement_count += 1;
            if analysis.statement_count == 1 {
                if let Token::Word(w) = token {
                    analysis.leading_keyword = Some(w.clone());
                }
            }
        }
        match token {
            Token::Placeholder => analysis.placeholder_count += 1,
            Token::OtherParam => analysis.has_other_params = true,
            Token::Word(w)
                if analysis.write_keyword.is_none() && is_write_keyword(w, tokens.get(i + 1)) =>
            {
                analysis.write_keyword = Some(w.clone());
            }
            _ => {}
        }
    }
    if analysis.statement_count == 0 {
        return Err(SqlCaveatError::InvalidSql("no statement".into()));
    }
    Ok(analysis)
}

/// Whether `word` (upper-cased) acts as a write keyword given the next token.
fn is_write_keyword(word: &str, next: Option<&Token>) -> bool {
    if !WRITE_KEYWORDS.contains(&word) {
        return false;
    }
    !(word == "REPLACE" && next == Some(&Token::Punct('(')))
}

/// Splits `sql` into tokens, dropping whitespace and comments.
fn tokenize(sql: &str) -> Result<Vec<Token>, SqlCaveatError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(&c) = chars.get(pos) {
        let next = chars.get(pos + 1).copied();
        pos = match (c, next) {
            _ if c.is_ascii_whitespace() => pos + 1,
            ('-', Some('-')) => skip_line_comment(&chars, pos),
            ('/', Some('*')) => skip_block_comment(&chars, pos)?,
            ('\'', _) => push(&mut tokens, Token::Literal, skip_quoted(&chars, pos, '\'')?),
            ('"', _) => push(
                &mut tokens,
                Token::QuotedIdent,
                skip_quoted(&chars, pos, '"')?,
            ),
            ('`', _) => push(
                &mut tokens,
                Token::QuotedIdent,
                skip_quoted(&chars, pos, '`')?,
            ),
            ('[', _) => push(&mut tokens, Token::QuotedIdent, skip_bracket(&chars, pos)?),
            (';', _) => push(&mut tokens, Token::Semicolon, pos + 1),
            ('?', Some(d)) if d.is_ascii_digit() => push(
                &mut tokens,
                Token::OtherParam,
                skip_while(&chars, pos + 1, is_ident_char),
            ),
            ('?', _) => push(&mut tokens, Token::Placeholder, pos + 1),
            (':' | '@' | '$', Some(n)) if is_ident_char(n) => push(
                &mut tokens,
                Token::OtherParam,
                skip_while(&chars, pos + 1, is_ident_char),
            ),
            _ if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                push(&mut tokens, Token::Number, skip_number(&chars, pos))
            }
            _ if is_ident_start(c) => {
                let end = skip_while(&chars, pos, is_ident_char);
                let word: String = chars[pos..end].iter().collect();
                push(&mut tokens, Token::Word(word.to_ascii_uppercase()), end)
            }
            _ => push(&mut tokens, Token::Punct(c), pos + 1),
        };
    }
    Ok(tokens)
}

/// Appends `token` and returns `end` (the position after it).
fn push(tokens: &mut Vec<Token>, token: Token, end: usize) -> usize {
    tokens.push(token);
    end
}

/// Characters that may start an unquoted identifier (SQLite: letters, `_`,
/// and any non-ASCII character).
fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

/// Characters that may continue an unquoted identifier.
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Returns the first position at or after `pos` whose char fails `pred`.
fn skip_while(chars: &[char], mut pos: usize, pred: impl Fn(char) -> bool) -> usize {
    while chars.get(pos).is_some_and(|&c| pred(c)) {
        pos += 1;
    }
    pos
}

/// Skips a numeric literal: `0x` hex digits, or decimal digits with an
/// optional fraction and exponent. Anything after it (e.g. letters glued to
/// the number) is tokenized separately, so a number never hides a keyword.
fn skip_number(chars: &[char], pos: usize) -> usize {
    let is_hex_prefix = chars.get(pos) == Some(&'0')
        && chars
            .get(pos + 1)
            .is_some_and(|c| c.eq_ignore_ascii_case(&'x'))
        && chars.get(pos + 2).is_some_and(char::is_ascii_hexdigit);
    if is_hex_prefix {
        return skip_while(chars, pos + 2, |c| c.is_ascii_hexdigit() || c == '_');
    }
    let digits = |c: char| c.is_ascii_digit() || c == '_';
    let mut end = skip_while(chars, pos, digits);
    if chars.get(end) == Some(&'.') {
        end = skip_while(chars, end + 1, digits);
    }
    if chars.get(end).is_some_and(|c| c.eq_ignore_ascii_case(&'e')) {
        let sign = usize::from(chars.get(end + 1).is_some_and(|c| matches!(c, '+' | '-')));
        if chars.get(end + 1 + sign).is_some_and(char::is_ascii_digit) {
            end = skip_while(chars, end + 1 + sign, digits);
        }
    }
    end
}

/// Skips a `--` comment up to (not including) the end of line.
fn skip_line_comment(chars: &[char], pos: usize) -> usize {
    skip_while(chars, pos, |c| c != '\n')
}

/// Skips a `/* … */` comment; an unterminated one is an error.
fn skip_block_comment(chars: &[char], pos: usize) -> Result<usize, SqlCaveatError> {
    let mut i = pos + 2;
    while i + 1 < chars.len() {
        if chars[i] == '*' && chars[i + 1] == '/' {
            return Ok(i + 2);
        }
        i += 1;
    }
    Err(SqlCaveatError::InvalidSql(
        "unterminated block comment".into(),
    ))
}

/// Skips a literal or identifier quoted with `quote`, where a doubled quote
/// is an escaped quote character.
fn skip_quoted(chars: &[char], pos: usize, quote: char) -> Result<usize, SqlCaveatError> {
    let mut i = pos + 1;
    while let Some(&c) = chars.get(i) {
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(SqlCaveatError::InvalidSql(format!(
        "unterminated {quote}-quoted token"
    )))
}

/// Skips a `[…]` identifier (no escape mechanism inside).
fn skip_bracket(chars: &[char], pos: usize) -> Result<usize, SqlCaveatError> {
    let end = skip_while(chars, pos + 1, |c| c != ']');
    if end < chars.len() {
        Ok(end + 1)
    } else {
        Err(SqlCaveatError::InvalidSql(
            "unterminated [identifier]".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_only(sql: &str) -> bool {
        analyze_sql(sql).is_ok_and(|a| a.is_read_only())
    }

    #[test]
    fn plain_select_is_read_only() {
        assert!(read_only("SELECT id FROM t WHERE id = ?"));
        assert!(read_only("select 1;"));
        assert!(read_only("  VALUES (1), (2)  ;;  "));
    }

    #[test]
    fn keywords_inside_literals_and_identifiers_are_not_keywords() {
        assert!(read_only("SELECT 'DELETE FROM t' AS x"));
        assert!(read_only("SELECT 'it''s; DROP TABLE t' FROM t"));
        assert!(read_only("SELECT \"delete\", [drop], `insert` FROM t"));
        assert!(read_only("SELECT \"a\"\"; DROP\" FROM t"));
        assert!(read_only("SELECT `a``; DROP` FROM t"));
        assert!(read_only("SELECT created_at, updated_at, dropped FROM t"));
        assert!(read_only("SELECT x'DE1E7E' FROM t"));
    }

    #[test]
    fn comments_are_ignored() {
        assert!(read_only("SELECT 1 -- ; DELETE FROM t"));
        assert!(read_only("SELECT /* DROP TABLE t; */ 1"));
        assert!(read_only("-- leading comment\nSELECT 1"));
        assert!(!read_only("SELECT 1 -- comment\n; DELETE FROM t"));
    }

    #[test]
    fn write_statements_are_detected() {
        for sql in [
            "DELETE FROM t",
            "insert into t values (1)",
            "UPDATE t SET a = 1",
            "REPLACE INTO t VALUES (1)",
            "DROP TABLE t",
            "CREATE TABLE t (a)",
            "ALTER TABLE t ADD b",
            "ATTACH 'x.db' AS x",
            "DETACH x",
            "PRAGMA writable_schema = 1",
            "VACUUM",
            "REINDEX t",
            "BEGIN",
        ] {
            assert!(!read_only(sql), "{sql}");
        }
    }

    #[test]
    fn cte_with_delete_is_a_write() {
        assert!(!read_only(
            "WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)"
        ));
        assert!(read_only("WITH x AS (SELECT 1) SELECT * FROM x"));
    }

    #[test]
    fn second_statement_is_rejected() {
        let a = analyze_sql("SELECT 1; SELECT 2").unwrap();
        assert_eq!(a.statement_count, 2);
        assert!(!a.is_read_only());
        assert!(!read_only("SELECT 1; DROP TABLE t"));
    }

    #[test]
    fn non_ascii_is_identifier_text_as_in_sqlite() {
        // SQLite treats every non-ASCII character as an identifier character,
        // so `\u{a0}DELETE` is one identifier there (and here), not a keyword.
        let a = analyze_sql("SELECT 1 FROM t\u{a0}DELETE").unwrap();
        assert_eq!(a.write_keyword, None);
        assert!(!read_only("\u{a0}SELECT 1"));
    }

    #[test]
    fn replace_function_is_not_a_write() {
        assert!(read_only("SELECT replace(title, 'a', 'b') FROM t"));
        assert!(read_only("SELECT REPLACE (title, 'a', 'b') FROM t"));
    }

    #[test]
    fn placeholders_are_counted() {
        let a = analyze_sql("SELECT ? , '?', \"?\", ? -- ?\n FROM t WHERE a = ? /* ? */").unwrap();
        assert_eq!(a.placeholder_count, 3);
        assert!(!a.has_other_params);
        for sql in ["SELECT ?1", "SELECT :a", "SELECT @a", "SELECT $a"] {
            assert!(analyze_sql(sql).unwrap().has_other_params, "{sql}");
        }
    }

    #[test]
    fn numbers_do_not_hide_keywords_or_make_them() {
        assert!(read_only("SELECT 0xDE, 1e-5, 1.5E+3, .5 FROM t"));
        assert!(!read_only("SELECT 1e-5; DELETE FROM t"));
        assert!(!read_only("SELECT 1DELETE FROM t"));
    }

    #[test]
    fn malformed_sql_is_an_error() {
        for sql in [
            "SELECT 'x",
            "SELECT \"x",
            "SELECT [x",
            "SELECT `x",
            "SELECT /* x",
            "",
            " ; -- x",
        ] {
            assert!(analyze_sql(sql).is_err(), "{sql:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn analyze_never_panics(sql in proptest::prelude::any::<String>()) {
            let _ = analyze_sql(&sql);
        }

        #[test]
        fn analyze_never_panics_on_sql_like_input(sql in "[ a-zA-Z0-9_?:@$;'\"`\\[\\]/*\\-.(),\n]{0,64}") {
            if let Ok(a) = analyze_sql(&sql) {
                proptest::prop_assert!(a.statement_count >= 1);
            }
        }
    }
}

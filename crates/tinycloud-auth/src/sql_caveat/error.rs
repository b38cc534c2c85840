//! Errors for SQL caveat parsing, containment and request enforcement.

/// Every way a SQL caveat, a caveat attenuation or a SQL request can fail.
///
/// [`SqlCaveatError::code`] gives the stable wire/test-vector code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlCaveatError {
    // --- malformed caveat ---
    /// The caveat object does not have the expected shape (wrong types,
    /// unknown fields, missing fields).
    #[error("malformed SQL caveat: {0}")]
    MalformedCaveat(String),
    /// `mode` is present but is not `constrained-statements`.
    #[error("unknown SQL caveat mode `{0}`")]
    UnknownMode(String),
    /// A statement has an empty name.
    #[error("SQL caveat statement with an empty name")]
    EmptyStatementName,
    /// Two statements share a name.
    #[error("duplicate SQL caveat statement `{0}`")]
    DuplicateStatement(String),
    /// Two fixed params of one statement share an index.
    #[error("statement `{statement}` pins index {index} twice")]
    DuplicateFixedParam {
        /// Statement name.
        statement: String,
        /// Duplicated index.
        index: u32,
    },
    /// A fixed param index has no matching `?` placeholder.
    #[error(
        "statement `{statement}` pins index {index} but has only {placeholders} placeholder(s)"
    )]
    FixedParamOutOfRange {
        /// Statement name.
        statement: String,
        /// Offending index.
        index: u32,
        /// Number of `?` placeholders in the statement.
        placeholders: usize,
    },
    /// A fixed param value is an object or array.
    #[error("statement `{statement}` pins index {index} to a non-primitive value")]
    FixedParamNonPrimitive {
        /// Statement name.
        statement: String,
        /// Offending index.
        index: u32,
    },
    /// The statement uses `?NNN`, `:name`, `@name` or `$name` parameters,
    /// which positional caveat binding does not support.
    #[error("statement `{0}` uses unsupported parameter syntax; only `?` is allowed")]
    UnsupportedPlaceholder(String),
    /// The SQL text is lexically invalid or empty.
    #[error("invalid SQL: {0}")]
    InvalidSql(String),
    /// A constrained-statements caveat (or a child of a read-only parent)
    /// is not read-only.
    #[error("SQL caveat must be read-only")]
    NonReadOnlyNotPermitted,

    // --- request enforcement ---
    /// The SQL is a write/DDL statement, or more than one statement, where
    /// only a single read-only statement is allowed.
    #[error("write SQL blocked{}", statement_suffix(.0))]
    WriteBlocked(Option<String>),
    /// Raw `query` under a constrained-statements caveat.
    #[error("raw SQL queries are blocked by the caveat")]
    RawQueryBlocked,
    /// Raw `execute` under a constrained-statements caveat.
    #[error("raw SQL execute is blocked by the caveat")]
    RawExecuteBlocked,
    /// `batch` under a constrained-statements caveat.
    #[error("SQL batches are blocked by the caveat")]
    BatchBlocked,
    /// `export` under a caveat that restricts what may be read.
    #[error("database export is blocked by the caveat")]
    ExportBlocked,
    /// `executeStatement` names a statement the caveat does not list.
    #[error("statement `{0}` is not allowed by the caveat")]
    StatementNotAllowed(String),
    /// The caller supplied a value for a pinned (fixed) index.
    #[error("statement `{statement}`: index {index} is fixed by the caveat")]
    FixedParamOverride {
        /// Statement name.
        statement: String,
        /// Pinned index.
        index: u32,
    },
    /// A caller value is an object or array.
    #[error("statement `{statement}`: value at index {index} is not a primitive")]
    NonPrimitiveBind {
        /// Statement name.
        statement: String,
        /// Offending index.
        index: u32,
    },
    /// A caller string carries statement or comment escape sequences.
    #[error("statement `{statement}`: value at index {index} contains a blocked escape sequence")]
    EscapeBlocked {
        /// Statement name.
        statement: String,
        /// Offending index.
        index: u32,
    },
    /// A params object key is not a canonical decimal index.
    #[error("invalid parameter index `{0}`")]
    InvalidParamIndex(String),
    /// A caller value has no matching `?` placeholder.
    #[error("statement `{statement}`: index {index} is beyond its {placeholders} placeholder(s)")]
    ParamOutOfRange {
        /// Statement name.
        statement: String,
        /// Offending index.
        index: u32,
        /// Number of `?` placeholders in the statement.
        placeholders: usize,
    },
    /// A placeholder has neither a fixed nor a caller value.
    #[error("statement `{statement}`: no value for index {index}")]
    ParamMissing {
        /// Statement name.
        statement: String,
        /// Unfilled index.
        index: u32,
    },
    /// The request JSON does not match the SQL request protocol.
    #[error("malformed SQL request: {0}")]
    MalformedRequest(String),

    // --- containment (attenuation) ---
    /// The child lists a statement the parent does not.
    #[error("delegated caveat adds statement `{0}`")]
    ContainmentStatementAdded(String),
    /// The child changes the SQL of a parent statement.
    #[error("delegated caveat changes the SQL of statement `{0}`")]
    ContainmentStatementChanged(String),
    /// The child drops a parent fixed param.
    #[error("delegated caveat drops fixed index {index} of statement `{statement}`")]
    ContainmentFixedParamDropped {
        /// Statement name.
        statement: String,
        /// Dropped index.
        index: u32,
    },
    /// The child changes a parent fixed param value.
    #[error("delegated caveat changes fixed index {index} of statement `{statement}`")]
    ContainmentFixedParamMismatch {
        /// Statement name.
        statement: String,
        /// Changed index.
        index: u32,
    },
    /// The child is not read-only under a read-only parent.
    #[error("delegated caveat widens read-only access")]
    ContainmentReadOnlyWidened,
    /// The child allows statements beyond the parent's named statements.
    #[error("delegated caveat widens the allowed statements")]
    ContainmentStatementsWidened,
    /// The child allows a table the parent does not.
    #[error("delegated caveat widens tables{}", item_suffix(.0))]
    ContainmentTablesWidened(Option<String>),
    /// The child allows a column the parent does not.
    #[error("delegated caveat widens columns{}", item_suffix(.0))]
    ContainmentColumnsWidened(Option<String>),
    /// The parent is a constrained-statements caveat and the child is not,
    /// or the parent restricts tables/columns that a constrained child
    /// cannot be shown to respect.
    #[error("delegated SQL caveat has an incompatible mode")]
    ContainmentModeMismatch,
}

impl SqlCaveatError {
    /// The stable rejection code (as used by the conformance vectors).
    pub fn code(&self) -> &'static str {
        use SqlCaveatError as E;
        match self {
            E::MalformedCaveat(_) => "sql-caveat-malformed",
            E::UnknownMode(_) => "sql-caveat-unknown-mode",
            E::EmptyStatementName => "sql-caveat-empty-statement-name",
            E::DuplicateStatement(_) => "sql-caveat-duplicate-statement",
            E::DuplicateFixedParam { .. } => "sql-caveat-duplicate-fixed-param",
            E::FixedParamOutOfRange { .. } => "sql-caveat-fixed-param-out-of-range",
            E::FixedParamNonPrimitive { .. } => "sql-caveat-fixed-param-non-primitive",
            E::UnsupportedPlaceholder(_) => "sql-unsupported-placeholder",
            E::InvalidSql(_) => "sql-invalid",
            E::NonReadOnlyNotPermitted => "sql-non-readonly-not-permitted",
            E::WriteBlocked(_) => "sql-write-blocked",
            E::RawQueryBlocked => "sql-raw-query-blocked",
            E::RawExecuteBlocked => "sql-raw-execute-blocked",
            E::BatchBlocked => "sql-batch-blocked",
            E::ExportBlocked => "sql-export-blocked",
            E::StatementNotAllowed(_) => "sql-statement-not-allowed",
            E::FixedParamOverride { .. } => "sql-fixed-param-override",
            E::NonPrimitiveBind { .. } => "sql-non-primitive-bind",
            E::EscapeBlocked { .. } => "sql-escape-blocked",
            E::InvalidParamIndex(_) => "sql-param-invalid-index",
            E::ParamOutOfRange { .. } => "sql-param-out-of-range",
            E::ParamMissing { .. } => "sql-param-missing",
            E::MalformedRequest(_) => "sql-request-malformed",
            E::ContainmentStatementAdded(_) => "containment-sql-statement-added",
            E::ContainmentStatementChanged(_) => "containment-sql-statement-changed",
            E::ContainmentFixedParamDropped { .. } => "containment-sql-fixed-param-dropped",
            E::ContainmentFixedParamMismatch { .. } => "containment-sql-fixed-param-mismatch",
            E::ContainmentReadOnlyWidened => "containment-sql-readonly-widened",
            E::ContainmentStatementsWidened => "containment-sql-statements-widened",
            E::ContainmentTablesWidened(_) => "containment-sql-tables-widened",
            E::ContainmentColumnsWidened(_) => "containment-sql-columns-widened",
            E::ContainmentModeMismatch => "containment-sql-mode-mismatch",
        }
    }
}

/// ` in statement `name`` when a statement is known.
fn statement_suffix(statement: &Option<String>) -> String {
    statement
        .as_ref()
        .map(|s| format!(" in statement `{s}`"))
        .unwrap_or_default()
}

/// `: `item`` or `: all` for widening messages.
fn item_suffix(item: &Option<String>) -> String {
    match item {
        Some(item) => format!(": `{item}`"),
        None => ": unrestricted".to_owned(),
    }
}

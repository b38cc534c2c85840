//! What a SQL statement may do, decided by SQLite itself: every action SQLite is about to
//! compile is passed to an authorizer callback, and read-only statements are recognised with
//! `sqlite3_stmt_readonly` — never by matching keywords.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// The SQL ability an invocation exercises (aliases resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `tinycloud.sql/read`: statements that change nothing.
    Read,
    /// `tinycloud.sql/write`: reads, DML and DDL (as the reference: its clients send
    /// migrations under `write`).
    Write,
    /// `tinycloud.sql/schema`: reads and DDL.
    Schema,
    /// `tinycloud.sql/admin` (and `*`): reads, DML, DDL and the safe pragmas.
    Admin,
}

impl Level {
    /// From a canonical SQL ability name.
    pub fn from_ability(name: &str) -> Option<Level> {
        Some(match name {
            "read" => Level::Read,
            "write" => Level::Write,
            "schema" => Level::Schema,
            "admin" | "*" => Level::Admin,
            _ => return None,
        })
    }

    fn dml(self) -> bool {
        matches!(self, Level::Write | Level::Admin)
    }

    fn ddl(self) -> bool {
        matches!(self, Level::Write | Level::Schema | Level::Admin)
    }
}

/// Pragmas that only read (allowed at every level). `database_list` (the server's file paths)
/// and every pragma not listed here are denied.
const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
];

/// Read pragmas whose argument is a table: under a table restriction allowed only for a
/// permitted table (named literally; the table-valued form passes it at run time).
const TABLE_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "foreign_key_list",
];

/// Pragmas an admin may change. Anything touching durability, the file or the schema table
/// (`journal_mode`, `synchronous`, `writable_schema`, `locking_mode`, `mmap_size`, …) stays
/// denied for everyone, and so does `foreign_keys`: always on, and a per-connection switch
/// would leak into other requests (inside a write's transaction SQLite ignores it anyway).
const ADMIN_PRAGMAS: &[&str] = &[
    "user_version",
    "application_id",
    "optimize",
    "integrity_check",
    "quick_check",
    "foreign_key_check",
    "recursive_triggers",
    "defer_foreign_keys",
];

/// Functions any statement may call: core scalars, aggregates, window functions, date/time,
/// JSON and math. `load_extension` and anything else is denied.
const FUNCTIONS: &[&str] = &[
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "if",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "zeroblob",
    "sqlite_version",
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_pretty",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "json_each",
    "json_tree",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
];

/// SQLite's own helpers for `ALTER TABLE … RENAME` and `DROP COLUMN`, called while it rewrites
/// the schema: allowed only once this statement's `ALTER TABLE` was (SQLite marks them internal,
/// so a client cannot call them by name anyway).
const ALTER_FUNCTIONS: &[&str] = &[
    "sqlite_rename_column",
    "sqlite_rename_table",
    "sqlite_rename_test",
    "sqlite_rename_quotefix",
    "sqlite_drop_column",
];

fn internal(table: &str) -> bool {
    table.to_ascii_lowercase().starts_with("sqlite_")
}

/// The schema and statistics tables SQLite itself updates while running DDL or ANALYZE. Direct
/// writes to the schema table are refused by SQLite unless `writable_schema` is on, which no
/// level may turn on.
fn schema_bookkeeping(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    matches!(
        t.as_str(),
        "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
    ) || t.starts_with("sqlite_stat")
}

/// Whether a statement is a `VACUUM`, which the authorizer is never asked about (it rewrites
/// whole files; `VACUUM INTO` writes anywhere): its first keyword after any comments.
pub fn is_vacuum(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    rest.get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("vacuum"))
        && !rest[6..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// Table and column restrictions from a general SQL caveat.
#[derive(Clone, Debug, Default)]
pub struct Restrictions {
    /// Only these tables (all when `None`).
    pub tables: Option<Vec<String>>,
    /// Only these columns (all when `None`).
    pub columns: Option<Vec<String>>,
}

impl Restrictions {
    /// Whether a table or column list restricts the grant.
    pub fn any(&self) -> bool {
        self.tables.is_some() || self.columns.is_some()
    }

    fn table_ok(&self, t: &str) -> bool {
        self.tables
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|x| x.eq_ignore_ascii_case(t)))
    }

    fn column_ok(&self, c: &str) -> bool {
        self.columns
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|x| x.eq_ignore_ascii_case(c)))
    }
}

/// What one invoked capability grants: its level and its caveat's restrictions.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The level (`Read` when the caveat is read-only).
    pub level: Level,
    /// Table and column restrictions.
    pub restrictions: Restrictions,
}

/// The authorizer of one statement: the grants of the invocation (an action is allowed when
/// one of them allows it: an invocation may carry several capabilities on one database, each
/// verified), and what the statement was allowed so far (SQLite reports a DDL statement's own
/// bookkeeping as further actions of the same statement).
#[derive(Clone, Debug)]
pub struct Gate {
    grants: Vec<Grant>,
    /// The table or view a `DROP` in this statement was allowed to drop: SQLite reports
    /// dropping it as deleting its rows, which the schema level may do as part of its DDL.
    dropped: Option<String>,
    /// The index a `CREATE INDEX` in this statement was allowed to create: SQLite reports
    /// building it as a reindex, part of the same DDL.
    indexed: Option<String>,
    /// SQLite's own schema bookkeeping has begun (an update or delete of the schema table, an
    /// `ALTER TABLE`): its reads of the schema table are SQLite's, not the client's. A client's
    /// read (`SELECT … FROM sqlite_master`, also inside `CREATE TABLE … AS SELECT`) always comes
    /// before it.
    bookkeeping: bool,
}

impl Gate {
    /// The authorizer of a statement compiled at `level` under `r`.
    pub fn new(level: Level, r: Restrictions) -> Self {
        Self::union(vec![Grant {
            level,
            restrictions: r,
        }])
    }

    /// The authorizer of a statement compiled under several grants (none: everything denied).
    pub fn union(grants: Vec<Grant>) -> Self {
        Gate {
            grants,
            dropped: None,
            indexed: None,
            bookkeeping: false,
        }
    }

    /// Decides one action.
    pub fn decide(&mut self, ctx: &AuthContext<'_>) -> Authorization {
        let allowed = self
            .grants
            .iter()
            .any(|g| decide(g.level, &g.restrictions, self, ctx) == Authorization::Allow);
        let d = if allowed {
            Authorization::Allow
        } else {
            Authorization::Deny
        };
        if d == Authorization::Allow {
            use AuthAction as A;
            match &ctx.action {
                A::DropTable { table_name }
                | A::DropView {
                    view_name: table_name,
                } => {
                    self.dropped = Some((*table_name).to_owned());
                }
                A::Update { table_name, .. } | A::Delete { table_name }
                    if schema_bookkeeping(table_name) =>
                {
                    self.bookkeeping = true;
                }
                A::AlterTable { .. } => self.bookkeeping = true,
                A::CreateIndex { index_name, .. } => {
                    self.indexed = Some((*index_name).to_owned());
                }
                _ => {}
            }
        }
        d
    }
}

fn decide(level: Level, r: &Restrictions, g: &Gate, ctx: &AuthContext<'_>) -> Authorization {
    use AuthAction as A;
    let allow = |ok: bool| {
        if ok {
            Authorization::Allow
        } else {
            Authorization::Deny
        }
    };
    // `ALTER TABLE` names its database in the action (SQLite passes the dropped column where
    // other actions pass the database).
    if !matches!(ctx.action, A::AlterTable { .. })
        && ctx
            .database_name
            .is_some_and(|d| d != "main" && d != "temp")
    {
        return Authorization::Deny;
    }
    match &ctx.action {
        A::Select | A::Recursive => Authorization::Allow,
        A::Read {
            table_name,
            column_name,
        } => {
            // Reading the schema table is how SQLite compiles statements and runs DDL; a
            // client restricted to some tables or columns may not read it (it holds every
            // table's DDL), nor any other internal table.
            if internal(table_name) {
                return allow(!r.any() || g.bookkeeping);
            }
            allow(r.table_ok(table_name) && r.column_ok(column_name))
        }
        A::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            allow(
                FUNCTIONS.contains(&name.as_str())
                    || (g.bookkeeping && ALTER_FUNCTIONS.contains(&name.as_str())),
            )
        }
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            // The argument of the read pragmas names a table or index; they never change state.
            // Under a table or column restriction only the table pragmas on a permitted table
            // remain (the others list every table or index).
            let name = pragma_name.to_ascii_lowercase();
            if r.any() && READ_PRAGMAS.contains(&name.as_str()) {
                return allow(
                    TABLE_PRAGMAS.contains(&name.as_str())
                        && pragma_value.is_some_and(|t| r.table_ok(t)),
                );
            }
            allow(
                READ_PRAGMAS.contains(&name.as_str())
                    || (level == Level::Admin && ADMIN_PRAGMAS.contains(&name.as_str())),
            )
        }
        A::Insert { table_name } | A::Delete { table_name } | A::Update { table_name, .. }
            if internal(table_name) =>
        {
            // AUTOINCREMENT keeps its counters in `sqlite_sequence`.
            allow(
                (level.ddl() && schema_bookkeeping(table_name))
                    || (level.dml() && table_name.eq_ignore_ascii_case("sqlite_sequence")),
            )
        }
        A::Delete { table_name }
            if level.ddl()
                && g.dropped
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(table_name)) =>
        {
            allow(r.table_ok(table_name))
        }
        A::Insert { table_name } | A::Delete { table_name } => {
            allow(level.dml() && r.table_ok(table_name))
        }
        A::Update {
            table_name,
            column_name,
        } => allow(level.dml() && r.table_ok(table_name) && r.column_ok(column_name)),
        // Creating an AUTOINCREMENT table creates SQLite's `sqlite_sequence` alongside it.
        A::CreateTable { table_name } if table_name.eq_ignore_ascii_case("sqlite_sequence") => {
            allow(level.ddl())
        }
        // DDL under a table restriction reaches only the permitted tables (and views). Under a
        // column restriction no `ALTER TABLE`: renaming a hidden column to a permitted name
        // would reveal it, and SQLite names neither column to the authorizer.
        A::AlterTable {
            database_name,
            table_name,
        } => allow(
            level.ddl()
                && r.columns.is_none()
                && database_name.eq_ignore_ascii_case("main")
                && !internal(table_name)
                && r.table_ok(table_name),
        ),
        A::CreateTable { table_name } | A::DropTable { table_name } | A::Analyze { table_name } => {
            allow(level.ddl() && !internal(table_name) && r.table_ok(table_name))
        }
        A::CreateIndex { table_name, .. } | A::DropIndex { table_name, .. } => {
            allow(level.ddl() && !internal(table_name) && r.table_ok(table_name))
        }
        A::CreateView { view_name } | A::DropView { view_name } => {
            allow(level.ddl() && r.table_ok(view_name))
        }
        A::Reindex { index_name }
            if g.indexed
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(index_name)) =>
        {
            allow(level.ddl())
        }
        A::Reindex { .. } => allow(level.ddl() && !r.any()),
        A::CreateTrigger { table_name, .. } | A::DropTrigger { table_name, .. } => {
            allow(level == Level::Admin && !internal(table_name) && r.table_ok(table_name))
        }
        // Temporary objects, virtual tables, ATTACH/DETACH, client-side transactions and
        // savepoints (each request is one statement; batches are transactions the node owns).
        _ => Authorization::Deny,
    }
}

#[cfg(test)]
mod tests;

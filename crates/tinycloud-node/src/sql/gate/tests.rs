//! One test per rule of the SQLite authorizer policy, each able to fail when its rule is
//! removed: statements are compiled by a real SQLite connection with the gate installed, as
//! the engine does (a fresh gate per statement).

use rusqlite::Connection;

use super::*;

/// A database with two tables, a view and a row in each table (made without a gate).
fn db() -> Connection {
    let c = Connection::open_in_memory().expect("memory db");
    c.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, secret TEXT);
         CREATE TABLE other (x);
         CREATE INDEX other_x ON other (x);
         INSERT INTO notes (body, secret) VALUES ('hello', 's3cret');
         INSERT INTO other VALUES (1);",
    )
    .expect("schema");
    c
}

fn grant(level: Level, tables: Option<&[&str]>, columns: Option<&[&str]>) -> Grant {
    let list = |l: Option<&[&str]>| l.map(|v| v.iter().map(|s| s.to_string()).collect());
    Grant {
        level,
        restrictions: Restrictions {
            tables: list(tables),
            columns: list(columns),
        },
    }
}

/// Compiles and runs one statement under `grants`. `Err` carries SQLite's message.
fn run_union(c: &Connection, grants: Vec<Grant>, sql: &str) -> Result<(), String> {
    let mut gate = Gate::union(grants);
    c.authorizer(Some(move |ctx: AuthContext<'_>| gate.decide(&ctx)));
    let result = (|| {
        let mut st = c.prepare(sql)?;
        let mut rows = st.raw_query();
        while rows.next()?.is_some() {}
        Ok::<(), rusqlite::Error>(())
    })();
    c.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    result.map_err(|e| e.to_string())
}

fn run(c: &Connection, g: Grant, sql: &str) -> Result<(), String> {
    run_union(c, vec![g], sql)
}

fn at(level: Level) -> Grant {
    grant(level, None, None)
}

/// Asserts that the statement was refused by the authorizer (not failed for another reason).
#[track_caller]
fn denied(r: Result<(), String>) {
    match r {
        Err(e) if e.contains("not authorized") || e.contains("prohibited") => {}
        other => panic!("expected an authorizer refusal, got {other:?}"),
    }
}

#[track_caller]
fn allowed(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("expected the statement to be allowed, got {e}");
    }
}

#[test]
fn read_level_reads_and_changes_nothing() {
    let c = db();
    allowed(run(&c, at(Level::Read), "SELECT id, body FROM notes"));
    allowed(run(&c, at(Level::Read), "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n"));
    denied(run(
        &c,
        at(Level::Read),
        "INSERT INTO notes (body) VALUES ('x')",
    ));
    denied(run(&c, at(Level::Read), "UPDATE notes SET body = 'x'"));
    denied(run(&c, at(Level::Read), "DELETE FROM notes"));
    denied(run(&c, at(Level::Read), "CREATE TABLE t (v)"));
    denied(run(&c, at(Level::Read), "DROP TABLE other"));
    denied(run(&c, at(Level::Read), "CREATE INDEX i ON notes (body)"));
}

#[test]
fn write_level_permits_dml_and_ddl() {
    let c = db();
    let w = || at(Level::Write);
    allowed(run(&c, w(), "INSERT INTO notes (body) VALUES ('x')"));
    allowed(run(&c, w(), "UPDATE notes SET body = 'y' WHERE body = 'x'"));
    allowed(run(&c, w(), "DELETE FROM notes WHERE body = 'y'"));
    allowed(run(&c, w(), "CREATE TABLE t (v)"));
    allowed(run(&c, w(), "CREATE INDEX t_v ON t (v)"));
    allowed(run(&c, w(), "ALTER TABLE t ADD COLUMN w"));
    allowed(run(&c, w(), "ALTER TABLE t ADD COLUMN z"));
    allowed(run(&c, w(), "ALTER TABLE t RENAME COLUMN w TO w2"));
    allowed(run(&c, w(), "ALTER TABLE t DROP COLUMN z"));
    allowed(run(&c, w(), "CREATE VIEW tv AS SELECT v FROM t"));
    allowed(run(&c, w(), "DROP VIEW tv"));
    allowed(run(&c, w(), "DROP INDEX t_v"));
    allowed(run(&c, w(), "DROP TABLE t"));
}

#[test]
fn write_level_may_not_create_triggers_nor_set_pragmas() {
    let c = db();
    denied(run(
        &c,
        at(Level::Write),
        "CREATE TRIGGER tr AFTER INSERT ON notes BEGIN DELETE FROM other; END",
    ));
    denied(run(&c, at(Level::Write), "PRAGMA user_version = 3"));
}

#[test]
fn schema_level_permits_ddl_but_not_dml() {
    let c = db();
    let s = || at(Level::Schema);
    allowed(run(&c, s(), "CREATE TABLE t (v)"));
    allowed(run(&c, s(), "CREATE INDEX t_v ON t (v)"));
    allowed(run(&c, s(), "ALTER TABLE t RENAME TO u"));
    denied(run(&c, s(), "INSERT INTO notes (body) VALUES ('x')"));
    denied(run(&c, s(), "UPDATE notes SET body = 'x'"));
    denied(run(&c, s(), "DELETE FROM notes"));
    denied(run(
        &c,
        s(),
        "CREATE TRIGGER tr AFTER INSERT ON notes BEGIN SELECT 1; END",
    ));
}

#[test]
fn schema_level_may_drop_a_table_with_rows() {
    // SQLite reports dropping a table as deleting its rows; the DROP the gate allowed covers it.
    let c = db();
    allowed(run(&c, at(Level::Schema), "DROP TABLE other"));
}

#[test]
fn admin_level_permits_triggers_and_the_admin_pragmas() {
    let c = db();
    allowed(run(
        &c,
        at(Level::Admin),
        "CREATE TRIGGER tr AFTER INSERT ON notes BEGIN DELETE FROM other; END",
    ));
    allowed(run(&c, at(Level::Admin), "DROP TRIGGER tr"));
    allowed(run(&c, at(Level::Admin), "PRAGMA user_version = 3"));
    allowed(run(&c, at(Level::Admin), "PRAGMA integrity_check"));
    for level in [Level::Read, Level::Write, Level::Schema] {
        denied(run(&c, at(level), "PRAGMA integrity_check"));
    }
}

#[test]
fn autoincrement_counters_follow_the_levels() {
    let c = db();
    allowed(run(
        &c,
        at(Level::Write),
        "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
    ));
    allowed(run(&c, at(Level::Write), "INSERT INTO a (v) VALUES (1)"));
    denied(run(&c, at(Level::Schema), "INSERT INTO a (v) VALUES (2)"));
    // Its counters live in `sqlite_sequence`: DML may maintain them, nothing else may.
    let bump = "UPDATE sqlite_sequence SET seq = 10 WHERE name = 'a'";
    allowed(run(&c, at(Level::Write), bump));
    denied(run(&c, at(Level::Schema), bump));
    denied(run(&c, at(Level::Read), bump));
}

#[test]
fn functions_outside_the_allow_list_are_denied() {
    let c = db();
    allowed(run(
        &c,
        at(Level::Read),
        "SELECT abs(-1), lower(body), json_object('a', 1), count(*) FROM notes",
    ));
    for f in [
        "SELECT sqlite_compileoption_get(0)",
        "SELECT sqlite_source_id()",
        "SELECT load_extension('/tmp/evil.so')",
    ] {
        denied(run(&c, at(Level::Admin), f));
    }
}

#[test]
fn attach_and_detach_are_denied() {
    let c = db();
    denied(run(
        &c,
        at(Level::Admin),
        "ATTACH DATABASE ':memory:' AS aux",
    ));
    c.execute_batch("ATTACH DATABASE ':memory:' AS aux; CREATE TABLE aux.t (v);")
        .expect("attach without a gate");
    denied(run(&c, at(Level::Admin), "DETACH DATABASE aux"));
}

#[test]
fn databases_other_than_main_and_temp_are_unreachable() {
    let c = db();
    c.execute_batch("ATTACH DATABASE ':memory:' AS aux; CREATE TABLE aux.t (v);")
        .expect("attach without a gate");
    denied(run(&c, at(Level::Admin), "SELECT v FROM aux.t"));
    denied(run(&c, at(Level::Admin), "INSERT INTO aux.t VALUES (1)"));
    denied(run(&c, at(Level::Admin), "ALTER TABLE aux.t ADD COLUMN w"));
}

#[test]
fn temporary_objects_are_denied() {
    let c = db();
    for sql in [
        "CREATE TEMP TABLE t (v)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TEMP TRIGGER tr AFTER INSERT ON notes BEGIN SELECT 1; END",
        "CREATE INDEX temp.i ON notes (body)",
    ] {
        let r = run(&c, at(Level::Admin), sql);
        assert!(r.is_err(), "{sql}");
        if !sql.starts_with("CREATE INDEX") {
            denied(r);
        }
    }
}

#[test]
fn virtual_tables_are_denied() {
    let c = db();
    denied(run(
        &c,
        at(Level::Admin),
        "CREATE VIRTUAL TABLE v USING json_each('[1]')",
    ));
}

#[test]
fn client_transactions_and_savepoints_are_denied() {
    let c = db();
    for sql in [
        "BEGIN",
        "BEGIN IMMEDIATE",
        "SAVEPOINT s",
        "COMMIT",
        "ROLLBACK",
    ] {
        denied(run(&c, at(Level::Admin), sql));
    }
}

#[test]
fn read_pragmas_are_allowed_and_the_rest_denied() {
    let c = db();
    allowed(run(&c, at(Level::Read), "PRAGMA table_info(notes)"));
    allowed(run(
        &c,
        at(Level::Read),
        "SELECT name FROM pragma_table_info('notes')",
    ));
    allowed(run(&c, at(Level::Read), "PRAGMA index_list(other)"));
    // The server's file paths.
    denied(run(&c, at(Level::Admin), "PRAGMA database_list"));
    // Durability, the file and the schema table are nobody's to change; foreign keys stay on.
    for p in [
        "PRAGMA journal_mode = DELETE",
        "PRAGMA synchronous = OFF",
        "PRAGMA writable_schema = ON",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA mmap_size = 1000000",
    ] {
        denied(run(&c, at(Level::Admin), p));
    }
}

#[test]
fn schema_tables_are_hidden_under_a_table_caveat() {
    let c = db();
    let only_notes = || grant(Level::Read, Some(&["notes"]), None);
    allowed(run(&c, at(Level::Read), "SELECT sql FROM sqlite_master"));
    denied(run(&c, only_notes(), "SELECT sql FROM sqlite_master"));
    denied(run(&c, only_notes(), "SELECT sql FROM sqlite_schema"));
    // The listing pragmas name every table; a table pragma only on a permitted table.
    denied(run(&c, only_notes(), "PRAGMA table_list"));
    denied(run(&c, only_notes(), "PRAGMA index_info(other_x)"));
    allowed(run(&c, only_notes(), "PRAGMA table_info(notes)"));
    denied(run(&c, only_notes(), "PRAGMA table_info(other)"));
    // A column caveat hides the schema too.
    denied(run(
        &c,
        grant(Level::Read, None, Some(&["id", "body"])),
        "SELECT sql FROM sqlite_master",
    ));
}

#[test]
fn table_and_column_caveats_bound_reads_and_dml() {
    let c = db();
    let notes = |level| grant(level, Some(&["notes"]), None);
    allowed(run(&c, notes(Level::Read), "SELECT body FROM notes"));
    denied(run(&c, notes(Level::Read), "SELECT x FROM other"));
    allowed(run(
        &c,
        notes(Level::Write),
        "INSERT INTO notes (body) VALUES ('x')",
    ));
    denied(run(&c, notes(Level::Write), "INSERT INTO other VALUES (2)"));
    denied(run(&c, notes(Level::Write), "DELETE FROM other"));
    let cols = |level| grant(level, Some(&["notes"]), Some(&["id", "body"]));
    allowed(run(&c, cols(Level::Read), "SELECT id, body FROM notes"));
    denied(run(&c, cols(Level::Read), "SELECT secret FROM notes"));
    denied(run(&c, cols(Level::Read), "SELECT * FROM notes"));
    denied(run(&c, cols(Level::Write), "UPDATE notes SET secret = 'x'"));
    allowed(run(&c, cols(Level::Write), "UPDATE notes SET body = 'x'"));
}

#[test]
fn table_caveats_bound_ddl() {
    let c = db();
    let notes = || grant(Level::Write, Some(&["notes"]), None);
    denied(run(&c, notes(), "CREATE TABLE t (v)"));
    denied(run(&c, notes(), "DROP TABLE other"));
    denied(run(&c, notes(), "CREATE INDEX i ON other (x)"));
    denied(run(&c, notes(), "DROP INDEX other_x"));
    denied(run(&c, notes(), "ALTER TABLE other ADD COLUMN y"));
    denied(run(&c, notes(), "ALTER TABLE other RENAME TO z"));
    denied(run(&c, notes(), "ALTER TABLE other RENAME COLUMN x TO y"));
    c.execute_batch("CREATE TABLE wide (a, b)")
        .expect("no gate");
    denied(run(&c, notes(), "ALTER TABLE wide DROP COLUMN b"));
    denied(run(&c, notes(), "CREATE VIEW v AS SELECT body FROM notes"));
    denied(run(&c, notes(), "REINDEX"));
    denied(run(&c, notes(), "ANALYZE other"));
    allowed(run(&c, notes(), "CREATE INDEX notes_body ON notes (body)"));
    // ALTER TABLE on a permitted table: SQLite's own reads of the schema table are allowed.
    allowed(run(&c, notes(), "ALTER TABLE notes ADD COLUMN extra"));
    allowed(run(
        &c,
        notes(),
        "ALTER TABLE notes RENAME COLUMN extra TO more",
    ));
    // A REINDEX of its own index is still not a CREATE INDEX.
    denied(run(&c, notes(), "REINDEX notes_body"));
    let admin_notes = || grant(Level::Admin, Some(&["notes"]), None);
    denied(run(
        &c,
        admin_notes(),
        "CREATE TRIGGER tr AFTER INSERT ON other BEGIN SELECT 1; END",
    ));
}

#[test]
fn grants_are_united_and_none_grants_nothing() {
    let c = db();
    let union = || vec![at(Level::Read), grant(Level::Write, Some(&["notes"]), None)];
    allowed(run_union(&c, union(), "SELECT x FROM other"));
    allowed(run_union(
        &c,
        union(),
        "INSERT INTO notes (body) VALUES ('x')",
    ));
    denied(run_union(&c, union(), "INSERT INTO other VALUES (3)"));
    denied(run_union(&c, vec![], "SELECT 1"));
}

#[test]
fn vacuum_is_refused_before_sqlite_sees_it() {
    // The authorizer is not consulted for VACUUM; the engine refuses it by its first word.
    use crate::sql::engine::{Databases, Exec, SqlError, SqlLimits, Stmt};
    let dir = tempfile::tempdir().expect("tempdir");
    let dbs = Databases::new(
        dir.path(),
        SqlLimits::default(),
        crate::sql::hosting::Hosting::Local,
    )
    .expect("databases");
    let admin = || Exec::single(Level::Admin, Restrictions::default(), false);
    let stmt = |sql: &str| Stmt {
        sql: sql.into(),
        params: vec![],
    };
    dbs.run("s", "db", &stmt("CREATE TABLE t (v)"), &admin())
        .expect("create");
    let into = dir.path().join("copy.db");
    for sql in [
        "VACUUM".to_owned(),
        "  vacuum main".to_owned(),
        format!("VACUUM INTO '{}'", into.display()),
        // Not recognised by its first word: SQLite must still refuse it.
        format!("/* x */ VACUUM INTO '{}'", into.display()),
        format!("-- x\nVACUUM INTO '{}'", into.display()),
        "/* x */ VACUUM".to_owned(),
    ] {
        let r = dbs.run("s", "db", &stmt(&sql), &admin()).map(|_| ());
        assert!(matches!(r, Err(SqlError::Denied(_))), "{sql}: {r:?}");
    }
    assert!(!into.exists());
}

#[test]
fn vacuum_into_is_refused_on_the_read_path() {
    use crate::sql::engine::{Databases, Exec, SqlError, SqlLimits, Stmt};
    let dir = tempfile::tempdir().expect("tempdir");
    let dbs = Databases::new(
        dir.path(),
        SqlLimits::default(),
        crate::sql::hosting::Hosting::Local,
    )
    .expect("databases");
    let stmt = |sql: &str| Stmt {
        sql: sql.into(),
        params: vec![],
    };
    dbs.run(
        "s",
        "db",
        &stmt("CREATE TABLE t (v)"),
        &Exec::single(Level::Admin, Restrictions::default(), false),
    )
    .expect("create");
    let into = dir.path().join("copy.db");
    for sql in [
        format!("VACUUM INTO '{}'", into.display()),
        format!("/* x */ VACUUM INTO '{}'", into.display()),
        format!("-- x\nVACUUM INTO '{}'", into.display()),
    ] {
        let read = Exec::single(Level::Read, Restrictions::default(), true);
        let r = dbs.run("s", "db", &stmt(&sql), &read).map(|_| ());
        assert!(matches!(r, Err(SqlError::Denied(_))), "{sql}: {r:?}");
        assert!(!into.exists(), "{sql} wrote a file");
    }
}

#[test]
fn vacuum_is_recognised_behind_comments_only_as_a_statement() {
    for sql in [
        "VACUUM",
        "vacuum;",
        "/**/vacuum",
        "-- c\n /* d */ VACUUM INTO 'x'",
        "\tVacuum\tmain",
    ] {
        assert!(is_vacuum(sql), "{sql}");
    }
    for sql in [
        "SELECT 'vacuum'",
        "vacuumed",
        "-- VACUUM",
        "/* VACUUM */ SELECT 1",
        "",
    ] {
        assert!(!is_vacuum(sql), "{sql}");
    }
}

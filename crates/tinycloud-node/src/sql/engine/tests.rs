//! File names of databases and the move of legacy files.

use std::collections::HashSet;

use rusqlite::Connection;

use super::registry::MAX_STEM;
use super::*;
use crate::sql::gate::{Level, Restrictions};

#[test]
fn file_stems_are_injective_and_case_fold_safe() {
    // Lower-case names keep the files they always had.
    assert_eq!(file_stem("app1"), "app1");
    assert_eq!(file_stem("my-db_2.x"), "my-db_2.x");
    // `/` and upper case are escaped; no two names share a stem, even folded to one case.
    let names = [
        "app1",
        "APP1",
        "App1",
        "app1/secrets",
        "app1+2fsecrets",
        "xyz.tinycloud.listen/conversations",
        "a/b",
        "a+2fb",
    ];
    let stems: HashSet<String> = names.iter().map(|n| file_stem(n).to_lowercase()).collect();
    assert_eq!(stems.len(), names.len());
    assert!(names.iter().all(|n| !file_stem(n).contains('/')));
    // Long names get a fixed-length hashed stem.
    let long = "A".repeat(128);
    let s = file_stem(&long);
    assert!(s.starts_with('~') && s.len() == 33, "{s}");
    assert_ne!(s, file_stem(&"B".repeat(128)));
    assert!(file_stem(&"a/".repeat(60)).len() <= MAX_STEM);
}

#[test]
fn legacy_upper_case_files_are_moved_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let dbs = Databases::new(dir.path(), SqlLimits::default(), Hosting::Local).unwrap();
    let space_dir = dbs.space_dir("s");
    std::fs::create_dir_all(&space_dir).unwrap();
    {
        let c = Connection::open(space_dir.join("MyDb.db")).unwrap();
        c.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES ('old')")
            .unwrap();
    }
    let read = |name: &str| {
        dbs.run(
            "s",
            name,
            &Stmt {
                sql: "SELECT v FROM t".into(),
                params: vec![],
            },
            &Exec::single(Level::Read, Restrictions::default(), true),
        )
        .map(|(o, _)| o.to_json()["rows"].clone())
    };
    // Another spelling never claims the file.
    assert!(matches!(read("MYDB"), Err(SqlError::NotFound(_))));
    assert_eq!(read("MyDb").unwrap(), serde_json::json!([["old"]]));
    assert!(!space_dir.join("MyDb.db").exists());
    assert!(dbs.path_of("s", "MyDb").exists());
}

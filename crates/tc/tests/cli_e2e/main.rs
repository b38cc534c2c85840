//! End-to-end: the real `tc` binary against a node started with `tc node serve` (real HTTP on a
//! free port, embedded storage in a temp dir). Every persona has its own `$TC_HOME`.

#[path = "../common/mod.rs"]
mod common;

use assert_cmd::Command;
use std::io::{BufRead, BufReader};

use common::*;
use predicates::prelude::*;
use serde_json::Value;

#[test]
fn owner_kv_round_trip() {
    let node = serve();
    let o = owner(&node);
    o.tc(&["kv", "put", "notes/today.md", "hello"])
        .assert()
        .success();
    o.tc(&["kv", "get", "notes/today.md"])
        .assert()
        .success()
        .stdout("hello");

    let got = o.json(&["kv", "get", "notes/today.md"]);
    assert_eq!(got["key"], "notes/today.md");
    assert_eq!(got["data"], "hello");
    assert!(got["metadata"]["etag"]
        .as_str()
        .unwrap()
        .starts_with("\"blake3-"));

    // stdin and file sources, binary values, -o
    o.tc(&["kv", "put", "notes/piped", "--stdin"])
        .write_stdin("from stdin")
        .assert()
        .success();
    o.tc(&["kv", "get", "notes/piped"])
        .assert()
        .stdout("from stdin");
    let bin: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(o.file("blob.bin"), &bin).unwrap();
    o.tc(&["kv", "put", "blob", "--file", "blob.bin"])
        .assert()
        .success();
    o.tc(&["kv", "get", "blob", "-o", "copy.bin"])
        .assert()
        .success();
    assert_eq!(std::fs::read(o.file("copy.bin")).unwrap(), bin);
    let b = o.json(&["kv", "get", "blob"]);
    assert_eq!(b["encoding"], "base64");

    // exactly one value source; conditional writes
    o.tc(&["kv", "put", "x"]).assert().code(2);
    o.tc(&["kv", "put", "x", "v", "--stdin"]).assert().code(2);
    o.tc(&["kv", "put", "notes/today.md", "again", "--if-absent"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("precondition"));

    let ls = o.json(&["kv", "ls", "notes/"]);
    assert_eq!(ls["count"], 2);
    assert_eq!(ls["prefix"], "notes/");
    assert_eq!(ls["keys"][0], "notes/piped");
    o.tc(&["kv", "ls"])
        .assert()
        .success()
        .stdout(predicate::str::contains("notes/today.md\n"));
    assert_eq!(o.json(&["kv", "ls", "--limit", "1"])["count"], 1);

    let head = o.json(&["kv", "head", "notes/today.md"]);
    assert_eq!(head["exists"], true);
    assert_eq!(head["metadata"]["etag"], got["metadata"]["etag"]);
    let missing = o.json(&["kv", "head", "notes/missing"]);
    assert_eq!(missing["exists"], false);

    let rm = o.json(&["kv", "rm", "notes/today.md"]);
    assert_eq!(
        rm,
        serde_json::json!({"key": "notes/today.md", "deleted": true, "etag": rm["etag"]})
    );
    o.tc(&["kv", "get", "notes/today.md"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not found"));
    assert_eq!(
        o.json_error(&["kv", "get", "notes/today.md"], 4)["code"],
        "NOT_FOUND"
    );
    o.tc(&["kv", "rm", "notes/today.md"]).assert().code(4);
}

#[test]
fn agent_gets_a_narrow_delegation_and_loses_it() {
    let node = serve();
    let o = owner(&node);
    o.ok(&["kv", "put", "notes/today.md", "hello agent"]);
    o.ok(&["kv", "put", "private/x", "secret value 42"]);

    let agent = Persona::new(&node);
    let out = agent.ok(&["init", "--session-only"]);
    let did = String::from_utf8(out).unwrap().trim().to_owned();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    // idempotent: the same key
    assert_eq!(
        String::from_utf8(agent.ok(&["init", "--session-only"]))
            .unwrap()
            .trim(),
        did
    );

    // Without --yes and without a terminal, nothing is signed.
    o.tc(&[
        "delegate",
        "create",
        "--to",
        &did,
        "--path",
        "notes/",
        "--actions",
        "get",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("Read files under notes/"));
    let deleg = o.file("deleg.json");
    o.tc(&[
        "delegate",
        "create",
        "--to",
        &did,
        "--path",
        "notes/",
        "--actions",
        "get",
        "--expiry",
        "1h",
        "-o",
    ])
    .arg(&deleg)
    .arg("--yes")
    .assert()
    .success()
    .stderr(predicate::str::contains("Read files under notes/"));
    let portable = parse(&std::fs::read(&deleg).unwrap());
    let cid = portable["cid"].as_str().unwrap().to_owned();
    assert_eq!(portable["delegateDID"], did.as_str());

    // Owner profiles cannot import; the agent can.
    o.tc(&["delegate", "use"]).arg(&deleg).assert().code(2);
    agent
        .tc(&["delegate", "use"])
        .arg(&deleg)
        .assert()
        .success();
    let status = agent.json(&["auth", "status"]);
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["posture"], "delegate-session");
    assert_eq!(status["sessionDid"], did.as_str());

    agent
        .tc(&["kv", "get", "notes/today.md"])
        .assert()
        .success()
        .stdout("hello agent");
    agent
        .tc(&["kv", "get", "private/x"])
        .assert()
        .code(5)
        .stderr(
            predicate::str::contains("tinycloud.kv/get")
                .and(predicate::str::contains(
                    "tc auth request --cap kv:private/x:get",
                ))
                .and(predicate::str::contains("secret value").not()),
        );
    agent
        .tc(&["kv", "put", "notes/x", "no"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.kv/put"));
    agent.tc(&["kv", "get", "notes/../secret"]).assert().code(2);

    // The owner sees and revokes it; the agent is cut off.
    let listed = o.json(&["delegate", "ls"]);
    let row = listed["delegations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cid"] == cid.as_str())
        .expect("delegation listed")
        .clone();
    assert_eq!(row["revoked"], false);
    assert_eq!(row["delegate"], did.as_str());
    assert_eq!(o.json(&["delegate", "revoke", &cid])["revoked"], true);
    agent
        .tc(&["kv", "get", "notes/today.md"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("revoked"));
    let listed = o.json(&["delegate", "ls"]);
    assert!(listed["delegations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["cid"] == cid.as_str() && d["revoked"] == true));
}

#[test]
fn request_grant_import() {
    let node = serve();
    let o = owner(&node);
    o.ok(&["kv", "put", "notes/today.md", "granted read"]);

    let agent = Persona::new(&node);
    agent.ok(&["init", "--session-only", "--name", "bot"]);
    let req = agent.file("req.json");
    agent
        .tc(&[
            "-p",
            "bot",
            "auth",
            "request",
            "--cap",
            "kv:notes/:get,list",
            "--expiry",
            "1h",
            "--emit",
        ])
        .arg(&req)
        .assert()
        .success();
    let request = parse(&std::fs::read(&req).unwrap());
    assert_eq!(request["kind"], "tinycloud.auth.request");
    assert_eq!(request["requested"][0]["path"], "notes/");
    // Before import the agent has no session: exit 3 with the way forward.
    agent
        .tc(&["-p", "bot", "kv", "get", "notes/today.md"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("tc auth request"));

    let grant = o.file("grant.json");
    o.tc(&["auth", "grant"])
        .arg(&req)
        .args(["--yes", "-o"])
        .arg(&grant)
        .assert()
        .success()
        .stderr(predicate::str::contains("Read and list files under notes/"));
    let artifact = parse(&std::fs::read(&grant).unwrap());
    assert_eq!(artifact["kind"], "tinycloud.auth.delegation");
    assert_eq!(artifact["requestId"], request["requestId"]);

    // A request is not a delegation.
    agent
        .tc(&["-p", "bot", "auth", "import"])
        .arg(&req)
        .assert()
        .code(2);
    let imported = agent.json(&["-p", "bot", "auth", "import", grant.to_str().unwrap()]);
    assert_eq!(imported["delegationCid"], artifact["delegationCid"]);
    agent
        .tc(&["-p", "bot", "kv", "get", "notes/today.md"])
        .assert()
        .success()
        .stdout("granted read");
    // With no prefix, the agent lists the path it was granted.
    assert_eq!(
        agent.json(&["-p", "bot", "kv", "ls"])["keys"],
        serde_json::json!(["notes/today.md"])
    );

    // The whole flow through pipes: request | grant | import.
    let request = agent.ok(&["-p", "bot", "auth", "request", "--cap", "kv:notes/:get"]);
    let artifact = o
        .tc(&["auth", "grant", "--yes"])
        .write_stdin(request)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    agent
        .tc(&["-p", "bot", "auth", "import", "-"])
        .write_stdin(artifact)
        .assert()
        .success();

    // Asking the owner for what the owner does not hold is refused with exit 5.
    let request = agent.ok(&["-p", "bot", "auth", "request", "--cap", "duckdb::read"]);
    o.tc(&["auth", "grant", "--yes"])
        .write_stdin(request)
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.duckdb/read"));
}

#[test]
fn status_exit_codes_completion_and_help() {
    let node = serve();
    let p = Persona::new(&node);
    let before = p.json(&["auth", "status"]);
    assert_eq!(before["authenticated"], false);
    assert_eq!(before["profile"], "default");
    p.tc(&["kv", "get", "a"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("tc auth login"));
    p.tc(&["auth", "login"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--generate"));

    p.json(&["auth", "login", "--generate"]);
    let after = p.json(&["auth", "status"]);
    assert_eq!(after["authenticated"], true);
    assert_eq!(after["posture"], "local-owner-key");
    for field in [
        "did",
        "sessionDid",
        "ownerDid",
        "spaceId",
        "host",
        "expiresAt",
    ] {
        assert!(after[field].is_string(), "{field}: {after}");
    }
    let profile = p.dir().join("state/profiles/default");
    #[cfg(unix)]
    for f in ["key.json", "owner.json", "session.json", "profile.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(profile.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // Logging in again reuses the stored owner key.
    let again = p.json(&["auth", "login"]);
    assert_eq!(again["did"], after["did"]);
    assert_eq!(again["ownerKey"], "profile");

    let out = p.json(&["auth", "logout"]);
    assert_eq!(
        out,
        serde_json::json!({"profile": "default", "authenticated": false})
    );
    assert!(!profile.join("session.json").exists());
    assert!(profile.join("key.json").exists() && profile.join("owner.json").exists());
    assert_eq!(p.json(&["auth", "status"])["authenticated"], false);
    let err = p.json_error(&["kv", "ls"], 3);
    assert_eq!(err["code"], "AUTH_REQUIRED");
    assert!(err["hint"].as_str().unwrap().contains("tc auth login"));

    // Usage errors are exit 2, in JSON too.
    p.tc(&["kv", "get"]).assert().code(2);
    p.tc(&["--bogus"]).assert().code(2);
    p.tc(&[
        "delegate",
        "create",
        "--to",
        "did:key:x",
        "--path",
        "a/",
        "--actions",
        "get",
        "--expiry",
        "soon",
    ])
    .assert()
    .code(2);
    assert_eq!(p.json_error(&["kv", "frobnicate"], 2)["code"], "USAGE");
    // Unreachable node: exit 6.
    Command::new(TC)
        .env_clear()
        .env("TC_HOME", p.dir().join("state"))
        .args(["--host", "http://127.0.0.1:9", "node", "info"])
        .assert()
        .code(6);
    assert_eq!(p.json(&["node", "info"])["protocol"], 1);

    p.tc(&["completion", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_tc()").and(predicate::str::contains("complete")));
    p.tc(&["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
    for cmd in [
        vec!["kv", "put", "--help"],
        vec!["delegate", "create", "--help"],
        vec!["auth", "request", "--help"],
        vec!["init", "--help"],
    ] {
        p.tc(&cmd)
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn sql_statements_tables_json_export_and_permissions() {
    let node = serve();
    let o = owner(&node);
    o.tc(&[
        "sql",
        "notes",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, title TEXT NOT NULL, stars REAL)",
    ])
    .assert()
    .success()
    .stdout("0 rows changed\n");
    o.tc(&[
        "sql",
        "notes",
        "INSERT INTO note (title, stars) VALUES (?, ?)",
    ])
    .args(["--params", r#"["hello", 4.5]"#])
    .assert()
    .success()
    .stdout("1 row changed, last insert id 1\n");
    let inserted = o.json(&[
        "sql",
        "notes",
        "insert into note (title) values (?)",
        "--params",
        r#"["two\nlines"]"#,
    ]);
    assert_eq!(
        inserted,
        serde_json::json!({"changes": 1, "lastInsertRowId": 2})
    );

    o.tc(&[
        "sql",
        "notes",
        "SELECT id, title, stars FROM note ORDER BY id",
    ])
    .assert()
    .success()
    .stdout(
        "id | title      | stars\n\
             ---+------------+------\n\
             \x201 | hello      |   4.5\n\
             \x202 | two\\nlines | NULL\n\
             (2 rows)\n",
    );
    let rows = o.json(&[
        "sql",
        "notes",
        "SELECT id, title FROM note WHERE id = ?",
        "--params",
        "[1]",
    ]);
    assert_eq!(
        rows,
        serde_json::json!({"columns": ["id", "title"], "rows": [[1, "hello"]], "rowCount": 1})
    );
    // A reporting PRAGMA runs as an admin statement and still prints its rows.
    let info = o.json(&["sql", "notes", "PRAGMA table_info(note)"]);
    assert_eq!(info["rowCount"], 3);

    // Bad SQL is exit 1 (SQL_ERROR); bad command lines are exit 2; a missing database 4.
    o.tc(&["sql", "notes", "SELECT * FROM nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such table"));
    assert_eq!(
        o.json_error(&["sql", "notes", "SELEC 1"], 1)["code"],
        "SQL_ERROR"
    );
    o.tc(&["sql", "notes", "SELECT ?", "--params", "{\"a\":1}"])
        .assert()
        .code(2);
    o.tc(&["sql", "../x", "SELECT 1"]).assert().code(2);
    o.tc(&["sql", "notes"]).assert().code(2);
    o.tc(&["sql", "notes", "SELECT 1", "--export", "x.db"])
        .assert()
        .code(2);
    o.tc(&["sql", "missing", "SELECT 1"]).assert().code(4);

    // Export: a binary SQLite file.
    o.tc(&["sql", "notes", "--export", "notes.db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("notes.db"));
    let file = std::fs::read(o.file("notes.db")).unwrap();
    assert!(file.starts_with(b"SQLite format 3\0"));

    // A delegate acts in the delegation's space, and only with what it was granted.
    let (kv_only, _) = delegate(&node, &o, "kv", "notes/", "get");
    kv_only
        .tc(&["sql", "notes", "SELECT * FROM note"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.sql/read"));
    let (reader, _) = delegate(&node, &o, "sql", "notes", "read");
    assert_eq!(
        reader.json(&["sql", "notes", "SELECT count(*) AS n FROM note"])["rows"],
        serde_json::json!([[2]])
    );
    reader
        .tc(&["sql", "notes", "DELETE FROM note"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.sql/write"));

    o.tc(&["sql", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:").and(predicate::str::contains("--export")));
}

#[test]
fn watch_prints_writes_as_they_happen() {
    let node = serve();
    let o = owner(&node);

    // JSON lines, from the start of the log (so nothing depends on when it connects).
    let watch = o.spawn(&[
        "--json", "watch", "kv/notes", "--count", "2", "--since", "0",
    ]);
    o.ok(&["kv", "put", "notes/a", "1"]);
    o.ok(&["kv", "put", "other/x", "1"]);
    o.ok(&["kv", "put", "notes/b", "2"]);
    let (code, out, err) = finish(watch, 20);
    assert_eq!(code, Some(0), "{err}");
    let events: Vec<Value> = out.lines().map(|l| parse(l.as_bytes())).collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["type"], "write");
    assert_eq!(events[0]["path"], "notes/a");
    assert_eq!(events[0]["ability"], "tinycloud.kv/put");
    assert_eq!(events[1]["path"], "notes/b");
    assert_eq!(
        events[1]["seq"].as_u64().unwrap(),
        events[0]["seq"].as_u64().unwrap() + 2
    );

    // Live, human lines: write once the watcher says it is watching.
    let mut watch = o.spawn(&["watch", "kv/notes", "--count", "1"]);
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Watching") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "tc watch exited");
    }
    o.ok(&["kv", "put", "notes/c", "3"]);
    let (code, out, _) = finish(watch, 20);
    assert_eq!(code, Some(0));
    let fields: Vec<&str> = out.trim().split(' ').collect();
    assert_eq!(fields.len(), 5, "{out}");
    assert!(fields[0].parse::<u64>().is_ok(), "{out}");
    assert!(fields[2].starts_with("did:"), "{out}");
    assert_eq!(&fields[3..], ["tinycloud.kv/put", "notes/c"]);

    // A delegate without a hooks grant is refused; one with it is cut off on revocation.
    let (kv_only, _) = delegate(&node, &o, "kv", "notes/", "get");
    kv_only
        .tc(&["watch", "kv/notes"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.hooks/subscribe"));
    let (watcher, cid) = delegate(&node, &o, "hooks", "kv/notes", "subscribe");
    watcher.tc(&["watch", "kv"]).assert().code(5);
    let mut watch = watcher.spawn(&["watch", "kv/notes"]);
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Watching") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "tc watch exited");
    }
    o.ok(&["delegate", "revoke", &cid]);
    let (code, _, _) = finish(watch, 20);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("revoked"),
        "{err}"
    );

    o.tc(&["watch", "files/x"]).assert().code(2);
    o.tc(&["watch", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
}

mod secrets;

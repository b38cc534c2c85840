//! `tc secrets`: put, get, rotate, run, rm; sharing with agents, audit and revocation.

use super::*;

#[test]
fn owner_secrets_put_get_rotate_run_rm() {
    let node = serve();
    let o = owner(&node);
    // First put creates the `secrets` space and the network.
    let put = o
        .tc(&["--json", "secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-123")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        parse(&put),
        serde_json::json!({"name": "API_KEY", "version": 1, "written": true})
    );
    o.tc(&["secrets", "get", "API_KEY", "--raw"])
        .assert()
        .success()
        .stdout("sk-123");
    o.tc(&["secrets", "get", "API_KEY"])
        .assert()
        .success()
        .stdout("sk-123\n");
    assert_eq!(
        o.json(&["secrets", "get", "API_KEY"]),
        serde_json::json!({"name": "API_KEY", "value": "sk-123"})
    );
    // Piped stdin without --stdin; one trailing newline removed; scopes are separate.
    o.tc(&["secrets", "put", "DB_URL", "--scope", "Prod App"])
        .write_stdin("postgres://db\n")
        .assert()
        .success();
    assert_eq!(
        o.json(&["secrets", "get", "DB_URL", "--scope", "prod-app"])["value"],
        "postgres://db"
    );
    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["secrets"], serde_json::json!(["API_KEY"]));
    assert_eq!(ls["count"], 1);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "owner");
    o.tc(&["secrets", "ls", "--scope", "prod-app"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("DB_URL  v1  written by owner"));

    // Never from argv, never an empty value, never an invalid name (none echoed back).
    o.tc(&["secrets", "put", "API_KEY", "sk-leaked"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("not accepted as arguments")
                .and(predicate::str::contains("sk-leaked").not()),
        );
    o.tc(&["secrets", "put", "API_KEY", "--stdin", "sk-leaked"])
        .assert()
        .code(2);
    o.tc(&["secrets", "put", "API_KEY"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty"));
    o.tc(&["secrets", "put", "sk-oops"])
        .write_stdin("x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sk-oops").not());
    assert_eq!(
        o.json(&["secrets", "get", "API_KEY"])["value"],
        "sk-123",
        "refused puts changed nothing"
    );

    // run: values only in the child's environment; exit codes propagate.
    let run = o
        .tc(&[
            "secrets",
            "run",
            "--",
            "sh",
            "-c",
            r#"test "$API_KEY" = "sk-123" && test -z "$DB_URL" && echo OK"#,
        ])
        .assert()
        .success()
        .stdout("OK\n")
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&run.stderr).contains("sk-123"));
    o.tc(&["secrets", "run", "--", "sh", "-c", "exit 3"])
        .assert()
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains("sk-123").not());
    o.tc(&[
        "secrets", "run", "--scope", "prod-app", "--only", "DB_URL", "--",
    ])
    .args([
        "sh",
        "-c",
        r#"test "$DB_URL" = "postgres://db" && echo scoped"#,
    ])
    .assert()
    .success()
    .stdout("scoped\n");
    o.tc(&["secrets", "run", "--only", "MISSING", "--", "true"])
        .assert()
        .code(4);
    o.tc(&["secrets", "run", "--", "/nonexistent/command"])
        .assert()
        .code(127);
    o.tc(&["secrets", "run", "sh"]).assert().code(2);
    let leaks = files_containing(&o.dir().join("state"), "sk-123");
    assert!(leaks.is_empty(), "secret value on disk: {leaks:?}");

    // rotate keeps the previous version; info shows no value.
    let rotated = o
        .tc(&["--json", "secrets", "rotate", "API_KEY"])
        .write_stdin("sk-456\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(parse(&rotated)["version"], 2);
    o.tc(&["secrets", "get", "API_KEY", "--raw"])
        .assert()
        .stdout("sk-456");
    let info = o.json(&["secrets", "info", "API_KEY"]);
    assert_eq!(info["version"], 2);
    assert!(info["createdAt"].is_string() && info["updatedAt"].is_string());
    assert!(!info.to_string().contains("sk-456"));
    o.tc(&["secrets", "rotate", "NOPE", "--stdin"])
        .write_stdin("x")
        .assert()
        .code(4);

    assert_eq!(
        o.json(&["secrets", "rm", "API_KEY"]),
        serde_json::json!({"name": "API_KEY", "deleted": true})
    );
    o.tc(&["secrets", "get", "API_KEY"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(r#"Secret "API_KEY" not found"#));

    for cmd in [
        "put", "get", "ls", "rm", "rotate", "info", "grant", "revoke", "audit", "run",
    ] {
        o.tc(&["secrets", cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn secrets_shared_with_agents_audited_and_revoked() {
    let node = serve();
    let o = owner(&node);
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-shared-9")
        .assert()
        .success();
    o.tc(&["secrets", "put", "OTHER", "--stdin"])
        .write_stdin("sk-other")
        .assert()
        .success();

    let agent = Persona::new(&node);
    let did = String::from_utf8(agent.ok(&["init", "--session-only"]))
        .unwrap()
        .trim()
        .to_owned();
    // Before importing a grant: sign-in required.
    agent.tc(&["secrets", "get", "API_KEY"]).assert().code(3);

    // Shown in plain language; without --yes and a terminal nothing is signed.
    let grant = o.file("grant.json");
    o.tc(&["secrets", "grant", "API_KEY", "--to", &did, "--for", "1h"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Decrypt data protected by"));
    assert!(!grant.exists());
    o.tc(&[
        "secrets", "grant", "API_KEY", "--to", &did, "--for", "1h", "-o",
    ])
    .arg(&grant)
    .arg("--yes")
    .assert()
    .success()
    .stderr(
        predicate::str::contains("vault/secrets/API_KEY")
            .and(predicate::str::contains("Decrypt data protected by")),
    );
    let portable = parse(&std::fs::read(&grant).unwrap());
    let cid = portable["cid"].as_str().unwrap().to_owned();
    assert_eq!(portable["delegateDID"], did.as_str());

    agent
        .tc(&["delegate", "use"])
        .arg(&grant)
        .assert()
        .success();
    agent
        .tc(&["secrets", "get", "API_KEY", "--raw"])
        .assert()
        .success()
        .stdout("sk-shared-9");
    // Delegates read; only the owner writes.
    agent
        .tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only the owner"));
    let ls = agent.json(&["secrets", "ls"]);
    assert_eq!(ls["secrets"], serde_json::json!(["API_KEY"]));
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "owner");
    // Only what was granted.
    agent
        .tc(&["secrets", "get", "OTHER"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("tinycloud.kv/get"));
    agent
        .tc(&["secrets", "run", "--"])
        .args([
            "sh",
            "-c",
            r#"test "$API_KEY" = "sk-shared-9" && test -z "$OTHER" && echo OK"#,
        ])
        .assert()
        .success()
        .stdout("OK\n")
        .stderr(predicate::str::contains("sk-shared-9").not());
    assert!(files_containing(&agent.dir().join("state"), "sk-shared-9").is_empty());
    // While the child runs, no command line in the process table (its own, its `tc` parent's,
    // anyone's) carries the value.
    let table = agent.file("process-table.bin");
    agent
        .tc(&["secrets", "run", "--", "sh", "-c"])
        .arg(r#"cat /proc/[0-9]*/cmdline > "$0" 2>/dev/null; test -s "$0""#)
        .arg(&table)
        .assert()
        .success();
    let dump = std::fs::read(&table).unwrap();
    let has = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"secrets\0run\0"),
        "the dump must include tc's own command line"
    );
    assert!(
        !has(b"sk-shared-9"),
        "secret value found in the process table"
    );

    // The owner sees the agent's decrypt in the audit trail.
    let audit = o.json(&["secrets", "audit"]);
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == did.as_str() && r["outcome"] == "allowed"),
        "{audit}"
    );
    // Per secret: only that secret's decrypts; the agent never touched OTHER.
    let of_key = o.json(&["secrets", "audit", "API_KEY"]);
    let of_key = of_key["records"].as_array().unwrap();
    assert!(of_key
        .iter()
        .any(|r| r["actor"] == did.as_str() && r["outcome"] == "allowed"));
    assert!(of_key.len() <= audit["records"].as_array().unwrap().len());
    let of_other = o.json(&["secrets", "audit", "OTHER"]);
    assert!(
        !of_other["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == did.as_str()),
        "{of_other}"
    );
    o.tc(&["secrets", "audit", "NO_SUCH_SECRET"])
        .assert()
        .code(4);

    // A delegate holding only the KV read grant gets exit 5 naming the missing decrypt.
    let reader = Persona::new(&node);
    let reader_did = String::from_utf8(reader.ok(&["init", "--session-only"])).unwrap();
    let kv_only = o.file("kv-only.json");
    o.tc(&[
        "delegate",
        "create",
        "--to",
        reader_did.trim(),
        "--space",
        "secrets",
        "--path",
        "vault/secrets/API_KEY",
        "--actions",
        "get",
        "--yes",
        "-o",
    ])
    .arg(&kv_only)
    .assert()
    .success();
    reader
        .tc(&["delegate", "use"])
        .arg(&kv_only)
        .assert()
        .success();
    reader
        .tc(&["secrets", "get", "API_KEY"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(
            predicate::str::contains("tinycloud.encryption/decrypt")
                .and(predicate::str::contains("API_KEY"))
                .and(predicate::str::contains("sk-shared-9").not()),
        );

    // Revoked: the agent is cut off.
    assert_eq!(o.json(&["secrets", "revoke", &cid])["revoked"], true);
    agent
        .tc(&["secrets", "get", "API_KEY"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("sk-shared-9").not());
}

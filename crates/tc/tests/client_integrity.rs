//! End-to-end checks of what `tc` believes and writes: owner signatures whose proof is
//! revoked or expired, rolled-back secrets, downloads through planted symlinks, complete audit
//! trails, and machine-readable `secrets run` reports.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn kv_get_to_a_file_never_follows_a_planted_symlink() {
    use std::os::unix::fs::PermissionsExt as _;
    let node = serve();
    let o = owner(&node);
    let value = o.file("value.bin");
    std::fs::write(&value, b"fresh bytes").unwrap();
    o.tc(&["kv", "put", "blob", "--file"])
        .arg(&value)
        .assert()
        .success();

    let out = o.file("out");
    std::fs::create_dir(&out).unwrap();
    let victim = o.file("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Links at every temporary name a writer might predict, and at the target itself.
    let target = out.join("copy.bin");
    for name in ["copy.tmp", "copy.bin.tmp", ".copy.bin.tmp", "copy.bin"] {
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
    }
    o.tc(&["kv", "get", "blob", "-o"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let meta = std::fs::symlink_metadata(&victim).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link at the target is replaced"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&target).unwrap(), b"fresh bytes");
    // Nothing else was created: the planted links stay links, no temporary file is left.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".copy.bin.tmp", "copy.bin", "copy.bin.tmp", "copy.tmp"]
    );
    for link in ["copy.tmp", "copy.bin.tmp", ".copy.bin.tmp"] {
        assert!(std::fs::symlink_metadata(out.join(link))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // A missing key leaves an existing file as it was.
    o.tc(&["kv", "get", "missing", "-o"])
        .arg(&target)
        .assert()
        .code(4);
    assert_eq!(std::fs::read(&target).unwrap(), b"fresh bytes");
}

/// The CID of the sign-in `p`'s profile currently acts under.
fn session_cid(p: &Persona) -> String {
    let session =
        parse(&std::fs::read(p.dir().join("state/profiles/default/session.json")).unwrap());
    session["tinycloudSession"]["delegationCid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The one JSON object `tc --json secrets run` reports on stderr.
fn run_report(stderr: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains("secretsRun"))
        .unwrap_or_else(|| panic!("no report: {text}"));
    assert_eq!(text.trim(), line, "only the report on stderr: {text}");
    parse(line.as_bytes())["secretsRun"].clone()
}

/// "Written by the owner" means: by one of this profile's own login keys. A later login of the
/// same profile still counts its earlier logins' writes as the owner's; another profile (another
/// device) holding the same owner key does not know those keys: its `run` leaves them out
/// unless named.
#[test]
fn only_this_profiles_own_login_keys_write_as_the_owner() {
    let node = serve();
    let o = owner(&node);
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-first-login")
        .assert()
        .success();
    let first = parse(&std::fs::read(o.dir().join("state/profiles/default/profile.json")).unwrap())
        ["sessionDid"]
        .clone();
    o.tc(&["auth", "login"]).assert().success();
    let profile =
        parse(&std::fs::read(o.dir().join("state/profiles/default/profile.json")).unwrap());
    assert_ne!(profile["sessionDid"], first);
    assert_eq!(
        profile["ownerSessionDids"],
        json!([first, profile["sessionDid"]])
    );
    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "owner", "{ls}");

    // Another device: the same owner key, its own profile.
    let owner_key =
        parse(&std::fs::read(o.dir().join("state/profiles/default/owner.json")).unwrap());
    let key_file = o.file("owner.hex");
    std::fs::write(&key_file, owner_key["privateKey"].as_str().unwrap()).unwrap();
    o.tc(&["-p", "laptop", "auth", "login", "--key-file"])
        .arg(&key_file)
        .assert()
        .success();
    let ls = o.json(&["-p", "laptop", "secrets", "ls"]);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "other", "{ls}");
    assert_eq!(ls["writers"]["API_KEY"]["did"], first, "{ls}");
    let out = o
        .tc(&["-p", "laptop", "--json", "secrets", "run", "--", "sh", "-c"])
        .arg(r#"test -z "${API_KEY+x}" && echo CLEAN"#)
        .assert()
        .success()
        .stdout("CLEAN\n")
        .get_output()
        .stderr
        .clone();
    assert_eq!(run_report(&out)["skipped"][0]["reason"], "not-owner");
    o.tc(&[
        "-p", "laptop", "secrets", "run", "--only", "API_KEY", "--", "sh", "-c",
    ])
    .arg(r#"test "$API_KEY" = sk-first-login && echo NAMED"#)
    .assert()
    .success()
    .stdout("NAMED\n");
}

#[test]
fn a_revoked_owner_session_no_longer_writes_as_the_owner() {
    let node = serve();
    let o = owner(&node);
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-old-session")
        .assert()
        .success();
    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "owner", "{ls}");
    assert_eq!(ls["versions"]["API_KEY"], 1, "{ls}");
    o.tc(&["secrets", "ls"])
        .assert()
        .success()
        .stdout(predicates::str::contains("API_KEY  v1  written by owner"));

    // The owner signs in again and revokes the old session (its key may have leaked).
    let old = session_cid(&o);
    o.tc(&["auth", "login"]).assert().success();
    assert_ne!(session_cid(&o), old);
    o.tc(&["delegate", "revoke", &old]).assert().success();

    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "revoked", "{ls}");
    o.tc(&["secrets", "info", "API_KEY"])
        .assert()
        .success()
        .stdout(predicates::str::contains("REVOKED owner session"));
    // `run` leaves it out, and with --json says so in one JSON object on stderr.
    let out = o
        .tc(&["--json", "secrets", "run", "--", "sh", "-c"])
        .arg(r#"test -z "${API_KEY+x}" && echo CLEAN"#)
        .assert()
        .success()
        .stdout("CLEAN\n")
        .get_output()
        .stderr
        .clone();
    let report = run_report(&out);
    assert_eq!(report["injected"], json!([]), "{report}");
    assert_eq!(report["skipped"][0]["name"], "API_KEY", "{report}");
    assert_eq!(report["skipped"][0]["reason"], "not-owner", "{report}");
    assert!(report["skipped"][0]["message"]
        .as_str()
        .unwrap()
        .contains("REVOKED"));
    // --quiet hides it.
    o.tc(&["--json", "--quiet", "secrets", "run", "--", "true"])
        .assert()
        .success()
        .stderr("");
    // Named, it is injected with a warning (in the report's warnings).
    let out = o
        .tc(&[
            "--json", "secrets", "run", "--only", "API_KEY", "--", "sh", "-c",
        ])
        .arg(r#"test "$API_KEY" = sk-old-session && echo NAMED"#)
        .assert()
        .success()
        .stdout("NAMED\n")
        .get_output()
        .stderr
        .clone();
    let report = run_report(&out);
    assert_eq!(report["injected"], json!(["API_KEY"]), "{report}");
    assert_eq!(report["warnings"][0]["name"], "API_KEY", "{report}");

    // Stored again by the current session: the owner's, injected.
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-new")
        .assert()
        .success();
    let out = o
        .tc(&["--json", "secrets", "run", "--", "sh", "-c"])
        .arg(r#"test "$API_KEY" = sk-new && echo OK"#)
        .assert()
        .success()
        .stdout("OK\n")
        .get_output()
        .stderr
        .clone();
    let report = run_report(&out);
    assert_eq!(report["injected"], json!(["API_KEY"]), "{report}");
    assert_eq!(report["skipped"], json!([]), "{report}");
}

#[test]
fn a_co_writer_cannot_roll_a_secret_back() {
    let node = serve();
    let o = owner(&node);
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-1")
        .assert()
        .success();
    // A delegate that may read and write the vault's envelopes (not decrypt them).
    let co = Persona::new(&node);
    let co_did = String::from_utf8(co.ok(&["init", "--session-only"])).unwrap();
    let grant = o.file("co.json");
    o.tc(&[
        "delegate",
        "create",
        "--to",
        co_did.trim(),
        "--space",
        "secrets",
        "--path",
        "vault/secrets/",
        "--actions",
        "get,put",
        "--yes",
        "-o",
    ])
    .arg(&grant)
    .assert()
    .success();
    co.tc(&["delegate", "use"]).arg(&grant).assert().success();
    let saved = co.file("v1.json");
    co.tc(&["kv", "get", "vault/secrets/API_KEY", "-o"])
        .arg(&saved)
        .assert()
        .success();

    o.tc(&["secrets", "rotate", "API_KEY", "--stdin"])
        .write_stdin("sk-2")
        .assert()
        .success();
    // Version 1, owner-signed, stored again over version 2.
    co.tc(&["kv", "put", "vault/secrets/API_KEY", "--file"])
        .arg(&saved)
        .assert()
        .success();

    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["versions"]["API_KEY"], 1, "{ls}");
    let err = o.json_error(&["secrets", "get", "API_KEY"], 1);
    assert_eq!(err["code"], "ROLLED_BACK", "{err}");
    assert!(err["message"].as_str().unwrap().contains("rolled back"));
    // `run` never injects it: named, the run fails; otherwise it is left out, saying why.
    o.tc(&["secrets", "run", "--only", "API_KEY", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("rolled back"));
    let out = o
        .tc(&["--json", "secrets", "run", "--", "sh", "-c"])
        .arg(r#"test -z "${API_KEY+x}" && echo CLEAN"#)
        .assert()
        .success()
        .stdout("CLEAN\n")
        .get_output()
        .stderr
        .clone();
    let report = run_report(&out);
    assert_eq!(report["skipped"][0]["reason"], "rolled-back", "{report}");
    o.tc(&["secrets", "run", "--", "true"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "\"API_KEY\" not injected: secret API_KEY was rolled back",
        ));
    // The owner stores it again: above every kept version, and readable.
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-3")
        .assert()
        .success();
    assert_eq!(o.json(&["secrets", "info", "API_KEY"])["version"], 3);
    o.tc(&["secrets", "get", "API_KEY"])
        .assert()
        .success()
        .stdout("sk-3\n");
}

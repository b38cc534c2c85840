//! End-to-end attacks on `tc` itself: a co-writer planting secrets, hostile files, a hostile
//! node (a small server in the test that stalls, floods or claims another identity).

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::{json, Value};
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_sdk::encryption::Envelope;
use tinycloud_sdk::session::Jwk;

/// The owner's DID, from `tc auth status`.
fn did_of(p: &Persona) -> Did {
    p.json(&["auth", "status"])["did"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// An envelope for `vault/secrets/<name>` of `owner`, sealed to the owner's network as anyone
/// can (its public key is public): what a write-only co-writer is able to store.
fn planted_envelope(node: &Node, owner: &Did, name: &str, value: &str) -> Envelope {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client =
        tinycloud_sdk::TinyCloud::new(tinycloud_sdk::Config::new(node.url.clone())).unwrap();
    let id = NetworkId::new(owner.clone(), "default").unwrap();
    let network = rt.block_on(client.network(&id)).unwrap().expect("network");
    let space = SpaceId::new(owner.clone(), "secrets").unwrap();
    let path = format!("vault/secrets/{name}");
    let payload = json!({
        "value": value, "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00Z", "version": 7,
    });
    Envelope::seal(
        &network,
        payload.to_string().as_bytes(),
        &tinycloud_sdk::secrets::aad(&space, &path),
        Default::default(),
    )
}

/// Stores `env` at `vault/secrets/<name>` with the co-writer's `tc kv put`.
fn plant(writer: &Persona, name: &str, env: &Envelope) {
    let file = writer.file(&format!("{name}.json"));
    std::fs::write(&file, serde_json::to_vec(env).unwrap()).unwrap();
    writer
        .tc(&["kv", "put", &format!("vault/secrets/{name}"), "--file"])
        .arg(&file)
        .assert()
        .success();
}

#[test]
fn a_write_only_co_writer_cannot_add_variables_to_the_owners_run() {
    let node = serve();
    let o = owner(&node);
    let owner_did = did_of(&o);
    o.tc(&["secrets", "put", "API_KEY", "--stdin"])
        .write_stdin("sk-owner")
        .assert()
        .success();

    // Names that change how programs run are refused when storing; nothing is stored.
    for name in [
        "PATH",
        "LD_PRELOAD",
        "BASH_ENV",
        "NODE_OPTIONS",
        "PYTHONPATH",
    ] {
        o.tc(&["secrets", "put", name, "--stdin"])
            .write_stdin("/tmp/evil")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("changes how programs run"));
    }
    // A value an environment cannot carry is refused too.
    o.tc(&["secrets", "put", "BINARY", "--stdin"])
        .write_stdin("a\0b")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NUL"));

    // A delegate that may only write the vault (no read, no decrypt).
    let co = Persona::new(&node);
    let co_did = String::from_utf8(co.ok(&["init", "--session-only"])).unwrap();
    let grant = o.file("co-writer.json");
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
        "put",
        "--yes",
        "-o",
    ])
    .arg(&grant)
    .assert()
    .success();
    co.tc(&["delegate", "use"]).arg(&grant).assert().success();

    plant(
        &co,
        "LD_PRELOAD",
        &planted_envelope(&node, &owner_did, "LD_PRELOAD", "/tmp/evil.so"),
    );
    plant(
        &co,
        "EXTRA",
        &planted_envelope(&node, &owner_did, "EXTRA", "planted"),
    );
    plant(
        &co,
        "NULLY",
        &planted_envelope(&node, &owner_did, "NULLY", "a\0b"),
    );
    // Signed with the co-writer's own key but claiming the owner's sign-in as proof.
    let owner_session: Value =
        parse(&std::fs::read(o.dir().join("state/profiles/default/session.json")).unwrap());
    let owner_proof = owner_session["tinycloudSession"]["delegationHeader"]["Authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    let co_key: Jwk = serde_json::from_slice(
        &std::fs::read(co.dir().join("state/profiles/default/key.json")).unwrap(),
    )
    .unwrap();
    let mut forged = planted_envelope(&node, &owner_did, "FORGED", "planted");
    forged.sign_writer(&co_key.secret_key().unwrap(), Some(owner_proof));
    plant(&co, "FORGED", &forged);

    // `ls` shows who wrote what.
    let ls = o.json(&["secrets", "ls"]);
    assert_eq!(ls["writers"]["API_KEY"]["kind"], "owner", "{ls}");
    assert_eq!(ls["writers"]["API_KEY"]["did"], owner_did.to_string());
    assert_eq!(ls["writers"]["EXTRA"]["kind"], "unsigned", "{ls}");
    assert_eq!(ls["writers"]["FORGED"]["kind"], "invalid", "{ls}");
    o.tc(&["secrets", "ls"]).assert().success().stdout(
        // Aligned columns: the spacing between them depends on the longest name.
        predicate::str::is_match(r"(?m)^API_KEY +v1  written by owner")
            .unwrap()
            .and(predicate::str::is_match(r"(?m)^EXTRA +v\?  written by unknown").unwrap())
            .and(predicate::str::is_match(r"(?m)^LD_PRELOAD +v\?  written by unknown").unwrap()),
    );

    // The owner's plain `run` loads only what the owner wrote, and says what it left out.
    o.tc(&["secrets", "run", "--", "sh", "-c"])
        .arg(r#"test "$API_KEY" = sk-owner && test -z "${LD_PRELOAD+x}" && test -z "${EXTRA+x}" && test -z "${FORGED+x}" && test -z "${NULLY+x}" && echo CLEAN"#)
        .assert()
        .success()
        .stdout("CLEAN\n")
        .stderr(
            predicate::str::contains("Running with 1 secret in the environment: API_KEY")
                .and(predicate::str::contains("\"LD_PRELOAD\" not injected"))
                .and(predicate::str::contains("\"EXTRA\" not injected"))
                .and(predicate::str::contains("planted").not()),
        );
    // Naming a deny-listed secret is refused outright; naming another writer's secret loads it
    // with a warning; a NUL value is skipped by name while the rest still runs.
    o.tc(&["secrets", "run", "--only", "LD_PRELOAD", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("changes how programs run"));
    o.tc(&["secrets", "run", "--only", "EXTRA,NULLY,API_KEY", "--", "sh", "-c"])
        .arg(r#"test "$EXTRA" = planted && test "$API_KEY" = sk-owner && test -z "${NULLY+x}" && echo NAMED"#)
        .assert()
        .success()
        .stdout("NAMED\n")
        .stderr(
            predicate::str::contains("\"EXTRA\" is written by unknown")
                .and(predicate::str::contains("\"NULLY\" not injected: its value contains a NUL byte")),
        );
    // An env file of names works the same way.
    let names = o.file("names.env");
    std::fs::write(&names, "# what deploy needs\nAPI_KEY\n\n").unwrap();
    o.tc(&["secrets", "run", "--env-file"])
        .arg(&names)
        .args([
            "--",
            "sh",
            "-c",
            r#"test "$API_KEY" = sk-owner && test -z "${EXTRA+x}" && echo FILE"#,
        ])
        .assert()
        .success()
        .stdout("FILE\n");
    // The planted name can be removed.
    o.tc(&["secrets", "rm", "LD_PRELOAD"]).assert().success();
}

/// `tc` for `p`'s state but another node URL.
fn tc_at(p: &Persona, host: &str, args: &[&str]) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(TC);
    c.env_clear()
        .env("TC_HOME", p.dir().join("state"))
        .env("HOME", p.dir())
        .current_dir(p.dir())
        .args(["--host", host])
        .args(args);
    c
}

/// A hostile node: answers every request the way `mode` says. Returns its URL.
fn hostile_node(mode: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body_of = |status: &str, body: &str| {
                    format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                };
                match mode {
                    "other-did" if request.starts_with("GET /info") => {
                        let other = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
                        let body = format!(
                            r#"{{"protocol":1,"version":"evil","nodeId":"{other}","features":[]}}"#
                        );
                        let _ = s.write_all(body_of("200 OK", &body).as_bytes());
                    }
                    "stall" => std::thread::sleep(std::time::Duration::from_secs(600)),
                    "flood-json" | "flood-error" => {
                        let status = if mode == "flood-json" {
                            "200 OK"
                        } else {
                            "500 Internal Server Error"
                        };
                        let head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[\"");
                        if s.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        let chunk = vec![b'a'; 64 * 1024];
                        while s.write_all(&chunk).is_ok() {}
                    }
                    "bad-keys" => {
                        let body = r#"["notes/\u202egnp.exe","fake\r\nline","\u001b[2Jcleared"]"#;
                        let _ = s.write_all(body_of("200 OK", body).as_bytes());
                    }
                    _ => {
                        let _ = s.write_all(body_of("500 Internal Server Error", "no").as_bytes());
                    }
                }
            });
        }
    });
    url
}

#[test]
fn a_hostile_node_is_refused_timed_out_and_capped() {
    let node = serve();
    let o = owner(&node);
    let status = o.json(&["auth", "status"]);
    assert!(status["did"].is_string());
    let pinned =
        parse(&std::fs::read(o.dir().join("state/profiles/default/profile.json")).unwrap())
            ["nodeDid"]
            .as_str()
            .expect("node DID pinned at sign-in")
            .to_owned();
    assert_eq!(o.json(&["node", "info"])["nodeId"], pinned.as_str());

    // Another identity behind the same profile: refused, by name.
    let impostor = hostile_node("other-did");
    let start = std::time::Instant::now();
    tc_at(&o, &impostor, &["secrets", "audit"])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("is pinned for it").and(predicate::str::contains(&pinned)),
        );
    tc_at(&o, &impostor, &["auth", "login"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("tc auth pin-node"));
    // A silent node: the overall timeout ends the request.
    let silent = hostile_node("stall");
    tc_at(&o, &silent, &["--timeout", "2s", "kv", "ls"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(6)
        .stderr(predicate::str::contains("timed out"));
    tc_at(&o, &silent, &["--read-timeout", "2s", "kv", "get", "x"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(6);
    // Endless bodies: refused at the cap, quickly; the error text stays short.
    let flood = hostile_node("flood-json");
    tc_at(&o, &flood, &["kv", "ls"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(7)
        .stderr(predicate::str::contains("exceeds"));
    let flood = hostile_node("flood-error");
    let out = tc_at(&o, &flood, &["kv", "ls"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(7)
        .get_output()
        .stderr
        .clone();
    assert!(out.len() < 8 * 1024, "error output of {} bytes", out.len());
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    // Keys with bidi overrides, CR/LF and escape sequences are printed escaped.
    let liar = hostile_node("bad-keys");
    let out = tc_at(&o, &liar, &["kv", "ls"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "notes/\\u{202e}gnp.exe\nfake\\r\\nline\n\\u{1b}[2Jcleared\n"
    );
    let json = tc_at(&o, &liar, &["--json", "kv", "ls"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(!json.iter().any(|b| *b == 0x1b || *b == b'\r'));
    assert!(String::from_utf8(json).unwrap().contains("\\u202e"));

    // Re-pinning is explicit.
    tc_at(&o, &impostor, &["auth", "pin-node", "--yes"])
        .assert()
        .success();
    assert_ne!(
        parse(&std::fs::read(o.dir().join("state/profiles/default/profile.json")).unwrap())
            ["nodeDid"],
        pinned.as_str()
    );
}

#[test]
fn hostile_files_are_escaped_refused_and_never_followed() {
    let node = serve();
    let o = owner(&node);
    let agent = Persona::new(&node);
    let did = String::from_utf8(agent.ok(&["init", "--session-only"])).unwrap();
    let did = did.trim();

    // A request whose labels try to paint over the consent text.
    let req = o.file("req.json");
    let request = json!({
        "kind": "tinycloud.auth.request", "version": 1,
        "requestId": "r1\u{1b}]0;owned\u{7}",
        "createdAt": "2024-01-01T00:00:00Z", "profile": "agent\r\nSign this delegation? [y/N] y",
        "host": "https://ok.example\u{1b}[8m\u{1b}[30;40m",
        "sessionDid": did,
        "requested": [{"service": "kv", "path": "", "actions": ["tinycloud.kv/del"]}],
    });
    std::fs::write(&req, request.to_string()).unwrap();
    let err = o
        .tc(&["auth", "grant"])
        .arg(&req)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(err).unwrap();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r') && !err.contains('\u{7}'),
        "{err:?}"
    );
    assert!(err.contains("https://ok.example\\u{1b}[8m"), "{err}");
    assert!(err.contains("agent\\r\\nSign this delegation?"), "{err}");
    let consent = err.find("What you sign").expect("consent header");
    assert!(err[consent..].contains("Delete"), "{err}");
    assert!(err.find("ok.example").unwrap() < consent);

    // -o never writes through a planted symlink at the old temporary name.
    let out_dir = o.file("out");
    std::fs::create_dir(&out_dir).unwrap();
    let victim = o.file("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, out_dir.join("agent.tmp")).unwrap();
    let target = out_dir.join("agent.json");
    o.tc(&[
        "delegate",
        "create",
        "--to",
        did,
        "--path",
        "notes/",
        "--actions",
        "get",
        "--yes",
        "-o",
    ])
    .arg(&target)
    .assert()
    .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // A symlink at the target itself is replaced, not followed.
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    o.tc(&[
        "delegate",
        "create",
        "--to",
        did,
        "--path",
        "notes/",
        "--actions",
        "get",
        "--yes",
        "-o",
    ])
    .arg(&target)
    .assert()
    .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");

    // Unsigned fields that disagree with the signed token are refused.
    let portable: Value = parse(&std::fs::read(&target).unwrap());
    let other_owner = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
    for (field, value) in [
        ("ownerAddress", json!(other_owner)),
        (
            "spaceId",
            json!(format!("tinycloud:pkh:eip155:1:{other_owner}:default")),
        ),
        (
            "delegatorDID",
            json!("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
        ),
    ] {
        let mut forged = portable.clone();
        forged[field] = value;
        let f = agent.file("forged.json");
        std::fs::write(&f, forged.to_string()).unwrap();
        agent
            .tc(&["auth", "import"])
            .arg(&f)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "does not match the signed delegation",
            ));
    }
    agent
        .tc(&["auth", "import"])
        .arg(&target)
        .assert()
        .success();
    let status = agent.json(&["auth", "status"]);
    assert_eq!(status["ownerDid"], o.json(&["auth", "status"])["did"]);

    // Oversized inputs are refused before they are read.
    let huge = agent.file("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 * 1024 * 1024)
        .unwrap();
    let start = std::time::Instant::now();
    agent
        .tc(&["auth", "import"])
        .arg(&huge)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than"));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    agent
        .tc(&["auth", "import", "-"])
        .write_stdin(vec![b' '; 2 * 1024 * 1024])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than"));
}

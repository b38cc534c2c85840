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
    let node = Node::start();
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
        predicate::str::contains("API_KEY  written by owner")
            .and(predicate::str::contains("EXTRA  written by unknown"))
            .and(predicate::str::contains("LD_PRELOAD  written by unknown")),
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

//! The SIWE + ReCap messages of `tests/vectors/siwe-recap/tests/` (older `kepler:` resource
//! names): each message parses, re-serializes byte-identically, its ReCap decodes, re-encodes to
//! the identical `urn:recap:` resource, and the statement verifies against it.

use tinycloud_testkit::vectors as support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tinycloud_auth::recap::{Recap, RECAP_PREFIX};
use tinycloud_auth::siwe::Message;

fn read(name: &str) -> String {
    support::text(&format!("siwe-recap/tests/{name}"))
}

fn round_trip(name: &str) -> (Message, Option<Recap>) {
    let text = read(name);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let msg: Message = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(msg.to_string(), text, "{name}: byte-exact re-serialization");
    let resources = msg.resources.clone().unwrap_or_default();
    let recap = Recap::extract(&resources).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(r) = &recap {
        let original = resources
            .iter()
            .find(|x| x.starts_with("urn:recap:"))
            .unwrap();
        assert_eq!(
            &r.to_resource(),
            original,
            "{name}: ReCap re-encodes identically"
        );
        r.verify_statement(msg.statement.as_deref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            msg.statement.as_deref().unwrap(),
            r.statement_with(
                msg.statement
                    .as_deref()
                    .unwrap()
                    .strip_suffix(&r.statement())
                    .map(str::trim_end)
                    .filter(|s| !s.is_empty())
            ),
            "{name}: statement regenerates"
        );
    }
    (msg, recap)
}

#[test]
fn with_caps() {
    let (_, recap) = round_trip("siwe_with_caps.txt");
    let recap = recap.unwrap();
    assert_eq!(recap.att.len(), 4);
    assert!(recap.prf.is_empty());
    assert!(recap
        .statement()
        .contains("(4) 'credential': 'present' for 'urn:credential:type:type1'."));
}

#[test]
fn with_interleaved_resources() {
    let (msg, recap) = round_trip("siwe_with_interleaved_resources.txt");
    assert_eq!(msg.resources.as_ref().unwrap().len(), 4);
    let recap = recap.unwrap();
    // `[]` caveat lists are kept as sent (they mean "unconstrained").
    assert!(recap
        .att
        .values()
        .flat_map(|a| a.values())
        .all(Vec::is_empty));
}

#[test]
fn with_statement() {
    let (msg, recap) = round_trip("siwe_with_statement.txt");
    assert!(msg
        .statement
        .unwrap()
        .starts_with("Some custom statement. I further"));
    assert_eq!(recap.unwrap().att.len(), 1);
}

#[test]
fn without_caps() {
    let (_, recap) = round_trip("siwe_with_no_caps.txt");
    assert!(recap.is_none());
    let (msg, recap) = round_trip("siwe_with_statement_no_caps.txt");
    assert!(recap.is_none());
    assert_eq!(msg.statement.as_deref(), Some("Some custom statement."));
}

#[test]
fn altered_statement_is_rejected() {
    let (msg, recap) = round_trip("siwe_with_caps.txt");
    let recap = recap.unwrap();
    let tampered = msg.statement.unwrap().replace("'get', 'list'", "'get'");
    assert!(recap.verify_statement(Some(&tampered)).is_err());
}

/// `serialized_cap.json` is the JCS form of a ReCap object: it decodes from its `urn:recap:`
/// resource and encodes back to the same bytes.
#[test]
fn serialized_cap_round_trips() {
    let text = read("serialized_cap.json");
    let jcs = text.trim_end();
    let uri = format!("{RECAP_PREFIX}{}", URL_SAFE_NO_PAD.encode(jcs));
    let recap = Recap::from_resource(&uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert_eq!(String::from_utf8(recap.to_jcs()).unwrap(), jcs);
    assert_eq!(recap.to_resource(), uri);
    assert_eq!(recap.prf.len(), 1);
}

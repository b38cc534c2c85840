//! `tc delegate ls --all`: every delegation the account issued or received, paged through
//! `POST /delegation/query`, with its status.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn lists_the_accounts_delegations_with_their_status() {
    let node = serve();
    let o = owner(&node);
    let (_agent, cid) = delegate(&node, &o, "kv", "notes/", "get");
    let (_other, kept) = delegate(&node, &o, "kv", "drafts/", "get,list");

    let listed = o.json(&["delegate", "ls", "--all"]);
    let rows = listed["delegations"].as_array().unwrap();
    assert_eq!(listed["count"], rows.len());
    let row = |c: &str| {
        rows.iter()
            .find(|d| d["cid"] == c)
            .unwrap_or_else(|| panic!("{c} not listed: {listed}"))
            .clone()
    };
    let r = row(&cid);
    assert_eq!(r["direction"], "granted");
    assert_eq!(r["status"], "active");
    assert!(r["resources"][0]["resource"]
        .as_str()
        .unwrap()
        .ends_with("/kv/notes/"));
    // The session delegation itself (signed by the owner's wallet) is the account's too.
    assert!(rows
        .iter()
        .any(|d| d["delegatorDid"].as_str().unwrap().starts_with("did:pkh:")));

    assert_eq!(o.json(&["delegate", "revoke", &cid])["revoked"], true);
    let listed = o.json(&["delegate", "ls", "--all"]);
    let rows = listed["delegations"].as_array().unwrap();
    let status = |c: &str| {
        rows.iter()
            .find(|d| d["cid"] == c)
            .map(|d| d["status"].clone())
    };
    assert_eq!(status(&cid), Some("revoked".into()));
    assert_eq!(status(&kept), Some("active".into()));
    assert!(rows.iter().find(|d| d["cid"] == cid.as_str()).unwrap()["revokedAt"].is_string());

    // Human output: one block per delegation with its direction and status.
    o.tc(&["delegate", "ls", "--all"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(format!("{cid}  granted (revoked)"))
                .and(predicate::str::contains(format!(
                    "{kept}  granted (active)"
                )))
                .and(predicate::str::contains("Read files under notes/")),
        );
}

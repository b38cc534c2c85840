//! A review attack on the security fixes, end to end against the real node: each test performs
//! one finding's attack (another door to a rule that was fixed elsewhere).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::session::capability;

/// A hooks grant on `hooks/sql/app1` (events of database `app1`) must not see the writes of
/// database `app1/secrets`: SQL names one database per resource, and so must SQL hooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_hooks_grant_on_one_database_sees_no_other_database() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 90, "default").await;
    let p = [o.session_cid];
    let d = ed25519(91);
    let dg = delegate(
        &node,
        &o.session,
        &d.did(),
        &p,
        vec![capability(&o.res("hooks/sql/app1"), "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    let space = o.space.to_string();
    let oc = o.client(&node);
    for db in ["app1", "app1/secrets"] {
        oc.execute(&o.res(&format!("sql/{db}")), "admin", "CREATE TABLE t (x)")
            .await
            .expect(200);
    }
    for prefix in ["app1", "app1/secrets"] {
        let scopes = json!([{"space": space, "service": "sql", "pathPrefix": prefix}]);
        let Ok(mut sse) = SseReader::connect(&node, &d, &[dg], scopes, None).await else {
            continue; // refused: nothing to leak through this scope
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        oc.execute(
            &o.res("sql/app1/secrets"),
            "write",
            "INSERT INTO t VALUES (1)",
        )
        .await
        .expect(200);
        oc.execute(&o.res("sql/app1"), "write", "INSERT INTO t VALUES (1)")
            .await
            .expect(200);
        let mut paths = Vec::new();
        while let Some(ev) = sse.next(Duration::from_millis(1500)).await {
            if ev.event == "write" {
                let v: Value = serde_json::from_str(&ev.data).unwrap();
                paths.push(v["path"].as_str().unwrap_or_default().to_owned());
            }
        }
        assert!(
            !paths.iter().any(|p| p.starts_with("app1/secrets")),
            "scope {prefix:?} under a grant on database app1 saw {paths:?}"
        );
    }
}

/// `/delegation/status` of `cid`, asked by `asker`.
async fn status(node: &Node, asker: &tinycloud_auth::keys::SecretKey, cid: &str) -> (u16, Value) {
    status_under(node, asker, &[], cid).await
}

/// `status`, the invocation citing `proofs`.
async fn status_under(
    node: &Node,
    asker: &tinycloud_auth::keys::SecretKey,
    proofs: &[tinycloud_auth::cid::Cid],
    cid: &str,
) -> (u16, Value) {
    let h = invoke_header(
        asker,
        proofs,
        &format!("urn:cid:{cid}"),
        "tinycloud.delegation/status",
    );
    let body = json!({"cid": cid});
    request(
        node,
        reqwest::Method::POST,
        "/delegation/status",
        &h,
        Some(&body),
    )
    .await
}

/// Whether the node stores the delegation `cid` (asked by its delegate `asker`).
async fn stored(node: &Node, asker: &tinycloud_auth::keys::SecretKey, cid: &str) -> bool {
    let h = invoke_header(
        asker,
        &[],
        &format!("urn:cid:{cid}"),
        "tinycloud.delegation/status",
    );
    let body = json!({"cid": cid});
    let (s, v) = request(
        node,
        reqwest::Method::POST,
        "/delegation/status",
        &h,
        Some(&body),
    )
    .await;
    assert!(s == 200 || s == 404, "{s} {v}");
    v["exists"] == true
}

/// `n` KV capabilities with long paths under `resource_base` (a token of tens of KiB).
fn bulky_caps(resource_base: &str, n: usize) -> Vec<tinycloud_auth::capability::Capability> {
    (0..n)
        .map(|i| {
            let path = format!("{resource_base}/{i:04}{}", "p".repeat(180));
            capability(&path, "tinycloud.kv/get").unwrap()
        })
        .collect()
}

/// A stranger (a fresh key, no space on this node) must not be able to make the node store
/// anything: a root delegation over a space the node does not host, over a network, over an
/// arbitrary URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_make_the_node_store_delegations() {
    let node = Node::start(NODE_BIN, &[]);
    let stranger = ed25519(251);
    let ghost = tinycloud_auth::resource::SpaceId::new(stranger.did(), "ghost").unwrap();
    let to_key = ed25519(252);
    let to = to_key.did();
    let cases: Vec<(&str, Vec<tinycloud_auth::capability::Capability>)> = vec![
        ("an unhosted space", bulky_caps(&format!("{ghost}/kv"), 150)),
        (
            "an arbitrary URI",
            vec![capability("https://example.com/x", "tinycloud.kv/get").unwrap()],
        ),
        (
            "its own encryption network",
            vec![capability(
                &format!("urn:tinycloud:encryption:{}:n", stranger.did()),
                "tinycloud.encryption/decrypt",
            )
            .unwrap()],
        ),
    ];
    for (case, caps) in cases {
        let g = ucan_delegation(&stranger, &to, &[], caps, 600);
        let (s, v, _) = post_delegate(&node, &g).await;
        let cid = v["cid"].as_str().map(str::to_owned);
        let kept = match cid {
            Some(c) if s == 200 => stored(&node, &to_key, &c).await,
            _ => false,
        };
        assert!(!kept, "{case}: a stranger's delegation was stored ({s})");
    }
    // Control: `stored` does see a delegation the node keeps (one over a hosted space).
    let o = Owner::sign_in(&node, 253, "default").await;
    let cid = delegate(
        &node,
        &o.session,
        &to,
        &[o.session_cid],
        vec![capability(&o.res("kv/x"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    assert!(stored(&node, &to_key, &cid.to_string()).await, "control");
}

/// Delegations count against the space's storage quota (issue 11, item 9): an owner with a
/// 1 MiB quota cannot store 2 MiB of delegations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_are_charged_to_the_space_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "1 MiB")]);
    let o = Owner::sign_in(&node, 92, "default").await;
    let mut accepted = 0usize;
    let mut bytes = 0usize;
    for i in 0..40u8 {
        let to = ed25519(100 + i).did();
        let g = ucan_delegation(
            &o.session,
            &to,
            &[o.session_cid],
            bulky_caps(&o.res("kv"), 150),
            600,
        );
        let (s, _, text) = post_delegate(&node, &g).await;
        if s == 200 {
            accepted += 1;
            bytes += g.len();
        } else {
            assert_eq!(s, 402, "{text}");
            break;
        }
    }
    assert!(
        bytes <= 1024 * 1024,
        "{accepted} delegations ({bytes} bytes) stored under a 1 MiB quota"
    );
}

/// Bytes of every file under `dir` (recursively).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The SQL quota is checked before a write only: one statement under a 1 MiB quota must not
/// be able to write 64 MiB (the check must bound what the statement itself writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sql_statement_cannot_write_past_the_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "1 MiB")]);
    let o = Owner::sign_in(&node, 93, "default").await;
    let oc = o.client(&node);
    let db = o.res("sql/bomb");
    oc.execute(&db, "admin", "CREATE TABLE t (b BLOB)")
        .await
        .expect(200);
    let r = oc
        .execute(
            &db,
            "write",
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 64) \
             INSERT INTO t SELECT zeroblob(1048576) FROM c",
        )
        .await;
    let on_disk = dir_bytes(&node.dir.join("sql"));
    assert!(
        on_disk < 4 * 1024 * 1024,
        "one statement wrote {on_disk} bytes under a 1 MiB quota ({}: {})",
        r.status,
        r.text()
    );
    assert_eq!(r.status, 402, "{}", r.text());
    // Nothing of the refused statement stays, and the database still works.
    let n = oc
        .query(&db, "read", "SELECT count(*) AS n FROM t")
        .await
        .expect(200);
    assert_eq!(n.json()["rows"][0][0], 0, "{}", n.text());
}

/// `/delegation/status` verified only the signature: any stranger could learn whether any
/// delegation exists, is revoked or expired, and each query was recorded as a consumed nonce
/// (an unauthenticated write). Only the delegation's parties may ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_query_delegation_status() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 94, "default").await;
    let d = ed25519(95);
    let dg = delegate(
        &node,
        &o.session,
        &d.did(),
        &[o.session_cid],
        vec![capability(&o.res("kv/x"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    let cid = dg.to_string();
    let (s, v) = status(&node, &ed25519(96), &cid).await;
    assert_eq!(s, 403, "a stranger read the status: {v}");
    for party in [&d, &o.session] {
        let (s, v) = status(&node, party, &cid).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "active");
    }
}

/// A key acting for the owner (its invocation cites a valid chain from the owner, addressed
/// to it: another session of the owner, a delegate it shared with) may ask about the owner's
/// delegations, so a client can tell whether an envelope's writer proof is revoked; without
/// its chain, or citing one not addressed to it, it is a stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_acting_for_the_owner_may_query_the_owners_delegation_status() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 91, "default").await;
    let caps = || vec![capability(&o.res("kv/x"), "tinycloud.kv/get").unwrap()];
    let (a, b) = (ed25519(92), ed25519(93));
    let da = delegate(&node, &o.session, &a.did(), &[o.session_cid], caps(), 600).await;
    let db = delegate(&node, &o.session, &b.did(), &[o.session_cid], caps(), 600).await;
    let cid = da.to_string();
    let (s, v) = status_under(&node, &b, &[], &cid).await;
    assert_eq!(s, 403, "b on its own authority read a's status: {v}");
    let (s, v) = status_under(&node, &ed25519(94), &[db], &cid).await;
    assert_eq!(s, 403, "a stranger citing b's chain read a's status: {v}");
    let (s, v) = status_under(&node, &b, &[db], &cid).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "active");
}

/// A stranger (a fresh `did:key`, no space on this node) is the root authority of its own
/// encryption networks: it must not be able to make the node generate and store network key
/// pairs (each a row with a sealed private key), let alone without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_make_the_node_store_encryption_networks() {
    use tinycloud_auth::session::invocation;
    let node = Node::start(NODE_BIN, &[]);
    let info: Value = get_json(&node, "/info").await;
    let nd: tinycloud_auth::did::Did = info["nodeId"].as_str().unwrap().parse().unwrap();
    let stranger = ed25519(253);
    let mut created = 0;
    for i in 0..20 {
        let name = format!("n{i}");
        let network = format!("urn:tinycloud:encryption:{}:{name}", stranger.did());
        let body = json!({"name": name, "ownerDid": stranger.did().to_string(), "threshold": {"n": 1, "t": 1}});
        let fact = json!({
            "type": "tinycloud.encryption.network-admin/v1", "targetNode": nd.to_string(),
            "networkId": network, "bodyHash": tinycloud_node::encryption::canonical_hash(&body),
            "action": "network.create",
        });
        let t = invocation(
            &stranger,
            Some(nd.clone()),
            &[],
            vec![capability(&network, "tinycloud.encryption/network.create").unwrap()],
            now(),
            120,
            &uuid(),
            vec![fact.as_object().unwrap().clone()],
        )
        .unwrap();
        let (s, _) = request(
            &node,
            reqwest::Method::POST,
            "/encryption/networks",
            t.as_str(),
            Some(&body),
        )
        .await;
        if s == 200 {
            created += 1;
        }
    }
    assert_eq!(
        created, 0,
        "a stranger made the node create {created} networks"
    );
}

/// A small-body route fed one byte just under the per-frame body timeout: the connection must
/// still end within a bounded time (the per-frame timeout alone let a 64 KiB body hold it for
/// weeks at the defaults: one byte per 59 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dribbled_under_the_frame_timeout_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_SERVER__BODY_READ_TIMEOUT_SECS", "2"),
            ("TINYCLOUD_SERVER__IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    let addr = node.url.trim_start_matches("http://").to_owned();
    for path in [
        "/hooks/tickets",
        "/hooks/webhooks",
        "/encryption/networks",
        "/delegation/status",
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: x\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let t0 = std::time::Instant::now();
        let mut ended = false;
        while t0.elapsed() < Duration::from_secs(8) {
            if s.write_all(b" ").await.is_err() {
                ended = true;
                break;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
                Ok(Ok(_)) | Ok(Err(_)) => {
                    ended = true;
                    break;
                }
                Err(_) => {}
            }
        }
        assert!(ended, "{path}: a dribbled body held the connection for 8 s");
    }
}

/// `capabilities/read` lists every delegation of the space (with raw tokens), so a grant on a
/// narrower path (`<space>/capabilities/mine`) must not read that listing; nor may the ability
/// be pointed at another service's resource.
#[tokio::test]
async fn a_narrow_capabilities_grant_cannot_read_the_whole_listing() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 41, "default").await;
    let agent = ed25519(42);
    let narrow = delegate(
        &node,
        &o.session,
        &agent.did(),
        &[o.session_cid],
        vec![capability(&o.res("capabilities/mine"), "tinycloud.capabilities/read").unwrap()],
        600,
    )
    .await;
    let h = invoke_header(
        &agent,
        &[narrow],
        &o.res("capabilities/mine"),
        "tinycloud.capabilities/read",
    );
    let r = invoke(&node, &h, &[], vec![]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        !r.text().contains(&o.session_cid.to_string()),
        "listing leaked"
    );
    // Control: a delegate holding a grant on the whole listing reads it.
    let full_agent = ed25519(43);
    let full = delegate(
        &node,
        &o.session,
        &full_agent.did(),
        &[o.session_cid],
        vec![capability(&o.res("capabilities/all"), "tinycloud.capabilities/read").unwrap()],
        600,
    )
    .await;
    let h = invoke_header(
        &full_agent,
        &[full],
        &o.res("capabilities/all"),
        "tinycloud.capabilities/read",
    );
    let r = invoke(&node, &h, &[], vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&o.session_cid.to_string()));
    // The ability pointed at another service's resource is refused, not served.
    let h = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/x"),
        "tinycloud.capabilities/read",
    );
    let r = invoke(&node, &h, &[], vec![]).await;
    assert!(matches!(r.status, 400 | 401), "{} {}", r.status, r.text());
    assert!(
        !r.text().contains(&o.session_cid.to_string()),
        "listing leaked"
    );
}

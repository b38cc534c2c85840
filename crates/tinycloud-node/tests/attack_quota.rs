//! What delegations cost: stored delegation bytes count against the named space's storage
//! quota, and a stranger cannot make the node keep delegations for spaces it does not host.

mod common;

use common::*;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::DidUrl;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::capability;
use tinycloud_auth::ucan::UcanBuilder;

/// A UCAN delegation of `caps` padded with a fact to about `bytes` bytes on the wire.
fn padded(
    from: &tinycloud_auth::keys::SecretKey,
    proofs: &[Cid],
    caps: Vec<Capability>,
    bytes: usize,
) -> String {
    padded_until(from, proofs, caps, bytes, now().plus_secs(1800))
}

/// [`padded`], expiring at `exp`.
fn padded_until(
    from: &tinycloud_auth::keys::SecretKey,
    proofs: &[Cid],
    caps: Vec<Capability>,
    bytes: usize,
    exp: tinycloud_auth::timestamp::Timestamp,
) -> String {
    let mut fact = serde_json::Map::new();
    fact.insert(
        "pad".into(),
        serde_json::Value::String("p".repeat(bytes * 3 / 4)),
    );
    let mut b = UcanBuilder::new(
        from.did().verification_method(),
        DidUrl::from(ed25519(200).did()),
        uuid(),
    )
    .expiration(exp)
    .capabilities(caps)
    .fact(fact);
    for p in proofs {
        b = b.proof(*p);
    }
    b.sign(from).unwrap().as_str().to_owned()
}

/// Rows the index holds (read straight from the node's data directory).
fn rows(node: &Node, sql: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        node.dir.join("index.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_are_charged_to_the_space_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "1 MiB")]);
    let o = Owner::sign_in(&node, 41, "default").await;
    let before = rows(&node, "SELECT count(*) FROM delegation");
    let caps = || vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()];
    let mut accepted = 0u64;
    let mut refused = 0;
    let mut first_refused = None;
    let mut first_accepted = None;
    for _ in 0..300 {
        let h = padded(&o.session, &[o.session_cid], caps(), 60 * 1024);
        assert!(h.len() > 59 * 1024 && h.len() < 64 * 1024, "{}", h.len());
        let (status, body, text) = post_delegate(&node, &h).await;
        match status {
            200 => {
                assert_eq!(refused, 0, "accepted again after a refusal");
                assert_eq!(body["activated"][0], o.space.to_string());
                accepted += 1;
                first_accepted.get_or_insert(h);
            }
            402 => {
                assert!(text.contains("quota"), "{text}");
                refused += 1;
                first_refused.get_or_insert(h);
            }
            s => panic!("unexpected {s}: {text}"),
        }
    }
    assert!(accepted * 60 * 1024 <= 1024 * 1024, "{accepted} accepted");
    assert!(accepted >= 10, "only {accepted} fit under 1 MiB");
    assert_eq!(accepted + refused, 300);
    // Refused delegations left no row and cannot be used.
    let after = rows(&node, "SELECT count(*) FROM delegation");
    assert_eq!(after - before, accepted as i64);
    let h = first_refused.unwrap();
    let cid = tinycloud_auth::token::Delegation::from_header(&h)
        .unwrap()
        .cid();
    let grantee = ed25519(200);
    let r = kv(
        &node,
        &grantee,
        &[cid],
        &o.res("kv/shared/x"),
        "get",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // The space is full: a value that no longer fits is refused too.
    o.client(&node)
        .put(&o.res("kv/big"), &vec![7u8; 100 * 1024])
        .await
        .expect(413);
    // A refused delegation stays refused; re-posting a stored one is idempotent (no second
    // charge, no new row).
    let (status, _, text) = post_delegate(&node, &h).await;
    assert_eq!(status, 402, "{text}");
    let (status, body, text) = post_delegate(&node, &first_accepted.unwrap()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["stored"], true);
    assert_eq!(rows(&node, "SELECT count(*) FROM delegation"), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_make_the_node_keep_delegations_for_unhosted_spaces() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 42, "default").await;
    let delegations = rows(&node, "SELECT count(*) FROM delegation");
    let links = rows(&node, "SELECT count(*) FROM delegation_space");
    let usage = rows(&node, "SELECT count(*) FROM space_usage");
    let stranger = wallet(43);
    let stranger_key = ed25519(44);
    let stranger_did = tinycloud_auth::did::Did::pkh(
        1,
        tinycloud_auth::eth::EthAddress::from_verifying_key(stranger.verifying_key()),
    )
    .unwrap();
    let mut stored = vec![];
    for i in 0..20 {
        // SIWE session delegations for the stranger's own (never created) spaces …
        let space = SpaceId::new(stranger_did.clone(), &format!("s{i}")).unwrap();
        let h = siwe_header(
            &stranger,
            stranger_key.did().verification_method().to_string(),
            vec![capability(&format!("{space}/kv"), "tinycloud.kv/get").unwrap()],
            Some(now().plus_secs(3600)),
            vec![],
        );
        let (status, body, text) = post_delegate(&node, &h).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(body["skipped"][0], space.to_string());
        assert!(body["activated"].as_array().unwrap().is_empty());
        stored.push(body["stored"].clone());
        // … UCANs of a did:key for a space it owns, padded to the token limit …
        let own = SpaceId::new(stranger_key.did(), &format!("k{i}")).unwrap();
        let u = padded(
            &stranger_key,
            &[],
            vec![capability(&format!("{own}/kv"), "tinycloud.kv/put").unwrap()],
            60 * 1024,
        );
        let (status, body, text) = post_delegate(&node, &u).await;
        assert_eq!(status, 200, "{text}");
        stored.push(body["stored"].clone());
        // … and grants on an encryption network this node does not have.
        let net = format!("urn:tinycloud:encryption:{}:n{i}", stranger_key.did());
        let n = padded(
            &stranger_key,
            &[],
            vec![capability(&net, "tinycloud.encryption/decrypt").unwrap()],
            1024,
        );
        let (status, _, text) = post_delegate(&node, &n).await;
        assert_eq!(status, 404, "{text}");
        assert!(text.contains("hosts"), "{text}");
    }
    assert_eq!(rows(&node, "SELECT count(*) FROM delegation"), delegations);
    assert_eq!(rows(&node, "SELECT count(*) FROM delegation_space"), links);
    assert_eq!(rows(&node, "SELECT count(*) FROM space_usage"), usage);
    assert!(stored.iter().all(|s| s == false), "answers say not stored");
    // The owner's own flow still works (session stored once the space exists).
    o.client(&node).put(&o.res("kv/x"), b"x").await.expect(200);
}

fn cid_of(header: &str) -> Cid {
    tinycloud_auth::token::Delegation::from_header(header)
        .unwrap()
        .cid()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_delegations_are_swept_and_their_bytes_reclaimed() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_STORAGE__LIMIT", "256 KiB"),
            ("TINYCLOUD_STORAGE__DELEGATION_SWEEP_SECS", "1"),
            ("TINYCLOUD_STORAGE__DELEGATION_SWEEP_GRACE_SECS", "0"),
        ],
    );
    let o = Owner::sign_in(&node, 43, "default").await;
    let caps = || vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()];
    let usage = || {
        rows(
            &node,
            &format!(
                "SELECT coalesce(max(bytes), 0) FROM space_usage WHERE space = '{}'",
                o.space
            ),
        )
    };
    let base = usage();
    // Short-lived delegations fill the quota.
    let exp = now().plus_secs(3);
    let mut short = vec![];
    loop {
        let h = padded_until(&o.session, &[o.session_cid], caps(), 60 * 1024, exp);
        let (status, _, text) = post_delegate(&node, &h).await;
        match status {
            200 => short.push(h),
            402 => break,
            s => panic!("unexpected {s}: {text}"),
        }
        assert!(short.len() < 10, "the quota never filled");
    }
    assert!(short.len() >= 2, "{} fit", short.len());
    let full = usage();
    assert!(full - base >= (short.len() * 60 * 1024) as i64);
    // One of them is revoked before it expires.
    let revoked = cid_of(&short[1]);
    let (s, body) = revoke(&node, &o.session, revoked).await;
    assert_eq!(s, 200, "{body}");
    // While they live, nothing more fits (the sweep leaves unexpired delegations alone).
    let long = padded(&o.session, &[o.session_cid], caps(), 60 * 1024);
    let (status, _, text) = post_delegate(&node, &long).await;
    assert_eq!(status, 402, "{text}");
    // They expire; the sweep deletes their rows and un-charges their bytes.
    let in_clause = short
        .iter()
        .map(|h| format!("'{}'", cid_of(h)))
        .collect::<Vec<_>>()
        .join(", ");
    let left = || {
        rows(
            &node,
            &format!("SELECT count(*) FROM delegation WHERE cid IN ({in_clause})"),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while left() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired delegations were never swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(usage(), base, "swept bytes were not un-charged");
    assert_eq!(
        rows(
            &node,
            &format!("SELECT count(*) FROM delegation_space WHERE cid IN ({in_clause})"),
        ),
        0
    );
    // The revocation is kept: a revoked authority never comes back.
    assert_eq!(
        rows(
            &node,
            &format!("SELECT count(*) FROM revocation WHERE cid = '{revoked}'"),
        ),
        1
    );
    // New delegations fit again.
    let (status, body, text) = post_delegate(&node, &long).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["stored"], true);
    // A swept delegation posted again is refused as expired and stores nothing; the revoked
    // one too, and a chain through it does not authorize.
    for h in [&short[0], &short[1]] {
        let (status, _, text) = post_delegate(&node, h).await;
        assert!(status == 401 || status == 403, "{status}: {text}");
        assert!(text.contains("expired"), "{text}");
    }
    assert_eq!(left(), 0);
    let grantee = ed25519(200);
    let r = kv(
        &node,
        &grantee,
        &[revoked],
        &o.res("kv/shared/x"),
        "get",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // The owner's live session was not touched by the sweep.
    o.client(&node)
        .put(&o.res("kv/still"), b"ok")
        .await
        .expect(200);
}

/// SQL data and KV values share one quota: once SQL databases fill the space, a KV write is
/// refused too (KV writes once counted only the index, so SQL bytes were free room for KV).
#[tokio::test]
async fn sql_bytes_count_against_kv_writes() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "256 KiB")]);
    let o = Owner::sign_in(&node, 43, "default").await;
    let c = o.client(&node);
    let db = o.res("sql/app");
    c.execute(&db, "write", "CREATE TABLE t (v BLOB)")
        .await
        .expect(200);
    // Fill the space through SQL until the quota refuses.
    let mut filled = false;
    for _ in 0..64 {
        let r = c
            .execute(&db, "write", "INSERT INTO t VALUES (zeroblob(32768))")
            .await;
        if r.status != 200 {
            assert!(matches!(r.status, 402 | 413), "{} {}", r.status, r.text());
            filled = true;
            break;
        }
    }
    assert!(filled, "SQL writes stop at the quota");
    let r = c.put(&o.res("kv/more"), &[0u8; 8192]).await;
    assert!(
        matches!(r.status, 402 | 413),
        "a KV write past SQL-filled quota: {} {}",
        r.status,
        r.text()
    );
    // A small KV write on a fresh node with the same limit succeeds (the refusal is the quota).
    let fresh = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "256 KiB")]);
    let o2 = Owner::sign_in(&fresh, 44, "default").await;
    o2.client(&fresh)
        .put(&o2.res("kv/more"), &[0u8; 8192])
        .await
        .expect(200);
}

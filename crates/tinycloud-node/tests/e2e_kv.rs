//! End-to-end: the real node binary on a free port, driven over HTTP with tokens built the way
//! a client builds them.

mod common;

use common::*;
use tinycloud_auth::cid::parse_cid;
use tinycloud_auth::session::capability;

#[tokio::test]
async fn discovery_routes() {
    let node = Node::start(NODE_BIN, &[]);
    let info: serde_json::Value = get_json(&node, "/info").await;
    assert_eq!(info["protocol"], 1);
    assert!(info["nodeId"].as_str().unwrap().starts_with("did:key:z6Mk"));
    let version: serde_json::Value = get_json(&node, "/version").await;
    assert_eq!(version, info);
    assert_eq!(get(&node, "/healthz").await.status(), 200);
    let space = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";
    let host_key = || async {
        let r = get(&node, &format!("/peer/generate/{space}")).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let a = host_key().await;
    let b = host_key().await;
    assert_eq!(a, b, "host key is deterministic");
    assert!(a.starts_with("did:key:z6Mk"));
    assert_eq!(get(&node, "/peer/generate/nonsense").await.status(), 400);
    // CORS preflight and headers
    let pre = http()
        .request(reqwest::Method::OPTIONS, format!("{}/invoke", node.url))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert!(pre.headers().get("access-control-allow-origin").is_some());
    for path in ["/invoke", "/delegate", "/public/x/kv/y", "/anything"] {
        let r = http()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "OPTIONS {path}");
    }
    assert_eq!(get(&node, "/invoke").await.status(), 405);
    // the node secret was generated with 0600
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.dir.join("node.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn session_reads_and_writes_kv() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 1, "default").await;
    let p = [o.session_cid];
    let c = o.client(&node);
    let r = c
        .kv(
            &o.res("kv/notes/today.md"),
            "put",
            &[
                ("content-type", "text/markdown"),
                ("x-tinycloud-meta-author", "me"),
            ],
            b"# hello".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"blake3-{}\"", blake3::hash(b"# hello").to_hex())
    );
    assert!(r.body.is_empty());

    let g = c.call(&o.res("kv/notes/today.md"), "get").await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, b"# hello");
    assert_eq!(g.headers["etag"], etag.as_str());
    assert_eq!(g.headers["content-type"], "text/markdown");
    assert_eq!(g.headers["x-tinycloud-meta-author"], "me");
    assert_eq!(g.headers["cache-control"], "private, no-cache");

    let m = c.call(&o.res("kv/notes/today.md"), "metadata").await;
    assert_eq!(m.status, 200);
    assert!(m.body.is_empty());
    assert_eq!(m.headers["etag"], etag.as_str());
    assert_eq!(m.headers["content-type"], "text/markdown");
    assert_eq!(m.headers["x-tinycloud-content-length"], "7");

    let nm = c
        .kv(
            &o.res("kv/notes/today.md"),
            "get",
            &[("if-none-match", &etag)],
            vec![],
        )
        .await;
    assert_eq!(nm.status, 304);

    // conditional writes: (preconditions, expected status)
    let today = o.res("kv/notes/today.md");
    let zero = "\"blake3-0000000000000000000000000000000000000000000000000000000000000000\"";
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[("if-none-match", "*")], 412),
        (&[("if-match", zero)], 412),
        (&[("if-match", "W/\"x\"")], 400),
        (&[("if-match", &etag), ("if-none-match", "*")], 400),
    ];
    for (pre, want) in cases {
        let r = c.kv(&today, "put", pre, b"x".to_vec()).await;
        assert_eq!(r.status, want, "{pre:?}: {}", r.text());
    }
    let ok = c
        .kv(&today, "put", &[("if-match", &etag)], b"v2".to_vec())
        .await;
    assert_eq!(ok.status, 200);

    let too_big = c
        .kv(
            &o.res("kv/notes/today.md"),
            "get",
            &[("x-tinycloud-max-response-bytes", "1")],
            vec![],
        )
        .await;
    assert_eq!(too_big.status, 413);

    // list with paging
    for k in ["notes/a", "notes/b", "notes/c", "notesx/d"] {
        c.put(&o.res(&format!("kv/{k}")), b"1").await.expect(200);
    }
    let l = c
        .kv(
            &o.res("kv/notes/"),
            "list",
            &[("x-tinycloud-limit", "2")],
            vec![],
        )
        .await;
    assert_eq!(l.status, 200, "{}", l.text());
    let keys: Vec<String> = serde_json::from_slice(&l.body).unwrap();
    assert_eq!(keys, ["notes/a", "notes/b"]);
    assert_eq!(l.headers["x-tinycloud-truncated"], "true");
    let cursor = l.headers["x-tinycloud-next-cursor"]
        .to_str()
        .unwrap()
        .to_owned();
    let l2 = c
        .kv(
            &o.res("kv/notes/"),
            "list",
            &[("x-tinycloud-limit", "2"), ("x-tinycloud-cursor", &cursor)],
            vec![],
        )
        .await;
    let keys: Vec<String> = serde_json::from_slice(&l2.body).unwrap();
    assert_eq!(keys, ["notes/c", "notes/today.md"]);
    assert_eq!(l2.headers["x-tinycloud-truncated"], "false");
    let bad_cursor = c
        .kv(
            &o.res("kv/notes/"),
            "list",
            &[("x-tinycloud-limit", "3"), ("x-tinycloud-cursor", &cursor)],
            vec![],
        )
        .await;
    assert_eq!(bad_cursor.status, 400, "cursor bound to its limit");
    let raw = c.call(&o.res("kv/notes"), "list").await;
    let keys: Vec<String> = serde_json::from_slice(&raw.body).unwrap();
    assert!(
        keys.contains(&"notesx/d".to_string()),
        "raw prefix for a whole-service grant: {keys:?}"
    );

    // delete
    let d = c.call(&o.res("kv/notes/a"), "del").await;
    assert_eq!(d.status, 200);
    assert!(d.headers.contains_key("etag"));
    let gone = c.call(&o.res("kv/notes/a"), "get").await;
    assert_eq!(gone.status, 404);
    let d2 = c.call(&o.res("kv/notes/a"), "del").await;
    assert_eq!(d2.status, 404);

    // capabilities/read lists the space's delegations
    let h = invoke_header(
        &o.session,
        &p,
        &o.res("capabilities/all"),
        "tinycloud.capabilities/read",
    );
    let c = invoke(&node, &h, &[], vec![]).await;
    assert_eq!(c.status, 200, "{}", c.text());
    let map: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
    assert!(map.get(o.session_cid.to_string()).is_some());
}

#[tokio::test]
async fn large_values_stream_through_blob_store() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__INLINE_THRESHOLD", "1024")]);
    let o = Owner::sign_in(&node, 2, "default").await;
    let c = o.client(&node);
    let value: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = c.kv(&o.res("kv/big.bin"), "put", &[], value.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = c.call(&o.res("kv/big.bin"), "get").await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body.len(), value.len());
    assert!(g.body == value);
}

#[tokio::test]
async fn replay_is_refused_also_after_restart() {
    let mut node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 3, "default").await;
    let h = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/a"),
        "tinycloud.kv/put",
    );
    assert_eq!(invoke(&node, &h, &[], b"1".to_vec()).await.status, 200);
    let r = invoke(&node, &h, &[], b"1".to_vec()).await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains("duplicate"));
    let dir = node.dir.clone();
    let tmp = node.take_tmp();
    node.kill9();
    let node2 = Node::start_in(NODE_BIN, &dir, &[]);
    assert_eq!(invoke(&node2, &h, &[], b"1".to_vec()).await.status, 409);
    drop(tmp);
}

#[tokio::test]
async fn delegate_read_only_and_path_attenuation() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 4, "default").await;
    let p = [o.session_cid];
    let c = o.client(&node);
    for k in ["docs/a", "docsx/b", "secret"] {
        c.kv(
            &o.res(&format!("kv/{k}")),
            "put",
            &[],
            k.as_bytes().to_vec(),
        )
        .await
        .expect(200);
    }
    let agent = ed25519(40);
    let gcid = delegate(
        &node,
        &o.session,
        &agent.did(),
        &p,
        vec![
            capability(&o.res("kv/docs"), "tinycloud.kv/get").unwrap(),
            capability(&o.res("kv/docs"), "tinycloud.kv/list").unwrap(),
        ],
        1800,
    )
    .await;
    let ag = Client::new(&node, &agent, &[gcid]);
    let ok = ag.call(&o.res("kv/docs/a"), "get").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"docs/a");
    let put = ag.put(&o.res("kv/docs/a"), b"no").await;
    assert_eq!(put.status, 401);
    assert!(
        put.text().starts_with("Unauthorized Action:"),
        "{}",
        put.text()
    );
    assert!(put.text().contains("tinycloud.kv/put"));
    let outside = ag.call(&o.res("kv/docsx/b"), "get").await;
    assert_eq!(outside.status, 401, "docs does not cover docsx");
    let secret = ag.call(&o.res("kv/secret"), "get").await;
    assert_eq!(secret.status, 401);
    // listing with the granted prefix shows only keys the grant covers (segment-aware)
    let l = ag.call(&o.res("kv/docs"), "list").await;
    assert_eq!(l.status, 200, "{}", l.text());
    let keys: Vec<String> = serde_json::from_slice(&l.body).unwrap();
    assert_eq!(keys, ["docs/a"]);
    // the agent cannot widen its grant by re-delegating
    let other = ed25519(41);
    let wider = ucan_delegation(
        &agent,
        &other.did(),
        &[gcid],
        vec![capability(&o.res("kv"), "tinycloud.kv/get").unwrap()],
        60,
    );
    let (status, _, text) = post_delegate(&node, &wider).await;
    assert_eq!(status, 401, "{text}");
    // dot segments are invalid input, never normalized
    let dot = format!("{}/kv/docs/../secret", o.space);
    assert!(capability(&dot, "tinycloud.kv/get").is_err());
}

#[tokio::test]
async fn expiry_tampering_and_wrong_owner() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 5, "default").await;
    let p = [o.session_cid];
    // expired invocation
    let expired = tinycloud_auth::session::invocation(
        &o.session,
        None,
        &p,
        vec![capability(&o.res("kv/a"), "tinycloud.kv/get").unwrap()],
        now().plus_secs(-600),
        120,
        &uuid(),
        vec![],
    )
    .unwrap();
    assert_eq!(
        invoke(&node, expired.as_str(), &[], vec![]).await.status,
        401
    );
    // lifetime above the cap
    let long = tinycloud_auth::session::invocation(
        &o.session,
        None,
        &p,
        vec![capability(&o.res("kv/a"), "tinycloud.kv/get").unwrap()],
        now(),
        3600,
        &uuid(),
        vec![],
    )
    .unwrap();
    assert_eq!(invoke(&node, long.as_str(), &[], vec![]).await.status, 401);
    // tampered signature
    let h = invoke_header(&o.session, &p, &o.res("kv/a"), "tinycloud.kv/get");
    let mut t = h.clone().into_bytes();
    let last = t.len() - 5;
    t[last] = if t[last] == b'A' { b'B' } else { b'A' };
    let r = invoke(&node, &String::from_utf8(t).unwrap(), &[], vec![]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // another owner's session cannot touch this space
    let mallory = Owner::sign_in(&node, 6, "default").await;
    let r = kv(
        &node,
        &mallory.session,
        &[mallory.session_cid],
        &o.res("kv/a"),
        "get",
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    // a session delegation for someone else's space signed by the wrong wallet is refused
    let forged = siwe_header(
        &mallory.wallet,
        mallory.session.did().verification_method().to_string(),
        vec![capability(&o.res("kv"), "tinycloud.kv/get").unwrap()],
        Some(now().plus_secs(60)),
        vec![],
    );
    let (status, _, _) = post_delegate(&node, &forged).await;
    assert_eq!(status, 401);
    // an expired session delegation is refused at registration
    let stale = siwe_header(
        &o.wallet,
        o.session.did().verification_method().to_string(),
        vec![capability(&o.res("kv"), "tinycloud.kv/get").unwrap()],
        Some(now().plus_secs(-5)),
        vec![],
    );
    assert_eq!(post_delegate(&node, &stale).await.0, 401);
    // malformed and oversize tokens
    assert_eq!(invoke(&node, "not-a-token", &[], vec![]).await.status, 400);
    let huge = "a.".repeat(40_000);
    assert_eq!(invoke(&node, &huge, &[], vec![]).await.status, 400);
    let r = http()
        .post(format!("{}/invoke", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "missing Authorization");
    // unknown space
    let ghost = format!("{}/kv/a", o.space.to_string().replace(":default", ":ghost"));
    let ghost_owner_grant = siwe_header(
        &o.wallet,
        o.session.did().verification_method().to_string(),
        vec![capability(&ghost, "tinycloud.kv/get").unwrap()],
        Some(now().plus_secs(60)),
        vec![],
    );
    let (status, body, _) = post_delegate(&node, &ghost_owner_grant).await;
    assert_eq!(status, 200);
    assert!(body["skipped"].as_array().unwrap().len() == 1);
    assert_eq!(
        body["stored"], false,
        "names only an unhosted space: not kept"
    );
    let cid = parse_cid(body["cid"].as_str().unwrap()).unwrap();
    let r = kv(&node, &o.session, &[cid], &ghost, "get", &[], vec![]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // naming a hosted space too, it is kept; the unhosted one answers 404
    let ghost_and_home = siwe_header(
        &o.wallet,
        o.session.did().verification_method().to_string(),
        vec![
            capability(&ghost, "tinycloud.kv/get").unwrap(),
            capability(&o.res("kv"), "tinycloud.kv/get").unwrap(),
        ],
        Some(now().plus_secs(60)),
        vec![],
    );
    let (status, body, _) = post_delegate(&node, &ghost_and_home).await;
    assert_eq!(status, 200);
    assert_eq!(body["stored"], true);
    assert!(body["skipped"].as_array().unwrap().len() == 1);
    let cid = parse_cid(body["cid"].as_str().unwrap()).unwrap();
    let r = kv(&node, &o.session, &[cid], &ghost, "get", &[], vec![]).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test]
async fn revoking_a_middle_link_cuts_off_every_descendant() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 7, "default").await;
    let p = [o.session_cid];
    let c = o.client(&node);
    c.put(&o.res("kv/shared/x"), b"x").await.expect(200);
    let a = ed25519(70);
    let b = ed25519(71);
    let ca = delegate(
        &node,
        &o.session,
        &a.did(),
        &p,
        vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()],
        1800,
    )
    .await;
    let cb = delegate(
        &node,
        &a,
        &b.did(),
        &[ca],
        vec![capability(&o.res("kv/shared/x"), "tinycloud.kv/get").unwrap()],
        900,
    )
    .await;
    let (ac, bc) = (Client::new(&node, &a, &[ca]), Client::new(&node, &b, &[cb]));
    bc.call(&o.res("kv/shared/x"), "get").await.expect(200);

    // status before
    let st = |key: &tinycloud_auth::keys::SecretKey, cid: tinycloud_auth::cid::Cid| {
        let h = invoke_header(
            key,
            &[],
            &format!("urn:cid:{cid}"),
            "tinycloud.delegation/status",
        );
        let node = &node;
        async move {
            let body = serde_json::json!({"cid": cid.to_string()});
            request(
                node,
                reqwest::Method::POST,
                "/delegation/status",
                &h,
                Some(&body),
            )
            .await
        }
    };
    let (s, v) = st(&b, cb).await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "active");

    // a stranger cannot revoke
    let stranger = ed25519(72);
    assert_eq!(revoke(&node, &stranger, ca).await.0, 403);

    // the session (delegator of A) revokes A
    let (s, v) = revoke(&node, &o.session, ca).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revoked"], true);
    assert_eq!(v["cid"], ca.to_string());

    let r = bc.call(&o.res("kv/shared/x"), "get").await;
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("delegation-ancestor-revoked"),
        "{}",
        r.text()
    );
    let r = ac.call(&o.res("kv/shared/x"), "get").await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("delegation-revoked"), "{}", r.text());
    let (_, v) = st(&b, cb).await;
    assert_eq!(v["status"], "revoked");
    // new delegations under the revoked link are refused
    let gc = ucan_delegation(
        &a,
        &ed25519(73).did(),
        &[ca],
        vec![capability(&o.res("kv/shared/x"), "tinycloud.kv/get").unwrap()],
        60,
    );
    assert_eq!(post_delegate(&node, &gc).await.0, 401);
    // the owner's own session is unaffected
    c.call(&o.res("kv/shared/x"), "get").await.expect(200);
}

#[tokio::test]
async fn public_space_reads_and_quota() {
    // The space's delegations (host + session, a few KiB) count in its quota too.
    let node = Node::start(
        NODE_BIN,
        &[("TINYCLOUD_PUBLIC_SPACES__STORAGE_LIMIT", "16384")],
    );
    let o = Owner::sign_in(&node, 8, "public").await;
    let c = o.client(&node);
    let r = c
        .kv(
            &o.res("kv/.well-known/key"),
            "put",
            &[
                ("content-type", "application/json"),
                ("x-tinycloud-meta-private", "1"),
            ],
            b"{\"k\":1}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = get(&node, &format!("/public/{}/kv/.well-known/key", o.space)).await;
    assert_eq!(g.status(), 200);
    assert_eq!(g.headers()["content-type"], "application/json");
    assert!(
        g.headers().get("x-tinycloud-meta-private").is_none(),
        "only content headers are public"
    );
    assert_eq!(g.bytes().await.unwrap().as_ref(), b"{\"k\":1}");
    let l: Vec<String> = get(&node, &format!("/public/{}/kv?prefix=.well", o.space))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(l, [".well-known/key"]);
    let missing = get(&node, &format!("/public/{}/kv/none", o.space)).await;
    assert_eq!(missing.status(), 404);
    // a non-public space is not readable this way
    let priv_space = o.space.to_string().replace(":public", ":default");
    let r = get(&node, &format!("/public/{}/kv/x", priv_space)).await;
    assert_eq!(r.status(), 404);
    // quota: 16 KiB for public spaces, delegations included
    let big = c.kv(&o.res("kv/big"), "put", &[], vec![7u8; 16384]).await;
    assert_eq!(big.status, 413, "{}", big.text());
    let available: usize = big
        .text()
        .split(['(', ' '])
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {}", big.text()));
    assert!(
        (1..16384 - 1000).contains(&available),
        "{available} bytes left: the delegations are not charged"
    );
    let fill = c
        .kv(&o.res("kv/fill"), "put", &[], vec![7u8; available])
        .await;
    assert_eq!(fill.status, 200, "{}", fill.text());
    let over = c.kv(&o.res("kv/more"), "put", &[], vec![1u8]).await;
    assert_eq!(over.status, 402, "{}", over.text());
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let mut node = Node::start(NODE_BIN, &[]);
    assert_eq!(get(&node, "/healthz").await.status(), 200);
    let pid = node.child.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let exit = node.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

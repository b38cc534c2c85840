//! Attacks on the issue-12 surface, against the real binary: the admin quota API's limits
//! as a hostile delegate meets them (a space's SQL bytes count against the quota of its KV
//! writes and stored delegations too), the delegation listing, the hook ticket's signals flag.

mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::session::capability;

const SECRET: &str = "an-admin-secret-of-more-than-32-bytes-0123456789";

async fn admin(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{}{path}", node.url))
        .header("authorization", format!("Bearer {SECRET}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn usage(node: &Node, space: &str) -> u64 {
    let (status, q) = admin(
        node,
        reqwest::Method::GET,
        &format!("/admin/quota/{space}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{q}");
    q["current_usage_bytes"].as_u64().unwrap()
}

async fn set_limit(node: &Node, space: &str, limit: u64) {
    let (status, q) = admin(
        node,
        reqwest::Method::PUT,
        &format!("/admin/quota/{space}"),
        Some(json!({ "limit_bytes": limit })),
    )
    .await;
    assert_eq!(status, 200, "{q}");
}

/// A space whose SQL database holds about 20 kB.
async fn space_with_sql(node: &Node, n: u8) -> Owner {
    let o = Owner::sign_in(node, n, "default").await;
    let c = o.client(node);
    c.execute(&o.res("sql/main"), "admin", "CREATE TABLE t (x TEXT)")
        .await
        .expect(200);
    let big = "x".repeat(20_000);
    c.execute(
        &o.res("sql/main"),
        "write",
        &format!("INSERT INTO t VALUES ('{big}')"),
    )
    .await
    .expect(200);
    o
}

/// Attack: the quota counts a space's SQL bytes (the admin API reports them in its usage), so
/// a KV write may not take the room the database already fills. Before the fix a KV write
/// was measured against the KV and delegation bytes alone, and a space could hold its limit
/// twice over (once in SQL, once in KV).
#[tokio::test]
async fn kv_writes_count_the_spaces_sql_bytes() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let o = space_with_sql(&node, 90).await;
    let space = o.space.to_string();
    let used = usage(&node, &space).await;
    assert!(used > 20_000, "the SQL bytes are reported: {used}");
    set_limit(&node, &space, used + 100).await;
    let c = o.client(&node);
    let over = c.put(&o.res("kv/big"), &[7u8; 1000]).await;
    assert_eq!(over.status, 413, "{}", over.text());
    assert_eq!(usage(&node, &space).await, used, "nothing was written");
    c.put(&o.res("kv/small"), &[7u8; 60]).await.expect(200);
    // At the limit (SQL + KV): the next write is refused outright.
    set_limit(&node, &space, used + 60).await;
    let full = c.put(&o.res("kv/more"), b"x").await;
    assert_eq!(full.status, 402, "{}", full.text());
    assert!(usage(&node, &space).await <= used + 60);
}

/// Attack: a stored delegation is charged to the same quota, SQL bytes included.
#[tokio::test]
async fn stored_delegations_count_the_spaces_sql_bytes() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let o = space_with_sql(&node, 91).await;
    let space = o.space.to_string();
    let used = usage(&node, &space).await;
    set_limit(&node, &space, used).await;
    let friend = ed25519(92);
    let g = ucan_delegation(
        &o.session,
        &friend.did(),
        &[o.session_cid],
        vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()],
        600,
    );
    let (status, _, text) = post_delegate(&node, &g).await;
    assert_eq!(status, 402, "{text}");
    assert_eq!(usage(&node, &space).await, used);
}

/// Attack: an upload started before the operator lowers a space's quota does not commit
/// against the old limit. The limit is read again once the body is in, so a slow upload
/// (a hostile delegate dribbling a large value) cannot outrun an override set meanwhile.
#[tokio::test]
async fn an_upload_in_flight_is_held_to_a_quota_lowered_meanwhile() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_ADMIN_SECRET", SECRET),
            ("TINYCLOUD_STORAGE__LIMIT", "1 MiB"),
        ],
    );
    let o = Owner::sign_in(&node, 93, "default").await;
    let space = o.space.to_string();
    let used = usage(&node, &space).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let header = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/slow"),
        "tinycloud.kv/put",
    );
    let url = format!("{}/invoke", node.url);
    let upload = tokio::spawn(async move {
        let r = http()
            .post(url)
            .header("authorization", header)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    tx.send(vec![1u8; 1000]).await.unwrap();
    // The node has read the limit and is streaming the body.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    set_limit(&node, &space, used).await;
    tx.send(vec![2u8; 9000]).await.unwrap();
    drop(tx);
    let (status, text) = upload.await.unwrap();
    assert!(
        status == 413 || status == 402,
        "the upload committed past the lowered quota: {status} {text}"
    );
    assert_eq!(usage(&node, &space).await, used, "nothing was written");
}

/// Attack: header tricks on the admin bearer (a second `Authorization` header carrying the
/// secret after a wrong one, a tab for the space, the secret in another header), and
/// out-of-range or oversized admin input: all refused with a 4xx, nothing changed.
#[tokio::test]
async fn admin_header_tricks_and_out_of_range_input_are_refused() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let space = "tinycloud:pkh:eip155:1:0x8ba1f109551bD432803012645Ac136ddd64DBA72:default";
    let path = format!("{}/admin/quota/{space}", node.url);
    let send = |headers: Vec<(&'static str, String)>, body: String| {
        let mut req = http()
            .put(&path)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let one = r#"{"limit_bytes": 1}"#.to_owned();
    let right = format!("Bearer {SECRET}");
    for headers in [
        vec![
            ("authorization", "Bearer wrong".to_owned()),
            ("authorization", right.clone()),
        ],
        vec![("authorization", format!("Bearer\t{SECRET}"))],
        vec![("authorization", format!("Token {SECRET}"))],
        vec![("x-admin-secret", SECRET.to_owned())],
        vec![("proxy-authorization", right.clone())],
    ] {
        assert_eq!(send(headers.clone(), one.clone()).await, 401, "{headers:?}");
    }
    for body in [
        r#"{"limit_bytes": 18446744073709551616}"#.to_owned(),
        r#"{"limit_bytes": 1e3}"#.to_owned(),
        r#"{"limit_bytes": 1, "extra": true, "limit_bytes": 2}"#.to_owned(),
        "[]".to_owned(),
        String::new(),
    ] {
        let status = send(vec![("authorization", right.clone())], body.clone()).await;
        assert_eq!(status, 400, "{body}");
    }
    let huge = format!(r#"{{"limit_bytes": 1, "pad": "{}"}}"#, "x".repeat(200_000));
    assert_eq!(
        send(vec![("authorization", right.clone())], huge).await,
        413
    );
    // The largest limit is accepted (and read back as a number, not a 500).
    let max = format!(r#"{{"limit_bytes": {}}}"#, u64::MAX);
    assert_eq!(send(vec![("authorization", right.clone())], max).await, 200);
    let (status, q) = admin(
        &node,
        reqwest::Method::GET,
        &format!("/admin/quota/{space}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{q}");
    assert!(q["override_bytes"].as_u64().is_some(), "{q}");
    // Bad space ids, percent-encoded or not: 400, never 500.
    for bad in [
        "tinycloud:pkh:eip155:1:0xnothex:default",
        "tinycloud%3Apkh%3Aeip155%3A1%3A0x8ba1f109551bD432803012645Ac136ddd64DBA72",
        "%00",
        "tinycloud:key:z6Mk:%2F..%2F",
    ] {
        let (status, v) = admin(
            &node,
            reqwest::Method::GET,
            &format!("/admin/quota/{bad}"),
            None,
        )
        .await;
        assert!(status == 400 || status == 404, "{bad}: {status} {v}");
    }
}

const LIST: &str = "tinycloud.delegation/list";

/// Attack: an account "adopts" a stranger's key (delegates it the list ability, which needs
/// no consent), so the key's delegations are scanned for the account's listing, though never
/// shown. When the scan bound ends a page on one of them, the cursor's position is that
/// row: the cursor is sealed, so its holder does not learn the hidden delegation's CID or
/// when it was stored.
#[tokio::test]
async fn a_scan_bound_cursor_does_not_reveal_a_hidden_row() {
    use futures_util::StreamExt as _;
    let node = Node::start(NODE_BIN, &[]);
    let alice = Owner::sign_in(&node, 94, "default").await;
    let mallory = Owner::sign_in(&node, 95, "default").await;
    let bob = ed25519(96);
    let d_bob = delegate(
        &node,
        &alice.session,
        &bob.did(),
        &[alice.session_cid],
        vec![capability(&alice.res("kv/notes/"), "tinycloud.kv/get").unwrap()],
        600,
    )
    .await;
    // Bob's own business: 2,100 delegations resting on Alice.
    let hidden: Vec<String> = futures_util::stream::iter(0..2100u32)
        .map(|i| {
            let (node, bob) = (&node, &bob);
            let to = ed25519((i % 200) as u8).did();
            let caps = vec![capability(&alice.res("kv/notes/"), "tinycloud.kv/get").unwrap()];
            async move {
                let g = ucan_delegation(bob, &to, &[d_bob], caps, 300);
                let (status, body, text) = post_delegate(node, &g).await;
                assert_eq!(status, 200, "{text}");
                body["cid"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    // Mallory adopts Bob's key, then lists her account with a filter nothing matches, so
    // the page ends at the scan bound, among Bob's rows.
    let adopt = siwe_header(
        &mallory.wallet,
        bob.did().verification_method().to_string(),
        vec![capability(&mallory.res("delegation"), LIST).unwrap()],
        Some(now().plus_secs(600)),
        vec![],
    );
    let (s, _, text) = post_delegate(&node, &adopt).await;
    assert_eq!(s, 200, "{text}");
    let m = ed25519(97);
    let session = siwe_header(
        &mallory.wallet,
        m.did().verification_method().to_string(),
        vec![capability(&mallory.res("delegation"), LIST).unwrap()],
        Some(now().plus_secs(600)),
        vec![],
    );
    let (s, body, text) = post_delegate(&node, &session).await;
    assert_eq!(s, 200, "{text}");
    let m_cid = tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap();
    let list = |cursor: Option<String>| {
        let (node, m, res) = (&node, &m, mallory.res("delegation"));
        async move {
            let t = invoke_header(m, &[m_cid], &res, LIST);
            let mut q = json!({"status": "pending", "limit": 100});
            if let Some(c) = cursor {
                q["cursor"] = json!(c);
            }
            request(
                node,
                reqwest::Method::POST,
                "/delegation/query",
                &t,
                Some(&q),
            )
            .await
        }
    };
    let (s, page) = list(None).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"], json!([]), "nothing of Bob's is shown");
    let cursor = page["nextCursor"]
        .as_str()
        .expect("the scan bound ends the page")
        .to_owned();
    let (payload, _) = cursor.split_once('.').unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    for cid in &hidden {
        assert!(
            !raw.contains(cid.as_str()),
            "the cursor reveals {cid}: {raw}"
        );
    }
    // The cursor still continues the listing.
    let (s, next) = list(Some(cursor)).await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next["items"], json!([]));
}

/// Attack: concurrent writes to several databases of one space each see the same remainder;
/// together they must not take the space past its quota.
#[tokio::test]
async fn concurrent_sql_writes_to_several_databases_stay_within_the_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let o = Owner::sign_in(&node, 98, "default").await;
    let space = o.space.to_string();
    let c = o.client(&node);
    let dbs = ["a", "b", "c", "d"];
    for db in dbs {
        c.execute(
            &o.res(&format!("sql/{db}")),
            "admin",
            "CREATE TABLE t (x TEXT)",
        )
        .await
        .expect(200);
    }
    let used = usage(&node, &space).await;
    let limit = used + 200_000;
    set_limit(&node, &space, limit).await;
    let big = "x".repeat(150_000);
    let writes = dbs.map(|db| {
        let stmt = format!("INSERT INTO t VALUES ('{big}')");
        let (c, res) = (&c, o.res(&format!("sql/{db}")));
        async move { c.execute(&res, "write", &stmt).await.status }
    });
    let statuses = futures_util::future::join_all(writes).await;
    let after = usage(&node, &space).await;
    assert!(
        after <= limit,
        "the space holds {after} bytes past its limit of {limit} (answers {statuses:?})"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// Attack: concurrent KV uploads each see the same remainder; the index refuses the ones that
/// no longer fit when they commit.
#[tokio::test]
async fn concurrent_kv_uploads_stay_within_the_quota() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let o = Owner::sign_in(&node, 99, "default").await;
    let space = o.space.to_string();
    let used = usage(&node, &space).await;
    let limit = used + 100_000;
    set_limit(&node, &space, limit).await;
    let c = o.client(&node);
    let writes = (0..6).map(|i| {
        let (c, res) = (&c, o.res(&format!("kv/k{i}")));
        async move { c.put(&res, &[9u8; 60_000]).await.status }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(usage(&node, &space).await <= limit);
}

/// Attack: `"abilities": []` (every write, as reference clients send it) widens nothing: a
/// delegate subscribed on one KV prefix cannot use it to reach the whole KV service, another
/// service, or an ability of another service; and the ticket's `signals` flag cannot be
/// switched on by editing a ticket (its MAC covers it).
#[tokio::test]
async fn empty_ability_filters_widen_nothing_and_signals_cannot_be_forged() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 100, "default").await;
    let bob = ed25519(101);
    let grant = delegate(
        &node,
        &o.session,
        &bob.did(),
        &[o.session_cid],
        vec![capability(&o.res("hooks/kv/notes"), "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    let space = o.space.to_string();
    let ticket = |scope: Value, signals: bool| {
        let (node, bob) = (&node, &bob);
        async move {
            let token = tinycloud_auth::session::invocation(
                bob,
                None,
                &[grant],
                vec![capability(
                    scope["resource"].as_str().unwrap(),
                    "tinycloud.hooks/subscribe",
                )
                .unwrap()],
                now(),
                120,
                &uuid(),
                vec![],
            )
            .unwrap();
            let mut sub = scope.clone();
            sub.as_object_mut().unwrap().remove("resource");
            let body = json!({"subscriptions": [sub], "signals": signals});
            request(
                node,
                reqwest::Method::POST,
                "/hooks/tickets",
                token.as_str(),
                Some(&body),
            )
            .await
        }
    };
    let notes = format!("{space}/hooks/kv/notes");
    let (s, ok) = ticket(
        json!({"resource": notes, "space": space, "service": "kv", "pathPrefix": "notes", "abilities": []}),
        false,
    )
    .await;
    assert_eq!(s, 200, "{ok}");
    for (scope, want) in [
        (
            json!({"resource": notes, "space": space, "service": "kv", "abilities": []}),
            401,
        ),
        (
            json!({"resource": notes, "space": space, "service": "sql", "abilities": []}),
            401,
        ),
        (
            json!({"resource": notes, "space": space, "service": "kv", "pathPrefix": "notes", "abilities": ["tinycloud.sql/write"]}),
            400,
        ),
        (
            json!({"resource": notes, "space": space, "service": "kv", "pathPrefix": "notesx", "abilities": []}),
            401,
        ),
    ] {
        let (s, v) = ticket(scope.clone(), false).await;
        assert_eq!(s, want, "{scope}: {v}");
    }
    // Switch the signals flag on in the ticket's payload, keeping its MAC.
    let text = ok["ticket"].as_str().unwrap();
    let (payload, mac) = text.split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["signals"], false, "{claims}");
    claims["signals"] = json!(true);
    let forged = format!(
        "{}.{mac}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let r = http()
        .get(format!("{}/hooks/events", node.url))
        .query(&[("ticket", forged.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// Attack: the public rate limiter against the real binary. It counts the connection's
/// address only: `X-Forwarded-For`, `X-Real-IP` and `Forwarded` naming other clients get no
/// fresh bucket, HEAD counts like GET, and a refused client is refused on every public route
/// (listing too) while authenticated routes are not limited.
#[tokio::test]
async fn the_public_rate_limiter_ignores_forwarding_headers() {
    let node = Node::start(
        NODE_BIN,
        &[
            ("TINYCLOUD_PUBLIC_SPACES__RATE_LIMIT_PER_MINUTE", "4"),
            ("TINYCLOUD_PUBLIC_SPACES__RATE_LIMIT_BURST", "0"),
        ],
    );
    let space = "tinycloud:pkh:eip155:1:0x8ba1f109551bD432803012645Ac136ddd64DBA72:public";
    let url = format!("{}/public/{space}/kv/k", node.url);
    let mut answers = Vec::new();
    for i in 0..4u8 {
        let req = if i % 2 == 0 {
            http().get(&url)
        } else {
            http().head(&url)
        };
        answers.push(req.send().await.unwrap().status().as_u16());
    }
    assert!(answers.iter().all(|s| *s == 404), "{answers:?}");
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-real-ip", "203.0.113.8"),
        ("forwarded", "for=203.0.113.9"),
        ("x-forwarded-for", "2001:db8::1, 203.0.113.10"),
    ] {
        let r = http().get(&url).header(name, value).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 429, "{name}: {value}");
    }
    let r = http()
        .get(format!("{}/public/{space}/kv", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429, "the listing shares the bucket");
    // Authenticated routes are not behind it.
    let o = Owner::sign_in(&node, 102, "default").await;
    o.client(&node).put(&o.res("kv/x"), b"v").await.expect(200);
}

//! A delegate cannot exceed or resurrect its authority, and caveats in chains are enforced.

use super::*;

#[tokio::test]
async fn a_delegate_cannot_exceed_or_resurrect_its_authority() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 77, "default").await;
    o.client(&node)
        .put(&o.res("kv/notes/a"), b"v")
        .await
        .expect(200);
    let (b, c, d) = (ed25519(78), ed25519(79), ed25519(80));
    let s = [o.session_cid];
    let notes_get = || cap(&o.res("kv/notes"), "tinycloud.kv/get");
    let g = delegate(&node, &o.session, &b.did(), &s, vec![notes_get()], 600).await;
    let sql_ro = with_caveat(
        cap(&o.res("sql/app"), "tinycloud.sql/read"),
        json!({"readOnly": true, "tables": ["notes"]}),
    );
    let g_sql = delegate(&node, &o.session, &b.did(), &s, vec![sql_ro], 600).await;
    let t = ucan(
        &o.session,
        &b.did(),
        &s,
        vec![notes_get()],
        Some(600),
        None,
        true,
    );
    let (st, body, text) = post_delegate(&node, &t).await;
    assert_eq!(st, 200, "{text}");
    let g_terminal = cid_of(&body);
    let g_revoked = delegate(&node, &o.session, &b.did(), &s, vec![notes_get()], 600).await;
    revoke(&node, &o.session, g_revoked).await;
    let stranger = wallet(81);
    let network = format!("urn:tinycloud:encryption:{}:default", o.did);

    // (name, delegation token, expected status)
    let registrations: Vec<(&str, String, u16)> = vec![
        (
            "widen the ability",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![cap(&o.res("kv/notes"), "tinycloud.kv/put")],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "widen the resource to the whole KV",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![cap(&o.res("kv"), "tinycloud.kv/get")],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a sibling path sharing the prefix",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![cap(&o.res("kv/notesx"), "tinycloud.kv/get")],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "another service",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![cap(&o.res("sql/notes"), "tinycloud.sql/read")],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "expiry past the parent",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![notes_get()],
                Some(3600),
                None,
                false,
            ),
            401,
        ),
        (
            "no expiry under an expiring parent",
            ucan(&b, &c.did(), &[g], vec![notes_get()], None, None, false),
            401,
        ),
        (
            "not-before in the future",
            ucan(
                &b,
                &c.did(),
                &[g],
                vec![notes_get()],
                Some(300),
                Some(120),
                false,
            ),
            401,
        ),
        (
            "issued by someone other than the parent's audience",
            ucan(
                &c,
                &d.did(),
                &[g],
                vec![notes_get()],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "root authority over someone else's space",
            ucan(&c, &d.did(), &[], vec![notes_get()], Some(300), None, false),
            401,
        ),
        (
            "a SIWE from another wallet over the owner's space",
            siwe_header(
                &stranger,
                c.did().to_string(),
                vec![notes_get()],
                Some(now().plus_secs(300)),
                vec![],
            ),
            401,
        ),
        (
            "an unknown parent",
            ucan(
                &b,
                &c.did(),
                &[blake3_cid(b"nope")],
                vec![notes_get()],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "the same parent cited twice",
            ucan(
                &b,
                &c.did(),
                &[g, g],
                vec![notes_get()],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a caveat dropped in the child",
            ucan(
                &b,
                &c.did(),
                &[g_sql],
                vec![cap(&o.res("sql/app"), "tinycloud.sql/read")],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a caveat widened in the child",
            ucan(
                &b,
                &c.did(),
                &[g_sql],
                vec![with_caveat(
                    cap(&o.res("sql/app"), "tinycloud.sql/read"),
                    json!({"readOnly": true, "tables": ["notes", "secrets"]}),
                )],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a terminal parent re-delegated",
            ucan(
                &b,
                &c.did(),
                &[g_terminal],
                vec![notes_get()],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a revoked parent",
            ucan(
                &b,
                &c.did(),
                &[g_revoked],
                vec![notes_get()],
                Some(300),
                None,
                false,
            ),
            401,
        ),
        (
            "a KV grant with a caveat (KV defines none)",
            ucan(
                &o.session,
                &b.did(),
                &s,
                vec![with_caveat(notes_get(), json!({"pathPrefix": "notes/a"}))],
                Some(300),
                None,
                false,
            ),
            403,
        ),
        (
            "a hooks subscribe grant with a caveat",
            ucan(
                &o.session,
                &b.did(),
                &s,
                vec![with_caveat(
                    cap(&o.res("hooks/kv"), "tinycloud.hooks/subscribe"),
                    json!({"pathPrefix": "notes/"}),
                )],
                Some(300),
                None,
                false,
            ),
            403,
        ),
        (
            "a decrypt grant with a caveat",
            ucan(
                &o.session,
                &b.did(),
                &s,
                vec![with_caveat(
                    cap(&network, "tinycloud.encryption/decrypt"),
                    json!({"envelope": "sha256:00"}),
                )],
                Some(300),
                None,
                false,
            ),
            403,
        ),
        (
            "a SQL grant with a caveat SQL does not define",
            ucan(
                &o.session,
                &b.did(),
                &s,
                vec![with_caveat(
                    cap(&o.res("sql/app"), "tinycloud.sql/read"),
                    json!({"maxRows": 1}),
                )],
                Some(300),
                None,
                false,
            ),
            403,
        ),
        (
            "an owner-signed session with a decrypt caveat",
            siwe_header(
                &o.wallet,
                b.did().to_string(),
                vec![with_caveat(
                    cap(&network, "tinycloud.encryption/decrypt"),
                    json!({"envelope": "sha256:00"}),
                )],
                Some(now().plus_secs(300)),
                vec![],
            ),
            403,
        ),
    ];
    for (name, token, want) in registrations {
        let (st, _, text) = post_delegate(&node, &token).await;
        assert_eq!(st, want, "{name}: {text}");
    }

    // Invocations: (name, invocation token, expected status).
    let inv = |key: &SecretKey, proofs: &[Cid], caps: Vec<Capability>, ttl: i64| {
        invocation(key, None, proofs, caps, now(), ttl, &uuid(), vec![])
            .unwrap()
            .as_str()
            .to_owned()
    };
    let note = o.res("kv/notes/a");
    let invocations: Vec<(&str, String, u16)> = vec![
        (
            "a grant presented by someone else",
            inv(&c, &[g], vec![cap(&note, "tinycloud.kv/get")], 60),
            401,
        ),
        (
            "an ability beyond the grant",
            inv(&b, &[g], vec![cap(&note, "tinycloud.kv/del")], 60),
            401,
        ),
        (
            "a resource outside the grant",
            inv(
                &b,
                &[g],
                vec![cap(&o.res("kv/other"), "tinycloud.kv/get")],
                60,
            ),
            401,
        ),
        (
            "a lifetime over the cap",
            inv(&b, &[g], vec![cap(&note, "tinycloud.kv/get")], 3600),
            401,
        ),
        (
            "a revoked grant",
            inv(&b, &[g_revoked], vec![cap(&note, "tinycloud.kv/get")], 60),
            401,
        ),
        (
            "a caveat the service does not enforce",
            inv(
                &b,
                &[g],
                vec![with_caveat(cap(&note, "tinycloud.kv/get"), json!({"x": 1}))],
                60,
            ),
            403,
        ),
    ];
    for (name, token, want) in invocations {
        let r = invoke(&node, &token, &[], vec![]).await;
        assert_eq!(r.status, want, "{name}: {}", r.text());
    }
    let no_exp = UcanBuilder::new(b.did().verification_method(), b.did().into(), uuid())
        .proof(g)
        .capability(cap(&note, "tinycloud.kv/get"))
        .sign(&b)
        .unwrap();
    invoke(&node, no_exp.as_str(), &[], vec![])
        .await
        .expect(401);

    // Revocation by a stranger, or by a delegate of the session it does not hold, is refused,
    // and the grant keeps working.
    let (st, body) = revoke(&node, &c, g).await;
    assert_eq!(st, 403, "{body}");
    let (st, body) = revoke(&node, &b, o.session_cid).await;
    assert_eq!(st, 403, "{body}");
    Client::new(&node, &b, &[g])
        .call(&note, "get")
        .await
        .expect(200);
    o.client(&node).call(&note, "get").await.expect(200);
}

#[tokio::test]
async fn caveats_in_a_siwe_recap_are_enforced() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 82, "default").await;
    let db = o.res("sql/app");
    o.client(&node)
        .sql(
            &db,
            "admin",
            json!({"action": "batch", "statements": [
                {"sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"},
                {"sql": "CREATE TABLE secrets (id INTEGER PRIMARY KEY, body TEXT)"},
                {"sql": "INSERT INTO notes (body) VALUES ('hello')"},
                {"sql": "INSERT INTO secrets (body) VALUES ('s3cret')"}
            ]}),
        )
        .await
        .expect(200);
    // The owner signs a session whose ReCap restricts every SQL ability to reading `notes`.
    let k = ed25519(83);
    let ro = json!({"readOnly": true, "tables": ["notes"]});
    let caps = ["read", "write", "schema", "admin"]
        .iter()
        .map(|a| with_caveat(cap(&db, &format!("tinycloud.sql/{a}")), ro.clone()))
        .collect();
    let header = siwe_header(
        &o.wallet,
        k.did().verification_method().to_string(),
        caps,
        Some(now().plus_secs(3600)),
        vec![],
    );
    let (s, body, text) = post_delegate(&node, &header).await;
    assert_eq!(s, 200, "{text}");
    let kc = Client::new(&node, &k, &[cid_of(&body)]);
    let r = kc
        .query(&db, "read", "SELECT body FROM notes")
        .await
        .expect(200);
    assert!(r.text().contains("hello"), "{}", r.text());
    let attempts = [
        ("write", "INSERT INTO notes (body) VALUES ('x')"),
        ("write", "UPDATE notes SET body = 'x'"),
        ("write", "DELETE FROM notes"),
        ("schema", "CREATE TABLE t (a)"),
        ("admin", "DROP TABLE secrets"),
        ("admin", "CREATE TABLE u (a)"),
    ];
    for (ability, stmt) in attempts {
        let r = kc.execute(&db, ability, stmt).await;
        assert_eq!(r.status, 403, "{ability} {stmt}: {}", r.text());
    }
    let r = kc.query(&db, "read", "SELECT body FROM secrets").await;
    assert_eq!(r.status, 403, "a table outside the caveat: {}", r.text());
    // Nothing was written.
    let r = o
        .client(&node)
        .query(
            &db,
            "read",
            "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM sqlite_master)",
        )
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([[1, 2]]), "{}", r.text());
}

#[tokio::test]
async fn a_hooks_invocation_with_a_caveat_is_refused() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 84, "default").await;
    // A subscribe invocation narrowing itself with a caveat the hooks service does not
    // enforce: refused at the door, no ticket is minted.
    let sub = with_caveat(
        cap(&o.res("hooks/kv"), "tinycloud.hooks/subscribe"),
        json!({"pathPrefix": "notes/"}),
    );
    let token = invocation(
        &o.session,
        None,
        &[o.session_cid],
        vec![sub],
        now(),
        60,
        &uuid(),
        vec![],
    )
    .unwrap();
    let scopes = json!({"subscriptions": [{"space": o.space.to_string(), "service": "kv"}]});
    let (s, body) = request(
        &node,
        reqwest::Method::POST,
        "/hooks/tickets",
        token.as_str(),
        Some(&scopes),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    // The same without the caveat is fine (the refusal is the caveat's).
    let plain = cap(&o.res("hooks/kv"), "tinycloud.hooks/subscribe");
    let token = invocation(
        &o.session,
        None,
        &[o.session_cid],
        vec![plain],
        now(),
        60,
        &uuid(),
        vec![],
    )
    .unwrap();
    let (s, body) = request(
        &node,
        reqwest::Method::POST,
        "/hooks/tickets",
        token.as_str(),
        Some(&scopes),
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // (Decrypt invocations pass the same door; a decrypt grant with a caveat is refused at
    // registration, see `a_delegate_cannot_exceed_or_resurrect_its_authority`.)
}

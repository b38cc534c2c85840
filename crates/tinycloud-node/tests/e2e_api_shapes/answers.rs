//! Every success answer of every route matches the served OpenAPI document, and the checker refuses what the document does not describe.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_answers_match_the_served_document() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[hooks]\nallow_private_destinations = true\n").unwrap();
    let admin_secret = "e2e-api-shapes-admin-secret-0123456789abcdef";
    let node = Node::start_in(
        NODE_BIN,
        &dir.path().join("data"),
        &[
            ("TINYCLOUD_CONFIG", cfg.to_str().unwrap()),
            ("TINYCLOUD_ADMIN_SECRET", admin_secret),
        ],
    );
    let doc: Value = get_json(&node, "/openapi.json").await;
    let mut s = Shapes {
        doc,
        seen: BTreeSet::new(),
    };
    let (get, post) = (Method::GET, Method::POST);

    // discovery
    s.call(
        &node,
        get.clone(),
        "/openapi.json",
        "/openapi.json",
        None,
        None,
        200,
    )
    .await;
    let info = s
        .call(&node, get.clone(), "/info", "/info", None, None, 200)
        .await;
    s.call(&node, get.clone(), "/version", "/version", None, None, 200)
        .await;
    let nd: Did = info["nodeId"].as_str().unwrap().parse().unwrap();

    // delegation: register, status (known, unknown), revoke, status again
    let o = Owner::sign_in(&node, 90, "shapes").await;
    let p = [o.session_cid];
    let b = ed25519(91);
    let g = ucan_delegation(
        &o.session,
        &b.did(),
        &p,
        vec![capability(&o.res("kv/shared"), "tinycloud.kv/get").unwrap()],
        600,
    );
    let v = s
        .call(
            &node,
            post.clone(),
            "/delegate",
            "/delegate",
            Some(&g),
            None,
            200,
        )
        .await;
    let cb = parse_cid(v["cid"].as_str().unwrap()).unwrap();
    let status_of = |cid: tinycloud_auth::cid::Cid| {
        invoke_header(
            &b,
            &[],
            &format!("urn:cid:{cid}"),
            "tinycloud.delegation/status",
        )
    };
    let at = "/delegation/status";
    let v = s
        .call(
            &node,
            post.clone(),
            at,
            at,
            Some(&status_of(cb)),
            Some(&json!({"cid": cb.to_string()})),
            200,
        )
        .await;
    assert_eq!(v["status"], "active");
    let unknown = blake3_cid(b"never delegated");
    let v = s
        .call(
            &node,
            post.clone(),
            at,
            at,
            Some(&status_of(unknown)),
            Some(&json!({"cid": unknown.to_string()})),
            404,
        )
        .await;
    assert_eq!(v["status"], "not_found");
    let rv = invoke_header(
        &o.session,
        &[],
        &format!("urn:cid:{cb}"),
        "tinycloud.delegation/revoke",
    );
    s.call(
        &node,
        post.clone(),
        "/revoke",
        "/revoke",
        Some(&rv),
        None,
        200,
    )
    .await;
    let v = s
        .call(
            &node,
            post.clone(),
            at,
            at,
            Some(&status_of(cb)),
            Some(&json!({"cid": cb.to_string()})),
            200,
        )
        .await;
    assert_eq!(v["status"], "revoked");
    // the account listing: `b`'s own account (root authority over a space of its key) has the
    // revoked grant it received, with every optional field of a revoked item
    let b_space = tinycloud_auth::resource::SpaceId::new(b.did(), "default").unwrap();
    let q = invoke_header(
        &b,
        &[],
        &format!("{b_space}/delegation"),
        "tinycloud.delegation/list",
    );
    let v = s
        .call(
            &node,
            post.clone(),
            "/delegation/query",
            "/delegation/query",
            Some(&q),
            Some(&json!({"limit": 10})),
            200,
        )
        .await;
    assert_eq!(v["items"][0]["status"], "revoked");
    assert!(v["items"][0]["revokedAt"].is_string());

    // the data plane's JSON answer (capabilities/read)
    let h = invoke_header(
        &o.session,
        &p,
        &o.res("capabilities/all"),
        "tinycloud.capabilities/read",
    );
    s.call(
        &node,
        post.clone(),
        "/invoke",
        "/invoke",
        Some(&h),
        None,
        200,
    )
    .await;

    // signed KV URLs: mint one for a stored value
    o.client(&node)
        .put(&o.res("kv/shapes/signed"), b"signed")
        .await
        .expect(200);
    let sk = "/signed/kv";
    let minted = s
        .call(
            &node,
            post.clone(),
            sk,
            sk,
            Some(&invoke_header(
                &o.session,
                &p,
                &o.res("kv/shapes/signed"),
                "tinycloud.kv/get",
            )),
            Some(&json!({"space": o.space.to_string(), "path": "shapes/signed"})),
            200,
        )
        .await;
    let url = minted["url"].as_str().unwrap();
    assert_eq!(common::get(&node, url).await.status(), 200);

    // hooks: an SSE ticket, a webhook, its listing and its deliveries
    let notes = o.res("hooks/kv/notes");
    let hook = |ability: &str| {
        invoke_header(
            &o.session,
            &p,
            &notes,
            &format!("tinycloud.hooks/{ability}"),
        )
    };
    let scope = json!({"space": o.space.to_string(), "service": "kv", "pathPrefix": "notes"});
    let t = "/hooks/tickets";
    s.call(
        &node,
        post.clone(),
        t,
        t,
        Some(&hook("subscribe")),
        Some(&json!({"subscriptions": [scope]})),
        200,
    )
    .await;
    let got = Arc::new(AtomicUsize::new(0));
    let port = receiver(got.clone()).await;
    let reg = json!({
        "space": o.space.to_string(), "service": "kv", "pathPrefix": "notes",
        "abilities": ["tinycloud.kv/put"],
        "callbackUrl": format!("http://127.0.0.1:{port}/hook"), "secret": "shape-secret",
    });
    let w = "/hooks/webhooks";
    let v = s
        .call(
            &node,
            post.clone(),
            w,
            w,
            Some(&hook("register")),
            Some(&reg),
            200,
        )
        .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let list = format!("/hooks/webhooks?space={}&service=kv&prefix=notes", o.space);
    let v = s
        .call(&node, get.clone(), w, &list, Some(&hook("list")), None, 200)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    o.client(&node)
        .put(&o.res("kv/notes/a"), b"x")
        .await
        .expect(200);
    let d = "/hooks/webhooks/{id}/deliveries";
    let concrete = format!("/hooks/webhooks/{id}/deliveries");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = s
            .call(
                &node,
                get.clone(),
                d,
                &concrete,
                Some(&hook("list")),
                None,
                200,
            )
            .await;
        if v["deliveries"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.load(Ordering::SeqCst) >= 1);

    // encryption: create, describe, discover, decrypt twice, audit in pages
    let network = format!("urn:tinycloud:encryption:{}:default", o.did);
    let enc = |ability: &str, facts: Vec<Map<String, Value>>| {
        invocation(
            &o.session,
            Some(nd.clone()),
            &p,
            vec![capability(&network, &format!("tinycloud.encryption/{ability}")).unwrap()],
            now(),
            120,
            &uuid(),
            facts,
        )
        .unwrap()
        .as_str()
        .to_owned()
    };
    let body =
        json!({"name": "default", "ownerDid": o.did.to_string(), "threshold": {"n": 1, "t": 1}});
    let admin = json!({"type": "tinycloud.encryption.network-admin/v1", "targetNode": nd.to_string(),
        "networkId": network, "bodyHash": canonical_hash(&body), "action": "network.create"});
    let n = "/encryption/networks";
    let v = s
        .call(
            &node,
            post.clone(),
            n,
            n,
            Some(&enc(
                "network.create",
                vec![admin.as_object().unwrap().clone()],
            )),
            Some(&body),
            200,
        )
        .await;
    let net_pub: [u8; 32] = STANDARD
        .decode(v["descriptor"]["publicEncryptionKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let escaped = network.replace(':', "%3A");
    s.call(
        &node,
        get.clone(),
        "/encryption/networks/{id}",
        &format!("/encryption/networks/{escaped}"),
        None,
        None,
        200,
    )
    .await;
    s.call(
        &node,
        get.clone(),
        "/.well-known/encryption/network/{name}",
        &format!("/.well-known/encryption/network/default?ownerDid={}", o.did),
        None,
        None,
        200,
    )
    .await;
    let wrapped = wrap(&PublicKey::from(net_pub), &[7u8; 32]);
    for _ in 0..2 {
        let receiver = StaticSecret::from([9u8; 32]);
        let esk = STANDARD.encode(&wrapped);
        let rpk = STANDARD.encode(PublicKey::from(&receiver).as_bytes());
        let req = json!({
            "type": "tinycloud.encryption.decrypt/v1", "targetNode": nd.to_string(),
            "networkId": network, "alg": ALG, "keyVersion": 1,
            "encryptedSymmetricKey": esk,
            "encryptedSymmetricKeyHash": canonical_hash(&Value::String(esk.clone())),
            "receiverPublicKey": rpk,
            "receiverPublicKeyHash": canonical_hash(&Value::String(rpk.clone())),
        });
        let fact = json!({
            "type": "tinycloud.encryption.decrypt/v1", "targetNode": nd.to_string(),
            "networkId": network, "bodyHash": canonical_hash(&req),
            "encryptedSymmetricKeyHash": req["encryptedSymmetricKeyHash"],
            "receiverPublicKeyHash": req["receiverPublicKeyHash"], "alg": ALG, "keyVersion": 1,
        });
        let token = enc("decrypt", vec![fact.as_object().unwrap().clone()]);
        s.call(
            &node,
            post.clone(),
            "/encryption/networks/{id}/decrypt",
            &format!("/encryption/networks/{escaped}/decrypt"),
            Some(&token),
            Some(&req),
            200,
        )
        .await;
    }
    let a = "/encryption/networks/{id}/audit";
    let page = s
        .call(
            &node,
            get.clone(),
            a,
            &format!("/encryption/networks/{escaped}/audit?limit=1"),
            Some(&enc("audit", vec![])),
            None,
            200,
        )
        .await;
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let page = s
        .call(
            &node,
            get.clone(),
            a,
            &format!("/encryption/networks/{escaped}/audit?limit=1&cursor={cursor}"),
            Some(&enc("audit", vec![])),
            None,
            200,
        )
        .await;
    assert_eq!(page["nextCursor"], Value::Null, "the last page");

    // public reads: the key listing of a space named `public`
    let pubo = Owner::sign_in(&node, 92, "public").await;
    pubo.client(&node)
        .put(&pubo.res("kv/site/index.html"), b"<p>hi</p>")
        .await
        .expect(200);
    let v = s
        .call(
            &node,
            get.clone(),
            "/public/{space}/kv",
            &format!("/public/{}/kv?prefix=site", pubo.space),
            None,
            None,
            200,
        )
        .await;
    assert_eq!(v, json!(["site/index.html"]));

    // node keys
    s.call(
        &node,
        get.clone(),
        "/.well-known/tinycloud/node-keys",
        "/.well-known/tinycloud/node-keys",
        None,
        None,
        200,
    )
    .await;

    // admin
    let bearer = format!("Bearer {admin_secret}");
    let quota = "/admin/quota/{space}";
    let at = format!("/admin/quota/{}", pubo.space);
    s.call(
        &node,
        Method::PUT,
        quota,
        &at,
        Some(&bearer),
        Some(&json!({"limit_bytes": 1_000_000})),
        200,
    )
    .await;
    s.call(&node, get.clone(), quota, &at, Some(&bearer), None, 200)
        .await;
    s.call(
        &node,
        get.clone(),
        "/admin/quota",
        "/admin/quota",
        Some(&bearer),
        None,
        200,
    )
    .await;
    s.call(
        &node,
        get.clone(),
        "/admin/usage",
        "/admin/usage?limit=1",
        Some(&bearer),
        None,
        200,
    )
    .await;
    s.call(&node, Method::DELETE, quota, &at, Some(&bearer), None, 200)
        .await;

    let missing: Vec<_> = s.documented_json().difference(&s.seen).cloned().collect();
    assert!(
        missing.is_empty(),
        "documented JSON answers not exercised: {missing:?}"
    );
}

/// The checker is not vacuous: it refuses an undocumented field, a missing required one, a
/// wrong type, a null where none is documented, and a value outside an enum.
#[tokio::test]
async fn the_checker_refuses_shapes_the_document_does_not_describe() {
    let node = Node::start(NODE_BIN, &[]);
    let doc: Value = get_json(&node, "/openapi.json").await;
    let s = Shapes {
        doc,
        seen: BTreeSet::new(),
    };
    let schema = json!({"$ref": "#/components/schemas/DelegationStatus"});
    let good = json!({"cid": "c", "status": "active", "exists": true, "active": true, "revoked": false, "expired": false});
    s.check(&schema, &good, "ok", true).unwrap();
    let mut bad = vec![];
    let mut extra = good.clone();
    extra["undocumented"] = json!(1);
    bad.push(extra);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("exists");
    bad.push(missing);
    let mut wrong = good.clone();
    wrong["exists"] = json!("yes");
    bad.push(wrong);
    let mut null = good.clone();
    null["active"] = Value::Null;
    bad.push(null);
    let mut outside = good.clone();
    outside["status"] = json!("unknown");
    bad.push(outside);
    for v in bad {
        assert!(s.check(&schema, &v, "bad", true).is_err(), "accepted {v}");
    }
    // through allOf (the decrypt answer): an undocumented field is refused as well
    let schema = json!({"$ref": "#/components/schemas/DecryptResult"});
    let mut v = json!({"nodeSignature": "s", "type": "t", "targetNode": "n", "networkId": "i",
        "invocationCid": "c", "encryptedSymmetricKeyHash": "h", "receiverPublicKeyHash": "h",
        "wrappedKey": "k", "alg": "a", "keyVersion": 1, "requestHash": "r", "nodeId": "n"});
    s.check(&schema, &v, "ok", true).unwrap();
    v["extra"] = json!(true);
    assert!(s.check(&schema, &v, "bad", true).is_err());
}

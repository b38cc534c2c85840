//! The ways a delegate could exceed its KV grant, end to end against the real node: other
//! paths by prefix and encoding tricks, listing outside the grant (and list results that would
//! reveal keys outside it), abilities it was not given (metadata, put, delete, conditional
//! tricks), other spaces, public-space writes, the quota, caveats — each asserted refused.

mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::session::capability;

const SECRET: &[u8] = b"owner-only-secret";

fn cap(resource: &str, ability: &str) -> Capability {
    capability(resource, ability).unwrap()
}

/// An invocation of `ability` on `resource` exactly as written (no client-side checks: the
/// node must refuse what the protocol crate would not build), signed by `key`.
fn raw_invocation(
    key: &tinycloud_auth::keys::SecretKey,
    proofs: &[tinycloud_auth::cid::Cid],
    resource: &str,
    ability: &str,
) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let valid =
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/placeholder";
    let t = invoke_header(key, proofs, valid, ability);
    let mut parts = t.split('.');
    let (h, pl) = (parts.next().unwrap(), parts.next().unwrap());
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(pl).unwrap()).unwrap();
    assert!(payload.contains(valid));
    let payload = payload.replace(valid, resource);
    let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Asserts a refusal: a 4xx (never 200 or a 5xx) that does not leak the owner's secret.
#[track_caller]
fn refused(case: &str, r: &Resp) {
    assert!(
        (400..500).contains(&r.status),
        "{case}: expected a refusal, got {} {}",
        r.status,
        r.text()
    );
    assert!(
        !r.body.windows(SECRET.len()).any(|w| w == SECRET),
        "{case}: the refusal leaks the secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_cannot_exceed_its_kv_grant() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "256 KiB")]);
    let o = Owner::sign_in(&node, 81, "default").await;
    let other = Owner::sign_in(&node, 82, "default").await;
    let p = [o.session_cid];
    let oc = o.client(&node);
    for (k, v) in [
        ("kv/notes/a", b"notes a".as_slice()),
        ("kv/notes/sub/b", b"notes b"),
        ("kv/notes2/leak", SECRET),
        ("kv/notesx", SECRET),
        ("kv/secret", SECRET),
        ("kv/Notes/x", SECRET),
    ] {
        oc.put(&o.res(k), v).await.expect(200);
    }
    other
        .client(&node)
        .put(&other.res("kv/notes/a"), SECRET)
        .await
        .expect(200);
    let etag_a = oc
        .call(&o.res("kv/notes/a"), "get")
        .await
        .expect(200)
        .headers["etag"]
        .to_str()
        .unwrap()
        .to_owned();

    // r: read-only on notes (get + list); w: put-only on notes.
    let r_key = ed25519(83);
    let rg = delegate(
        &node,
        &o.session,
        &r_key.did(),
        &p,
        vec![
            cap(&o.res("kv/notes"), "tinycloud.kv/get"),
            cap(&o.res("kv/notes"), "tinycloud.kv/list"),
        ],
        600,
    )
    .await;
    let r = Client::new(&node, &r_key, &[rg]);
    let w_key = ed25519(84);
    let wg = delegate(
        &node,
        &o.session,
        &w_key.did(),
        &p,
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/put")],
        600,
    )
    .await;
    let w = Client::new(&node, &w_key, &[wg]);
    // What the grants do allow (so the refusals below are not an artefact).
    r.call(&o.res("kv/notes/a"), "get").await.expect(200);
    r.call(&o.res("kv/notes/sub/b"), "get").await.expect(200);
    w.put(&o.res("kv/notes/new"), b"w").await.expect(200);

    // Paths outside the grant.
    let reads: Vec<(&str, String)> = vec![
        ("a sibling sharing a string prefix", o.res("kv/notes2/leak")),
        ("a key sharing a string prefix", o.res("kv/notesx")),
        ("dot-dot out of the grant", o.res("kv/notes/../secret")),
        ("dot-dot at the end", o.res("kv/notes/..")),
        ("a dot segment", o.res("kv/notes/./a")),
        ("percent-encoded dot-dot", o.res("kv/notes/%2e%2e/secret")),
        ("percent-encoded slash", o.res("kv/notes%2f..%2fsecret")),
        ("a leading double slash", o.res("kv//notes/a")),
        ("a double slash out", o.res("kv/notes//../secret")),
        ("another case", o.res("kv/Notes/x")),
        ("the whole service", o.res("kv")),
        ("the parent with a trailing slash", o.res("kv/")),
        ("the same path in another space", other.res("kv/notes/a")),
        ("another service", o.res("sql/notes")),
    ];
    for (case, res) in &reads {
        let t = raw_invocation(&r_key, &[rg], res, "tinycloud.kv/get");
        refused(case, &invoke(&node, &t, &[], vec![]).await);
    }
    // The raw builder itself is sound: a covered key through it is served.
    let t = raw_invocation(&r_key, &[rg], &o.res("kv/notes/a"), "tinycloud.kv/get");
    invoke(&node, &t, &[], vec![]).await.expect(200);
    // Inside the grant literally (no decoding, no normalization): never another key's value.
    for res in [o.res("kv/notes//a"), o.res("kv/notes/%2e%2e/secret")] {
        let t = raw_invocation(&r_key, &[rg], &res, "tinycloud.kv/get");
        let got = invoke(&node, &t, &[], vec![]).await;
        refused(&format!("literal key {res}"), &got);
        assert_eq!(got.status, 404, "{res}: {}", got.text());
    }

    // Listing: only inside the grant, and results never reveal keys outside it.
    for (case, res) in [
        ("list the whole service", o.res("kv")),
        ("list a string-prefix sibling", o.res("kv/notes2")),
        ("list by a raw prefix of the grant", o.res("kv/note")),
        ("list another space", other.res("kv/notes")),
    ] {
        let t = raw_invocation(&r_key, &[rg], &res, "tinycloud.kv/list");
        refused(case, &invoke(&node, &t, &[], vec![]).await);
    }
    let listed: Vec<String> =
        serde_json::from_slice(&r.call(&o.res("kv/notes"), "list").await.expect(200).body).unwrap();
    assert!(!listed.is_empty());
    for k in &listed {
        assert!(
            k == "notes" || k.starts_with("notes/"),
            "list under notes reveals {k} ({listed:?})"
        );
    }
    assert!(listed.contains(&"notes/a".to_owned()));

    // Abilities the grants do not carry.
    let a = o.res("kv/notes/a");
    let if_match = [("if-match", etag_a.as_str())];
    let cases: Vec<(&str, Resp)> = vec![
        ("metadata without the ability", r.call(&a, "metadata").await),
        ("put with a get-only grant", r.put(&a, b"x").await),
        (
            "put with a get-only grant and a matching If-Match",
            r.kv(&a, "put", &if_match, b"x".to_vec()).await,
        ),
        (
            "put with a get-only grant and If-None-Match: *",
            r.kv(
                &o.res("kv/notes/z"),
                "put",
                &[("if-none-match", "*")],
                b"x".to_vec(),
            )
            .await,
        ),
        ("delete with a get-only grant", r.call(&a, "del").await),
        ("delete with a put-only grant", w.call(&a, "del").await),
        (
            "delete (alias) with a put-only grant",
            w.kv(&a, "delete", &[], vec![]).await,
        ),
        (
            "delete with a put-only grant and a matching If-Match",
            w.kv(&a, "del", &if_match, vec![]).await,
        ),
        ("get with a put-only grant", w.call(&a, "get").await),
        (
            "get with a put-only grant and If-None-Match",
            w.kv(&a, "get", &[("if-none-match", etag_a.as_str())], vec![])
                .await,
        ),
        (
            "list with a put-only grant",
            w.call(&o.res("kv/notes"), "list").await,
        ),
        (
            "metadata with a put-only grant",
            w.call(&a, "metadata").await,
        ),
        (
            "put outside the grant",
            w.put(&o.res("kv/secret"), b"x").await,
        ),
        (
            "put outside the grant by prefix",
            w.put(&o.res("kv/notes2/leak"), b"x").await,
        ),
        (
            "put outside the grant with If-Match",
            w.kv(
                &o.res("kv/secret"),
                "put",
                &[("if-match", "*")],
                b"x".to_vec(),
            )
            .await,
        ),
        (
            "put in another space",
            w.put(&other.res("kv/notes/a"), b"x").await,
        ),
    ];
    for (case, resp) in &cases {
        refused(case, resp);
    }
    // Nothing outside the grants changed.
    for k in ["kv/notes2/leak", "kv/notesx", "kv/secret", "kv/Notes/x"] {
        let got = oc.call(&o.res(k), "get").await.expect(200);
        assert_eq!(got.body, SECRET, "{k} changed");
    }
    assert_eq!(
        oc.call(&a, "get").await.expect(200).body,
        b"notes a",
        "notes/a changed"
    );

    // Re-delegation cannot widen: r cannot hand on put, nor a wider path.
    for (case, caps) in [
        (
            "a widened ability",
            vec![cap(&o.res("kv/notes"), "tinycloud.kv/put")],
        ),
        (
            "a widened path",
            vec![cap(&o.res("kv"), "tinycloud.kv/get")],
        ),
        (
            "a string-prefix sibling",
            vec![cap(&o.res("kv/notes2"), "tinycloud.kv/get")],
        ),
    ] {
        let g = ucan_delegation(&r_key, &ed25519(85).did(), &[rg], caps, 60);
        let (status, _, text) = post_delegate(&node, &g).await;
        assert!(matches!(status, 401 | 403), "{case}: {status} {text}");
    }

    // Caveated KV grants are refused (KV enforces no caveat; it would be ignored).
    let mut c = cap(&o.res("kv/notes"), "tinycloud.kv/get");
    c.caveats = Caveats::from_objects(vec![json!({"maxSize": 10}).as_object().unwrap().clone()]);
    let g = ucan_delegation(&o.session, &ed25519(86).did(), &p, vec![c], 60);
    let (status, _, text) = post_delegate(&node, &g).await;
    assert_eq!(status, 403, "caveated KV grant: {text}");

    // Quota exhaustion by a delegate: its writes stop at the space's quota.
    let big = vec![1u8; 300 * 1024];
    refused(
        "a value larger than the quota",
        &w.put(&o.res("kv/notes/big"), &big).await,
    );
    let mut accepted = 0;
    let last = loop {
        let resp = w
            .put(
                &o.res(&format!("kv/notes/fill{accepted}")),
                &vec![2u8; 32 * 1024],
            )
            .await;
        if resp.status != 200 {
            break resp;
        }
        accepted += 1;
        assert!(accepted < 10, "the quota never stopped the delegate");
    };
    assert!(matches!(last.status, 402 | 413), "{}", last.text());
    // Nor can it reach past the quota through more delegations (their bytes count too).
    let mut refused_grant = false;
    for _ in 0..100 {
        let g = ucan_delegation(
            &o.session,
            &ed25519(87).did(),
            &p,
            vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
            60,
        );
        if post_delegate(&node, &g).await.0 == 402 {
            refused_grant = true;
            break;
        }
    }
    assert!(
        refused_grant,
        "delegations kept being stored past the quota"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_writes_a_public_space() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 88, "public").await;
    let home = Owner::sign_in(&node, 88, "default").await;
    o.client(&node)
        .put(&o.res("kv/key"), b"published")
        .await
        .expect(200);
    let stranger = Owner::sign_in(&node, 89, "default").await;
    // A grant on the owner's default space does not reach the public one.
    let d = ed25519(90);
    let dg = delegate(
        &node,
        &home.session,
        &d.did(),
        &[home.session_cid],
        vec![cap(&home.res("kv"), "tinycloud.kv/put")],
        600,
    )
    .await;
    let dc = Client::new(&node, &d, &[dg]);
    let cases: Vec<(&str, Resp)> = vec![
        (
            "a stranger's session",
            stranger
                .client(&node)
                .put(&o.res("kv/key"), b"defaced")
                .await,
        ),
        (
            "a delegate of another space",
            dc.put(&o.res("kv/key"), b"defaced").await,
        ),
        (
            "a delegate deleting",
            dc.call(&o.res("kv/key"), "del").await,
        ),
        (
            "an unsigned invocation",
            invoke(&node, "", &[], b"defaced".to_vec()).await,
        ),
    ];
    for (case, resp) in &cases {
        assert!(
            (400..500).contains(&resp.status),
            "{case}: {} {}",
            resp.status,
            resp.text()
        );
    }
    // The unauthenticated public route reads only.
    let url = format!("{}/public/{}/kv/key", node.url, o.space);
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let s = http()
            .request(method.clone(), &url)
            .body("defaced")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!((400..500).contains(&s), "{method} on the public route: {s}");
    }
    let got: Value = json!(String::from_utf8(
        get(&node, &format!("/public/{}/kv/key", o.space))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec()
    )
    .unwrap());
    assert_eq!(got, json!("published"));
}

/// Batch reads (several `kv/get` or `kv/metadata` capabilities in one invocation): every key
/// must be granted (one outside the grant refuses the whole batch, revealing nothing), all in
/// one space, homogeneous abilities, and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_reveals_nothing_outside_the_grant() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 85, "default").await;
    let other = Owner::sign_in(&node, 86, "default").await;
    let oc = o.client(&node);
    oc.put(&o.res("kv/notes/a"), b"notes a").await.expect(200);
    oc.put(&o.res("kv/secret"), SECRET).await.expect(200);
    other
        .client(&node)
        .put(&other.res("kv/notes/a"), SECRET)
        .await
        .expect(200);
    let key = ed25519(87);
    let g = delegate(
        &node,
        &o.session,
        &key.did(),
        &[o.session_cid],
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
        600,
    )
    .await;
    let c = Client::new(&node, &key, &[g]);
    let (a, b) = (o.res("kv/notes/a"), o.res("kv/notes/b"));
    // Control: both keys granted.
    let v = c
        .invoke_caps(
            &[(&a, "tinycloud.kv/get"), (&b, "tinycloud.kv/get")],
            &[],
            vec![],
        )
        .await
        .expect(200)
        .json();
    assert_eq!(v["results"][0]["ok"], true);
    assert_eq!(v["results"][1]["error"]["code"], "KV_NOT_FOUND");
    let secret = o.res("kv/secret");
    let foreign = other.res("kv/notes/a");
    for (case, caps) in [
        (
            "a key outside the grant",
            vec![
                (a.as_str(), "tinycloud.kv/get"),
                (secret.as_str(), "tinycloud.kv/get"),
            ],
        ),
        (
            "another space",
            vec![
                (a.as_str(), "tinycloud.kv/get"),
                (foreign.as_str(), "tinycloud.kv/get"),
            ],
        ),
        (
            "an ability not held",
            vec![
                (a.as_str(), "tinycloud.kv/metadata"),
                (b.as_str(), "tinycloud.kv/metadata"),
            ],
        ),
        (
            "mixed abilities",
            vec![
                (a.as_str(), "tinycloud.kv/get"),
                (b.as_str(), "tinycloud.kv/del"),
            ],
        ),
    ] {
        let r = c.invoke_caps(&caps, &[], vec![]).await;
        refused(case, &r);
    }
    // Two spaces, both the invoker's own: refused clearly.
    let own = o.client(&node);
    let r = own
        .invoke_caps(
            &[(&a, "tinycloud.kv/get"), (&foreign, "tinycloud.kv/get")],
            &[],
            vec![],
        )
        .await;
    refused("two spaces", &r);
    // More than 100 keys.
    let many: Vec<String> = (0..101).map(|i| o.res(&format!("kv/notes/{i}"))).collect();
    let caps: Vec<(&str, &str)> = many
        .iter()
        .map(|k| (k.as_str(), "tinycloud.kv/get"))
        .collect();
    let r = own.invoke_caps(&caps, &[], vec![]).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in parts {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// Batch puts: every key must be granted (one outside the grant refuses the batch), every
/// part must be a signed key and every signed key a part, and the quota holds for the batch
/// as a whole — each refusal writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_put_writes_all_granted_keys_or_nothing() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_STORAGE__LIMIT", "64 KiB")]);
    let o = Owner::sign_in(&node, 88, "default").await;
    let oc = o.client(&node);
    oc.put(&o.res("kv/secret"), SECRET).await.expect(200);
    let key = ed25519(89);
    let g = delegate(
        &node,
        &o.session,
        &key.did(),
        &[o.session_cid],
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/put")],
        600,
    )
    .await;
    let c = Client::new(&node, &key, &[g]);
    let ct = [("content-type", "multipart/form-data; boundary=b0")];
    let (a, b) = (o.res("kv/notes/a"), o.res("kv/notes/b"));
    let put = "tinycloud.kv/put";
    let secret = o.res("kv/secret");
    /// (case, capabilities, body, expected status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "a key outside the grant",
            vec![(&a, put), (&secret, put)],
            multipart("b0", &[("notes%2Fa", b"x"), ("secret", b"overwritten")]),
            401,
        ),
        (
            "a part for a key that was not signed",
            vec![(&a, put), (&b, put)],
            multipart(
                "b0",
                &[("notes%2Fa", b"x"), ("notes%2Fb", b"y"), ("secret", b"z")],
            ),
            400,
        ),
        (
            "a signed key without a part",
            vec![(&a, put), (&b, put)],
            multipart("b0", &[("notes%2Fa", b"x")]),
            400,
        ),
        (
            "a key with two parts",
            vec![(&a, put), (&b, put)],
            multipart(
                "b0",
                &[
                    ("notes%2Fa", b"x"),
                    ("notes%2Fa", b"y"),
                    ("notes%2Fb", b"z"),
                ],
            ),
            400,
        ),
        (
            "a batch past the quota",
            vec![(&a, put), (&b, put)],
            multipart(
                "b0",
                &[
                    ("notes%2Fa", &[1u8; 40 * 1024]),
                    ("notes%2Fb", &[2u8; 40 * 1024]),
                ],
            ),
            413,
        ),
        (
            "not multipart",
            vec![(&a, put), (&b, put)],
            b"plain".to_vec(),
            400,
        ),
    ];
    for (case, caps, body, want) in cases {
        let extra: &[(&str, &str)] = if case == "not multipart" { &[] } else { &ct };
        let r = c.invoke_caps(&caps, extra, body).await;
        assert_eq!(r.status, want, "{case}: {}", r.text());
        // Nothing was written.
        oc.call(&a, "get").await.expect(404);
        oc.call(&b, "get").await.expect(404);
        assert_eq!(oc.call(&secret, "get").await.expect(200).body, SECRET);
    }
    // Control: the same grant writes both keys at once.
    let r = c
        .invoke_caps(
            &[(&a, put), (&b, put)],
            &ct,
            multipart("b0", &[("notes%2Fa", b"x"), ("notes%2Fb", b"y")]),
        )
        .await
        .expect(200);
    assert_eq!(r.json()["count"], 2);
    assert_eq!(oc.call(&b, "get").await.expect(200).body, b"y");
}

//! Attacks on hooks and webhooks, end to end against the real node: a webhook outlives its
//! authority (revoked or expired grant), callback URLs that reach private addresses in IPv6
//! disguise, URL checks that answer outsiders, and a table of the ways a delegate could
//! exceed its hooks grant — each asserted refused.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use tinycloud_auth::session::capability;

/// A local receiver that counts what it is sent.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Value>>,
}

impl Receiver {
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn paths(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["path"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

// The test's own receiver is not part of the node's API.
#[allow(clippy::disallowed_methods)]
async fn start_receiver(r: Arc<Receiver>) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let r = r.clone();
            async move {
                r.got
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/hook"), h)
}

async fn wait_for(r: &Receiver, n: usize, secs: u64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while r.count() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.count()
}

/// A node that may deliver to the loopback receiver (and retries quickly).
fn dev_node() -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        "[hooks]\nallow_private_destinations = true\nbackoff_secs = [1]\n",
    )
    .unwrap();
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_CONFIG", cfg.to_str().unwrap())]);
    (node, dir)
}

fn registration(o: &Owner, prefix: &str, callback: &str) -> Value {
    json!({
        "space": o.space.to_string(), "service": "kv", "pathPrefix": prefix,
        "callbackUrl": callback, "secret": "s3cret",
    })
}

async fn owner_webhooks(node: &Node, o: &Owner) -> Vec<Value> {
    let (s, v) = o
        .client(node)
        .hooks(
            &o.res("hooks/kv"),
            "list",
            Method::GET,
            &format!("/hooks/webhooks?space={}&service=kv", o.space),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

/// Finding 3: a delegate registers a webhook, the owner revokes the delegate, and not one
/// more event is delivered; the webhook shows as disabled with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_stops_when_its_grant_is_revoked() {
    let (node, _cfg) = dev_node();
    let o = Owner::sign_in(&node, 60, "default").await;
    let owner = o.client(&node);
    let d = ed25519(61);
    let grant = delegate(
        &node,
        &o.session,
        &d.did(),
        &[o.session_cid],
        vec![capability(&o.res("hooks/kv/notes"), "tinycloud.hooks/register").unwrap()],
        600,
    )
    .await;
    let receiver = Arc::new(Receiver::default());
    let (callback, _server) = start_receiver(receiver.clone()).await;
    let (s, v) = Client::new(&node, &d, &[grant])
        .hooks(
            &o.res("hooks/kv/notes"),
            "register",
            Method::POST,
            "/hooks/webhooks",
            Some(&registration(&o, "notes", &callback)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["expiresAt"].is_string(),
        "the grant's expiry is recorded: {v}"
    );

    owner.put(&o.res("kv/notes/a"), b"1").await.expect(200);
    assert_eq!(
        wait_for(&receiver, 1, 10).await,
        1,
        "delivered while granted"
    );

    assert_eq!(revoke(&node, &o.session, grant).await.0, 200);
    for k in ["b", "c", "d"] {
        owner
            .put(&o.res(&format!("kv/notes/{k}")), b"1")
            .await
            .expect(200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.paths(),
        vec!["notes/a"],
        "nothing is delivered after the revocation"
    );
    let hooks = owner_webhooks(&node, &o).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["active"], false, "{hooks:?}");
    assert!(
        hooks[0]["disabledReason"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{hooks:?}"
    );
}

/// Finding 3, expiry: the grant a webhook was registered under expires, and deliveries stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_stops_when_its_grant_expires() {
    let (node, _cfg) = dev_node();
    let o = Owner::sign_in(&node, 62, "default").await;
    let owner = o.client(&node);
    let d = ed25519(63);
    let grant = delegate(
        &node,
        &o.session,
        &d.did(),
        &[o.session_cid],
        vec![capability(&o.res("hooks/kv/notes"), "tinycloud.hooks/register").unwrap()],
        4,
    )
    .await;
    let receiver = Arc::new(Receiver::default());
    let (callback, _server) = start_receiver(receiver.clone()).await;
    let (s, v) = Client::new(&node, &d, &[grant])
        .hooks(
            &o.res("hooks/kv/notes"),
            "register",
            Method::POST,
            "/hooks/webhooks",
            Some(&registration(&o, "notes", &callback)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    owner.put(&o.res("kv/notes/a"), b"1").await.expect(200);
    assert_eq!(
        wait_for(&receiver, 1, 3).await,
        1,
        "delivered while granted"
    );

    tokio::time::sleep(Duration::from_millis(4500)).await;
    owner.put(&o.res("kv/notes/b"), b"1").await.expect(200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        receiver.paths(),
        vec!["notes/a"],
        "nothing is delivered after the grant expired"
    );
    let hooks = owner_webhooks(&node, &o).await;
    assert_eq!(hooks[0]["active"], false, "{hooks:?}");
}

/// Finding 9 (webhooks): callback checks run only for authorized callers, and refuse every
/// spelling of a private destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_are_checked_after_authorization_and_refuse_disguised_addresses() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 64, "default").await;
    let notes = o.res("hooks/kv/notes");

    // An outsider learns nothing about the URL: 401 whatever it points at.
    let stranger = ed25519(65);
    for url in [
        "https://[::ffff:127.0.0.1]/x",
        "https://does-not-exist.invalid/x",
        "https://example.com/x",
    ] {
        let (s, v) = Client::new(&node, &stranger, &[])
            .hooks(
                &notes,
                "register",
                Method::POST,
                "/hooks/webhooks",
                Some(&registration(&o, "notes", url)),
            )
            .await;
        assert_eq!(s, 401, "{url}: {v}");
    }

    // The owner: every address that maps to a private or local one is refused.
    for url in [
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://[::127.0.0.1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[64:ff9b::7f00:1]/x",
        "https://[64:ff9b::a9fe:a9fe]/latest",
        "https://[2002:7f00:1::1]/x",
        "https://[2002:a9fe:a9fe::]/x",
        "https://[fd00:ec2::254]/latest",
        "https://[fe80::1]/x",
        "https://169.254.169.254/latest",
        "https://100.100.100.200/x",
        "https://0x7f.1/x",
        "https://2130706433/x",
        "https://0/x",
        "https://localhost/x",
        "http://example.com/x",
    ] {
        let (s, v) = o
            .client(&node)
            .hooks(
                &notes,
                "register",
                Method::POST,
                "/hooks/webhooks",
                Some(&registration(&o, "notes", url)),
            )
            .await;
        assert_eq!(s, 400, "{url} must be refused: {v}");
    }
    assert!(owner_webhooks(&node, &o).await.is_empty());
}

/// Hooks and webhooks: the ways a delegate could exceed its grant, each refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_cannot_exceed_its_hooks_grant() {
    let (node, _cfg) = dev_node();
    let o = Owner::sign_in(&node, 66, "default").await;
    let other = Owner::sign_in(&node, 67, "default").await;
    let receiver = Arc::new(Receiver::default());
    let (callback, _server) = start_receiver(receiver.clone()).await;
    let p = [o.session_cid];

    // d: subscribe + register + list + unregister on kv/notes only.
    let d = ed25519(68);
    let notes = o.res("hooks/kv/notes");
    let dg = delegate(
        &node,
        &o.session,
        &d.did(),
        &p,
        ["subscribe", "register", "list", "unregister"]
            .iter()
            .map(|a| capability(&notes, &format!("tinycloud.hooks/{a}")).unwrap())
            .collect(),
        600,
    )
    .await;
    let dc = Client::new(&node, &d, &[dg]);
    // e: the same abilities on kv/other; r: KV read only; s: subscribe only.
    let e = ed25519(69);
    let eg = delegate(
        &node,
        &o.session,
        &e.did(),
        &p,
        ["subscribe", "register", "list", "unregister"]
            .iter()
            .map(|a| capability(&o.res("hooks/kv/other"), &format!("tinycloud.hooks/{a}")).unwrap())
            .collect(),
        600,
    )
    .await;
    let ec = Client::new(&node, &e, &[eg]);
    let r = ed25519(70);
    let rg = delegate(
        &node,
        &o.session,
        &r.did(),
        &p,
        vec![
            capability(&o.res("kv/notes"), "tinycloud.kv/get").unwrap(),
            capability(&o.res("kv/notes"), "tinycloud.kv/list").unwrap(),
        ],
        600,
    )
    .await;
    let rc = Client::new(&node, &r, &[rg]);
    let s_key = ed25519(71);
    let sg = delegate(
        &node,
        &o.session,
        &s_key.did(),
        &p,
        vec![capability(&notes, "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    let sc = Client::new(&node, &s_key, &[sg]);

    // d's own webhook (the target of the attacks below).
    let (s, v) = dc
        .hooks(
            &notes,
            "register",
            Method::POST,
            "/hooks/webhooks",
            Some(&registration(&o, "notes", &callback)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    let scope = |space: &str, service: &str, prefix: Option<&str>| {
        let mut s = json!({"space": space, "service": service});
        if let Some(p) = prefix {
            s["pathPrefix"] = json!(p);
        }
        json!([s])
    };
    let space = o.space.to_string();
    let other_space = other.space.to_string();
    // Subscriptions outside the grant (the ticket request names what it wants; the
    // invocation signs for exactly that).
    let sub_cases: Vec<(&str, Value)> = vec![
        ("a sibling prefix", scope(&space, "kv", Some("other"))),
        (
            "a prefix sharing a string prefix",
            scope(&space, "kv", Some("notesx")),
        ),
        ("the whole service", scope(&space, "kv", None)),
        ("another service", scope(&space, "sql", None)),
        ("another space", scope(&other_space, "kv", Some("notes"))),
    ];
    for (case, scopes) in sub_cases {
        let r = SseReader::connect(&node, &d, &[dg], scopes, None).await;
        let status = r.err().map(|(s, _)| s);
        assert!(
            matches!(status, Some(401 | 404)),
            "subscribe to {case}: {status:?}"
        );
    }
    // Allowed within the grant; the ticket then opens exactly one stream.
    let (s, t) = {
        let token = tinycloud_auth::session::invocation(
            &d,
            None,
            &[dg],
            vec![capability(&notes, "tinycloud.hooks/subscribe").unwrap()],
            now(),
            120,
            &uuid(),
            vec![],
        )
        .unwrap();
        request(
            &node,
            Method::POST,
            "/hooks/tickets",
            token.as_str(),
            Some(&json!({"subscriptions": scope(&space, "kv", Some("notes"))})),
        )
        .await
    };
    assert_eq!(s, 200, "{t}");
    let ticket = t["ticket"].as_str().unwrap();
    let first = SseReader::open(&node, ticket, None).await;
    assert!(first.is_ok(), "the subscriber's own connection");
    let again = SseReader::open(&node, ticket, None).await;
    assert_eq!(
        again.err().map(|(s, _)| s),
        Some(401),
        "ticket reuse by another subscriber"
    );

    // Webhook registration without a register grant, or outside it.
    let reg_cases: Vec<(&str, &Client, &str, Value)> = vec![
        (
            "a read-only KV grant",
            &rc,
            &notes,
            registration(&o, "notes", &callback),
        ),
        (
            "a subscribe-only grant",
            &sc,
            &notes,
            registration(&o, "notes", &callback),
        ),
        (
            "a sibling prefix",
            &dc,
            &notes,
            registration(&o, "other", &callback),
        ),
        (
            "the whole service",
            &dc,
            &notes,
            json!({"space": space, "service": "kv", "callbackUrl": callback, "secret": "x"}),
        ),
        (
            "another space",
            &dc,
            &notes,
            json!({"space": other_space, "service": "kv", "pathPrefix": "notes", "callbackUrl": callback, "secret": "x"}),
        ),
    ];
    for (case, client, resource, body) in reg_cases {
        let ability = "register";
        let (s, v) = client
            .hooks(
                resource,
                ability,
                Method::POST,
                "/hooks/webhooks",
                Some(&body),
            )
            .await;
        assert!(matches!(s, 401 | 404), "register with {case}: {s} {v}");
    }

    // Another's webhook: e (granted on kv/other) cannot list, read deliveries of, or remove
    // d's webhook on kv/notes, whatever resource it signs for.
    let e_res = o.res("hooks/kv/other");
    let attempts: Vec<(&str, &str, &str, Method, String)> = vec![
        (
            "list the whole service",
            &e_res,
            "list",
            Method::GET,
            format!("/hooks/webhooks?space={space}&service=kv"),
        ),
        (
            "list the whole space",
            &e_res,
            "list",
            Method::GET,
            format!("/hooks/webhooks?space={space}"),
        ),
        (
            "list d's prefix",
            &e_res,
            "list",
            Method::GET,
            format!("/hooks/webhooks?space={space}&service=kv&prefix=notes"),
        ),
        (
            "read d's deliveries",
            &e_res,
            "list",
            Method::GET,
            format!("/hooks/webhooks/{id}/deliveries"),
        ),
        (
            "remove d's webhook",
            &e_res,
            "unregister",
            Method::DELETE,
            format!("/hooks/webhooks/{id}"),
        ),
        (
            "remove d's webhook signing for d's scope",
            &notes,
            "unregister",
            Method::DELETE,
            format!("/hooks/webhooks/{id}"),
        ),
    ];
    for (case, resource, ability, method, path) in attempts {
        let (s, v) = ec.hooks(resource, ability, method, &path, None).await;
        assert_eq!(s, 401, "{case}: {v}");
    }
    // e's own listing never shows d's webhook.
    let (s, v) = ec
        .hooks(
            &e_res,
            "list",
            Method::GET,
            &format!("/hooks/webhooks?space={space}&service=kv&prefix=other"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.as_array().unwrap().is_empty(), "{v}");
    // The webhook is still there and d can still manage it.
    let (s, v) = dc
        .hooks(
            &notes,
            "list",
            Method::GET,
            &format!("/hooks/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = dc
        .hooks(
            &notes,
            "unregister",
            Method::DELETE,
            &format!("/hooks/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
}

/// A hook scope on `sql/app1` sees database `app1` only: never the writes of `app1/secrets`
/// (whose events' paths start with `app1/` too), and a grant to watch `app1` cannot be
/// stretched to `app1/secrets`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql_hook_scope_is_database_exact() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 75, "default").await;
    let space = o.space.to_string();
    let scope = |prefix: &str| json!([{"space": space, "service": "sql", "pathPrefix": prefix}]);
    let mut sse = SseReader::connect(&node, &o.session, &[o.session_cid], scope("app1"), None)
        .await
        .unwrap();
    let c = o.client(&node);
    for db in ["app1/secrets", "app1/x/y", "app10"] {
        let r = o.res(&format!("sql/{db}"));
        c.execute(&r, "admin", "CREATE TABLE t (v TEXT)")
            .await
            .expect(200);
        c.execute(&r, "write", "INSERT INTO t VALUES ('s')")
            .await
            .expect(200);
    }
    let app1 = o.res("sql/app1");
    c.execute(&app1, "admin", "CREATE TABLE \"secrets/t\" (v TEXT)")
        .await
        .expect(200);
    c.execute(&app1, "write", "INSERT INTO \"secrets/t\" VALUES ('ok')")
        .await
        .expect(200);
    let mut seen = vec![];
    while let Some(e) = sse.next(Duration::from_millis(1500)).await {
        if e.event == "write" || e.event == "message" {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            seen.push(v["path"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(!seen.is_empty(), "the scope's own database's writes arrive");
    assert!(
        seen.iter().all(|p| p == "app1/secrets%2Ft"),
        "events outside database app1: {seen:?}"
    );
    // A delegate allowed to watch app1 cannot watch app1/secrets.
    let d = ed25519(76);
    let dg = delegate(
        &node,
        &o.session,
        &d.did(),
        &[o.session_cid],
        vec![capability(&o.res("hooks/sql/app1"), "tinycloud.hooks/subscribe").unwrap()],
        600,
    )
    .await;
    assert!(SseReader::connect(&node, &d, &[dg], scope("app1"), None)
        .await
        .is_ok());
    let r = SseReader::connect(&node, &d, &[dg], scope("app1/secrets"), None).await;
    assert!(
        matches!(r.as_ref().err().map(|e| e.0), Some(401 | 403)),
        "{:?}",
        r.err()
    );
}

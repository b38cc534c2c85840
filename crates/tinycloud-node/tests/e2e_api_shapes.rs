//! End-to-end: the answers a client really gets match the document the node serves at
//! `GET /openapi.json`. A client signs in, delegates, asks the status of a delegation (known and
//! unknown), revokes it, mints an SSE ticket, registers / lists webhooks and reads their
//! deliveries, creates / reads / discovers an encryption network, decrypts and pages through
//! the audit trail; every JSON body is validated against the schema the served document gives
//! for that operation and status. Every JSON answer the document describes must be exercised,
//! so a new route (or status) with a JSON body cannot be left out of this test.
//!
//! The checker covers the subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that utoipa
//! emits: `type` (a name or a list, `"null"` for nullable), `properties`, `required`, `items`,
//! `enum`, `minimum`/`maximum`, `$ref` to `#/components/schemas`, `allOf`, `oneOf`, `anyOf`.
//! It refuses any other keyword (so the document cannot grow a rule the test silently skips),
//! and it is stricter than JSON Schema in one respect: a property an object schema does not
//! list is an error (unless the schema admits extra properties), so a field a handler adds
//! without documenting it fails.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use reqwest::Method;
use serde_json::{json, Map, Value};
use tinycloud_auth::cid::{blake3_cid, parse_cid};
use tinycloud_auth::did::Did;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_node::encryption::{canonical_hash, wrap, ALG};
use x25519_dalek::{PublicKey, StaticSecret};

/// Keywords that describe and do not constrain.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "format",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords the checker enforces.
const ENFORCED: &[&str] = &[
    "$ref",
    "allOf",
    "oneOf",
    "anyOf",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "enum",
    "minimum",
    "maximum",
];

/// The served document and which of its JSON answers were exercised.
struct Shapes {
    doc: Value,
    seen: BTreeSet<(String, String, String)>,
}

impl Shapes {
    fn resolve(&self, r: &str) -> Result<&Value, String> {
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("unsupported $ref {r}"))?;
        self.doc["components"]["schemas"]
            .get(name)
            .ok_or_else(|| format!("dangling $ref {r}"))
    }

    /// The properties an object schema declares, through `$ref` and `allOf`; true when it
    /// admits others.
    fn declared(&self, schema: &Value, out: &mut BTreeSet<String>) -> Result<bool, String> {
        let mut open = false;
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            open |= self.declared(self.resolve(r)?, out)?;
        }
        for branch in schema["allOf"].as_array().into_iter().flatten() {
            open |= self.declared(branch, out)?;
        }
        if let Some(props) = schema["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
        open |= schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false));
        Ok(open)
    }

    /// Checks `v` against `schema`; `strict` refuses undeclared properties (off for the
    /// branches of an `allOf`, whose union is checked by the schema holding it).
    fn check(&self, schema: &Value, v: &Value, at: &str, strict: bool) -> Result<(), String> {
        let s = schema
            .as_object()
            .ok_or_else(|| format!("{at}: schema is not an object"))?;
        for k in s.keys() {
            if !ENFORCED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                return Err(format!("{at}: the checker does not know `{k}`"));
            }
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.check(self.resolve(r)?, v, at, strict)?;
        }
        for branch in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(branch, v, at, false)?;
        }
        for (key, need) in [("oneOf", Some(1)), ("anyOf", None)] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                let errors: Vec<String> = branches
                    .iter()
                    .filter_map(|b| self.check(b, v, at, strict).err())
                    .collect();
                let matched = branches.len() - errors.len();
                if matched == 0 || need.is_some_and(|n| matched != n) {
                    return Err(format!(
                        "{at}: {matched} branches of {key} match: {errors:?}"
                    ));
                }
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => return Err(format!("{at}: bad type {t}")),
            };
            let mut ok = false;
            for t in &types {
                ok |= match *t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    other => return Err(format!("{at}: unknown type {other}")),
                };
            }
            if !ok {
                return Err(format!("{at}: {v} is not of type {types:?}"));
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
            if !allowed.contains(v) {
                return Err(format!("{at}: {v} is not one of {allowed:?}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                return Err(format!("{at}: {n} below the minimum"));
            }
            if s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                return Err(format!("{at}: {n} above the maximum"));
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, item) in a.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"), true)?;
            }
        }
        if let Some(o) = v.as_object() {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().ok_or_else(|| format!("{at}: bad required"))?;
                if !o.contains_key(r) {
                    return Err(format!("{at}: required `{r}` is missing"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(x) = o.get(k) {
                        self.check(sub, x, &format!("{at}.{k}"), true)?;
                    }
                }
            }
            // Maps: every key against `propertyNames`, every value not named in `properties`
            // against a schema-valued `additionalProperties`.
            let named = s.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                if let Some(names) = s.get("propertyNames") {
                    self.check(
                        names,
                        &Value::String(k.clone()),
                        &format!("{at} key {k}"),
                        true,
                    )?;
                }
                if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    if !named.is_some_and(|p| p.contains_key(k)) {
                        self.check(extra, x, &format!("{at}.{k}"), true)?;
                    }
                }
            }
            let defines = s.contains_key("properties") || s.contains_key("allOf");
            if strict && defines {
                let mut declared = BTreeSet::new();
                if !self.declared(schema, &mut declared)? {
                    for k in o.keys() {
                        if !declared.contains(k) {
                            return Err(format!("{at}: `{k}` is not in the document"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Validates a JSON answer against the schema documented for `method path` and `status`.
    fn validate(&mut self, method: &str, path: &str, status: u16, v: &Value) {
        let status = status.to_string();
        let schema = &self.doc["paths"][path][method]["responses"][&status]["content"]
            ["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {path} {status}: no JSON answer documented"
        );
        if let Err(e) = self.check(schema, v, &format!("{method} {path} {status}"), true) {
            panic!("{e}\nanswer: {v}");
        }
        self.seen.insert((method.into(), path.into(), status));
    }

    /// Sends a request (`path` concrete, `template` as documented), asserts the status and the
    /// JSON content type, validates the body and returns it.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        node: &Node,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expect: u16,
    ) -> Value {
        let mut req = http().request(method.clone(), format!("{}{path}", node.url));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        let text = r.text().await.unwrap();
        assert_eq!(status, expect, "{method} {path}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{method} {path}: {ctype}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        self.validate(&method.as_str().to_lowercase(), template, status, &v);
        v
    }

    /// Every `(method, path, status)` whose answer the document describes as JSON.
    fn documented_json(&self) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    if r["content"].get("application/json").is_some() {
                        out.insert((method.clone(), path.clone(), status.clone()));
                    }
                }
            }
        }
        out
    }
}

/// A webhook receiver answering 200 and counting what it got.
// The test's own receiver is not part of the node's API.
#[allow(clippy::disallowed_methods)]
async fn receiver(got: Arc<AtomicUsize>) -> u16 {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let got = got.clone();
            async move {
                got.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

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

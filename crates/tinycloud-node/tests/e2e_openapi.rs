//! End-to-end: the node serves its OpenAPI 3.1 document, the document names the protocol's
//! routes, and every documented operation is served by the router (the other direction —
//! every routed path is documented — is enforced at build time by `routes!` + clippy.toml).

mod common;

use common::*;

/// The protocol surface, written out independently of the code that documents it.
const EXPECTED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/info"),
    ("get", "/version"),
    ("get", "/openapi.json"),
    ("get", "/peer/generate/{space}"),
    ("post", "/delegate"),
    ("post", "/revoke"),
    ("post", "/delegation/status"),
    ("post", "/delegation/query"),
    ("post", "/invoke"),
    ("post", "/encryption/networks"),
    ("get", "/encryption/networks/{id}"),
    ("post", "/encryption/networks/{id}/decrypt"),
    ("post", "/encryption/networks/{id}/revoke"),
    ("get", "/encryption/networks/{id}/audit"),
    ("get", "/.well-known/encryption/network/{name}"),
    ("post", "/hooks/tickets"),
    ("get", "/hooks/events"),
    ("post", "/hooks/webhooks"),
    ("get", "/hooks/webhooks"),
    ("delete", "/hooks/webhooks/{id}"),
    ("get", "/hooks/webhooks/{id}/deliveries"),
    ("get", "/public/{space}/kv"),
    ("get", "/public/{space}/kv/{key}"),
    ("head", "/public/{space}/kv/{key}"),
    ("get", "/.well-known/tinycloud/node-keys"),
    ("put", "/admin/quota/{space}"),
    ("get", "/admin/quota/{space}"),
    ("delete", "/admin/quota/{space}"),
    ("get", "/admin/quota"),
    ("get", "/admin/usage"),
    ("post", "/signed/kv"),
    ("get", "/signed/kv/{ticket}"),
];

/// An admin secret, so the admin routes answer (401 without it) rather than 503.
const ADMIN: (&str, &str) = (
    "TINYCLOUD_ADMIN_SECRET",
    "e2e-openapi-admin-secret-0123456789abcdef",
);

#[tokio::test]
async fn document_is_served_and_matches_the_router() {
    let node = Node::start(NODE_BIN, &[ADMIN]);
    let r = get(&node, "/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(tinycloud_node::routes::openapi_document()).unwrap(),
        "the served document is the one generated from the code"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = vec![];
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (m, p) in EXPECTED {
        assert!(
            documented.iter().any(|(dm, dp)| dm == m && dp == p),
            "{m} {p} is not documented"
        );
    }
    assert_eq!(
        documented.len(),
        EXPECTED.len(),
        "documented: {documented:?}"
    );

    // Every documented operation reaches a handler: never the fallback's "no such route" 404
    // nor a 405 for the documented method.
    let client = http();
    let space = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:public";
    for (method, path) in &documented {
        let concrete = path
            .replace("{space}", space)
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{key}", "k")
            .replace("{ticket}", "x");
        let url = format!("{}{concrete}", node.url);
        let req = match method.as_str() {
            "get" => client.get(&url),
            "post" => client.post(&url),
            "delete" => client.delete(&url),
            "head" => client.head(&url),
            "put" => client.put(&url),
            other => panic!("undocumented method {other}"),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !(status == 404 && body == "no such route"),
            "{method} {path} is documented but not routed"
        );
        assert!(status < 500, "{method} {path}: {status} {body}");
    }
}

/// Found by the property-based API test: routes that act on authority answered a request
/// without `Authorization` with 400 about its body or path. Every documented
/// `Authorization`-taking operation now refuses it with 401 before looking at anything else.
#[tokio::test]
async fn missing_authorization_is_401_before_the_request_is_read() {
    let node = Node::start(NODE_BIN, &[ADMIN]);
    let doc = serde_json::to_value(tinycloud_node::routes::openapi_document()).unwrap();
    let client = http();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let takes_auth = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["in"] == "header" && p["name"] == "Authorization")
            });
            if !takes_auth {
                continue;
            }
            let url = format!("{}{}", node.url, path.replace("{id}", "not-an-id"));
            let req = match method.as_str() {
                "get" => client.get(&url),
                "post" => client.post(&url).body("{not json"),
                "delete" => client.delete(&url),
                "put" => client.put(&url).body("{not json"),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path}");
            assert_eq!(resp.text().await.unwrap(), "missing Authorization header");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} authenticated operations");
}

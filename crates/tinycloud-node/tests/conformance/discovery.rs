//! Conformance (foreign client): discovery — `/info`, `/version`, `/healthz`, CORS/`OPTIONS`,
//! and the rule that every documented route is covered by a conformance test.
//!
//! Requests are built by `tests/foreign/` (no `tinycloud_auth`); the node is the real binary.

use crate::common::{Node, NODE_BIN};
use crate::foreign::*;
use serde_json::Value;

#[test]
fn harness_matches_published_vectors() {
    self_check();
}

#[tokio::test]
async fn info_fields_and_casing() {
    let node = Node::start(NODE_BIN, &[]);
    for path in ["/info", "/version"] {
        let a = get(&node.url, path).await.expect(200);
        assert!(
            a.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{path}"
        );
        let v = a.json();
        // The SDK compares `protocol` as an integer, exactly (ProtocolMismatchError otherwise).
        assert_eq!(v["protocol"], Value::from(1), "{path}: {v}");
        assert!(v["version"].is_string());
        let features: Vec<&str> = v["features"]
            .as_array()
            .expect("features array")
            .iter()
            .map(|f| f.as_str().expect("feature string"))
            .collect();
        for f in [
            "kv",
            "delegation",
            "sql",
            "hooks",
            "encryption",
            "signed-urls",
        ] {
            assert!(features.contains(&f), "{path}: feature {f} in {features:?}");
        }
        // camelCase `nodeId`, `inTEE`; the node identity is an Ed25519 did:key.
        let node_id = v["nodeId"].as_str().expect("nodeId");
        assert!(node_id.starts_with("did:key:z6Mk"), "{node_id}");
        let _ = ed25519_from_did_key(node_id);
        assert_eq!(v["inTEE"], Value::Bool(false));
        // `quota_url` (snake_case) is omitted when no quota service is configured.
        assert!(v.get("quota_url").is_none() && v.get("quotaUrl").is_none());
        let obj = v.as_object().unwrap();
        for k in obj.keys() {
            assert!(
                [
                    "protocol",
                    "version",
                    "features",
                    "nodeId",
                    "inTEE",
                    "quota_url"
                ]
                .contains(&k.as_str()),
                "{path}: unexpected field {k}"
            );
        }
    }
    // `/version` answers exactly what `/info` does.
    assert_eq!(
        get(&node.url, "/info").await.json(),
        get(&node.url, "/version").await.json()
    );
}

/// `quota_url` (snake_case) comes from `TINYCLOUD_QUOTA_URL`; a value that is not an http(s)
/// URL stops the node at start-up.
#[tokio::test]
async fn info_quota_url_from_the_environment() {
    let node = Node::start(
        NODE_BIN,
        &[("TINYCLOUD_QUOTA_URL", "https://quota.example.com/buy")],
    );
    for path in ["/info", "/version"] {
        let v = get(&node.url, path).await.expect(200).json();
        assert_eq!(
            v["quota_url"], "https://quota.example.com/buy",
            "{path}: {v}"
        );
        assert!(v.get("quotaUrl").is_none());
    }
    let env = [("TINYCLOUD_QUOTA_URL".to_owned(), "not a url".to_owned())];
    assert!(tinycloud_node::config::Config::load(None, env).is_err());
}

#[tokio::test]
async fn healthz_and_options() {
    let node = Node::start(NODE_BIN, &[]);
    let h = get(&node.url, "/healthz").await.expect(200);
    assert!(h.body.is_empty(), "empty body");
    // Browser preflight: any path answers OPTIONS 200 with permissive CORS.
    for path in ["/invoke", "/delegate", "/anything/at/all"] {
        let r = http()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", node.url))
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let allow_origin = r
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // Deliberate difference: the reference answers `*` and also claims credentials (a
        // combination browsers reject); this node mirrors the origin, which works with
        // credentials too.
        assert!(
            allow_origin == "*" || allow_origin == "https://app.example.com",
            "{allow_origin}"
        );
        let allow_headers = r
            .headers()
            .get("access-control-allow-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(allow_headers.contains("authorization"), "{allow_headers}");
    }
    // The SDK reads ETag and the list headers cross-origin: they are exposed.
    let r = http()
        .get(format!("{}/info", node.url))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let expose = r
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["etag", "x-tinycloud-truncated", "x-tinycloud-next-cursor"] {
        assert!(expose.contains(h), "{h} exposed: {expose}");
    }
}

/// Every route of the served OpenAPI document appears in `foreign::COVERED_ROUTES`, and the
/// list names no route the node does not serve: a new route without conformance coverage
/// fails here.
#[tokio::test]
async fn every_documented_route_is_covered() {
    let node = Node::start(NODE_BIN, &[]);
    let doc = get(&node.url, "/openapi.json").await.expect(200).json();
    let mut documented = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "head", "patch", "options"]
                .contains(&method.as_str())
            {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    let missing: Vec<String> = documented
        .iter()
        .filter(|(m, p)| !COVERED_ROUTES.iter().any(|(cm, cp, _)| cm == m && cp == p))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a conformance test (add them to foreign::COVERED_ROUTES): {missing:?}"
    );
    let stale: Vec<String> = COVERED_ROUTES
        .iter()
        .filter(|(m, p, _)| !documented.iter().any(|(dm, dp)| dm == m && dp == p))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert!(stale.is_empty(), "covered but not served: {stale:?}");
    // Each entry names a test of a conformance suite that exists.
    for (_, _, test) in COVERED_ROUTES {
        let (file, name) = test.split_once("::").expect("file::test");
        let src = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/conformance/{file}.rs")),
        )
        .unwrap_or_else(|_| panic!("tests/conformance/{file}.rs"));
        assert!(
            src.contains(&format!("fn {name}(")),
            "{file}.rs has no test {name}"
        );
    }
}

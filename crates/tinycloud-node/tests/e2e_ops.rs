//! Operations surface, against the real binary: `/.well-known/tinycloud/node-keys`, the
//! Prometheus listener (`telemetry.enabled`) and the admin quota API
//! (`TINYCLOUD_ADMIN_SECRET`). Attack cases: wrong, empty and prefix-of-secret bearers,
//! high-cardinality paths that must not create metric series.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "an-admin-secret-of-more-than-32-bytes-0123456789";

fn telemetry() -> [(&'static str, &'static str); 2] {
    [
        ("TINYCLOUD_TELEMETRY__ENABLED", "true"),
        ("TINYCLOUD_TELEMETRY__PORT", "0"),
    ]
}

/// One sample of a scrape: labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// The samples of metric `name` (exact name, e.g. `…_total` or `…_bucket`) in a scrape.
fn samples(scrape: &str, name: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (metric, labels) = match series.split_once('{') {
            Some((m, l)) => (m, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let mut map = BTreeMap::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("label");
            map.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
        out.push((map, value.parse().expect("value")));
    }
    out
}

fn value_of(scrape: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(scrape, name)
        .into_iter()
        .filter(|(l, _)| {
            want.iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(node: &Node) -> String {
    let url = node.metrics_url.as_ref().expect("metrics listener");
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn node_keys_are_the_derived_public_keys() {
    let secret = [7u8; 32];
    let encoded = URL_SAFE_NO_PAD.encode(secret);
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_KEYS__SECRET", &encoded)]);
    let r = get(&node, "/.well-known/tinycloud/node-keys").await;
    assert_eq!(r.status(), 200);
    let keys: Value = r.json().await.unwrap();
    let obj = keys.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["nodeDid", "shareInvitationPublicKey"],
        "exactly the reference's two fields"
    );
    let info: Value = get_json(&node, "/info").await;
    assert_eq!(keys["nodeDid"], info["nodeId"]);
    let published = keys["shareInvitationPublicKey"].as_str().unwrap();
    assert_eq!(published.len(), 43, "32 bytes, unpadded base64url");
    // The reference's derivation: Ed25519 seed = blake3(secret ‖ context).
    let mut h = blake3::Hasher::new();
    h.update(&secret);
    h.update(b"tinycloud/share-email/invitation-signing");
    let key = tinycloud_auth::keys::SecretKey::ed25519_from_seed(h.finalize().as_bytes());
    let tinycloud_auth::keys::PublicKey::Ed25519(expected) = key.public_key() else {
        panic!("ed25519");
    };
    assert_eq!(published, URL_SAFE_NO_PAD.encode(expected.to_bytes()));
    assert_ne!(key.did().to_string(), info["nodeId"].as_str().unwrap());
    // Nothing secret is published.
    let body = keys.to_string();
    assert!(!body.contains(&encoded));
    assert!(!body.contains(&URL_SAFE_NO_PAD.encode(h.finalize().as_bytes())));
}

#[tokio::test]
async fn metrics_listener_is_absent_when_telemetry_is_off() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_TELEMETRY__PORT", "0")]);
    assert!(node.metrics_url.is_none(), "no metrics line printed");
    // And the API port never serves them.
    assert_eq!(get(&node, "/metrics").await.status(), 404);
}

#[tokio::test]
async fn metrics_count_route_templates_statuses_and_auth_failure_reasons() {
    let node = Node::start(NODE_BIN, &telemetry());
    let metrics = node.metrics_url.clone().unwrap();
    assert_ne!(
        metrics.trim_end_matches("/metrics"),
        node.url,
        "a listener of its own"
    );
    let o = Owner::sign_in(&node, 60, "default").await;
    let c = o.client(&node);
    for i in 0..3 {
        c.put(&o.res(&format!("kv/k{i}")), b"v").await.expect(200);
    }
    c.call(&o.res("kv/absent"), "get").await.expect(404);
    // Refusals of each kind.
    let no_auth = http()
        .post(format!("{}/invoke", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    let malformed = invoke(&node, "not-a-token", &[], vec![]).await;
    assert_eq!(malformed.status, 400);
    let once = invoke_header(
        &o.session,
        &[o.session_cid],
        &o.res("kv/k0"),
        "tinycloud.kv/get",
    );
    invoke(&node, &once, &[], vec![]).await.expect(200);
    invoke(&node, &once, &[], vec![]).await.expect(409);
    let stranger = Owner::sign_in(&node, 61, "default").await;
    let outside = invoke_header(
        &o.session,
        &[o.session_cid],
        &stranger.res("kv/k0"),
        "tinycloud.kv/get",
    );
    invoke(&node, &outside, &[], vec![]).await.expect(401);

    let text = scrape(&node).await;
    let requests = "tinycloud_http_requests_total";
    assert!(
        value_of(
            &text,
            requests,
            &[("method", "POST"), ("route", "/invoke"), ("status", "200")]
        ) >= 4.0,
        "{text}"
    );
    assert!(value_of(&text, requests, &[("route", "/invoke"), ("status", "404")]) >= 1.0);
    assert!(value_of(&text, requests, &[("route", "/invoke"), ("status", "409")]) >= 1.0);
    assert!(
        value_of(
            &text,
            requests,
            &[("route", "/delegate"), ("status", "200")]
        ) >= 2.0
    );
    // Latency histogram per route and status.
    assert!(
        value_of(
            &text,
            "tinycloud_http_request_duration_seconds_count",
            &[("route", "/invoke"), ("status", "200")]
        ) >= 4.0
    );
    assert!(!samples(&text, "tinycloud_http_request_duration_seconds_bucket").is_empty());
    // Authorization failures by reason.
    let failures = "tinycloud_auth_failures_total";
    for reason in [
        "missing-authorization",
        "malformed-token",
        "replay",
        "unauthorized-action",
    ] {
        assert!(
            value_of(&text, failures, &[("reason", reason)]) >= 1.0,
            "{reason}: {text}"
        );
    }
    // Store commits are timed.
    assert!(value_of(&text, "tinycloud_store_commit_duration_seconds_count", &[]) >= 3.0);
    // The webhook queue gauge is there (no webhooks: empty).
    assert_eq!(value_of(&text, "tinycloud_webhook_queue_depth", &[]), 0.0);
    // Only /metrics is served there.
    let other = http()
        .get(metrics.replace("/metrics", "/invoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

/// Attack: a client sending random paths, keys and methods must not grow the label space.
#[tokio::test]
async fn high_cardinality_requests_create_no_new_series() {
    let node = Node::start(NODE_BIN, &telemetry());
    let burst = |tag: &'static str| {
        let url = node.url.clone();
        async move {
            for i in 0..20 {
                let id = format!("{tag}{i}{}", uuid::Uuid::new_v4().simple());
                let client = http();
                for path in [
                    format!("/nowhere-{id}"),
                    format!("/public/tinycloud:pkh:eip155:1:0xabc:{id}/kv/{id}"),
                    format!("/peer/generate/{id}"),
                    format!("/encryption/networks/{id}"),
                ] {
                    let _ = client.get(format!("{url}{path}")).send().await.unwrap();
                }
                let method = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
                let _ = client
                    .request(method, format!("{url}/info"))
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    burst("first").await;
    let before = scrape(&node).await;
    let series_before = samples(&before, "tinycloud_http_requests_total");
    burst("second").await;
    let after = scrape(&node).await;
    let series_after = samples(&after, "tinycloud_http_requests_total");
    let keys = |s: &[Sample]| {
        s.iter()
            .map(|(l, _)| l.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // The metrics scrape itself is not an API request: the series are exactly the same.
    assert_eq!(keys(&series_before), keys(&series_after));
    for (labels, _) in &series_after {
        let route = &labels["route"];
        assert!(route == "unmatched" || route.starts_with('/'), "{route}");
        assert!(
            !route.contains("first") && !route.contains("second"),
            "{route}"
        );
        assert!(
            ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"]
                .contains(&labels["method"].as_str()),
            "{labels:?}"
        );
    }
    assert!(!after.contains("first0") && !after.contains("second0"));
    assert!(
        value_of(
            &after,
            "tinycloud_http_requests_total",
            &[("route", "unmatched")]
        ) >= 40.0
    );
    assert!(
        value_of(
            &after,
            "tinycloud_http_requests_total",
            &[("route", "/public/{space}/kv/{*key}")]
        ) >= 40.0
    );
    assert!(
        value_of(
            &after,
            "tinycloud_http_requests_total",
            &[("method", "other")]
        ) >= 40.0
    );
}

#[tokio::test]
async fn sse_streams_gauge_goes_up_and_down() {
    let node = Node::start(NODE_BIN, &telemetry());
    let o = Owner::sign_in(&node, 62, "default").await;
    let scope = json!([{"space": o.space.to_string(), "service": "kv"}]);
    let gauge = "tinycloud_sse_streams_open";
    let a = SseReader::connect(&node, &o.session, &[o.session_cid], scope.clone(), None)
        .await
        .unwrap();
    let b = SseReader::connect(&node, &o.session, &[o.session_cid], scope, None)
        .await
        .unwrap();
    assert_eq!(value_of(&scrape(&node).await, gauge, &[]), 2.0);
    drop(a);
    drop(b);
    // The server notices a closed stream on its next write (a keep-alive at the latest).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let open = value_of(&scrape(&node).await, gauge, &[]);
        if open == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} streams still open"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn admin(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http().request(method, format!("{}{path}", node.url));
    if let Some(b) = bearer {
        req = req.header("authorization", b);
    }
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

fn ok_bearer() -> String {
    format!("Bearer {SECRET}")
}

const SPACE: &str = "tinycloud:pkh:eip155:1:0x8ba1f109551bD432803012645Ac136ddd64DBA72:default";

#[tokio::test]
async fn admin_api_is_off_without_a_secret() {
    let node = Node::start(NODE_BIN, &[]);
    let good = ok_bearer();
    for (method, path) in [
        (reqwest::Method::GET, "/admin/quota".to_owned()),
        (reqwest::Method::GET, "/admin/usage".to_owned()),
        (reqwest::Method::GET, format!("/admin/quota/{SPACE}")),
        (reqwest::Method::DELETE, format!("/admin/quota/{SPACE}")),
        (reqwest::Method::PUT, "/admin/quota/not-a-space".to_owned()),
    ] {
        for bearer in [None, Some(good.as_str())] {
            let (status, _) = admin(
                &node,
                method.clone(),
                &path,
                bearer,
                Some(json!({"limit_bytes": 1})),
            )
            .await;
            assert_eq!(status, 503, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_too_short_admin_secret_refuses_to_start() {
    let out = Launch::new(NODE_BIN)
        .env(&[("TINYCLOUD_ADMIN_SECRET", "tooshort-secret")])
        .output();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(
        !stderr.contains("tooshort-secret"),
        "the secret is never printed"
    );
}

/// Attack: every bearer but the exact secret is refused, on every admin route.
#[tokio::test]
async fn admin_refuses_every_bearer_but_the_secret() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let prefix = format!("Bearer {}", &SECRET[..SECRET.len() - 1]);
    let longer = format!("Bearer {SECRET}x");
    let upper = format!("Bearer {}", SECRET.to_uppercase());
    let basic = format!("Basic {SECRET}");
    let doubled = format!("Bearer  {SECRET}");
    let wrong: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some(prefix.as_str()),
        Some(longer.as_str()),
        Some(upper.as_str()),
        Some(basic.as_str()),
        Some(doubled.as_str()),
        Some(SECRET),
    ];
    let routes = [
        (reqwest::Method::GET, "/admin/quota".to_owned()),
        (reqwest::Method::GET, "/admin/usage".to_owned()),
        (reqwest::Method::GET, format!("/admin/quota/{SPACE}")),
        (reqwest::Method::PUT, format!("/admin/quota/{SPACE}")),
        (reqwest::Method::DELETE, format!("/admin/quota/{SPACE}")),
    ];
    for (method, path) in &routes {
        for bearer in &wrong {
            let (status, body) = admin(
                &node,
                method.clone(),
                path,
                *bearer,
                Some(json!({"limit_bytes": 1})),
            )
            .await;
            assert_eq!(status, 401, "{method} {path} with {bearer:?}: {body}");
        }
    }
    // Nothing was changed by the refused PUTs.
    let (status, list) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/quota",
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["overrides"], json!({}));
    // The scheme is case-insensitive; the secret is not.
    let lower = format!("bearer {SECRET}");
    let (status, _) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/quota",
        Some(&lower),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Bad input is refused only once the caller is known.
    let (status, _) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/quota/not-a-space",
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/quota/not-a-space",
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
    for body in [
        json!({}),
        json!({"limit_bytes": -1}),
        json!({"limit_bytes": "10"}),
    ] {
        let (status, _) = admin(
            &node,
            reqwest::Method::PUT,
            &format!("/admin/quota/{SPACE}"),
            Some(&ok_bearer()),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    for q in ["limit=0", "limit=1001", "limit=x"] {
        let (status, _) = admin(
            &node,
            reqwest::Method::GET,
            &format!("/admin/usage?{q}"),
            Some(&ok_bearer()),
            None,
        )
        .await;
        assert_eq!(status, 400, "{q}");
    }
}

async fn quota(node: &Node, space: &str) -> Value {
    let (status, q) = admin(
        node,
        reqwest::Method::GET,
        &format!("/admin/quota/{space}"),
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{q}");
    q
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn quota_override_is_enforced_durable_and_removable() {
    let default = 1024 * 1024;
    let env = [
        ("TINYCLOUD_ADMIN_SECRET", SECRET),
        ("TINYCLOUD_STORAGE__LIMIT", "1 MiB"),
    ];
    let mut node = Node::start(NODE_BIN, &env);
    let o = Owner::sign_in(&node, 63, "default").await;
    let space = o.space.to_string();
    let c = o.client(&node);
    let q = quota(&node, &space).await;
    assert_eq!(q["space_id"], space.as_str());
    assert_eq!(q["override_bytes"], Value::Null);
    assert_eq!(num(&q["effective_limit_bytes"]), default);
    let used = num(&q["current_usage_bytes"]);
    assert!(used > 0, "the session delegation is charged");

    // Usage is what the space holds: a 100-byte value adds exactly 100 bytes.
    c.put(&o.res("kv/a"), &[1u8; 100]).await.expect(200);
    let used = {
        let now = num(&quota(&node, &space).await["current_usage_bytes"]);
        assert_eq!(now, used + 100);
        now
    };

    // An override of 50 bytes more than is used now.
    let (status, set) = admin(
        &node,
        reqwest::Method::PUT,
        &format!("/admin/quota/{space}"),
        Some(&ok_bearer()),
        Some(json!({"limit_bytes": used + 50})),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(num(&set["override_bytes"]), used + 50);
    assert_eq!(num(&set["effective_limit_bytes"]), used + 50);
    // A write past it is refused with the node's quota status; one within it is not.
    let over = c.put(&o.res("kv/b"), &[2u8; 80]).await;
    assert_eq!(over.status, 413, "{}", over.text());
    c.put(&o.res("kv/b"), &[2u8; 50]).await.expect(200);
    let full = c.put(&o.res("kv/c"), b"x").await;
    assert_eq!(full.status, 402, "{}", full.text());
    assert!(full.text().contains(&format!("Limit: {} bytes", used + 50)));

    // Listed, and in the usage report.
    let (_, list) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/quota",
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(num(&list["overrides"][&space]), used + 50);
    assert_eq!(num(&list["default_limit_bytes"]), default);
    let (_, usage) = admin(
        &node,
        reqwest::Method::GET,
        "/admin/usage",
        Some(&ok_bearer()),
        None,
    )
    .await;
    let row = usage["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["space_id"] == space.as_str())
        .expect("the space is reported")
        .clone();
    assert_eq!(num(&row["usage_bytes"]), used + 50);
    assert_eq!(num(&row["index_bytes"]) + num(&row["sql_bytes"]), used + 50);
    assert_eq!(num(&row["override_bytes"]), used + 50);

    // Survives a restart (even a kill -9).
    let tmp = node.take_tmp();
    let dir = node.dir.clone();
    node.kill9();
    drop(node);
    let node = Node::start_in(NODE_BIN, &dir, &env);
    let q = quota(&node, &space).await;
    assert_eq!(num(&q["override_bytes"]), used + 50);
    let c = o.client(&node);
    let still = c.put(&o.res("kv/c"), b"x").await;
    assert_eq!(still.status, 402, "{}", still.text());

    // DELETE restores the default.
    let (status, del) = admin(
        &node,
        reqwest::Method::DELETE,
        &format!("/admin/quota/{space}"),
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{del}");
    assert_eq!(del["override_bytes"], Value::Null);
    assert_eq!(num(&del["effective_limit_bytes"]), default);
    c.put(&o.res("kv/c"), b"x").await.expect(200);
    // Idempotent.
    let (status, _) = admin(
        &node,
        reqwest::Method::DELETE,
        &format!("/admin/quota/{space}"),
        Some(&ok_bearer()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    drop(tmp);
}

#[tokio::test]
async fn usage_counts_sql_and_pages_through_spaces() {
    let node = Node::start(NODE_BIN, &[("TINYCLOUD_ADMIN_SECRET", SECRET)]);
    let a = Owner::sign_in(&node, 64, "default").await;
    let b = Owner::sign_in(&node, 65, "default").await;
    a.client(&node)
        .execute(&a.res("sql/main"), "admin", "CREATE TABLE t (x)")
        .await
        .expect(200);
    let get_page = |q: String| {
        let node = &node;
        async move {
            let (status, page) = admin(
                node,
                reqwest::Method::GET,
                &format!("/admin/usage{q}"),
                Some(&ok_bearer()),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page
        }
    };
    let all = get_page(String::new()).await;
    assert_eq!(all["total_spaces"], 2);
    let rows = all["spaces"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(all.get("next").is_none());
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["space_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "ordered by id");
    let row_a = rows
        .iter()
        .find(|r| r["space_id"] == a.space.to_string().as_str())
        .unwrap();
    assert!(num(&row_a["sql_bytes"]) > 0, "{row_a}");
    assert_eq!(
        num(&row_a["usage_bytes"]),
        num(&row_a["index_bytes"]) + num(&row_a["sql_bytes"])
    );
    assert_eq!(
        row_a["effective_limit_bytes"],
        Value::Null,
        "no limit configured"
    );
    let q = quota(&node, &a.space.to_string()).await;
    assert_eq!(q["current_usage_bytes"], row_a["usage_bytes"]);
    // Pages of one.
    let first = get_page("?limit=1".into()).await;
    assert_eq!(first["spaces"].as_array().unwrap().len(), 1);
    let next = first["next"].as_str().unwrap().to_owned();
    assert_eq!(next, ids[0]);
    let second = get_page(format!("?limit=1&after={}", urlencode(&next))).await;
    assert_eq!(second["spaces"][0]["space_id"], ids[1]);
    assert!(second.get("next").is_none());
    let _ = b;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

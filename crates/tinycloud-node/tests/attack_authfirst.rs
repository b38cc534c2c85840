//! Authorization before lookups, against the real binary over raw HTTP: a caller without
//! authority (a stranger with a valid signature and no chain, a tampered signature, a garbage
//! token) gets the same answer for a space that exists and one that does not on webhook
//! registration, ticket minting and signed-URL minting — no existence oracle — and a webhook
//! registration whose callback host cannot resolve is refused for lack of authority, never
//! with a DNS error (the node resolves nothing for such a caller).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use tinycloud_auth::resource::SpaceId;

/// The answers a caller without authority gets, with the space id blanked out of the text.
async fn answer(node: &Node, path: &str, token: &str, body: &Value, space: &str) -> (u16, String) {
    let (s, v) = request(node, Method::POST, path, token, Some(body)).await;
    let text = match v {
        Value::String(t) => t,
        other => other.to_string(),
    };
    (s, text.replace(space, "<space>"))
}

/// A signature-tampered copy of a valid header (a character inside its signature changed).
fn tampered(header: &str) -> String {
    let mut chars: Vec<char> = header.chars().collect();
    let at = chars.len().saturating_sub(10);
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Turns a valid stranger's header into the token a way of lacking authority sends.
type TokenOf = fn(&str) -> String;

/// For each way of lacking authority, one request per space, built by `request_for`.
async fn same_answer_for_both_spaces(
    node: &Node,
    path: &str,
    spaces: &[String; 2],
    request_for: impl Fn(&str) -> (String, Value),
) {
    let stranger = ed25519(201);
    let ways: [(&str, TokenOf); 3] = [
        ("stranger (valid signature, no chain)", str::to_owned),
        ("tampered signature", tampered),
        ("garbage token", |_| "garbage".to_owned()),
    ];
    for (way, token_of) in ways {
        let mut answers = Vec::new();
        for space in spaces {
            let (resource, body) = request_for(space);
            let (res, ability) = resource.split_once(' ').unwrap();
            let token = token_of(&invoke_header(&stranger, &[], res, ability));
            answers.push(answer(node, path, &token, &body, space).await);
        }
        assert_eq!(
            answers[0], answers[1],
            "{path}, {way}: existing vs missing space"
        );
        let (status, text) = &answers[0];
        assert!(
            *status == 400 || *status == 401,
            "{path}, {way}: refused as unauthenticated, got {status} {text}"
        );
        let lower = text.to_lowercase();
        for leak in ["not found", "resolve", "dns", "callback", "lookup"] {
            assert!(
                !lower.contains(leak),
                "{path}, {way}: leaks {leak:?}: {text}"
            );
        }
    }
}

fn spaces(o: &Owner) -> [String; 2] {
    let missing = SpaceId::new(o.did.clone(), "nothere").unwrap();
    [o.space.to_string(), missing.to_string()]
}

#[tokio::test]
async fn webhook_registration_is_no_space_oracle_and_resolves_nothing_before_auth() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 61, "default").await;
    let registration = |space: &str| {
        (
            format!("{space}/hooks/kv/notes tinycloud.hooks/register"),
            json!({
                "space": space, "service": "kv", "pathPrefix": "notes",
                "callbackUrl": "https://no-such-host.invalid/hook", "secret": "s3cret",
            }),
        )
    };
    same_answer_for_both_spaces(&node, "/hooks/webhooks", &spaces(&o), registration).await;

    // The control: the owner, who may register, gets past authorization and the callback is
    // then checked (refused, as it cannot resolve) — so the refusals above are authorization's.
    let (resource, body) = registration(&o.space.to_string());
    let (res, _) = resource.split_once(' ').unwrap();
    let (s, v) = o
        .client(&node)
        .hooks(
            res,
            "register",
            Method::POST,
            "/hooks/webhooks",
            Some(&body),
        )
        .await;
    assert_eq!(
        s, 400,
        "the owner's registration reaches the URL check: {v}"
    );
    // And for a space that does not exist, only someone with authority over it hears so.
    let missing = &spaces(&o)[1];
    let (resource, body) = registration(missing);
    let (res, ability) = resource.split_once(' ').unwrap();
    let session = invoke_header(&o.session, &[o.session_cid], res, ability);
    let (s, v) = request(
        &node,
        Method::POST,
        "/hooks/webhooks",
        &session,
        Some(&body),
    )
    .await;
    assert_eq!(
        s, 401,
        "the owner's session does not cover the other space: {v}"
    );
}

#[tokio::test]
async fn ticket_minting_is_no_space_oracle() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 62, "default").await;
    let ticket = |space: &str| {
        (
            format!("{space}/hooks/kv/notes tinycloud.hooks/subscribe"),
            json!({"subscriptions": [{"space": space, "service": "kv", "pathPrefix": "notes"}]}),
        )
    };
    same_answer_for_both_spaces(&node, "/hooks/tickets", &spaces(&o), ticket).await;
    // The control: the owner mints.
    let (resource, body) = ticket(&o.space.to_string());
    let (res, _) = resource.split_once(' ').unwrap();
    let (s, v) = o
        .client(&node)
        .hooks(
            res,
            "subscribe",
            Method::POST,
            "/hooks/tickets",
            Some(&body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn signed_url_minting_is_no_space_oracle() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 63, "default").await;
    o.client(&node)
        .put(&o.res("kv/docs/a"), b"a")
        .await
        .expect(200);
    let mint = |space: &str| {
        (
            format!("{space}/kv/docs/a tinycloud.kv/get"),
            json!({"space": space, "path": "docs/a"}),
        )
    };
    same_answer_for_both_spaces(&node, "/signed/kv", &spaces(&o), mint).await;
    // The control: the owner mints.
    let (resource, body) = mint(&o.space.to_string());
    let (res, ability) = resource.split_once(' ').unwrap();
    let token = invoke_header(&o.session, &[o.session_cid], res, ability);
    let (s, v) = request(&node, Method::POST, "/signed/kv", &token, Some(&body)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn webhook_ids_are_no_oracle_for_a_delegate_outside_their_scope() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 64, "default").await;
    // A literal public address: registering it resolves nothing (and no write is made, so
    // nothing is ever delivered there).
    let (s, v) = o
        .client(&node)
        .hooks(
            &o.res("hooks/kv/notes"),
            "register",
            Method::POST,
            "/hooks/webhooks",
            Some(&json!({
                "space": o.space.to_string(), "service": "kv", "pathPrefix": "notes",
                "callbackUrl": "https://93.184.216.34/hook", "secret": "s3cret",
            })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let real = v["id"].as_str().unwrap().to_owned();
    let fake = format!("wh_{}", "0".repeat(32));
    let e = ed25519(164);
    let other = o.res("hooks/kv/other");
    let grant = delegate(
        &node,
        &o.session,
        &e.did(),
        &[o.session_cid],
        vec![
            tinycloud_auth::session::capability(&other, "tinycloud.hooks/list").unwrap(),
            tinycloud_auth::session::capability(&other, "tinycloud.hooks/unregister").unwrap(),
        ],
        600,
    )
    .await;
    let ec = Client::new(&node, &e, &[grant]);
    for (ability, method, suffix) in [
        ("list", Method::GET, "/deliveries"),
        ("unregister", Method::DELETE, ""),
    ] {
        let mut answers = Vec::new();
        for id in [&real, &fake] {
            let (s, v) = ec
                .hooks(
                    &other,
                    ability,
                    method.clone(),
                    &format!("/hooks/webhooks/{id}{suffix}"),
                    None,
                )
                .await;
            answers.push((s, v.to_string().replace(id.as_str(), "<id>")));
        }
        assert_eq!(answers[0], answers[1], "{ability}: real vs unknown id");
        assert_eq!(answers[0].0, 401, "{ability}: {:?}", answers[0]);
        assert!(
            !answers[0].1.contains("notes"),
            "the refusal does not name the webhook's scope: {:?}",
            answers[0]
        );
    }
    // The owner still sees and manages it.
    let (s, v) = o
        .client(&node)
        .hooks(
            &o.res("hooks/kv/notes"),
            "list",
            Method::GET,
            &format!("/hooks/webhooks/{real}/deliveries"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// Every operation the served document says takes an invocation in `Authorization`: a garbage
/// token and a stranger's (a valid signature, authority over nothing here) are refused as
/// such — 400/401/403, never "not found", a success or a server fault — whatever the path
/// names. A route written to look up its path (a webhook, a network) before authorizing
/// answers 404 here and fails this test.
#[tokio::test]
async fn no_authenticated_operation_answers_an_unauthenticated_caller_with_a_lookup() {
    let node = Node::start(NODE_BIN, &[]);
    let doc: Value = get_json(&node, "/openapi.json").await;
    let other = Owner::sign_in(&node, 65, "default").await;
    let someone_else = SpaceId::new(other.did.clone(), "nothere")
        .unwrap()
        .to_string();
    let network = format!("urn:tinycloud:encryption:{}:nothere", other.did);
    let stranger = ed25519(202);
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/admin") {
            continue; // the operator bearer, checked before any input (attack_server.rs)
        }
        for (method, op) in item.as_object().unwrap() {
            let takes_invocation = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["in"] == "header" && p["name"] == "Authorization")
            });
            if !takes_invocation {
                continue;
            }
            let id = if path.starts_with("/encryption") {
                network.replace(':', "%3A")
            } else {
                format!("wh_{}", "0".repeat(32))
            };
            let concrete = path.replace("{id}", &id);
            let query = if concrete == "/hooks/webhooks" && method == "get" {
                format!("?space={someone_else}&service=kv")
            } else {
                String::new()
            };
            let method: Method = method.to_uppercase().parse().unwrap();
            let signed = invoke_header(
                &stranger,
                &[],
                &format!("{someone_else}/kv/x"),
                "tinycloud.kv/get",
            );
            for (way, token) in [("garbage", "garbage".to_owned()), ("stranger", signed)] {
                let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
                let (s, v) = request(
                    &node,
                    method.clone(),
                    &format!("{concrete}{query}"),
                    &token,
                    body.as_ref(),
                )
                .await;
                assert!(
                    matches!(s, 400 | 401 | 403),
                    "{method} {path}, {way}: {s} {v}"
                );
                assert!(
                    !v.to_string().to_lowercase().contains("not found"),
                    "{method} {path}, {way}: {s} {v}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 15, "every authenticated operation");
}

//! Approval with narrowing, over HTTP against the real binary: redirect flow with a one-time
//! code, device-code flow, deny, and the refusals (stale passkey check, replayed code, widening,
//! foreign return URLs, missing CSRF token).

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{reverify, signup, Client, Server};
use serde_json::{json, Value};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::did::Did;
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::recap::Recap;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::SiweDelegationRequest;
use tinycloud_auth::siwe::{parse_hex_signature, Message};
use tinycloud_auth::timestamp::Timestamp;

const PLACEHOLDER: &str = "0x0000000000000000000000000000000000000000";
const LOOPBACK: &str = "http://127.0.0.1:4567/callback";

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn owner_address(c: &Client) -> String {
    let keys = c.json("/api/keys").await;
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["owner"] == true)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A SIWE + ReCap asking read, write and delete on the owner's `default` kv, expiring in a day,
/// written for `signer` (the placeholder lets OpenKey fill the address).
fn request_message(owner: &str, signer: &str, expires_in: i64) -> String {
    let owner_did = Did::pkh(1, EthAddress::parse_checksummed(owner).unwrap()).unwrap();
    let space = SpaceId::new(owner_did, "default").unwrap();
    let res = space.resource("kv", None).unwrap();
    let caps: Vec<Capability> = ["get", "put", "del"]
        .iter()
        .map(|a| Capability::new(res.clone(), Ability::new("tinycloud.kv", a).unwrap()))
        .collect();
    SiweDelegationRequest {
        domain: "app.example".into(),
        address: EthAddress::parse_checksummed(signer).unwrap(),
        chain_id: 1,
        delegate: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".into(),
        nonce: "abcdefgh1234".into(),
        issued_at: Timestamp::from_secs(now_secs()),
        expiration: Some(Timestamp::from_secs(now_secs() + expires_in)),
        not_before: None,
        capabilities: caps,
        parents: vec![],
        statement: Some("Let the example app use your notes.".into()),
    }
    .to_message()
    .unwrap()
    .to_string()
}

async fn create(
    s: &Server,
    message: &str,
    return_url: &str,
    client_id: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({ "message": message, "return_url": return_url, "state": "st-42" });
    if let Some(id) = client_id {
        body["client_id"] = json!(id);
    }
    reqwest::Client::new()
        .post(format!("{}/api/approve/requests", s.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn create_ok(s: &Server, message: &str) -> String {
    let r = create(s, message, LOOPBACK, None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["approve_url"]
        .as_str()
        .unwrap()
        .ends_with(v["request_id"].as_str().unwrap()));
    v["request_id"].as_str().unwrap().to_string()
}

/// The `value` of the hidden `digest` input of a review page.
fn digest_in(html: &str) -> String {
    let i = html.find("name=\"digest\" value=\"").expect("digest field") + 21;
    html[i..].split('"').next().unwrap().to_string()
}

async fn review(c: &Client, id: &str, query: &[(&str, &str)]) -> reqwest::Response {
    c.http
        .get(format!("{}/approve/{id}/review", c.base))
        .query(query)
        .send()
        .await
        .unwrap()
}

async fn public_post(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn location(r: &reqwest::Response) -> url::Url {
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

fn query_of(u: &url::Url, key: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
}

fn abilities(msg: &Message) -> Vec<String> {
    let recap = Recap::extract(msg.resources.as_ref().unwrap())
        .unwrap()
        .unwrap();
    recap.att.values().flat_map(|a| a.keys().cloned()).collect()
}

#[tokio::test]
async fn approve_with_narrowing_signs_exactly_the_narrowed_message() {
    let s = Server::start(&[]);
    let (c, mut pk) = signup(&s, "ann@example.com").await;
    reverify(&s, &c, &mut pk).await;
    let owner = owner_address(&c).await;
    let id = create_ok(&s, &request_message(&owner, PLACEHOLDER, 86_400)).await;

    let page = c.get(&format!("/approve/{id}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Allow did:key:"), "{html}");
    assert!(html.contains("Can delete or revoke."), "{html}");
    assert!(html.contains("Can change or add data."), "{html}");
    assert!(html.contains("Covers the whole kv service"), "{html}");
    assert!(html.contains(&owner), "the filled address is shown");

    // Items are ordered by ability: del (0), get (1), put (2). Remove delete, shorten to 1 h.
    let exp = time::OffsetDateTime::from_unix_timestamp(now_secs() + 3600).unwrap();
    let exp_text = exp
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = review(&c, &id, &[("remove", "0"), ("expiration", &exp_text)]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Removed: Delete"), "{html}");
    let digest = digest_in(&html);

    let r = c
        .post_form(
            &format!("/approve/{id}/approve"),
            &[
                ("remove", "0"),
                ("expiration", &exp_text),
                ("digest", &digest),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let back = location(&r);
    assert!(back.as_str().starts_with(LOOPBACK));
    assert_eq!(query_of(&back, "state").as_deref(), Some("st-42"));
    assert!(
        query_of(&back, "signature").is_none(),
        "never the signature in the URL"
    );
    let code = query_of(&back, "code").unwrap();

    let (status, v) = public_post(
        &s,
        "/api/approve/exchange",
        &json!({ "code": code, "request_id": id }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["address"], owner);
    let msg = Message::from_str(v["message"].as_str().unwrap()).unwrap();
    assert_eq!(msg.address.to_eip55(), owner);
    assert_eq!(
        format!("0x{}", hex::encode(msg.eip191_hash())),
        digest,
        "signed what was reviewed"
    );
    msg.verify_eip191(&parse_hex_signature(v["signature"].as_str().unwrap()).unwrap())
        .expect("signature recovers to the owner address");
    let abs = abilities(&msg);
    assert_eq!(abs, vec!["tinycloud.kv/get", "tinycloud.kv/put"]);
    Recap::extract(msg.resources.as_ref().unwrap())
        .unwrap()
        .unwrap()
        .verify_statement(msg.statement.as_deref())
        .expect("statement regenerated");
    assert!(msg
        .statement
        .as_deref()
        .unwrap()
        .starts_with("Let the example app use your notes. "));
    assert_eq!(
        msg.expiration_time.unwrap().unix_seconds(),
        exp.unix_timestamp()
    );

    // The code is single use.
    let (status, v) = public_post(
        &s,
        "/api/approve/exchange",
        &json!({ "code": code, "request_id": id }),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));

    let audit = c.get("/account/audit").await.text().await.unwrap();
    assert!(audit.contains("approve.siwe"), "{audit}");
    assert!(audit.contains("approve.exchange"), "{audit}");
    // No secrets in the log.
    assert!(!s.stderr().contains(&code));
}

#[tokio::test]
async fn stale_passkey_check_is_refused_until_reverified() {
    let s = Server::start(&["--uv-window-secs", "1"]);
    let (c, mut pk) = signup(&s, "bo@example.com").await;
    let owner = owner_address(&c).await;
    let id = create_ok(&s, &request_message(&owner, &owner, 86_400)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let html = review(&c, &id, &[]).await.text().await.unwrap();
    assert!(html.contains("data-passkey=\"reverify\""), "{html}");
    let digest = digest_in(&html);
    let r = c
        .post_form(&format!("/approve/{id}/approve"), &[("digest", &digest)])
        .await;
    assert_eq!(r.status(), 401);
    let audit = c.get("/account/audit").await.text().await.unwrap();
    assert!(audit.contains("refused"), "{audit}");
    reverify(&s, &c, &mut pk).await;
    let r = c
        .post_form(&format!("/approve/{id}/approve"), &[("digest", &digest)])
        .await;
    assert_eq!(r.status(), 303, "approves once verified again");
}

#[tokio::test]
async fn a_request_cannot_be_widened() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "cy@example.com").await;
    let owner = owner_address(&c).await;
    let original = request_message(&owner, &owner, 3600);
    let id = create_ok(&s, &original).await;
    let later = time::OffsetDateTime::from_unix_timestamp(now_secs() + 7200)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // A longer expiry: refused at review and at approval.
    assert_eq!(
        review(&c, &id, &[("expiration", &later)]).await.status(),
        400
    );
    let digest = digest_in(&review(&c, &id, &[]).await.text().await.unwrap());
    let r = c
        .post_form(
            &format!("/approve/{id}/approve"),
            &[("expiration", &later), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status(), 400);
    // An added capability: the form has no way to add; an extra field is refused.
    let r = c
        .post_form(
            &format!("/approve/{id}/approve"),
            &[("capability", "tinycloud.kv/*"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status(), 400);
    // A removal naming no item.
    assert_eq!(review(&c, &id, &[("remove", "9")]).await.status(), 400);
    // The digest of another (wider) message than the one rebuilt from the stored original.
    let wider = request_message(&owner, &owner, 86_400);
    let wider_digest = format!(
        "0x{}",
        hex::encode(Message::from_str(&wider).unwrap().eip191_hash())
    );
    let r = c
        .post_form(
            &format!("/approve/{id}/approve"),
            &[("digest", &wider_digest)],
        )
        .await;
    assert_eq!(r.status(), 409);
    // Narrowed at review (delete removed), then approved without the removal: digest mismatch.
    let narrowed = digest_in(
        &review(&c, &id, &[("remove", "0")])
            .await
            .text()
            .await
            .unwrap(),
    );
    let r = c
        .post_form(&format!("/approve/{id}/approve"), &[("digest", &narrowed)])
        .await;
    assert_eq!(r.status(), 409);
    // A tampered original: the ReCap widened without its statement.
    let mut m = Message::from_str(&original).unwrap();
    let other = Message::from_str(&request_message(&owner, &owner, 3600)).unwrap();
    let mut recap = Recap::extract(other.resources.as_ref().unwrap())
        .unwrap()
        .unwrap();
    let res = recap.att.keys().next().unwrap().clone();
    recap
        .att
        .get_mut(&res)
        .unwrap()
        .insert("tinycloud.kv/metadata".into(), vec![Default::default()]);
    m.resources = Some(vec![recap.to_resource()]);
    let r = create(&s, &m.to_string(), LOOPBACK, None).await;
    assert_eq!(r.status(), 400, "statement no longer matches the ReCap");
    // A message for another account is refused on the page.
    let stranger = request_message(&owner, "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", 3600);
    let sid = create_ok(&s, &stranger).await;
    assert_eq!(c.get(&format!("/approve/{sid}")).await.status(), 400);
    // After all that the request is still pending and approves as sent.
    let r = c
        .post_form(&format!("/approve/{id}/approve"), &[("digest", &digest)])
        .await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn return_urls_must_be_registered_or_loopback() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "di@example.com").await;
    let owner = owner_address(&c).await;
    let m = request_message(&owner, &owner, 3600);
    for bad in [
        "https://evil.example/cb",
        "http://localhost:4567/cb",
        "http://127.0.0.1/cb",
        "https://127.0.0.1:4567/cb",
        "http://127.0.0.1:4567/cb#frag",
        "not a url",
    ] {
        assert_eq!(create(&s, &m, bad, None).await.status(), 400, "{bad}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openkey"))
        .args(["apps", "--data-dir"])
        .arg(s.dir.join("data"))
        .args([
            "add",
            "--name",
            "Example",
            "--return-url",
            "https://app.example/cb",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        create(&s, &m, "https://app.example/cb", Some(&client_id))
            .await
            .status(),
        200
    );
    assert_eq!(
        create(&s, &m, "https://app.example/cb", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        create(&s, &m, "https://app.example/cb", Some("other"))
            .await
            .status(),
        400
    );
    assert_eq!(
        create(&s, &m, "https://app.example/cb/more", None)
            .await
            .status(),
        400
    );
    assert_eq!(
        create(&s, &m, "https://app.example/cb?x=1", None)
            .await
            .status(),
        400
    );
    let r = create(&s, &m, "https://app.example/cb", None).await;
    let id = r.json::<Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = c.get(&format!("/approve/{id}")).await.text().await.unwrap();
    assert!(page.contains("the app “Example”"), "{page}");
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_openkey"))
        .args(["apps", "--data-dir"])
        .arg(s.dir.join("data"))
        .arg("list")
        .output()
        .unwrap();
    assert!(String::from_utf8(list.stdout)
        .unwrap()
        .contains("https://app.example/cb"));
}

#[tokio::test]
async fn device_code_flow() {
    let s = Server::start(&[]);
    let (c, mut pk) = signup(&s, "ed@example.com").await;
    reverify(&s, &c, &mut pk).await;
    let owner = owner_address(&c).await;
    let (status, d) = public_post(
        &s,
        "/api/approve/device",
        &json!({ "message": request_message(&owner, PLACEHOLDER, 3600) }),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert!(d["verification_uri"]
        .as_str()
        .unwrap()
        .ends_with("/approve/device"));
    let interval = d["interval"].as_u64().unwrap();
    let poll = json!({ "device_code": d["device_code"] });
    let (st, v) = public_post(&s, "/api/approve/device/token", &poll).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, v) = public_post(&s, "/api/approve/device/token", &poll).await;
    assert_eq!(v["error"], "slow_down");

    assert_eq!(c.get("/approve/device").await.status(), 200);
    let r = c
        .post_form("/approve/device", &[("user_code", "BCDF-GHJK")])
        .await;
    assert_eq!(r.status(), 400, "a wrong code");
    let typed = d["user_code"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .replace('-', " ");
    let r = c
        .post_form("/approve/device", &[("user_code", &typed)])
        .await;
    assert_eq!(r.status(), 303);
    let page = r.headers()["location"].to_str().unwrap().to_string();
    let id = page.rsplit('/').next().unwrap().to_string();
    let html = c.get(&page).await.text().await.unwrap();
    assert!(html.contains("a device you entered a code for"), "{html}");
    let digest = digest_in(
        &review(&c, &id, &[("remove", "2")])
            .await
            .text()
            .await
            .unwrap(),
    );
    let r = c
        .post_form(
            &format!("/approve/{id}/approve"),
            &[("remove", "2"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status(), 200);

    tokio::time::sleep(Duration::from_secs(interval)).await;
    let (st, v) = public_post(&s, "/api/approve/device/token", &poll).await;
    assert_eq!(st, 200, "{v}");
    let msg = Message::from_str(v["message"].as_str().unwrap()).unwrap();
    msg.verify_eip191(&parse_hex_signature(v["signature"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(msg.address.to_eip55(), owner);
    assert_eq!(
        abilities(&msg),
        vec!["tinycloud.kv/del", "tinycloud.kv/get"]
    );
    tokio::time::sleep(Duration::from_secs(interval)).await;
    let (st, v) = public_post(&s, "/api/approve/device/token", &poll).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "single use"
    );
}

#[tokio::test]
async fn deny_is_audited_and_yields_nothing() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "fa@example.com").await;
    let owner = owner_address(&c).await;
    let m = request_message(&owner, &owner, 3600);
    let id = create_ok(&s, &m).await;
    let r = c.post_form(&format!("/approve/{id}/deny"), &[]).await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert_eq!(query_of(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_of(&back, "state").as_deref(), Some("st-42"));
    assert!(query_of(&back, "code").is_none());
    assert_eq!(c.get(&format!("/approve/{id}")).await.status(), 410);
    let (st, _) = public_post(
        &s,
        "/api/approve/exchange",
        &json!({ "code": "x", "request_id": id }),
    )
    .await;
    assert_eq!(st, 400);
    let audit = c.get("/account/audit").await.text().await.unwrap();
    assert!(audit.contains("approve.deny"), "{audit}");

    let (_, d) = public_post(&s, "/api/approve/device", &json!({ "message": m })).await;
    let r = c
        .post_form(
            "/approve/device",
            &[("user_code", d["user_code"].as_str().unwrap())],
        )
        .await;
    let did = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        c.post_form(&format!("/approve/{did}/deny"), &[])
            .await
            .status(),
        200
    );
    let (_, v) = public_post(
        &s,
        "/api/approve/device/token",
        &json!({ "device_code": d["device_code"] }),
    )
    .await;
    assert_eq!(v["error"], "access_denied");
}

#[tokio::test]
async fn approval_posts_need_the_csrf_token() {
    let s = Server::start(&[]);
    let (c, mut pk) = signup(&s, "gu@example.com").await;
    reverify(&s, &c, &mut pk).await;
    let owner = owner_address(&c).await;
    let id = create_ok(&s, &request_message(&owner, &owner, 3600)).await;
    let digest = digest_in(&review(&c, &id, &[]).await.text().await.unwrap());
    for path in [
        format!("/approve/{id}/approve"),
        format!("/approve/{id}/deny"),
    ] {
        let r = c
            .http
            .post(format!("{}{path}", s.base))
            .form(&[("digest", digest.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = c
        .http
        .post(format!("{}/approve/{id}/approve", s.base))
        .header("origin", "https://evil.example")
        .form(&[("csrf", c.csrf.as_str()), ("digest", digest.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site");
    // Still pending: the real form approves.
    let r = c
        .post_form(&format!("/approve/{id}/approve"), &[("digest", &digest)])
        .await;
    assert_eq!(r.status(), 303);
}

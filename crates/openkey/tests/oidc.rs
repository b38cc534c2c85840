//! The OIDC provider end to end against the real `openkey` binary: clients registered with
//! `openkey clients add`, a person signed up with a software passkey, the authorization code
//! flow with PKCE through the consent form, the ID token verified against the JWKS with
//! `jsonwebtoken`, userinfo, refresh rotation, and the refusals (PKCE mismatch, missing PKCE,
//! `plain`, wrong redirect URI without a redirect, code replay revoking its tokens, refresh
//! replay revoking the family, wrong client secret, expired code, consent without CSRF).

mod common;

use std::process::Command;

use base64::Engine;
use common::{signup, Client, Server};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

const APP: &str = "https://app.example/callback";
const APP2: &str = "https://app.example/other";

/// `openkey clients …` on the server's data dir; stdout.
fn clients(s: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_openkey"))
        .arg("clients")
        .arg("--data-dir")
        .arg(s.dir.join("data"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clients {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Registers a client; (client_id, secret).
fn register(s: &Server, public: bool) -> (String, Option<String>) {
    let mut args = vec![
        "add",
        "--name",
        "Demo App",
        "--redirect-uri",
        APP,
        "--redirect-uri",
        APP2,
    ];
    if public {
        args.push("--public");
    }
    let out = clients(s, &args);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
    };
    (field("client_id").unwrap(), field("client_secret"))
}

fn pkce() -> (String, String) {
    let verifier = format!("{}-verifier-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query(params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}

fn location(r: &reqwest::Response) -> url::Url {
    let loc = r
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect (status {})", r.status()))
        .to_str()
        .unwrap();
    url::Url::parse(loc).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn request_id(html: &str) -> String {
    let i = html.find("name=\"request\" value=\"").unwrap() + "name=\"request\" value=\"".len();
    html[i..].split('"').next().unwrap().to_string()
}

/// Authorization request params for `client_id` with PKCE `challenge` (if any).
fn auth_params<'a>(client_id: &'a str, challenge: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", APP),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
    ];
    if let Some(c) = challenge {
        p.push(("code_challenge", c));
        p.push(("code_challenge_method", "S256"));
    }
    p
}

/// Runs authorize + consent (allow); returns the code.
async fn get_code(c: &Client, params: &[(&str, &str)], remember: bool) -> String {
    let r = c.get(&format!("/oidc/authorize?{}", query(params))).await;
    let url = if r.status() == 200 {
        let html = r.text().await.unwrap();
        assert!(html.contains("Demo App"), "consent page names the client");
        let id = request_id(&html);
        let mut fields = vec![("request", id.as_str()), ("decision", "allow")];
        if remember {
            fields.push(("remember", "1"));
        }
        let r = c.post_form("/oidc/authorize", &fields).await;
        assert_eq!(r.status(), 303);
        location(&r)
    } else {
        assert_eq!(r.status(), 303, "remembered consent redirects at once");
        location(&r)
    };
    assert!(url.as_str().starts_with(APP), "back to the client: {url}");
    assert_eq!(param(&url, "state").as_deref(), Some("st-123"));
    assert!(param(&url, "iss").is_some());
    param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"))
}

/// POST /oidc/token with form fields and optional Basic credentials.
async fn token(
    s: &Server,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let http = reqwest::Client::new();
    let mut req = http.post(format!("{}/oidc/token", s.base)).form(fields);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

async fn exchange(
    s: &Server,
    client: &(String, Option<String>),
    code: &str,
    verifier: Option<&str>,
) -> (reqwest::StatusCode, Value) {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", APP),
    ];
    if let Some(v) = verifier {
        fields.push(("code_verifier", v));
    }
    let basic = client.1.as_deref().map(|sec| (client.0.as_str(), sec));
    if basic.is_none() {
        fields.push(("client_id", client.0.as_str()));
    }
    let (status, _, body) = token(s, &fields, basic).await;
    (status, body)
}

async fn refresh(
    s: &Server,
    client: &(String, Option<String>),
    rt: &str,
) -> (reqwest::StatusCode, Value) {
    let mut fields = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    let basic = client.1.as_deref().map(|sec| (client.0.as_str(), sec));
    if basic.is_none() {
        fields.push(("client_id", client.0.as_str()));
    }
    let (status, _, body) = token(s, &fields, basic).await;
    (status, body)
}

async fn userinfo(s: &Server, access: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/oidc/userinfo", s.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

/// Verifies an ID token against the JWKS; returns its claims.
async fn verify_id_token(s: &Server, id_token: &str, client_id: &str) -> Value {
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = discovery["issuer"].as_str().unwrap().to_string();
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .unwrap()
        .replace(&issuer, &s.base);
    let jwks: JwkSet = reqwest::get(jwks_uri).await.unwrap().json().await.unwrap();
    let header = decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[client_id]);
    v.set_issuer(&[issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("ID token verifies against the JWKS")
        .claims
}

#[tokio::test]
async fn code_flow_with_pkce_id_token_userinfo_and_refresh_rotation() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    assert!(client.1.is_some(), "a confidential client gets a secret");
    let (c, _pk) = signup(&s, "alice@example.com").await;
    let me = c.json("/api/session").await;

    // Discovery names the endpoints and S256 only.
    let d: Value = reqwest::get(format!("{}/.well-known/openid-configuration", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], s.origin.as_str().trim_end_matches('/'));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(d.get("registration_endpoint").is_none());

    let (verifier, challenge) = pkce();
    let code = get_code(&c, &auth_params(&client.0, Some(&challenge)), true).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/oidc/token", s.base))
        .basic_auth(&client.0, client.1.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "openid email");

    let claims = verify_id_token(&s, t["id_token"].as_str().unwrap(), &client.0).await;
    assert_eq!(claims["sub"], me["user_id"]);
    assert_eq!(claims["aud"], client.0.as_str());
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["email"], "alice@example.com");
    let did = format!("did:pkh:eip155:1:{}", me["owner_address"].as_str().unwrap());
    assert_eq!(claims["did"], did.as_str());
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // Userinfo with the bearer token; without one, 401.
    let access = t["access_token"].as_str().unwrap();
    let r = userinfo(&s, access).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["sub"], me["user_id"]);
    assert_eq!(info["did"], did.as_str());
    assert_eq!(info["email"], "alice@example.com");
    let r = userinfo(&s, "not-a-token").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    // Refresh rotates: a new refresh token, a new access token, the old access token ends.
    let rt1 = t["refresh_token"].as_str().unwrap();
    let (status, t2) = refresh(&s, &client, rt1).await;
    assert_eq!(status, 200, "{t2}");
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    assert_ne!(t2["access_token"], t["access_token"]);
    let claims2 = verify_id_token(&s, t2["id_token"].as_str().unwrap(), &client.0).await;
    assert_eq!(claims2["sub"], me["user_id"]);
    assert_eq!(
        userinfo(&s, t2["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(userinfo(&s, access).await.status(), 401);

    // Remembered consent: the next request redirects with a code at once.
    let (verifier, challenge) = pkce();
    let r = c
        .get(&format!(
            "/oidc/authorize?{}",
            query(&auth_params(&client.0, Some(&challenge)))
        ))
        .await;
    assert_eq!(r.status(), 303);
    let code = param(&location(&r), "code").unwrap();
    let (status, _) = exchange(&s, &client, &code, Some(&verifier)).await;
    assert_eq!(status, 200);

    // No secret reaches the log: codes, tokens, the client secret.
    let log = s.stderr();
    for secret in [
        code.as_str(),
        access,
        rt1,
        t2["refresh_token"].as_str().unwrap(),
        client.1.as_deref().unwrap(),
    ] {
        assert!(!log.contains(secret), "a secret is in the log");
    }

    // Listing shows the client; removing it ends its tokens.
    assert!(clients(&s, &["list"]).contains(&client.0));
    clients(&s, &["remove", &client.0]);
    assert_eq!(
        userinfo(&s, t2["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn public_client_needs_s256_pkce() {
    let s = Server::start(&[]);
    let public = register(&s, true);
    assert!(public.1.is_none(), "a public client has no secret");
    let (c, _pk) = signup(&s, "bob@example.com").await;

    // No PKCE: refused back at the client, no code.
    let r = c
        .get(&format!(
            "/oidc/authorize?{}",
            query(&auth_params(&public.0, None))
        ))
        .await;
    assert_eq!(r.status(), 303);
    let url = location(&r);
    assert!(url.as_str().starts_with(APP));
    assert_eq!(param(&url, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&url, "state").as_deref(), Some("st-123"));
    assert!(param(&url, "code").is_none());

    // `plain` is refused (with a challenge that would pass as S256).
    let (_, plain) = pkce();
    let mut p = auth_params(&public.0, None);
    p.push(("code_challenge", plain.as_str()));
    p.push(("code_challenge_method", "plain"));
    let r = c.get(&format!("/oidc/authorize?{}", query(&p))).await;
    let url = location(&r);
    assert_eq!(param(&url, "error").as_deref(), Some("invalid_request"));
    assert!(param(&url, "code").is_none());
    // So is a challenge without a method (it would default to plain).
    let mut p = auth_params(&public.0, None);
    p.push(("code_challenge", plain.as_str()));
    let r = c.get(&format!("/oidc/authorize?{}", query(&p))).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );

    // No openid scope.
    let (verifier, challenge) = pkce();
    let mut p = auth_params(&public.0, Some(&challenge));
    p[3] = ("scope", "email");
    let r = c.get(&format!("/oidc/authorize?{}", query(&p))).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_scope")
    );

    // With S256 the public client exchanges with client_id only (auth method none).
    let code = get_code(&c, &auth_params(&public.0, Some(&challenge)), false).await;
    let (status, t) = exchange(&s, &public, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{t}");
    verify_id_token(&s, t["id_token"].as_str().unwrap(), &public.0).await;
}

#[tokio::test]
async fn pkce_mismatch_and_missing_verifier_are_refused() {
    let s = Server::start(&[]);
    let public = register(&s, true);
    let (c, _pk) = signup(&s, "carol@example.com").await;
    let (verifier, challenge) = pkce();
    let (other, _) = pkce();

    let code = get_code(&c, &auth_params(&public.0, Some(&challenge)), false).await;
    let (status, e) = exchange(&s, &public, &code, Some(&other)).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
    assert!(e["error_description"].is_string());
    // The code is spent by the failed attempt: the right verifier no longer helps.
    let (status, e) = exchange(&s, &public, &code, Some(&verifier)).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");

    let code = get_code(&c, &auth_params(&public.0, Some(&challenge)), false).await;
    let (status, e) = exchange(&s, &public, &code, None).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_redirect_uri_never_redirects() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    let (c, _pk) = signup(&s, "dave@example.com").await;
    let (verifier, challenge) = pkce();

    for (client_id, redirect) in [
        (client.0.as_str(), "https://evil.example/callback"),
        (client.0.as_str(), "https://app.example/callback/"),
        ("no-such-client", APP),
    ] {
        let mut p = auth_params(client_id, Some(&challenge));
        p[2] = ("redirect_uri", redirect);
        let r = c.get(&format!("/oidc/authorize?{}", query(&p))).await;
        assert_eq!(r.status(), 400, "{client_id} {redirect}");
        assert!(
            r.headers().get("location").is_none(),
            "no redirect for {redirect}"
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("cannot be used"));
    }

    // A code issued for APP cannot be exchanged naming the other registered URI.
    let code = get_code(&c, &auth_params(&client.0, Some(&challenge)), false).await;
    let secret = client.1.as_deref().unwrap();
    let (status, _, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP2),
            ("code_verifier", verifier.as_str()),
        ],
        Some((client.0.as_str(), secret)),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn reused_code_is_refused_and_revokes_its_tokens() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    let (c, _pk) = signup(&s, "erin@example.com").await;
    let (verifier, challenge) = pkce();
    let code = get_code(&c, &auth_params(&client.0, Some(&challenge)), false).await;

    let (status, t) = exchange(&s, &client, &code, Some(&verifier)).await;
    assert_eq!(status, 200);
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, access).await.status(), 200);

    let (status, e) = exchange(&s, &client, &code, Some(&verifier)).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
    // Everything issued from the code is revoked.
    assert_eq!(userinfo(&s, access).await.status(), 401);
    let (status, e) = refresh(&s, &client, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_token_reuse_after_rotation_revokes_the_family() {
    let s = Server::start(&[]);
    let public = register(&s, true);
    let (c, _pk) = signup(&s, "frank@example.com").await;
    let (verifier, challenge) = pkce();
    let code = get_code(&c, &auth_params(&public.0, Some(&challenge)), false).await;
    let (_, t1) = exchange(&s, &public, &code, Some(&verifier)).await;
    let rt1 = t1["refresh_token"].as_str().unwrap();

    let (status, t2) = refresh(&s, &public, rt1).await;
    assert_eq!(status, 200);
    let rt2 = t2["refresh_token"].as_str().unwrap();
    let at2 = t2["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, at2).await.status(), 200);

    // Replaying the rotated token: refused, and the whole family ends.
    let (status, e) = refresh(&s, &public, rt1).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
    let (status, e) = refresh(&s, &public, rt2).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"], "invalid_grant");
    assert_eq!(userinfo(&s, at2).await.status(), 401);
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    let other = register(&s, false);
    let (c, _pk) = signup(&s, "grace@example.com").await;
    let (verifier, challenge) = pkce();
    let code = get_code(&c, &auth_params(&client.0, Some(&challenge)), false).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP),
        ("code_verifier", verifier.as_str()),
    ];

    // client_secret_basic with a wrong secret.
    let (status, headers, e) = token(&s, &fields, Some((client.0.as_str(), "wrong"))).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    assert!(headers.get("www-authenticate").is_some());
    assert_eq!(headers["cache-control"], "no-store");
    // client_secret_post with another client's secret.
    let mut post = fields.to_vec();
    post.push(("client_id", client.0.as_str()));
    post.push(("client_secret", other.1.as_deref().unwrap()));
    let (status, _, e) = token(&s, &post, None).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    // No secret at all for a confidential client.
    let mut none = fields.to_vec();
    none.push(("client_id", client.0.as_str()));
    let (status, _, e) = token(&s, &none, None).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    // Another (authenticated) client cannot redeem it.
    let (status, _, e) = token(
        &s,
        &fields,
        Some((other.0.as_str(), other.1.as_deref().unwrap())),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn client_secret_post_works_and_expired_code_is_refused() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    let (c, _pk) = signup(&s, "heidi@example.com").await;
    let secret = client.1.clone().unwrap();

    // A confidential client without PKCE, authenticating in the body.
    let code = get_code(&c, &auth_params(&client.0, None), false).await;
    let (status, _, t) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP),
            ("client_id", client.0.as_str()),
            ("client_secret", secret.as_str()),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{t}");

    // A code past its 60 s: refused.
    let code = get_code(&c, &auth_params(&client.0, None), false).await;
    let db = rusqlite::Connection::open(s.dir.join("data").join("openkey.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE oidc_codes SET expires_at = 0 WHERE used_at IS NULL",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    let (status, e) = exchange(&s, &client, &code, None).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_grant");
    assert_eq!(e["error_description"], "the code expired");
}

#[tokio::test]
async fn consent_without_csrf_is_forbidden_and_bound_to_the_user() {
    let s = Server::start(&[]);
    let client = register(&s, false);
    let (c, _pk) = signup(&s, "ivan@example.com").await;
    let r = c
        .get(&format!(
            "/oidc/authorize?{}",
            query(&auth_params(&client.0, None))
        ))
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "{csp}"
    );
    let id = request_id(&r.text().await.unwrap());

    // The same POST without the token (the session cookie alone) is refused.
    let r = c
        .http
        .post(format!("{}/oidc/authorize", s.base))
        .form(&[("request", id.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());

    // Another signed-in person cannot answer it.
    let (mallory, _) = signup(&s, "mallory@example.com").await;
    let r = mallory
        .post_form(
            "/oidc/authorize",
            &[("request", id.as_str()), ("decision", "allow")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());

    // Deny goes back with access_denied.
    let r = c
        .get(&format!(
            "/oidc/authorize?{}",
            query(&auth_params(&client.0, None))
        ))
        .await;
    let id = request_id(&r.text().await.unwrap());
    let r = c
        .post_form(
            "/oidc/authorize",
            &[("request", id.as_str()), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let url = location(&r);
    assert_eq!(param(&url, "error").as_deref(), Some("access_denied"));
    assert!(param(&url, "code").is_none());

    // Signed out: no code, a sign-in page.
    let anon = s.client();
    let r = anon
        .get(&format!(
            "/oidc/authorize?{}",
            query(&auth_params(&client.0, None))
        ))
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("location").is_none());
}

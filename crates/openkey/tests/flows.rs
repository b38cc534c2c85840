//! End-to-end flows against the real `openkey` binary: passkey sign-up / sign-in, adding and
//! removing passkeys, email codes (and their lockout), recovery codes, CSRF, signing gated by a
//! fresh passkey check, export, attestation, wallet linking, deletion, and no key material in logs.

mod common;

use common::{codes_in, reverify, signup, Passkey, Server};
use openkey::keys::attest::{verify_software, Attestation};
use serde_json::{json, Value};
use tinycloud_auth::eth::{parse_hex_signature, recover_eip191, sign_eip191, EthAddress};

#[tokio::test]
async fn passkey_signup_signin_add_and_remove() {
    let s = Server::start(&[]);
    let (c, mut pk) = signup(&s, "alice@example.com").await;
    let me = c.json("/api/session").await;
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["uv_fresh"], true);
    let keys = c.json("/api/keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["owner"], true);
    assert_eq!(keys[0]["address"], me["owner_address"]);

    // Same email again is refused.
    let mut other = s.client();
    other.csrf().await;
    let r = other
        .post_json(
            "/api/signup/start",
            &json!({ "email": "ALICE@example.com" }),
        )
        .await;
    assert_eq!(r.status(), 409);

    // Sign out, then in again with the passkey.
    let r = c.post_form("/signout", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(c.get("/api/session").await.status(), 401);
    let mut c2 = s.client();
    c2.csrf().await;
    let r = pk
        .authenticate(
            &c2,
            &s.origin,
            "/api/signin/passkey/start",
            "/api/signin/passkey/finish",
            json!({ "email": "alice@example.com" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let me2 = c2.json("/api/session").await;
    assert_eq!(me2["user_id"], me["user_id"]);
    assert_eq!(me2["method"], "passkey");

    // Add a second passkey, then remove the first; the last one cannot be removed.
    let mut pk2 = Passkey::new();
    let r = pk2
        .register(
            &c2,
            &s.origin,
            "/api/passkeys/add/start",
            "/api/passkeys/add/finish",
            json!({ "passkey_name": "second" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = c2.get("/account").await.text().await.unwrap();
    let ids: Vec<String> = page
        .split("/account/passkeys/")
        .skip(1)
        .map(|p| p.split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "both passkeys have a remove form");
    let r = c2
        .post_form(&format!("/account/passkeys/{}/remove", ids[0]), &[])
        .await;
    assert_eq!(r.status(), 303);
    let r = c2
        .post_form(&format!("/account/passkeys/{}/remove", ids[1]), &[])
        .await;
    assert_eq!(r.status(), 409, "the last passkey stays");
    // The removed passkey no longer signs in; the remaining one does.
    let mut c4 = s.client();
    c4.csrf().await;
    let r = pk2
        .authenticate(
            &c4,
            &s.origin,
            "/api/signin/passkey/start",
            "/api/signin/passkey/finish",
            json!({ "email": "alice@example.com" }),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn email_code_signin_cannot_sign_and_brute_force_locks() {
    let s = Server::start(&[]);
    let (_c, _pk) = signup(&s, "bob@example.com").await;
    let _ = signup(&s, "carol@example.com").await;

    // Bob signs in with a code from the outbox.
    let mut c = s.client();
    c.csrf().await;
    let r = c
        .post_form("/signin/email", &[("email", "bob@example.com")])
        .await;
    assert_eq!(r.status(), 200);
    let code = s.last_code("bob@example.com");
    let r = c
        .post_form(
            "/signin/email/verify",
            &[("email", "bob@example.com"), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let me = c.json("/api/session").await;
    assert_eq!(me["method"], "email-code");
    assert_eq!(me["uv_fresh"], false);
    // The code was single use.
    let mut again = s.client();
    again.csrf().await;
    let r = again
        .post_form(
            "/signin/email/verify",
            &[("email", "bob@example.com"), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 401);
    // A code session cannot sign.
    let key_id = me["owner_key_id"].as_str().unwrap();
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/personal"),
            &json!({ "message": "hi" }),
        )
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "fresh_passkey_required");
    // Nor make itself fresh by adding a passkey of its own: the account has one, so adding
    // needs a fresh check with it first.
    let r = c
        .post_json(
            "/api/passkeys/add/start",
            &json!({ "passkey_name": "intruder" }),
        )
        .await;
    assert_eq!(r.status(), 401, "an email-code session adds no passkey");
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/personal"),
            &json!({ "message": "hi" }),
        )
        .await;
    assert_eq!(r.status(), 401, "and still cannot sign");

    // Carol: five wrong codes lock the address, even for the right code afterwards.
    let mut m = s.client();
    m.csrf().await;
    m.post_form("/signin/email", &[("email", "carol@example.com")])
        .await;
    let right = s.last_code("carol@example.com");
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let r = m
            .post_form(
                "/signin/email/verify",
                &[("email", "carol@example.com"), ("code", wrong)],
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = m
        .post_form(
            "/signin/email/verify",
            &[("email", "carol@example.com"), ("code", &right)],
        )
        .await;
    assert_eq!(r.status(), 429, "locked after 5 failures");
    // A new code is not issued while locked.
    m.post_form("/signin/email", &[("email", "carol@example.com")])
        .await;
    assert_eq!(s.last_code("carol@example.com"), right);
    assert_eq!(m.get("/api/session").await.status(), 401);
    // No code appears in the log.
    assert!(!s.stderr().contains(&code));
    assert!(!s.stderr().contains(&right));
}

#[tokio::test]
async fn recovery_codes_sign_in_once() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "dora@example.com").await;
    let r = c.post_form("/account/recovery-codes", &[]).await;
    assert_eq!(r.status(), 200);
    let codes = codes_in(&r.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    let mut r1 = s.client();
    r1.csrf().await;
    let r = r1
        .post_form(
            "/signin/recovery",
            &[("email", "dora@example.com"), ("code", &codes[3])],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r1.json("/api/session").await["method"], "recovery-code");
    let mut r2 = s.client();
    r2.csrf().await;
    let r = r2
        .post_form(
            "/signin/recovery",
            &[("email", "dora@example.com"), ("code", &codes[3])],
        )
        .await;
    assert_eq!(r.status(), 401, "a recovery code works once");
    let r = r2
        .post_form(
            "/signin/recovery",
            &[
                ("email", "dora@example.com"),
                ("code", "AAAA-BBBB-CCCC-DDDD"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    let page = c.get("/account").await.text().await.unwrap();
    assert!(page.contains("9 unused."));
}

#[tokio::test]
async fn csrf_is_required_on_every_post() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "eve@example.com").await;
    let r = c
        .http
        .post(format!("{}/api/keys", s.base))
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "JSON without the header");
    let r = c
        .http
        .post(format!("{}/keys", s.base))
        .form(&[("label", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "form without the field");
    let r = c
        .http
        .post(format!("{}/keys", s.base))
        .form(&[("label", "x"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "wrong token");
    let r = c
        .http
        .post(format!("{}/api/keys", s.base))
        .header("x-csrf-token", &c.csrf)
        .header("origin", "https://evil.example")
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site origin");
    // A different browser's token does not work with this cookie.
    let mut other = s.client();
    other.csrf().await;
    let r = c
        .http
        .post(format!("{}/api/keys", s.base))
        .header("x-csrf-token", &other.csrf)
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(c.json("/api/keys").await.as_array().unwrap().len(), 1);
    let r = c
        .post_json("/api/keys", &json!({ "label": "second" }))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn signing_needs_a_fresh_passkey_check() {
    let s = Server::start(&["--uv-window-secs", "1"]);
    let (c, mut pk) = signup(&s, "fay@example.com").await;
    let me = c.json("/api/session").await;
    let key_id = me["owner_key_id"].as_str().unwrap().to_string();
    let addr: EthAddress = me["owner_address"].as_str().unwrap().parse().unwrap();

    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/personal"),
            &json!({ "message": "hello" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sig = parse_hex_signature(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(recover_eip191(b"hello", &sig).unwrap(), addr);

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/personal"),
            &json!({ "message": "hello" }),
        )
        .await;
    assert_eq!(r.status(), 401, "stale user verification");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "fresh_passkey_required");
    assert!(body["message"].as_str().unwrap().contains("passkey"));

    reverify(&s, &c, &mut pk).await;
    let typed = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Mail": [{"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Test", "chainId": 1},
        "message": {"contents": "Hello, Bob!"}
    });
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/typed-data"),
            &json!({ "typed_data": typed }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let digest = hex::decode(v["digest"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let sig = parse_hex_signature(v["signature"].as_str().unwrap()).unwrap();
    let rsig = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap();
    let recid = k256::ecdsa::RecoveryId::from_byte(sig[64] - 27).unwrap();
    let vk = k256::ecdsa::VerifyingKey::recover_from_prehash(&digest, &rsig, recid).unwrap();
    assert_eq!(EthAddress::from_verifying_key(&vk), addr);

    let siwe = format!(
        "app.example wants you to sign in with your Ethereum account:\n{}\n\nSign in to the app.\n\nURI: https://app.example\nVersion: 1\nChain ID: 1\nNonce: abcdefgh12\nIssued At: 2026-01-01T00:00:00Z",
        addr.to_eip55()
    );
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/siwe"),
            &json!({ "message": siwe }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sig = parse_hex_signature(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(recover_eip191(siwe.as_bytes(), &sig).unwrap(), addr);
    let wrong = siwe.replace(
        &addr.to_eip55(),
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
    );
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/sign/siwe"),
            &json!({ "message": wrong }),
        )
        .await;
    assert_eq!(r.status(), 400, "SIWE for another address");

    let audit = c.get("/account/audit").await.text().await.unwrap();
    assert!(audit.contains("sign.personal"));
    assert!(audit.contains("refused"));
    assert!(audit.contains("sign.typed-data"));
    assert!(audit.contains("sign.siwe"));
}

#[tokio::test]
async fn export_needs_fresh_passkey_and_confirmation_and_is_audited() {
    let s = Server::start(&["--uv-window-secs", "1"]);
    let (c, mut pk) = signup(&s, "gus@example.com").await;
    let me = c.json("/api/session").await;
    let key_id = me["owner_key_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let r = c
        .post_form(
            &format!("/keys/{key_id}/export"),
            &[("confirm", "EXPORT MY KEY")],
        )
        .await;
    assert_eq!(r.status(), 401, "stale passkey check");
    assert!(!r.text().await.unwrap().contains("secret-key"));

    reverify(&s, &c, &mut pk).await;
    let r = c
        .post_form(&format!("/keys/{key_id}/export"), &[("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 400, "wrong confirmation");
    let r = c
        .post_form(
            &format!("/keys/{key_id}/export"),
            &[("confirm", "EXPORT MY KEY")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let start = page.find("id=\"secret-key\">").unwrap() + "id=\"secret-key\">".len();
    let secret = &page[start..start + 66];
    let bytes = hex::decode(&secret[2..]).unwrap();
    let key = k256::ecdsa::SigningKey::from_slice(&bytes).unwrap();
    assert_eq!(
        EthAddress::from_verifying_key(key.verifying_key()).to_eip55(),
        me["owner_address"].as_str().unwrap()
    );
    let keys = c.json("/api/keys").await;
    assert!(keys[0]["exported_at"].is_string());
    let audit = c.get("/account/audit").await.text().await.unwrap();
    assert!(audit.contains("key.export"));
    assert!(audit.contains("refused"));
    assert!(audit.contains("done"));

    // No key material in any log line.
    let log = s.stderr();
    assert!(log.contains("request"), "debug log was captured");
    assert!(!log.to_lowercase().contains(&secret[2..].to_lowercase()));
}

#[tokio::test]
async fn attestation_binds_address_user_and_nonce() {
    let s = Server::start(&[]);
    let (c, _pk) = signup(&s, "hal@example.com").await;
    let me = c.json("/api/session").await;
    let key_id = me["owner_key_id"].as_str().unwrap();
    let ident = s.client().json("/api/attestation/identity").await;
    assert_eq!(ident["type"], "software");
    assert_eq!(ident["hardware_backed"], false);
    let r = c
        .post_json(
            &format!("/api/keys/{key_id}/attestation"),
            &json!({ "nonce": "caller-nonce-42" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let att: Attestation = r.json().await.unwrap();
    assert_eq!(att.report.kind, "software");
    assert!(!att.report.hardware_backed);
    assert_eq!(att.report.address, me["owner_address"].as_str().unwrap());
    assert_eq!(att.report.user_id, me["user_id"].as_str().unwrap());
    assert_eq!(att.report.nonce, "caller-nonce-42");
    let pk = ident["public_key"].as_str().unwrap();
    verify_software(&att, pk).unwrap();
    let mut forged = att.clone();
    forged.report.nonce = "another-nonce".into();
    assert!(verify_software(&forged, pk).is_err());
}

#[tokio::test]
async fn wallet_linking_archive_and_account_deletion() {
    let s = Server::start(&[]);
    let (c, mut pk) = signup(&s, "ida@example.com").await;
    let ch: Value = c
        .post_json("/api/keys/link/challenge", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let wallet = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let waddr = EthAddress::from_verifying_key(wallet.verifying_key());
    let msg = ch["message"].as_str().unwrap();
    // A signature over another message is refused.
    let bad = sign_eip191(&wallet, b"something else").unwrap();
    let r = c
        .post_json("/api/keys/link", &json!({ "challenge_id": ch["challenge_id"], "address": waddr.to_eip55(), "signature": format!("0x{}", hex::encode(bad)) }))
        .await;
    assert_eq!(r.status(), 400);
    // The challenge was used up; a new one with the right signature links the wallet.
    let ch: Value = c
        .post_json("/api/keys/link/challenge", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let sig = sign_eip191(&wallet, ch["message"].as_str().unwrap().as_bytes()).unwrap();
    assert_ne!(ch["message"].as_str().unwrap(), msg);
    let r = c
        .post_json("/api/keys/link", &json!({ "challenge_id": ch["challenge_id"], "address": waddr.to_eip55(), "signature": format!("0x{}", hex::encode(sig)), "label": "My wallet" }))
        .await;
    assert_eq!(r.status(), 200);
    let linked: Value = r.json().await.unwrap();
    assert_eq!(linked["kind"], "external");
    let r = c
        .post_json(
            &format!("/api/keys/{}/sign/personal", linked["id"].as_str().unwrap()),
            &json!({ "message": "x" }),
        )
        .await;
    assert_eq!(r.status(), 409, "OpenKey holds no key for a linked wallet");

    // A second managed key, archived and restored; the owner key cannot be archived.
    let k2: Value = c
        .post_json("/api/keys", &json!({ "label": "Spare" }))
        .await
        .json()
        .await
        .unwrap();
    let id2 = k2["id"].as_str().unwrap();
    assert_eq!(
        c.post_form(&format!("/keys/{id2}/archive"), &[])
            .await
            .status(),
        303
    );
    let r = c
        .post_json(
            &format!("/api/keys/{id2}/sign/personal"),
            &json!({ "message": "x" }),
        )
        .await;
    assert_eq!(r.status(), 409, "archived keys do not sign");
    assert_eq!(
        c.post_form(&format!("/keys/{id2}/unarchive"), &[])
            .await
            .status(),
        303
    );
    let owner = c.json("/api/session").await["owner_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.post_form(&format!("/keys/{owner}/archive"), &[])
            .await
            .status(),
        409
    );

    // Deletion needs the typed confirmation.
    let r = c
        .post_form("/account/delete", &[("confirm", "delete")])
        .await;
    assert_eq!(r.status(), 400);
    let r = c
        .post_form("/account/delete", &[("confirm", "DELETE MY ACCOUNT")])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.get("/api/session").await.status(), 401);
    let mut c2 = s.client();
    c2.csrf().await;
    let r = c2
        .post_json(
            "/api/signin/passkey/start",
            &json!({ "email": "ida@example.com" }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let _ = &mut pk;
}

//! Secrets end to end: encrypted to the owner's network before leaving the client; shared as
//! read + decrypt in one delegation; a backend with only one of the grants learns nothing;
//! revocation ends access; an envelope moved to another path does not decrypt; audited.

use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_auth::session::capability;
use tinycloud_sdk::kv::PutOptions;
use tinycloud_sdk::session::Jwk;
use tinycloud_sdk::{Config, Error, LocalSigner, TinyCloud};

mod common;
use common::{node_with, signed_in};

#[tokio::test]
async fn secrets_share_revoke_and_audit() {
    let n = node_with(|_| {}).await;
    let url = n.node.url();
    let signer = LocalSigner::generate(1);
    let owner = signed_in(&url, &signer).await;
    let owner_did = Did::pkh(1, signer.eth_address()).unwrap();
    owner
        .host_space(
            &signer,
            &SpaceId::new(owner_did.clone(), "secrets").unwrap(),
        )
        .await
        .unwrap();

    let secrets = owner.secrets().unwrap();
    let v1 = secrets.put("API_KEY", "sk-live-1", None).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(secrets.get("API_KEY", None).await.unwrap(), "sk-live-1");
    // stored encrypted: the raw KV value never contains the secret
    let raw = owner
        .kv_in(SpaceId::new(owner_did.clone(), "secrets").unwrap())
        .get("vault/secrets/API_KEY")
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw.data).contains("sk-live-1"));
    let v2 = secrets.rotate("API_KEY", "sk-live-2", None).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.created_at, v1.created_at);
    assert_eq!(secrets.get("API_KEY", None).await.unwrap(), "sk-live-2");
    assert_eq!(
        secrets.get_version("API_KEY", 1, None).await.unwrap(),
        "sk-live-1"
    );
    secrets
        .put("DB_URL", "postgres://x", Some("Prod App"))
        .await
        .unwrap();
    assert_eq!(secrets.list(None).await.unwrap(), ["API_KEY"]);
    assert_eq!(secrets.list(Some("prod-app")).await.unwrap(), ["DB_URL"]);
    assert!(matches!(
        secrets.get("MISSING", None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        secrets.put("bad-name", "x", None).await,
        Err(Error::InvalidInput(_))
    ));

    // an envelope moved to another path does not decrypt (its aad names its location)
    let secrets_kv = owner.kv_in(SpaceId::new(owner_did.clone(), "secrets").unwrap());
    let env = secrets_kv.get("vault/secrets/API_KEY").await.unwrap();
    secrets_kv
        .put(
            "vault/secrets/MOVED",
            env.data.clone(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        secrets.get("MOVED", None).await,
        Err(Error::Token(_))
    ));

    // share API_KEY with a backend: read + decrypt in one delegation
    let backend_key = Jwk::generate();
    let backend_did = backend_key.secret_key().unwrap().did();
    let grant = secrets
        .grant(&["API_KEY"], None, &backend_did, 600)
        .await
        .unwrap();
    assert_eq!(
        grant.resources.len(),
        2,
        "kv read and decrypt in one delegation: {:?}",
        grant.resources
    );
    let backend = TinyCloud::new(Config::new(&url)).unwrap();
    backend.use_delegation(backend_key.clone(), &grant).unwrap();
    assert_eq!(
        backend
            .secrets_of(&owner_did)
            .unwrap()
            .get("API_KEY", None)
            .await
            .unwrap(),
        "sk-live-2"
    );
    // ...but not other secrets
    assert!(matches!(
        backend
            .secrets_of(&owner_did)
            .unwrap()
            .get("DB_URL", Some("prod-app"))
            .await,
        Err(Error::PermissionDenied { .. })
    ));

    // a backend with only the read grant gets the ciphertext but the node refuses to decrypt
    let reader_key = Jwk::generate();
    let reader_did = reader_key.secret_key().unwrap().did();
    let space = SpaceId::new(owner_did.clone(), "secrets").unwrap();
    let only_read = owner
        .delegate_to(
            &reader_did,
            vec![capability(
                &format!("{space}/kv/vault/secrets/API_KEY"),
                "tinycloud.kv/get",
            )
            .unwrap()],
            600,
        )
        .await
        .unwrap();
    let reader = TinyCloud::new(Config::new(&url)).unwrap();
    reader.use_delegation(reader_key, &only_read).unwrap();
    match reader
        .secrets_of(&owner_did)
        .unwrap()
        .get("API_KEY", None)
        .await
    {
        Err(Error::PermissionDenied { message, .. }) => assert!(
            message.contains("tinycloud.encryption/decrypt"),
            "{message}"
        ),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    // and one with only decrypt cannot read the ciphertext
    let decrypt_key = Jwk::generate();
    let network = NetworkId::new(owner_did.clone(), "default").unwrap();
    let only_decrypt = owner
        .delegate_to(
            &decrypt_key.secret_key().unwrap().did(),
            vec![capability(&network.to_string(), "tinycloud.encryption/decrypt").unwrap()],
            600,
        )
        .await
        .unwrap();
    let dec = TinyCloud::new(Config::new(&url)).unwrap();
    dec.use_delegation(decrypt_key, &only_decrypt).unwrap();
    assert!(matches!(
        dec.secrets_of(&owner_did)
            .unwrap()
            .get("API_KEY", None)
            .await,
        Err(Error::PermissionDenied { .. })
    ));

    // revocation ends the backend's access
    owner
        .revoke(&tinycloud_auth::cid::parse_cid(&grant.cid).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        backend
            .secrets_of(&owner_did)
            .unwrap()
            .get("API_KEY", None)
            .await,
        Err(Error::PermissionDenied { .. })
    ));

    // the owner sees every decrypt in the audit trail
    let audit = owner.network_audit(&network).await.unwrap();
    let records = audit["records"].as_array().unwrap();
    assert!(records
        .iter()
        .any(|r| r["actor"] == backend_did.to_string() && r["outcome"] == "allowed"));
    assert!(records
        .iter()
        .any(|r| r["outcome"].as_str().unwrap().starts_with("denied")));
    n.node.stop().await.unwrap();
}

#[tokio::test]
async fn manifest_sign_in_grants_exactly_the_request_and_creates_the_network() {
    let n = node_with(|_| {}).await;
    let signer = LocalSigner::generate(1);
    let owner_did = Did::pkh(1, signer.eth_address()).unwrap();
    let manifest = tinycloud_sdk::manifest::Manifest::from_json(&format!(
        r#"{{"app_id":"com.example.notes","name":"Notes","expiry":"1d",
            "permissions":[{{"service":"tinycloud.encryption","path":"urn:tinycloud:encryption:{owner_did}:default","actions":["decrypt"]}}],
            "secrets":{{"OPENAI_API_KEY":true}}}}"#
    ))
    .unwrap();
    let text = tinycloud_sdk::manifest::consent(
        &manifest,
        &owner_did,
        tinycloud_sdk::session::now().plus_secs(86_400),
    )
    .unwrap();
    assert!(text.contains("Notes (com.example.notes)"), "{text}");
    let app = TinyCloud::new(Config::new(n.node.url())).unwrap();
    app.sign_in_with_manifest(&signer, &manifest).await.unwrap();
    // the network exists after sign-in
    let network = NetworkId::new(owner_did.clone(), "default").unwrap();
    assert!(app.network(&network).await.unwrap().is_some());
    // inside the app's prefix: allowed; outside: refused
    app.kv()
        .put("com.example.notes/a", "x", &PutOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        app.kv().put("elsewhere", "x", &PutOptions::default()).await,
        Err(Error::PermissionDenied { .. })
    ));
    n.node.stop().await.unwrap();
}

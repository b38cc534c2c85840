//! The foreign client's HTTP side: requests and answers, the SDK's sign-in, and the
//! harness's self-checks against published vectors.

use super::*;

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A response as a raw client sees it.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub async fn from(r: reqwest::Response) -> Answer {
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.expect("body").to_vec(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }
}

pub async fn post_auth(
    url: &str,
    path: &str,
    auth: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut req = http()
        .post(format!("{url}{path}"))
        .header("Authorization", auth);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Answer::from(req.body(body).send().await.expect("send")).await
}

pub async fn post_json(url: &str, path: &str, auth: &str, body: &Value) -> Answer {
    post_auth(
        url,
        path,
        auth,
        &[("Content-Type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await
}

pub async fn get(url: &str, path: &str) -> Answer {
    Answer::from(
        http()
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("send"),
    )
    .await
}

pub async fn delegate(url: &str, header: &str) -> Answer {
    post_auth(url, "/delegate", header, &[], vec![]).await
}

pub async fn invoke(url: &str, token: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    post_auth(url, "/invoke", token, headers, body).await
}

// ---------------------------------------------------------------------------------------------
// The SDK's sign-in
// ---------------------------------------------------------------------------------------------

/// The abilities the SDK's default manifest asks for on the primary space.
pub fn default_session_caps(space: &str, owner_did: &str) -> Vec<(String, String)> {
    let mut caps = vec![];
    for a in ["get", "put", "del", "list", "metadata"] {
        caps.push(cap(format!("{space}/kv"), &format!("tinycloud.kv/{a}")));
    }
    for a in ["read", "write", "schema", "admin"] {
        caps.push(cap(format!("{space}/sql"), &format!("tinycloud.sql/{a}")));
    }
    caps.push(cap(
        format!("{space}/capabilities/all"),
        "tinycloud.capabilities/read",
    ));
    for a in ["subscribe", "register", "list", "unregister"] {
        caps.push(cap(
            format!("{space}/hooks"),
            &format!("tinycloud.hooks/{a}"),
        ));
    }
    for a in ["revoke", "list"] {
        caps.push(cap(
            format!("{space}/delegation"),
            &format!("tinycloud.delegation/{a}"),
        ));
    }
    let network = format!("urn:tinycloud:encryption:{owner_did}:default");
    for a in ["decrypt", "network.create", "network.revoke", "audit"] {
        caps.push(cap(network.clone(), &format!("tinycloud.encryption/{a}")));
    }
    caps
}

/// A signed-in foreign client: the wallet, its session key and the session delegation.
pub struct Session {
    pub wallet: Wallet,
    pub key: EdKey,
    pub space: String,
    pub cacao: Cacao,
    /// The session delegation CID as the client computed it (base32).
    pub cid: String,
    /// The first `/delegate` answer (before the space existed).
    pub first: Value,
    /// The host delegation's answer.
    pub host: Option<Value>,
    /// The node's `nodeId` from `/info`.
    pub node_id: String,
}

impl Session {
    /// The SDK's sign-in (§2.6): `/info`, session SIWE → `/delegate`; the space `skipped` →
    /// `/peer/generate/<space>`, host SIWE → `/delegate`, then the session again.
    pub async fn sign_in(url: &str, space_name: &str) -> Session {
        let info = get(url, "/info").await.expect(200).json();
        assert_eq!(info["protocol"], 1, "protocol check as the SDK does");
        let wallet = Wallet::random();
        let key = EdKey::random();
        let space = wallet.space(space_name);
        let caps = default_session_caps(&space, &wallet.did());
        let siwe = Siwe::recap(&wallet, &key.vm(), &caps, &[], Some(now_secs() + 3600));
        let cacao = siwe.cacao(&wallet);
        let first = delegate(url, &cacao.header()).await.expect(200).json();
        let mut host = None;
        let skipped = first["skipped"].as_array().expect("skipped array");
        if skipped.iter().any(|s| s == &json!(space)) {
            let host_did = get(url, &format!("/peer/generate/{}", encode_component(&space)))
                .await
                .expect(200)
                .text();
            let h = Siwe::recap(
                &wallet,
                &host_did,
                &[cap(format!("{space}/space"), "tinycloud.space/host")],
                &[],
                None,
            )
            .cacao(&wallet);
            host = Some(delegate(url, &h.header()).await.expect(200).json());
            let again = delegate(url, &cacao.header()).await.expect(200).json();
            assert_eq!(again["cid"], json!(cacao.cid()));
        }
        Session {
            cid: cacao.cid(),
            wallet,
            key,
            space,
            cacao,
            first,
            host,
            node_id: info["nodeId"].as_str().expect("nodeId").to_owned(),
        }
    }

    pub fn res(&self, service_path: &str) -> String {
        format!("{}/{service_path}", self.space)
    }

    /// A fresh invocation token of `ability` on `resource` citing the session.
    pub fn token(&self, resource: &str, ability: &str) -> String {
        Ucan::invocation(
            &self.key,
            std::slice::from_ref(&self.cid),
            &[cap(resource, ability)],
        )
        .sign(&self.key)
    }

    /// One KV call as the JS SDK makes it.
    pub async fn kv(
        &self,
        url: &str,
        action: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let t = self.token(
            &self.res(&format!("kv/{key}")),
            &format!("tinycloud.kv/{action}"),
        );
        invoke(url, &t, headers, body).await
    }

    /// One SQL call as the JS SDK makes it.
    pub async fn sql(&self, url: &str, db: &str, ability: &str, body: &Value) -> Answer {
        self.sql_any(url, db, &[ability], body).await
    }

    /// One SQL call carrying several abilities on the database, as the JS SDK's `invokeAny`
    /// mints them: `execute` with `schema` statements asks for `write` + `schema`, a batch for
    /// the deduplicated ability of each statement (DDL → `schema`, `PRAGMA` → `admin`, else
    /// `write`).
    pub async fn sql_any(&self, url: &str, db: &str, abilities: &[&str], body: &Value) -> Answer {
        let res = self.res(&format!("sql/{db}"));
        let caps: Vec<(String, String)> = abilities
            .iter()
            .map(|a| cap(res.clone(), &format!("tinycloud.sql/{a}")))
            .collect();
        let t = Ucan::invocation(&self.key, std::slice::from_ref(&self.cid), &caps).sign(&self.key);
        invoke(
            url,
            &t,
            &[("Content-Type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Self-checks of the harness against published vectors
// ---------------------------------------------------------------------------------------------

/// Runs the harness's own encoders against fixed published values, so a bug in the harness
/// shows here and not as a confusing node failure.
pub fn self_check() {
    // The siwe-recap vector's capability object and statement (tests/vectors/siwe-recap).
    let caps = vec![
        cap("kepler:ens:example.eth://default/kv", "kv/get"),
        cap("kepler:ens:example.eth://default/kv", "kv/list"),
        cap("kepler:ens:example.eth://default/kv", "kv/metadata"),
        cap(
            "kepler:ens:example.eth://default/kv/dapp-space",
            "kv/delete",
        ),
        cap("kepler:ens:example.eth://default/kv/dapp-space", "kv/get"),
        cap("kepler:ens:example.eth://default/kv/dapp-space", "kv/list"),
        cap(
            "kepler:ens:example.eth://default/kv/dapp-space",
            "kv/metadata",
        ),
        cap("kepler:ens:example.eth://default/kv/dapp-space", "kv/put"),
        cap("kepler:ens:example.eth://default/kv/public", "kv/delete"),
        cap("kepler:ens:example.eth://default/kv/public", "kv/get"),
        cap("kepler:ens:example.eth://default/kv/public", "kv/list"),
        cap("kepler:ens:example.eth://default/kv/public", "kv/metadata"),
        cap("kepler:ens:example.eth://default/kv/public", "kv/put"),
        cap("urn:credential:type:type1", "credential/present"),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let text = std::fs::read_to_string(root.join("siwe-recap/tests/siwe_with_caps.txt"))
        .expect("siwe_with_caps.txt");
    let expected = Siwe {
        domain: "example.com".into(),
        address: "0x0000000000000000000000000000000000000000".into(),
        statement: Some(recap_statement(&caps)),
        uri: "did:key:example".into(),
        chain_id: 1,
        nonce: "mynonce1".into(),
        issued_at: "2022-06-21T12:00:00.000Z".into(),
        expiration_time: None,
        not_before: None,
        resources: vec![format!(
            "urn:recap:{}",
            b64url(&jcs(&recap_object(&caps, &[])))
        )],
    };
    assert_eq!(expected.text(), text.trim_end(), "SIWE + ReCap rendering");
    // base32 / base58 of a known CID (the reference fixture's policy root, TC-405).
    let jwt_cid = cid(b"");
    assert!(jwt_cid.starts_with("bafkr4i"), "{jwt_cid}");
    assert_eq!(base58btc(&[0, 0, 1]), "112");

    // EIP-4361 text, EIP-191 hashing, public-key recovery and EIP-55: the spruceid
    // verification vectors (message fields + a wallet signature) recover their address.
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("siwe/test/verification_positive.json"))
            .expect("verification_positive.json"),
    )
    .expect("JSON");
    let mut n = 0;
    for (name, v) in vectors.as_object().expect("cases") {
        let f = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let m = Siwe {
            domain: f("domain").expect("domain"),
            address: f("address").expect("address"),
            statement: f("statement"),
            uri: f("uri").expect("uri"),
            chain_id: v["chainId"].as_u64().expect("chainId"),
            nonce: f("nonce").expect("nonce"),
            issued_at: f("issuedAt").expect("issuedAt"),
            expiration_time: f("expirationTime"),
            not_before: f("notBefore"),
            resources: vec![],
        };
        let sig = hex::decode(f("signature").expect("sig").trim_start_matches("0x")).expect("hex");
        assert_eq!(recover_address(&m.text(), &sig), m.address, "{name}");
        n += 1;
    }
    assert!(n >= 3, "vectors loaded");
    // And our own signatures recover to our own address.
    let w = Wallet::random();
    assert_eq!(
        recover_address("hello", &w.personal_sign("hello")),
        w.address()
    );
    assert_eq!(base58_decode("112"), vec![0, 0, 1]);
}

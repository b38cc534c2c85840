//! HTTP helpers of the node's end-to-end tests: an owner's sign-in (session delegation, space
//! hosting), a party's KV / SQL / hooks calls, delegation and revocation, plain requests.

use std::time::Duration;

use reqwest::header::HeaderMap;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::Did;
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, host_capability};

use crate::process::Node;
use crate::tokens::{
    ed25519, invoke_caps_header, invoke_header, now, siwe_header, ucan_delegation, wallet,
};

/// A client with a 30 s timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An owner (wallet) with a signed-in session key.
pub struct Owner {
    pub wallet: k256::ecdsa::SigningKey,
    pub address: EthAddress,
    pub did: Did,
    pub space: SpaceId,
    pub session: SecretKey,
    pub session_cid: Cid,
}

pub async fn post_delegate(node: &Node, header: &str) -> (u16, serde_json::Value, String) {
    let r = http()
        .post(format!("{}/delegate", node.url))
        .header("authorization", header)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json, text)
}

impl Owner {
    /// Signs in: session delegation (kv + capabilities/read on the space), then hosts the space
    /// through `/peer/generate` + `tinycloud.space/host`, then re-activates the session.
    pub async fn sign_in(node: &Node, n: u8, space_name: &str) -> Owner {
        let wallet = wallet(n);
        let address = EthAddress::from_verifying_key(wallet.verifying_key());
        let did = Did::pkh(1, address).unwrap();
        let space = SpaceId::new(did.clone(), space_name).unwrap();
        let session = ed25519(n);
        let caps = vec![
            capability(&format!("{space}/kv"), "tinycloud.kv/get").unwrap(),
            capability(&format!("{space}/kv"), "tinycloud.kv/put").unwrap(),
            capability(&format!("{space}/kv"), "tinycloud.kv/del").unwrap(),
            capability(&format!("{space}/kv"), "tinycloud.kv/list").unwrap(),
            capability(&format!("{space}/kv"), "tinycloud.kv/metadata").unwrap(),
            capability(
                &format!("{space}/capabilities"),
                "tinycloud.capabilities/read",
            )
            .unwrap(),
            capability(&format!("{space}/sql"), "tinycloud.sql/read").unwrap(),
            capability(&format!("{space}/sql"), "tinycloud.sql/write").unwrap(),
            capability(&format!("{space}/sql"), "tinycloud.sql/schema").unwrap(),
            capability(&format!("{space}/sql"), "tinycloud.sql/admin").unwrap(),
            capability(&format!("{space}/hooks"), "tinycloud.hooks/subscribe").unwrap(),
            capability(&format!("{space}/hooks"), "tinycloud.hooks/register").unwrap(),
            capability(&format!("{space}/hooks"), "tinycloud.hooks/list").unwrap(),
            capability(&format!("{space}/hooks"), "tinycloud.hooks/unregister").unwrap(),
        ];
        let network = format!("urn:tinycloud:encryption:{did}:default");
        let mut caps = caps;
        for a in ["decrypt", "network.create", "network.revoke", "audit"] {
            caps.push(capability(&network, &format!("tinycloud.encryption/{a}")).unwrap());
        }
        let header = siwe_header(
            &wallet,
            session.did().verification_method().to_string(),
            caps,
            Some(now().plus_secs(3600)),
            vec![],
        );
        let (status, body, text) = post_delegate(node, &header).await;
        assert_eq!(status, 200, "{text}");
        let cid: Cid = tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap();
        let space_id = space.to_string();
        if body["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &space_id)
        {
            let host = http()
                .get(format!("{}/peer/generate/{}", node.url, space_id))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let host_header = siwe_header(
                &wallet,
                host,
                vec![host_capability(&space).unwrap()],
                None,
                vec![],
            );
            let (status, body, text) = post_delegate(node, &host_header).await;
            assert_eq!(status, 200, "{text}");
            assert!(body["activated"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == &space_id));
            let (status, body, _) = post_delegate(node, &header).await;
            assert_eq!(status, 200);
            assert_eq!(
                body["cid"].as_str().unwrap(),
                cid.to_string(),
                "idempotent by CID"
            );
        }
        Owner {
            wallet,
            address,
            did,
            space,
            session,
            session_cid: cid,
        }
    }

    pub fn res(&self, service_path: &str) -> String {
        format!("{}/{}", self.space, service_path)
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status (showing the body on failure) and hands the response on.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }

    /// The body as JSON (panics with the status and body if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }
}

/// `key` holding `proofs`: one party's view of the node, for KV and SQL calls.
pub struct Client<'a> {
    pub node: &'a Node,
    pub key: &'a SecretKey,
    pub proofs: Vec<Cid>,
}

impl<'a> Client<'a> {
    pub fn new(node: &'a Node, key: &'a SecretKey, proofs: &[Cid]) -> Client<'a> {
        Client {
            node,
            key,
            proofs: proofs.to_vec(),
        }
    }

    /// One KV call.
    pub async fn kv(
        &self,
        resource: &str,
        action: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        kv(
            self.node,
            self.key,
            &self.proofs,
            resource,
            action,
            extra,
            body,
        )
        .await
    }

    /// A plain KV put (no extra headers).
    pub async fn put(&self, resource: &str, body: &[u8]) -> Resp {
        self.kv(resource, "put", &[], body.to_vec()).await
    }

    /// A bodiless KV call without extra headers (`get`, `del`, `list`, `metadata`).
    pub async fn call(&self, resource: &str, action: &str) -> Resp {
        self.kv(resource, action, &[], vec![]).await
    }

    /// A hooks HTTP call (`method path`, optional JSON body) authorized by an invocation of
    /// `tinycloud.hooks/{ability}` on `resource`.
    pub async fn hooks(
        &self,
        resource: &str,
        ability: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let t = invoke_header(
            self.key,
            &self.proofs,
            resource,
            &format!("tinycloud.hooks/{ability}"),
        );
        request(self.node, method, path, &t, body).await
    }

    /// An SQL `execute` of one parameterless statement.
    pub async fn execute(&self, resource: &str, ability: &str, stmt: &str) -> Resp {
        let body = serde_json::json!({"action": "execute", "sql": stmt});
        self.sql(resource, ability, body).await
    }

    /// An SQL `query` of one parameterless statement.
    pub async fn query(&self, resource: &str, ability: &str, stmt: &str) -> Resp {
        let body = serde_json::json!({"action": "query", "sql": stmt});
        self.sql(resource, ability, body).await
    }

    /// One SQL call with the given ability and JSON body.
    pub async fn sql(&self, resource: &str, ability: &str, body: serde_json::Value) -> Resp {
        sql(self.node, self.key, &self.proofs, resource, ability, body).await
    }

    /// One invocation carrying several `(resource, ability)` capabilities.
    pub async fn invoke_caps(
        &self,
        caps: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let h = invoke_caps_header(self.key, &self.proofs, caps);
        invoke(self.node, &h, extra, body).await
    }
}

impl Owner {
    /// The owner's session key with its session delegation as proof.
    pub fn client<'a>(&'a self, node: &'a Node) -> Client<'a> {
        Client::new(node, &self.session, &[self.session_cid])
    }
}

/// Delegates `caps` from `from` to `to` as a UCAN, registers it (asserting 200) and returns
/// its CID.
pub async fn delegate(
    node: &Node,
    from: &SecretKey,
    to: &Did,
    proofs: &[Cid],
    caps: Vec<Capability>,
    exp_secs: i64,
) -> Cid {
    let g = ucan_delegation(from, to, proofs, caps, exp_secs);
    let (status, body, text) = post_delegate(node, &g).await;
    assert_eq!(status, 200, "{text}");
    tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap()
}

/// An HTTP call with an `authorization` token and an optional JSON body; the answer as
/// (status, JSON body, or the text as a JSON string when it is not JSON).
pub async fn request(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = http()
        .request(method, format!("{}{path}", node.url))
        .header("authorization", token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)),
    )
}

/// `key` revokes the delegation `cid` through `/revoke`.
pub async fn revoke(node: &Node, key: &SecretKey, cid: Cid) -> (u16, serde_json::Value) {
    let h = invoke_header(
        key,
        &[],
        &format!("urn:cid:{cid}"),
        "tinycloud.delegation/revoke",
    );
    request(node, reqwest::Method::POST, "/revoke", &h, None).await
}

/// An unauthenticated GET.
pub async fn get(node: &Node, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", node.url))
        .send()
        .await
        .unwrap()
}

/// An unauthenticated GET of a JSON document.
pub async fn get_json<T: serde::de::DeserializeOwned>(node: &Node, path: &str) -> T {
    get(node, path).await.json().await.unwrap()
}

pub async fn invoke(node: &Node, header: &str, extra: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let mut req = http()
        .post(format!("{}/invoke", node.url))
        .header("authorization", header);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// One KV call as `key` holding `proofs`.
pub async fn kv(
    node: &Node,
    key: &SecretKey,
    proofs: &[Cid],
    resource: &str,
    action: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let h = invoke_header(key, proofs, resource, &format!("tinycloud.kv/{action}"));
    invoke(node, &h, extra, body).await
}

/// One SQL call as `key` holding `proofs`, with the given ability and JSON body.
pub async fn sql(
    node: &Node,
    key: &SecretKey,
    proofs: &[Cid],
    resource: &str,
    ability: &str,
    body: serde_json::Value,
) -> Resp {
    let h = invoke_header(key, proofs, resource, &format!("tinycloud.sql/{ability}"));
    invoke(
        node,
        &h,
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await
}

//! Test harness: starts the real `tinycloud-node` binary on a free port with a temporary data
//! directory, and builds tokens the way a client does (through the protocol crate).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, host_capability, invocation, SiweDelegationRequest};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::ucan::UcanBuilder;

/// A running node process.
pub struct Node {
    pub child: Child,
    pub url: String,
    /// `http://…/metrics` when started with `TINYCLOUD_TELEMETRY__ENABLED=true`.
    pub metrics_url: Option<String>,
    pub dir: std::path::PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Node {
    pub fn start(env: &[(&str, &str)]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut node = Self::start_in(&dir, env);
        node._tmp = Some(tmp);
        node
    }

    /// Starts (or restarts) a node on an existing data directory.
    pub fn start_in(dir: &std::path::Path, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinycloud-node"));
        cmd.env_clear()
            .env("TINYCLOUD_PORT", "0")
            .env("TINYCLOUD_STORAGE__DATADIR", dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut metrics_url = None;
        let url = loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "node exited before listening");
            // Printed before the listening line when telemetry is on.
            if let Some(u) = line.trim().strip_prefix("metrics on ") {
                metrics_url = Some(u.to_owned());
            }
            if let Some(u) = line.trim().strip_prefix("listening on ") {
                break u.to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Node {
            child,
            url,
            metrics_url,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// Takes the temporary directory so it outlives this process (for restarts).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn now() -> Timestamp {
    Timestamp::from(time::OffsetDateTime::now_utc())
}

pub fn uuid() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
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

pub fn wallet(n: u8) -> k256::ecdsa::SigningKey {
    let mut b = [0u8; 32];
    b[31] = n;
    b[0] = 0x11;
    k256::ecdsa::SigningKey::from_slice(&b).unwrap()
}

pub fn ed25519(n: u8) -> SecretKey {
    let mut seed = [n; 32];
    seed[0] = rand_byte();
    SecretKey::ed25519_from_seed(&seed)
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

pub fn siwe_header(
    wallet: &k256::ecdsa::SigningKey,
    delegate: String,
    caps: Vec<Capability>,
    expiration: Option<Timestamp>,
    parents: Vec<Cid>,
) -> String {
    let address = EthAddress::from_verifying_key(wallet.verifying_key());
    let req = SiweDelegationRequest {
        domain: "app.tinycloud.xyz".into(),
        address,
        chain_id: 1,
        delegate,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        issued_at: now(),
        expiration,
        not_before: None,
        capabilities: caps,
        parents,
        statement: None,
    };
    let msg = req.to_message().unwrap();
    let sig = sign_eip191(wallet, msg.to_string().as_bytes()).unwrap();
    Cacao::new(msg, sig.to_vec()).unwrap().to_header()
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

/// Builds an invocation header for one capability.
pub fn invoke_header(key: &SecretKey, proofs: &[Cid], resource: &str, ability: &str) -> String {
    invocation(
        key,
        None,
        proofs,
        vec![capability(resource, ability).unwrap()],
        now(),
        120,
        &uuid(),
        vec![],
    )
    .unwrap()
    .as_str()
    .to_owned()
}

/// A UCAN delegation from `from` to `to`.
pub fn ucan_delegation(
    from: &SecretKey,
    to: &Did,
    proofs: &[Cid],
    caps: Vec<Capability>,
    exp_secs: i64,
) -> String {
    let mut b = UcanBuilder::new(
        from.did().verification_method(),
        DidUrl::from(to.clone()),
        uuid(),
    )
    .expiration(now().plus_secs(exp_secs))
    .capabilities(caps);
    for p in proofs {
        b = b.proof(*p);
    }
    b.sign(from).unwrap().as_str().to_owned()
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
        let caps = caps
            .iter()
            .map(|(r, a)| capability(r, a).unwrap())
            .collect();
        let h = invocation(
            self.key,
            None,
            &self.proofs,
            caps,
            now(),
            120,
            &uuid(),
            vec![],
        )
        .unwrap()
        .as_str()
        .to_owned();
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

/// A minimal Server-Sent Events reader over a streaming response.
pub struct SseReader {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

/// One SSE event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseReader {
    /// Mints a ticket for `scopes` with `key`/`proofs` and connects (optionally resuming).
    pub async fn connect(
        node: &Node,
        key: &SecretKey,
        proofs: &[Cid],
        scopes: serde_json::Value,
        resume: Option<u64>,
    ) -> Result<SseReader, (u16, String)> {
        let resources: Vec<String> = scopes
            .as_array()
            .unwrap()
            .iter()
            .map(|s| match s.get("pathPrefix").and_then(|p| p.as_str()) {
                Some(p) => format!(
                    "{}/hooks/{}/{}",
                    s["space"].as_str().unwrap(),
                    s["service"].as_str().unwrap(),
                    p
                ),
                None => format!(
                    "{}/hooks/{}",
                    s["space"].as_str().unwrap(),
                    s["service"].as_str().unwrap()
                ),
            })
            .collect();
        let caps = resources
            .iter()
            .map(|r| capability(r, "tinycloud.hooks/subscribe").unwrap())
            .collect();
        let token = invocation(key, None, proofs, caps, now(), 120, &uuid(), vec![]).unwrap();
        let r = http()
            .post(format!("{}/hooks/tickets", node.url))
            .header("authorization", token.as_str())
            // Like this project's SDK, ask for the stream signals (`ready`/`reset`/`end`) as
            // events; the wire tests (`e2e_wire_*`) cover a subscriber that does not.
            .json(&serde_json::json!({"subscriptions": scopes, "signals": true}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return Err((status, r.text().await.unwrap_or_default()));
        }
        let ticket = r.json::<serde_json::Value>().await.unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_owned();
        Self::open(node, &ticket, resume).await
    }

    /// Connects with a ticket.
    pub async fn open(
        node: &Node,
        ticket: &str,
        resume: Option<u64>,
    ) -> Result<SseReader, (u16, String)> {
        let client = reqwest::Client::builder().build().unwrap();
        let mut req = client
            .get(format!("{}/hooks/events", node.url))
            .query(&[("ticket", ticket)])
            .header("accept", "text/event-stream");
        if let Some(r) = resume {
            req = req.header("last-event-id", r.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if status != 200 {
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        Ok(SseReader {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        })
    }

    /// The next event (comments/keep-alives skipped), or `None` at end of stream or timeout.
    pub async fn next(&mut self, timeout: std::time::Duration) -> Option<SseEvent> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut ev = SseEvent {
                    event: "message".into(),
                    ..Default::default()
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().into());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                // `ready` only says where the stream starts.
                if any && ev.event != "ready" {
                    return Some(ev);
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

//! The TinyCloud client: node discovery, owner sign-in (SIWE + ReCap, space creation),
//! session-only mode, and the invocation plumbing every service uses.

use std::sync::RwLock;
use std::time::Duration;

use serde_json::Value;
use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_auth::session::{
    capability, host_capability, invocation, SiweDelegationRequest, DEFAULT_DOMAIN,
    DEFAULT_INVOCATION_TTL_SECS, DEFAULT_SESSION_SECS,
};
use tinycloud_auth::timestamp::Timestamp;

use crate::error::{check_status, read_capped, read_json, Error, Result};
use crate::session::{now, Jwk, Session};
use crate::signer::Signer;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Client settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Node URL, e.g. `http://127.0.0.1:8000`.
    pub host: String,
    /// SIWE `domain`.
    pub domain: String,
    /// Name of the primary space.
    pub space_name: String,
    /// Session lifetime.
    pub session_secs: i64,
    /// Invocation lifetime (clamped to 30..=3600; nodes refuse more than 300 by default).
    pub invocation_ttl_secs: i64,
    /// Create the primary space when the node reports it missing.
    pub auto_create_space: bool,
    /// Capabilities to request at sign-in; `None` = the default set.
    pub capabilities: Option<Vec<Capability>>,
    /// The node's DID pinned for this host: a node announcing another one in `/info` is
    /// refused with [`Error::NodeMismatch`]. `None` = learn it from `/info`.
    pub node_did: Option<Did>,
    /// Longest wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for (part of) an answer, streams included.
    pub read_timeout: Duration,
    /// Longest a whole request may take (streamed values excepted: they are bounded by
    /// `read_timeout` between chunks).
    pub request_timeout: Duration,
    /// Largest JSON answer read (lists, delegations, audit trails).
    pub max_json_bytes: usize,
    /// Largest value [`crate::kv::Kv::get`] buffers (`get_stream` has no cap).
    pub max_value_bytes: usize,
    /// Records asked for per page of a network's audit trail (the node allows 1..=500).
    pub audit_page_size: usize,
    /// Most pages [`TinyCloud::network_audit`] follows before it stops (and says so with a
    /// `nextCursor`).
    pub max_audit_pages: usize,
}

/// Default [`Config::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Config::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`Config::max_json_bytes`].
pub const DEFAULT_MAX_JSON_BYTES: usize = 8 * 1024 * 1024;
/// Default [`Config::max_value_bytes`].
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
/// Default [`Config::audit_page_size`] (the node's largest page).
pub const DEFAULT_AUDIT_PAGE_SIZE: usize = 500;
/// Default [`Config::max_audit_pages`].
pub const DEFAULT_MAX_AUDIT_PAGES: usize = 100;
/// Largest `/info` answer read.
const MAX_INFO_BYTES: usize = 64 * 1024;

impl Config {
    /// Defaults for a node at `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Config {
            host: host.into().trim_end_matches('/').to_owned(),
            domain: DEFAULT_DOMAIN.into(),
            space_name: "default".into(),
            session_secs: DEFAULT_SESSION_SECS,
            invocation_ttl_secs: DEFAULT_INVOCATION_TTL_SECS,
            auto_create_space: true,
            capabilities: None,
            node_did: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            audit_page_size: DEFAULT_AUDIT_PAGE_SIZE,
            max_audit_pages: DEFAULT_MAX_AUDIT_PAGES,
        }
    }
}

/// What `/info` says about a node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Protocol version.
    pub protocol: u64,
    /// Software version.
    pub version: String,
    /// Node DID.
    pub node_id: String,
    /// Features.
    pub features: Vec<String>,
}

/// A TinyCloud client. Holds at most one active session.
pub struct TinyCloud {
    config: Config,
    http: reqwest::Client,
    session: RwLock<Option<Session>>,
    /// The node's DID, learned once from `/info`.
    pub(crate) node_did: std::sync::OnceLock<Did>,
    /// The owner's own session keys this client knows of (newest last, at most
    /// [`MAX_OWNER_SESSION_KEYS`]): only envelopes they signed count as the owner's.
    owner_session_keys: RwLock<Vec<Did>>,
}

/// How many owner session keys a client remembers (the oldest are dropped first).
pub const MAX_OWNER_SESSION_KEYS: usize = 32;

/// The default capability set of an owner sign-in: KV, SQL, capabilities/read, hooks and
/// delegation revocation and listing on the primary space; the vault paths of the `secrets` space; decrypt
/// on the owner's default encryption network.
pub fn default_capabilities(owner: &Did, space_name: &str) -> Result<Vec<Capability>> {
    let space =
        SpaceId::new(owner.clone(), space_name).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let secrets =
        SpaceId::new(owner.clone(), "secrets").map_err(|e| Error::InvalidInput(e.to_string()))?;
    let network =
        NetworkId::new(owner.clone(), "default").map_err(|e| Error::InvalidInput(e.to_string()))?;
    let mut caps = Vec::new();
    let mut add = |res: String, ab: &str| -> Result<()> {
        caps.push(capability(&res, ab).map_err(Error::InvalidInput)?);
        Ok(())
    };
    for a in ["get", "put", "del", "list", "metadata"] {
        add(format!("{space}/kv"), &format!("tinycloud.kv/{a}"))?;
    }
    for a in ["read", "write", "schema", "admin"] {
        add(format!("{space}/sql"), &format!("tinycloud.sql/{a}"))?;
    }
    add(
        format!("{space}/capabilities"),
        "tinycloud.capabilities/read",
    )?;
    for a in ["subscribe", "register", "list", "unregister"] {
        add(format!("{space}/hooks"), &format!("tinycloud.hooks/{a}"))?;
    }
    add(format!("{space}/delegation"), "tinycloud.delegation/revoke")?;
    // The account's delegation listing (`POST /delegation/query`), as the reference sign-in.
    add(format!("{space}/delegation"), "tinycloud.delegation/list")?;
    for a in ["get", "put", "del", "list", "metadata"] {
        add(
            format!("{secrets}/kv/vault/secrets/"),
            &format!("tinycloud.kv/{a}"),
        )?;
    }
    add(network.to_string(), "tinycloud.encryption/decrypt")?;
    add(network.to_string(), "tinycloud.encryption/network.create")?;
    add(network.to_string(), "tinycloud.encryption/audit")?;
    Ok(caps)
}

/// A 2xx status.
pub(crate) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TinyCloud {
    /// A client with no session.
    pub fn new(config: Config) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| Error::Network(e.to_string()))?;
        Ok(TinyCloud {
            config,
            http,
            session: RwLock::new(None),
            node_did: std::sync::OnceLock::new(),
            owner_session_keys: RwLock::new(Vec::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The HTTP client (shared by services).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `req` within [`Config::request_timeout`] (body included); an answer whose status
    /// `accept` refuses becomes the typed error of [`crate::error::from_status`]. Service
    /// requests go through here (streamed values use [`Self::send_streaming`]; the event
    /// stream, which bounds its own send with a timeout, calls [`check_status`] itself).
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        accept: impl Fn(u16) -> bool,
    ) -> Result<reqwest::Response> {
        let req = req.timeout(self.config.request_timeout);
        check_status(req.send().await?, accept).await
    }

    /// [`Self::send`] without the overall timeout, for values streamed in or out: the client's
    /// read timeout still ends a stalled transfer.
    pub(crate) async fn send_streaming(
        &self,
        req: reqwest::RequestBuilder,
        accept: impl Fn(u16) -> bool,
    ) -> Result<reqwest::Response> {
        check_status(req.send().await?, accept).await
    }

    /// Sends `req` and returns the JSON body of its `200 OK` answer (any other status is an
    /// error), read up to [`Config::max_json_bytes`].
    pub(crate) async fn send_for_json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        let r = self.send(req, |s| s == 200).await?;
        read_json(r, self.config.max_json_bytes).await
    }

    /// Sends `req` and returns the text body of its `200 OK` answer, read up to `limit` bytes.
    pub(crate) async fn send_for_text(
        &self,
        req: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<String> {
        let r = self.send(req, |s| s == 200).await?;
        let body = read_capped(r, limit, "answer").await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `host + path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.host)
    }

    /// Fetches `/info` and checks the protocol version and, when one is pinned
    /// ([`Config::node_did`]), the node's DID.
    pub async fn info(&self) -> Result<NodeInfo> {
        let req = self.http.get(self.url("/info"));
        let r = self.send(req, is_success).await?;
        let v: Value = read_json(r, MAX_INFO_BYTES).await?;
        let info = NodeInfo {
            protocol: v["protocol"].as_u64().unwrap_or(0),
            version: v["version"].as_str().unwrap_or_default().to_owned(),
            node_id: v["nodeId"].as_str().unwrap_or_default().to_owned(),
            features: v["features"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        if info.protocol != PROTOCOL_VERSION {
            return Err(Error::ProtocolMismatch {
                node: info.protocol,
                client: PROTOCOL_VERSION,
            });
        }
        if let Some(pinned) = &self.config.node_did {
            if info.node_id != pinned.to_string() {
                return Err(Error::NodeMismatch {
                    expected: pinned.to_string(),
                    actual: info.node_id.chars().take(200).collect(),
                });
            }
        }
        Ok(info)
    }

    /// Posts a delegation to `/delegate`; returns the node's `{cid, activated, skipped}`.
    pub async fn post_delegation(&self, header: &str) -> Result<Value> {
        let req = self
            .http
            .post(self.url("/delegate"))
            .header("authorization", header);
        self.send_for_json(req).await
    }

    async fn siwe_delegation(
        &self,
        signer: &dyn Signer,
        delegate: String,
        caps: Vec<Capability>,
        expiration: Option<Timestamp>,
    ) -> Result<String> {
        let address = signer.address().await?;
        let chain_id = signer.chain_id().await?;
        let msg = SiweDelegationRequest {
            domain: self.config.domain.clone(),
            address,
            chain_id,
            delegate,
            nonce: nonce(),
            issued_at: now(),
            expiration,
            not_before: None,
            capabilities: caps,
            parents: vec![],
            statement: None,
        }
        .to_message()
        .map_err(|e| Error::Token(e.to_string()))?;
        let (signed, sig) = signer.sign_siwe(&msg).await?;
        if signed.address != msg.address || signed.uri != msg.uri || signed.nonce != msg.nonce {
            return Err(Error::Signer(
                "the signer signed another message than asked".into(),
            ));
        }
        Ok(Cacao::new(signed, sig)
            .map_err(|e| Error::Token(e.to_string()))?
            .to_header())
    }

    /// Creates (hosts) a space owned by the signer: `/peer/generate` then a
    /// `tinycloud.space/host` delegation to the node's host key.
    pub async fn host_space(&self, signer: &dyn Signer, space: &SpaceId) -> Result<()> {
        // The space id percent-encoded into one path segment, as the reference clients send it.
        let segment = space.to_string().replace(':', "%3A");
        let req = self
            .http
            .get(self.url(&format!("/peer/generate/{segment}")));
        let host = self.send_for_text(req, 4096).await?;
        let cap = host_capability(space).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let header = self
            .siwe_delegation(signer, host.trim().to_owned(), vec![cap], None)
            .await?;
        self.post_delegation(&header).await?;
        Ok(())
    }

    /// Owner sign-in: a fresh session key, a SIWE + ReCap delegation to it signed by `signer`,
    /// activation, and space creation when the node reports the space missing.
    pub async fn sign_in(&self, signer: &dyn Signer) -> Result<Session> {
        self.info().await?;
        let address = signer.address().await?;
        let chain_id = signer.chain_id().await?;
        let owner = Did::pkh(chain_id, address).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let space = SpaceId::new(owner.clone(), &self.config.space_name)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let caps = match &self.config.capabilities {
            Some(c) => c.clone(),
            None => default_capabilities(&owner, &self.config.space_name)?,
        };
        let key = Jwk::generate();
        let vm = key.secret_key()?.did().verification_method().to_string();
        let expiration = now().plus_secs(self.config.session_secs);
        let header = self
            .siwe_delegation(signer, vm, caps, Some(expiration))
            .await?;
        let resp = self.post_delegation(&header).await?;
        let skipped = resp["skipped"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(&space.to_string())));
        if skipped && self.config.auto_create_space {
            self.host_space(signer, &space).await?;
            self.post_delegation(&header)
                .await
                .map_err(|e| Error::Node {
                    status: 0,
                    message: format!("Failed to activate session after creating space: {e}"),
                })?;
        }
        let session = Session::new(
            key,
            &header,
            space.to_string(),
            address.to_eip55().to_lowercase(),
            chain_id,
            self.config.host.clone(),
        )?;
        self.add_owner_session_keys([session.key()?.did()]);
        self.set_session(Some(session.clone()));
        Ok(session)
    }

    /// Records keys as the owner's own session keys (ones this owner created: see
    /// [`crate::secrets::writer_of`]). Duplicates move to the end (newest); beyond
    /// [`MAX_OWNER_SESSION_KEYS`] the oldest are forgotten.
    pub fn add_owner_session_keys(&self, keys: impl IntoIterator<Item = Did>) {
        if let Ok(mut known) = self.owner_session_keys.write() {
            for key in keys {
                known.retain(|k| k != &key);
                known.push(key);
            }
            let excess = known.len().saturating_sub(MAX_OWNER_SESSION_KEYS);
            known.drain(..excess);
        }
    }

    /// The owner's own session keys this client knows of, oldest first.
    pub fn owner_session_keys(&self) -> Vec<Did> {
        self.owner_session_keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// Installs a session (restored from storage or built from a received delegation).
    pub fn set_session(&self, session: Option<Session>) {
        if let Ok(mut s) = self.session.write() {
            *s = session;
        }
    }

    /// Restores a stored session after checking it.
    pub fn restore(&self, session: Session) -> Result<()> {
        session.validate()?;
        if session.is_expired(now()) {
            return Err(Error::SessionExpired {
                expired_at: session.expires_at.clone(),
            });
        }
        self.set_session(Some(session));
        Ok(())
    }

    /// Drops the session (nothing is sent to the node).
    pub fn sign_out(&self) {
        self.set_session(None);
    }

    /// The active session, if any.
    pub fn session(&self) -> Option<Session> {
        self.session.read().ok().and_then(|s| s.clone())
    }

    /// The active session, or a typed error if missing or expired.
    pub fn active_session(&self) -> Result<Session> {
        let s = self.session().ok_or(Error::NotSignedIn)?;
        if s.is_expired(now()) {
            return Err(Error::SessionExpired {
                expired_at: s.expires_at.clone(),
            });
        }
        Ok(s)
    }

    /// The primary space of the session.
    pub fn space(&self) -> Result<SpaceId> {
        self.active_session()?
            .tinycloud_session
            .space_id
            .parse()
            .map_err(|e: tinycloud_auth::resource::ResourceError| Error::Storage(e.to_string()))
    }

    /// Builds a fresh single-use invocation for `caps` under the session.
    pub fn invocation(&self, caps: Vec<Capability>) -> Result<String> {
        let s = self.active_session()?;
        let key = s.key()?;
        let ttl = self.config.invocation_ttl_secs.clamp(30, 3600);
        let inv = invocation(
            &key,
            None,
            &[s.delegation_cid()?],
            caps,
            now(),
            ttl,
            &format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            vec![],
        )
        .map_err(|e| Error::Token(e.to_string()))?;
        Ok(inv.as_str().to_owned())
    }

    /// Builds a single-use invocation signed by the session key without proofs (the key acts
    /// on its own authority, e.g. to revoke delegations it issued).
    pub fn self_invocation(&self, caps: Vec<Capability>) -> Result<String> {
        let s = self.active_session()?;
        let inv = invocation(
            &s.key()?,
            None,
            &[],
            caps,
            now(),
            self.config.invocation_ttl_secs.clamp(30, 3600),
            &format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            vec![],
        )
        .map_err(|e| Error::Token(e.to_string()))?;
        Ok(inv.as_str().to_owned())
    }

    /// `tinycloud.capabilities/read`: delegations naming the primary space.
    pub async fn capabilities(&self) -> Result<Value> {
        let space = self.space()?;
        let cap = capability(
            &format!("{space}/capabilities/all"),
            "tinycloud.capabilities/read",
        )
        .map_err(Error::InvalidInput)?;
        let token = self.invocation(vec![cap])?;
        let req = self
            .http
            .post(self.url("/invoke"))
            .header("authorization", token);
        self.send_for_json(req).await
    }
}

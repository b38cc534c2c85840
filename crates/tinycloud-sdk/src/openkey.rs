//! A [`Signer`] whose key lives in OpenKey: every signature is an approval the person gives in
//! their browser (after a passkey check), where they may also narrow the request — remove
//! capabilities, shorten the expiry. [`Signer::sign_siwe`] returns the message actually signed.
//!
//! Two ways to reach the person:
//! - [`ApprovalMode::Browser`]: a loopback redirect (RFC 8252): listen on `127.0.0.1:0`, send
//!   the person to the approval page with `return_url = http://127.0.0.1:<port>/callback`,
//!   receive `?code=…&state=…`, exchange the code over the back channel.
//! - [`ApprovalMode::Device`]: the device-code flow (RFC 8628 style) for a machine without a
//!   browser: show the user code and the verification URI, poll until decided.
//!
//! The account's address is learned once by a plain sign-in approval (no capabilities) whose
//! address OpenKey fills in; every result is checked: the signature must recover to the address
//! the message names, and that must be the account's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::siwe::{parse_hex_signature, Message, TimeStamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::signer::Signer;

/// The address an approval request leaves for OpenKey to fill.
pub const PLACEHOLDER_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// How long the person has to decide.
const WAIT: Duration = Duration::from_secs(600);

/// How the person is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalMode {
    /// Browser on this machine, loopback callback.
    Browser,
    /// Device code: the person approves on any signed-in browser.
    Device,
}

/// What to tell the person.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Open this URL (the approval page).
    Open(String),
    /// Go to `uri` and enter `code`.
    EnterCode {
        /// The verification URI.
        uri: String,
        /// The user code.
        code: String,
        /// The URI with the code filled in.
        complete: Option<String>,
    },
}

/// Shows a [`Prompt`] (print it, open a browser…).
pub type Prompter = Arc<dyn Fn(&Prompt) + Send + Sync>;

/// A signed result from OpenKey, checked.
#[derive(Clone, Debug)]
pub struct Approved {
    /// The message signed (possibly narrowed).
    pub message: Message,
    /// 65-byte signature.
    pub signature: Vec<u8>,
}

/// An OpenKey-held owner key.
pub struct OpenKeySigner {
    base: String,
    http: reqwest::Client,
    mode: ApprovalMode,
    chain_id: u64,
    prompt: Prompter,
    address: Mutex<Option<EthAddress>>,
}

impl std::fmt::Debug for OpenKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenKeySigner({}, {:?})", self.base, self.mode)
    }
}

fn signer_err(m: impl Into<String>) -> Error {
    Error::Signer(m.into())
}

impl OpenKeySigner {
    /// A signer for the OpenKey server at `base` (e.g. `https://openkey.example`).
    pub fn new(base: &str, mode: ApprovalMode, chain_id: u64, prompt: Prompter) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::InvalidInput(
                "the OpenKey URL must be http(s)".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| signer_err(e.to_string()))?;
        Ok(OpenKeySigner {
            base,
            http,
            mode,
            chain_id,
            prompt,
            address: Mutex::new(None),
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| signer_err(format!("OpenKey unreachable: {e}")))?;
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    fn checked(v: &Value) -> Result<Approved> {
        let text = v["message"]
            .as_str()
            .ok_or_else(|| signer_err("OpenKey answered without a message"))?;
        let message: Message = text
            .parse()
            .map_err(|e| signer_err(format!("OpenKey returned a bad message: {e}")))?;
        let signature = parse_hex_signature(v["signature"].as_str().unwrap_or_default())
            .map_err(|e| signer_err(format!("OpenKey returned a bad signature: {e}")))?;
        message
            .verify_eip191(&signature)
            .map_err(|e| signer_err(format!("OpenKey's signature does not verify: {e}")))?;
        Ok(Approved { message, signature })
    }

    /// Has OpenKey approve and sign `message` (the person may narrow it).
    pub async fn approve(&self, message: &Message) -> Result<Approved> {
        let text = message.to_string();
        let approved = match self.mode {
            ApprovalMode::Device => self.via_device(&text).await?,
            ApprovalMode::Browser => self.via_browser(&text).await?,
        };
        let m = &approved.message;
        let same = m.domain == message.domain
            && m.uri == message.uri
            && m.nonce == message.nonce
            && m.chain_id == message.chain_id;
        if !same {
            return Err(signer_err("OpenKey signed another message than requested"));
        }
        if message.address.to_eip55() != PLACEHOLDER_ADDRESS && m.address != message.address {
            return Err(signer_err("OpenKey signed with another account"));
        }
        Ok(approved)
    }

    async fn via_device(&self, message: &str) -> Result<Approved> {
        let (status, d) = self
            .post("/api/approve/device", &json!({ "message": message }))
            .await?;
        if status != 200 {
            return Err(signer_err(format!(
                "OpenKey refused the request: {}",
                d["message"].as_str().unwrap_or("unknown error")
            )));
        }
        let device_code = d["device_code"].as_str().unwrap_or_default().to_string();
        (self.prompt)(&Prompt::EnterCode {
            uri: d["verification_uri"].as_str().unwrap_or_default().into(),
            code: d["user_code"].as_str().unwrap_or_default().into(),
            complete: d["verification_uri_complete"].as_str().map(str::to_string),
        });
        let mut interval = d["interval"].as_u64().unwrap_or(5).clamp(1, 60);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if tokio::time::Instant::now() > deadline {
                return Err(signer_err("nobody approved the request in time"));
            }
            let (status, v) = self
                .post(
                    "/api/approve/device/token",
                    &json!({ "device_code": device_code }),
                )
                .await?;
            if status == 200 {
                return Self::checked(&v);
            }
            match v["error"].as_str() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += 5,
                Some("access_denied") => return Err(signer_err("the request was denied")),
                Some("expired_token") => return Err(signer_err("the request expired")),
                other => {
                    return Err(signer_err(format!(
                        "OpenKey: {}",
                        other.unwrap_or("unexpected answer")
                    )))
                }
            }
        }
    }

    async fn via_browser(&self, message: &str) -> Result<Approved> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| signer_err(format!("cannot listen on loopback: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| signer_err(e.to_string()))?
            .port();
        let return_url = format!("http://127.0.0.1:{port}/callback");
        let state = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32);
        let (status, v) = self
            .post(
                "/api/approve/requests",
                &json!({ "message": message, "return_url": return_url, "state": state }),
            )
            .await?;
        if status != 200 {
            return Err(signer_err(format!(
                "OpenKey refused the request: {}",
                v["message"].as_str().unwrap_or("unknown error")
            )));
        }
        let request_id = v["request_id"].as_str().unwrap_or_default().to_string();
        (self.prompt)(&Prompt::Open(
            v["approve_url"].as_str().unwrap_or_default().into(),
        ));
        let params = tokio::time::timeout(WAIT, callback(&listener))
            .await
            .map_err(|_| signer_err("nobody approved the request in time"))??;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("state").as_deref() != Some(state.as_str()) {
            return Err(signer_err("the callback's state does not match"));
        }
        if let Some(e) = get("error") {
            return Err(signer_err(format!("the request was not approved: {e}")));
        }
        let code = get("code").ok_or_else(|| signer_err("the callback carries no code"))?;
        let (status, v) = self
            .post(
                "/api/approve/exchange",
                &json!({ "code": code, "request_id": request_id }),
            )
            .await?;
        if status != 200 {
            return Err(signer_err(format!(
                "the code exchange failed: {}",
                v["error"].as_str().unwrap_or("unknown error")
            )));
        }
        Self::checked(&v)
    }

    /// The account's address (one sign-in approval the first time).
    pub async fn connect(&self) -> Result<EthAddress> {
        if let Some(a) = *self.address.lock().map_err(|_| signer_err("poisoned"))? {
            return Ok(a);
        }
        let now = time::OffsetDateTime::now_utc();
        let stamp = |t| TimeStamp::from_datetime(t).map_err(|e| signer_err(e.to_string()));
        let placeholder = EthAddress::parse_checksummed(PLACEHOLDER_ADDRESS)
            .map_err(|e| signer_err(e.to_string()))?;
        let msg = Message {
            scheme: None,
            domain: "tc.local".into(),
            address: placeholder,
            statement: Some("Connect the tc command line to your OpenKey account.".into()),
            uri: self.base.clone(),
            version: 1,
            chain_id: self.chain_id,
            nonce: Alphanumeric.sample_string(&mut rand::rngs::OsRng, 16),
            issued_at: stamp(now)?,
            expiration_time: Some(stamp(now + time::Duration::minutes(10))?),
            not_before: None,
            request_id: None,
            resources: None,
        };
        let approved = self.approve(&msg).await?;
        let address = approved.message.address;
        if let Ok(mut slot) = self.address.lock() {
            *slot = Some(address);
        }
        Ok(address)
    }
}

/// Waits for `GET /callback?…` on the listener; answers a short page; returns the query pairs.
async fn callback(listener: &tokio::net::TcpListener) -> Result<Vec<(String, String)>> {
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| signer_err(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        while n < buf.len() {
            match sock.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_default()
            .to_string();
        let Some(query) = target.strip_prefix("/callback?") else {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let pairs = url_pairs(query);
        let body = "Done: you can close this tab and return to the terminal.";
        let _ = sock
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return Ok(pairs);
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://127.0.0.1/callback?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Signer for OpenKeySigner {
    async fn address(&self) -> Result<EthAddress> {
        self.connect().await
    }

    async fn chain_id(&self) -> Result<u64> {
        Ok(self.chain_id)
    }

    async fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>> {
        let text = std::str::from_utf8(message)
            .map_err(|_| signer_err("OpenKey signs SIWE messages only"))?;
        let msg: Message = text
            .parse()
            .map_err(|_| signer_err("OpenKey signs SIWE messages only"))?;
        let approved = self.sign_siwe(&msg).await?;
        if approved.0 != msg {
            return Err(signer_err(
                "the person narrowed the request: use the message returned by sign_siwe",
            ));
        }
        Ok(approved.1)
    }

    async fn sign_siwe(&self, message: &Message) -> Result<(Message, Vec<u8>)> {
        let expected = self.connect().await?;
        let approved = self.approve(message).await?;
        if approved.message.address != expected {
            return Err(signer_err("OpenKey signed with another account"));
        }
        Ok((approved.message, approved.signature))
    }
}

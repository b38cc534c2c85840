//! The dstack guest agent client (HTTP/1.1 over the unix socket `/var/run/dstack.sock`, JSON
//! bodies) and [`DstackSealer`]: the sealing root comes from `GetKey` (a key the TEE's KMS
//! derives for this app and path), evidence from `GetQuote` (a TDX quote whose 64-byte report
//! data is SHA-512 of the report).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::sealer::{Evidence, KeySealer, RootKey, SealContext, SealError};

/// Derivation path of the sealing root.
pub const ROOT_PATH: &str = "openkey/sealing-root/v1";

/// A client of the guest agent's RPC endpoints.
#[derive(Clone, Debug)]
pub struct DstackClient {
    socket: PathBuf,
}

fn dstack_err(e: impl std::fmt::Display) -> SealError {
    SealError::Dstack(e.to_string())
}

impl DstackClient {
    /// A client of the agent at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        DstackClient {
            socket: socket.into(),
        }
    }

    /// POSTs JSON to `/<method>` and returns the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SealError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(dstack_err)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(dstack_err)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "dstack connection ended");
            }
        });
        let req = hyper::Request::post(format!("/{method}"))
            .header("host", "dstack")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(dstack_err)?;
        let res = sender.send_request(req).await.map_err(dstack_err)?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(dstack_err)?
            .to_bytes();
        if !status.is_success() {
            return Err(SealError::Dstack(format!("{method}: HTTP {status}")));
        }
        serde_json::from_slice(&bytes).map_err(dstack_err)
    }

    /// `GetKey`: the key bytes for `path` (hex-decoded), wiped on drop.
    pub async fn get_key(
        &self,
        path: &str,
        purpose: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let v = self
            .call(
                "GetKey",
                &serde_json::json!({ "path": path, "purpose": purpose, "algorithm": "secp256k1" }),
            )
            .await?;
        let hex_key = Zeroizing::new(
            v.get("key")
                .and_then(|k| k.as_str())
                .ok_or_else(|| SealError::Dstack("GetKey: no key".into()))?
                .trim_start_matches("0x")
                .to_string(),
        );
        hex::decode(hex_key.as_str())
            .map(Zeroizing::new)
            .map_err(|_| SealError::Dstack("GetKey: key is not hex".into()))
    }

    /// `GetQuote` over 64 bytes of report data: (hex quote, event log).
    pub async fn get_quote(&self, report_data: &[u8; 64]) -> Result<(String, String), SealError> {
        let v = self
            .call(
                "GetQuote",
                &serde_json::json!({ "report_data": hex::encode(report_data) }),
            )
            .await?;
        let quote = v
            .get("quote")
            .and_then(|q| q.as_str())
            .ok_or_else(|| SealError::Dstack("GetQuote: no quote".into()))?
            .to_string();
        let log = v
            .get("event_log")
            .and_then(|q| q.as_str())
            .unwrap_or_default()
            .to_string();
        Ok((quote, log))
    }
}

/// Sealer whose root secret comes from the TEE.
pub struct DstackSealer {
    client: DstackClient,
    root: RootKey,
}

impl DstackSealer {
    /// Connects to the agent at `socket` and fetches the sealing root.
    pub async fn connect(socket: &Path) -> Result<Self, SealError> {
        let client = DstackClient::new(socket);
        let key = client.get_key(ROOT_PATH, "openkey-seal").await?;
        let mut root = Zeroizing::new([0u8; 32]);
        root.copy_from_slice(&Sha256::digest(key.as_slice()));
        Ok(DstackSealer {
            client,
            root: RootKey::new(root),
        })
    }
}

#[async_trait]
impl KeySealer for DstackSealer {
    fn kind(&self) -> &'static str {
        "dstack-tdx"
    }

    fn hardware_backed(&self) -> bool {
        true
    }

    fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.root.seal(ctx, plaintext)
    }

    fn unseal(&self, ctx: &SealContext<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.root.unseal(ctx, blob)
    }

    async fn attest(&self, report: &[u8]) -> Result<Evidence, SealError> {
        let mut data = [0u8; 64];
        data.copy_from_slice(&Sha512::digest(report));
        let (quote, event_log) = self.client.get_quote(&data).await?;
        Ok(Evidence::DstackTdx { quote, event_log })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::{Json, Router};

    /// A stand-in guest agent on a unix socket, answering like the real one.
    async fn fake_agent(dir: &Path) -> PathBuf {
        let sock = dir.join("dstack.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let app = Router::new()
            .route(
                "/GetKey",
                post(|Json(v): Json<serde_json::Value>| async move {
                    let path = v["path"].as_str().unwrap_or_default().to_string();
                    Json(serde_json::json!({
                        "key": hex::encode(Sha256::digest(path.as_bytes())),
                        "signature_chain": []
                    }))
                }),
            )
            .route(
                "/GetQuote",
                post(|Json(v): Json<serde_json::Value>| async move {
                    Json(serde_json::json!({
                        "quote": format!("quote-over-{}", v["report_data"].as_str().unwrap_or_default()),
                        "event_log": "[]"
                    }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        sock
    }

    #[tokio::test]
    async fn seals_with_agent_root_and_quotes_report_digest() {
        let dir = std::env::temp_dir().join(format!("openkey-dstack-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = fake_agent(&dir).await;
        let sealer = DstackSealer::connect(&sock).await.unwrap();
        assert!(sealer.hardware_backed());
        let ctx = SealContext {
            sealing_context: "c",
            user_id: "u",
            address: "0xA",
        };
        let blob = sealer.seal(&ctx, b"k").unwrap();
        assert_eq!(sealer.unseal(&ctx, &blob).unwrap().as_slice(), b"k");
        let Evidence::DstackTdx { quote, .. } = sealer.attest(b"report").await.unwrap() else {
            panic!("expected a TDX quote");
        };
        assert_eq!(
            quote,
            format!("quote-over-{}", hex::encode(Sha512::digest(b"report")))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

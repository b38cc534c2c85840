//! Client side of encryption networks: encrypt to a network's public key (the node never sees
//! content), and decrypt through the node's re-wrap with a fresh receiver key, verifying the
//! node's signed, bound answer. The network key never reaches the client.
//!
//! Envelopes: `v: 2` binds the envelope's `aad` into AES-GCM; `v: 1` envelopes (written by
//! reference clients, which record `aad` without binding it) are still read.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tinycloud_auth::did::Did;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::NetworkId;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_auth::token::Delegation;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::client::is_success;
use crate::client::TinyCloud;
use crate::error::{read_json, Error, Result};
use crate::session::now;

/// Largest decrypt answer read (a signed, re-wrapped key: well under 1 KiB).
const MAX_DECRYPT_ANSWER_BYTES: usize = 64 * 1024;

pub use tinycloud_auth::envelope::{canonical_hash, ALG};

/// The ability that creates a network; also the network-admin fact's `action`, in full as the
/// reference clients write it and the reference node compares it.
const NETWORK_CREATE: &str = "tinycloud.encryption/network.create";

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Wraps `key` to `to` in the core's `x25519-aes256gcm/v1` format, with fresh randomness.
fn wrap(to: &PublicKey, key: &[u8; 32]) -> Vec<u8> {
    tinycloud_auth::envelope::wrap(to.as_bytes(), key, random::<32>(), random::<12>())
}

fn unwrap(secret: &StaticSecret, wrapped: &[u8]) -> Result<[u8; 32]> {
    tinycloud_auth::envelope::unwrap(secret.as_bytes(), wrapped)
        .map_err(|e| Error::Token(format!("the node returned a bad wrapped key: {e}")))
}

/// An encrypted value as stored (compatible in shape with the reference's inline envelope).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// 2 = `aad` bound into AES-GCM; 1 = legacy (recorded, not bound).
    pub v: u32,
    /// The network.
    pub network_id: String,
    /// Algorithm.
    pub alg: String,
    /// Network key version.
    pub key_version: u32,
    /// The content key wrapped to the network (base64).
    pub encrypted_symmetric_key: String,
    /// Canonical hash of `encryptedSymmetricKey`.
    pub encrypted_symmetric_key_hash: String,
    /// `nonce(12) ‖ AES-256-GCM(plaintext ‖ tag)` (base64).
    pub ciphertext: String,
    /// Associated data (base64).
    pub aad: String,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Who wrote it: a signature over the rest of the envelope (see [`Envelope::sign_writer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<WriterSignature>,
}

/// The writer's signature over an envelope: the signing key, the delegation that gave it
/// authority (the owner's sign-in for owner writes), and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriterSignature {
    /// The signing key's `did:key`.
    pub did: String,
    /// The delegation the key acted under (an `Authorization` header), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Base64 signature over [`Envelope::writer_message`].
    pub sig: String,
}

/// Domain separation of writer signatures.
const WRITER_CONTEXT: &[u8] = b"tinycloud.envelope.writer/v1\n";

/// What an envelope's writer signature shows.
#[derive(Clone, Debug)]
pub enum WriterCheck {
    /// No signature (written before signatures existed, or by another client).
    Unsigned,
    /// The signature does not verify: the envelope was altered or the signature forged.
    Invalid,
    /// Signed by `key`; `proof` is its delegation, verified and addressed to `key`, if any.
    Signed {
        /// The signing key.
        key: Did,
        /// The delegation it acted under.
        proof: Option<Box<Delegation>>,
    },
}

/// A network's public description.
#[derive(Clone, Debug)]
pub struct Network {
    /// Id.
    pub id: NetworkId,
    /// X25519 public key.
    pub public_key: [u8; 32],
    /// Key version.
    pub key_version: u32,
    /// `active` or `revoked`.
    pub state: String,
}

impl Envelope {
    /// Encrypts `plaintext` to `network`, binding `aad`.
    pub fn seal(
        network: &Network,
        plaintext: &[u8],
        aad: &[u8],
        metadata: Map<String, Value>,
    ) -> Envelope {
        let key = random::<32>();
        let nonce = random::<12>();
        let ct = Aes256Gcm::new((&key).into())
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        let esk = STANDARD.encode(wrap(&PublicKey::from(network.public_key), &key));
        Envelope {
            v: 2,
            network_id: network.id.to_string(),
            alg: ALG.into(),
            key_version: network.key_version,
            encrypted_symmetric_key_hash: canonical_hash(&Value::String(esk.clone())),
            encrypted_symmetric_key: esk,
            ciphertext: STANDARD.encode(blob),
            aad: STANDARD.encode(aad),
            metadata,
            writer: None,
        }
    }

    /// The bytes a writer signs: a context string and the canonical JSON of the envelope with
    /// the writer's DID and proof but without the signature. Binds the ciphertext, wrapped
    /// key, `aad` (the storage location) and metadata.
    pub fn writer_message(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(w) = v.get_mut("writer").and_then(Value::as_object_mut) {
            w.remove("sig");
        }
        let mut out = WRITER_CONTEXT.to_vec();
        out.extend(serde_json_canonicalizer::to_vec(&v).unwrap_or_default());
        out
    }

    /// Signs the envelope as written by `key`, acting under `proof` (its delegation header).
    pub fn sign_writer(&mut self, key: &SecretKey, proof: Option<String>) {
        self.writer = Some(WriterSignature {
            did: key.did().to_string(),
            proof,
            sig: String::new(),
        });
        let sig = STANDARD.encode(key.sign(&self.writer_message()));
        if let Some(w) = self.writer.as_mut() {
            w.sig = sig;
        }
    }

    /// Checks the writer signature (and that its proof, if any, is a valid delegation to the
    /// signing key). Says nothing about whom the key acts for: see [`crate::secrets`].
    pub fn check_writer(&self) -> WriterCheck {
        let Some(w) = &self.writer else {
            return WriterCheck::Unsigned;
        };
        let Ok(key) = w.did.parse::<Did>() else {
            return WriterCheck::Invalid;
        };
        let verified = key.public_key().is_some_and(|pk| {
            STANDARD
                .decode(&w.sig)
                .is_ok_and(|sig| pk.verify(&self.writer_message(), &sig).is_ok())
        });
        if !verified {
            return WriterCheck::Invalid;
        }
        let proof = match &w.proof {
            None => None,
            Some(header) => match Delegation::from_header(header) {
                Ok(d) if d.info().delegatee == key => Some(Box::new(d)),
                _ => return WriterCheck::Invalid,
            },
        };
        WriterCheck::Signed { key, proof }
    }

    /// Decrypts with the content key; `expected_aad` must match the envelope's.
    pub fn open_with(&self, key: &[u8; 32], expected_aad: &[u8]) -> Result<Vec<u8>> {
        let invalid = |m: &str| Error::Token(format!("envelope: {m}"));
        let aad = STANDARD
            .decode(&self.aad)
            .map_err(|_| invalid("aad is not base64"))?;
        if aad != expected_aad {
            return Err(invalid("aad does not match this value's location"));
        }
        let blob = STANDARD
            .decode(&self.ciphertext)
            .map_err(|_| invalid("ciphertext is not base64"))?;
        let (nonce, ct) = blob
            .split_at_checked(12)
            .ok_or_else(|| invalid("ciphertext too short"))?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| invalid("bad nonce"))?;
        let cipher = Aes256Gcm::new(key.into());
        let out = match self.v {
            2 => cipher.decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad }),
            1 => cipher.decrypt(&Nonce::from(nonce), ct),
            v => return Err(invalid(&format!("unsupported envelope version {v}"))),
        };
        out.map_err(|_| invalid("does not decrypt (tampered or wrong key)"))
    }
}

impl TinyCloud {
    /// The node's DID (from `/info`, fetched once per client).
    pub async fn node_did(&self) -> Result<Did> {
        if let Some(d) = self.node_did.get() {
            return Ok(d.clone());
        }
        let did: Did =
            self.info()
                .await?
                .node_id
                .parse()
                .map_err(|e: tinycloud_auth::did::DidError| Error::Node {
                    status: 200,
                    message: format!("invalid nodeId: {e}"),
                })?;
        Ok(self.node_did.get_or_init(|| did).clone())
    }

    /// A network's descriptor, or `None`.
    pub async fn network(&self, id: &NetworkId) -> Result<Option<Network>> {
        let url = self.url(&format!(
            "/encryption/networks/{}",
            id.to_string().replace(':', "%3A")
        ));
        let r = match self.send(self.http().get(url), is_success).await {
            Err(Error::NotFound(_)) => return Ok(None),
            r => r?,
        };
        let v: Value = read_json(r, 64 * 1024).await?;
        // The reference node wraps the descriptor (`{"descriptor": {…}}`); a bare descriptor
        // is read too.
        let d = v.get("descriptor").unwrap_or(&v);
        let public_key: [u8; 32] = d["publicEncryptionKey"]
            .as_str()
            .and_then(|k| STANDARD.decode(k).ok())
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| Error::Node {
                status: 200,
                message: "network descriptor without a valid public key".into(),
            })?;
        Ok(Some(Network {
            id: id.clone(),
            public_key,
            key_version: u32::try_from(d["keyVersion"].as_u64().unwrap_or(1)).unwrap_or(1),
            state: d["state"].as_str().unwrap_or_default().to_owned(),
        }))
    }

    /// Creates the owner's network if needed (an existing one is fine) and returns it.
    pub async fn ensure_network(&self, id: &NetworkId) -> Result<Network> {
        if let Some(n) = self.network(id).await? {
            return Ok(n);
        }
        let node = self.node_did().await?;
        let body = json!({"name": id.name(), "ownerDid": id.owner().to_string(), "threshold": {"n": 1, "t": 1}});
        let fact = json!({
            "type": "tinycloud.encryption.network-admin/v1", "targetNode": node.to_string(),
            "networkId": id.to_string(), "bodyHash": canonical_hash(&body), "action": NETWORK_CREATE,
        });
        let token = self.node_invocation(&node, id, NETWORK_CREATE, fact)?;
        let req = self
            .http()
            .post(self.url("/encryption/networks"))
            .header("authorization", token)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req, |s| s == 200 || s == 409).await?;
        self.network(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn node_invocation(
        &self,
        node: &Did,
        network: &NetworkId,
        ability: &str,
        fact: Value,
    ) -> Result<String> {
        let s = self.active_session()?;
        let cap = capability(&network.to_string(), ability).map_err(Error::InvalidInput)?;
        let facts: Vec<Map<String, Value>> = fact
            .as_object()
            .filter(|f| !f.is_empty())
            .cloned()
            .into_iter()
            .collect();
        Ok(invocation(
            &s.key()?,
            Some(node.clone()),
            &[s.delegation_cid()?],
            vec![cap],
            now(),
            self.config().invocation_ttl_secs.clamp(30, 300),
            &format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            facts,
        )
        .map_err(|e| Error::Token(e.to_string()))?
        .as_str()
        .to_owned())
    }

    /// The network's decrypt audit trail (owner, or holders of `tinycloud.encryption/audit`),
    /// newest first: every page, following `nextCursor` (each page a fresh single-use
    /// invocation), up to [`crate::Config::max_audit_pages`] pages of
    /// [`crate::Config::audit_page_size`] records. The answer is
    /// `{"networkId", "records", "pages", "nextCursor"}`; `nextCursor` is `null` when the trail
    /// is complete, else where it was cut (more records exist). A page for another network,
    /// larger than asked, or a cursor that repeats is refused (a node must not make the
    /// client loop or buffer without bound).
    pub async fn network_audit(&self, id: &NetworkId) -> Result<Value> {
        let node = self.node_did().await?;
        let page_size = self.config().audit_page_size.clamp(1, 500);
        let max_pages = self.config().max_audit_pages.max(1);
        let url = self.url(&format!(
            "/encryption/networks/{}/audit",
            id.to_string().replace(':', "%3A")
        ));
        let bad = |m: &str| Error::Node {
            status: 200,
            message: format!("invalid audit page: {m}"),
        };
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        let mut pages = 0usize;
        while pages < max_pages {
            let token = self.node_invocation(&node, id, "tinycloud.encryption/audit", json!({}))?;
            let mut query = vec![("limit", page_size.to_string())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let req = self
                .http()
                .get(url.clone())
                .query(&query)
                .header("authorization", token);
            let mut page: Value = self.send_for_json(req).await?;
            pages += 1;
            if page["networkId"].as_str() != Some(&id.to_string()) {
                return Err(bad("it names another network"));
            }
            let Some(Value::Array(items)) = page.get_mut("records").map(Value::take) else {
                return Err(bad("no records"));
            };
            if items.len() > page_size {
                return Err(bad("more records than asked for"));
            }
            records.extend(items);
            cursor = match page.get_mut("nextCursor").map(Value::take) {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if !c.is_empty() => {
                    if !seen.insert(c.clone()) {
                        return Err(bad("a cursor repeats"));
                    }
                    Some(c)
                }
                Some(_) => return Err(bad("nextCursor is not a string")),
            };
            if cursor.is_none() {
                break;
            }
        }
        Ok(json!({
            "networkId": id.to_string(),
            "records": records,
            "pages": pages,
            "nextCursor": cursor,
        }))
    }

    /// Decrypts an envelope through the node: a fresh receiver key, a single-use invocation
    /// bound to the request by hashes, and a check of every binding and of the node's
    /// signature before the re-wrapped key is used.
    pub async fn decrypt(&self, env: &Envelope, expected_aad: &[u8]) -> Result<Vec<u8>> {
        let network: NetworkId = env
            .network_id
            .parse()
            .map_err(|e: tinycloud_auth::resource::ResourceError| Error::Token(e.to_string()))?;
        let node = self.node_did().await?;
        let receiver = StaticSecret::from(random::<32>());
        let rpk = STANDARD.encode(PublicKey::from(&receiver).as_bytes());
        let body = json!({
            "type": "tinycloud.encryption.decrypt/v1",
            "targetNode": node.to_string(),
            "networkId": env.network_id,
            "alg": env.alg,
            "keyVersion": env.key_version,
            "encryptedSymmetricKey": env.encrypted_symmetric_key,
            "encryptedSymmetricKeyHash": env.encrypted_symmetric_key_hash,
            "receiverPublicKey": rpk,
            "receiverPublicKeyHash": canonical_hash(&Value::String(rpk.clone())),
        });
        let body_hash = canonical_hash(&body);
        let fact = json!({
            "type": "tinycloud.encryption.decrypt/v1", "targetNode": node.to_string(),
            "networkId": env.network_id, "bodyHash": body_hash,
            "encryptedSymmetricKeyHash": env.encrypted_symmetric_key_hash,
            "receiverPublicKeyHash": body["receiverPublicKeyHash"], "alg": env.alg, "keyVersion": env.key_version,
        });
        let token = self.node_invocation(&node, &network, "tinycloud.encryption/decrypt", fact)?;
        let invocation_cid = tinycloud_auth::cid::blake3_cid(token.as_bytes()).to_string();
        let req = self
            .http()
            .post(self.url(&format!(
                "/encryption/networks/{}/decrypt",
                env.network_id.replace(':', "%3A")
            )))
            .header("authorization", &token)
            .header("content-type", "application/json")
            .body(body.to_string());
        let r = self.send(req, |s| s == 200).await?;
        let mut resp: Value = read_json(r, MAX_DECRYPT_ANSWER_BYTES)
            .await
            .map_err(|e| Error::Token(format!("invalid decrypt response: {e}")))?;
        let sig = resp
            .as_object_mut()
            .and_then(|o| o.remove("nodeSignature"))
            .and_then(|s| s.as_str().and_then(|s| STANDARD.decode(s).ok()))
            .ok_or_else(|| Error::Token("decrypt response is not signed".into()))?;
        let canonical = serde_json_canonicalizer::to_vec(&resp).unwrap_or_default();
        node.public_key()
            .ok_or_else(|| Error::Token("node DID has no key".into()))?
            .verify(&canonical, &sig)
            .map_err(|_| Error::Token("decrypt response signature is invalid".into()))?;
        let expect_request = hex::encode(Sha256::digest(
            format!("{invocation_cid}{body_hash}").as_bytes(),
        ));
        for (field, want) in [
            ("invocationCid", invocation_cid.as_str()),
            ("requestHash", expect_request.as_str()),
            ("networkId", env.network_id.as_str()),
            (
                "encryptedSymmetricKeyHash",
                env.encrypted_symmetric_key_hash.as_str(),
            ),
            ("targetNode", &node.to_string()),
        ] {
            if resp[field].as_str() != Some(want) {
                return Err(Error::Token(format!(
                    "decrypt response binding mismatch: {field}"
                )));
            }
        }
        let wrapped = resp["wrappedKey"]
            .as_str()
            .and_then(|w| STANDARD.decode(w).ok())
            .ok_or_else(|| Error::Token("decrypt response has no wrapped key".into()))?;
        let key = unwrap(&receiver, &wrapped)?;
        env.open_with(&key, expected_aad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network whose secret key the test holds (on a real node only the node does).
    fn network() -> (StaticSecret, Network) {
        let secret = StaticSecret::from(random::<32>());
        let owner: Did = "did:pkh:eip155:1:0x6da01670d8fc844e736095918bbe11fe8d564163"
            .parse()
            .unwrap();
        let network = Network {
            id: NetworkId::new(owner, "default").unwrap(),
            public_key: PublicKey::from(&secret).to_bytes(),
            key_version: 1,
            state: "active".into(),
        };
        (secret, network)
    }

    fn content_key(secret: &StaticSecret, env: &Envelope) -> [u8; 32] {
        let wrapped = STANDARD.decode(&env.encrypted_symmetric_key).unwrap();
        unwrap(secret, &wrapped).unwrap()
    }

    #[test]
    fn sealed_value_opens_with_its_key_and_aad() {
        let (secret, network) = network();
        let env = Envelope::seal(&network, b"sk-live-1", b"here", Map::new());
        assert_eq!(env.v, 2);
        let key = content_key(&secret, &env);
        assert_eq!(env.open_with(&key, b"here").unwrap(), b"sk-live-1");
        assert_eq!(
            env.encrypted_symmetric_key_hash,
            canonical_hash(&Value::String(env.encrypted_symmetric_key.clone()))
        );
    }

    #[test]
    fn tampered_ciphertext_does_not_open() {
        let (secret, network) = network();
        let mut env = Envelope::seal(&network, b"sk-live-1", b"here", Map::new());
        let key = content_key(&secret, &env);
        assert_eq!(env.open_with(&key, b"here").unwrap(), b"sk-live-1");
        let mut blob = STANDARD.decode(&env.ciphertext).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        env.ciphertext = STANDARD.encode(&blob);
        assert!(env.open_with(&key, b"here").is_err());
    }

    #[test]
    fn wrong_or_rewritten_aad_does_not_open() {
        let (secret, network) = network();
        let env = Envelope::seal(&network, b"sk-live-1", b"here", Map::new());
        let key = content_key(&secret, &env);
        assert_eq!(env.open_with(&key, b"here").unwrap(), b"sk-live-1");
        // Read from another location.
        assert!(env.open_with(&key, b"elsewhere").is_err());
        // The aad field rewritten to match the new location: bound into AES-GCM, so no.
        let mut moved = env.clone();
        moved.aad = STANDARD.encode(b"elsewhere");
        assert!(moved.open_with(&key, b"elsewhere").is_err());
    }

    #[test]
    fn legacy_v1_reads_and_unknown_versions_are_refused() {
        let (_, network) = network();
        let key = random::<32>();
        let nonce = random::<12>();
        let ct = Aes256Gcm::new((&key).into())
            .encrypt(&Nonce::from(nonce), b"old".as_slice())
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        let mut env = Envelope::seal(&network, b"ignored", b"here", Map::new());
        env.v = 1;
        env.ciphertext = STANDARD.encode(&blob);
        assert_eq!(env.open_with(&key, b"here").unwrap(), b"old");
        env.v = 3;
        assert!(env.open_with(&key, b"here").is_err());
    }

    #[test]
    fn writer_signature_binds_the_envelope() {
        let (_, network) = network();
        let mut env = Envelope::seal(&network, b"v", b"here", Map::new());
        assert!(matches!(env.check_writer(), WriterCheck::Unsigned));
        let key = SecretKey::ed25519_from_seed(&[7; 32]);
        env.sign_writer(&key, None);
        match env.check_writer() {
            WriterCheck::Signed { key: k, proof } => {
                assert_eq!(k, key.did());
                assert!(proof.is_none());
            }
            other => panic!("{other:?}"),
        }
        // Any change to what was signed: moved (aad), swapped ciphertext, another claimed key.
        let mut moved = env.clone();
        moved.aad = STANDARD.encode(b"elsewhere");
        assert!(matches!(moved.check_writer(), WriterCheck::Invalid));
        let other = Envelope::seal(&network, b"evil", b"here", Map::new());
        let mut swapped = env.clone();
        swapped.ciphertext = other.ciphertext;
        assert!(matches!(swapped.check_writer(), WriterCheck::Invalid));
        let mut claimed = env.clone();
        if let Some(w) = claimed.writer.as_mut() {
            w.did = SecretKey::ed25519_from_seed(&[8; 32]).did().to_string();
        }
        assert!(matches!(claimed.check_writer(), WriterCheck::Invalid));
        // A proof that is not a delegation is refused.
        let mut bad_proof = env.clone();
        bad_proof.sign_writer(&key, Some("not a token".into()));
        assert!(matches!(bad_proof.check_writer(), WriterCheck::Invalid));
    }

    #[test]
    fn wrapped_key_with_unknown_version_byte_is_refused() {
        let (secret, network) = network();
        let env = Envelope::seal(&network, b"v", b"a", Map::new());
        let mut wrapped = STANDARD.decode(&env.encrypted_symmetric_key).unwrap();
        assert!(unwrap(&secret, &wrapped).is_ok());
        wrapped[32] = 0x02;
        assert!(unwrap(&secret, &wrapped).is_err());
        assert!(unwrap(&secret, &wrapped[..40]).is_err());
    }
}

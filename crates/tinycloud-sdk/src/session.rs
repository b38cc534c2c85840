//! Sessions and their storage.
//!
//! A session is a session key (Ed25519) plus the delegation that gives it authority: the
//! owner's SIWE sign-in, or a delegation received from someone else. The persisted shape
//! follows the reference clients (`~/.tinycloud/sessions/<address>.json`, camelCase, mode
//! 0600); expired or corrupt files are discarded on load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::Delegation;

use crate::error::{Error, Result};

/// An Ed25519 private key as a JWK (`kty: OKP`, `crv: Ed25519`, `x`, `d`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type.
    pub kty: String,
    /// Curve.
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
    /// Private key, base64url. Never logged.
    pub d: String,
    /// Algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwk(Ed25519, x={})", self.x)
    }
}

impl Jwk {
    /// A fresh random Ed25519 key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// From a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SecretKey::ed25519_from_seed(seed);
        let x = match key.public_key() {
            tinycloud_auth::keys::PublicKey::Ed25519(k) => URL_SAFE_NO_PAD.encode(k.as_bytes()),
            _ => String::new(),
        };
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            d: URL_SAFE_NO_PAD.encode(seed),
            alg: Some("EdDSA".into()),
        }
    }

    /// The signing key (checks that `x` matches `d`).
    pub fn secret_key(&self) -> Result<SecretKey> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(Error::Storage(
                "session key must be an Ed25519 OKP JWK".into(),
            ));
        }
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&self.d)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| Error::Storage("session key `d` is not 32 bytes of base64url".into()))?;
        let key = SecretKey::ed25519_from_seed(&seed);
        if Self::from_seed(&seed).x != self.x {
            return Err(Error::Storage("session key `x` does not match `d`".into()));
        }
        Ok(key)
    }
}

/// The delegation a session acts under, as the reference persists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TinycloudSession {
    /// `{"Authorization": "<header>"}`.
    pub delegation_header: HashMap<String, String>,
    /// Its CID.
    pub delegation_cid: String,
    /// The primary space.
    pub space_id: String,
    /// The session key's verification method (`did:key:z…#z…`).
    pub verification_method: String,
}

/// A persisted session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Format version.
    pub version: String,
    /// The owner's address (lower-case hex) — for delegate sessions, the delegator's.
    pub address: String,
    /// Chain id.
    pub chain_id: u64,
    /// The session key.
    pub session_key: Jwk,
    /// The signed SIWE text (owner sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siwe: Option<String>,
    /// The wallet signature over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The delegation.
    pub tinycloud_session: TinycloudSession,
    /// When the delegation expires (RFC 3339).
    pub expires_at: String,
    /// When the session was created (RFC 3339).
    pub created_at: String,
    /// The node URL(s).
    pub tinycloud_hosts: Vec<String>,
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::from(time::OffsetDateTime::now_utc())
}

impl Session {
    /// A session for `key` acting under the delegation in `header`.
    pub fn new(
        key: Jwk,
        header: &str,
        space_id: String,
        address: String,
        chain_id: u64,
        host: String,
    ) -> Result<Self> {
        let d = Delegation::from_header(header).map_err(|e| Error::Token(e.to_string()))?;
        let sk = key.secret_key()?;
        let expires = d
            .info()
            .expiration
            .unwrap_or(Timestamp::from_millis(i64::MAX / 2));
        Ok(Session {
            version: "1.0".into(),
            address,
            chain_id,
            session_key: key,
            siwe: None,
            signature: None,
            tinycloud_session: TinycloudSession {
                delegation_header: HashMap::from([(
                    "Authorization".to_string(),
                    header.to_owned(),
                )]),
                delegation_cid: d.cid().to_string(),
                space_id,
                verification_method: sk.did().verification_method().to_string(),
            },
            expires_at: expires.to_rfc3339(),
            created_at: now().to_rfc3339(),
            tinycloud_hosts: vec![host],
        })
    }

    /// The session key.
    pub fn key(&self) -> Result<SecretKey> {
        self.session_key.secret_key()
    }

    /// The delegation header.
    pub fn delegation_header(&self) -> Result<&str> {
        self.tinycloud_session
            .delegation_header
            .get("Authorization")
            .map(String::as_str)
            .ok_or_else(|| Error::Storage("session has no delegation header".into()))
    }

    /// The delegation's CID.
    pub fn delegation_cid(&self) -> Result<Cid> {
        parse_cid(&self.tinycloud_session.delegation_cid).map_err(|e| Error::Storage(e.to_string()))
    }

    /// The delegation, decoded and verified.
    pub fn delegation(&self) -> Result<Delegation> {
        Delegation::from_header(self.delegation_header()?).map_err(|e| Error::Token(e.to_string()))
    }

    /// The capabilities the session holds.
    pub fn capabilities(&self) -> Result<Vec<Capability>> {
        Ok(self.delegation()?.info().capabilities.clone())
    }

    /// When it expires.
    pub fn expires(&self) -> Option<Timestamp> {
        Timestamp::parse_rfc3339(&self.expires_at)
    }

    /// Whether it has expired at `at`.
    pub fn is_expired(&self, at: Timestamp) -> bool {
        self.expires().is_none_or(|e| at >= e)
    }

    /// The node URL.
    pub fn host(&self) -> Option<&str> {
        self.tinycloud_hosts.first().map(String::as_str)
    }

    /// Validates the stored data (key matches, delegation decodes and targets this key).
    pub fn validate(&self) -> Result<()> {
        let key = self.key()?;
        let d = self.delegation()?;
        if d.info().delegatee != key.did() {
            return Err(Error::Storage(
                "the stored delegation is not addressed to the stored session key".into(),
            ));
        }
        if d.cid() != self.delegation_cid()? {
            return Err(Error::Storage(
                "stored delegation CID does not match its bytes".into(),
            ));
        }
        Ok(())
    }
}

/// Where sessions are kept.
pub trait SessionStore: Send + Sync {
    /// Loads the session for `id` (an address or profile name); expired or corrupt entries are
    /// discarded and reported as absent.
    fn load(&self, id: &str) -> Result<Option<Session>>;
    /// Saves it.
    fn save(&self, id: &str, session: &Session) -> Result<()>;
    /// Removes it (sign out).
    fn clear(&self, id: &str) -> Result<()>;
}

/// Sessions in memory.
#[derive(Default)]
pub struct MemorySessionStore {
    map: Mutex<HashMap<String, Session>>,
}

impl SessionStore for MemorySessionStore {
    fn load(&self, id: &str) -> Result<Option<Session>> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        let id = id.to_lowercase();
        match map.get(&id) {
            Some(s) if s.is_expired(now()) => {
                map.remove(&id);
                Ok(None)
            }
            other => Ok(other.cloned()),
        }
    }

    fn save(&self, id: &str, session: &Session) -> Result<()> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        map.insert(id.to_lowercase(), session.clone());
        Ok(())
    }

    fn clear(&self, id: &str) -> Result<()> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        map.remove(&id.to_lowercase());
        Ok(())
    }
}

/// Sessions as JSON files `<dir>/<id>.json` (mode 0600).
pub struct FileSessionStore {
    dir: PathBuf,
}

impl FileSessionStore {
    /// Files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSessionStore { dir: dir.into() }
    }

    /// The reference location: `~/.tinycloud/sessions`.
    pub fn default_location() -> Self {
        Self::new(home().join(".tinycloud").join("sessions"))
    }

    fn path(&self, id: &str) -> PathBuf {
        let id = id.trim_start_matches("0x").to_lowercase();
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }
}

/// The user's home directory.
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A fresh temporary file beside `path`: a random name created exclusively (`O_EXCL`, so a
/// planted file or symlink is never opened), mode 0600 from creation. Rename it over `path`
/// with [`tempfile::NamedTempFile::persist`]; dropped unpersisted, it is removed.
pub fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let stem = path
        .file_name()
        .map(|n| format!(".{}.", n.to_string_lossy()))
        .unwrap_or_else(|| ".tc.".into());
    Ok(tempfile::Builder::new()
        .prefix(&stem)
        .suffix(".tmp")
        .tempfile_in(dir)?)
}

/// Writes `bytes` to `path` atomically with mode 0600: through [`temp_beside`], fsynced, then
/// renamed over `path` (a symlink at `path` is replaced, not followed).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| Error::Storage(e.error.to_string()))?;
    Ok(())
}

impl SessionStore for FileSessionStore {
    fn load(&self, id: &str) -> Result<Option<Session>> {
        let path = self.path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let session: Option<Session> = serde_json::from_str(&text).ok();
        match session {
            Some(s) if !s.is_expired(now()) && s.validate().is_ok() => Ok(Some(s)),
            _ => {
                // Expired or corrupt: discard, as the reference does.
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    fn save(&self, id: &str, session: &Session) -> Result<()> {
        let json = serde_json::to_vec_pretty(session).map_err(|e| Error::Storage(e.to_string()))?;
        write_private(&self.path(id), &json)
    }

    fn clear(&self, id: &str) -> Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

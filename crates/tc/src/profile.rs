//! Profiles under `$TC_HOME` (default `~/.tinycloud`):
//!
//! ```text
//! config.json                 {"defaultProfile": "…", "version": 1}
//! profiles/<name>/profile.json   who this profile is (no secrets)
//! profiles/<name>/key.json       the Ed25519 session key (JWK)
//! profiles/<name>/owner.json     the owner's Ethereum key (local owner profiles only)
//! profiles/<name>/session.json   the active session (delegation + key)
//! ```
//!
//! Every file is written atomically with mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tinycloud_sdk::session::{write_private, Jwk, Session};

use crate::error::CliError;
pub use crate::posture::Posture;

/// `profile.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfig {
    /// Profile name.
    pub name: String,
    /// Node URL.
    pub host: String,
    /// EIP-155 chain id of the owner account.
    pub chain_id: u64,
    /// Name of the primary space.
    pub space_name: String,
    /// The profile's principal: the owner's `did:pkh` or, for delegates, the session `did:key`.
    pub did: String,
    /// The session key's `did:key`.
    pub session_did: String,
    /// The owner of the space acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_did: Option<String>,
    /// The space acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<String>,
    /// Owner or delegate.
    pub posture: Posture,
    /// The node's DID, pinned at sign-in or import (`tc auth pin-node` re-pins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_did: Option<String>,
    /// When the profile was created (RFC 3339).
    pub created_at: String,
    /// The `did:key`s of the session keys this owner profile's logins created, oldest first
    /// (at most [`MAX_OWNER_SESSION_KEYS`]): the only writers whose secrets count as the
    /// owner's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_session_dids: Vec<String>,
}

pub use tinycloud_sdk::client::MAX_OWNER_SESSION_KEYS;

impl ProfileConfig {
    /// Records a session key this profile's owner login created (newest last; the oldest
    /// beyond [`MAX_OWNER_SESSION_KEYS`] are forgotten).
    pub fn remember_owner_session(&mut self, did: &str) {
        self.owner_session_dids.retain(|d| d != did);
        self.owner_session_dids.push(did.to_owned());
        let excess = self
            .owner_session_dids
            .len()
            .saturating_sub(MAX_OWNER_SESSION_KEYS);
        self.owner_session_dids.drain(..excess);
    }
}

/// `owner.json`: the owner's Ethereum private key. Never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerKey {
    /// `0x` + 64 hex digits.
    pub private_key: String,
    /// The account address (EIP-55).
    pub address: String,
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnerKey({})", self.address)
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HomeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_profile: Option<String>,
    #[serde(default = "one")]
    version: u32,
}

fn one() -> u32 {
    1
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

fn io_error(action: &str, path: &Path, e: &std::io::Error) -> CliError {
    CliError::general(format!("cannot {action} {}: {e}", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::general(format!("{} is not valid: {e}", path.display()))
                .hint("fix or delete the file")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, &e)),
    }
}

/// Creates missing directories with mode 0700: profiles hold keys.
fn ensure_dir(dir: &Path) -> Result<(), CliError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io_error("create", dir, &e))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| CliError::general(format!("cannot encode {}: {e}", path.display())))?;
    bytes.push(b'\n');
    write_private(path, &bytes)
        .map_err(|e| CliError::general(format!("cannot write {}: {e}", path.display())))
}

/// Checks a profile name (it becomes a directory name).
pub fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "invalid profile name {name:?}: use letters, digits, '-', '_' and '.' (not first)"
        )))
    }
}

impl Home {
    /// `$TC_HOME`, else `~/.tinycloud`.
    pub fn from_env() -> Self {
        let root = std::env::var_os("TC_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| tinycloud_sdk::session::home().join(".tinycloud"));
        Home { root }
    }

    /// The directory of a profile.
    pub fn profile_dir(&self, name: &str) -> PathBuf {
        self.root.join("profiles").join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `defaultProfile` from `config.json`.
    pub fn default_profile(&self) -> Option<String> {
        read_json::<HomeConfig>(&self.config_path())
            .ok()
            .flatten()
            .and_then(|c| c.default_profile)
    }

    /// Makes `name` the default profile if none is set yet.
    pub fn set_default_if_unset(&self, name: &str) -> Result<(), CliError> {
        let path = self.config_path();
        let mut cfg: HomeConfig = read_json(&path)?.unwrap_or_default();
        if cfg.default_profile.is_none() {
            cfg.default_profile = Some(name.to_owned());
            cfg.version = 1;
            write_json(&path, &cfg)?;
        }
        Ok(())
    }

    /// Loads a profile; `None` if it does not exist.
    pub fn load(&self, name: &str) -> Result<Option<Profile>, CliError> {
        check_name(name)?;
        let dir = self.profile_dir(name);
        Ok(read_json::<ProfileConfig>(&dir.join("profile.json"))?
            .map(|config| Profile { dir, config }))
    }
}

/// A profile on disk.
#[derive(Debug)]
pub struct Profile {
    dir: PathBuf,
    /// Its `profile.json`.
    pub config: ProfileConfig,
}

impl Profile {
    /// A new profile (not yet saved).
    pub fn new(home: &Home, config: ProfileConfig) -> Result<Self, CliError> {
        check_name(&config.name)?;
        Ok(Profile {
            dir: home.profile_dir(&config.name),
            config,
        })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `profile.json`.
    pub fn save(&self) -> Result<(), CliError> {
        write_json(&self.dir.join("profile.json"), &self.config)
    }

    /// The session key.
    pub fn key(&self) -> Result<Jwk, CliError> {
        read_json(&self.dir.join("key.json"))?.ok_or_else(|| {
            CliError::general(format!(
                "profile {:?} has no session key (key.json)",
                self.config.name
            ))
            .hint("recreate the profile with `tc init`")
        })
    }

    /// Writes `key.json`.
    pub fn save_key(&self, key: &Jwk) -> Result<(), CliError> {
        write_json(&self.dir.join("key.json"), key)
    }

    /// The owner key, if the profile holds one.
    pub fn owner_key(&self) -> Result<Option<OwnerKey>, CliError> {
        read_json(&self.dir.join("owner.json"))
    }

    /// Writes `owner.json`.
    pub fn save_owner_key(&self, key: &OwnerKey) -> Result<(), CliError> {
        write_json(&self.dir.join("owner.json"), key)
    }

    /// The stored session, if any (not checked for expiry here).
    pub fn session(&self) -> Result<Option<Session>, CliError> {
        read_json(&self.dir.join("session.json"))
    }

    /// Writes `session.json`.
    pub fn save_session(&self, session: &Session) -> Result<(), CliError> {
        write_json(&self.dir.join("session.json"), session)
    }

    /// Deletes `session.json` (keys stay).
    pub fn clear_session(&self) -> Result<(), CliError> {
        let path = self.dir.join("session.json");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &path, &e)),
        }
    }
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    // Whole seconds, as profiles have always been written.
    tinycloud_auth::timestamp::Timestamp::from_secs(
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )
    .to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_sessions_are_bounded_newest_last() {
        let mut c: ProfileConfig = serde_json::from_value(serde_json::json!({
            "name": "p", "host": "h", "chainId": 1, "spaceName": "default", "did": "d",
            "sessionDid": "s", "posture": "local-owner-key", "createdAt": "t",
        }))
        .unwrap();
        assert!(c.owner_session_dids.is_empty());
        for i in 0..MAX_OWNER_SESSION_KEYS + 5 {
            c.remember_owner_session(&format!("k{i}"));
        }
        c.remember_owner_session("k10");
        assert_eq!(c.owner_session_dids.len(), MAX_OWNER_SESSION_KEYS);
        assert_eq!(c.owner_session_dids.first().unwrap(), "k5");
        assert_eq!(c.owner_session_dids.last().unwrap(), "k10");
    }

    #[test]
    fn names() {
        for ok in ["default", "agent-1", "a.b", "A_B"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "a b", "x\\y"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        let key = Jwk::generate();
        let did = key.secret_key().unwrap().did().to_string();
        let p = Profile::new(
            &home,
            ProfileConfig {
                name: "agent".into(),
                host: "http://127.0.0.1:8000".into(),
                chain_id: 1,
                space_name: "default".into(),
                did: did.clone(),
                session_did: did.clone(),
                owner_did: None,
                space_id: None,
                posture: Posture::DelegateSession,
                node_did: None,
                created_at: now_rfc3339(),
                owner_session_dids: Vec::new(),
            },
        )
        .unwrap();
        p.save().unwrap();
        p.save_key(&key).unwrap();
        home.set_default_if_unset("agent").unwrap();
        home.set_default_if_unset("other").unwrap();
        assert_eq!(home.default_profile().as_deref(), Some("agent"));
        let loaded = home.load("agent").unwrap().unwrap();
        assert_eq!(loaded.config.session_did, did);
        assert_eq!(loaded.key().unwrap().x, key.x);
        assert!(loaded.session().unwrap().is_none());
        assert!(home.load("missing").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p.dir().join("key.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(p.dir()).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }
}

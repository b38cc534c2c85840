//! Node configuration: defaults, then an optional TOML file, then `TINYCLOUD_*` environment
//! variables (nested keys joined by `__`, e.g. `TINYCLOUD_STORAGE__DATADIR`; the top-level
//! `TINYCLOUD_ADDRESS` and `TINYCLOUD_PORT` as the reference names them), layered by
//! `figment`: each section's serde defaults, then the file's provider, then the environment's.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid TOML or values.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Complete node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub address: IpAddr,
    /// Listen port (0 picks a free one).
    pub port: u16,
    /// Permissive CORS for browser clients.
    pub cors: bool,
    /// Storage settings.
    pub storage: StorageConfig,
    /// Node key settings.
    pub keys: KeysConfig,
    /// Invocation settings.
    pub invocation: InvocationConfig,
    /// Public space settings.
    pub public_spaces: PublicSpacesConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// SQL service limits.
    pub sql: SqlConfig,
    /// Hooks and webhook delivery.
    pub hooks: HooksConfig,
    /// HTTP connection limits and timeouts.
    pub server: ServerConfig,
    /// Encryption networks.
    pub encryption: EncryptionConfig,
    /// Prometheus metrics on a separate listener.
    pub telemetry: TelemetryConfig,
    /// The admin API's bearer secret: only from the environment (`TINYCLOUD_ADMIN_SECRET`),
    /// never from a file; `None` disables the admin API (503).
    #[serde(skip)]
    pub admin_secret: Option<AdminSecret>,
    /// Signed KV URLs (`/signed/kv`).
    pub signed_urls: SignedUrlsConfig,
    /// Where clients get more storage (env `TINYCLOUD_QUOTA_URL`), advertised as `quota_url`
    /// in `/info`; omitted when unset. An `http(s)` URL.
    pub quota_url: Option<String>,
}

/// Fewest bytes an admin secret may have; a shorter one refuses to start.
pub const MIN_ADMIN_SECRET_BYTES: usize = 32;

/// The admin API secret. Only its BLAKE3 digest is kept, so neither `Debug` nor a memory dump
/// of the configuration shows it; a presented bearer is compared by digest in constant time.
#[derive(Clone)]
pub struct AdminSecret {
    digest: blake3::Hash,
}

impl AdminSecret {
    /// A secret of at least [`MIN_ADMIN_SECRET_BYTES`] bytes.
    pub fn new(secret: &str) -> Result<Self, ConfigError> {
        if secret.len() < MIN_ADMIN_SECRET_BYTES {
            return Err(ConfigError::Invalid(format!(
                "TINYCLOUD_ADMIN_SECRET must be at least {MIN_ADMIN_SECRET_BYTES} bytes"
            )));
        }
        Ok(AdminSecret {
            digest: blake3::hash(secret.as_bytes()),
        })
    }

    /// Whether `candidate` is the secret. Constant time in the candidate's content and length:
    /// both sides are hashed and `blake3::Hash` equality is constant-time.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        blake3::hash(candidate) == self.digest
    }
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret(<redacted>)")
    }
}

/// Prometheus metrics (`GET /metrics` on their own listener, never on the API port).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve metrics.
    pub enabled: bool,
    /// Metrics listen address (default: the API's `address`).
    pub address: Option<IpAddr>,
    /// Metrics listen port (0 picks a free one; the node prints `metrics on http://…/metrics`).
    pub port: u16,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: false,
            address: None,
            port: 8001,
        }
    }
}

/// Signed KV URL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignedUrlsConfig {
    /// Longest ticket lifetime in seconds (at most 300, the protocol's maximum).
    pub max_ttl_secs: u64,
    /// Most live (unexpired) tickets per space.
    pub max_tickets_per_space: u64,
    /// Most live tickets one issuer holds per space.
    pub max_tickets_per_issuer: u64,
}

impl Default for SignedUrlsConfig {
    fn default() -> Self {
        SignedUrlsConfig {
            max_ttl_secs: 300,
            max_tickets_per_space: 10_000,
            max_tickets_per_issuer: 1_000,
        }
    }
}

/// HTTP connection limits and timeouts (enforced by hyper and tower at the connection level).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a client has to send a request's complete headers, counted from when the
    /// connection is accepted or becomes idle (so it also bounds an idle keep-alive).
    pub header_read_timeout_secs: u64,
    /// Seconds without any byte moving in either direction after which a connection is
    /// closed (a stalled body, a client that stops reading its response).
    pub idle_timeout_secs: u64,
    /// Seconds a request body may go without delivering data before the request fails (408).
    pub body_read_timeout_secs: u64,
    /// Open connections at once; further ones are closed on accept.
    pub max_connections: usize,
    /// Open connections at once per client address (IPv6: per /64).
    pub max_connections_per_ip: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 60,
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// Encryption network settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Most audit records kept per network (the oldest are dropped first).
    pub audit_max_records: u64,
    /// Most refused-decrypt records per actor per network per hour (allowed decrypts are
    /// always recorded; requests that do not authenticate under the owner never are).
    pub audit_denied_per_actor_per_hour: u64,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            audit_max_records: 100_000,
            audit_denied_per_actor_per_hour: 100,
        }
    }
}

/// Hooks and webhook delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Attempts per event before dead-lettering.
    pub max_attempts: u32,
    /// Seconds before each retry (the last value repeats).
    pub backoff_secs: Vec<u64>,
    /// Per-delivery timeout in seconds.
    pub timeout_secs: u64,
    /// Allow `http://` and private/loopback callback URLs (development and tests only).
    pub allow_private_destinations: bool,
    /// Most active webhooks per space.
    pub max_webhooks_per_space: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            max_attempts: 5,
            backoff_secs: vec![30, 120, 600, 3600],
            timeout_secs: 10,
            allow_private_destinations: false,
            max_webhooks_per_space: 5,
        }
    }
}

/// SQL service limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Wall-clock limit per request, in milliseconds.
    pub time_limit_ms: u64,
    /// Most rows a query may return.
    pub max_rows: usize,
    /// Largest query response, in bytes.
    pub max_response_bytes: usize,
    /// Statements running at once, across all databases.
    pub workers: usize,
    /// Where databases live durably: `local` files under `<datadir>/sql/`, or `shipped` into
    /// the index and blob stores (snapshot + WAL segments; local files are a cache).
    pub hosting: SqlHosting,
    /// With `shipped`: the WAL size (bytes) past which it is folded into a new snapshot (also
    /// never before the WAL outgrows the database file).
    pub checkpoint_bytes: u64,
    /// Most databases open at once; idle ones past it are closed, least recently used first
    /// (each open database holds up to 7 file descriptors).
    pub max_open_databases: usize,
    /// Most databases one space may hold (a request creating one more gets 402).
    pub max_databases_per_space: usize,
}

/// Where SQL databases live durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlHosting {
    /// Database files on the node's disk.
    Local,
    /// The storage layer (index + blob stores) holds every committed transaction.
    Shipped,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            time_limit_ms: 5_000,
            max_rows: 10_000,
            max_response_bytes: 10 * 1024 * 1024,
            workers: 8,
            hosting: SqlHosting::Local,
            checkpoint_bytes: 4 * 1024 * 1024,
            max_open_databases: 256,
            max_databases_per_space: 100,
        }
    }
}

/// Where and how data is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory (index database, blobs, node secret).
    pub datadir: PathBuf,
    /// Per-space storage limit in bytes (`None`: unlimited). Accepts `"10 MiB"`-style strings.
    #[serde(deserialize_with = "de_size_opt")]
    pub limit: Option<u64>,
    /// Values up to this many bytes are stored inline in the index (one durable commit per
    /// write); larger values go to the blob directory.
    pub inline_threshold: usize,
    /// Seconds between sweeps deleting expired delegations (and un-charging their bytes).
    pub delegation_sweep_secs: u64,
    /// A delegation is swept only this many seconds after it expired.
    pub delegation_sweep_grace_secs: u64,
}

/// Node key material.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// The node secret, unpadded base64url of at least 32 bytes. When absent, one is generated
    /// on first start and stored in `<datadir>/node.secret` (mode 0600).
    pub secret: Option<String>,
}

/// Invocation rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvocationConfig {
    /// Largest accepted `exp - now` of an invocation, in seconds.
    pub max_lifetime_secs: i64,
}

/// Settings for spaces named `public`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicSpacesConfig {
    /// Unauthenticated reads allowed per client IP per minute.
    pub rate_limit_per_minute: u32,
    /// Burst above the steady rate.
    pub rate_limit_burst: u32,
    /// Storage limit of public spaces in bytes.
    #[serde(deserialize_with = "de_size_opt")]
    pub storage_limit: Option<u64>,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest KV value accepted in one put, in bytes.
    #[serde(deserialize_with = "de_size")]
    pub max_value_bytes: u64,
    /// Largest `Authorization` header, in bytes.
    pub max_token_bytes: usize,
    /// Largest page of a KV list.
    pub max_list_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            cors: true,
            storage: StorageConfig::default(),
            keys: KeysConfig::default(),
            invocation: InvocationConfig::default(),
            public_spaces: PublicSpacesConfig::default(),
            limits: LimitsConfig::default(),
            sql: SqlConfig::default(),
            hooks: HooksConfig::default(),
            server: ServerConfig::default(),
            encryption: EncryptionConfig::default(),
            telemetry: TelemetryConfig::default(),
            admin_secret: None,
            signed_urls: SignedUrlsConfig::default(),
            quota_url: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            datadir: PathBuf::from("./data"),
            limit: None,
            inline_threshold: 64 * 1024,
            delegation_sweep_secs: 300,
            delegation_sweep_grace_secs: 3600,
        }
    }
}

impl Default for InvocationConfig {
    fn default() -> Self {
        InvocationConfig {
            max_lifetime_secs: tinycloud_auth::chain::DEFAULT_MAX_INVOCATION_LIFETIME_SECS,
        }
    }
}

impl Default for PublicSpacesConfig {
    fn default() -> Self {
        PublicSpacesConfig {
            rate_limit_per_minute: 60,
            rate_limit_burst: 10,
            storage_limit: Some(10 * 1024 * 1024),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_value_bytes: 1024 * 1024 * 1024,
            max_token_bytes: 64 * 1024,
            max_list_limit: 1000,
        }
    }
}

/// Parses sizes such as `1024`, `"10 MiB"`, `"1GB"`, `"512 KiB"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Int(u64),
    Text(String),
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match SizeValue::deserialize(d)? {
        SizeValue::Int(n) => Ok(n),
        SizeValue::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

fn de_size_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = de_size(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("a size limit of 0 is not allowed"));
    }
    Ok(Some(v))
}

/// The TOML file as a figment provider: figment's `Toml` format, with the reference's
/// `[global]` profile table folded into the top level (its keys win over top-level ones, as
/// they always have), so a file written either way configures the default profile.
struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl Provider for ConfigFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = Toml::string(&self.text).data()?;
        let mut dict = data.remove(&Profile::Default).unwrap_or_default();
        if let Some(Value::Dict(_, global)) = dict.remove("global") {
            dict.extend(global);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `TINYCLOUD_*` variables as a figment provider. Figment's own `Env` provider reads the
/// process environment, while [`Config::load`] takes the variables as an iterator (so tests
/// never touch the process environment): this provider maps those pairs, with the same key and
/// value rules as always, onto figment key paths (`TINYCLOUD_STORAGE__DATADIR` →
/// `storage.datadir`), each pair a [`Serialized`] value merged in order (a later pair wins).
struct EnvPairs(Vec<(String, Value)>);

impl EnvPairs {
    fn new(env: &[(String, String)]) -> Self {
        let mut pairs = Vec::new();
        for (key, raw) in env {
            let Some(rest) = key.strip_prefix("TINYCLOUD_") else {
                continue;
            };
            if rest == "CONFIG" || rest == "ADMIN_SECRET" || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            // Accept the single-underscore spellings of known nested keys too.
            let path = match path.as_slice() {
                [single] => match single.as_str() {
                    "storage_datadir" => vec!["storage".into(), "datadir".into()],
                    "storage_limit" => vec!["storage".into(), "limit".into()],
                    "keys_secret" => vec!["keys".into(), "secret".into()],
                    "address" | "port" | "cors" | "quota_url" => path,
                    _ => continue,
                },
                _ => path,
            };
            let text_only = matches!(
                (
                    path.first().map(String::as_str),
                    path.get(1).map(String::as_str),
                ),
                (Some("keys"), Some("secret"))
                    | (Some("storage"), Some("datadir"))
                    | (Some("address" | "quota_url"), _)
                    | (Some("telemetry"), Some("address"))
            );
            let value = if text_only {
                Value::from(raw.clone())
            } else {
                env_value(raw)
            };
            pairs.push((path.join("."), value));
        }
        EnvPairs(pairs)
    }
}

impl Provider for EnvPairs {
    fn metadata(&self) -> Metadata {
        Metadata::named("TINYCLOUD_* environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0
            .iter()
            .fold(Figment::new(), |f, (key, value)| {
                f.merge(Serialized::default(key, value))
            })
            .data()
    }
}

/// An environment value as a configuration value: integers and booleans as such, else a string.
fn env_value(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        return Value::from(i);
    }
    match raw {
        "true" => Value::from(true),
        "false" => Value::from(false),
        _ => Value::from(raw.to_owned()),
    }
}

impl Config {
    /// Loads defaults ← `file` (if given or `TINYCLOUD_CONFIG` is set, or `./tinycloud.toml`
    /// exists) ← environment, through `figment` (the serde defaults of each section are the
    /// bottom layer: a key no layer names keeps its default).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let from_env = env
            .iter()
            .find(|(k, _)| k == "TINYCLOUD_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        let path = file.map(Path::to_path_buf).or(from_env).or_else(|| {
            let default = PathBuf::from("tinycloud.toml");
            default.exists().then_some(default)
        });
        let mut figment = Figment::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            figment = figment.merge(ConfigFile { path, text });
        }
        let mut cfg: Config = figment
            .merge(EnvPairs::new(&env))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // Empty counts as unset (the reference's rule); too short refuses to start.
        cfg.admin_secret = env
            .iter()
            .find(|(k, _)| k == "TINYCLOUD_ADMIN_SECRET")
            .filter(|(_, v)| !v.is_empty())
            .map(|(_, v)| AdminSecret::new(v))
            .transpose()?;
        let srv = &cfg.server;
        if srv.header_read_timeout_secs == 0
            || srv.idle_timeout_secs == 0
            || srv.body_read_timeout_secs == 0
            || srv.max_connections == 0
            || srv.max_connections_per_ip == 0
        {
            return Err(ConfigError::Invalid(
                "server timeouts and connection limits must be positive".into(),
            ));
        }
        if let Some(u) = &cfg.quota_url {
            let ok = reqwest::Url::parse(u)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::Invalid(
                    "quota_url (TINYCLOUD_QUOTA_URL) must be an http(s) URL".into(),
                ));
            }
        }
        if cfg.invocation.max_lifetime_secs <= 0 {
            return Err(ConfigError::Invalid(
                "invocation.max_lifetime_secs must be positive".into(),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.address.to_string(), "127.0.0.1");
        assert_eq!(c.storage.datadir, PathBuf::from("./data"));
        assert_eq!(c.invocation.max_lifetime_secs, 300);
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("tc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.toml");
        std::fs::write(
            &f,
            "[global]\nport = 9000\n[global.storage]\nlimit = \"10 MiB\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("TINYCLOUD_PORT", "9100"),
                ("TINYCLOUD_ADDRESS", "0.0.0.0"),
                ("TINYCLOUD_STORAGE__DATADIR", "/tmp/x"),
                ("TINYCLOUD_INVOCATION__MAX_LIFETIME_SECS", "60"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.address.to_string(), "0.0.0.0");
        assert_eq!(c.storage.datadir, PathBuf::from("/tmp/x"));
        assert_eq!(c.storage.limit, Some(10 * 1024 * 1024));
        assert_eq!(c.invocation.max_lifetime_secs, 60);
        assert!(Config::load(None, env(&[("TINYCLOUD_PORT", "nope")])).is_err());
        assert!(Config::load(None, env(&[("TINYCLOUD_STORAGE__LIMIT", "0")])).is_err());
    }

    #[test]
    fn layers_in_order_defaults_file_env() {
        let dir = std::env::temp_dir().join(format!("tc-cfg-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.toml");
        // Top-level keys, with `[global]` winning over them.
        std::fs::write(
            &f,
            "port = 9000\ncors = false\n[sql]\nmax_rows = 5\n[global.sql]\nmax_rows = 7\n\
             [global.hooks]\nmax_attempts = 9\n",
        )
        .unwrap();
        let c = Config::load(
            None,
            env(&[
                ("TINYCLOUD_CONFIG", f.to_str().unwrap()),
                ("TINYCLOUD_HOOKS__MAX_ATTEMPTS", "2"),
            ]),
        )
        .unwrap();
        // The file over the defaults.
        assert_eq!(c.port, 9000);
        assert!(!c.cors);
        assert_eq!(c.sql.max_rows, 7);
        // The environment over the file.
        assert_eq!(c.hooks.max_attempts, 2);
        // Untouched keys keep their defaults, also inside a section the file names.
        assert_eq!(c.hooks.timeout_secs, 10);
        assert_eq!(c.sql.workers, 8);
        // A named file that cannot be read refuses to start; so does an unknown key.
        let missing = dir.join("missing.toml");
        assert!(matches!(
            Config::load(Some(&missing), env(&[])),
            Err(ConfigError::Read { .. })
        ));
        std::fs::write(&f, "[storage]\nno_such_key = 1\n").unwrap();
        assert!(Config::load(Some(&f), env(&[])).is_err());
    }

    #[test]
    fn telemetry_and_admin_secret() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(!c.telemetry.enabled);
        assert_eq!(c.telemetry.port, 8001);
        assert!(c.admin_secret.is_none());
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
        let c = Config::load(
            None,
            env(&[
                ("TINYCLOUD_TELEMETRY__ENABLED", "true"),
                ("TINYCLOUD_TELEMETRY__PORT", "0"),
                ("TINYCLOUD_TELEMETRY__ADDRESS", "127.0.0.1"),
                ("TINYCLOUD_ADMIN_SECRET", secret),
            ]),
        )
        .unwrap();
        assert!(c.telemetry.enabled);
        assert_eq!(c.telemetry.port, 0);
        let admin = c.admin_secret.clone().unwrap();
        assert!(admin.matches(secret.as_bytes()));
        assert!(!admin.matches(&secret.as_bytes()[..10]));
        assert!(!admin.matches(b""));
        // Never printed.
        assert!(!format!("{c:?}").contains(secret));
        // Empty is unset; short refuses to start without echoing the value.
        let c = Config::load(None, env(&[("TINYCLOUD_ADMIN_SECRET", "")])).unwrap();
        assert!(c.admin_secret.is_none());
        let e = Config::load(None, env(&[("TINYCLOUD_ADMIN_SECRET", "short-one")])).unwrap_err();
        assert!(!e.to_string().contains("short-one"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10 MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1 parsec").is_err());
    }
}

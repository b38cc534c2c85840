//! Server configuration: the `openkey serve` flags (each also an `OPENKEY_*` variable), resolved
//! against the port actually bound (port 0 picks a free one).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Which [`crate::keys::KeySealer`] seals keys at rest.
#[derive(Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SealerKind {
    /// AES-256-GCM under a key derived from `<data-dir>/master.key`; not hardware-backed.
    Software,
    /// The dstack guest agent (GetKey / GetQuote over its unix socket), inside a TEE.
    Dstack,
}

/// Flags of `openkey serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free port.
    #[arg(long, env = "OPENKEY_PORT", default_value_t = 8787)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "OPENKEY_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// Directory for the database, the master secret and the email outbox.
    #[arg(long, env = "OPENKEY_DATA_DIR", default_value = "openkey-data")]
    pub data_dir: PathBuf,
    /// Issuer (public base URL); defaults to the origin.
    #[arg(long, env = "OPENKEY_ISSUER")]
    pub issuer: Option<Url>,
    /// WebAuthn relying-party id (a registrable domain of the origin).
    #[arg(long, env = "OPENKEY_RP_ID", default_value = "localhost")]
    pub rp_id: String,
    /// Browser origin of the pages; defaults to `http://localhost:<port>`.
    #[arg(long, env = "OPENKEY_ORIGIN")]
    pub origin: Option<Url>,
    /// How long a passkey user verification allows signing and export, in seconds.
    #[arg(long, env = "OPENKEY_UV_WINDOW_SECS", default_value_t = 300)]
    pub uv_window_secs: u64,
    /// Lifetime of a sign-in session, in seconds.
    #[arg(long, env = "OPENKEY_SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_ttl_secs: u64,
    /// Key sealer.
    #[arg(long, env = "OPENKEY_SEALER", value_enum, default_value = "software")]
    pub sealer: SealerKind,
    /// The dstack guest agent's socket (with `--sealer dstack`).
    #[arg(
        long,
        env = "OPENKEY_DSTACK_SOCKET",
        default_value = "/var/run/dstack.sock"
    )]
    pub dstack_socket: PathBuf,
}

/// Resolved configuration the services read.
#[derive(Clone, Debug)]
pub struct Config {
    /// The port actually bound.
    pub port: u16,
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Issuer / public base URL, no trailing slash.
    pub issuer: String,
    /// WebAuthn relying-party id.
    pub rp_id: String,
    /// Browser origin of the pages.
    pub origin: Url,
    /// Passkey user-verification freshness window.
    pub uv_window: Duration,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Key sealer.
    pub sealer: SealerKind,
    /// dstack socket path.
    pub dstack_socket: PathBuf,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The origin (given or derived) is not a valid URL.
    #[error("invalid origin: {0}")]
    Origin(String),
}

impl Config {
    /// Resolves the flags once the listener is bound on `port`.
    pub fn resolve(args: &ServeArgs, port: u16) -> Result<Self, ConfigError> {
        let origin = match &args.origin {
            Some(o) => o.clone(),
            None => Url::parse(&format!("http://localhost:{port}"))
                .map_err(|e| ConfigError::Origin(e.to_string()))?,
        };
        if origin.host_str().is_none() {
            return Err(ConfigError::Origin(origin.to_string()));
        }
        let issuer = args
            .issuer
            .as_ref()
            .unwrap_or(&origin)
            .as_str()
            .trim_end_matches('/')
            .to_string();
        Ok(Config {
            port,
            data_dir: args.data_dir.clone(),
            issuer,
            rp_id: args.rp_id.clone(),
            origin,
            uv_window: Duration::from_secs(args.uv_window_secs),
            session_ttl: Duration::from_secs(args.session_ttl_secs),
            sealer: args.sealer.clone(),
            dstack_socket: args.dstack_socket.clone(),
        })
    }

    /// Whether cookies must carry `Secure` (the origin is https).
    pub fn secure_cookies(&self) -> bool {
        self.origin.scheme() == "https"
    }

    /// The origin as browsers send it in `Origin` (no trailing slash).
    pub fn origin_header(&self) -> String {
        self.origin.origin().ascii_serialization()
    }
}

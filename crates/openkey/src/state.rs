//! `AppState`: configuration, store, keys (with the sealer), WebAuthn, CSRF secret and rate
//! limiters, wired once at start and cloned into every handler.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use rand::RngCore;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};
use zeroize::Zeroizing;

use crate::config::{Config, SealerKind};
use crate::keys::dstack::DstackSealer;
use crate::keys::{KeySealer, Keys, SealError, SoftwareSealer};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// A keyed rate limiter (by email or client address).
pub type KeyedLimiter = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// Rate limits.
pub struct Limits {
    /// Email codes sent, per address.
    pub email_send: KeyedLimiter,
    /// Sign-in attempts (code, recovery code, passkey start), per email.
    pub signin: KeyedLimiter,
}

fn limiter(burst: u32, period: Duration) -> KeyedLimiter {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::hashmap(quota)
}

impl Limits {
    fn new() -> Self {
        Limits {
            email_send: limiter(5, Duration::from_secs(60)),
            signin: limiter(20, Duration::from_secs(3)),
        }
    }
}

/// Building the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealer could not be set up.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// WebAuthn settings (RP id / origin) are inconsistent.
    #[error("webauthn: {0}")]
    Webauthn(String),
}

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Resolved configuration.
    pub config: Arc<Config>,
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Key records and the sealer.
    pub keys: Keys,
    /// WebAuthn relying party.
    pub webauthn: Arc<Webauthn>,
    /// HMAC key for CSRF tokens (random per process).
    pub csrf_key: Arc<Zeroizing<[u8; 32]>>,
    /// Rate limiters.
    pub limits: Arc<Limits>,
    /// Hex public key of the software attestation identity (software sealer only).
    pub attestation_identity: Option<String>,
}

impl AppState {
    /// Opens the data dir and wires the services.
    pub async fn build(config: Config) -> Result<Self, StateError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.data_dir)?);
        let (sealer, identity): (Arc<dyn KeySealer>, Option<String>) = match config.sealer {
            SealerKind::Software => {
                let s = SoftwareSealer::open(&config.data_dir)?;
                let id = s.identity_public_key();
                (Arc::new(s), Some(id))
            }
            SealerKind::Dstack => (
                Arc::new(DstackSealer::connect(&config.dstack_socket).await?),
                None,
            ),
        };
        Self::assemble(config, store, sealer, identity)
    }

    /// Wires given parts (tests use an in-memory store).
    pub fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        sealer: Arc<dyn KeySealer>,
        attestation_identity: Option<String>,
    ) -> Result<Self, StateError> {
        let origin =
            Url::parse(config.origin.as_str()).map_err(|e| StateError::Webauthn(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(&config.rp_id, &origin)
            .and_then(|b| b.rp_name("OpenKey").build())
            .map_err(|e| StateError::Webauthn(e.to_string()))?;
        let mut csrf_key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(csrf_key.as_mut_slice());
        Ok(AppState {
            keys: Keys::new(store.clone(), sealer),
            config: Arc::new(config),
            store,
            webauthn: Arc::new(webauthn),
            csrf_key: Arc::new(csrf_key),
            limits: Arc::new(Limits::new()),
            attestation_identity,
        })
    }
}

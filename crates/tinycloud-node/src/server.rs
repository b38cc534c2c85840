//! Starting and stopping a node.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Authorizer;
use crate::config::{Config, SqlHosting};
use crate::keys::NodeKeys;
use crate::ratelimit::RateLimiter;
use crate::sql::hosting::{Hosting, Shipper};
use crate::state::{now, AppState, SharedState};
use crate::store::fs_blobs::FsBlobStore;
use crate::store::sqlite::SqliteIndex;
use crate::store::{BlobStore, IndexStore};

/// Opens storage and keys and builds the shared state.
pub async fn build_state(config: Config) -> anyhow::Result<SharedState> {
    let datadir = config.storage.datadir.clone();
    std::fs::create_dir_all(&datadir)
        .with_context(|| format!("cannot create data directory {}", datadir.display()))?;
    let keys = match &config.keys.secret {
        Some(s) => NodeKeys::from_encoded(s)?,
        None => NodeKeys::load_or_generate(&datadir)?,
    };
    let sqlite = Arc::new(SqliteIndex::open(&datadir.join("index.db"))?);
    let index: Arc<dyn IndexStore> = sqlite.clone();
    let webhooks: Arc<dyn crate::store::WebhookStore> = sqlite.clone();
    let networks: Arc<dyn crate::store::EncryptionStore> = sqlite.clone();
    let sql_log: Arc<dyn crate::store::SqlLogStore> = sqlite;
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(&datadir.join("blobs"))?);
    let auth = Authorizer::new(index.clone(), config.invocation.max_lifetime_secs).await?;
    let spaces = index.spaces().await?.into_iter().collect();
    let cursor_key = keys.derive("tinycloud/kv/list-cursor");
    let ticket_key = keys.derive("tinycloud/hooks/tickets");
    let public_limiter = RateLimiter::new(
        config.public_spaces.rate_limit_per_minute,
        config.public_spaces.rate_limit_burst,
    );
    let limits = crate::sql::engine::SqlLimits {
        time: std::time::Duration::from_millis(config.sql.time_limit_ms),
        max_rows: config.sql.max_rows,
        max_response_bytes: config.sql.max_response_bytes,
        max_open: config.sql.max_open_databases.max(1),
        max_per_space: config.sql.max_databases_per_space,
        ..Default::default()
    };
    let (sql_root, hosting) = match config.sql.hosting {
        SqlHosting::Local => (datadir.join("sql"), Hosting::Local),
        SqlHosting::Shipped => (
            datadir.join("sql-cache"),
            Hosting::Shipped(Shipper::new(
                sql_log,
                blobs.clone(),
                tokio::runtime::Handle::current(),
                config.storage.inline_threshold,
                config.sql.checkpoint_bytes,
            )),
        ),
    };
    let dbs = crate::sql::engine::Databases::new(&sql_root, limits, hosting)
        .map_err(|e| anyhow::anyhow!("cannot open SQL storage: {e}"))?;
    let sql = crate::sql::SqlService::new(dbs, config.sql.workers);
    let webhook_settings = crate::webhooks::WebhookSettings {
        max_attempts: config.hooks.max_attempts.max(1),
        backoff: config
            .hooks
            .backoff_secs
            .iter()
            .map(|s| std::time::Duration::from_secs(*s))
            .collect(),
        timeout: std::time::Duration::from_secs(config.hooks.timeout_secs.max(1)),
        allow_private: config.hooks.allow_private_destinations,
        max_per_space: config.hooks.max_webhooks_per_space,
    };
    let webhook_key = keys.derive("tinycloud/hooks/webhook-secrets");
    let network_key = keys.derive("tinycloud/encryption/network-seal");
    Ok(Arc::new(AppState {
        config,
        keys,
        index,
        blobs,
        auth,
        spaces: RwLock::new(spaces),
        cursor_key,
        ticket_key,
        public_limiter,
        sql,
        webhooks,
        webhook_key,
        webhook_settings,
        networks,
        network_key,
    }))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Runs the node until `shutdown` resolves; in-flight requests are finished first.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listener, state) = bind(config).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, node = %state.keys.node_did(), "tinycloud node listening");
    // Machine-readable line for tools and tests that start the node on port 0.
    println!("listening on http://{local}");
    run(listener, state, shutdown).await
}

/// Opens storage and binds the listening socket.
pub async fn bind(config: Config) -> anyhow::Result<(TcpListener, SharedState)> {
    let addr = SocketAddr::new(config.address, config.port);
    let state = build_state(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok((listener, state))
}

/// Serves on a bound listener until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sweeper = {
        let index = state.index.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = index.sweep_nonces(now().as_millis()).await {
                    tracing::warn!(error = %e, "replay sweep failed");
                }
            }
        })
    };
    let dispatcher = tokio::spawn(crate::webhooks::dispatch(state.clone()));
    let app = crate::routes::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    sweeper.abort();
    dispatcher.abort();
    Ok(())
}

/// A node running inside this process (for embedding and tests).
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.handle).await?
    }
}

/// Starts a node in this process on the configured address (port 0 picks a free one).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let (listener, state) = bind(config).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        stop: Some(tx),
        handle,
    })
}

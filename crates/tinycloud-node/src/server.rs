//! Starting and stopping a node.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::ratelimit::RateLimiter;
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
    let index: Arc<dyn IndexStore> = Arc::new(SqliteIndex::open(&datadir.join("index.db"))?);
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(&datadir.join("blobs"))?);
    let auth = Authorizer::new(index.clone(), config.invocation.max_lifetime_secs).await?;
    let spaces = index.spaces().await?.into_iter().collect();
    let cursor_key = keys.derive("tinycloud/kv/list-cursor");
    let public_limiter = RateLimiter::new(
        config.public_spaces.rate_limit_per_minute,
        config.public_spaces.rate_limit_burst,
    );
    Ok(Arc::new(AppState {
        config,
        keys,
        index,
        blobs,
        auth,
        spaces: RwLock::new(spaces),
        cursor_key,
        public_limiter,
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
    let addr = SocketAddr::new(config.address, config.port);
    let state = build_state(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, node = %state.keys.node_did(), "tinycloud node listening");
    // Machine-readable line for tools and tests that start the node on port 0.
    println!("listening on http://{local}");

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
    let app = crate::routes::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    sweeper.abort();
    Ok(())
}

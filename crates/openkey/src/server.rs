//! Starting the server: bind (port 0 = any free port), resolve the configuration against the
//! bound port, build the state, print `listening on http://ADDR:PORT` as the first stdout line,
//! serve until Ctrl-C / SIGTERM.

use std::io::Write;

use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, ServeArgs};
use crate::state::{AppState, StateError};

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The services could not start.
    #[error(transparent)]
    State(#[from] StateError),
}

async fn shutdown() {
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
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Runs `openkey serve`.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let listener = TcpListener::bind((args.bind.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    let config = Config::resolve(&args, addr.port())?;
    tracing::info!(origin = %config.origin, rp_id = %config.rp_id, sealer = ?config.sealer, "starting");
    let state = AppState::build(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    axum::serve(listener, crate::app::router(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

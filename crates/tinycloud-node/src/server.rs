//! Starting and stopping a node.

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Authorizer;
use crate::clock::now;
use crate::config::{Config, SqlHosting};
use crate::keys::NodeKeys;
use crate::ratelimit::{ConnectionCaps, RateLimiter};
use crate::sql::hosting::{Hosting, Shipper};
use crate::state::{AppState, SharedState};
use crate::store::fs_blobs::FsBlobStore;
use crate::store::sqlite::SqliteIndex;
use crate::store::{BlobStore, IndexStore};

/// Expired delegations deleted per transaction by the periodic sweep.
const DELEGATION_SWEEP_BATCH: usize = 500;
/// Transactions per sweep (the rest waits for the next tick).
const DELEGATION_SWEEP_BATCHES: usize = 20;

/// Expired signed URL tickets deleted per sweep tick.
const SIGNED_TICKET_SWEEP_BATCH: usize = 10_000;

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
    let quotas: Arc<dyn crate::store::quota::QuotaStore> = sqlite.clone();
    let tickets: Arc<dyn crate::store::TicketStore> = sqlite.clone();
    let sql_log: Arc<dyn crate::store::SqlLogStore> = sqlite;
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(&datadir.join("blobs"))?);
    let blob_gc = Arc::new(crate::store::blob_gc::BlobCollector::new(
        index.clone(),
        blobs.clone(),
    ));
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
    let quota_overrides = quotas.quota_overrides().await?.into_iter().collect();
    let signed_key = keys.derive("tinycloud/kv/signed-urls");
    Ok(Arc::new(AppState {
        config,
        keys,
        index,
        blobs,
        blob_gc,
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
        quotas,
        quota_overrides: RwLock::new(quota_overrides),
        quota_admin: tokio::sync::Mutex::new(()),
        tickets,
        signed_key,
        quota_locks: crate::state::QuotaLocks::default(),
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
    let metrics = start_metrics(&state).await?;
    if let Some((addr, _)) = &metrics {
        tracing::info!(address = %addr, "metrics listening");
        // Printed before the API line, so a reader that waits for that has seen this too.
        println!("metrics on http://{addr}/metrics");
    }
    tracing::info!(address = %local, node = %state.keys.node_did(), "tinycloud node listening");
    // Machine-readable line for tools and tests that start the node on port 0.
    println!("listening on http://{local}");
    let result = run(listener, state, shutdown).await;
    if let Some((_, task)) = metrics {
        task.abort();
    }
    result
}

/// With `telemetry.enabled`: installs the recorder, binds the metrics listener and serves it.
async fn start_metrics(
    state: &SharedState,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    if !state.config.telemetry.enabled {
        return Ok(None);
    }
    let listener = crate::telemetry::bind(&state.config).await?;
    let addr = listener.local_addr()?;
    let Some(handle) = crate::telemetry::install() else {
        return Ok(None);
    };
    Ok(Some((
        addr,
        tokio::spawn(crate::telemetry::serve(listener, handle)),
    )))
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
        let tickets = state.tickets.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = index.sweep_nonces(now().as_millis()).await {
                    tracing::warn!(error = %e, "replay sweep failed");
                }
                // Expired signed URL tickets (minting also reclaims its own space's).
                if let Err(e) = tickets
                    .sweep_signed_tickets(now().as_millis(), SIGNED_TICKET_SWEEP_BATCH)
                    .await
                {
                    tracing::warn!(error = %e, "signed URL ticket sweep failed");
                }
            }
        })
    };
    let reclaimer = {
        let state = state.clone();
        tokio::spawn(async move {
            let storage = &state.config.storage;
            let every = Duration::from_secs(storage.delegation_sweep_secs.max(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let grace = storage.delegation_sweep_grace_secs;
                match state
                    .auth
                    .sweep_expired(
                        now(),
                        grace,
                        DELEGATION_SWEEP_BATCH,
                        DELEGATION_SWEEP_BATCHES,
                    )
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(swept = n, "expired delegations reclaimed"),
                    Err(e) => tracing::warn!(error = %e, "delegation sweep failed"),
                }
            }
        })
    };
    let dispatcher = tokio::spawn(crate::delivery::dispatch(state.clone()));
    // Blobs older than this process that nothing refers to were left by a crash.
    let collector = tokio::spawn(state.blob_gc.clone().run(std::time::SystemTime::now()));
    let result = serve_connections(listener, state, shutdown).await;
    sweeper.abort();
    reclaimer.abort();
    dispatcher.abort();
    collector.abort();
    result
}

/// The accept loop: connection caps, hyper's header-read timeout, an idle timeout on the
/// socket, a per-frame body-read timeout; on shutdown, in-flight requests finish first.
async fn serve_connections(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let cfg = state.config.server.clone();
    let caps = ConnectionCaps::new(cfg.max_connections, cfg.max_connections_per_ip);
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs));
    let app = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(cfg.body_read_timeout_secs),
        ))
        .service(crate::routes::router(state));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match caps.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(cap) => {
                tracing::debug!(peer = %peer.ip(), ?cap, "connection refused: cap reached");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: axum::http::Request<_>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(IdleTimeout::new(stream, idle)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Closes a connection on which no byte moved for `timeout` while it waited to read or write.
struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    last: tokio::time::Instant,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        let now = tokio::time::Instant::now();
        IdleTimeout {
            inner,
            timeout,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    /// Pending unless the connection has been idle for the whole timeout. The timer is moved
    /// forward lazily, so busy connections never touch it.
    fn poll_idle(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            let deadline = self.last + self.timeout;
            if deadline <= tokio::time::Instant::now() {
                return std::task::Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection idle",
                ));
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = tokio::time::Instant::now();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_write(cx, data) {
            std::task::Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = tokio::time::Instant::now();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_flush(cx) {
            std::task::Poll::Pending => this.poll_idle(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A node running inside this process (for embedding and tests).
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where metrics are served (`telemetry.enabled`).
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<tokio::task::JoinHandle<()>>,
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
        let result = (&mut self.handle).await?;
        if let Some(m) = self.metrics.take() {
            m.abort();
        }
        result
    }
}

/// Starts a node in this process on the configured address (port 0 picks a free one).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let (listener, state) = bind(config).await?;
    let addr = listener.local_addr()?;
    let metrics = start_metrics(&state).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run(listener, state, async move {
        let _ = rx.await;
    }));
    let (metrics_addr, metrics) = metrics.map_or((None, None), |(a, t)| (Some(a), Some(t)));
    Ok(Running {
        addr,
        metrics_addr,
        metrics,
        stop: Some(tx),
        handle,
    })
}

/// What [`raise_open_files_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit now in force (`None`: unlimited).
    pub soft: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
    /// Whether the soft limit was raised.
    pub raised: bool,
}

/// Raises this process's soft limit of open file descriptors (`RLIMIT_NOFILE`) to its hard
/// limit, so connections, SQL databases and blobs are bounded by the node's own caps
/// (`server.max_connections`, `sql.max_open_databases`) rather than a low inherited default.
/// Called once by the binary at start-up; embedders decide for their own process. An unlimited
/// hard limit is left alone (the kernel caps the soft limit lower), as is a refused change.
#[cfg(unix)]
pub fn raise_open_files_limit() -> std::io::Result<OpenFilesLimit> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let (soft, hard) = (now.current, now.maximum);
    let raise = match (soft, hard) {
        (Some(s), Some(h)) => s < h,
        _ => false,
    };
    if !raise {
        return Ok(OpenFilesLimit {
            soft,
            hard,
            raised: false,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )?;
    let after = getrlimit(Resource::Nofile);
    Ok(OpenFilesLimit {
        soft: after.current,
        hard: after.maximum,
        raised: after.current != soft,
    })
}

/// Elsewhere there is nothing to raise.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> std::io::Result<OpenFilesLimit> {
    Ok(OpenFilesLimit {
        soft: None,
        hard: None,
        raised: false,
    })
}

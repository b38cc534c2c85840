//! Prometheus metrics. Instrumentation goes through the `metrics` facade (a no-op until a
//! recorder is installed, so a node with `telemetry.enabled = false` pays nothing); with
//! telemetry on, [`install`] sets the Prometheus recorder once per process and [`serve`]
//! answers `GET /metrics` on a listener of its own, never on the API port.
//!
//! Every label takes its value from a bounded set: routes are the matched route *template*
//! (`/public/{space}/kv/{*key}`, or `unmatched`), methods the standard ones (else `other`),
//! statuses three-digit codes, authorization failures the stable codes below. Nothing a client
//! sends becomes a label value, so no request can create a new series.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Requests answered, by `method`, `route` and `status`.
pub const HTTP_REQUESTS: &str = "tinycloud_http_requests_total";
/// Time to the response head, by `method`, `route` and `status` (for a stream: until it starts).
pub const HTTP_DURATION: &str = "tinycloud_http_request_duration_seconds";
/// Requests refused for want of authority, by `reason`.
pub const AUTH_FAILURES: &str = "tinycloud_auth_failures_total";
/// Durable commits of the index store's writer (one per group-committed batch).
pub const STORE_COMMIT: &str = "tinycloud_store_commit_duration_seconds";
/// Server-Sent Event streams open now.
pub const SSE_STREAMS: &str = "tinycloud_sse_streams_open";
/// Write events the webhook dispatcher has still to hand to active webhooks.
pub const WEBHOOK_QUEUE: &str = "tinycloud_webhook_queue_depth";

/// Latency buckets (seconds) of every `_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Connections served at once by the metrics listener; further ones are closed on accept.
const MAX_METRICS_CONNECTIONS: usize = 32;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls return the same
/// handle). `None` when another recorder was installed first (an embedding application's).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder is already installed; /metrics stays empty");
                return None;
            }
            describe();
            Some(handle)
        })
        .clone()
}

/// Whether metrics are being recorded in this process.
pub fn enabled() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to the response head, by method, route template and status"
    );
    metrics::describe_counter!(
        AUTH_FAILURES,
        "Requests refused for want of authority, by reason"
    );
    metrics::describe_histogram!(
        STORE_COMMIT,
        metrics::Unit::Seconds,
        "Durable commits of the index store (one per group-committed batch)"
    );
    metrics::describe_gauge!(SSE_STREAMS, "Server-Sent Event streams open");
    metrics::describe_gauge!(
        WEBHOOK_QUEUE,
        "Write events the webhook dispatcher has still to hand to active webhooks"
    );
}

/// The reasons an authorization failure is counted under (the `reason` label). Chain
/// failures use the protocol core's stable codes (`ChainError::code`, a fixed set).
pub mod reason {
    /// No `Authorization` header.
    pub const MISSING: &str = "missing-authorization";
    /// A token that does not decode.
    pub const MALFORMED: &str = "malformed-token";
    /// A signature or statement that does not verify.
    pub const UNVERIFIED: &str = "unverified-token";
    /// A single-use invocation presented again.
    pub const REPLAY: &str = "replay";
    /// A caveat the service does not enforce.
    pub const UNENFORCED: &str = "unenforced-caveat";
    /// A valid invocation that does not name what the request does.
    pub const UNAUTHORIZED_ACTION: &str = "unauthorized-action";
    /// A hook ticket that is forged, expired or used.
    pub const TICKET: &str = "invalid-ticket";
    /// A standing subscription whose delegations lapsed.
    pub const LAPSED: &str = "authority-lapsed";
    /// A wrong or missing admin bearer.
    pub const ADMIN: &str = "admin-bearer";
}

/// Counts a refused request under `reason` (one of [`reason`] or a `ChainError::code`).
pub fn auth_failure(reason: &'static str) {
    metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Records the duration of one durable store commit.
pub fn store_commit(took: Duration) {
    metrics::histogram!(STORE_COMMIT).record(took.as_secs_f64());
}

/// Sets the webhook queue depth.
pub fn webhook_queue_depth(events: u64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(WEBHOOK_QUEUE).set(events as f64);
}

/// Counts one open SSE stream for as long as it lives.
struct StreamOpen;

impl StreamOpen {
    fn new() -> Self {
        metrics::gauge!(SSE_STREAMS).increment(1.0);
        StreamOpen
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        metrics::gauge!(SSE_STREAMS).decrement(1.0);
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Router middleware: counts and times every request under its route template, and counts an
/// event stream as open until its body is dropped.
pub async fn track(req: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(req).await;
    }
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(start.elapsed().as_secs_f64());
    let is_stream = response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let open = StreamOpen::new();
    let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _open = &open;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// Binds the metrics listener of `config` (address defaults to the API's).
pub async fn bind(config: &crate::config::Config) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    let t = &config.telemetry;
    let addr = std::net::SocketAddr::new(t.address.unwrap_or(config.address), t.port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `GET /metrics` on `listener` until dropped (the task is aborted at shutdown), and
/// keeps the recorder's histograms drained while nobody scrapes.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let _upkeep = AbortOnDrop(upkeep);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let handle = handle.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let answer = respond(&handle, req.method(), req.uri().path());
            async move { Ok::<_, Infallible>(answer) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
            drop(permit);
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn respond(
    handle: &PrometheusHandle,
    method: &Method,
    path: &str,
) -> hyper::Response<http_body_util::Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "only /metrics is served here".to_owned(),
        ),
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

//! HTTP routes, mirroring the protocol's surface: discovery (`/info`, `/version`, `/healthz`,
//! `/peer/generate`), delegation (`/delegate`, `/revoke`, `/delegation/status`), the data plane
//! (`/invoke`) and public reads (`/public/...`).

mod delegation;
mod encryption;
mod hooks;
mod invoke;
mod kv;
mod public;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::resource::{Resource, SpaceId, SpaceResource};

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// The protocol version spoken.
pub const PROTOCOL_VERSION: u32 = 1;

/// Builds the router.
pub fn router(state: SharedState) -> Router {
    let cors = state.config.cors;
    let r = Router::new()
        .route("/healthz", get(healthz))
        .route("/info", get(info))
        .route("/version", get(info))
        .route("/peer/generate/{space}", get(peer_generate))
        .route("/delegate", post(delegation::delegate))
        .route("/revoke", post(delegation::revoke))
        .route("/delegation/status", post(delegation::status))
        // The data plane streams bodies under its own caps (KV: `limits.max_value_bytes`).
        .route(
            "/invoke",
            post(invoke::invoke).layer(DefaultBodyLimit::disable()),
        )
        .route("/encryption/networks", post(encryption::create))
        .route("/encryption/networks/{id}", get(encryption::get))
        .route(
            "/encryption/networks/{id}/decrypt",
            post(encryption::decrypt),
        )
        .route("/encryption/networks/{id}/revoke", post(encryption::revoke))
        .route("/encryption/networks/{id}/audit", get(encryption::audit))
        .route(
            "/.well-known/encryption/network/{name}",
            get(encryption::well_known),
        )
        .route("/hooks/tickets", post(hooks::tickets))
        .route("/hooks/events", get(hooks::events))
        .route("/hooks/webhooks", post(hooks::register).get(hooks::list))
        .route(
            "/hooks/webhooks/{id}",
            axum::routing::delete(hooks::unregister),
        )
        .route("/hooks/webhooks/{id}/deliveries", get(hooks::deliveries))
        .route("/public/{space}/kv", get(public::list))
        .route(
            "/public/{space}/kv/{*key}",
            get(public::get).head(public::get),
        )
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // Every other route reads small JSON bodies (and caps them itself as well).
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state);
    if cors {
        r.layer(cors_layer())
    } else {
        r
    }
}

/// Permissive CORS for browser clients: any origin (mirrored, so credentials work), the
/// protocol's methods, any request header, and the response headers clients read.
fn cors_layer() -> tower_http::cors::CorsLayer {
    use axum::http::header::{
        CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH,
        CONTENT_TYPE, ETAG, LAST_MODIFIED,
    };
    use axum::http::HeaderName;
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
        .expose_headers([
            ETAG,
            CONTENT_TYPE,
            CONTENT_LENGTH,
            CONTENT_ENCODING,
            CONTENT_LANGUAGE,
            CONTENT_DISPOSITION,
            CACHE_CONTROL,
            LAST_MODIFIED,
            HeaderName::from_static("x-tinycloud-truncated"),
            HeaderName::from_static("x-tinycloud-next-cursor"),
            HeaderName::from_static("x-tinycloud-content-length"),
        ])
}

async fn fallback(method: Method) -> Response {
    if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        ApiError::not_found("no such route").into_response()
    }
}

/// `OPTIONS` on any route answers 200 (browser clients probe it); other methods get 405.
async fn method_not_allowed(method: Method) -> Response {
    if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response()
    }
}

async fn healthz(State(state): State<SharedState>) -> StatusCode {
    match state.index.ping().await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

async fn info(State(state): State<SharedState>) -> Json<serde_json::Value> {
    Json(json!({
        "protocol": PROTOCOL_VERSION,
        "version": env!("CARGO_PKG_VERSION"),
        "features": ["kv", "delegation", "sql", "hooks", "encryption"],
        "nodeId": state.keys.node_did().to_string(),
        "inTEE": false,
    }))
}

async fn peer_generate(
    State(state): State<SharedState>,
    Path(space): Path<String>,
) -> ApiResult<Response> {
    let space: SpaceId = space
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Invalid space ID: {e}")))?;
    let did = state.keys.host_key(&space.to_string()).did();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        did.to_string(),
    )
        .into_response())
}

/// The `<space>/<service>/…` resource of a capability dispatched to `service`'s handler; 400
/// when it names another service or is not a space resource.
pub(crate) fn service_resource<'a>(
    cap: &'a Capability,
    service: &str,
) -> ApiResult<&'a SpaceResource> {
    if let Some(r) = cap.service_resource() {
        return Ok(r);
    }
    match &cap.resource {
        Resource::Space(r) => Err(ApiError::bad_request(format!(
            "{} applies to the {service} service, not {}",
            cap.ability,
            r.service()
        ))),
        _ => Err(ApiError::bad_request(format!(
            "{} applies to <space>/{service} resources",
            cap.ability
        ))),
    }
}

/// The `Authorization` header value, or 401.
fn authorization(headers: &HeaderMap, max: usize) -> ApiResult<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    if value.len() > max {
        return Err(ApiError::bad_request(format!(
            "Authorization header larger than {max} bytes"
        )));
    }
    value
        .to_str()
        .map_err(|_| ApiError::bad_request("Authorization header is not ASCII"))
}

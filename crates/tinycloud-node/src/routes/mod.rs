//! HTTP routes, mirroring the protocol's surface: discovery (`/info`, `/version`, `/healthz`,
//! `/peer/generate`), delegation (`/delegate`, `/revoke`, `/delegation/status`), the data plane
//! (`/invoke`) and public reads (`/public/...`).

mod admin;
mod authorized;
mod delegation;
mod encryption;
mod hooks;
mod invoke;
mod kv;
mod node_keys;
mod openapi;
mod public;
mod signed;
mod sql;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::{Json, Router};
use bytes::Bytes;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::resource::{Resource, SpaceId, SpaceResource};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// The protocol version spoken.
pub const PROTOCOL_VERSION: u32 = 1;

/// Builds the router. Every route goes through `routes!`, so it carries its OpenAPI description.
pub fn router(state: SharedState) -> Router {
    let cors = state.config.cors;
    let whole_body = std::time::Duration::from_secs(state.config.server.body_read_timeout_secs);
    let (r, doc) = api_router(whole_body).split_for_parts();
    // Serialized once: the document is fixed for the life of the process.
    let doc = Bytes::from(serde_json::to_vec(&openapi::finish(doc)).unwrap_or_default());
    let r = r
        .layer(Extension(OpenApiBytes(doc)))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // Per route template (the layer runs after routing, so `MatchedPath` is known).
        .layer(axum::middleware::from_fn(crate::telemetry::track))
        // Every other route reads small JSON bodies (and caps them itself as well).
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state);
    if cors {
        r.layer(cors_layer())
    } else {
        r
    }
}

/// The routes with their descriptions (the `/openapi.json` route documents itself).
/// `whole_body`: the deadline of a whole request on the routes with small bodies (a body
/// dribbled just under the per-frame timeout must not hold a connection for days).
fn api_router(whole_body: std::time::Duration) -> OpenApiRouter<SharedState> {
    let public = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(info))
        .routes(routes!(version))
        .routes(routes!(openapi_json))
        .routes(routes!(peer_generate))
        .routes(routes!(encryption::get))
        .routes(routes!(encryption::well_known))
        .routes(routes!(hooks::events))
        .routes(routes!(public::list))
        .routes(routes!(public::get))
        .routes(routes!(node_keys::node_keys))
        .routes(routes!(signed::read));
    // The operator API checks its own bearer (503 when it is off, before anything else).
    let admin = OpenApiRouter::new()
        .routes(routes!(
            admin::put_quota,
            admin::get_quota,
            admin::delete_quota
        ))
        .routes(routes!(admin::list_quotas))
        .routes(routes!(admin::usage_page))
        .route_layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            whole_body,
        ));
    // Routes that act on authority: a request without `Authorization` is refused before its
    // path, query or body is looked at.
    let authenticated = OpenApiRouter::new()
        .routes(routes!(delegation::delegate))
        .routes(routes!(delegation::revoke))
        .routes(routes!(delegation::status))
        .routes(routes!(delegation::query))
        .routes(routes!(encryption::create))
        .routes(routes!(encryption::decrypt))
        .routes(routes!(encryption::revoke))
        .routes(routes!(encryption::audit))
        .routes(routes!(hooks::tickets))
        .routes(routes!(hooks::register, hooks::list))
        .routes(routes!(hooks::unregister))
        .routes(routes!(hooks::deliveries))
        .routes(routes!(signed::mint))
        .route_layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            whole_body,
        ))
        // The data plane streams bodies under its own caps (KV: `limits.max_value_bytes`).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(invoke::invoke))
                .route_layer(DefaultBodyLimit::disable()),
        )
        .route_layer(axum::middleware::from_fn(require_authorization));
    public.merge(admin).merge(authenticated)
}

/// 401 for a request to an authenticated route that carries no `Authorization` header.
async fn require_authorization(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != Method::OPTIONS
        && !req
            .headers()
            .contains_key(axum::http::header::AUTHORIZATION)
    {
        return ApiError::unauthorized_because(
            crate::telemetry::reason::MISSING,
            "missing Authorization header",
        )
        .into_response();
    }
    next.run(req).await
}

/// The node's OpenAPI document (what `GET /openapi.json` serves).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api_router(std::time::Duration::from_secs(60)).into_openapi())
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
            axum::http::header::ACCEPT_RANGES,
            axum::http::header::CONTENT_RANGE,
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

/// The serialized OpenAPI document.
#[derive(Clone)]
struct OpenApiBytes(Bytes);

#[utoipa::path(
    get, path = "/openapi.json", tag = "discovery",
    summary = "This API's OpenAPI 3.1 document",
    description = "The description of every route of this node, generated from the code that serves them.",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
async fn openapi_json(Extension(doc): Extension<OpenApiBytes>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0,
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/healthz", tag = "discovery",
    summary = "Liveness and storage health",
    description = "200 when the index store answers; 500 otherwise (details are logged, not returned).",
    responses(
        (status = 200, description = "Healthy"),
        (status = 500, description = "The index store does not answer"),
    )
)]
async fn healthz(State(state): State<SharedState>) -> StatusCode {
    match state.index.ping().await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[utoipa::path(
    get, path = "/info", tag = "discovery",
    summary = "Node identity and protocol",
    description = "The protocol version, implementation version, features and the node's DID.",
    responses(
        (status = 200, description = "Node information", body = openapi::Info),
    )
)]
async fn info(State(state): State<SharedState>) -> Json<openapi::Info> {
    Json(openapi::Info {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION"),
        // What this node serves, in the reference's names: `sharing` is delegation to a fresh
        // key and invocation under it (served by /delegate and /invoke).
        features: &[
            "kv",
            "delegation",
            "sharing",
            "sql",
            "hooks",
            "signed-urls",
            "encryption",
        ],
        node_id: state.keys.node_did().to_string(),
        in_tee: false,
        quota_url: state.config.quota_url.clone(),
    })
}

#[utoipa::path(
    get, path = "/version", tag = "discovery",
    summary = "Node identity and protocol (alias of /info)",
    description = "The same answer as `GET /info`; reference clients read either.",
    responses(
        (status = 200, description = "Node information", body = openapi::Info),
    )
)]
async fn version(state: State<SharedState>) -> Json<openapi::Info> {
    info(state).await
}

#[utoipa::path(
    get, path = "/peer/generate/{space}", tag = "discovery",
    summary = "The node's host key for a space",
    description = "The `did:key` this node uses as host of `space`; owners delegate `tinycloud.space/host` to it to create the space.",
    params(("space" = String, Path, description = "Space id `tinycloud:<did suffix>:<name>`")),
    responses(
        (status = 200, description = "The host DID", body = String, content_type = "text/plain"),
        (status = 400, description = "Not a space id", body = String, content_type = "text/plain"),
    )
)]
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

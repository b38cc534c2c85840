//! The OpenID Connect provider: discovery (`/.well-known/openid-configuration`), JWKS
//! (`/oidc/jwks`), the authorization code flow with PKCE and a consent screen
//! (`/oidc/authorize`), the token endpoint (`/oidc/token`: code exchange and refresh-token
//! rotation) and userinfo (`/oidc/userinfo`). Clients are registered by an admin command
//! (`openkey clients add|list|remove`, [`clients`]); there is no dynamic registration.
//!
//! Rules enforced: exact redirect-URI match (a bad `client_id` or `redirect_uri` shows an error
//! page, never a redirect); `scope` must contain `openid`; PKCE `S256` required for public
//! clients and checked for confidential ones that send it (`plain` refused); codes live 60 s,
//! are single use and bound to client, redirect URI and PKCE verifier; a replayed code revokes
//! every token issued from it (RFC 6749 §4.1.2); refresh tokens rotate on every use and a
//! replayed rotated token revokes the whole family; confidential clients authenticate with
//! `client_secret_basic` or `client_secret_post` (secrets stored as SHA-256, compared in
//! constant time), public clients with `none`.
//!
//! The ID token (ES256) carries `iss`, `sub` (the stable user id), `aud`, `exp`, `iat`,
//! `auth_time`, `nonce` (when sent), `did` (the user's owner key as
//! `did:pkh:eip155:1:0x…`) and, with scope `email`, `email`.

pub mod authorize;
pub mod clients;
pub mod error;
pub mod signing;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::state::AppState;
use error::OAuthError;
use signing::SignerCell;

/// Authorization code lifetime.
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Access token (and ID token) lifetime.
pub const ACCESS_TTL_SECS: i64 = 600;
/// Refresh token lifetime (each rotation starts a new one).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Scopes this provider knows; others in a request are dropped.
pub const SCOPES: &[&str] = &["openid", "email"];

/// 32 random bytes, base64url (codes, tokens, secrets).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// SHA-256 of a code, token or secret (what the store keeps).
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Endpoint URLs under the issuer.
pub fn endpoint(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.issuer)
}

async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({
        "issuer": state.config.issuer,
        "authorization_endpoint": endpoint(&state, "/oidc/authorize"),
        "token_endpoint": endpoint(&state, "/oidc/token"),
        "userinfo_endpoint": endpoint(&state, "/oidc/userinfo"),
        "jwks_uri": endpoint(&state, "/oidc/jwks"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "did", "email"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

async fn jwks(
    State(state): State<AppState>,
    Extension(cell): Extension<SignerCell>,
) -> Result<Response, OAuthError> {
    let signer = signing::signer(&cell, &state).await?;
    let mut res = Json(serde_json::json!({ "keys": [signer.jwk()] })).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(res)
}

/// CORS for the machine endpoints (no cookies are read there, so any origin may call them —
/// browser apps exchange codes and read userinfo cross-origin).
async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut res = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    res
}

/// Machine endpoints (own authentication, no cookies, no CSRF guard).
pub fn public_routes() -> Router<AppState> {
    let cell: SignerCell = Arc::default();
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/token", axum::routing::post(token::token))
        .route(
            "/oidc/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .layer(Extension(cell))
        .layer(middleware::from_fn(cors))
}

/// The authorization endpoint and consent form (session cookie, behind the CSRF guard).
pub fn browser_routes() -> Router<AppState> {
    authorize::routes()
}

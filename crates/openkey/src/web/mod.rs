//! The web layer every HTTP feature builds on: cookies, sessions, CSRF, the `Authenticated` and
//! `FreshUv` extractors, page rendering, static assets, and the base routes (`/health`,
//! `/api/csrf`, `/static/*`). Features add their own routers; `app::router` composes them.

pub mod cookies;
pub mod csrf;
pub mod extract;
pub mod page;
pub mod session;

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::state::AppState;
pub use csrf::CsrfToken;
pub use extract::{Authenticated, FreshUv};
pub use page::{render, Chrome};

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let sealer = state.keys.sealer();
    Json(serde_json::json!({
        "status": "ok",
        "sealer": sealer.kind(),
        "hardware_backed": sealer.hardware_backed(),
    }))
}

async fn csrf_token(token: CsrfToken) -> impl IntoResponse {
    Json(serde_json::json!({ "token": token.0 }))
}

async fn script() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("../../static/openkey.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("../../static/openkey.css"),
    )
}

/// Base routes outside the CSRF guard (no state changes).
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/static/openkey.js", get(script))
        .route("/static/openkey.css", get(stylesheet))
}

/// Base routes behind the CSRF guard.
pub fn browser_routes() -> Router<AppState> {
    Router::new().route("/api/csrf", get(csrf_token))
}

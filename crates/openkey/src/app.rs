//! Router composition. Each feature module exposes `browser_routes()` (pages and JSON the
//! browser calls with the session cookie: put behind the CSRF guard) and optionally
//! `public_routes()` (machine endpoints authenticated otherwise, e.g. by client credentials, or
//! read-only public data: no CSRF guard). This function merges them, then adds security headers
//! and request logging (method, route, status, latency — never bodies or query strings).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::state::AppState;
use crate::{accounts, approve, oidc, sign, wallet, web};

async fn headers_and_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // A page may set its own (the OIDC consent form must allow posting towards the client).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        );
    }
    tracing::info!(
        %method,
        %route,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let browser = Router::new()
        .merge(web::browser_routes())
        .merge(accounts::browser_routes())
        .merge(wallet::browser_routes())
        .merge(sign::browser_routes())
        .merge(oidc::browser_routes())
        .merge(approve::browser_routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::csrf::guard,
        ));
    let public = Router::new()
        .merge(web::public_routes())
        .merge(wallet::public_routes())
        .merge(oidc::public_routes())
        .merge(approve::public_routes());
    Router::new()
        .merge(browser)
        .merge(public)
        .layer(middleware::from_fn(headers_and_log))
        .with_state(state)
}

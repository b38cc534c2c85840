//! Request extractors: [`Authenticated`] (a signed-in user) and [`FreshUv`] (a signed-in user
//! whom a passkey verified within the configured window, default 300 s).
//!
//! Rejections: `Authenticated` → 401 (JSON under `/api/`, a redirect to `/` for pages);
//! `FreshUv` → 401 `fresh_passkey_required` (JSON under `/api/`, a page with a passkey button
//! otherwise).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::csrf::CsrfToken;
use super::session;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::keys::UserVerified;
use crate::state::AppState;

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The user's id.
    pub user_id: String,
    /// SHA-256 of the session cookie (identifies the session).
    pub session_hash: Vec<u8>,
    /// How the session was opened (`passkey`, `email-code`, …).
    pub method: String,
    /// Last passkey user verification in this session (Unix ms).
    pub last_uv_at: Option<i64>,
}

impl Authenticated {
    /// The fresh-verification proof, or `FreshUvRequired`.
    pub fn fresh_uv(&self, state: &AppState) -> Result<UserVerified, AppError> {
        UserVerified::check(
            &self.user_id,
            self.last_uv_at,
            now_ms(),
            state.config.uv_window,
        )
        .ok_or(AppError::FreshUvRequired {
            window_secs: state.config.uv_window.as_secs(),
        })
    }
}

/// Why an extractor refused.
#[derive(Debug)]
pub struct Rejection {
    error: AppError,
    page: bool,
    csrf: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        if !self.page {
            return self.error.into_response();
        }
        match self.error {
            AppError::Unauthorized(_) => Redirect::to("/").into_response(),
            AppError::FreshUvRequired { window_secs } => {
                super::page::reverify_page(window_secs, self.csrf)
            }
            other => other.into_response(),
        }
    }
}

fn is_page(parts: &Parts) -> bool {
    !parts.uri.path().starts_with("/api/")
}

fn csrf_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Rejection> {
        let page = is_page(parts);
        let found = session::current(state, &parts.headers).map_err(|error| Rejection {
            error,
            page,
            csrf: csrf_of(parts),
        })?;
        let s = found.ok_or_else(|| Rejection {
            error: AppError::Unauthorized("sign in first".into()),
            page,
            csrf: csrf_of(parts),
        })?;
        Ok(Authenticated {
            user_id: s.user_id,
            session_hash: s.id_hash,
            method: s.method,
            last_uv_at: s.last_uv_at,
        })
    }
}

/// A signed-in user whom a passkey verified within the window.
#[derive(Clone, Debug)]
pub struct FreshUv {
    /// The session.
    pub auth: Authenticated,
    /// The proof signing and export take.
    pub uv: UserVerified,
}

impl FromRequestParts<AppState> for FreshUv {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Rejection> {
        let auth = Authenticated::from_request_parts(parts, state).await?;
        let uv = auth.fresh_uv(state).map_err(|error| Rejection {
            error,
            page: is_page(parts),
            csrf: csrf_of(parts),
        })?;
        Ok(FreshUv { auth, uv })
    }
}

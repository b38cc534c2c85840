//! Sign-in sessions: a random 32-byte secret in the cookie, its SHA-256 in the store. Opening
//! one (after a passkey, email code or recovery code), looking it up, ending it.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::cookies;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::Session;

/// How a session was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Account created with a passkey.
    Signup,
    /// Passkey assertion (user verified).
    Passkey,
    /// Email one-time code (no user verification).
    EmailCode,
    /// Recovery code (no user verification).
    RecoveryCode,
}

impl Method {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Signup => "signup",
            Method::Passkey => "passkey",
            Method::EmailCode => "email-code",
            Method::RecoveryCode => "recovery-code",
        }
    }
}

/// SHA-256 of a cookie secret.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Opens a session for `user_id`; `user_verified` records a passkey verification now.
/// Returns the `Set-Cookie` header to send.
pub fn open(
    state: &AppState,
    user_id: &str,
    method: Method,
    user_verified: bool,
) -> Result<HeaderValue, AppError> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let now = now_ms();
    let ttl = state.config.session_ttl;
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    state.store.create_session(&Session {
        id_hash: digest(&secret),
        user_id: user_id.to_string(),
        method: method.as_str().to_string(),
        created_at: now,
        expires_at: now.saturating_add(ttl_ms),
        last_uv_at: user_verified.then_some(now),
    })?;
    Ok(cookies::set(
        cookies::SESSION,
        &secret,
        i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        state.config.secure_cookies(),
    ))
}

/// The live session named by the request's cookie.
pub fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
    let Some(secret) = cookies::get(headers, cookies::SESSION) else {
        return Ok(None);
    };
    Ok(state.store.session(&digest(&secret), now_ms())?)
}

/// Ends the request's session (if any); returns the cookie-clearing header.
pub fn close(state: &AppState, headers: &HeaderMap) -> Result<HeaderValue, AppError> {
    if let Some(secret) = cookies::get(headers, cookies::SESSION) {
        state.store.delete_session(&digest(&secret))?;
    }
    Ok(clear(state))
}

/// A header clearing the session cookie.
pub fn clear(state: &AppState) -> HeaderValue {
    cookies::set(cookies::SESSION, "", 0, state.config.secure_cookies())
}

/// Adds a `Set-Cookie` to a header map.
pub fn append_cookie(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(header::SET_COOKIE, value);
}

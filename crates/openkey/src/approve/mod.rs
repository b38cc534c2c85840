//! Approval with narrowing: an app sends the SIWE + ReCap message it wants signed, the person
//! reads the protocol core's plain-language text with risk notes, removes capabilities or
//! shortens the expiry, confirms with a passkey, and OpenKey signs exactly the message shown
//! with the owner key. The app gets the result over a back channel: a one-time code on its
//! registered (or loopback) return URL, exchanged at `POST /api/approve/exchange`, or — for a
//! machine without a browser — the device-code flow (RFC 8628 style).
//!
//! - [`narrow`] — the domain: reading a request, risk notes, rebuilding a narrowed message.
//! - [`api`] — machine endpoints (no cookies, no CSRF): create, exchange, device, device token.
//! - [`pages`] — the approval, review and device-code pages (session + CSRF).
//! - [`apps`] — the registered-app list and `openkey apps …`.

pub mod api;
pub mod apps;
pub mod narrow;
pub mod pages;

use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// How long a request waits for the person (ms).
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// How long a one-time exchange code lives (ms).
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Device flow: seconds between polls.
pub const DEVICE_INTERVAL_SECS: u64 = 2;
/// Largest SIWE message accepted (bytes).
pub const MAX_MESSAGE_LEN: usize = 100 * 1024;
/// Largest `state` accepted (bytes).
pub const MAX_STATE_LEN: usize = 512;
/// Letters of user codes (no vowels, no look-alikes).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Pages and form posts (behind the CSRF guard).
pub fn browser_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/approve/device",
            get(pages::device_page).post(pages::device_enter),
        )
        .route("/approve/{id}", get(pages::approve_page))
        .route("/approve/{id}/review", get(pages::review_page))
        .route("/approve/{id}/approve", post(pages::approve))
        .route("/approve/{id}/deny", post(pages::deny))
}

/// Machine endpoints (no cookies; no CSRF guard).
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/api/approve/requests", post(api::create))
        .route("/api/approve/exchange", post(api::exchange))
        .route("/api/approve/device", post(api::device))
        .route("/api/approve/device/token", post(api::device_token))
}

/// SHA-256.
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// 32 random bytes, base64url.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A user code `XXXX-XXXX` (20 letters: ~34 bits; entry is rate-limited).
pub(crate) fn user_code() -> String {
    let mut out = String::with_capacity(9);
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    for (i, x) in b.iter().enumerate() {
        if i == 4 {
            out.push('-');
        }
        // 256 = 12·20 + 16: reject the biased tail.
        let mut v = *x;
        while v >= 240 {
            let mut one = [0u8; 1];
            rand::rngs::OsRng.fill_bytes(&mut one);
            v = one[0];
        }
        out.push(char::from(USER_CODE_ALPHABET[usize::from(v % 20)]));
    }
    out
}

/// The user code as hashed: upper case, letters only.
pub(crate) fn normalize_user_code(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_codes_have_the_shape_and_normalize() {
        let c = super::user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
        assert_eq!(super::normalize_user_code(&c.to_lowercase()).len(), 8);
    }
}

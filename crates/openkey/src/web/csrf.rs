//! CSRF protection for every browser route that changes state. Signed double submit: the
//! `openkey_csrf` cookie holds a random secret; the token is HMAC-SHA256(server key, secret),
//! rendered into every form (`csrf` field) and the `<meta name="csrf-token">` tag for scripts
//! (sent as `X-CSRF-Token`). The middleware sets the cookie on first visit, and refuses a
//! POST/PUT/PATCH/DELETE whose token is missing or wrong (compared in constant time) or whose
//! `Origin` header names another origin, with 403.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::cookies;
use crate::error::AppError;
use crate::state::AppState;

/// Largest form body the middleware reads to find the token.
const MAX_FORM: usize = 256 * 1024;

/// Header scripts send the token in.
pub const HEADER: &str = "x-csrf-token";

/// The CSRF token of this request (the extractor pages use to render forms).
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

fn token_for(state: &AppState, secret: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(state.csrf_key.as_slice())
        .expect("HMAC takes any key length");
    mac.update(b"openkey/csrf/v1\n");
    mac.update(secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// The middleware (see the module doc).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let existing = cookies::get(req.headers(), cookies::CSRF);
    let (secret, fresh) = match existing {
        Some(s) if !s.is_empty() => (s, false),
        _ => {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                true,
            )
        }
    };
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = req;
    if unsafe_method {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            if origin.as_bytes() != state.config.origin_header().as_bytes() {
                return AppError::Forbidden("cross-origin request refused".into()).into_response();
            }
        }
        let mut sent = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if sent.is_none() && is_form {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
                return AppError::BadRequest("form too large".into()).into_response();
            };
            sent = form_token(&bytes);
            req = Request::from_parts(parts, Body::from(bytes));
        }
        let expected = token_for(&state, &secret);
        let ok =
            !fresh && sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
        if !ok {
            return AppError::Forbidden(
                "missing or wrong CSRF token: reload the page and try again".into(),
            )
            .into_response();
        }
    }
    req.extensions_mut()
        .insert(CsrfToken(token_for(&state, &secret)));
    let mut res = next.run(req).await;
    if fresh {
        let c = cookies::set(
            cookies::CSRF,
            &secret,
            400 * 24 * 3600,
            state.config.secure_cookies(),
        );
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .ok_or_else(|| AppError::Internal("route is not behind the CSRF guard".into()))
    }
}

//! Recovery codes: ten codes of 80 random bits (`XXXX-XXXX-XXXX-XXXX`, base32), shown once
//! when generated (which needs a fresh passkey check and replaces the old set), stored as
//! SHA-256, each usable once to open a session without user verification. Attempts are
//! rate-limited per address; comparison runs over all unused codes in constant time.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::normalize_email;
use crate::audit;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page::{message, render};
use crate::web::session::{self, Method};
use crate::web::{Chrome, CsrfToken, FreshUv};

const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const COUNT: usize = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/recovery-codes", post(generate))
        .route("/signin/recovery", post(signin))
}

fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn hash(code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"openkey/recovery-code/v1\n");
    h.update(normalize(code).as_bytes());
    h.finalize().into()
}

fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage {
    chrome: Chrome,
    codes: Vec<String>,
}

async fn generate(
    State(state): State<AppState>,
    fresh: FreshUv,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let codes: Vec<String> = (0..COUNT).map(|_| new_code()).collect();
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| hash(c)).collect();
    state
        .store
        .replace_recovery_codes(fresh.uv.user_id(), &hashes)?;
    audit::record(
        state.store.as_ref(),
        fresh.uv.user_id(),
        "recovery.generate",
        audit::DONE,
        None,
        serde_json::json!({ "count": COUNT }),
    )?;
    Ok(render(&CodesPage {
        chrome: Chrome::new("Your recovery codes", csrf.0, true),
        codes,
    }))
}

#[derive(Deserialize)]
struct SigninForm {
    email: String,
    code: String,
}

async fn signin(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Form(form): Form<SigninForm>,
) -> Result<Response, AppError> {
    let email = normalize_email(&form.email)?;
    if state
        .limits
        .signin
        .check_key(&format!("recovery:{email}"))
        .is_err()
    {
        return Err(AppError::TooManyRequests(
            "too many attempts: wait a minute".into(),
        ));
    }
    let refused = || {
        message(
            StatusCode::UNAUTHORIZED,
            Chrome::new("Not signed in", csrf.0.clone(), false),
            "Not signed in",
            "That recovery code is wrong or was used already.",
        )
    };
    let Some(user) = state.store.user_by_email(&email)? else {
        return Ok(refused());
    };
    let wanted = hash(&form.code);
    let mut found = None;
    for (id, h) in state.store.unused_recovery_codes(&user.id)? {
        if bool::from(h.as_slice().ct_eq(&wanted)) {
            found = Some(id);
        }
    }
    let Some(id) = found else {
        return Ok(refused());
    };
    if !state.store.use_recovery_code(id, now_ms())? {
        return Ok(refused());
    }
    audit::record(
        state.store.as_ref(),
        &user.id,
        "recovery.use",
        audit::DONE,
        None,
        serde_json::json!({}),
    )?;
    let cookie = session::open(&state, &user.id, Method::RecoveryCode, false)?;
    let mut res = Redirect::to("/account").into_response();
    session::append_cookie(res.headers_mut(), cookie);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_and_normalize() {
        let c = new_code();
        assert_eq!(c.len(), 19);
        assert_eq!(normalize(&c).len(), 16);
        assert_eq!(hash(&c), hash(&c.to_lowercase().replace('-', " ")));
        assert_ne!(hash(&c), hash(&new_code()));
    }
}

//! Email one-time codes: 6 digits, 5 minutes, sent only to existing accounts (the answer is the
//! same either way), written to `<data-dir>/outbox/` (development mail; never logged). Sending
//! is rate-limited per address; five wrong codes lock the address for 15 minutes (failures add
//! up across codes until a success or the lock ends). A code opens a session without user
//! verification: enough to add a passkey, not to sign.

use std::io::Write;

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
use crate::clock::{now_ms, rfc3339};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::EmailCode;
use crate::web::page::{message, render_status};
use crate::web::session::{self, Method};
use crate::web::{Chrome, CsrfToken};

/// Folder under the data dir where development mail goes.
pub const OUTBOX_DIR: &str = "outbox";
const CODE_MS: i64 = 5 * 60 * 1000;
const MAX_FAILURES: u32 = 5;
const LOCK_MS: i64 = 15 * 60 * 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin/email", post(send_code))
        .route("/signin/email/verify", post(verify_code))
}

fn code_hash(email: &str, code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"openkey/email-code/v1\n");
    h.update(email.as_bytes());
    h.update(b"\n");
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

fn write_outbox(state: &AppState, email: &str, code: &str) -> Result<(), AppError> {
    let dir = state.config.data_dir.join(OUTBOX_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.to_string()))?;
    let name = format!("{}-{}.eml", now_ms(), uuid::Uuid::new_v4());
    let body = format!(
        "To: {email}\nSubject: Your OpenKey sign-in code\n\nYour OpenKey sign-in code is {code}.\nIt expires in 5 minutes. If you did not ask for it, ignore this mail.\n"
    );
    let mut f =
        std::fs::File::create(dir.join(name)).map_err(|e| AppError::Internal(e.to_string()))?;
    f.write_all(body.as_bytes())
        .map_err(|e| AppError::Internal(e.to_string()))
}

#[derive(Template)]
#[template(path = "code_sent.html")]
struct CodePage {
    chrome: Chrome,
    email: String,
}

#[derive(Deserialize)]
struct SendForm {
    email: String,
}

async fn send_code(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    let email = normalize_email(&form.email)?;
    if state.limits.email_send.check_key(&email).is_err() {
        return Err(AppError::TooManyRequests(
            "too many codes requested: wait a minute".into(),
        ));
    }
    let now = now_ms();
    let mut current = state.store.email_code(&email)?;
    let locked = current.locked_until.is_some_and(|t| t > now);
    if !locked {
        if let Some(user) = state.store.user_by_email(&email)? {
            let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
            current.code_hash = Some(code_hash(&user.email, &code));
            current.expires_at = Some(now + CODE_MS);
            state.store.set_email_code(&email, &current)?;
            write_outbox(&state, &user.email, &code)?;
        }
    }
    let mut chrome = Chrome::new("Enter your code", csrf.0, false);
    chrome.notice = Some(format!(
        "If {email} has an account, a code is on its way. It expires in 5 minutes."
    ));
    Ok(render_status(StatusCode::OK, &CodePage { chrome, email }))
}

#[derive(Deserialize)]
struct VerifyForm {
    email: String,
    code: String,
}

async fn verify_code(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Form(form): Form<VerifyForm>,
) -> Result<Response, AppError> {
    let email = normalize_email(&form.email)?;
    let now = now_ms();
    let mut st: EmailCode = state.store.email_code(&email)?;
    if let Some(until) = st.locked_until {
        if until > now {
            return Ok(message(
                StatusCode::TOO_MANY_REQUESTS,
                Chrome::new("Locked", csrf.0, false),
                "Too many wrong codes",
                &format!("Sign-in by email code is locked until {}. Use a passkey or a recovery code, or try later.", rfc3339(until)),
            ));
        }
        st.locked_until = None;
        st.failures = 0;
    }
    let code = form.code.trim();
    let valid = matches!((&st.code_hash, st.expires_at), (Some(h), Some(exp))
        if exp > now && bool::from(h.as_slice().ct_eq(&code_hash(&email, code))));
    if !valid {
        st.failures += 1;
        if st.failures >= MAX_FAILURES {
            st.locked_until = Some(now + LOCK_MS);
            st.code_hash = None;
            st.expires_at = None;
        }
        state.store.set_email_code(&email, &st)?;
        let mut chrome = Chrome::new("Enter your code", csrf.0, false);
        chrome.notice = Some("That code is wrong or expired.".into());
        return Ok(render_status(
            StatusCode::UNAUTHORIZED,
            &CodePage { chrome, email },
        ));
    }
    state.store.set_email_code(&email, &EmailCode::default())?;
    let user = state
        .store
        .user_by_email(&email)?
        .ok_or_else(|| AppError::Unauthorized("no such account".into()))?;
    let cookie = session::open(&state, &user.id, Method::EmailCode, false)?;
    let mut res = Redirect::to("/account").into_response();
    session::append_cookie(res.headers_mut(), cookie);
    Ok(res)
}

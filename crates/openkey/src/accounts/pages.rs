//! The landing page (sign up / sign in), the account page, the activity (audit) page,
//! sign-out and account deletion.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::clock::rfc3339;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page::message;
use crate::web::{render, session, Authenticated, Chrome, CsrfToken, FreshUv};

/// The confirmation text account deletion needs.
pub const DELETE_CONFIRMATION: &str = "DELETE MY ACCOUNT";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/account", get(account))
        .route("/account/audit", get(audit_page))
        .route("/api/session", get(whoami))
        .route("/signout", post(signout))
        .route("/account/delete", post(delete_account))
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
}

async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    if session::current(&state, &headers)?.is_some() {
        return Ok(Redirect::to("/account").into_response());
    }
    Ok(render(&IndexPage {
        chrome: Chrome::new("Sign in", csrf.0, false),
    }))
}

pub(super) struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    email: String,
    owner_address: String,
    owner_did: String,
    method: String,
    uv_fresh: bool,
    passkeys: Vec<PasskeyView>,
    recovery_left: usize,
    delete_confirmation: &'static str,
}

async fn account(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let user = state
        .store
        .user_by_id(&auth.user_id)?
        .ok_or_else(|| AppError::Unauthorized("sign in first".into()))?;
    let owner = state.keys.owner_key(&auth.user_id)?;
    let passkeys = state
        .store
        .passkeys(&auth.user_id)?
        .into_iter()
        .map(|p| PasskeyView {
            id: p.id,
            name: p.name,
            created: rfc3339(p.created_at),
            last_used: p
                .last_used_at
                .map(rfc3339)
                .unwrap_or_else(|| "never".into()),
        })
        .collect();
    let recovery_left = state.store.unused_recovery_codes(&auth.user_id)?.len();
    let uv_fresh = auth.fresh_uv(&state).is_ok();
    Ok(render(&AccountPage {
        chrome: Chrome::new("Your account", csrf.0, true),
        email: user.email,
        owner_did: crate::keys::owner_did(&owner.address),
        owner_address: owner.address,
        method: auth.method,
        uv_fresh,
        passkeys,
        recovery_left,
        delete_confirmation: DELETE_CONFIRMATION,
    }))
}

async fn whoami(State(state): State<AppState>, auth: Authenticated) -> Result<Response, AppError> {
    let user = state
        .store
        .user_by_id(&auth.user_id)?
        .ok_or_else(|| AppError::Unauthorized("sign in first".into()))?;
    let owner = state.keys.owner_key(&auth.user_id)?;
    Ok(axum::Json(serde_json::json!({
        "user_id": user.id,
        "email": user.email,
        "method": auth.method,
        "uv_fresh": auth.fresh_uv(&state).is_ok(),
        "owner_key_id": owner.id,
        "owner_address": owner.address,
        "owner_did": crate::keys::owner_did(&owner.address),
    }))
    .into_response())
}

struct AuditView {
    at: String,
    event: String,
    outcome: String,
    key_id: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditView>,
}

async fn audit_page(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let rows = state
        .store
        .audit_log(&auth.user_id, 500)?
        .into_iter()
        .map(|r| AuditView {
            at: rfc3339(r.at),
            event: r.event,
            outcome: r.outcome,
            key_id: r.key_id.unwrap_or_default(),
            detail: r.detail,
        })
        .collect();
    Ok(render(&AuditPage {
        chrome: Chrome::new("Activity", csrf.0, true),
        rows,
    }))
}

async fn signout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let clear = session::close(&state, &headers)?;
    let mut res = Redirect::to("/").into_response();
    session::append_cookie(res.headers_mut(), clear);
    Ok(res)
}

#[derive(Deserialize)]
struct DeleteForm {
    confirm: String,
}

async fn delete_account(
    State(state): State<AppState>,
    fresh: FreshUv,
    csrf: CsrfToken,
    Form(form): Form<DeleteForm>,
) -> Result<Response, AppError> {
    if form.confirm.trim() != DELETE_CONFIRMATION {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            Chrome::new("Account not deleted", csrf.0, true),
            "Account not deleted",
            &format!("Type {DELETE_CONFIRMATION} exactly to delete your account."),
        ));
    }
    state.store.delete_user(fresh.uv.user_id())?;
    tracing::info!("account deleted");
    let mut res = message(
        StatusCode::OK,
        Chrome::new("Account deleted", csrf.0, false),
        "Account deleted",
        "Your account, passkeys, keys and activity log are gone for good.",
    );
    session::append_cookie(res.headers_mut(), session::clear(&state));
    Ok(res)
}

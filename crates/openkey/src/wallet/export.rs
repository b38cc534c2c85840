//! Export for self-custody: a page asking for a passkey check (if the last one is stale) and the
//! typed confirmation, then the raw private key shown once (`no-store`). Refusals and exports are
//! audited; the key is marked exported.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::KeyView;
use crate::audit;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page::{message, render, reverify_page};
use crate::web::{Authenticated, Chrome, CsrfToken};

/// What the person types to confirm an export.
pub const EXPORT_CONFIRMATION: &str = "EXPORT MY KEY";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/keys/{id}/export", get(export_page).post(export))
}

#[derive(Template)]
#[template(path = "export.html")]
struct ExportPage {
    chrome: Chrome,
    key: KeyView,
    confirmation: &'static str,
}

#[derive(Template)]
#[template(path = "exported.html")]
struct ExportedPage {
    chrome: Chrome,
    key: KeyView,
    secret: String,
}

async fn export_page(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let key = state.keys.get(&auth.user_id, &id)?;
    if auth.fresh_uv(&state).is_err() {
        return Ok(reverify_page(state.config.uv_window.as_secs(), csrf.0));
    }
    Ok(render(&ExportPage {
        chrome: Chrome::new("Export key", csrf.0, true),
        key: KeyView::from(&key),
        confirmation: EXPORT_CONFIRMATION,
    }))
}

#[derive(Deserialize)]
struct ExportForm {
    confirm: String,
}

async fn export(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ExportForm>,
) -> Result<Response, AppError> {
    let refuse = |reason: &str| {
        audit::record(
            state.store.as_ref(),
            &auth.user_id,
            "key.export",
            audit::REFUSED,
            Some(&id),
            serde_json::json!({ "reason": reason }),
        )
    };
    let uv = match auth.fresh_uv(&state) {
        Ok(uv) => uv,
        Err(_) => {
            refuse("no fresh passkey check")?;
            return Ok(reverify_page(state.config.uv_window.as_secs(), csrf.0));
        }
    };
    let key = state.keys.get(&auth.user_id, &id)?;
    if form.confirm.trim() != EXPORT_CONFIRMATION {
        refuse("confirmation text did not match")?;
        return Ok(message(
            StatusCode::BAD_REQUEST,
            Chrome::new("Not exported", csrf.0, true),
            "Not exported",
            &format!("Type {EXPORT_CONFIRMATION} exactly to export this key."),
        ));
    }
    let secret = state.keys.export(&uv, &id)?;
    let key = state.keys.get(&auth.user_id, &key.id)?;
    Ok(render(&ExportedPage {
        chrome: Chrome::new("Your private key", csrf.0, true),
        key: KeyView::from(&key),
        secret: secret.as_str().to_string(),
    }))
}

//! Key pages and JSON: listing and creating keys, archive / unarchive, linking an external wallet
//! by EIP-191 challenge, attestation reports, and export for self-custody (fresh passkey check +
//! typed confirmation; the raw key is shown once, the event audited, the key marked exported).

mod export;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tinycloud_auth::eth::{parse_hex_signature, recover_eip191, EthAddress};

use crate::clock::{now_ms, rfc3339};
use crate::error::AppError;
use crate::keys::owner_did;
use crate::state::AppState;
use crate::store::{Ceremony, KeyKind, KeyRow};
use crate::web::{render, Authenticated, Chrome, CsrfToken};

const CHALLENGE_MS: i64 = 5 * 60 * 1000;

/// Routes behind the CSRF guard.
pub fn browser_routes() -> Router<AppState> {
    Router::new()
        .route("/keys", get(keys_page).post(create_form))
        .route("/keys/{id}/archive", post(archive_form))
        .route("/keys/{id}/unarchive", post(unarchive_form))
        .route("/api/keys", get(list_json).post(create_json))
        .route("/api/keys/link/challenge", post(link_challenge))
        .route("/api/keys/link", post(link))
        .route("/api/keys/{id}/attestation", post(attestation))
        .merge(export::routes())
}

/// Public routes (no session): the attestation identity.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/api/attestation/identity", get(identity))
}

/// A key as the JSON API shows it (never key material).
#[derive(Serialize)]
pub struct KeyView {
    /// Id.
    pub id: String,
    /// EIP-55 address.
    pub address: String,
    /// `did:pkh:eip155:1:<address>`.
    pub did: String,
    /// `managed` or `external`.
    pub kind: &'static str,
    /// Label.
    pub label: String,
    /// The owner key.
    pub owner: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when archived.
    pub archived_at: Option<String>,
    /// RFC 3339, when last exported.
    pub exported_at: Option<String>,
}

impl From<&KeyRow> for KeyView {
    fn from(k: &KeyRow) -> Self {
        KeyView {
            id: k.id.clone(),
            address: k.address.clone(),
            did: owner_did(&k.address),
            kind: k.kind.as_str(),
            label: k.label.clone(),
            owner: k.is_owner,
            created_at: rfc3339(k.created_at),
            archived_at: k.archived_at.map(rfc3339),
            exported_at: k.exported_at.map(rfc3339),
        }
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
}

async fn keys_page(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let keys = state.keys.list(&auth.user_id, true)?;
    Ok(render(&KeysPage {
        chrome: Chrome::new("Keys", csrf.0, true),
        keys: keys.iter().map(KeyView::from).collect(),
    }))
}

#[derive(Deserialize)]
struct LabelForm {
    label: String,
}

async fn create_form(
    State(state): State<AppState>,
    auth: Authenticated,
    Form(form): Form<LabelForm>,
) -> Result<Response, AppError> {
    state
        .keys
        .create_managed(&auth.user_id, &form.label, false)?;
    Ok(Redirect::to("/keys").into_response())
}

async fn archive_form(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    state.keys.set_archived(&auth.user_id, &id, true)?;
    Ok(Redirect::to("/keys").into_response())
}

async fn unarchive_form(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    state.keys.set_archived(&auth.user_id, &id, false)?;
    Ok(Redirect::to("/keys").into_response())
}

async fn list_json(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, AppError> {
    let keys = state.keys.list(&auth.user_id, true)?;
    Ok(Json(keys.iter().map(KeyView::from).collect::<Vec<_>>()).into_response())
}

async fn create_json(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(req): Json<LabelForm>,
) -> Result<Response, AppError> {
    let key = state
        .keys
        .create_managed(&auth.user_id, &req.label, false)?;
    Ok(Json(KeyView::from(&key)).into_response())
}

#[derive(Serialize, Deserialize)]
struct LinkChallenge {
    message: String,
}

async fn link_challenge(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, AppError> {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let nonce = hex::encode(raw);
    let message = format!(
        "OpenKey wallet link\nAccount: {}\nOrigin: {}\nNonce: {nonce}\nIssued at: {}",
        auth.user_id,
        state.config.origin_header(),
        rfc3339(now_ms())
    );
    let mut id_raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id_raw);
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id_raw);
    state.store.put_ceremony(&Ceremony {
        id: id.clone(),
        kind: "link-wallet".into(),
        user_id: Some(auth.user_id.clone()),
        data: serde_json::to_string(&LinkChallenge {
            message: message.clone(),
        })
        .map_err(|e| AppError::Internal(e.to_string()))?,
        expires_at: now_ms() + CHALLENGE_MS,
    })?;
    Ok(Json(serde_json::json!({ "challenge_id": id, "message": message })).into_response())
}

#[derive(Deserialize)]
struct LinkRequest {
    challenge_id: String,
    address: String,
    signature: String,
    label: Option<String>,
}

async fn link(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(req): Json<LinkRequest>,
) -> Result<Response, AppError> {
    let c = state
        .store
        .take_ceremony(&req.challenge_id, "link-wallet", now_ms())?
        .filter(|c| c.user_id.as_deref() == Some(auth.user_id.as_str()))
        .ok_or_else(|| {
            AppError::BadRequest("the challenge expired or was used: ask for a new one".into())
        })?;
    let challenge: LinkChallenge =
        serde_json::from_str(&c.data).map_err(|e| AppError::Internal(e.to_string()))?;
    let address = EthAddress::parse_any_case(req.address.trim())
        .map_err(|_| AppError::BadRequest("not an Ethereum address".into()))?;
    let sig = parse_hex_signature(req.signature.trim())
        .map_err(|_| AppError::BadRequest("the signature is not 65 hex bytes".into()))?;
    let recovered = recover_eip191(challenge.message.as_bytes(), &sig)
        .map_err(|_| AppError::BadRequest("the signature does not verify".into()))?;
    if recovered != address {
        return Err(AppError::BadRequest(
            "the signature is not by this address".into(),
        ));
    }
    let label = req.label.unwrap_or_else(|| "Linked wallet".into());
    let key = state.keys.link_external(&auth.user_id, &address, &label)?;
    Ok(Json(KeyView::from(&key)).into_response())
}

#[derive(Deserialize)]
struct AttestRequest {
    nonce: String,
}

async fn attestation(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Json(req): Json<AttestRequest>,
) -> Result<Response, AppError> {
    let att = state.keys.attest(&auth.user_id, &id, &req.nonce).await?;
    Ok(Json(att).into_response())
}

async fn identity(State(state): State<AppState>) -> Response {
    let sealer = state.keys.sealer();
    Json(serde_json::json!({
        "type": sealer.kind(),
        "hardware_backed": sealer.hardware_backed(),
        "public_key": state.attestation_identity,
    }))
    .into_response()
}

/// Whether a key is a managed, active key (export and signing are possible).
pub fn is_active_managed(k: &KeyRow) -> bool {
    k.kind == KeyKind::Managed && k.archived_at.is_none()
}

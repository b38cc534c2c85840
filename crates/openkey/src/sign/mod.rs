//! Signing endpoints (JSON, session cookie + CSRF header): EIP-191 `personal_sign`, EIP-712
//! typed data (hashed by `alloy-dyn-abi`) and SIWE (parsed and checked by the protocol core).
//! Every signing needs a fresh passkey user verification (else 401 `fresh_passkey_required`),
//! and every decision — allowed or refused — goes to the audit log.

use std::str::FromStr;

use alloy_dyn_abi::TypedData;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tinycloud_auth::siwe::Message;

use crate::audit;
use crate::error::AppError;
use crate::keys::{AuditNote, UserVerified};
use crate::state::AppState;
use crate::web::Authenticated;

/// Routes behind the CSRF guard.
pub fn browser_routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys/{id}/sign/personal", post(personal))
        .route("/api/keys/{id}/sign/typed-data", post(typed_data))
        .route("/api/keys/{id}/sign/siwe", post(siwe))
}

/// The fresh-UV check for a signing request, auditing a refusal.
pub fn require_fresh(
    state: &AppState,
    auth: &Authenticated,
    event: &str,
    key_id: &str,
) -> Result<UserVerified, AppError> {
    auth.fresh_uv(state).inspect_err(|_| {
        let _ = audit::record(
            state.store.as_ref(),
            &auth.user_id,
            event,
            audit::REFUSED,
            Some(key_id),
            serde_json::json!({ "reason": "no passkey check within the window" }),
        );
    })
}

fn refuse(
    state: &AppState,
    auth: &Authenticated,
    event: &str,
    key_id: &str,
    err: AppError,
) -> AppError {
    let _ = audit::record(
        state.store.as_ref(),
        &auth.user_id,
        event,
        audit::REFUSED,
        Some(key_id),
        serde_json::json!({ "reason": err.to_string() }),
    );
    err
}

fn answer(signed: crate::keys::Signed, digest: &[u8; 32]) -> Response {
    Json(serde_json::json!({
        "signature": signed.hex(),
        "address": signed.address,
        "digest": format!("0x{}", hex::encode(digest)),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    Utf8,
    Hex,
}

#[derive(Deserialize)]
struct PersonalRequest {
    message: String,
    encoding: Option<Encoding>,
}

async fn personal(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Json(req): Json<PersonalRequest>,
) -> Result<Response, AppError> {
    const EVENT: &str = "sign.personal";
    let uv = require_fresh(&state, &auth, EVENT, &id)?;
    let bytes = match req.encoding.unwrap_or(Encoding::Utf8) {
        Encoding::Utf8 => req.message.into_bytes(),
        Encoding::Hex => hex::decode(req.message.trim_start_matches("0x")).map_err(|_| {
            refuse(
                &state,
                &auth,
                EVENT,
                &id,
                AppError::BadRequest("the message is not hex".into()),
            )
        })?,
    };
    let digest = tinycloud_auth::eth::eip191_hash(&bytes);
    let signed = state.keys.sign_digest(
        &uv,
        &id,
        &digest,
        AuditNote {
            event: EVENT,
            detail: serde_json::json!({ "length": bytes.len() }),
        },
    )?;
    Ok(answer(signed, &digest))
}

#[derive(Deserialize)]
struct TypedRequest {
    typed_data: serde_json::Value,
}

async fn typed_data(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Json(req): Json<TypedRequest>,
) -> Result<Response, AppError> {
    const EVENT: &str = "sign.typed-data";
    let uv = require_fresh(&state, &auth, EVENT, &id)?;
    let typed: TypedData = serde_json::from_value(req.typed_data).map_err(|e| {
        refuse(
            &state,
            &auth,
            EVENT,
            &id,
            AppError::BadRequest(format!("not EIP-712 typed data: {e}")),
        )
    })?;
    let digest: [u8; 32] = typed
        .eip712_signing_hash()
        .map_err(|e| {
            refuse(
                &state,
                &auth,
                EVENT,
                &id,
                AppError::BadRequest(format!("typed data does not hash: {e}")),
            )
        })?
        .0;
    let detail = serde_json::json!({
        "primary_type": typed.primary_type,
        "domain": {
            "name": typed.domain.name,
            "chain_id": typed.domain.chain_id.map(|c| c.to_string()),
            "verifying_contract": typed.domain.verifying_contract.map(|a| a.to_string()),
        },
    });
    let signed = state.keys.sign_digest(
        &uv,
        &id,
        &digest,
        AuditNote {
            event: EVENT,
            detail,
        },
    )?;
    Ok(answer(signed, &digest))
}

#[derive(Deserialize)]
struct SiweRequest {
    message: String,
}

async fn siwe(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Json(req): Json<SiweRequest>,
) -> Result<Response, AppError> {
    const EVENT: &str = "sign.siwe";
    let uv = require_fresh(&state, &auth, EVENT, &id)?;
    let msg = Message::from_str(&req.message).map_err(|e| {
        refuse(
            &state,
            &auth,
            EVENT,
            &id,
            AppError::BadRequest(format!("not a SIWE message: {e}")),
        )
    })?;
    let key = state.keys.get(&auth.user_id, &id)?;
    if msg.address.to_eip55() != key.address {
        return Err(refuse(
            &state,
            &auth,
            EVENT,
            &id,
            AppError::BadRequest("the message names another address than this key".into()),
        ));
    }
    if let Err(e) = msg.check_time(time::OffsetDateTime::now_utc()) {
        return Err(refuse(
            &state,
            &auth,
            EVENT,
            &id,
            AppError::BadRequest(format!("{e}")),
        ));
    }
    let digest = msg.eip191_hash();
    let detail = serde_json::json!({
        "domain": msg.domain,
        "uri": msg.uri,
        "chain_id": msg.chain_id,
        "nonce": msg.nonce,
        "resources": msg.resources.as_ref().map_or(0, Vec::len),
        "expiration_time": msg.expiration_time.as_ref().map(ToString::to_string),
    });
    let signed = state.keys.sign_digest(
        &uv,
        &id,
        &digest,
        AuditNote {
            event: EVENT,
            detail,
        },
    )?;
    Ok(answer(signed, &digest))
}

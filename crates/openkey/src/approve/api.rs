//! Machine endpoints of the approval flows. No cookies: a request is created by whoever holds
//! the message; results leave only against a one-time code (redirect flow) or the device code
//! (device flow), each single use, and each bound to the digest of exactly what was signed.
//!
//! Errors of the exchange and the device-token poll use OAuth's shape (`{"error": …}`, 400):
//! `invalid_grant`, `authorization_pending`, `slow_down`, `access_denied`, `expired_token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tinycloud_auth::siwe::Message;

use super::{narrow, normalize_user_code, random_token, sha256, user_code};
use crate::audit;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{ApprovalRequest, ApprovalResult, ApprovalStatus, DevicePoll};

fn oauth_error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn check_message(message: &str) -> Result<(), AppError> {
    if message.len() > super::MAX_MESSAGE_LEN {
        return Err(AppError::BadRequest("the message is too large".into()));
    }
    narrow::read(message, time::OffsetDateTime::now_utc())
        .map(|_| ())
        .map_err(|e| AppError::BadRequest(e.to_string()))
}

fn new_request(flow: &str, message: String) -> ApprovalRequest {
    let now = now_ms();
    ApprovalRequest {
        id: uuid::Uuid::new_v4().to_string(),
        flow: flow.into(),
        message,
        return_url: None,
        state: None,
        client_id: None,
        device_code_hash: None,
        user_code_hash: None,
        status: ApprovalStatus::Pending,
        user_id: None,
        final_message: None,
        digest: None,
        signature: None,
        address: None,
        last_poll_at: None,
        created_at: now,
        expires_at: now + super::REQUEST_TTL_MS,
    }
}

/// `POST /api/approve/requests`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    message: String,
    return_url: String,
    client_id: Option<String>,
    state: Option<String>,
}

/// Creates a redirect-flow request: `{request_id, approve_url, expires_in}`.
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<CreateBody>,
) -> Result<Response, AppError> {
    check_message(&body.message)?;
    if body
        .state
        .as_ref()
        .is_some_and(|s| s.len() > super::MAX_STATE_LEN)
    {
        return Err(AppError::BadRequest("state is too long".into()));
    }
    let app = super::apps::check_return_url(
        state.store.as_ref(),
        &body.return_url,
        body.client_id.as_deref(),
    )
    .map_err(|e| match e {
        super::apps::ReturnUrlErrorOrStore::Refused(r) => AppError::BadRequest(r.to_string()),
        super::apps::ReturnUrlErrorOrStore::Store(s) => s.into(),
    })?;
    let mut req = new_request("redirect", body.message);
    req.return_url = Some(body.return_url);
    req.state = body.state;
    req.client_id = app.map(|a| a.id);
    state.store.create_approval_request(&req)?;
    Ok(Json(serde_json::json!({
        "request_id": req.id,
        "approve_url": format!("{}/approve/{}", state.config.origin_header(), req.id),
        "expires_in": super::REQUEST_TTL_MS / 1000,
    }))
    .into_response())
}

/// `POST /api/approve/exchange`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    code: String,
    request_id: String,
}

/// Checks a stored result against its recorded digest and signer before handing it out.
fn verified(result: &ApprovalResult) -> bool {
    let Ok(msg) = result.message.parse::<Message>() else {
        return false;
    };
    let digest = msg.eip191_hash();
    let same: bool = digest.as_slice().ct_eq(result.digest.as_slice()).into();
    let sig = tinycloud_auth::siwe::parse_hex_signature(&result.signature).unwrap_or_default();
    same && msg.address.to_eip55() == result.address && msg.verify_eip191(&sig).is_ok()
}

fn result_json(result: &ApprovalResult) -> Response {
    Json(serde_json::json!({
        "message": result.message,
        "signature": result.signature,
        "address": result.address,
    }))
    .into_response()
}

/// Exchanges a one-time code for `{message, signature, address}`.
pub async fn exchange(
    State(state): State<AppState>,
    Json(body): Json<ExchangeBody>,
) -> Result<Response, AppError> {
    let req = state.store.approval_request(&body.request_id)?;
    let taken =
        state
            .store
            .take_by_code(&body.request_id, &sha256(body.code.as_bytes()), now_ms())?;
    let user = req.as_ref().and_then(|r| r.user_id.clone());
    match taken {
        Some(result) if verified(&result) => {
            if let Some(user) = &user {
                let _ = audit::record(
                    state.store.as_ref(),
                    user,
                    "approve.exchange",
                    audit::DONE,
                    None,
                    serde_json::json!({ "request": body.request_id, "digest": format!("0x{}", hex::encode(&result.digest)) }),
                );
            }
            Ok(result_json(&result))
        }
        other => {
            if let Some(user) = &user {
                let _ = audit::record(
                    state.store.as_ref(),
                    user,
                    "approve.exchange",
                    audit::REFUSED,
                    None,
                    serde_json::json!({ "request": body.request_id, "reason": if other.is_some() { "result does not match its digest" } else { "unknown, used or expired code" } }),
                );
            }
            Ok(oauth_error(
                "invalid_grant",
                "the code is unknown, used, expired or not for this request",
            ))
        }
    }
}

/// `POST /api/approve/device`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    message: String,
}

/// Starts a device-flow request.
pub async fn device(
    State(state): State<AppState>,
    Json(body): Json<DeviceBody>,
) -> Result<Response, AppError> {
    check_message(&body.message)?;
    let device_code = random_token();
    let code = user_code();
    let mut req = new_request("device", body.message);
    req.device_code_hash = Some(sha256(device_code.as_bytes()));
    req.user_code_hash = Some(sha256(normalize_user_code(&code).as_bytes()));
    state.store.create_approval_request(&req)?;
    let uri = format!("{}/approve/device", state.config.origin_header());
    Ok(Json(serde_json::json!({
        "device_code": device_code,
        "user_code": code,
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={code}"),
        "interval": super::DEVICE_INTERVAL_SECS,
        "expires_in": super::REQUEST_TTL_MS / 1000,
    }))
    .into_response())
}

/// `POST /api/approve/device/token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenBody {
    device_code: String,
}

/// Polls a device-flow request.
pub async fn device_token(
    State(state): State<AppState>,
    Json(body): Json<DeviceTokenBody>,
) -> Result<Response, AppError> {
    let interval_ms = i64::try_from(super::DEVICE_INTERVAL_SECS * 1000).unwrap_or(i64::MAX);
    // A little slack: clients sleep `interval` between polls and timers are not exact.
    let poll = state.store.poll_device(
        &sha256(body.device_code.as_bytes()),
        now_ms(),
        interval_ms - 250,
    )?;
    Ok(match poll {
        DevicePoll::Unknown => oauth_error("invalid_grant", "unknown or used device code"),
        DevicePoll::Expired => oauth_error("expired_token", "the request expired"),
        DevicePoll::SlowDown => oauth_error("slow_down", "poll less often"),
        DevicePoll::Pending => oauth_error("authorization_pending", "waiting for the person"),
        DevicePoll::Denied => oauth_error("access_denied", "the person denied the request"),
        DevicePoll::Approved(result) if verified(&result) => result_json(&result),
        DevicePoll::Approved(_) => oauth_error("invalid_grant", "result does not match its digest"),
    })
}

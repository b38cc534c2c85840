//! Passkey ceremonies (JSON, called by `static/openkey.js` or a test authenticator): sign-up,
//! sign-in, adding a passkey, re-verification (records a fresh user verification in the
//! session), and removing a passkey (a form; never the last one). Ceremony state lives
//! server-side in the store, single use, 5 minutes, bound to its kind (and user / session).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential,
};

use super::normalize_email;
use crate::audit;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Ceremony, PasskeyRow, User};
use crate::web::session::{self, Method};
use crate::web::{Authenticated, FreshUv};

const CEREMONY_MS: i64 = 5 * 60 * 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/signup/start", post(signup_start))
        .route("/api/signup/finish", post(signup_finish))
        .route("/api/signin/passkey/start", post(signin_start))
        .route("/api/signin/passkey/finish", post(signin_finish))
        .route("/api/passkeys/add/start", post(add_start))
        .route("/api/passkeys/add/finish", post(add_finish))
        .route("/api/passkeys/verify/start", post(verify_start))
        .route("/api/passkeys/verify/finish", post(verify_finish))
        .route("/account/passkeys/{id}/remove", post(remove))
}

fn ceremony_id() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn put<T: Serialize>(
    state: &AppState,
    kind: &str,
    user_id: Option<&str>,
    data: &T,
) -> Result<String, AppError> {
    let id = ceremony_id();
    state.store.put_ceremony(&Ceremony {
        id: id.clone(),
        kind: kind.to_string(),
        user_id: user_id.map(str::to_string),
        data: serde_json::to_string(data).map_err(|e| AppError::Internal(e.to_string()))?,
        expires_at: now_ms() + CEREMONY_MS,
    })?;
    Ok(id)
}

fn take<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    id: &str,
    kind: &str,
) -> Result<(Option<String>, T), AppError> {
    let c = state
        .store
        .take_ceremony(id, kind, now_ms())?
        .ok_or_else(|| AppError::BadRequest("this passkey request expired: start again".into()))?;
    let data = serde_json::from_str(&c.data).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((c.user_id, data))
}

fn webauthn_err(e: impl std::fmt::Display) -> AppError {
    AppError::Unauthorized(format!("the passkey did not verify ({e})"))
}

fn check_name(name: Option<String>) -> Result<String, AppError> {
    let name = name.unwrap_or_default().trim().to_string();
    let name = if name.is_empty() {
        "Passkey".to_string()
    } else {
        name
    };
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "a passkey name has at most 64 characters".into(),
        ));
    }
    Ok(name)
}

fn passkey_row(user_id: &str, name: &str, pk: &Passkey) -> Result<PasskeyRow, AppError> {
    Ok(PasskeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        credential_id: AsRef::<[u8]>::as_ref(pk.cred_id()).to_vec(),
        name: name.to_string(),
        passkey_json: serde_json::to_string(pk).map_err(|e| AppError::Internal(e.to_string()))?,
        created_at: now_ms(),
        last_used_at: None,
    })
}

fn stored_passkeys(state: &AppState, user_id: &str) -> Result<Vec<(String, Passkey)>, AppError> {
    state
        .store
        .passkeys(user_id)?
        .into_iter()
        .map(|p| {
            serde_json::from_str::<Passkey>(&p.passkey_json)
                .map(|pk| (p.id, pk))
                .map_err(|e| AppError::Internal(e.to_string()))
        })
        .collect()
}

/// Start answer: the ceremony id and the options for `navigator.credentials`.
#[derive(Serialize)]
struct Started<T: Serialize> {
    ceremony: String,
    options: T,
}

#[derive(Deserialize)]
struct SignupStart {
    email: String,
    passkey_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RegistrationState {
    state: PasskeyRegistration,
    email: String,
    handle: uuid::Uuid,
    name: String,
}

async fn signup_start(
    State(state): State<AppState>,
    Json(req): Json<SignupStart>,
) -> Result<Response, AppError> {
    let email = normalize_email(&req.email)?;
    let name = check_name(req.passkey_name)?;
    if state.limits.signin.check_key(&email).is_err() {
        return Err(AppError::TooManyRequests(
            "too many attempts: wait a minute".into(),
        ));
    }
    if state.store.user_by_email(&email)?.is_some() {
        return Err(AppError::Conflict(
            "an account with this email exists: sign in instead".into(),
        ));
    }
    let handle = uuid::Uuid::new_v4();
    let (options, reg) = state
        .webauthn
        .start_passkey_registration(handle, &email, &email, None)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let ceremony = put(
        &state,
        "signup",
        None,
        &RegistrationState {
            state: reg,
            email,
            handle,
            name,
        },
    )?;
    Ok(Json(Started { ceremony, options }).into_response())
}

#[derive(Deserialize)]
struct FinishRegistration {
    ceremony: String,
    credential: RegisterPublicKeyCredential,
}

async fn signup_finish(
    State(state): State<AppState>,
    Json(req): Json<FinishRegistration>,
) -> Result<Response, AppError> {
    let (_, reg): (_, RegistrationState) = take(&state, &req.ceremony, "signup")?;
    let pk = state
        .webauthn
        .finish_passkey_registration(&req.credential, &reg.state)
        .map_err(webauthn_err)?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: reg.email,
        webauthn_handle: reg.handle.to_string(),
        created_at: now_ms(),
    };
    state.store.create_user(&user)?;
    let created = (|| -> Result<(), AppError> {
        state
            .store
            .add_passkey(&passkey_row(&user.id, &reg.name, &pk)?)?;
        state.keys.create_managed(&user.id, "Owner key", true)?;
        audit::record(
            state.store.as_ref(),
            &user.id,
            "account.create",
            audit::DONE,
            None,
            serde_json::json!({ "passkey": reg.name }),
        )?;
        Ok(())
    })();
    if let Err(e) = created {
        let _ = state.store.delete_user(&user.id);
        return Err(e);
    }
    // Registration required user verification, so the new session starts verified.
    let cookie = session::open(&state, &user.id, Method::Signup, true)?;
    let mut res = Json(serde_json::json!({ "redirect": "/account?welcome=1" })).into_response();
    session::append_cookie(res.headers_mut(), cookie);
    Ok(res)
}

#[derive(Deserialize)]
struct SigninStart {
    email: String,
}

#[derive(Serialize, Deserialize)]
struct AuthState {
    state: PasskeyAuthentication,
    /// Session the re-verification is for (hex of its digest), if any.
    session: Option<String>,
}

fn start_auth(
    state: &AppState,
    user_id: &str,
    kind: &str,
    session: Option<String>,
) -> Result<Response, AppError> {
    let passkeys: Vec<Passkey> = stored_passkeys(state, user_id)?
        .into_iter()
        .map(|(_, pk)| pk)
        .collect();
    if passkeys.is_empty() {
        return Err(AppError::BadRequest(
            "no passkey is registered for this account: sign in with an email or recovery code and add one".into(),
        ));
    }
    let (options, auth) = state
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let ceremony = put(
        state,
        kind,
        Some(user_id),
        &AuthState {
            state: auth,
            session,
        },
    )?;
    Ok(Json(Started { ceremony, options }).into_response())
}

/// Verifies an assertion for `user_id`, updates the credential's counter, and requires UV.
fn finish_auth(
    state: &AppState,
    user_id: &str,
    auth: &AuthState,
    credential: &PublicKeyCredential,
) -> Result<(), AppError> {
    let result = state
        .webauthn
        .finish_passkey_authentication(credential, &auth.state)
        .map_err(webauthn_err)?;
    if !result.user_verified() {
        return Err(AppError::Unauthorized(
            "the passkey did not verify you (user verification is required)".into(),
        ));
    }
    for (id, mut pk) in stored_passkeys(state, user_id)? {
        if pk.update_credential(&result).is_some() {
            let json = serde_json::to_string(&pk).map_err(|e| AppError::Internal(e.to_string()))?;
            state.store.update_passkey(&id, &json, now_ms())?;
        }
    }
    Ok(())
}

async fn signin_start(
    State(state): State<AppState>,
    Json(req): Json<SigninStart>,
) -> Result<Response, AppError> {
    let email = normalize_email(&req.email)?;
    if state.limits.signin.check_key(&email).is_err() {
        return Err(AppError::TooManyRequests(
            "too many attempts: wait a minute".into(),
        ));
    }
    let user = state
        .store
        .user_by_email(&email)?
        .ok_or_else(|| AppError::BadRequest("no account with a passkey for this email".into()))?;
    start_auth(&state, &user.id, "signin", None)
}

#[derive(Deserialize)]
struct FinishAuth {
    ceremony: String,
    credential: PublicKeyCredential,
}

async fn signin_finish(
    State(state): State<AppState>,
    Json(req): Json<FinishAuth>,
) -> Result<Response, AppError> {
    let (user_id, auth): (_, AuthState) = take(&state, &req.ceremony, "signin")?;
    let user_id =
        user_id.ok_or_else(|| AppError::Internal("sign-in ceremony without user".into()))?;
    finish_auth(&state, &user_id, &auth, &req.credential)?;
    let cookie = session::open(&state, &user_id, Method::Passkey, true)?;
    let mut res = Json(serde_json::json!({ "redirect": "/account" })).into_response();
    session::append_cookie(res.headers_mut(), cookie);
    Ok(res)
}

#[derive(Deserialize)]
struct AddStart {
    passkey_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AddState {
    state: PasskeyRegistration,
    name: String,
}

async fn add_start(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(req): Json<AddStart>,
) -> Result<Response, AppError> {
    let name = check_name(req.passkey_name)?;
    let user = state
        .store
        .user_by_id(&auth.user_id)?
        .ok_or_else(|| AppError::Unauthorized("sign in first".into()))?;
    let handle = uuid::Uuid::parse_str(&user.webauthn_handle)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let stored = stored_passkeys(&state, &user.id)?;
    may_add_passkey(&state, &auth, stored.len())?;
    let exclude = stored
        .into_iter()
        .map(|(_, pk)| pk.cred_id().clone())
        .collect();
    let (options, reg) = state
        .webauthn
        .start_passkey_registration(handle, &user.email, &user.email, Some(exclude))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let ceremony = put(
        &state,
        "add-passkey",
        Some(&user.id),
        &AddState { state: reg, name },
    )?;
    Ok(Json(Started { ceremony, options }).into_response())
}

/// Whether this session may add a passkey. A new passkey verifies its holder and so makes the
/// session fresh for signing and export: were any session allowed to add one, a session opened
/// by an email code (or a stolen cookie whose passkey check has lapsed) could add its own and
/// sign. So an account that has passkeys needs a fresh check with one of them first; only a
/// recovery-code session (the way back for someone who lost every passkey; the code is a
/// high-entropy secret shown once) may add one without.
fn may_add_passkey(
    state: &AppState,
    auth: &Authenticated,
    existing: usize,
) -> Result<(), AppError> {
    if existing == 0 || auth.method == Method::RecoveryCode.as_str() {
        return Ok(());
    }
    auth.fresh_uv(state).map(|_| ())
}

async fn add_finish(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(req): Json<FinishRegistration>,
) -> Result<Response, AppError> {
    let (owner, add): (_, AddState) = take(&state, &req.ceremony, "add-passkey")?;
    if owner.as_deref() != Some(auth.user_id.as_str()) {
        return Err(AppError::Forbidden(
            "this passkey request belongs to another session".into(),
        ));
    }
    // Again at the end: the window may have lapsed between the two halves.
    may_add_passkey(&state, &auth, stored_passkeys(&state, &auth.user_id)?.len())?;
    let pk = state
        .webauthn
        .finish_passkey_registration(&req.credential, &add.state)
        .map_err(webauthn_err)?;
    state
        .store
        .add_passkey(&passkey_row(&auth.user_id, &add.name, &pk)?)?;
    // Registration required user verification with the new passkey.
    state.store.record_uv(&auth.session_hash, now_ms())?;
    audit::record(
        state.store.as_ref(),
        &auth.user_id,
        "passkey.add",
        audit::DONE,
        None,
        serde_json::json!({ "name": add.name, "session": auth.method }),
    )?;
    Ok(Json(serde_json::json!({ "redirect": "/account" })).into_response())
}

async fn verify_start(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, AppError> {
    start_auth(
        &state,
        &auth.user_id,
        "reverify",
        Some(hex::encode(&auth.session_hash)),
    )
}

async fn verify_finish(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(req): Json<FinishAuth>,
) -> Result<Response, AppError> {
    let (owner, a): (_, AuthState) = take(&state, &req.ceremony, "reverify")?;
    if owner.as_deref() != Some(auth.user_id.as_str())
        || a.session.as_deref() != Some(hex::encode(&auth.session_hash).as_str())
    {
        return Err(AppError::Forbidden(
            "this passkey request belongs to another session".into(),
        ));
    }
    finish_auth(&state, &auth.user_id, &a, &req.credential)?;
    state.store.record_uv(&auth.session_hash, now_ms())?;
    Ok(Json(serde_json::json!({ "verified": true })).into_response())
}

async fn remove(
    State(state): State<AppState>,
    fresh: FreshUv,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    state.store.remove_passkey(fresh.uv.user_id(), &id)?;
    audit::record(
        state.store.as_ref(),
        fresh.uv.user_id(),
        "passkey.remove",
        audit::DONE,
        None,
        serde_json::json!({ "passkey_id": id }),
    )?;
    Ok(Redirect::to("/account").into_response())
}

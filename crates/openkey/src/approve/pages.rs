//! The person's side: the approval page (plain-language text, risk notes, checkboxes to remove
//! capabilities, a select to shorten the expiry), the review page (the exact final message and
//! its digest, a passkey check when the last one is stale), approve / deny, and the device-code
//! entry page. The approve post carries only removals, a shorter expiry and the digest shown:
//! the server rebuilds the message from the stored original and signs only when the digests
//! match.

use std::num::NonZeroU32;
use std::sync::LazyLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use governor::{Quota, RateLimiter};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::siwe::Message;
use tinycloud_auth::text::format_date;
use tinycloud_auth::timestamp::Timestamp;

use super::narrow::{self, Narrowing, Request};
use super::{normalize_user_code, random_token, sha256};
use crate::audit;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::keys::{AuditNote, UserVerified};
use crate::state::{AppState, KeyedLimiter};
use crate::store::{ApprovalDecision, ApprovalRequest, ApprovalStatus};
use crate::web::page::message;
use crate::web::{render, session, Authenticated, Chrome, CsrfToken};

const EVENT: &str = "approve.siwe";

/// Wrong user-code entries allowed per user: 10 a minute.
static USER_CODE_TRIES: LazyLock<KeyedLimiter> = LazyLock::new(|| {
    let quota = Quota::per_minute(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
    RateLimiter::hashmap(quota)
});

/// A page-level failure: a message page with a status.
struct PageError(StatusCode, String, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        message(self.0, Chrome::new("Approval", "", true), &self.1, &self.2)
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        if let AppError::Internal(detail) = &e {
            tracing::error!(%detail, "approval failed");
        }
        PageError(e.status(), "Cannot continue".into(), e.to_string())
    }
}

fn bad(text: impl Into<String>) -> PageError {
    PageError(
        StatusCode::BAD_REQUEST,
        "Cannot continue".into(),
        text.into(),
    )
}

fn refused(state: &AppState, user_id: &str, request: &str, reason: &str) {
    let _ = audit::record(
        state.store.as_ref(),
        user_id,
        EVENT,
        audit::REFUSED,
        None,
        serde_json::json!({ "request": request, "reason": reason }),
    );
}

/// A live, pending request.
fn pending(state: &AppState, id: &str) -> Result<ApprovalRequest, PageError> {
    let req = state
        .store
        .approval_request(id)
        .map_err(AppError::from)?
        .ok_or_else(|| {
            PageError(
                StatusCode::NOT_FOUND,
                "No such request".into(),
                "This approval link is unknown.".into(),
            )
        })?;
    if req.status != ApprovalStatus::Pending || req.expires_at <= now_ms() {
        return Err(PageError(
            StatusCode::GONE,
            "Request closed".into(),
            "This request was already decided or has expired. Start again from the app.".into(),
        ));
    }
    Ok(req)
}

fn owner_address(state: &AppState, user_id: &str) -> Result<(String, EthAddress), PageError> {
    let key = state.keys.owner_key(user_id).map_err(AppError::from)?;
    let address = EthAddress::parse_checksummed(&key.address)
        .map_err(|e| AppError::Internal(format!("owner key address: {e}")))?;
    Ok((key.id, address))
}

/// The original request, read, with the address check done against the owner key.
fn read_for(
    state: &AppState,
    auth: &Authenticated,
    req: &ApprovalRequest,
) -> Result<(Request, String, EthAddress), PageError> {
    let read = narrow::read(&req.message, OffsetDateTime::now_utc()).map_err(|e| {
        refused(state, &auth.user_id, &req.id, &e.to_string());
        bad(e.to_string())
    })?;
    let (key_id, owner) = owner_address(state, &auth.user_id)?;
    let addr = read.message.address.to_eip55();
    if addr != narrow::PLACEHOLDER_ADDRESS && read.message.address != owner {
        refused(
            state,
            &auth.user_id,
            &req.id,
            "message names another address",
        );
        return Err(bad(narrow::NarrowError::WrongAddress.to_string()));
    }
    Ok((read, key_id, owner))
}

/// Who asks, in words.
fn requester(state: &AppState, req: &ApprovalRequest) -> String {
    if req.flow == "device" {
        return "a device you entered a code for".into();
    }
    let url = req.return_url.clone().unwrap_or_default();
    match state.store.approval_app_by_return_url(&url) {
        Ok(Some(app)) => format!("the app “{}” ({url})", app.name),
        _ => format!("a program on this computer ({url})"),
    }
}

/// Parsed form / query fields.
struct Fields {
    narrowing: Narrowing,
    expiration_raw: String,
    digest: Option<String>,
}

fn parse_fields(pairs: &[(String, String)], allow_digest: bool) -> Result<Fields, PageError> {
    let mut f = Fields {
        narrowing: Narrowing::default(),
        expiration_raw: String::new(),
        digest: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "csrf" => {}
            "remove" => {
                let i: usize = v
                    .parse()
                    .map_err(|_| bad("a removal must name a capability number"))?;
                if !f.narrowing.remove.contains(&i) {
                    f.narrowing.remove.push(i);
                }
            }
            "expiration" if v.is_empty() => {}
            "expiration" => {
                let t = OffsetDateTime::parse(v, &Rfc3339)
                    .map_err(|_| bad("the expiry must be an RFC 3339 time"))?;
                f.narrowing.expiration = Some(t);
                f.expiration_raw = v.clone();
            }
            "digest" if allow_digest => f.digest = Some(v.clone()),
            other => {
                return Err(bad(format!(
                    "unknown field {other:?}: an approval can only remove capabilities or shorten the expiry"
                )))
            }
        }
    }
    f.narrowing.remove.sort_unstable();
    Ok(f)
}

/// One capability row of the page.
struct ItemView {
    index: usize,
    text: String,
    ability: String,
    resource: String,
    risks: Vec<String>,
    removed: bool,
}

struct ExpiryOption {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "approve.html")]
struct ApprovePage {
    chrome: Chrome,
    id: String,
    requester: String,
    domain: String,
    uri: String,
    consent: String,
    items: Vec<ItemView>,
    expiry_risks: Vec<String>,
    expiry_options: Vec<ExpiryOption>,
    original: String,
    fill_address: Option<String>,
}

fn expiry_options(msg: &Message, now: OffsetDateTime) -> Vec<ExpiryOption> {
    let keep = match &msg.expiration_time {
        Some(t) => format!("Keep: until {}", format_date(Timestamp::from(t.datetime()))),
        None => "Keep: never expires".into(),
    };
    let mut out = vec![ExpiryOption {
        value: String::new(),
        label: keep,
    }];
    for (secs, name) in [
        (600, "10 minutes"),
        (3600, "1 hour"),
        (86_400, "1 day"),
        (7 * 86_400, "7 days"),
        (30 * 86_400, "30 days"),
    ] {
        let t = now + time::Duration::seconds(secs);
        if msg
            .expiration_time
            .as_ref()
            .is_none_or(|o| t < o.datetime())
        {
            if let Ok(value) = t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339) {
                out.push(ExpiryOption {
                    value,
                    label: format!("{name} (until {})", format_date(Timestamp::from(t))),
                });
            }
        }
    }
    out
}

fn items_view(read: &Request, removed: &[usize]) -> Vec<ItemView> {
    read.items
        .iter()
        .enumerate()
        .map(|(index, it)| ItemView {
            index,
            text: it.text.clone(),
            ability: it.ability.clone(),
            resource: it.resource.clone(),
            risks: it.risks.clone(),
            removed: removed.contains(&index),
        })
        .collect()
}

fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Authenticated, PageError> {
    match session::current(state, headers)? {
        Some(s) => Ok(Authenticated {
            user_id: s.user_id,
            session_hash: s.id_hash,
            method: s.method,
            last_uv_at: s.last_uv_at,
        }),
        None => Err(PageError(
            StatusCode::UNAUTHORIZED,
            "Sign in first".into(),
            "Sign in to OpenKey in this browser, then open the approval link again.".into(),
        )),
    }
}

/// `GET /approve/{id}`.
pub async fn approve_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let auth = signed_in(&state, &headers)?;
        let req = pending(&state, &id)?;
        let (read, _, owner) = read_for(&state, &auth, &req)?;
        let now = OffsetDateTime::now_utc();
        let msg = &read.message;
        let page = ApprovePage {
            chrome: Chrome::new("Approve a request", csrf.0, true),
            id: req.id.clone(),
            requester: requester(&state, &req),
            domain: msg.domain.clone(),
            uri: msg.uri.clone(),
            consent: narrow::consent(msg).unwrap_or_default(),
            items: items_view(&read, &[]),
            expiry_risks: narrow::expiry_risks(msg, now),
            expiry_options: expiry_options(msg, now),
            original: req.message.clone(),
            fill_address: (msg.address.to_eip55() == narrow::PLACEHOLDER_ADDRESS)
                .then(|| owner.to_eip55()),
        };
        Ok::<_, PageError>(render(&page))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Template)]
#[template(path = "approve_review.html")]
struct ReviewPage {
    chrome: Chrome,
    id: String,
    requester: String,
    consent: String,
    items: Vec<ItemView>,
    expiry_risks: Vec<String>,
    final_message: String,
    digest: String,
    expiration: String,
    fresh: bool,
}

/// The final message for a narrowing, and its digest.
fn build(
    state: &AppState,
    auth: &Authenticated,
    req: &ApprovalRequest,
    n: &Narrowing,
) -> Result<(Request, String, Message, [u8; 32]), PageError> {
    let (read, key_id, owner) = read_for(state, auth, req)?;
    let fin = narrow::narrow(&read, &owner, n, OffsetDateTime::now_utc()).map_err(|e| {
        refused(state, &auth.user_id, &req.id, &e.to_string());
        bad(e.to_string())
    })?;
    let digest = fin.eip191_hash();
    Ok((read, key_id, fin, digest))
}

/// `GET /approve/{id}/review?remove=…&expiration=…`.
pub async fn review_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let run = async {
        let auth = signed_in(&state, &headers)?;
        let req = pending(&state, &id)?;
        let f = parse_fields(&pairs, false)?;
        let (read, _, fin, digest) = build(&state, &auth, &req, &f.narrowing)?;
        let page = ReviewPage {
            chrome: Chrome::new("Review and approve", csrf.0, true),
            id: req.id.clone(),
            requester: requester(&state, &req),
            consent: narrow::consent(&fin).unwrap_or_default(),
            items: items_view(&read, &f.narrowing.remove),
            expiry_risks: narrow::expiry_risks(&fin, OffsetDateTime::now_utc()),
            final_message: fin.to_string(),
            digest: format!("0x{}", hex::encode(digest)),
            expiration: f.expiration_raw,
            fresh: auth.fresh_uv(&state).is_ok(),
        };
        Ok::<_, PageError>(render(&page))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

fn fresh(state: &AppState, auth: &Authenticated, id: &str) -> Result<UserVerified, Box<Response>> {
    auth.fresh_uv(state).map_err(|e| {
        refused(
            state,
            &auth.user_id,
            id,
            "no passkey check within the window",
        );
        Box::new(match e {
            AppError::FreshUvRequired { window_secs } => {
                crate::web::page::reverify_page(window_secs, String::new())
            }
            other => PageError::from(other).into_response(),
        })
    })
}

/// `POST /approve/{id}/approve` (form: `remove`…, `expiration`, `digest`).
pub async fn approve(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let run = async {
        let req = pending(&state, &id)?;
        let f = parse_fields(&pairs, true)?;
        let uv = match fresh(&state, &auth, &id) {
            Ok(uv) => uv,
            Err(page) => return Ok(*page),
        };
        let (_, key_id, fin, digest) = build(&state, &auth, &req, &f.narrowing)?;
        let shown = f.digest.unwrap_or_default();
        let shown = hex::decode(shown.trim_start_matches("0x")).unwrap_or_default();
        if !bool::from(shown.as_slice().ct_eq(digest.as_slice())) {
            refused(
                &state,
                &auth.user_id,
                &id,
                "the digest approved is not the message rebuilt",
            );
            return Err(PageError(
                StatusCode::CONFLICT,
                "Not what was shown".into(),
                "The approval does not match the message you reviewed. Review it again.".into(),
            ));
        }
        let final_text = fin.to_string();
        let signed = state
            .keys
            .sign_digest(
                &uv,
                &key_id,
                &digest,
                AuditNote {
                    event: EVENT,
                    detail: serde_json::json!({
                        "request": id,
                        "domain": fin.domain,
                        "uri": fin.uri,
                        "digest": format!("0x{}", hex::encode(digest)),
                        "removed": f.narrowing.remove.len(),
                        "expiration_time": fin.expiration_time.as_ref().map(ToString::to_string),
                    }),
                },
            )
            .map_err(AppError::from)?;
        let code = (req.flow == "redirect").then(random_token);
        let decision = ApprovalDecision {
            user_id: auth.user_id.clone(),
            final_message: final_text,
            digest: digest.to_vec(),
            signature: signed.hex(),
            address: signed.address.clone(),
            code_hash: code.as_ref().map(|c| sha256(c.as_bytes())),
            code_expires_at: code.as_ref().map(|_| now_ms() + super::CODE_TTL_MS),
        };
        if !state
            .store
            .approve_request(&id, &decision, now_ms())
            .map_err(AppError::from)?
        {
            return Err(PageError(
                StatusCode::GONE,
                "Request closed".into(),
                "This request was decided meanwhile.".into(),
            ));
        }
        match (code, &req.return_url) {
            (Some(code), Some(url)) => {
                Ok(redirect_back(url, &[("code", &code)], req.state.as_deref()))
            }
            _ => Ok(message(
                StatusCode::OK,
                Chrome::new("Approved", "", true),
                "Approved",
                "Signed. You can return to your device; it picks the result up by itself.",
            )),
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// 303 to `url` with extra query pairs (and the app's `state`).
fn redirect_back(url: &str, pairs: &[(&str, &str)], app_state: Option<&str>) -> Response {
    match url::Url::parse(url) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
                if let Some(s) = app_state {
                    q.append_pair("state", s);
                }
            }
            Redirect::to(u.as_str()).into_response()
        }
        Err(_) => PageError::from(AppError::Internal("stored return URL".into())).into_response(),
    }
}

/// `POST /approve/{id}/deny`.
pub async fn deny(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let req = pending(&state, &id)?;
        if !state
            .store
            .deny_request(&id, &auth.user_id, now_ms())
            .map_err(AppError::from)?
        {
            return Err(PageError(
                StatusCode::GONE,
                "Request closed".into(),
                "This request was decided meanwhile.".into(),
            ));
        }
        let _ = audit::record(
            state.store.as_ref(),
            &auth.user_id,
            "approve.deny",
            audit::DONE,
            None,
            serde_json::json!({ "request": id, "flow": req.flow }),
        );
        match &req.return_url {
            Some(url) => Ok(redirect_back(
                url,
                &[("error", "access_denied")],
                req.state.as_deref(),
            )),
            None => Ok(message(
                StatusCode::OK,
                Chrome::new("Denied", "", true),
                "Denied",
                "Nothing was signed. The device is told the request was denied.",
            )),
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Template)]
#[template(path = "approve_device.html")]
struct DevicePage {
    chrome: Chrome,
    user_code: String,
}

#[derive(serde::Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// `GET /approve/device[?user_code=…]`.
pub async fn device_page(
    _auth: Authenticated,
    csrf: CsrfToken,
    Query(q): Query<DeviceQuery>,
) -> Response {
    render(&DevicePage {
        chrome: Chrome::new("Enter the device code", csrf.0, true),
        user_code: q.user_code.unwrap_or_default().chars().take(16).collect(),
    })
}

/// The device-code form.
#[derive(serde::Deserialize)]
pub struct DeviceForm {
    #[allow(dead_code)]
    csrf: Option<String>,
    user_code: String,
}

/// `POST /approve/device`: finds the request and opens its approval page.
pub async fn device_enter(
    State(state): State<AppState>,
    auth: Authenticated,
    Form(f): Form<DeviceForm>,
) -> Response {
    if USER_CODE_TRIES.check_key(&auth.user_id).is_err() {
        return PageError(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many tries".into(),
            "Wait a minute before entering another code.".into(),
        )
        .into_response();
    }
    let code = normalize_user_code(&f.user_code);
    match state
        .store
        .approval_by_user_code(&sha256(code.as_bytes()), now_ms())
    {
        Ok(Some(req)) => Redirect::to(&format!("/approve/{}", req.id)).into_response(),
        Ok(None) => {
            let _ = audit::record(
                state.store.as_ref(),
                &auth.user_id,
                "approve.device",
                audit::REFUSED,
                None,
                serde_json::json!({ "reason": "unknown or expired user code" }),
            );
            bad("No pending request has this code. Check it, or start again on the device.")
                .into_response()
        }
        Err(e) => PageError::from(AppError::from(e)).into_response(),
    }
}

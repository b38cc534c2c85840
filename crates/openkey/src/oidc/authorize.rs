//! `GET /oidc/authorize` (the authorization request) and `POST /oidc/authorize` (the consent
//! form). The client and redirect URI are checked first: when either is wrong the person sees
//! an error page and is never redirected. Every later error goes back to the client's redirect
//! URI as `error=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
//!
//! The pending request lives server-side (a single-use ceremony bound to the user, 10 min); the
//! consent form carries only its id, the CSRF token and the decision.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::Url;

use super::{digest, random_token, CODE_TTL_MS, SCOPES};
use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::{Ceremony, OidcClient, OidcCode, OidcGrant, Session};
use crate::web::page::{message, render_status};
use crate::web::{render, session, Authenticated, Chrome, CsrfToken};

/// Ceremony kind of a pending consent.
const CONSENT_KIND: &str = "oidc-consent";
/// How long the consent form stays valid.
const CONSENT_TTL_MS: i64 = 10 * 60 * 1000;
/// Longest `state` / `nonce` accepted.
const MAX_PARAM: usize = 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/oidc/authorize", get(authorize).post(consent))
}

/// A validated authorization request (what the consent screen shows and the code binds).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
}

/// Where an error goes: a page (client or redirect URI unusable) or back to the client.
enum Failure {
    Page(StatusCode, &'static str),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: &'static str,
    },
}

fn error_page(status: StatusCode, text: &str, csrf: &str, signed_in: bool) -> Response {
    message(
        status,
        Chrome::new("Sign-in request refused", csrf, signed_in),
        "This sign-in request cannot be used",
        text,
    )
}

/// `redirect_uri?<params>` keeping the registered URI's own query.
fn back_to(state: &AppState, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "unusable redirect URI").into_response();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        q.append_pair("iss", &state.config.issuer);
    }
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn fail(state: &AppState, f: Failure, csrf: &str, signed_in: bool) -> Response {
    match f {
        Failure::Page(status, text) => error_page(status, text, csrf, signed_in),
        Failure::Redirect {
            redirect_uri,
            state: st,
            error,
            description,
        } => {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(s) = st.as_deref() {
                params.push(("state", s));
            }
            back_to(state, &redirect_uri, &params)
        }
    }
}

/// Parses a query, refusing repeated parameters (RFC 6749 §3.1).
fn parse_query(raw: Option<&str>) -> Result<HashMap<String, String>, &'static str> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err("a parameter is repeated");
        }
    }
    Ok(out)
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks client and redirect URI (page errors), then the rest (redirect errors).
fn validate(
    state: &AppState,
    q: &HashMap<String, String>,
) -> Result<(OidcClient, Pending), Failure> {
    let client_id = q.get("client_id").ok_or(Failure::Page(
        StatusCode::BAD_REQUEST,
        "The request names no client (client_id is missing).",
    ))?;
    let client = state
        .store
        .client(client_id)
        .map_err(|e| {
            tracing::error!(error = %e, "client lookup failed");
            Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, "Try again later.")
        })?
        .ok_or(Failure::Page(
            StatusCode::BAD_REQUEST,
            "The application asking to sign you in is not registered here.",
        ))?;
    let redirect_uri = q.get("redirect_uri").ok_or(Failure::Page(
        StatusCode::BAD_REQUEST,
        "The request names no redirect URI.",
    ))?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Failure::Page(
            StatusCode::BAD_REQUEST,
            "The address this request would send you back to is not registered for the application.",
        ));
    }
    let st = q.get("state").cloned();
    let refuse = |error: &'static str, description: &'static str| Failure::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: st.clone(),
        error,
        description,
    };
    if st.as_ref().is_some_and(|s| s.len() > MAX_PARAM) {
        return Err(refuse("invalid_request", "state is too long"));
    }
    if q.contains_key("request") || q.contains_key("request_uri") {
        return Err(refuse(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
        None => return Err(refuse("invalid_request", "response_type is missing")),
    }
    if q.get("response_mode").is_some_and(|m| m != "query") {
        return Err(refuse(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let requested: Vec<&str> = q
        .get("scope")
        .map(|s| s.split(' ').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    if !requested.contains(&"openid") {
        return Err(refuse("invalid_scope", "scope must include openid"));
    }
    let scope = SCOPES
        .iter()
        .filter(|s| requested.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let nonce = q.get("nonce").cloned();
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_PARAM) {
        return Err(refuse("invalid_request", "nonce is too long"));
    }
    let challenge = q.get("code_challenge").cloned();
    match (challenge.as_deref(), q.get("code_challenge_method").map(String::as_str)) {
        (None, None) if client.secret_hash.is_none() => {
            return Err(refuse(
                "invalid_request",
                "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
            ))
        }
        (None, None) => {}
        (None, Some(_)) => return Err(refuse("invalid_request", "code_challenge is missing")),
        (Some(_), Some("S256")) => {}
        (Some(_), _) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is refused)",
            ))
        }
    }
    if challenge
        .as_ref()
        .is_some_and(|c| c.len() != 43 || !is_b64url(c))
    {
        return Err(refuse(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok((
        client.clone(),
        Pending {
            client_id: client.id,
            redirect_uri: redirect_uri.clone(),
            state: st,
            scope,
            nonce,
            code_challenge: challenge,
            auth_time: 0,
        },
    ))
}

fn auth_time(s: &Session) -> i64 {
    s.created_at.max(s.last_uv_at.unwrap_or(0)) / 1000
}

fn covers(remembered: &str, scope: &str) -> bool {
    let have: Vec<&str> = remembered.split(' ').collect();
    scope.split(' ').all(|s| have.contains(&s))
}

/// Stores grant + code and redirects back with the code.
fn issue_code(state: &AppState, user_id: &str, p: &Pending) -> Response {
    let now = now_ms();
    let code = random_token();
    let grant = OidcGrant {
        id: random_token(),
        client_id: p.client_id.clone(),
        user_id: user_id.to_string(),
        scope: p.scope.clone(),
        nonce: p.nonce.clone(),
        auth_time: p.auth_time,
        created_at: now,
        revoked_at: None,
    };
    let row = OidcCode {
        code_hash: digest(&code),
        grant_id: grant.id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        code_challenge: p.code_challenge.clone(),
        expires_at: now + CODE_TTL_MS,
    };
    if let Err(e) = state.store.create_code(&grant, &row) {
        tracing::error!(error = %e, "storing an authorization code failed");
        let mut params = vec![("error", "server_error")];
        if let Some(s) = p.state.as_deref() {
            params.push(("state", s));
        }
        return back_to(state, &p.redirect_uri, &params);
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = p.state.as_deref() {
        params.push(("state", s));
    }
    back_to(state, &p.redirect_uri, &params)
}

#[derive(Template)]
#[template(path = "oidc_consent.html")]
struct ConsentPage {
    chrome: Chrome,
    client_name: String,
    redirect_origin: String,
    shares: Vec<String>,
    request_id: String,
}

#[derive(Template)]
#[template(path = "oidc_signin.html")]
struct SigninPage {
    chrome: Chrome,
    client_name: String,
}

fn shares(state: &AppState, user_id: &str, scope: &str) -> Vec<String> {
    let mut out = vec!["an identifier for your OpenKey account".to_string()];
    if let Ok(key) = state.keys.owner_key(user_id) {
        out.push(format!(
            "your owner key's public identity {}",
            crate::keys::owner_did(&key.address)
        ));
    }
    if scope.split(' ').any(|s| s == "email") {
        let email = state
            .store
            .user_by_id(user_id)
            .ok()
            .flatten()
            .map(|u| u.email)
            .unwrap_or_default();
        out.push(format!("your email address {email}"));
    }
    out
}

async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
    RawQuery(raw): RawQuery,
) -> Response {
    let current = match session::current(&state, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let signed_in = current.is_some();
    let q = match parse_query(raw.as_deref()) {
        Ok(q) => q,
        Err(text) => return error_page(StatusCode::BAD_REQUEST, text, &csrf.0, signed_in),
    };
    let (client, mut pending) = match validate(&state, &q) {
        Ok(v) => v,
        Err(f) => return fail(&state, f, &csrf.0, signed_in),
    };
    let prompt: Vec<&str> = q
        .get("prompt")
        .map(|p| p.split(' ').collect())
        .unwrap_or_default();
    let redirect_error = |error: &'static str, description: &'static str| Failure::Redirect {
        redirect_uri: pending.redirect_uri.clone(),
        state: pending.state.clone(),
        error,
        description,
    };
    let Some(session) = current else {
        if prompt.contains(&"none") {
            let f = redirect_error("login_required", "the user is not signed in");
            return fail(&state, f, &csrf.0, false);
        }
        return render_status(
            StatusCode::UNAUTHORIZED,
            &SigninPage {
                chrome: Chrome::new("Sign in to continue", csrf.0, false),
                client_name: client.name,
            },
        );
    };
    pending.auth_time = auth_time(&session);
    let remembered = match state.store.consent(&session.user_id, &client.id) {
        Ok(r) => r,
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
    if !prompt.contains(&"consent") && remembered.is_some_and(|r| covers(&r, &pending.scope)) {
        return issue_code(&state, &session.user_id, &pending);
    }
    if prompt.contains(&"none") {
        let f = redirect_error("consent_required", "the user has not consented yet");
        return fail(&state, f, &csrf.0, true);
    }
    let request_id = random_token();
    let data = match serde_json::to_string(&pending) {
        Ok(d) => d,
        Err(e) => return crate::error::AppError::Internal(e.to_string()).into_response(),
    };
    if let Err(e) = state.store.put_ceremony(&Ceremony {
        id: request_id.clone(),
        kind: CONSENT_KIND.into(),
        user_id: Some(session.user_id.clone()),
        data,
        expires_at: now_ms() + CONSENT_TTL_MS,
    }) {
        return crate::error::AppError::from(e).into_response();
    }
    let redirect_origin = Url::parse(&pending.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut res = render(&ConsentPage {
        chrome: Chrome::new(format!("Sign in to {}", client.name), csrf.0, true),
        shares: shares(&state, &session.user_id, &pending.scope),
        client_name: client.name,
        redirect_origin: redirect_origin.clone(),
        request_id,
    });
    // The consent form posts here and is answered with a redirect to the client: CSP
    // `form-action` must allow that origin too.
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self' {redirect_origin}"
    )) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    res
}

#[derive(Deserialize)]
struct ConsentForm {
    request: String,
    decision: String,
    remember: Option<String>,
}

async fn consent(
    State(state): State<AppState>,
    auth: Authenticated,
    csrf: CsrfToken,
    Form(form): Form<ConsentForm>,
) -> Response {
    let gone = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request expired or was answered already. Start again from the application.",
            &csrf.0,
            true,
        )
    };
    let taken = match state
        .store
        .take_ceremony(&form.request, CONSENT_KIND, now_ms())
    {
        Ok(t) => t,
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
    let Some(c) = taken else {
        return gone();
    };
    let owner_ok = c
        .user_id
        .as_deref()
        .is_some_and(|u| bool::from(u.as_bytes().ct_eq(auth.user_id.as_bytes())));
    let Ok(pending) = serde_json::from_str::<Pending>(&c.data) else {
        return gone();
    };
    if !owner_ok {
        return gone();
    }
    // The client may have been removed, or the URI unregistered, meanwhile.
    let still = state
        .store
        .client(&pending.client_id)
        .ok()
        .flatten()
        .is_some_and(|cl| cl.redirect_uris.contains(&pending.redirect_uri));
    if !still {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The application is no longer registered here.",
            &csrf.0,
            true,
        );
    }
    match form.decision.as_str() {
        "allow" => {
            if form.remember.is_some() {
                if let Err(e) = state.store.remember_consent(
                    &auth.user_id,
                    &pending.client_id,
                    &pending.scope,
                    now_ms(),
                ) {
                    return crate::error::AppError::from(e).into_response();
                }
            }
            let mut res = issue_code(&state, &auth.user_id, &pending);
            *res.status_mut() = StatusCode::SEE_OTHER;
            res
        }
        _ => {
            let mut params = vec![
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ];
            if let Some(s) = pending.state.as_deref() {
                params.push(("state", s));
            }
            let mut res = back_to(&state, &pending.redirect_uri, &params);
            *res.status_mut() = StatusCode::SEE_OTHER;
            res
        }
    }
}

//! `POST /oidc/token`: `authorization_code` (single-use 60 s codes bound to client, redirect
//! URI and PKCE verifier; a replay revokes the grant) and `refresh_token` (rotation; a replayed
//! rotated token revokes the family). Client authentication: `client_secret_basic` or
//! `client_secret_post` for confidential clients, `none` for public ones.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{no_store, OAuthError};
use super::signing::{self, SignerCell};
use super::{digest, random_token, ACCESS_TTL_SECS, REFRESH_TTL_MS};
use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::{CodeRedemption, OidcClient, OidcGrant, OidcToken, Refresh, TokenKind};

type Params = HashMap<String, String>;

/// Parses the form body, refusing repeated parameters (RFC 6749 §3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request("a parameter is repeated"));
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `client_secret_basic` credentials, if the header is present.
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let text = value.to_str().map_err(|_| bad())?;
    let Some(b64) = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))
    else {
        return Err(OAuthError::invalid_client(
            "only Basic client authentication is accepted here",
        ));
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let pair = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = pair.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
    Ok(Some((percent_decode(id), percent_decode(secret))))
}

/// Authenticates the client of a token request.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<OidcClient, OAuthError> {
    let (client_id, secret) = match basic(headers)? {
        Some((id, secret)) => {
            if params.contains_key("client_secret") {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            if params.get("client_id").is_some_and(|c| *c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(secret))
        }
        None => {
            let id = params
                .get("client_id")
                .cloned()
                .ok_or_else(|| OAuthError::invalid_client("client authentication is missing"))?;
            (id, params.get("client_secret").cloned())
        }
    };
    let client = state
        .store
        .client(&client_id)?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) => {
            let given = Sha256::digest(given.as_bytes());
            if bool::from(given[..].ct_eq(stored.as_slice())) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client("client authentication failed"))
            }
        }
        (Some(_), None) => Err(OAuthError::invalid_client(
            "this client must authenticate with its secret",
        )),
        (None, None) => Ok(client),
        (None, Some(_)) => Err(OAuthError::invalid_client("a public client has no secret")),
    }
}

/// RFC 7636 §4.1 verifier syntax.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    did: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    id_token: String,
    scope: String,
}

fn has_scope(scope: &str, s: &str) -> bool {
    scope.split(' ').any(|x| x == s)
}

/// The user's `did` and, with scope `email`, email (shared by ID token and userinfo).
pub fn identity_claims(
    state: &AppState,
    grant: &OidcGrant,
) -> Result<(String, Option<String>), OAuthError> {
    let user = state
        .store
        .user_by_id(&grant.user_id)?
        .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
    let key = state
        .keys
        .owner_key(&grant.user_id)
        .map_err(OAuthError::server)?;
    let email = has_scope(&grant.scope, "email").then_some(user.email);
    Ok((crate::keys::owner_did(&key.address), email))
}

fn new_tokens(now: i64, grant_id: &str) -> (String, String, [OidcToken; 2]) {
    let access = random_token();
    let refresh = random_token();
    let rows = [
        OidcToken {
            token_hash: digest(&access),
            kind: TokenKind::Access,
            grant_id: grant_id.to_string(),
            expires_at: now + ACCESS_TTL_SECS * 1000,
        },
        OidcToken {
            token_hash: digest(&refresh),
            kind: TokenKind::Refresh,
            grant_id: grant_id.to_string(),
            expires_at: now + REFRESH_TTL_MS,
        },
    ];
    (access, refresh, rows)
}

async fn respond(
    state: &AppState,
    cell: &SignerCell,
    grant: &OidcGrant,
    access: String,
    refresh: String,
    with_nonce: bool,
) -> Result<Response, OAuthError> {
    let (did, email) = identity_claims(state, grant)?;
    let now = now_ms() / 1000;
    let claims = IdClaims {
        iss: &state.config.issuer,
        sub: &grant.user_id,
        aud: &grant.client_id,
        exp: now + ACCESS_TTL_SECS,
        iat: now,
        auth_time: grant.auth_time,
        nonce: if with_nonce {
            grant.nonce.as_deref()
        } else {
            None
        },
        did,
        email,
    };
    let id_token = signing::signer(cell, state).await?.sign(&claims)?;
    let mut res = Json(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: ACCESS_TTL_SECS,
        refresh_token: refresh,
        id_token,
        scope: grant.scope.clone(),
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

/// Checks a fresh code against the request; `Err` spends the grant.
fn check_code(
    client: &OidcClient,
    code: &crate::store::OidcCode,
    grant: &OidcGrant,
    params: &Params,
    now: i64,
) -> Result<(), OAuthError> {
    if grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if code.expires_at <= now {
        return Err(OAuthError::invalid_grant("the code expired"));
    }
    if required(params, "redirect_uri")? != code.redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (&code.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !valid_verifier(verifier) {
                return Err(OAuthError::invalid_grant("malformed code_verifier"));
            }
            if !bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "the authorization request had no code_challenge",
            ))
        }
        (None, None) => {}
    }
    Ok(())
}

async fn code_grant(
    state: &AppState,
    cell: &SignerCell,
    client: &OidcClient,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = required(params, "code")?;
    required(params, "redirect_uri")?;
    let now = now_ms();
    let (code, grant) = match state.store.redeem_code(&digest(code), now)? {
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("unknown code")),
        CodeRedemption::Reused => {
            tracing::warn!(client = %client.id, "authorization code replayed; grant revoked");
            return Err(OAuthError::invalid_grant(
                "the code was used already; tokens issued from it are revoked",
            ));
        }
        CodeRedemption::Fresh(found) => *found,
    };
    if let Err(e) = check_code(client, &code, &grant, params, now) {
        state.store.revoke_grant(&grant.id, now)?;
        return Err(e);
    }
    let (access, refresh, rows) = new_tokens(now, &grant.id);
    if !state.store.issue_tokens(&grant.id, &rows)? {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    }
    respond(state, cell, &grant, access, refresh, true).await
}

async fn refresh_grant(
    state: &AppState,
    cell: &SignerCell,
    client: &OidcClient,
    params: &Params,
) -> Result<Response, OAuthError> {
    // A `scope` parameter is accepted and ignored: the grant's scope is never widened, and the
    // answer names the scope in force.
    let token = required(params, "refresh_token")?;
    let now = now_ms();
    let (access, refresh, rows) = new_tokens(now, "");
    match state
        .store
        .rotate_refresh(&digest(token), &client.id, now, &rows)?
    {
        Refresh::Invalid => Err(OAuthError::invalid_grant(
            "unknown, expired or revoked refresh token",
        )),
        Refresh::Reused => {
            tracing::warn!(client = %client.id, "rotated refresh token replayed; family revoked");
            Err(OAuthError::invalid_grant(
                "the refresh token was used already; every token of this grant is revoked",
            ))
        }
        Refresh::Rotated(grant) => respond(state, cell, &grant, access, refresh, false).await,
    }
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    Extension(cell): Extension<SignerCell>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = parse_form(&headers, &body)?;
    let grant_type = required(&params, "grant_type")?.to_string();
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(OAuthError::unsupported_grant_type(
            "grant_type must be authorization_code or refresh_token",
        ));
    }
    let client = authenticate(&state, &headers, &params)?;
    if rand::random::<u8>() == 0 {
        state.store.purge_oidc(now_ms())?;
    }
    if grant_type == "authorization_code" {
        code_grant(&state, &cell, &client, &params).await
    } else {
        refresh_grant(&state, &cell, &client, &params).await
    }
}

//! Signed KV URLs: `POST /signed/kv` mints an expiring bearer URL for one KV object,
//! `GET /signed/kv/<ticketId>` serves it (one byte range, `If-Range`, `If-None-Match`).
//!
//! Stricter than the reference, on purpose: minting checks a given `contentHash`/`etag`
//! against the object's current version (412) rather than binding to any hash; the expiry is
//! capped by the whole delegation chain, not only the cited delegations; and every read
//! re-checks that the delegations the minting invocation cited (and their ancestors) are
//! still unrevoked and valid (`hooks::authority_holds`, as SSE streams and webhooks do), so
//! revoking the delegation behind a URL stops it at once. Live tickets are bounded per space
//! and per issuer, and expired ones are deleted.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::{validate_path, Resource, SpaceId};
use tokio::io::AsyncReadExt as _;

use super::authorized::Authorized;
use super::kv::{etag, http_date, none_match};
use super::openapi::SignedKvResult;
use crate::clock::{now, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::hooks::{authority_holds, proofs_of, Lapse};
use crate::signed::{check_id, mint_id, parse_content_hash, parse_range, MAX_TTL_SECS};
use crate::state::SharedState;
use crate::store::{KvEntry, SignedTicketRow, TicketBounds, ValueLocation};

/// Object metadata a signed URL passes on (never the owner's `x-tinycloud-meta-*`).
const SERVED_METADATA: [&str; 4] = [
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
];

/// `POST /signed/kv` request. Field names are camelCase as the reference node reads them; the
/// snake_case spellings the reference JS SDK sends are accepted too. Unknown fields are
/// ignored, as by the reference.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedKvRequest {
    /// The space id.
    space: String,
    /// The KV key (as signed; never normalized).
    path: String,
    /// Lifetime in seconds (default and maximum 300).
    #[serde(default, alias = "ttl_seconds")]
    ttl_seconds: Option<u64>,
    /// The content hash to bind to (64 hex digits, or the ETag `"blake3-<hex>"`); must be the
    /// object's current one. Default: the current one.
    #[serde(default, alias = "content_hash")]
    content_hash: Option<String>,
    /// The ETag to bind to (same meaning as `contentHash`; both must agree when both are given).
    #[serde(default)]
    etag: Option<String>,
    /// Not supported (400 when present).
    #[serde(default, alias = "max_uses")]
    #[schema(value_type = Option<u64>)]
    max_uses: Option<serde_json::Value>,
}

/// `POST /signed/kv`: mint a signed read URL for one KV object.
#[utoipa::path(
    post, path = "/signed/kv", tag = "signed",
    summary = "Mint a signed KV read URL",
    description = "Verifies the invocation as `/invoke` does (signature, chain, revocation, single use); it must carry `tinycloud.kv/get` on a resource covering `<space>/kv/<path>`. The ticket is bound to the object's current content hash and expires at the earliest of `ttlSeconds`, 300 s, the invocation's and every delegation's expiry in its chain. The URL is relative to the node.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = SignedKvRequest,
    responses(
        (status = 200, description = "The signed URL", body = SignedKvResult),
        (status = 400, description = "Malformed token or request (`maxUses` is not supported)", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the URL would expire at once", body = String, content_type = "text/plain"),
        (status = 403, description = "The invocation carries no `tinycloud.kv/get` covering the key", body = String, content_type = "text/plain"),
        (status = 404, description = "Space or key not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 412, description = "`contentHash`/`etag` is not the object's current version", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many live signed URLs in this space or by this issuer", body = String, content_type = "text/plain"),
    )
)]
pub async fn mint(
    State(state): State<SharedState>,
    authz: Authorized,
    body: Body,
) -> ApiResult<Json<SignedKvResult>> {
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("body too large"))?;
    let req: SignedKvRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid signed URL request: {e}")))?;
    if req.max_uses.is_some() {
        return Err(ApiError::bad_request(
            "maxUses is not supported for signed KV URLs",
        ));
    }
    let space: SpaceId = req
        .space
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Invalid space ID: {e}")))?;
    if req.path.is_empty() {
        return Err(ApiError::bad_request("a KV key is required"));
    }
    validate_path(&req.path).map_err(|e| ApiError::bad_request(format!("Invalid path: {e}")))?;
    let parse = |v: &Option<String>, what: &str| {
        v.as_deref()
            .map(|v| {
                parse_content_hash(v).ok_or_else(|| {
                    ApiError::bad_request(format!("{what} must be a blake3 hex digest"))
                })
            })
            .transpose()
    };
    let bound = match (
        parse(&req.content_hash, "contentHash")?,
        parse(&req.etag, "etag")?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                "contentHash and etag must identify the same object",
            ))
        }
        (a, b) => a.or(b),
    };
    let space_id = space.to_string();
    let now = authz.at();
    let wanted: Resource = format!("{space_id}/kv/{}", req.path)
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Invalid path: {e}")))?;
    let get: Ability = "tinycloud.kv/get"
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    if !authz.invocation().info().grants(&wanted, &get) {
        return Err(ApiError::forbidden("signed URL scope is not authorized"));
    }
    // Only once the scope is granted: whether a space exists is nobody else's business.
    if !state.space_exists(&space_id) {
        return Err(ApiError::not_found("Space not found"));
    }
    let proofs = proofs_of(authz.invocation());
    let chain_expiry = match authority_holds(&state.auth, &proofs, now).await {
        Ok(e) => e,
        Err(Lapse::Ended(why)) => return Err(ApiError::unauthorized(why)),
        Err(Lapse::Store(e)) => return Err(e.into()),
    };
    let entry = state
        .index
        .kv_get(&space_id, &req.path)
        .await?
        .ok_or_else(|| ApiError::not_found("Key not found"))?;
    if bound.is_some_and(|b| b != entry.hash) {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "contentHash/etag is not the object's current version",
        ));
    }

    let max_ttl = state.config.signed_urls.max_ttl_secs.min(MAX_TTL_SECS);
    let ttl = req.ttl_seconds.unwrap_or(max_ttl).min(max_ttl);
    let mut expires = now.plus_secs(i64::try_from(ttl).unwrap_or(0)).as_millis();
    for e in [authz.invocation().info().expiration, chain_expiry]
        .into_iter()
        .flatten()
    {
        expires = expires.min(e.as_millis());
    }
    // Whole seconds, rounded down (never later than any bound).
    expires -= expires.rem_euclid(1000);
    if expires <= now.as_millis() {
        return Err(ApiError::unauthorized(
            "signed URL would expire immediately",
        ));
    }

    let (ticket_id, id_hash) = mint_id(&state.signed_key);
    let row = SignedTicketRow {
        id_hash,
        space: space_id,
        path: req.path,
        issuer: authz.invocation().invoker().to_string(),
        content_hash: entry.hash,
        proofs,
        created_at: now.as_millis(),
        expires_at: expires,
    };
    let cfg = &state.config.signed_urls;
    let bounds = TicketBounds {
        per_space: cfg.max_tickets_per_space,
        per_issuer: cfg.max_tickets_per_issuer,
        now_ms: now.as_millis(),
    };
    if !state.tickets.create_signed_ticket(&row, bounds).await? {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live signed URLs in this space (they expire within 5 minutes)",
        ));
    }
    Ok(Json(SignedKvResult {
        url: format!("/signed/kv/{ticket_id}"),
        ticket_id,
        expires_at: rfc3339(expires),
    }))
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The headers of every successful answer (200, 206, 304).
fn served_headers(entry: &KvEntry) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in &entry.metadata {
        if SERVED_METADATA.contains(&n.as_str()) {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(n, v);
            }
        }
    }
    set(&mut h, header::ETAG, &etag(&entry.hash));
    set(&mut h, header::LAST_MODIFIED, &http_date(entry.updated_at));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // A bearer URL must not leak through the Referer of a page it serves, and what it serves
    // must not run as the node's origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Sandboxed: an HTML or SVG value runs no script as the node's origin. Browsers' PDF
    // viewers refuse sandboxed documents, and PDFs run no page script, so they are exempt.
    let pdf = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pdf"));
    if !pdf {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
    h
}

/// `len` bytes of an object from byte `first`, streamed.
async fn body_slice(state: &SharedState, entry: &KvEntry, first: u64, len: u64) -> ApiResult<Body> {
    let changed = || {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "the object changed since this URL was minted",
        )
    };
    Ok(match &entry.location {
        ValueLocation::Inline(b) => {
            let start = usize::try_from(first).map_err(|_| changed())?;
            let end = usize::try_from(first.saturating_add(len)).map_err(|_| changed())?;
            Body::from(
                b.get(start..end)
                    .map(|_| b.slice(start..end))
                    .ok_or_else(changed)?,
            )
        }
        ValueLocation::Blob => {
            // Gone: the object was overwritten and its old bytes collected meanwhile.
            let reader = state
                .blobs
                .open_at(&entry.hash, first)
                .await?
                .ok_or_else(changed)?;
            Body::from_stream(tokio_util::io::ReaderStream::new(reader.take(len)))
        }
    })
}

/// `GET /signed/kv/{ticket}`: read the object a signed URL names.
#[utoipa::path(
    get, path = "/signed/kv/{ticket}", tag = "signed",
    summary = "Read through a signed KV URL",
    description = "No `Authorization`: the ticket id is the credential. Serves the object it was minted for while the ticket is unexpired, the delegations behind it still hold, and the object is unchanged. One `Range: bytes=…` gives 206 (`If-Range` with another validator gives the whole object); `If-None-Match` with its ETag gives 304.",
    params(
        ("ticket" = String, Path, description = "The ticket id from `POST /signed/kv`"),
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
        ("If-Range" = Option<String>, Header, description = "Honour `Range` only if this is the object's ETag"),
        ("If-None-Match" = Option<String>, Header, description = "304 when it lists the object's ETag (or `*`)"),
    ),
    responses(
        (status = 200, description = "The object", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 206, description = "The requested byte range (`Content-Range`)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Malformed or multiple byte ranges", body = String, content_type = "text/plain"),
        (status = 401, description = "Unknown or expired ticket, or the delegation behind it was revoked or expired", body = String, content_type = "text/plain"),
        (status = 404, description = "The object no longer exists", body = String, content_type = "text/plain"),
        (status = 412, description = "The object changed since the URL was minted", body = String, content_type = "text/plain"),
        (status = 416, description = "The range is outside the object (`Content-Range: bytes */<size>`)", body = String, content_type = "text/plain"),
    )
)]
pub async fn read(
    State(state): State<SharedState>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let unknown = || ApiError::unauthorized("signed URL ticket not found");
    let id_hash = check_id(&state.signed_key, &ticket).ok_or_else(unknown)?;
    let t = state
        .tickets
        .signed_ticket(&id_hash)
        .await?
        .ok_or_else(unknown)?;
    let now = now();
    if now.as_millis() >= t.expires_at {
        return Err(ApiError::unauthorized("signed URL expired"));
    }
    match authority_holds(&state.auth, &t.proofs, now).await {
        Ok(_) => {}
        Err(Lapse::Ended(_)) => {
            return Err(ApiError::unauthorized(
                "the delegation behind this signed URL was revoked or has expired",
            ))
        }
        Err(Lapse::Store(e)) => return Err(e.into()),
    }
    let entry = state
        .index
        .kv_get(&t.space, &t.path)
        .await?
        .ok_or_else(|| ApiError::not_found("Key not found"))?;
    if entry.hash != t.content_hash {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "the object changed since this URL was minted",
        ));
    }
    let tag = etag(&entry.hash);
    let mut out = served_headers(&entry);
    if none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let if_range_holds = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == tag));
    let range = match headers.get(header::RANGE) {
        Some(v) if if_range_holds => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Range must be ASCII"))?;
            Some(parse_range(v).map_err(ApiError::bad_request)?)
        }
        _ => None,
    };
    let size = entry.size;
    let Some(range) = range else {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let body = body_slice(&state, &entry, 0, size).await?;
        return Ok((StatusCode::OK, out, body).into_response());
    };
    let Some((first, last)) = range.resolve(size) else {
        set(&mut out, header::CONTENT_RANGE, &format!("bytes */{size}"));
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            out,
            "requested range not satisfiable",
        )
            .into_response());
    };
    let len = last - first + 1;
    set(
        &mut out,
        header::CONTENT_RANGE,
        &format!("bytes {first}-{last}/{size}"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = body_slice(&state, &entry, first, len).await?;
    Ok((StatusCode::PARTIAL_CONTENT, out, body).into_response())
}

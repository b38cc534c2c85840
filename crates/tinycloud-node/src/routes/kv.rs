//! The KV service: `tinycloud.kv/put|get|metadata|list|del` on `<space>/kv/<key>`.
//!
//! Keys are the resource path exactly as signed (never percent-decoded or normalized; dot
//! segments were refused by the protocol core). ETags are strong: `"blake3-<hex>"`. Values are
//! streamed in and out; small ones are kept inline in the index, large ones in the blob store.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::resource::SpaceResource;
use tinycloud_auth::token::Invocation;

use crate::clock::now;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::store::{EventDraft, Hash, KvEntry, KvPut, Precondition, ValueLocation, WriteOutcome};

mod batch;
mod listing;
pub use batch::{batch_put, batch_read};
use listing::list;
pub use listing::{public_list, public_object};

/// Request headers kept as object metadata (plus any `x-tinycloud-meta-*`).
const STORED_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
];
const META_PREFIX: &str = "x-tinycloud-meta-";
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The strong ETag of a value hash.
pub fn etag(hash: &Hash) -> String {
    format!("\"blake3-{}\"", hex::encode(hash))
}

fn parse_strong_etag(v: &str) -> Option<Hash> {
    let hex = v.trim().strip_prefix("\"blake3-")?.strip_suffix('"')?;
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}

/// Dispatches one KV capability (KV defines no caveats; the authorization door refuses any).
pub async fn handle(
    state: &SharedState,
    inv: &Invocation,
    cap: &Capability,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let r = super::service_resource(cap, "kv")?;
    if r.query().is_some() || r.fragment().is_some() {
        return Err(ApiError::bad_request(
            "KV resources take no query or fragment",
        ));
    }
    if headers.contains_key("x-tinycloud-expected-version") {
        return Err(ApiError::bad_request(
            "x-tinycloud-expected-version is not supported",
        ));
    }
    match cap.ability.canonical().name() {
        "put" => put(state, inv, r, headers, body).await,
        "get" => get(state, r, headers, true).await,
        "metadata" => get(state, r, headers, false).await,
        "list" => list(state, inv, r, headers).await,
        "del" => delete(state, inv, r, headers).await,
        other => Err(ApiError::bad_request(format!(
            "unknown KV ability {other:?}"
        ))),
    }
}

fn key_of(r: &SpaceResource) -> ApiResult<&str> {
    r.path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("a KV key is required (resource <space>/kv/<key>)"))
}

fn write_precondition(headers: &HeaderMap, allow_absent: bool) -> ApiResult<Precondition> {
    let if_match = headers.get(header::IF_MATCH);
    let if_none = headers.get(header::IF_NONE_MATCH);
    match (if_match, if_none) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "If-Match and If-None-Match cannot be combined",
        )),
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(parse_strong_etag)
            .map(Precondition::Matches)
            .ok_or_else(|| {
                ApiError::bad_request("If-Match needs one strong ETag \"blake3-<hex>\"")
            }),
        (None, Some(v)) if allow_absent => {
            if v.to_str().ok().map(str::trim) == Some("*") {
                Ok(Precondition::Absent)
            } else {
                Err(ApiError::bad_request(
                    "only If-None-Match: * is supported on writes",
                ))
            }
        }
        (None, Some(_)) => Err(ApiError::bad_request(
            "If-None-Match is not supported on delete",
        )),
        (None, None) => Ok(Precondition::None),
    }
}

fn collect_metadata(headers: &HeaderMap) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut total = 0;
    for (name, value) in headers {
        let n = name.as_str();
        if STORED_HEADERS.contains(&n) || n.starts_with(META_PREFIX) {
            let v = value
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("header {n} must be visible ASCII")))?;
            total += n.len() + v.len();
            out.push((n.to_owned(), v.to_owned()));
        }
    }
    if total > MAX_METADATA_BYTES {
        return Err(ApiError::bad_request(format!(
            "object metadata headers exceed {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// A request body that failed to arrive: 408 when it stalled past the body-read timeout.
fn body_error(e: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body stalled past the body-read timeout",
            );
        }
        source = err.source();
    }
    ApiError::bad_request(format!("cannot read body: {e}"))
}

fn too_large(msg: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, msg)
}

/// The log entry of a KV write by `inv` (never the value).
fn kv_event(inv: &Invocation, r: &SpaceResource, ability: &str, key: &str) -> EventDraft {
    EventDraft {
        space: r.space().to_string(),
        service: "kv".into(),
        ability: ability.into(),
        path: key.into(),
        actor: inv.invoker().to_string(),
        timestamp_ms: now().as_millis(),
    }
}

async fn put(
    state: &SharedState,
    inv: &Invocation,
    r: &SpaceResource,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let key = key_of(r)?;
    let space = r.space().to_string();
    let precondition = write_precondition(headers, true)?;
    let metadata = collect_metadata(headers)?;
    let max_value = state.config.limits.max_value_bytes;
    let cap = match state.quota_room(&space).await? {
        Some(room) => {
            let old = state.index.kv_get(&space, key).await?.map_or(0, |e| e.size);
            room.saturating_add(old).min(max_value)
        }
        None => max_value,
    };

    let inline_max = state.config.storage.inline_threshold;
    let mut hasher = blake3::Hasher::new();
    let mut inline = BytesMut::new();
    let mut writer = None;
    let mut total: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_error)?;
        total += chunk.len() as u64;
        if total > cap {
            return Err(too_large(if cap < max_value {
                format!("Write exceeds remaining storage ({cap} bytes available)")
            } else {
                format!("value larger than {max_value} bytes")
            }));
        }
        hasher.update(&chunk);
        if writer.is_none() && inline.len() + chunk.len() <= inline_max {
            inline.extend_from_slice(&chunk);
            continue;
        }
        let w = match writer.as_mut() {
            Some(w) => w,
            None => {
                let mut w = state.blobs.begin().await?;
                w.write(&inline).await?;
                inline.clear();
                writer.insert(w)
            }
        };
        w.write(&chunk).await?;
    }
    let hash: Hash = *hasher.finalize().as_bytes();
    // The limit again, now that the body is in: an override the operator set while it
    // streamed applies to this write too (the index checks it when it commits). Read and
    // committed in the space's quota turn, so a concurrent SQL write cannot grow in between.
    let _quota_turn = match state.limit_for(&space) {
        Some(_) => Some(state.quota_locks.lock(&space).await),
        None => None,
    };
    let (limit, sql_bytes) = state.index_limit_for(&space).await?;
    // Held until the index write below has committed, so the collector cannot take the blob
    // this head is about to point at.
    let mut _pin = None;
    let location = match writer {
        Some(w) => {
            _pin = Some(state.blob_gc.pins().pin(hash).await);
            w.commit(&hash).await?;
            ValueLocation::Blob
        }
        None => ValueLocation::Inline(inline.freeze()),
    };
    let outcome = state
        .index
        .kv_put(KvPut {
            space,
            key: key.to_owned(),
            entry: KvEntry {
                hash,
                size: total,
                metadata,
                updated_at: now().as_millis(),
                location,
            },
            precondition,
            limit,
            event: Some(kv_event(inv, r, "tinycloud.kv/put", key)),
        })
        .await?;
    drop(_pin);
    match outcome {
        WriteOutcome::Done(_) => {
            Ok((StatusCode::OK, [(header::ETAG, etag(&hash))]).into_response())
        }
        WriteOutcome::PreconditionFailed => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition failed: the key's current version does not match",
        )),
        WriteOutcome::QuotaExceeded { used, limit } => Err(too_large(format!(
            "Write exceeds remaining storage. Used: {} bytes, Limit: {} bytes",
            used.saturating_add(sql_bytes),
            limit.saturating_add(sql_bytes)
        ))),
        WriteOutcome::NotFound => Err(ApiError::not_found("Key not found")),
    }
}

/// `If-None-Match` (weak comparison, list or `*`) against the current ETag.
pub(crate) fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    v.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == opaque(tag))
}

pub(crate) fn http_date(ms: i64) -> String {
    let dt = tinycloud_auth::timestamp::Timestamp::from_millis(ms).to_datetime();
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    dt.format(&fmt).unwrap_or_default()
}

/// Headers describing a stored object.
pub fn object_headers(entry: &KvEntry, only_public: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in &entry.metadata {
        if only_public
            && !matches!(
                n.as_str(),
                "content-type" | "content-encoding" | "content-language"
            )
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&etag(&entry.hash)) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    // Survives responses without a body (metadata, 304), where Content-Length must be 0.
    h.insert("x-tinycloud-content-length", HeaderValue::from(entry.size));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(&http_date(entry.updated_at)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h
}

/// The body of a stored object.
pub async fn object_body(state: &SharedState, entry: &KvEntry) -> ApiResult<Body> {
    Ok(match &entry.location {
        ValueLocation::Inline(b) => Body::from(b.clone()),
        ValueLocation::Blob => {
            let reader = state.blobs.open(&entry.hash).await?.ok_or_else(|| {
                tracing::error!(hash = %hex::encode(entry.hash), "index points at a missing blob");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal storage error")
            })?;
            Body::from_stream(tokio_util::io::ReaderStream::new(reader))
        }
    })
}

async fn get(
    state: &SharedState,
    r: &SpaceResource,
    headers: &HeaderMap,
    with_body: bool,
) -> ApiResult<Response> {
    let key = key_of(r)?;
    let entry = state
        .index
        .kv_get(&r.space().to_string(), key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Key not found: {key}")))?;
    if let Some(max) = headers.get("x-tinycloud-max-response-bytes") {
        let max: u64 = max
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request("x-tinycloud-max-response-bytes must be an integer")
            })?;
        if entry.size > max {
            return Err(too_large(format!(
                "object is {} bytes, more than {max}",
                entry.size
            )));
        }
    }
    let mut out_headers = object_headers(&entry, false);
    if none_match(headers, &etag(&entry.hash)) {
        out_headers.remove(header::CONTENT_LENGTH);
        return Ok((StatusCode::NOT_MODIFIED, out_headers).into_response());
    }
    if !with_body {
        return Ok((StatusCode::OK, out_headers).into_response());
    }
    let body = object_body(state, &entry).await?;
    Ok((StatusCode::OK, out_headers, body).into_response())
}

async fn delete(
    state: &SharedState,
    inv: &Invocation,
    r: &SpaceResource,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let key = key_of(r)?;
    let pre = write_precondition(headers, false)?;
    match state
        .index
        .kv_delete(
            &r.space().to_string(),
            key,
            pre,
            Some(kv_event(inv, r, "tinycloud.kv/del", key)),
        )
        .await?
    {
        WriteOutcome::Done(Some(hash)) => {
            Ok((StatusCode::OK, [(header::ETAG, etag(&hash))]).into_response())
        }
        WriteOutcome::Done(None) => Ok(StatusCode::OK.into_response()),
        WriteOutcome::NotFound => Err(ApiError::not_found("No Such Key")),
        WriteOutcome::PreconditionFailed => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition failed: the key's current version does not match",
        )),
        WriteOutcome::QuotaExceeded { .. } => Err(ApiError::bad_request("unexpected quota result")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        let h = *blake3::hash(b"x").as_bytes();
        let t = etag(&h);
        assert_eq!(parse_strong_etag(&t), Some(h));
        assert_eq!(parse_strong_etag("W/\"blake3-00\""), None);
        assert_eq!(parse_strong_etag("\"sha-1\""), None);
        let mut hm = HeaderMap::new();
        hm.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"a\", W/{t}")).unwrap(),
        );
        assert!(none_match(&hm, &t));
        hm.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&hm, &t));
        hm.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!none_match(&hm, &t));
    }
}

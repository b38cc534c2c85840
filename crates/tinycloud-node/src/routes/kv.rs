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
use serde::{Deserialize, Serialize};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::resource::{Resource, SpaceResource};
use tinycloud_auth::token::Invocation;

use crate::clock::now;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::store::{EventDraft, Hash, KvEntry, KvPut, Precondition, ValueLocation, WriteOutcome};

/// Request headers kept as object metadata (plus any `x-tinycloud-meta-*`).
const STORED_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
];
const META_PREFIX: &str = "x-tinycloud-meta-";
const MAX_METADATA_BYTES: usize = 8 * 1024;
const MAX_CURSOR_LEN: usize = 4096;

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

/// Most capabilities in one batch read (the reference's bound).
pub const MAX_BATCH_READ: usize = 100;
/// Most value bytes one batch read returns (before base64); more is 413.
const MAX_BATCH_READ_BYTES: u64 = 16 * 1024 * 1024;

/// A batch read (§3.2 of the reference): an invocation whose capabilities (≥ 2, all verified
/// by the door) are all `kv/get` or all `kv/metadata` on keys of one space. Answers
/// `{"results": [...]}` in request order, one item per key: its value (base64) and stored
/// headers, or `KV_NOT_FOUND`.
pub async fn batch_read(state: &SharedState, caps: &[Capability]) -> ApiResult<Response> {
    use base64::Engine as _;
    if caps.len() > MAX_BATCH_READ {
        return Err(ApiError::bad_request(format!(
            "a batch read names at most {MAX_BATCH_READ} keys"
        )));
    }
    let with_body = caps
        .first()
        .is_some_and(|c| c.ability.canonical().name() == "get");
    let mut found = Vec::with_capacity(caps.len());
    let mut total: u64 = 0;
    for cap in caps {
        let r = super::service_resource(cap, "kv")?;
        if r.query().is_some() || r.fragment().is_some() {
            return Err(ApiError::bad_request(
                "KV resources take no query or fragment",
            ));
        }
        let key = key_of(r)?.to_owned();
        let entry = state.index.kv_get(&r.space().to_string(), &key).await?;
        if with_body {
            total = total.saturating_add(entry.as_ref().map_or(0, |e| e.size));
            if total > MAX_BATCH_READ_BYTES {
                return Err(too_large(format!(
                    "a batch read returns at most {MAX_BATCH_READ_BYTES} value bytes"
                )));
            }
        }
        found.push((key, entry));
    }
    let mut results = Vec::with_capacity(found.len());
    for (key, entry) in found {
        let Some(entry) = entry else {
            results.push(serde_json::json!({
                "key": key,
                "ok": false,
                "error": {"code": "KV_NOT_FOUND", "message": format!("Key not found: {key}")},
            }));
            continue;
        };
        let mut headers = serde_json::Map::new();
        for (n, v) in &entry.metadata {
            headers.insert(n.clone(), v.clone().into());
        }
        headers.insert("etag".into(), etag(&entry.hash).into());
        let mut item = serde_json::json!({"key": key, "ok": true});
        if with_body {
            let body = object_body(state, &entry).await?;
            let bytes =
                axum::body::to_bytes(body, usize::try_from(entry.size).unwrap_or(usize::MAX))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "batch read: stored value unreadable");
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal storage error")
                    })?;
            headers.insert("content-length".into(), bytes.len().to_string().into());
            item["dataBase64"] = base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into();
        }
        item["headers"] = serde_json::Value::Object(headers);
        results.push(item);
    }
    Ok(axum::Json(serde_json::json!({ "results": results })).into_response())
}

/// Most capabilities in one batch put.
pub const MAX_BATCH_PUT: usize = 100;

/// `%XX` decoding of a multipart field name (`None` when malformed or not UTF-8).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn multipart_error(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("malformed multipart body: {e}"))
}

/// One part of a batch put, hashed and staged (blob not yet committed).
struct Staged {
    hash: Hash,
    size: u64,
    metadata: Vec<(String, String)>,
    inline: BytesMut,
    writer: Option<Box<dyn crate::store::BlobWriter>>,
}

/// A batch put (§3.2 of the reference): ≥ 2 `kv/put` capabilities (each verified by the
/// door) on keys of one space, body `multipart/form-data` with one part per signed key (the
/// field name is the key, percent-encoded), part headers as each object's metadata. Every
/// signed key must appear exactly once; the space quota is checked before and while reading
/// (the batch as a whole), and the keys are written in one transaction: all or nothing.
pub async fn batch_put(
    state: &SharedState,
    inv: &Invocation,
    caps: &[Capability],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if caps.len() > MAX_BATCH_PUT {
        return Err(ApiError::bad_request(format!(
            "a batch put names at most {MAX_BATCH_PUT} keys"
        )));
    }
    if headers.contains_key(header::IF_MATCH)
        || headers.contains_key(header::IF_NONE_MATCH)
        || headers.contains_key("x-tinycloud-expected-version")
    {
        return Err(ApiError::bad_request(
            "preconditions apply to single writes only",
        ));
    }
    let mut keys: Vec<String> = Vec::with_capacity(caps.len());
    let mut first = None;
    for cap in caps {
        let r = super::service_resource(cap, "kv")?;
        if r.query().is_some() || r.fragment().is_some() {
            return Err(ApiError::bad_request(
                "KV resources take no query or fragment",
            ));
        }
        let key = key_of(r)?.to_owned();
        if keys.contains(&key) {
            return Err(ApiError::bad_request(format!(
                "key {key} is named twice in the batch"
            )));
        }
        keys.push(key);
        first.get_or_insert(r);
    }
    let r = first.ok_or_else(|| ApiError::bad_request("the batch names no key"))?;
    let space = r.space().to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::bad_request("a batch put takes a multipart/form-data body with a boundary")
    })?;
    let max_value = state.config.limits.max_value_bytes;
    let remaining = match state.quota_room(&space).await? {
        Some(room) => {
            let mut old = 0u64;
            for k in &keys {
                old += state.index.kv_get(&space, k).await?.map_or(0, |e| e.size);
            }
            Some(room.saturating_add(old))
        }
        None => None,
    };
    let inline_max = state.config.storage.inline_threshold;
    let mut staged: Vec<Option<Staged>> = keys.iter().map(|_| None).collect();
    let mut total: u64 = 0;
    let mut mp = multer::Multipart::new(body.into_data_stream(), boundary);
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        let name = field
            .name()
            .ok_or_else(|| ApiError::bad_request("every part needs a field name (its key)"))?
            .to_owned();
        let decoded = percent_decode(&name);
        let idx = keys
            .iter()
            .position(|k| decoded.as_deref() == Some(k.as_str()))
            .or_else(|| keys.iter().position(|k| *k == name))
            .ok_or_else(|| {
                ApiError::bad_request(format!("part {name:?} names no key of the invocation"))
            })?;
        if staged[idx].is_some() {
            return Err(ApiError::bad_request(format!(
                "key {} has two parts",
                keys[idx]
            )));
        }
        // The part's `Content-Disposition` is multipart framing (its key), not the object's.
        let mut part_headers = field.headers().clone();
        part_headers.remove(header::CONTENT_DISPOSITION);
        let metadata = collect_metadata(&part_headers)?;
        let mut hasher = blake3::Hasher::new();
        let mut inline = BytesMut::new();
        let mut writer: Option<Box<dyn crate::store::BlobWriter>> = None;
        let mut size: u64 = 0;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            size += chunk.len() as u64;
            total += chunk.len() as u64;
            if size > max_value {
                return Err(too_large(format!("value larger than {max_value} bytes")));
            }
            if let Some(rest) = remaining {
                if total > rest {
                    return Err(too_large(format!(
                        "Write exceeds remaining storage ({rest} bytes available)"
                    )));
                }
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
        staged[idx] = Some(Staged {
            hash: *hasher.finalize().as_bytes(),
            size,
            metadata,
            inline,
            writer,
        });
    }
    let mut puts = Vec::with_capacity(keys.len());
    let mut parts = Vec::with_capacity(keys.len());
    for (key, st) in keys.iter().zip(staged) {
        let st = st.ok_or_else(|| ApiError::bad_request(format!("no part for key {key}")))?;
        parts.push((key, st));
    }
    // Every part arrived. The limit again, read and committed in the space's quota turn (as
    // a single put): an override lowered meanwhile applies, and a concurrent SQL write cannot
    // grow in between; the index holds what the limit leaves after the SQL bytes.
    let _quota_turn = match state.limit_for(&space) {
        Some(_) => Some(state.quota_locks.lock(&space).await),
        None => None,
    };
    let (limit, sql_bytes) = state.index_limit_for(&space).await?;
    // Commit the blobs, pinned until the index write has committed.
    let mut pins = Vec::new();
    for (key, st) in parts {
        let location = match st.writer {
            Some(w) => {
                pins.push(state.blob_gc.pins().pin(st.hash).await);
                w.commit(&st.hash).await?;
                ValueLocation::Blob
            }
            None => ValueLocation::Inline(st.inline.freeze()),
        };
        puts.push(KvPut {
            space: space.clone(),
            key: key.clone(),
            entry: KvEntry {
                hash: st.hash,
                size: st.size,
                metadata: st.metadata,
                updated_at: now().as_millis(),
                location,
            },
            precondition: Precondition::None,
            limit,
            event: Some(kv_event(inv, r, "tinycloud.kv/put", key)),
        });
    }
    let outcome = state.index.kv_put_many(puts).await?;
    drop(pins);
    match outcome {
        WriteOutcome::Done(_) => Ok(axum::Json(serde_json::json!({
            "written": keys,
            "count": keys.len(),
        }))
        .into_response()),
        WriteOutcome::QuotaExceeded { used, limit } => Err(too_large(format!(
            "Write exceeds remaining storage. Used: {} bytes, Limit: {} bytes",
            used.saturating_add(sql_bytes),
            limit.saturating_add(sql_bytes)
        ))),
        WriteOutcome::PreconditionFailed => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition failed",
        )),
        WriteOutcome::NotFound => Err(ApiError::not_found("Key not found")),
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

/// What a list cursor is bound to; MACed with a node key so it cannot be forged or reused for
/// another invoker, space, prefix or page size.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct CursorPayload {
    v: u8,
    sub: String,
    space: String,
    prefix: String,
    limit: usize,
    last: String,
}

fn encode_cursor(key: &[u8; 32], p: &CursorPayload) -> String {
    crate::keys::mac_encode(key, p)
}

fn decode_cursor(key: &[u8; 32], text: &str) -> Option<CursorPayload> {
    crate::keys::mac_decode(key, text, MAX_CURSOR_LEN)
}

/// Filters a page of keys to those the invoker's chain lets it list (segment-aware), not
/// merely their prefix. The space owner sees every key; anyone else needs a cited delegation
/// granting `tinycloud.kv/list` on the key, and those delegations are looked up once a page.
async fn visible_keys(
    state: &SharedState,
    inv: &Invocation,
    space: &SpaceResource,
    keys: &[String],
) -> ApiResult<Vec<String>> {
    let ability: Ability = "tinycloud.kv/list"
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    // Root authority over any resource of the space is ownership of the space.
    let root = Capability::new(Resource::Space(space.clone()), ability.clone())
        .is_root_authority(inv.invoker());
    let mut parents = Vec::new();
    if !root && !keys.is_empty() {
        for p in &inv.info().parents {
            parents.extend(state.auth.delegation(p).await?);
        }
    }
    Ok(keys
        .iter()
        .filter(|k| {
            space
                .space()
                .resource("kv", Some(k))
                .is_ok_and(|resource| root || parents.iter().any(|d| d.grants(&resource, &ability)))
        })
        .cloned()
        .collect())
}

async fn list(
    state: &SharedState,
    inv: &Invocation,
    r: &SpaceResource,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let prefix = r.path().unwrap_or("");
    let space = r.space().to_string();
    let max = state.config.limits.max_list_limit;
    let limit = match headers.get("x-tinycloud-limit") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("x-tinycloud-limit must be 1..={max}")))?,
        None => max,
    };
    let sub = hex::encode(blake3::hash(inv.invoker().to_string().as_bytes()).as_bytes());
    let after = match headers.get("x-tinycloud-cursor") {
        Some(v) => {
            let c = v
                .to_str()
                .ok()
                .and_then(|t| decode_cursor(&state.cursor_key, t))
                .ok_or_else(|| ApiError::bad_request("invalid list cursor"))?;
            if c.v != 1
                || c.sub != sub
                || c.space != space
                || c.prefix != prefix
                || c.limit != limit
            {
                return Err(ApiError::bad_request(
                    "list cursor does not belong to this invoker, space, prefix and limit",
                ));
            }
            Some(c.last)
        }
        None => None,
    };
    let page = state
        .index
        .kv_list(&space, prefix, after.as_deref(), limit)
        .await?;
    let keys = visible_keys(state, inv, r, &page.keys).await?;
    let mut resp = axum::Json(keys).into_response();
    let h = resp.headers_mut();
    h.insert(
        "x-tinycloud-truncated",
        HeaderValue::from_static(if page.truncated { "true" } else { "false" }),
    );
    if page.truncated {
        if let Some(last) = page.keys.last() {
            let cursor = encode_cursor(
                &state.cursor_key,
                &CursorPayload {
                    v: 1,
                    sub,
                    space,
                    prefix: prefix.to_owned(),
                    limit,
                    last: last.clone(),
                },
            );
            if let Ok(v) = HeaderValue::from_str(&cursor) {
                h.insert("x-tinycloud-next-cursor", v);
            }
        }
    }
    Ok(resp)
}

/// Serves a value from a `public` space (used by the unauthenticated public routes).
pub async fn public_object(
    state: &SharedState,
    space: &str,
    key: &str,
    with_body: bool,
) -> ApiResult<Response> {
    let entry = state
        .index
        .kv_get(space, key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Key not found: {key}")))?;
    let headers = object_headers(&entry, true);
    if !with_body {
        return Ok((StatusCode::OK, headers).into_response());
    }
    let body = object_body(state, &entry).await?;
    Ok((StatusCode::OK, headers, body).into_response())
}

/// Raw-prefix listing of a public space.
pub async fn public_list(
    state: &SharedState,
    space: &str,
    prefix: &str,
    limit: usize,
) -> ApiResult<(Vec<String>, bool)> {
    let page = state.index.kv_list(space, prefix, None, limit).await?;
    Ok((page.keys, page.truncated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

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

    #[test]
    fn cursors_are_tamper_proof() {
        let key = [7u8; 32];
        let p = CursorPayload {
            v: 1,
            sub: "s".into(),
            space: "sp".into(),
            prefix: "a".into(),
            limit: 2,
            last: "a/2".into(),
        };
        let c = encode_cursor(&key, &p);
        assert!(decode_cursor(&key, &c) == Some(p));
        assert!(decode_cursor(&[8u8; 32], &c).is_none());
        let (body, mac) = c.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD
            .encode(br#"{"v":1,"sub":"s","space":"sp","prefix":"","limit":2,"last":""}"#);
        assert!(decode_cursor(&key, &format!("{forged_body}.{mac}")).is_none());
        assert!(decode_cursor(&key, body).is_none());
    }
}

//! Batch reads and writes: one invocation, many `kv/get`/`kv/metadata` (answered as JSON) or
//! many `kv/put` (a multipart body, stored all-or-nothing).

use crate::clock::now;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::store::{Hash, KvEntry, KvPut, Precondition, ValueLocation, WriteOutcome};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::token::Invocation;

use super::{collect_metadata, etag, key_of, kv_event, object_body, too_large};

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
        let r = crate::routes::service_resource(cap, "kv")?;
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
        let r = crate::routes::service_resource(cap, "kv")?;
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

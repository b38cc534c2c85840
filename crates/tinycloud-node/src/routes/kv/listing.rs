//! `kv/list` and the public list: visible keys under a prefix, paged with MACed cursors.

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::resource::{Resource, SpaceResource};
use tinycloud_auth::token::Invocation;

use super::{object_body, object_headers};

const MAX_CURSOR_LEN: usize = 4096;

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

pub(super) async fn list(
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

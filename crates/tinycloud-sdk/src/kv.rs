//! KV: get / put / head / list / delete, with ETags, conditional writes and streaming.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use tinycloud_auth::resource::{validate_path, SpaceId};
use tinycloud_auth::session::capability;

use crate::client::is_success;
use crate::client::TinyCloud;
use crate::error::{Error, Result};

/// A stored object's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Strong ETag (`"blake3-<hex>"`).
    pub etag: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Size in bytes, when the node reported it.
    pub size: Option<u64>,
    /// All stored metadata headers (`content-*`, `x-tinycloud-meta-*`).
    pub headers: Vec<(String, String)>,
}

/// A stored object.
#[derive(Clone, Debug)]
pub struct Object {
    /// Its bytes.
    pub data: Bytes,
    /// Its metadata.
    pub meta: Meta,
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// `Content-Type` to store.
    pub content_type: Option<String>,
    /// Only write if the current ETag is this (`If-Match`).
    pub if_match: Option<String>,
    /// Only write if the key does not exist (`If-None-Match: *`).
    pub if_absent: bool,
    /// Extra `x-tinycloud-meta-*` headers (names without the prefix).
    pub metadata: Vec<(String, String)>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Keys.
    pub keys: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Options of a signed read URL ([`Kv::signed_url`]).
#[derive(Clone, Debug, Default)]
pub struct SignedUrlOptions {
    /// Lifetime in seconds (the node caps it at 300, and at the session's expiry).
    pub ttl_secs: Option<u64>,
    /// Only mint if the object's current ETag (or content hash) is this; the URL is bound to
    /// the current version either way, and stops serving when the object changes.
    pub etag: Option<String>,
}

/// A signed read URL: anyone holding it can read the one object until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUrl {
    /// Absolute URL (node host + `relative_url`).
    pub url: String,
    /// `/signed/kv/<ticketId>`, as the node answered.
    pub relative_url: String,
    /// The opaque ticket id.
    pub ticket_id: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedUrlAnswer {
    url: String,
    ticket_id: String,
    expires_at: String,
}

/// The KV service bound to a client and a space.
pub struct Kv<'a> {
    client: &'a TinyCloud,
    space: Option<SpaceId>,
}

/// Checks a key before anything is signed: keys are never normalized, so `.`/`..` segments
/// and control characters are refused.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidInput("a key is required".into()));
    }
    validate_path(key).map_err(|e| Error::InvalidInput(e.to_string()))
}

fn meta_of(h: &HeaderMap) -> Meta {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Meta {
        etag: get("etag"),
        content_type: get("content-type"),
        size: get("x-tinycloud-content-length")
            .or_else(|| get("content-length"))
            .and_then(|v| v.parse().ok()),
        headers: h
            .iter()
            .filter(|(n, _)| {
                n.as_str().starts_with("content-") || n.as_str().starts_with("x-tinycloud-meta-")
            })
            .filter_map(|(n, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (n.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
    }
}

impl TinyCloud {
    /// The KV service of the primary space.
    pub fn kv(&self) -> Kv<'_> {
        Kv::new(self, None)
    }

    /// The KV service of another space (for example one a delegation names).
    pub fn kv_in(&self, space: SpaceId) -> Kv<'_> {
        Kv::new(self, Some(space))
    }
}

impl<'a> Kv<'a> {
    pub(crate) fn new(client: &'a TinyCloud, space: Option<SpaceId>) -> Self {
        Kv { client, space }
    }

    fn space(&self) -> Result<SpaceId> {
        match &self.space {
            Some(s) => Ok(s.clone()),
            None => self.client.space(),
        }
    }

    fn token(&self, path: Option<&str>, action: &str) -> Result<String> {
        let space = self.space()?;
        let res = match path {
            Some(p) => format!("{space}/kv/{p}"),
            None => format!("{space}/kv"),
        };
        let cap =
            capability(&res, &format!("tinycloud.kv/{action}")).map_err(Error::InvalidInput)?;
        self.client.invocation(vec![cap])
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        self.client.send(req, |s| is_success(s) || s == 304).await
    }

    async fn send_streaming(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        self.client
            .send_streaming(req, |s| is_success(s) || s == 304)
            .await
    }

    fn invoke(&self, token: String) -> reqwest::RequestBuilder {
        self.client
            .http()
            .post(self.client.url("/invoke"))
            .header("authorization", token)
    }

    fn put_request(&self, key: &str, opts: &PutOptions) -> Result<reqwest::RequestBuilder> {
        check_key(key)?;
        if opts.if_absent && opts.if_match.is_some() {
            return Err(Error::InvalidInput(
                "if_match and if_absent cannot be combined".into(),
            ));
        }
        let mut req = self.invoke(self.token(Some(key), "put")?);
        if let Some(ct) = &opts.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(m) = &opts.if_match {
            req = req.header("if-match", m);
        }
        if opts.if_absent {
            req = req.header("if-none-match", "*");
        }
        for (k, v) in &opts.metadata {
            req = req.header(format!("x-tinycloud-meta-{k}"), v);
        }
        Ok(req)
    }

    /// Writes a value; returns its ETag.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        opts: &PutOptions,
    ) -> Result<String> {
        let req = self.put_request(key, opts)?.body(value.into());
        let r = self.send(req).await?;
        Ok(meta_of(r.headers()).etag.unwrap_or_default())
    }

    /// Writes a value from a byte stream (large values never sit in memory whole).
    pub async fn put_stream<S>(&self, key: &str, stream: S, opts: &PutOptions) -> Result<String>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
    {
        let req = self
            .put_request(key, opts)?
            .body(reqwest::Body::wrap_stream(stream));
        let r = self.send_streaming(req).await?;
        Ok(meta_of(r.headers()).etag.unwrap_or_default())
    }

    /// Reads a value (refused with [`Error::ResponseTooLarge`] beyond
    /// [`crate::Config::max_value_bytes`]; use [`Self::get_stream`] for large values).
    pub async fn get(&self, key: &str) -> Result<Object> {
        self.get_capped(key, self.client.config().max_value_bytes)
            .await
    }

    /// Reads a value of at most `limit` bytes.
    pub async fn get_capped(&self, key: &str, limit: usize) -> Result<Object> {
        check_key(key)?;
        let r = self
            .send(self.invoke(self.token(Some(key), "get")?))
            .await?;
        let meta = meta_of(r.headers());
        let data = crate::error::read_capped(r, limit, "value").await?;
        Ok(Object { data, meta })
    }

    /// Reads a value as a byte stream.
    pub async fn get_stream(&self, key: &str) -> Result<(Meta, impl Stream<Item = Result<Bytes>>)> {
        check_key(key)?;
        let r = self
            .send_streaming(self.invoke(self.token(Some(key), "get")?))
            .await?;
        let meta = meta_of(r.headers());
        Ok((meta, r.bytes_stream().map(|c| c.map_err(Error::from))))
    }

    /// Metadata of a key; `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Meta>> {
        check_key(key)?;
        match self
            .send(self.invoke(self.token(Some(key), "metadata")?))
            .await
        {
            Ok(r) => Ok(Some(meta_of(r.headers()))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of keys starting with `prefix` (raw prefix; the node filters to keys the
    /// session may list).
    pub async fn list_page(
        &self,
        prefix: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page> {
        if !prefix.is_empty() {
            validate_path(prefix).map_err(|e| Error::InvalidInput(e.to_string()))?;
        }
        // An empty prefix is the empty path (`<space>/kv/`), as the reference clients list
        // everything: a reference node answers a path-less `<space>/kv` list with an empty
        // body. (A whole-service *grant* stays path-less; `…/kv/` is within it.)
        let mut req = self.invoke(self.token(Some(prefix), "list")?);
        if let Some(l) = limit {
            req = req.header("x-tinycloud-limit", l.to_string());
        }
        if let Some(c) = cursor {
            req = req.header("x-tinycloud-cursor", c);
        }
        let r = self.send(req).await?;
        let truncated = r
            .headers()
            .get("x-tinycloud-truncated")
            .is_some_and(|v| v == "true");
        let next_cursor = r
            .headers()
            .get("x-tinycloud-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let keys: Vec<String> =
            crate::error::read_json(r, self.client.config().max_json_bytes).await?;
        Ok(Page {
            keys,
            truncated,
            next_cursor,
        })
    }

    /// Every key starting with `prefix`, following cursors.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let limit = 1000;
        loop {
            let page = self
                .list_page(prefix, Some(limit), cursor.as_deref())
                .await?;
            out.extend(page.keys);
            match (page.truncated, page.next_cursor) {
                (true, Some(c)) => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes a key (optionally only if its ETag matches); returns the deleted ETag.
    /// Mints a signed read URL for `key` (`POST /signed/kv` with a `tinycloud.kv/get`
    /// invocation on the key): a capability-free, expiring URL any HTTP client can download
    /// the object from.
    pub async fn signed_url(&self, key: &str, opts: &SignedUrlOptions) -> Result<SignedUrl> {
        check_key(key)?;
        let token = self.token(Some(key), "get")?;
        let mut body = serde_json::json!({"space": self.space()?.to_string(), "path": key});
        if let Some(t) = opts.ttl_secs {
            body["ttlSeconds"] = t.into();
        }
        if let Some(e) = &opts.etag {
            body["etag"] = e.clone().into();
        }
        let req = self
            .client
            .http()
            .post(self.client.url("/signed/kv"))
            .header("authorization", token)
            .json(&body);
        let a: SignedUrlAnswer = self.client.send_for_json(req).await?;
        // Only a path on this node: a node cannot make the client hand out a URL elsewhere.
        let expected = format!("/signed/kv/{}", a.ticket_id);
        if a.ticket_id.is_empty()
            || !a
                .ticket_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || a.url != expected
        {
            return Err(Error::Node {
                status: 200,
                message: "the node answered a malformed signed URL".into(),
            });
        }
        Ok(SignedUrl {
            url: self.client.url(&a.url),
            relative_url: a.url,
            ticket_id: a.ticket_id,
            expires_at: a.expires_at,
        })
    }

    pub async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<Option<String>> {
        check_key(key)?;
        let mut req = self.invoke(self.token(Some(key), "del")?);
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        let r = self.send(req).await?;
        Ok(meta_of(r.headers()).etag)
    }
}

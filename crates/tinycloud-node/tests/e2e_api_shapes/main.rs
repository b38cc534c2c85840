//! End-to-end: the answers a client really gets match the document the node serves at
//! `GET /openapi.json`. A client signs in, delegates, asks the status of a delegation (known and
//! unknown), revokes it, mints an SSE ticket, registers / lists webhooks and reads their
//! deliveries, creates / reads / discovers an encryption network, decrypts and pages through
//! the audit trail; every JSON body is validated against the schema the served document gives
//! for that operation and status. Every JSON answer the document describes must be exercised,
//! so a new route (or status) with a JSON body cannot be left out of this test.
//!
//! The checker covers the subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that utoipa
//! emits: `type` (a name or a list, `"null"` for nullable), `properties`, `required`, `items`,
//! `enum`, `minimum`/`maximum`, `$ref` to `#/components/schemas`, `allOf`, `oneOf`, `anyOf`.
//! It refuses any other keyword (so the document cannot grow a rule the test silently skips),
//! and it is stricter than JSON Schema in one respect: a property an object schema does not
//! list is an error (unless the schema admits extra properties), so a field a handler adds
//! without documenting it fails.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use reqwest::Method;
use serde_json::{json, Map, Value};
use tinycloud_auth::cid::{blake3_cid, parse_cid};
use tinycloud_auth::did::Did;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_node::encryption::{canonical_hash, wrap, ALG};
use x25519_dalek::{PublicKey, StaticSecret};

/// Keywords that describe and do not constrain.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "format",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords the checker enforces.
const ENFORCED: &[&str] = &[
    "$ref",
    "allOf",
    "oneOf",
    "anyOf",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "enum",
    "minimum",
    "maximum",
];

/// The served document and which of its JSON answers were exercised.
struct Shapes {
    doc: Value,
    seen: BTreeSet<(String, String, String)>,
}

impl Shapes {
    fn resolve(&self, r: &str) -> Result<&Value, String> {
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("unsupported $ref {r}"))?;
        self.doc["components"]["schemas"]
            .get(name)
            .ok_or_else(|| format!("dangling $ref {r}"))
    }

    /// The properties an object schema declares, through `$ref` and `allOf`; true when it
    /// admits others.
    fn declared(&self, schema: &Value, out: &mut BTreeSet<String>) -> Result<bool, String> {
        let mut open = false;
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            open |= self.declared(self.resolve(r)?, out)?;
        }
        for branch in schema["allOf"].as_array().into_iter().flatten() {
            open |= self.declared(branch, out)?;
        }
        if let Some(props) = schema["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
        open |= schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false));
        Ok(open)
    }

    /// Checks `v` against `schema`; `strict` refuses undeclared properties (off for the
    /// branches of an `allOf`, whose union is checked by the schema holding it).
    fn check(&self, schema: &Value, v: &Value, at: &str, strict: bool) -> Result<(), String> {
        let s = schema
            .as_object()
            .ok_or_else(|| format!("{at}: schema is not an object"))?;
        for k in s.keys() {
            if !ENFORCED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                return Err(format!("{at}: the checker does not know `{k}`"));
            }
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.check(self.resolve(r)?, v, at, strict)?;
        }
        for branch in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(branch, v, at, false)?;
        }
        for (key, need) in [("oneOf", Some(1)), ("anyOf", None)] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                let errors: Vec<String> = branches
                    .iter()
                    .filter_map(|b| self.check(b, v, at, strict).err())
                    .collect();
                let matched = branches.len() - errors.len();
                if matched == 0 || need.is_some_and(|n| matched != n) {
                    return Err(format!(
                        "{at}: {matched} branches of {key} match: {errors:?}"
                    ));
                }
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => return Err(format!("{at}: bad type {t}")),
            };
            let mut ok = false;
            for t in &types {
                ok |= match *t {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    other => return Err(format!("{at}: unknown type {other}")),
                };
            }
            if !ok {
                return Err(format!("{at}: {v} is not of type {types:?}"));
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
            if !allowed.contains(v) {
                return Err(format!("{at}: {v} is not one of {allowed:?}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                return Err(format!("{at}: {n} below the minimum"));
            }
            if s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                return Err(format!("{at}: {n} above the maximum"));
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, item) in a.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"), true)?;
            }
        }
        if let Some(o) = v.as_object() {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().ok_or_else(|| format!("{at}: bad required"))?;
                if !o.contains_key(r) {
                    return Err(format!("{at}: required `{r}` is missing"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(x) = o.get(k) {
                        self.check(sub, x, &format!("{at}.{k}"), true)?;
                    }
                }
            }
            // Maps: every key against `propertyNames`, every value not named in `properties`
            // against a schema-valued `additionalProperties`.
            let named = s.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                if let Some(names) = s.get("propertyNames") {
                    self.check(
                        names,
                        &Value::String(k.clone()),
                        &format!("{at} key {k}"),
                        true,
                    )?;
                }
                if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    if !named.is_some_and(|p| p.contains_key(k)) {
                        self.check(extra, x, &format!("{at}.{k}"), true)?;
                    }
                }
            }
            let defines = s.contains_key("properties") || s.contains_key("allOf");
            if strict && defines {
                let mut declared = BTreeSet::new();
                if !self.declared(schema, &mut declared)? {
                    for k in o.keys() {
                        if !declared.contains(k) {
                            return Err(format!("{at}: `{k}` is not in the document"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Validates a JSON answer against the schema documented for `method path` and `status`.
    fn validate(&mut self, method: &str, path: &str, status: u16, v: &Value) {
        let status = status.to_string();
        let schema = &self.doc["paths"][path][method]["responses"][&status]["content"]
            ["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {path} {status}: no JSON answer documented"
        );
        if let Err(e) = self.check(schema, v, &format!("{method} {path} {status}"), true) {
            panic!("{e}\nanswer: {v}");
        }
        self.seen.insert((method.into(), path.into(), status));
    }

    /// Sends a request (`path` concrete, `template` as documented), asserts the status and the
    /// JSON content type, validates the body and returns it.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        node: &Node,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expect: u16,
    ) -> Value {
        let mut req = http().request(method.clone(), format!("{}{path}", node.url));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        let text = r.text().await.unwrap();
        assert_eq!(status, expect, "{method} {path}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{method} {path}: {ctype}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        self.validate(&method.as_str().to_lowercase(), template, status, &v);
        v
    }

    /// Every `(method, path, status)` whose answer the document describes as JSON.
    fn documented_json(&self) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    if r["content"].get("application/json").is_some() {
                        out.insert((method.clone(), path.clone(), status.clone()));
                    }
                }
            }
        }
        out
    }
}

/// A webhook receiver answering 200 and counting what it got.
// The test's own receiver is not part of the node's API.
#[allow(clippy::disallowed_methods)]
async fn receiver(got: Arc<AtomicUsize>) -> u16 {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let got = got.clone();
            async move {
                got.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

mod answers;

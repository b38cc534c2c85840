//! Webhook management: register, list, unregister, delivery history.

use serde_json::{json, Value};
use tinycloud_auth::session::capability;

use super::{Hooks, Scope};
use crate::client::is_success;
use crate::error::{Error, Result};

/// The webhooks of a list answer: this project's node sends `{"webhooks": [...]}`, a
/// reference node a bare array.
fn webhook_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        mut v => match v.get_mut("webhooks").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
    }
}

/// `/hooks/webhooks?space=&service=[&prefix=]`, the values form-encoded.
fn list_path(scope: &Scope) -> String {
    #[allow(clippy::expect_used)]
    let mut url = reqwest::Url::parse("http://node/hooks/webhooks").expect("a constant URL");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("space", &scope.space)
            .append_pair("service", &scope.service);
        if let Some(p) = scope.path_prefix.as_deref().filter(|p| !p.is_empty()) {
            q.append_pair("prefix", p);
        }
    }
    format!("/hooks/webhooks?{}", url.query().unwrap_or_default())
}

impl Hooks<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        ability: &str,
        resource: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>> {
        let cap = capability(resource, ability).map_err(Error::InvalidInput)?;
        let token = self.client.invocation(vec![cap])?;
        let mut req = self
            .client
            .http()
            .request(method, self.client.url(path))
            .header("authorization", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = self.client.send(req, is_success).await?;
        let status = r.status().as_u16();
        let text = crate::error::read_capped(r, self.client.config().max_json_bytes, "JSON answer")
            .await?;
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Node {
                status,
                message: format!("invalid webhook response: {e}"),
            })
    }

    /// Registers a webhook for `scope`; deliveries are POSTed to `callback_url` and signed
    /// with `secret` (HMAC-SHA256). Returns the subscription (never the secret).
    pub async fn register_webhook(
        &self,
        scope: &Scope,
        callback_url: &str,
        secret: &str,
    ) -> Result<Value> {
        if secret.is_empty() {
            return Err(Error::InvalidInput(
                "a webhook needs a non-empty secret".into(),
            ));
        }
        super::subscribe_capability(scope)?;
        let mut body =
            serde_json::to_value(scope).map_err(|e| Error::InvalidInput(e.to_string()))?;
        body["callbackUrl"] = json!(callback_url);
        body["secret"] = json!(secret);
        self.call(
            reqwest::Method::POST,
            "/hooks/webhooks",
            "tinycloud.hooks/register",
            &scope.resource(),
            Some(body),
        )
        .await?
        .ok_or_else(|| Error::Node {
            status: 200,
            message: "empty registration response".into(),
        })
    }

    /// Webhooks of a scope's space under the scope.
    pub async fn webhooks(&self, scope: &Scope) -> Result<Vec<Value>> {
        let path = list_path(scope);
        let v = self
            .call(
                reqwest::Method::GET,
                &path,
                "tinycloud.hooks/list",
                &scope.resource(),
                None,
            )
            .await?
            .unwrap_or_default();
        Ok(webhook_list(v))
    }

    /// Stops deliveries to a webhook registered for `scope`.
    pub async fn unregister_webhook(&self, scope: &Scope, id: &str) -> Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/hooks/webhooks/{id}"),
            "tinycloud.hooks/unregister",
            &scope.resource(),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Delivery history of a webhook (newest first).
    pub async fn deliveries(&self, scope: &Scope, id: &str) -> Result<Vec<Value>> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/hooks/webhooks/{id}/deliveries"),
                "tinycloud.hooks/list",
                &scope.resource(),
                None,
            )
            .await?
            .unwrap_or_default();
        Ok(v["deliveries"].as_array().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference node lists webhooks as a bare array of records (node-protocol.md §5).
    #[test]
    fn both_list_shapes_are_read() {
        let record = json!({"id": "wh1", "subscriberDid": "did:key:z", "space": "s",
            "service": "kv", "pathPrefix": null, "abilities": [], "callbackUrl": "https://h/cb",
            "secretKeyId": "primary", "active": true, "createdAt": "2026-01-01T00:00:00Z"});
        assert_eq!(webhook_list(json!([record.clone()])), vec![record.clone()]);
        assert_eq!(
            webhook_list(json!({"webhooks": [record.clone()]})),
            vec![record]
        );
        assert!(webhook_list(json!({"other": 1})).is_empty());
    }

    #[test]
    fn list_queries_are_encoded() {
        let space: tinycloud_auth::resource::SpaceId =
            "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default"
                .parse()
                .unwrap();
        let s = Scope::new(&space, "kv").with_prefix("a b&c");
        assert_eq!(
            list_path(&s),
            "/hooks/webhooks?space=tinycloud%3Apkh%3Aeip155%3A1%3A0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf%3Adefault&service=kv&prefix=a+b%26c"
        );
    }
}

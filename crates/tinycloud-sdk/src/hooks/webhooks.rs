//! Webhook management: register, list, unregister, delivery history.

use serde_json::{json, Value};
use tinycloud_auth::session::capability;

use super::{Hooks, Scope};
use crate::client::is_success;
use crate::error::{Error, Result};

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
        let mut path = format!(
            "/hooks/webhooks?space={}&service={}",
            scope.space, scope.service
        );
        if let Some(p) = scope.path_prefix.as_deref().filter(|p| !p.is_empty()) {
            path.push_str(&format!("&prefix={p}"));
        }
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
        // The reference (and this node) answer a bare array; earlier versions of this node
        // wrapped it as `{"webhooks": [...]}`, still accepted.
        Ok(match v {
            Value::Array(a) => a,
            v => v["webhooks"].as_array().cloned().unwrap_or_default(),
        })
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

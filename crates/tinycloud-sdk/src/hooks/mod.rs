//! Hooks: a live feed of the writes in a space, over Server-Sent Events.
//!
//! [`Hooks::subscribe`] mints a short-lived ticket (`POST /hooks/tickets`, signed like every
//! other invocation, needing `tinycloud.hooks/subscribe` on `<space>/hooks/<service>[/<prefix>]`),
//! opens `GET /hooks/events` and yields typed [`HookEvent`]s. A dropped connection is resumed
//! with a fresh ticket and `Last-Event-ID`, so no event is lost while the node's log still
//! reaches back; when it does not, a [`HookEventKind::Reset`] event says so. A revoked or
//! expired subscription ends the stream with [`Error::PermissionDenied`] (or
//! [`Error::SessionExpired`]).

mod sse;
mod stream;
mod webhooks;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::session::capability;

use crate::client::TinyCloud;
use crate::error::{Error, Result};

pub use stream::HookStream;

/// The ability a subscription needs.
pub const SUBSCRIBE_ABILITY: &str = "tinycloud.hooks/subscribe";

/// How long a minted ticket may wait to be used (it is used at once).
const TICKET_TTL_SECS: i64 = 60;
/// Longest wait for a ticket or for the event stream's response headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What to watch: one service of one space, optionally under a path prefix and only for some
/// write abilities (the protocol core's type, serialized as the node expects).
pub use tinycloud_auth::hook_scope::HookScope as Scope;

/// The subscribe capability for a scope; checks the scope before anything is signed.
pub fn subscribe_capability(scope: &Scope) -> Result<Capability> {
    let scope = scope
        .clone()
        .normalized()
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    capability(&scope.resource(), SUBSCRIBE_ABILITY).map_err(Error::InvalidInput)
}

/// What kind of event arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookEventKind {
    /// Something was written (put, delete, SQL write).
    Write,
    /// Events were missed and are no longer in the node's log; the feed continues after
    /// `seq`. Re-read whatever state depends on the missed writes.
    Reset,
}

/// One event of the feed. Write events carry what changed, where and by whom, never the
/// value; reset events carry only `seq` and `reason`. Serializes to the node's JSON.
///
/// Reads both this project's events and a reference node's (which carry `id`, `epoch` and
/// `eventIndex` but no `seq`): every field beyond `type` is optional on read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookEvent {
    /// `write` or `reset`.
    #[serde(rename = "type")]
    pub kind: HookEventKind,
    /// The event id: the sequence number as text on this project's node, `<epoch>:<index>`
    /// on a reference node (empty for resets). Opaque: compare, do not parse.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Per-space sequence number: strictly increasing, gap-free within the space; what a
    /// reconnection resumes after. `None` from a node that does not number events (a
    /// reference node), whose feed cannot be resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Space id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub space: String,
    /// `kv` or `sql`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// e.g. `tinycloud.kv/put`, `tinycloud.kv/del`, `tinycloud.sql/write`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ability: String,
    /// The key (KV) or `<db>/<table>` (SQL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// DID of the writer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// The epoch (commit) the write belongs to, a CID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The write's index within its epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u64>,
    /// When it was written (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timestamp: String,
    /// Why events were skipped (resets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A minted subscription ticket.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Opaque ticket for `GET /hooks/events?ticket=…`.
    pub ticket: String,
    /// When it stops being accepted for connecting (RFC 3339).
    pub expires_at: String,
}

/// The hooks service of a client.
pub struct Hooks<'a> {
    client: &'a TinyCloud,
}

impl<'a> Hooks<'a> {
    pub(crate) fn new(client: &'a TinyCloud) -> Self {
        Hooks { client }
    }

    /// A scope in the session's primary space (for delegates: the space the delegation
    /// names).
    pub fn scope(&self, service: &str, prefix: Option<&str>) -> Result<Scope> {
        let scope = Scope::new(&self.client.space()?, service);
        Ok(match prefix {
            Some(p) => scope.with_prefix(p),
            None => scope,
        })
    }

    /// Mints a ticket for `scopes` (all in one space), signed with the session.
    pub async fn ticket(&self, scopes: &[Scope]) -> Result<Ticket> {
        let caps = scopes
            .iter()
            .map(subscribe_capability)
            .collect::<Result<Vec<_>>>()?;
        if caps.is_empty() {
            return Err(Error::InvalidInput("a subscription needs a scope".into()));
        }
        let token = self.client.invocation(caps)?;
        let request = self
            .client
            .http()
            .post(self.client.url("/hooks/tickets"))
            .header("authorization", token)
            // `signals`: this SDK handles `ready`/`reset`/`end` (a node that does not know the
            // field ignores it, as the reference does).
            .json(&json!({"subscriptions": scopes, "ttlSeconds": TICKET_TTL_SECS, "signals": true}))
            .timeout(REQUEST_TIMEOUT);
        self.client.send_for_json(request).await
    }

    /// The writes in `scope` from now on. Connects when first polled; reconnects by itself.
    /// Failing to connect the first time ends the stream with the error.
    pub fn subscribe(&self, scope: Scope) -> HookStream<'a> {
        HookStream::new(self.client, vec![scope], None)
    }

    /// The writes in `scope` after sequence number `last_seq` (the `seq` of the last event
    /// handled), then live: resumes a feed without losing events, or yields a reset first
    /// when the node's log no longer reaches back that far. `0` replays the whole log.
    pub fn subscribe_from(&self, scope: Scope, last_seq: u64) -> HookStream<'a> {
        HookStream::new(self.client, vec![scope], Some(last_seq))
    }

    /// Like [`Hooks::subscribe`] / [`Hooks::subscribe_from`] for several scopes of one
    /// space, but connects before returning: errors (no permission, no such space, node
    /// unreachable) come back here, and once this returns the node is delivering events.
    pub async fn open(&self, scopes: Vec<Scope>, last_seq: Option<u64>) -> Result<HookStream<'a>> {
        HookStream::open(self.client, scopes, last_seq).await
    }
}

impl TinyCloud {
    /// The hooks service (live write events).
    pub fn hooks(&self) -> Hooks<'_> {
        Hooks::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    #[test]
    fn scopes_serialize_and_name_their_resource() {
        let space: tinycloud_auth::resource::SpaceId = SPACE.parse().unwrap();
        let s = Scope::new(&space, "kv").with_prefix("/notes/");
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"space": SPACE, "service": "kv", "pathPrefix": "/notes/"})
        );
        assert_eq!(s.resource(), format!("{SPACE}/hooks/kv/notes"));
        assert_eq!(
            subscribe_capability(&s).unwrap(),
            capability(
                &format!("{SPACE}/hooks/kv/notes"),
                "tinycloud.hooks/subscribe"
            )
            .unwrap()
        );
        assert_eq!(
            Scope::new(&space, "sql").resource(),
            format!("{SPACE}/hooks/sql")
        );
        assert!(matches!(
            subscribe_capability(&Scope::new(&space, "files")),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            subscribe_capability(&Scope::new(&space, "kv").with_prefix("a/../b")),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn events_round_trip_the_node_json() {
        let write = json!({"type": "write", "id": "7", "seq": 7, "space": SPACE, "service": "kv",
            "ability": "tinycloud.kv/put", "path": "notes/a", "actor": "did:key:z6Mk",
            "timestamp": "2025-01-01T00:00:00Z"});
        let e: HookEvent = serde_json::from_value(write.clone()).unwrap();
        assert_eq!(e.kind, HookEventKind::Write);
        assert_eq!(e.seq, Some(7));
        assert_eq!(serde_json::to_value(&e).unwrap(), write);
        let ours = json!({"type": "write", "id": "7", "seq": 7, "space": SPACE, "service": "kv",
            "ability": "tinycloud.kv/put", "path": "notes/a", "actor": "did:key:z6Mk",
            "epoch": "bafkr4iexample", "eventIndex": 0, "timestamp": "2025-01-01T00:00:00Z"});
        let e: HookEvent = serde_json::from_value(ours.clone()).unwrap();
        assert_eq!(
            (e.epoch.as_deref(), e.event_index),
            (Some("bafkr4iexample"), Some(0))
        );
        assert_eq!(serde_json::to_value(&e).unwrap(), ours);
        let reset = json!({"type": "reset", "reason": "missed", "seq": 9});
        let r: HookEvent = serde_json::from_value(reset.clone()).unwrap();
        assert_eq!(r.kind, HookEventKind::Reset);
        assert_eq!(r.reason.as_deref(), Some("missed"));
        assert_eq!(serde_json::to_value(&r).unwrap(), reset);
    }

    /// A write event exactly as a reference node sends it (node-protocol.md §5): `id` is
    /// `<epochCid>:<index>`, there is no `seq`, and `path` may be absent.
    #[test]
    fn reference_write_events_parse() {
        let text = r#"{"type":"write","id":"bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4:0","space":"tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default","service":"kv","ability":"tinycloud.kv/put","path":"documents/a.json","actor":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","epoch":"bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4","eventIndex":0,"timestamp":"2026-01-01T00:00:00Z"}"#;
        let e: HookEvent = serde_json::from_str(text).unwrap();
        assert_eq!(e.kind, HookEventKind::Write);
        assert_eq!(e.seq, None);
        assert!(e.id.ends_with(":0"));
        assert_eq!(e.path, "documents/a.json");
        assert_eq!(e.event_index, Some(0));
        assert!(e.epoch.as_deref().is_some_and(|c| c.starts_with("bafkr4i")));
        // Without `path` (a pathless SQL database's write).
        let bare = r#"{"type":"write","id":"bafkr4i:1","space":"s","service":"sql","ability":"tinycloud.sql/write","actor":"did:key:z","epoch":"bafkr4i","eventIndex":1,"timestamp":"2026-01-01T00:00:00Z"}"#;
        let e: HookEvent = serde_json::from_str(bare).unwrap();
        assert_eq!((e.path.as_str(), e.event_index), ("", Some(1)));
    }
}

//! The machine-readable description of the HTTP API (OpenAPI 3.1), generated from the code.
//!
//! Every route is registered through `utoipa_axum::routes!`, which needs the handler's
//! `#[utoipa::path]` description, so a route cannot exist without one (the node crate's
//! `clippy.toml` forbids the undocumented `Router::route`). This module holds the document's
//! frame (info, tags) and the schemas of the bodies the handlers build as JSON values; the
//! property-based API test (`.ci/schemathesis.sh`) checks real answers against them.

use serde::Serialize;
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};

/// The frame of the document; paths are added by the router (`routes::router`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "TinyCloud node",
        description = "TinyCloud protocol v1. Authority travels in the `Authorization` header: a \
            delegation (a SIWE CACAO as padded base64url DAG-CBOR, or a UCAN JWT) on `/delegate`, a \
            single-use UCAN invocation JWT elsewhere. Errors are `text/plain` short messages; the status \
            code is the contract.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "discovery", description = "Node identity, version and health."),
        (name = "delegation", description = "Registering, revoking and inspecting delegations."),
        (name = "invoke", description = "The data plane: KV, SQL, capabilities and space abilities."),
        (name = "hooks", description = "Write events: SSE tickets and streams, signed webhooks."),
        (name = "encryption", description = "Encryption networks: discovery, decrypt, audit."),
        (name = "public", description = "Unauthenticated reads of spaces named `public`."),
    )
)]
pub struct ApiDoc;

/// Description of the `Authorization` header carrying an invocation.
pub const INVOCATION_HEADER: &str =
    "A single-use UCAN 0.10 invocation (JWT; `Bearer ` prefix optional), signed by the invoker and \
     citing its delegation chain in `prf`.";

/// The document with paths in OpenAPI syntax: axum's catch-all segments (`{*key}`) become plain
/// parameters (`{key}`).
pub fn finish(mut doc: Document) -> Document {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    doc
}

/// `GET /info` and `/version`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Protocol version spoken (1).
    pub protocol: u32,
    /// This implementation's version.
    pub version: String,
    /// Services offered.
    pub features: Vec<String>,
    /// The node's identity (`did:key`), the audience of decrypt invocations.
    pub node_id: String,
    /// Whether the node runs in a trusted execution environment.
    #[serde(rename = "inTEE")]
    pub in_tee: bool,
}

/// `POST /delegate`.
#[derive(Serialize, ToSchema)]
pub struct DelegateResult {
    /// The delegation's CID (CIDv1, raw, blake3-256 over the bytes received).
    pub cid: String,
    /// Spaces named by the delegation that exist on this node.
    pub activated: Vec<String>,
    /// Spaces named by the delegation that this node does not host.
    pub skipped: Vec<String>,
    /// Whether the node keeps the delegation: false when it names only spaces this node does
    /// not host (post it again once the space exists).
    pub stored: bool,
}

/// `POST /revoke`.
#[derive(Serialize, ToSchema)]
pub struct RevokeResult {
    /// Always true.
    pub revoked: bool,
    /// The revoked delegation.
    pub cid: String,
}

/// `POST /delegation/status` request.
#[derive(Serialize, ToSchema)]
pub struct StatusQuery {
    /// The delegation asked about.
    pub cid: String,
}

/// `POST /delegation/status`.
#[derive(Serialize, ToSchema)]
pub struct DelegationStatus {
    /// The delegation asked about.
    pub cid: String,
    /// `active`, `revoked`, `expired` or `not_found`.
    #[schema(pattern = "^(active|revoked|expired|not_found)$")]
    pub status: String,
    /// Whether the node knows it.
    pub exists: bool,
    /// Neither revoked (itself or an ancestor) nor expired.
    pub active: Option<bool>,
    /// It or an ancestor is revoked.
    pub revoked: Option<bool>,
    /// Past its expiry.
    pub expired: Option<bool>,
}

/// What a hook subscriber watches.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookScopeDoc {
    /// The space id (`tinycloud:pkh:eip155:<chain>:<address>:<name>`).
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware path prefix.
    pub path_prefix: Option<String>,
    /// Write abilities to match (all when absent).
    pub abilities: Option<Vec<String>>,
}

/// `POST /hooks/tickets` request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketQuery {
    /// One to the node's maximum scopes, all in one space.
    pub subscriptions: Vec<HookScopeDoc>,
    /// Ticket lifetime, clamped to the node's maximum.
    pub ttl_seconds: Option<i64>,
}

/// `POST /hooks/tickets`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketResult {
    /// Opaque ticket for `GET /hooks/events?ticket=`.
    pub ticket: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

/// `POST /hooks/webhooks` request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRegistration {
    /// The space watched.
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware path prefix.
    pub path_prefix: Option<String>,
    /// Write abilities to match.
    pub abilities: Option<Vec<String>>,
    /// `https` URL receiving signed deliveries.
    pub callback_url: String,
    /// HMAC secret (1..=1024 bytes), sealed at rest, never returned.
    pub secret: String,
}

/// A registered webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `wh_<hex>`.
    pub id: String,
    /// Who registered it.
    pub subscriber_did: String,
    /// The space watched.
    pub space: String,
    /// The service watched.
    pub service: String,
    /// Path prefix watched.
    pub path_prefix: Option<String>,
    /// Abilities matched.
    pub abilities: Option<Vec<String>>,
    /// Delivery URL.
    pub callback_url: String,
    /// Always `primary`.
    pub secret_key_id: String,
    /// Still delivering.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: when the authority it was registered under ends.
    pub expires_at: Option<String>,
    /// Why it stopped delivering (revoked or expired authority, removal).
    pub disabled_reason: Option<String>,
}

/// `GET /hooks/webhooks`.
#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    /// Webhooks in the asked scope.
    pub webhooks: Vec<Webhook>,
}

/// One delivery of an event to a webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Stable per (webhook, event).
    pub delivery_id: String,
    /// The event's sequence number.
    pub event_id: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Last HTTP status received.
    pub last_status: Option<u16>,
    /// Last transport error.
    pub last_error: Option<String>,
    /// When it was last attempted (Unix ms).
    pub at: i64,
}

/// `GET /hooks/webhooks/{id}/deliveries`.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// `POST /encryption/networks` request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkCreate {
    /// Network name, unique per owner.
    pub name: String,
    /// The owner's DID.
    pub owner_did: String,
    /// Only `{"n":1,"t":1}` is supported.
    pub threshold: Option<serde_json::Value>,
}

/// A network member.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The holding node.
    pub node_id: String,
    /// `holder`.
    pub role: String,
}

/// An encryption network.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDescriptor {
    /// `urn:tinycloud:encryption:<ownerDid>:<name>`.
    pub network_id: String,
    /// The owner.
    pub owner_did: String,
    /// The name.
    pub name: String,
    /// Key holders.
    pub members: Vec<Member>,
    /// `{"n":1,"t":1}`.
    pub threshold: serde_json::Value,
    /// `active` or `revoked`.
    pub state: String,
    /// X25519 public key, base64.
    pub public_encryption_key: String,
    /// `x25519-aes256gcm/v1`.
    pub alg: String,
    /// Key version.
    pub key_version: u32,
    /// `local-one-of-one`.
    pub key_backend: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A network descriptor answer.
#[derive(Serialize, ToSchema)]
pub struct NetworkAnswer {
    /// The network.
    pub descriptor: NetworkDescriptor,
}

/// `GET /.well-known/encryption/network/{name}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDiscovery {
    /// Network id.
    pub network_id: String,
    /// Owner.
    pub owner_did: String,
    /// Name.
    pub name: String,
    /// Algorithm.
    pub alg: String,
    /// Key version.
    pub key_version: u32,
    /// X25519 public key, base64.
    pub public_encryption_key: String,
    /// `active` or `revoked`.
    pub state: String,
    /// Key backend.
    pub key_backend: String,
}

/// `POST /encryption/networks/{id}/decrypt` request; every hash is also bound in the
/// invocation's `tinycloud.encryption.decrypt/v1` fact.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptQuery {
    /// `tinycloud.encryption.decrypt/v1`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The node's DID.
    pub target_node: String,
    /// The network.
    pub network_id: String,
    /// Algorithm.
    pub alg: String,
    /// Key version.
    pub key_version: u32,
    /// The content key wrapped to the network key, base64.
    pub encrypted_symmetric_key: String,
    /// Canonical hash of `encryptedSymmetricKey`.
    pub encrypted_symmetric_key_hash: String,
    /// The requester's X25519 public key, base64.
    pub receiver_public_key: String,
    /// Canonical hash of `receiverPublicKey`.
    pub receiver_public_key_hash: String,
}

/// `POST /encryption/networks/{id}/decrypt`: the content key re-wrapped to the receiver, signed
/// by the node identity over the JCS of every other field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptResult {
    /// `tinycloud.encryption.decrypt-result/v1`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The node's DID.
    pub target_node: String,
    /// The network.
    pub network_id: String,
    /// The invocation answered.
    pub invocation_cid: String,
    /// Echoed.
    pub encrypted_symmetric_key_hash: String,
    /// Echoed.
    pub receiver_public_key_hash: String,
    /// The content key wrapped to the receiver, base64.
    pub wrapped_key: String,
    /// Algorithm.
    pub alg: String,
    /// Key version.
    pub key_version: u32,
    /// SHA-256 hex of invocation CID ‖ body hash.
    pub request_hash: String,
    /// The node's DID.
    pub node_id: String,
    /// Ed25519 signature, base64.
    pub node_signature: String,
}

/// One decrypt decision.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Who asked.
    pub actor: String,
    /// `allowed` or `denied:<reason>`.
    pub outcome: String,
    /// Hash of the envelope's wrapped key.
    pub envelope_hash: Option<String>,
    /// The delegations the request rested on.
    pub delegations: Vec<String>,
    /// The invocation's CID.
    pub invocation_cid: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// `GET /encryption/networks/{id}/audit`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrail {
    /// The network.
    pub network_id: String,
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Continues with the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A SQL request (`tinycloud.sql/*` invocations), tagged by `action`.
#[derive(Serialize, ToSchema)]
pub struct SqlRequest {
    /// `query`, `execute`, `batch`, `executeStatement` (or `execute_statement`), `export`.
    pub action: String,
    /// One SQL statement (`query`, `execute`).
    pub sql: Option<String>,
    /// Positional parameters: null, integer, float, string, byte array or `{"base64": …}`.
    pub params: Option<Vec<serde_json::Value>>,
    /// Statements of a `batch` (atomic).
    pub statements: Option<Vec<serde_json::Value>>,
    /// Named statement (`executeStatement`).
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every operation is described for a reader and a generator: a summary and description, a
    /// tag, a success response, documented `text/plain` errors where input can be refused, and
    /// the `Authorization` header exactly where the handler takes authority from it.
    #[test]
    fn every_operation_is_fully_described() {
        let doc = serde_json::to_value(crate::routes::openapi_document()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 20, "too few paths: the router lost routes");
        for (path, item) in paths {
            assert!(
                !path.contains('*'),
                "{path}: axum syntax leaked into the document"
            );
            let ops = item.as_object().expect("path item");
            assert!(!ops.is_empty(), "{path}: no operation");
            for (method, op) in ops {
                let at = format!("{method} {path}");
                for field in ["summary", "description"] {
                    assert!(
                        op[field].as_str().is_some_and(|s| !s.is_empty()),
                        "{at}: {field}"
                    );
                }
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{at}: tag"
                );
                let responses = op["responses"].as_object().expect("responses");
                assert!(responses.keys().any(|c| c.starts_with('2')), "{at}: no 2xx");
                let no_input = matches!(
                    path.as_str(),
                    "/healthz" | "/info" | "/version" | "/openapi.json"
                );
                if !no_input {
                    assert!(responses.keys().any(|c| c.starts_with('4')), "{at}: no 4xx");
                }
                for (code, r) in responses {
                    if code.starts_with('4') {
                        assert!(
                            r["content"].as_object().is_some_and(|c| !c.is_empty()),
                            "{at} {code}: body"
                        );
                    }
                }
                let params: &[Value] = op["parameters"].as_array().map_or(&[], Vec::as_slice);
                for p in params {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().expect("name");
                        assert!(path.contains(&format!("{{{name}}}")), "{at}: {name}");
                    }
                }
                let public = path.starts_with("/public")
                    || path.starts_with("/.well-known")
                    || path.starts_with("/peer/")
                    || no_input
                    || path == "/hooks/events"
                    || (method == "get" && path == "/encryption/networks/{id}");
                let has_auth = params
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "Authorization");
                assert_eq!(has_auth, !public, "{at}: Authorization header documented?");
            }
        }
    }
}

//! The machine-readable description of the HTTP API (OpenAPI 3.1), generated from the code.
//!
//! Every route is registered through `utoipa_axum::routes!`, which needs the handler's
//! `#[utoipa::path]` description, so a route cannot exist without one (the node crate's
//! `clippy.toml` forbids the undocumented `Router::route`). This module holds the document's
//! frame (info, tags) and the answer types the handlers serialize, so a handler cannot answer
//! in a shape other than the one documented; request bodies are documented by the very types
//! the handlers parse them with (in the handlers' modules). `tests/e2e_api_shapes/`
//! validates real answers against the served document and `.ci/api-fuzz.sh` (schemathesis)
//! checks generated requests against it.

use serde::{Deserialize, Serialize};
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};

use crate::clock::rfc3339;
use crate::store::{AuditRow, DeliveryRow, WebhookRow};

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
        (name = "admin", description = "Operator API (per-space quotas, usage): enabled only when \
            `TINYCLOUD_ADMIN_SECRET` is set (else 503), `Authorization: Bearer <secret>`."),
        (name = "signed", description = "Signed KV URLs: expiring bearer read URLs for one object."),
    ),
    modifiers(&AdminSecurity)
)]
pub struct ApiDoc;

/// Name of the admin API's security scheme (HTTP bearer: the node's admin secret).
pub const ADMIN_SCHEME: &str = "adminBearer";

/// Adds the admin bearer security scheme to the document's components.
struct AdminSecurity;

impl utoipa::Modify for AdminSecurity {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The node's admin secret (`TINYCLOUD_ADMIN_SECRET`, at least 32 bytes)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Description of the `Authorization` header of admin routes.
pub const ADMIN_HEADER: &str = "`Bearer <TINYCLOUD_ADMIN_SECRET>`";

/// `GET /.well-known/tinycloud/node-keys`: the node's published public keys.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeKeys {
    /// The node's identity (`did:key`), as `nodeId` in `/info`.
    pub node_did: String,
    /// Unpadded base64url of the 32-byte Ed25519 public key the node signs share invitations
    /// with (43 characters).
    pub share_invitation_public_key: String,
}

/// The admin view of one space's quota (`/admin/quota/<spaceId>`).
#[derive(Serialize, ToSchema)]
pub struct QuotaStatus {
    /// The space (canonical id).
    pub space_id: String,
    /// The admin override, if one is set.
    pub override_bytes: Option<u64>,
    /// The limit enforced now: the override, else the configured default (`null`: unlimited).
    pub effective_limit_bytes: Option<u64>,
    /// Bytes the space uses now (KV values, stored delegations and SQL databases).
    pub current_usage_bytes: Option<u64>,
}

/// `GET /admin/quota`.
#[derive(Serialize, ToSchema)]
pub struct QuotaList {
    /// Every override: space id → limit in bytes.
    pub overrides: std::collections::BTreeMap<String, u64>,
    /// `storage.limit`, the default of spaces without an override (`null`: unlimited).
    pub default_limit_bytes: Option<u64>,
    /// `public_spaces.storage_limit`, the default of spaces named `public`.
    pub public_default_limit_bytes: Option<u64>,
}

/// `GET /admin/usage`: one page of hosted spaces, ordered by id.
#[derive(Serialize, ToSchema)]
pub struct UsagePage {
    /// The spaces of this page.
    pub spaces: Vec<SpaceUsage>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<String>,
    /// Spaces hosted on this node.
    pub total_spaces: u64,
}

/// One space's usage.
#[derive(Serialize, ToSchema)]
pub struct SpaceUsage {
    /// The space.
    pub space_id: String,
    /// Everything it uses (`index_bytes + sql_bytes`).
    pub usage_bytes: u64,
    /// KV values and stored delegations.
    pub index_bytes: u64,
    /// SQL databases.
    pub sql_bytes: u64,
    /// The admin override, if one is set.
    pub override_bytes: Option<u64>,
    /// The limit enforced now (`null`: unlimited).
    pub effective_limit_bytes: Option<u64>,
}

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
    pub version: &'static str,
    /// Services offered.
    pub features: &'static [&'static str],
    /// The node's identity (`did:key`), the audience of decrypt invocations.
    pub node_id: String,
    /// Whether the node runs in a trusted execution environment.
    #[serde(rename = "inTEE")]
    pub in_tee: bool,
    /// Where to get more storage (`TINYCLOUD_QUOTA_URL`); absent when not configured.
    #[serde(rename = "quota_url", skip_serializing_if = "Option::is_none")]
    pub quota_url: Option<String>,
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

/// `POST /delegation/status`. For an unknown delegation only `cid`, `status` (`not_found`)
/// and `exists` (false) are present.
#[derive(Serialize, ToSchema)]
pub struct DelegationStatus {
    /// The delegation asked about.
    pub cid: String,
    /// Where it stands.
    pub status: DelegationState,
    /// Whether the node knows it.
    pub exists: bool,
    /// Neither revoked (itself or an ancestor) nor expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub active: Option<bool>,
    /// It or an ancestor is revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked: Option<bool>,
    /// Past its expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub expired: Option<bool>,
}

/// Where a delegation stands.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum DelegationState {
    /// Neither revoked (itself or an ancestor) nor expired.
    Active,
    /// It or an ancestor is revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Not known to this node.
    NotFound,
}

/// `POST /delegation/query`: one page of the delegations an account issued or received.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegationQueryPage {
    /// The answer's schema version (2, as the reference).
    pub schema_version: u8,
    /// The page, newest stored first.
    pub items: Vec<AccountDelegation>,
    /// Absent on the last page; otherwise the `cursor` of the next request (opaque, bound to
    /// this account and these filters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

/// One delegation in a [`DelegationQueryPage`].
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDelegation {
    /// Its CID.
    pub cid: String,
    /// `granted` (the account issued it) or `received` (addressed to the account).
    pub direction: &'static str,
    /// Who issued it.
    pub delegator_did: String,
    /// Who received it.
    pub delegate_did: String,
    /// What it grants, one entry per resource; `caveats[i]` constrains `actions[i]`.
    pub resources: Vec<AccountDelegationResource>,
    /// CIDs of the delegations it rests on.
    pub parents: Vec<String>,
    /// When it was signed (RFC 3339): the SIWE `Issued At` of a CACAO; null for a UCAN.
    pub issued_at: Option<String>,
    /// Start of validity (RFC 3339).
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    pub expires_at: Option<String>,
    /// `active`, `pending` (not valid yet: it or an ancestor starts later), `expired` (it or an
    /// ancestor), `revoked` (itself) or `ancestor_revoked`.
    pub status: &'static str,
    /// When it was revoked (itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked_at: Option<String>,
    /// Who revoked it (itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked_by: Option<String>,
    /// The revoked ancestor that revokes it (status `ancestor_revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked_ancestor_cid: Option<String>,
}

/// A resource of an [`AccountDelegation`] and what it allows there.
#[derive(Serialize, ToSchema)]
pub struct AccountDelegationResource {
    /// The resource URI.
    pub resource: String,
    /// Abilities granted on it (sorted).
    pub actions: Vec<String>,
    /// Per action, its caveat object (`{}` when unconstrained); an action constrained by
    /// several alternatives appears once per alternative.
    #[schema(value_type = Vec<Object>)]
    pub caveats: Vec<serde_json::Value>,
}

/// What a hook subscriber watches: the schema of `tinycloud_auth::hook_scope::HookScope`,
/// which parses it (the protocol core does not depend on the document generator; a unit
/// test below keeps the two equal).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookScope {
    /// The space id (`tinycloud:pkh:eip155:<chain>:<address>:<name>`).
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware path prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Write abilities to match (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
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

/// `POST /signed/kv`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedKvResult {
    /// `/signed/kv/<ticketId>`, relative to the node.
    pub url: String,
    /// The opaque ticket id (the bearer credential).
    pub ticket_id: String,
    /// RFC 3339 expiry (whole seconds).
    pub expires_at: String,
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
    #[schema(required = true)]
    pub path_prefix: Option<String>,
    /// Abilities matched (empty: every write ability of the service), always an array as the
    /// reference sends it.
    pub abilities: Vec<String>,
    /// Delivery URL.
    pub callback_url: String,
    /// Always `primary`.
    pub secret_key_id: &'static str,
    /// Still delivering.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: when the authority it was registered under ends.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// Why it stopped delivering (revoked or expired authority, removal).
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
}

impl From<&WebhookRow> for Webhook {
    fn from(w: &WebhookRow) -> Webhook {
        Webhook {
            id: w.id.clone(),
            subscriber_did: w.subscriber.clone(),
            space: w.space.clone(),
            service: w.service.clone(),
            path_prefix: w.path_prefix.clone(),
            abilities: w.abilities.clone().unwrap_or_default(),
            callback_url: w.callback_url.clone(),
            secret_key_id: "primary",
            active: w.active,
            created_at: rfc3339(w.created_at),
            expires_at: w.expires_at.map(rfc3339),
            disabled_reason: w.disabled_reason.clone(),
        }
    }
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
    #[schema(required = true)]
    pub last_status: Option<u16>,
    /// Last transport error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When it was last attempted (Unix ms).
    pub at: i64,
}

impl From<&DeliveryRow> for Delivery {
    fn from(d: &DeliveryRow) -> Delivery {
        Delivery {
            delivery_id: d.id.clone(),
            event_id: d.seq.to_string(),
            status: d.status.clone(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            at: d.at,
        }
    }
}

/// `GET /hooks/webhooks/{id}/deliveries`.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// A key-holding threshold; only 1-of-1 is supported.
#[derive(Serialize, Deserialize, ToSchema, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Key holders.
    pub n: u32,
    /// Holders needed to decrypt.
    pub t: u32,
}

impl Threshold {
    /// The only threshold this node runs.
    pub const ONE_OF_ONE: Threshold = Threshold { n: 1, t: 1 };
}

/// A network member.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The holding node.
    pub node_id: String,
    /// `holder`.
    pub role: &'static str,
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
    pub threshold: Threshold,
    /// `active` or `revoked`.
    pub state: String,
    /// X25519 public key, base64.
    pub public_encryption_key: String,
    /// `x25519-aes256gcm/v1`.
    pub alg: &'static str,
    /// Key version.
    pub key_version: u32,
    /// `local-one-of-one`.
    pub key_backend: &'static str,
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
    pub alg: &'static str,
    /// Key version.
    pub key_version: u32,
    /// X25519 public key, base64.
    pub public_encryption_key: String,
    /// `active` or `revoked`.
    pub state: String,
    /// Key backend.
    pub key_backend: &'static str,
}

impl From<NetworkDescriptor> for NetworkDiscovery {
    fn from(d: NetworkDescriptor) -> NetworkDiscovery {
        NetworkDiscovery {
            network_id: d.network_id,
            owner_did: d.owner_did,
            name: d.name,
            alg: d.alg,
            key_version: d.key_version,
            public_encryption_key: d.public_encryption_key,
            state: d.state,
            key_backend: d.key_backend,
        }
    }
}

/// The signed part of a decrypt answer: the node signs the JCS (RFC 8785) of exactly this
/// object, which is the answer without `nodeSignature`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptSigned {
    /// `tinycloud.encryption.decrypt-result/v1`.
    #[serde(rename = "type")]
    pub ty: &'static str,
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
    pub alg: &'static str,
    /// Key version.
    pub key_version: u32,
    /// SHA-256 hex of invocation CID ‖ body hash.
    pub request_hash: String,
    /// The node's DID.
    pub node_id: String,
}

/// `POST /encryption/networks/{id}/decrypt`: the content key re-wrapped to the receiver, with
/// the node identity's signature over the JCS of every other field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptResult {
    /// The signed fields.
    #[serde(flatten)]
    pub signed: DecryptSigned,
    /// Ed25519 signature, base64, over the JCS of the other fields.
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
    #[schema(required = true)]
    pub envelope_hash: Option<String>,
    /// The delegations the request rested on.
    pub delegations: Vec<String>,
    /// The invocation's CID.
    #[schema(required = true)]
    pub invocation_cid: Option<String>,
    /// RFC 3339.
    pub at: String,
}

impl From<&AuditRow> for AuditRecord {
    fn from(a: &AuditRow) -> AuditRecord {
        AuditRecord {
            actor: a.actor.clone(),
            outcome: a.outcome.clone(),
            envelope_hash: a.envelope_hash.clone(),
            delegations: a.delegations.clone(),
            invocation_cid: a.invocation.clone(),
            at: rfc3339(a.at),
        }
    }
}

/// `GET /encryption/networks/{id}/audit`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrail {
    /// The network.
    pub network_id: String,
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Continues with the next (older) page; null on the last page.
    #[schema(required = true)]
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
    use serde_json::{json, Value};
    use utoipa::PartialSchema as _;

    /// The documented hook scope is the one `tinycloud_auth`'s `HookScope` parses: the same
    /// fields, the required ones refused when missing, the optional ones not, unknown ones
    /// refused.
    #[test]
    fn hook_scope_schema_is_the_parsers() {
        use tinycloud_auth::hook_scope::HookScope as Parser;
        let schema = serde_json::to_value(super::HookScope::schema()).expect("schema");
        let props: Vec<&String> = schema["properties"]
            .as_object()
            .expect("props")
            .keys()
            .collect();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(schema["additionalProperties"], false);
        let full = Parser {
            space: "s".into(),
            service: "kv".into(),
            path_prefix: Some("p".into()),
            abilities: Some(vec!["tinycloud.kv/put".into()]),
        };
        let full = serde_json::to_value(full).expect("serializes");
        let keys: Vec<&String> = full.as_object().expect("object").keys().collect();
        assert_eq!(keys, props, "the parser's fields are the documented ones");
        for key in keys {
            let mut without = full.clone();
            without
                .as_object_mut()
                .expect("object")
                .remove(key.as_str());
            let parsed = serde_json::from_value::<Parser>(without).is_ok();
            assert_eq!(parsed, !required.contains(&key.as_str()), "{key}");
        }
        let mut extra = full.clone();
        extra["other"] = json!(1);
        assert!(serde_json::from_value::<Parser>(extra).is_err());
    }

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
                    "/healthz"
                        | "/info"
                        | "/version"
                        | "/openapi.json"
                        | "/.well-known/tinycloud/node-keys"
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
                    || (method == "get" && path == "/encryption/networks/{id}")
                    || (method == "get" && path == "/signed/kv/{ticket}");
                let has_auth = params
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "Authorization");
                assert_eq!(has_auth, !public, "{at}: Authorization header documented?");
            }
        }
    }
}

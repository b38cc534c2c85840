//! `/encryption/networks…` and the `.well-known` discovery record.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, Resource};
use x25519_dalek::{PublicKey, StaticSecret};

use super::authorized::{Authorized, Signed};
use super::openapi::{
    AuditRecord, AuditTrail, DecryptResult, DecryptSigned, Member, NetworkAnswer,
    NetworkDescriptor, NetworkDiscovery, Threshold,
};
use crate::auth::AuthorizedInvocation;
use crate::clock::{now, rfc3339};
use crate::encryption::{b64, canonical_hash, open_private, seal_private, unwrap, wrap, ALG};
use crate::error::{ApiError, ApiResult};
use crate::hooks::proofs_of;
use crate::state::SharedState;
use crate::store::{AuditBounds, AuditRow, NetworkRow};

const ADMIN_FACT: &str = "tinycloud.encryption.network-admin/v1";
const DECRYPT_TYPE: &str = "tinycloud.encryption.decrypt/v1";
const RESULT_TYPE: &str = "tinycloud.encryption.decrypt-result/v1";

fn descriptor(state: &SharedState, n: &NetworkRow) -> NetworkDescriptor {
    NetworkDescriptor {
        network_id: n.id.clone(),
        owner_did: n.owner.clone(),
        name: n.name.clone(),
        members: vec![Member {
            node_id: state.keys.node_did().to_string(),
            role: "holder",
        }],
        threshold: Threshold::ONE_OF_ONE,
        state: n.state.clone(),
        public_encryption_key: STANDARD.encode(&n.public_key),
        alg: ALG,
        key_version: n.key_version,
        key_backend: "local-one-of-one",
        created_at: rfc3339(n.created_at),
        updated_at: rfc3339(n.updated_at),
    }
}

/// `POST /encryption/networks` request. Other fields are allowed (and bound by the
/// network-admin fact's `bodyHash` like the rest of the body).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkCreate {
    /// Network name, unique per owner.
    name: String,
    /// The owner's DID.
    owner_did: String,
    /// Only `{"n":1,"t":1}` is supported (the default); `null` is refused.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    threshold: Option<Threshold>,
}

/// A field that, when present, must hold a value (`null` is refused, not read as absent).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn parse_network(id: &str) -> ApiResult<NetworkId> {
    id.parse::<NetworkId>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn read_json(body: axum::body::Body) -> ApiResult<Value> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// What an encryption invocation verified by the [`Authorized`] extractor (full chain check
/// and single use) must carry: audience = this node, and `ability` on the network URN.
fn authorize<'a>(
    state: &SharedState,
    authz: &'a Authorized,
    network: &NetworkId,
    ability: &str,
) -> ApiResult<&'a AuthorizedInvocation> {
    check_invocation(state, authz.inner(), network, ability)?;
    Ok(authz.inner())
}

/// What every encryption invocation must carry beyond a valid chain: audience = this node,
/// and `ability` on the network URN.
fn check_invocation(
    state: &SharedState,
    authz: &AuthorizedInvocation,
    network: &NetworkId,
    ability: &str,
) -> ApiResult<()> {
    if authz.invocation.ucan().audience().did() != &state.keys.node_did() {
        return Err(ApiError::unauthorized(
            "encryption invocations must be addressed to this node's DID",
        ));
    }
    let wanted: Ability = ability
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    if !authz
        .invocation
        .info()
        .grants(&Resource::Network(network.clone()), &wanted)
    {
        return Err(ApiError::unauthorized_because(
            crate::telemetry::reason::UNAUTHORIZED_ACTION,
            format!("Unauthorized Action: {network} / {ability}"),
        ));
    }
    Ok(())
}

fn fact<'a>(authz: &'a AuthorizedInvocation, ty: &str) -> ApiResult<&'a Map<String, Value>> {
    authz
        .invocation
        .ucan()
        .facts()
        .iter()
        .find(|f| f.get("type").and_then(Value::as_str) == Some(ty))
        .ok_or_else(|| ApiError::unauthorized(format!("the invocation carries no {ty} fact")))
}

/// Checks the `tinycloud.encryption.network-admin/v1` fact against the request. `ability` is
/// the full ability (`tinycloud.encryption/network.create`), which is what the reference
/// clients put in the fact's `action` and what the reference node compares against.
fn check_admin_fact(
    state: &SharedState,
    authz: &AuthorizedInvocation,
    network: &NetworkId,
    body: &Value,
    ability: &str,
) -> ApiResult<()> {
    let f = fact(authz, ADMIN_FACT)?;
    let expect = |k: &str, v: &str| {
        if f.get(k).and_then(Value::as_str) == Some(v) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(format!(
                "fact `{k}` does not match the request"
            )))
        }
    };
    expect("targetNode", &state.keys.node_did().to_string())?;
    expect("networkId", &network.to_string())?;
    expect("bodyHash", &canonical_hash(body))?;
    // The short form (`network.create`, the ability without its namespace) is still accepted:
    // earlier versions of this project's SDK wrote it, and invocations minted by them (or
    // tooling built on them) should keep working. Both name the same ability, which the
    // chain check has already required, so accepting either widens nothing.
    let action = f.get("action").and_then(Value::as_str);
    let short = ability.strip_prefix("tinycloud.encryption/");
    if action == Some(ability) || (action.is_some() && action == short) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "fact `action` does not match the request",
        ))
    }
}

/// `POST /encryption/networks`: create a network (`tinycloud.encryption/network.create`).
#[utoipa::path(
    post, path = "/encryption/networks", tag = "encryption",
    summary = "Create an encryption network",
    description = "The node generates and holds an X25519 key pair for `<ownerDid>:<name>`; needs `tinycloud.encryption/network.create` on the network and the network-admin fact.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = NetworkCreate,
    responses(
        (status = 200, description = "Created", body = NetworkAnswer),
        (status = 400, description = "Malformed token, id or body", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the chain does not grant the ability", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    authz: Authorized,
    body: axum::body::Body,
) -> ApiResult<Json<NetworkAnswer>> {
    let body = read_json(body).await?;
    let req = NetworkCreate::deserialize(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network: {e}")))?;
    let name = req.name.as_str();
    let owner: Did = req
        .owner_did
        .parse()
        .map_err(|e: tinycloud_auth::did::DidError| ApiError::bad_request(e.to_string()))?;
    if req.threshold.is_some_and(|t| t != Threshold::ONE_OF_ONE) {
        return Err(ApiError::bad_request(
            "only a 1-of-1 threshold is supported",
        ));
    }
    let network =
        NetworkId::new(owner.clone(), name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let authz = authorize(
        &state,
        &authz,
        &network,
        "tinycloud.encryption/network.create",
    )?;
    check_admin_fact(
        &state,
        authz,
        &network,
        &body,
        "tinycloud.encryption/network.create",
    )?;
    // Anyone is the root authority of networks in its own name: only an owner this node hosts
    // may make it generate and keep a key pair.
    if !state.hosts_owner(&owner) {
        return Err(ApiError::not_found(
            "the network owner hosts no space on this node",
        ));
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let secret = StaticSecret::from(seed);
    let now_ms = now().as_millis();
    let row = NetworkRow {
        id: network.to_string(),
        owner: owner.to_string(),
        name: name.to_owned(),
        state: "active".into(),
        public_key: PublicKey::from(&secret).as_bytes().to_vec(),
        sealed_private: seal_private(&state.network_key, &secret),
        key_version: 1,
        created_at: now_ms,
        updated_at: now_ms,
    };
    if !state.networks.create_network(&row).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "network already exists",
        ));
    }
    Ok(Json(NetworkAnswer {
        descriptor: descriptor(&state, &row),
    }))
}

/// `GET /encryption/networks/<id>`.
#[utoipa::path(
    get, path = "/encryption/networks/{id}", tag = "encryption",
    summary = "Describe a network",
    description = "The public descriptor: state, public key, algorithm, key version.",
    params(
        ("id" = String, Path, description = "Network id `urn:tinycloud:encryption:<ownerDid>:<name>`"),
    ),
    responses(
        (status = 200, description = "The network", body = NetworkAnswer),
        (status = 400, description = "Not a network id", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
    )
)]
pub async fn get(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NetworkAnswer>> {
    let network = parse_network(&id)?;
    let row = state
        .networks
        .network(&network.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("network not found"))?;
    Ok(Json(NetworkAnswer {
        descriptor: descriptor(&state, &row),
    }))
}

/// `GET /.well-known/encryption/network/{name}` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WellKnownQuery {
    /// The owner's DID.
    #[serde(rename = "ownerDid")]
    owner_did: String,
}

/// `GET /.well-known/encryption/network/<name>?ownerDid=`.
#[utoipa::path(
    get, path = "/.well-known/encryption/network/{name}", tag = "encryption",
    summary = "Discover a network by owner and name",
    description = "The discovery record clients use to encrypt to an owner's network.",
    params(
        ("name" = String, Path, description = "Network name"),
        WellKnownQuery,
    ),
    responses(
        (status = 200, description = "The discovery record", body = NetworkDiscovery),
        (status = 400, description = "Bad owner or name", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
    )
)]
pub async fn well_known(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    Query(q): Query<WellKnownQuery>,
) -> ApiResult<Json<NetworkDiscovery>> {
    let owner: Did = q
        .owner_did
        .parse()
        .map_err(|e: tinycloud_auth::did::DidError| ApiError::bad_request(e.to_string()))?;
    let network = NetworkId::new(owner, &name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let row = state
        .networks
        .network(&network.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("network not found"))?;
    Ok(Json(descriptor(&state, &row).into()))
}

/// `POST /encryption/networks/<id>/revoke` (`tinycloud.encryption/network.revoke`) → 204.
#[utoipa::path(
    post, path = "/encryption/networks/{id}/revoke", tag = "encryption",
    summary = "Revoke a network",
    description = "No decrypt succeeds afterwards; needs `tinycloud.encryption/network.revoke` and the network-admin fact.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("id" = String, Path, description = "Network id `urn:tinycloud:encryption:<ownerDid>:<name>`"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Malformed token, id or body", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the chain does not grant the ability", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn revoke(
    State(state): State<SharedState>,
    authz: Authorized,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let network = parse_network(&id)?;
    let authz = authorize(
        &state,
        &authz,
        &network,
        "tinycloud.encryption/network.revoke",
    )?;
    check_admin_fact(
        &state,
        authz,
        &network,
        &json!({}),
        "tinycloud.encryption/network.revoke",
    )?;
    if !state
        .networks
        .revoke_network(&network.to_string(), now().as_millis())
        .await?
    {
        return Err(ApiError::not_found("network not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /encryption/networks/{id}/decrypt` request; unknown fields are refused, and the
/// canonical hash of the whole body (and of its keys) is bound in the invocation's
/// `tinycloud.encryption.decrypt/v1` fact.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecryptRequest {
    /// `tinycloud.encryption.decrypt/v1`.
    #[serde(rename = "type")]
    ty: String,
    /// The node's DID.
    target_node: String,
    /// The network.
    network_id: String,
    /// Algorithm.
    alg: String,
    /// Key version.
    key_version: u32,
    /// The content key wrapped to the network key, base64.
    encrypted_symmetric_key: String,
    /// Canonical hash of `encryptedSymmetricKey`.
    encrypted_symmetric_key_hash: String,
    /// The requester's X25519 public key, base64.
    receiver_public_key: String,
    /// Canonical hash of `receiverPublicKey`.
    receiver_public_key_hash: String,
}

/// `POST /encryption/networks/<id>/decrypt`: re-wrap a content key to the requester's key.
#[utoipa::path(
    post, path = "/encryption/networks/{id}/decrypt", tag = "encryption",
    summary = "Re-wrap a content key to the requester",
    description = "Needs `tinycloud.encryption/decrypt` on the network, addressed to this node, with every hash of the request bound in the `tinycloud.encryption.decrypt/v1` fact; the answer is signed by the node identity.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("id" = String, Path, description = "Network id `urn:tinycloud:encryption:<ownerDid>:<name>`"),
    ),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "The re-wrapped key", body = DecryptResult),
        (status = 400, description = "Malformed token, id or body", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the chain does not grant the ability", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
    )
)]
pub async fn decrypt(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Json<DecryptResult>> {
    let network = parse_network(&id)?;
    let raw = read_json(body).await?;
    let now = signed.at();
    decrypt_with(&state, network, raw, signed.into_invocation(), now)
        .await
        .map(Json)
}

/// A decrypt through `POST /invoke` (the reference's other door): the invocation carries one
/// `tinycloud.encryption/decrypt` capability on one network, and the body is the decrypt
/// request. The same checks, audit and single use as the dedicated route; every refusal is
/// 403 there, as the reference answers (server faults stay 5xx).
pub async fn decrypt_invoke(
    state: &SharedState,
    invocation: tinycloud_auth::token::Invocation,
    body: axum::body::Body,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let forbid = |e: ApiError| {
        if e.status.is_server_error() {
            e
        } else {
            ApiError::forbidden(e.message)
        }
    };
    let network = match invocation.info().capabilities.as_slice() {
        [cap] => match &cap.resource {
            Resource::Network(n) => n.clone(),
            _ => {
                return Err(ApiError::forbidden(
                    "a decrypt names exactly one network (urn:tinycloud:encryption:…)",
                ))
            }
        },
        _ => {
            return Err(ApiError::forbidden(
                "a decrypt invocation carries exactly one capability",
            ))
        }
    };
    let raw = read_json(body).await.map_err(forbid)?;
    decrypt_with(state, network, raw, invocation, now())
        .await
        .map(|r| Json(r).into_response())
        .map_err(forbid)
}

/// The decrypt of both doors, given the signature-checked invocation.
async fn decrypt_with(
    state: &SharedState,
    network: NetworkId,
    raw: Value,
    invocation: tinycloud_auth::token::Invocation,
    now: tinycloud_auth::timestamp::Timestamp,
) -> ApiResult<DecryptResult> {
    let req: DecryptRequest = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid decrypt request: {e}")))?;
    // Signature and time window were checked first: a token that does not verify leaves no
    // trace and looks nothing up.
    // Refusals are recorded only for principals whose authority starts at the network's
    // owner (named in its id); a stranger's requests (whatever envelope hash they claim) are
    // never written, and are refused before the network is looked up, so a stranger learns
    // nothing of which networks exist.
    let authenticated = state.auth.rests_on(&invocation, network.owner(), now).await;
    let validated = match state.auth.validate(&invocation, now).await {
        Err(e) if !authenticated => return Err(e.into()),
        v => v,
    };
    let row = state
        .networks
        .network(&network.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("network not found"))?;
    // Single use, also for a refused request (so one signed request makes at most one
    // record); a replay is refused and not recorded again.
    state.auth.consume(&invocation, now).await?;
    let mut audit = AuditRow {
        seq: 0,
        network: row.id.clone(),
        actor: invocation.invoker().to_string(),
        outcome: String::new(),
        envelope_hash: Some(req.encrypted_symmetric_key_hash.clone()),
        delegations: proofs_of(&invocation),
        invocation: Some(invocation.cid().to_string()),
        at: now.as_millis(),
    };
    let result = match validated {
        Ok(authorized) => {
            let authz = AuthorizedInvocation {
                invocation,
                authorized,
            };
            check_invocation(state, &authz, &network, "tinycloud.encryption/decrypt")
                .and_then(|()| rewrap(state, &authz, &network, &row, &req, &raw))
        }
        Err(e) => Err(ApiError::from(e)),
    };
    audit.outcome = match &result {
        Ok(_) => "allowed".into(),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => "denied:401".into(),
        Err(e) => format!("denied:{}", e.message.split(':').next().unwrap_or("error")),
    };
    if result.is_ok() || authenticated {
        let bounds = AuditBounds {
            max_rows: state.config.encryption.audit_max_records,
            denied_per_actor: state.config.encryption.audit_denied_per_actor_per_hour,
            window_ms: 3_600_000,
            now_ms: now.as_millis(),
        };
        // An allowed decrypt that cannot be recorded is not answered.
        state.networks.audit(&audit, bounds).await?;
    }
    result
}

fn rewrap(
    state: &SharedState,
    authz: &AuthorizedInvocation,
    network: &NetworkId,
    row: &NetworkRow,
    req: &DecryptRequest,
    raw: &Value,
) -> ApiResult<DecryptResult> {
    let node = state.keys.node_did().to_string();
    let mismatch =
        |what: &str| ApiError::unauthorized(format!("{what}: does not match the request"));
    if req.ty != DECRYPT_TYPE {
        return Err(ApiError::bad_request(format!(
            "type must be {DECRYPT_TYPE}"
        )));
    }
    if req.target_node != node {
        return Err(mismatch("targetNode"));
    }
    if req.network_id != network.to_string() {
        return Err(mismatch("networkId"));
    }
    if row.state != "active" {
        return Err(ApiError::new(StatusCode::CONFLICT, "network is not active"));
    }
    if req.alg != ALG || req.key_version != row.key_version {
        return Err(ApiError::bad_request(
            "alg or keyVersion does not match the network",
        ));
    }
    if canonical_hash(&Value::String(req.encrypted_symmetric_key.clone()))
        != req.encrypted_symmetric_key_hash
    {
        return Err(mismatch("encryptedSymmetricKeyHash"));
    }
    if canonical_hash(&Value::String(req.receiver_public_key.clone()))
        != req.receiver_public_key_hash
    {
        return Err(mismatch("receiverPublicKeyHash"));
    }
    let body_hash = canonical_hash(raw);
    let f = fact(authz, DECRYPT_TYPE)?;
    for (k, v) in [
        ("targetNode", node.as_str()),
        ("networkId", req.network_id.as_str()),
        ("bodyHash", body_hash.as_str()),
        (
            "encryptedSymmetricKeyHash",
            req.encrypted_symmetric_key_hash.as_str(),
        ),
        (
            "receiverPublicKeyHash",
            req.receiver_public_key_hash.as_str(),
        ),
        ("alg", req.alg.as_str()),
    ] {
        if f.get(k).and_then(Value::as_str) != Some(v) {
            return Err(mismatch(&format!("fact {k}")));
        }
    }
    if f.get("keyVersion").and_then(Value::as_u64) != Some(u64::from(req.key_version)) {
        return Err(mismatch("fact keyVersion"));
    }
    let wrapped = b64(&req.encrypted_symmetric_key)
        .ok_or_else(|| ApiError::bad_request("encryptedSymmetricKey is not base64"))?;
    let receiver: [u8; 32] = b64(&req.receiver_public_key)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| ApiError::bad_request("receiverPublicKey must be 32 bytes of base64"))?;
    let secret = open_private(&state.network_key, &row.sealed_private).ok_or_else(|| {
        tracing::error!(network = %row.id, "sealed network key cannot be opened");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "network key unavailable")
    })?;
    let content_key =
        unwrap(&secret, &wrapped).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rewrapped = wrap(&PublicKey::from(receiver), &content_key);
    let invocation_cid = authz.invocation.cid().to_string();
    let request_hash = hex::encode(sha2::Sha256::digest(
        format!("{invocation_cid}{body_hash}").as_bytes(),
    ));
    let signed = DecryptSigned {
        ty: RESULT_TYPE,
        target_node: node.clone(),
        network_id: req.network_id.clone(),
        invocation_cid,
        encrypted_symmetric_key_hash: req.encrypted_symmetric_key_hash.clone(),
        receiver_public_key_hash: req.receiver_public_key_hash.clone(),
        wrapped_key: STANDARD.encode(rewrapped),
        alg: ALG,
        key_version: req.key_version,
        request_hash,
        node_id: node,
    };
    sign_result(signed, |bytes| state.keys.identity().sign(bytes))
}

/// The decrypt answer: `signed` and the signature over its JCS (RFC 8785), which is what a
/// client gets by removing `nodeSignature` from the answer and canonicalizing the rest.
fn sign_result<S: AsRef<[u8]>>(
    signed: DecryptSigned,
    sign: impl FnOnce(&[u8]) -> S,
) -> ApiResult<DecryptResult> {
    let canonical = serde_json_canonicalizer::to_vec(&signed).map_err(|e| {
        tracing::error!(error = %e, "decrypt answer cannot be canonicalized");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "answer cannot be signed")
    })?;
    let node_signature = STANDARD.encode(sign(&canonical));
    Ok(DecryptResult {
        signed,
        node_signature,
    })
}

use sha2::Digest as _;

/// Most audit records per page (and the default page size).
pub const MAX_AUDIT_PAGE: usize = 500;

/// `GET /encryption/networks/{id}/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size (1..=500, default 500).
    #[serde(default)]
    limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// Where the next audit page starts: after the record `(at, seq)` of one network.
#[derive(serde::Serialize, Deserialize)]
struct AuditCursor {
    network: String,
    at: i64,
    seq: i64,
}

/// `GET /encryption/networks/<id>/audit?limit=&cursor=`: the decrypt audit trail, newest
/// first, in pages (`nextCursor` continues), for the network's owner (or anyone delegated
/// `tinycloud.encryption/audit` on it).
#[utoipa::path(
    get, path = "/encryption/networks/{id}/audit", tag = "encryption",
    summary = "The decrypt audit trail",
    description = "Every decrypt decision on the network, newest first, in pages; for the owner or a holder of `tinycloud.encryption/audit`.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("id" = String, Path, description = "Network id `urn:tinycloud:encryption:<ownerDid>:<name>`"),
        AuditQuery,
    ),
    responses(
        (status = 200, description = "The trail", body = AuditTrail),
        (status = 400, description = "Malformed token, id or body", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the chain does not grant the ability", body = String, content_type = "text/plain"),
        (status = 404, description = "Network not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn audit(
    State(state): State<SharedState>,
    authz: Authorized,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditTrail>> {
    let network = parse_network(&id)?;
    authorize(&state, &authz, &network, "tinycloud.encryption/audit")?;
    let id = network.to_string();
    let limit = q.limit.unwrap_or(MAX_AUDIT_PAGE);
    if limit == 0 || limit > MAX_AUDIT_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={MAX_AUDIT_PAGE}"
        )));
    }
    let before = match &q.cursor {
        None => None,
        Some(c) => {
            let c: AuditCursor = crate::keys::mac_decode(&state.cursor_key, c, 1024)
                .filter(|c: &AuditCursor| c.network == id)
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
            Some((c.at, c.seq))
        }
    };
    // One more than asked tells whether another page follows.
    let mut rows = state.networks.audit_log(&id, before, limit + 1).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(crate::keys::mac_encode(
            &state.cursor_key,
            &AuditCursor {
                network: id.clone(),
                at: last.at,
                seq: last.seq,
            },
        )),
        _ => None,
    };
    Ok(Json(AuditTrail {
        network_id: id,
        records: rows.iter().map(AuditRecord::from).collect(),
        next_cursor: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes signed are exactly what a client verifies: the JCS of the served answer
    /// with `nodeSignature` removed.
    #[test]
    fn signed_bytes_are_the_answer_without_its_signature() {
        let signed = DecryptSigned {
            ty: RESULT_TYPE,
            target_node: "did:key:z6Mk-node".into(),
            network_id: "urn:tinycloud:encryption:did:pkh:eip155:1:0xab:default".into(),
            invocation_cid: "bafy-inv".into(),
            encrypted_symmetric_key_hash: "h1".into(),
            receiver_public_key_hash: "h2".into(),
            wrapped_key: "d2s=".into(),
            alg: ALG,
            key_version: 1,
            request_hash: "00ff".into(),
            node_id: "did:key:z6Mk-node".into(),
        };
        let mut seen = Vec::new();
        let result = sign_result(signed, |bytes| {
            seen = bytes.to_vec();
            blake3::hash(bytes).as_bytes().to_vec()
        })
        .expect("signs");
        let mut served = serde_json::to_value(&result).expect("serializes");
        let sig = served
            .as_object_mut()
            .and_then(|o| o.remove("nodeSignature"))
            .expect("nodeSignature");
        assert_eq!(served.as_object().map(|o| o.len()), Some(11));
        let verified = serde_json_canonicalizer::to_vec(&served).expect("canonical");
        assert_eq!(seen, verified);
        assert_eq!(sig, STANDARD.encode(blake3::hash(&verified).as_bytes()));
    }
}

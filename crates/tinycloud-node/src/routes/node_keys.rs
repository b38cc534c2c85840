//! `GET /.well-known/tinycloud/node-keys`: the node's public key material, for operators and
//! clients that pin it. Public halves only; unauthenticated and side-effect free.

use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::openapi::NodeKeys;
use crate::state::SharedState;

#[utoipa::path(
    get, path = "/.well-known/tinycloud/node-keys", tag = "discovery",
    summary = "The node's public keys",
    description = "`nodeDid` (the node identity, as `nodeId` in `/info`) and `shareInvitationPublicKey` (unpadded base64url of the Ed25519 public key the node signs share invitations with). Both derive from the node secret, so they are stable across restarts.",
    responses(
        (status = 200, description = "The keys", body = NodeKeys),
    )
)]
pub async fn node_keys(State(state): State<SharedState>) -> Json<NodeKeys> {
    Json(NodeKeys {
        node_did: state.keys.node_did().to_string(),
        share_invitation_public_key: URL_SAFE_NO_PAD
            .encode(state.keys.share_invitation_public_key()),
    })
}

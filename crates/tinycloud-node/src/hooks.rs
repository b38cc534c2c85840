//! Hooks: subscription scopes, SSE tickets, and the write-event JSON.
//!
//! A ticket is minted by `POST /hooks/tickets` for a fully verified invocation and carries
//! the subscriber, the scopes and the delegations it rests on, MACed with a node key. Streams
//! re-check those delegations while they run, so a revoked or expired subscriber is cut off.
//! A ticket opens one stream only (a reconnect mints a new one, as the reference JS SDK does
//! for every connection), so a leaked ticket cannot be used by anyone else once its
//! subscriber has connected.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use tinycloud_auth::cid::parse_cid;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::Invocation;

use crate::auth::{AuthError, Authorizer};
use crate::store::{StoreError, StoredEvent};

/// Most scopes per ticket.
pub const MAX_SCOPES: usize = 32;
/// Longest ticket lifetime (time to connect), in seconds.
pub const MAX_TICKET_SECS: i64 = 300;

/// What a subscriber wants to see (the protocol core's type and rules).
pub use tinycloud_auth::hook_scope::HookScope as Scope;

/// The delegations a standing subscription (SSE ticket, webhook) rests on: those cited by the
/// invocation that created it. Stored with the subscription and re-checked for as long as it
/// lives.
pub fn proofs_of(invocation: &Invocation) -> Vec<String> {
    invocation
        .info()
        .parents
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Why a standing subscription may not deliver now.
#[derive(Debug, thiserror::Error)]
pub enum Lapse {
    /// Its authority ended (revoked, expired, unknown or unreadable proofs): it must stop for
    /// good.
    #[error("{0}")]
    Ended(String),
    /// Storage failed while checking: try again later.
    #[error(transparent)]
    Store(StoreError),
}

/// The one rule for standing subscriptions, shared by SSE streams and webhook deliveries:
/// every delegation in `proofs` and every ancestor is stored, unrevoked and valid at `now`
/// (through the authorizer's cache and revocation set, so the check is cheap enough to run
/// before every event). Returns the earliest expiration along the chain.
pub async fn authority_holds(
    auth: &Authorizer,
    proofs: &[String],
    now: Timestamp,
) -> Result<Option<Timestamp>, Lapse> {
    let cids = proofs
        .iter()
        .map(|p| parse_cid(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Lapse::Ended("the subscription's proofs are unreadable".into()))?;
    match auth.proofs_still_valid(&cids, now).await {
        Ok(exp) => Ok(exp),
        Err(AuthError::Store(e)) => Err(Lapse::Store(e)),
        Err(e) => Err(Lapse::Ended(e.to_string())),
    }
}

/// Whether a stored write event falls in a scope.
pub fn in_scope(scope: &Scope, e: &StoredEvent) -> bool {
    let d = &e.draft;
    scope.matches(&d.space, &d.service, &d.path, &d.ability)
}

/// The `epoch` of a write event. The reference names the transaction an event belongs to by
/// the CID of an epoch in its epoch DAG; this node keeps no such DAG, so every write is its
/// own epoch, named by the CID (raw, blake3) of what identifies the event (space, sequence
/// number and the event's fields). Stable: a replayed event carries the same value.
fn epoch_of(e: &StoredEvent) -> String {
    let d = &e.draft;
    let mut h = blake3::Hasher::new();
    h.update(b"tinycloud/hooks/event-epoch/v1");
    for part in [
        d.space.as_bytes(),
        e.seq.to_string().as_bytes(),
        d.service.as_bytes(),
        d.ability.as_bytes(),
        d.path.as_bytes(),
        d.actor.as_bytes(),
        d.timestamp_ms.to_string().as_bytes(),
    ] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    tinycloud_auth::cid::from_blake3_digest(h.finalize().as_bytes()).to_string()
}

/// The JSON of a write event: what changed, where, by whom, and its sequence number; never
/// the value. It carries every field a reference subscriber reads (`type`, `id`, `space`,
/// `service`, `ability`, `path`, `actor`, `epoch`, `eventIndex`, `timestamp`) plus `seq`.
/// `id` is the sequence number as text (also the SSE id, so `Last-Event-ID` resumes from it)
/// where the reference writes `<epoch>:<index>`: clients treat it as opaque.
pub fn event_json(e: &StoredEvent) -> Value {
    let ts = crate::clock::rfc3339(e.draft.timestamp_ms);
    json!({
        "type": "write",
        "id": e.seq.to_string(),
        "seq": e.seq,
        "space": e.draft.space,
        "service": e.draft.service,
        "ability": e.draft.ability,
        "path": e.draft.path,
        "actor": e.draft.actor,
        "epoch": epoch_of(e),
        "eventIndex": 0,
        "timestamp": ts,
    })
}

/// What a ticket grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Version.
    pub v: u8,
    /// The subscriber DID.
    pub sub: String,
    /// The space (one per ticket, so event ids are one sequence).
    pub space: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Issued (Unix ms).
    pub iat: i64,
    /// Connect-by (Unix ms).
    pub exp: i64,
    /// The delegations the subscription rests on (re-checked while streaming).
    pub proofs: Vec<String>,
    /// Random: every minted ticket is distinct, and opens one stream only.
    #[serde(default)]
    pub nonce: String,
    /// Whether the subscriber asked for the stream's signals (`ready`, `reset`, `end`) as SSE
    /// events. Without it they go as SSE comments, and only `write` events carry data.
    #[serde(default)]
    pub signals: bool,
}

impl Ticket {
    /// `base64url(json).base64url(mac)`.
    pub fn encode(&self, key: &[u8; 32]) -> String {
        crate::keys::mac_encode(key, self)
    }

    /// Verifies the MAC (constant time) and decodes.
    pub fn decode(key: &[u8; 32], text: &str) -> Option<Ticket> {
        crate::keys::mac_decode(key, text, 16 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventDraft;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn ev(path: &str, ability: &str) -> StoredEvent {
        StoredEvent {
            seq: 1,
            draft: EventDraft {
                space: "s".into(),
                service: "kv".into(),
                ability: ability.into(),
                path: path.into(),
                actor: "a".into(),
                timestamp_ms: 0,
            },
        }
    }

    #[test]
    fn scope_matching_is_segment_aware() {
        let s = Scope {
            space: "s".into(),
            service: "kv".into(),
            path_prefix: Some("/notes/".into()),
            abilities: None,
        }
        .normalized()
        .unwrap();
        assert_eq!(s.path_prefix.as_deref(), Some("notes"));
        assert!(in_scope(&s, &ev("notes", "tinycloud.kv/put")));
        assert!(in_scope(&s, &ev("notes/a", "tinycloud.kv/put")));
        assert!(!in_scope(&s, &ev("notesx/a", "tinycloud.kv/put")));
        let dels = Scope {
            abilities: Some(vec!["tinycloud.kv/del".into()]),
            ..s.clone()
        };
        assert!(!in_scope(&dels, &ev("notes/a", "tinycloud.kv/put")));
        assert!(in_scope(&dels, &ev("notes/a", "tinycloud.kv/del")));
        assert!(Scope {
            service: "x".into(),
            ..s.clone()
        }
        .normalized()
        .is_err());
        assert!(Scope {
            abilities: Some(vec!["tinycloud.kv/get".into()]),
            ..s
        }
        .normalized()
        .is_err());
    }

    #[test]
    fn tickets_are_tamper_proof() {
        let t = Ticket {
            v: 1,
            sub: "did:key:z".into(),
            space: "s".into(),
            scopes: vec![],
            iat: 1,
            exp: 2,
            proofs: vec![],
            nonce: "n".into(),
            signals: true,
        };
        let k = [3u8; 32];
        let enc = t.encode(&k);
        assert_eq!(Ticket::decode(&k, &enc), Some(t.clone()));
        assert_eq!(Ticket::decode(&[4u8; 32], &enc), None);
        // A well-formed ticket for someone else under the original MAC.
        let (_, mac) = enc.split_once('.').unwrap();
        let other = Ticket {
            sub: "did:key:other".into(),
            ..t
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(Ticket::decode(&k, &format!("{body}.{mac}")), None);
    }
}

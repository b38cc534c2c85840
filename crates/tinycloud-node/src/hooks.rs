//! Hooks: subscription scopes, SSE tickets, and the write-event JSON.
//!
//! A ticket is minted by `POST /hooks/tickets` for a fully verified invocation and carries
//! the subscriber, the scopes and the delegations it rests on, MACed with a node key. Streams
//! re-check those delegations while they run, so a revoked or expired subscriber is cut off.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tinycloud_auth::resource::validate_path;

use crate::store::StoredEvent;

/// Most scopes per ticket.
pub const MAX_SCOPES: usize = 32;
/// Longest ticket lifetime (time to connect), in seconds.
pub const MAX_TICKET_SECS: i64 = 300;

/// What a subscriber wants to see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    /// Space id.
    pub space: String,
    /// `kv` or `sql`.
    pub service: String,
    /// Segment-aware path prefix (`notes` matches `notes` and `notes/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only these abilities (e.g. `tinycloud.kv/put`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
}

impl Scope {
    /// Normalizes (trims `/` from the prefix) and validates a scope.
    pub fn normalized(mut self) -> Result<Scope, String> {
        if !matches!(self.service.as_str(), "kv" | "sql") {
            return Err(format!(
                "unsupported hook service {:?} (kv or sql)",
                self.service
            ));
        }
        if let Some(p) = &self.path_prefix {
            let t = p.trim_matches('/').to_owned();
            if !t.is_empty() {
                validate_path(&t).map_err(|e| e.to_string())?;
            }
            self.path_prefix = (!t.is_empty()).then_some(t);
        }
        if let Some(a) = &self.abilities {
            let allowed: &[&str] = match self.service.as_str() {
                "kv" => &[
                    "tinycloud.kv/put",
                    "tinycloud.kv/del",
                    "tinycloud.kv/delete",
                ],
                _ => &[
                    "tinycloud.sql/write",
                    "tinycloud.sql/admin",
                    "tinycloud.sql/schema",
                ],
            };
            if let Some(bad) = a.iter().find(|x| !allowed.contains(&x.as_str())) {
                return Err(format!(
                    "ability filter {bad:?} is not a {} write ability",
                    self.service
                ));
            }
        }
        Ok(self)
    }

    /// The `<space>/hooks/<service>[/<prefix>]` resource a subscription needs.
    pub fn resource(&self) -> String {
        match &self.path_prefix {
            Some(p) => format!("{}/hooks/{}/{p}", self.space, self.service),
            None => format!("{}/hooks/{}", self.space, self.service),
        }
    }

    /// Whether an event falls in the scope.
    pub fn matches(&self, e: &StoredEvent) -> bool {
        let d = &e.draft;
        d.space == self.space
            && d.service == self.service
            && self.path_prefix.as_deref().is_none_or(|p| {
                d.path == p
                    || (d.path.starts_with(p) && d.path.as_bytes().get(p.len()) == Some(&b'/'))
            })
            && self.abilities.as_ref().is_none_or(|a| {
                a.iter().any(|x| {
                    x == &d.ability
                        || (x == "tinycloud.kv/delete" && d.ability == "tinycloud.kv/del")
                })
            })
    }
}

/// The JSON of a write event: what changed, where, by whom, and its sequence number; never
/// the value.
pub fn event_json(e: &StoredEvent) -> Value {
    let ts = crate::state::rfc3339(e.draft.timestamp_ms);
    json!({
        "type": "write",
        "id": e.seq.to_string(),
        "seq": e.seq,
        "space": e.draft.space,
        "service": e.draft.service,
        "ability": e.draft.ability,
        "path": e.draft.path,
        "actor": e.draft.actor,
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
        assert!(s.matches(&ev("notes", "tinycloud.kv/put")));
        assert!(s.matches(&ev("notes/a", "tinycloud.kv/put")));
        assert!(!s.matches(&ev("notesx/a", "tinycloud.kv/put")));
        let dels = Scope {
            abilities: Some(vec!["tinycloud.kv/del".into()]),
            ..s.clone()
        };
        assert!(!dels.matches(&ev("notes/a", "tinycloud.kv/put")));
        assert!(dels.matches(&ev("notes/a", "tinycloud.kv/del")));
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

//! How a profile gets its authority: a base type that both `profile` and `error` (its
//! hints) read, so neither depends on the other.

use serde::{Deserialize, Serialize};

/// How a profile gets its authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Posture {
    /// Holds the owner's Ethereum key and signs in as the owner.
    LocalOwnerKey,
    /// Holds only a session key and acts under delegations it imports.
    DelegateSession,
}

impl Posture {
    /// The name written in `profile.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Posture::LocalOwnerKey => "local-owner-key",
            Posture::DelegateSession => "delegate-session",
        }
    }
}

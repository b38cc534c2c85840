//! What a secret is: the encrypted payload (value, version and times) and what reading one
//! returns (metadata with its writer, and the value).

use serde::{Deserialize, Serialize};

use super::writer::Writer;

/// What is encrypted: the value and its bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretPayload {
    /// The secret.
    pub value: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Increases on every rotation.
    #[serde(default = "one")]
    pub version: u64,
}

fn one() -> u64 {
    1
}

/// Secret metadata (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Who wrote the stored envelope.
    pub writer: Writer,
}

/// A secret read with its value.
#[derive(Clone, Debug)]
pub struct Secret {
    /// Its metadata (incl. the writer).
    pub info: SecretInfo,
    /// The value.
    pub value: String,
}

/// A payload's metadata as [`SecretInfo`], with the writer judged from its envelope.
pub(super) fn info(name: &str, p: &SecretPayload, writer: Writer) -> SecretInfo {
    SecretInfo {
        name: name.trim().to_owned(),
        version: p.version,
        created_at: p.created_at.clone(),
        updated_at: p.updated_at.clone(),
        writer,
    }
}

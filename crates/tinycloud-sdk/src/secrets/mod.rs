//! The secret manager's convention on top of KV and encryption networks: values live in the
//! owner's `secrets` space at `vault/secrets/<NAME>` (or `vault/secrets/scoped/<scope>/<NAME>`),
//! encrypted to the owner's `default` network before they leave the client. Reading needs two
//! grants: `tinycloud.kv/get` on the path and `tinycloud.encryption/decrypt` on the network.
//!
//! By concern: `names` (the deny list and the name, scope and path rules), `payload` (what is
//! encrypted and what a read returns), `writer` (who wrote an envelope, judged from the
//! envelope alone, and the associated data binding it to its location), `store` (the
//! [`Secrets`] handle, sealing, storing, reading back and version history) and `ops` (the
//! public operations on a vault).

mod names;
mod ops;
mod payload;
mod store;
mod writer;

pub use names::{
    canonical_scope, check_name, check_name_syntax, check_value, denied, list_prefix,
    resolve_secret_path, DENIED_NAMES, DENIED_PREFIXES,
};
pub use payload::{Secret, SecretInfo, SecretPayload};
pub use store::Secrets;
pub use writer::{
    aad, signed_version, signed_written_at, writer_of, Writer, MAX_ENVELOPE_BYTES, META_VERSION,
    META_WRITTEN_AT,
};

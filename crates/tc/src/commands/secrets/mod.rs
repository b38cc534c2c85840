//! `tc secrets …`: the secret manager on top of the SDK's convention (values encrypted to the
//! owner's `default` network, stored in the owner's `secrets` space, decrypted through the
//! node). Values come from stdin or a hidden prompt, never from the command line, and are never
//! printed (except by `get`), logged, written to disk or put in a child's argv.
//!
//! By concern: `args` (names and scopes as typed), `input` (reading a value), `vault` (whose
//! secrets a profile acts on, and what failures mean), `values` (put, rotate, get, ls, rm,
//! info), `share` (grant, audit) and `run` (a command with secrets in its environment).

mod args;
mod input;
mod run;
mod share;
mod values;
mod vault;

pub use run::run;
pub use share::{audit, grant};
pub use values::{get, info, ls, put, rm, rotate};

/// The space secrets live in.
const SPACE: &str = "secrets";
/// The network they are encrypted to.
const NETWORK: &str = "default";

//! TinyCloud protocol core.
//!
//! Pure and I/O-free: identities (DIDs, space ids, resource URIs), abilities and capability
//! containment, SIWE + ReCap, CACAO, UCAN, CIDs, chain validation and the human-readable
//! rendering of capability sets. Time is always passed in; nothing here reads a clock, the
//! network, the disk or a random source. The node, the SDK and the apps all call this crate and
//! none of them re-implements a rule.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ability;
pub mod cacao;
pub mod capability;
pub mod chain;
pub mod cid;
pub mod did;
pub mod envelope;
pub mod eth;
mod excerpt;
pub mod hook_scope;
pub mod keys;
pub mod policy;
pub mod recap;
pub mod resource;
pub mod session;
pub mod siwe;
pub mod sql_caveat;
pub mod text;
pub mod timestamp;
pub mod token;
pub mod ucan;

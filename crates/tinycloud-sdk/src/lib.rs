//! The Rust client for TinyCloud.
//!
//! - [`client::TinyCloud`]: node discovery, owner sign-in (SIWE + ReCap, space creation),
//!   session-only mode, invocations.
//! - [`signer::Signer`]: who signs the owner's messages ([`signer::LocalSigner`] or any
//!   external signer).
//! - [`session`]: sessions and their storage (files compatible in shape with the reference,
//!   memory).
//! - [`kv`]: the KV service. [`sql`]: SQL databases. [`hooks`]: live write events.
//!   [`delegation`]: delegating to other keys, portable delegations, revocation.
//! - [`terminal`]: the output sanitizer for untrusted text shown on a terminal.
//!
//! Every call builds a fresh single-use invocation; every failure is a typed [`Error`].

#![forbid(unsafe_code)]

pub mod client;
pub mod delegation;
pub mod encryption;
pub mod error;
pub mod hooks;
pub mod kv;
pub mod manifest;
pub mod openkey;
pub mod secrets;
pub mod session;
pub mod signer;
pub mod sql;
pub mod terminal;

pub use client::{Config, TinyCloud};
pub use error::{Error, Result};
pub use signer::{LocalSigner, Signer};

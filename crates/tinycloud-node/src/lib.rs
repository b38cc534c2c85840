//! The TinyCloud node: hosts spaces, verifies delegations and invocations, enforces
//! capabilities and revocation, and serves KV over HTTP (TinyCloud protocol v1).
//!
//! Request flow: route → [`auth::Authorizer`] (token verification, cached chain validation,
//! single-use consumption) → service (`routes::kv`, …) → [`store`] traits.

#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod encryption;
pub mod error;
pub mod hooks;
pub mod keys;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod signed;
pub mod sql;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;

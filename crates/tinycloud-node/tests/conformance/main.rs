//! Conformance with the reference clients: requests built by the foreign client
//! (`tests/foreign/`: no `tinycloud_auth`, no `tinycloud_sdk`) as the JS SDK builds them,
//! against the real binary. One test binary, one module per protocol area, so the foreign
//! client is compiled once and all of it is in use.

#[path = "../common/mod.rs"]
mod common;
#[path = "../foreign/mod.rs"]
mod foreign;

mod delegation;
mod discovery;
mod encryption;
mod hooks;
mod kv;
mod operations;
mod public;
mod sql;
mod webhooks;

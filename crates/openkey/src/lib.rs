//! OpenKey: self-custodiable owner keys operated with passkeys.
//!
//! A server (`openkey serve`) with server-rendered pages. People sign up and in with passkeys
//! (email one-time codes and recovery codes as ways back in), hold a secp256k1 owner key sealed
//! at rest behind a [`keys::KeySealer`], sign EIP-191 / EIP-712 / SIWE messages only right after a
//! passkey user verification, export the raw key for self-custody, and read an audit log of every
//! signing decision, export and key change.
//!
//! Module map (dependencies point down the list, never up):
//! - [`config`], [`clock`] — base.
//! - [`store`] — persistence traits per concern and the embedded SQLite backend.
//! - [`audit`] — the per-user audit log.
//! - [`keys`] — sealing, key records, signing with an unsealed key, attestation reports.
//! - [`error`] — `AppError`, the HTTP mapping of failures.
//! - [`state`] — [`state::AppState`], the services wired together.
//! - [`web`] — cookies, sessions, CSRF, extractors, page rendering, base routes.
//! - [`accounts`], [`wallet`], [`sign`], [`oidc`], [`approve`] — HTTP features built on `web`
//!   (pages and JSON).
//! - [`app`] — router composition.
//! - [`server`] — binding, the first stdout line, serving.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod approve;
pub mod audit;
pub mod clock;
pub mod config;
pub mod error;
pub mod keys;
pub mod oidc;
pub mod server;
pub mod sign;
pub mod state;
pub mod store;
pub mod wallet;
pub mod web;

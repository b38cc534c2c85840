//! Test and bench support for the TinyCloud workspace, one copy of each:
//!
//! - [`process`] — the launcher of server binaries (`tinycloud-node`, `tc node serve`) on a
//!   free port with a temporary data directory;
//! - [`tokens`] — owner wallets, session keys, SIWE + ReCap sign-ins, UCAN delegations and
//!   invocations, built through the protocol core;
//! - [`http`] — the node end-to-end tests' HTTP helpers (owner sign-in, KV / SQL / hooks
//!   calls, delegation, revocation);
//! - [`sse`] — the Server-Sent Events reader (on `eventsource-stream`);
//! - [`cli`] — personas driving the `tc` binary;
//! - [`vectors`] — the repository's test vectors (`tests/vectors/`).
//!
//! It depends on `tinycloud-auth` and small crates only, never on the node or the SDK, so any
//! crate can dev-depend on it (the core's own integration tests use [`vectors`]). Callers pass the binary to start (`env!("CARGO_BIN_EXE_…")`).

pub mod cli;
pub mod http;
pub mod process;
pub mod sse;
pub mod tokens;
pub mod vectors;

pub use http::*;
pub use process::{Launch, Node};
pub use sse::{SseEvent, SseReader, SseStream};
pub use tokens::*;

//! The node end-to-end tests' harness: the workspace testkit (launcher, sign-in and tokens,
//! HTTP helpers, SSE reader) and the binary under test.

pub use tinycloud_testkit::*;

/// The `tinycloud-node` binary these tests start (`Node::start(NODE_BIN, env)`).
pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_tinycloud-node");

//! The harness of tc's end-to-end tests: the workspace testkit's personas driving the real
//! `tc` binary, against a node run by that binary (`tc node serve`) on a free port.

pub use tinycloud_testkit::cli::*;
pub use tinycloud_testkit::Node;

/// The `tc` binary under test.
pub const TC: &str = env!("CARGO_BIN_EXE_tc");

/// A node run by `tc node serve` on a free port with a temporary data directory, killed on
/// drop.
pub fn serve() -> Node {
    tinycloud_testkit::Launch::new(TC)
        .args(["node", "serve"])
        .start()
}

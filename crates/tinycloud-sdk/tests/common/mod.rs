//! What the SDK's end-to-end tests share: an in-process node on a free port with its storage
//! in a temp dir, and signed-in clients. (The node runs in-process because a test here cannot
//! name another package's binary; the node's and `tc`'s tests start theirs with the workspace
//! testkit's launcher.)

use tinycloud_sdk::{Config, LocalSigner, TinyCloud};

/// A running node and the temp dir holding its storage (removed when dropped, after the node).
pub struct TestNode {
    pub node: tinycloud_node::server::Running,
    _dir: tempfile::TempDir,
}

/// A node with the default settings as changed by `configure`.
pub async fn node_with(configure: impl FnOnce(&mut tinycloud_node::config::Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tinycloud_node::config::Config {
        port: 0,
        storage: tinycloud_node::config::StorageConfig {
            datadir: dir.path().to_path_buf(),
            ..Default::default()
        },
        ..Default::default()
    };
    configure(&mut cfg);
    TestNode {
        node: tinycloud_node::server::start(cfg).await.unwrap(),
        _dir: dir,
    }
}

/// A client on `url` signed in by `signer`.
pub async fn signed_in(url: &str, signer: &LocalSigner) -> TinyCloud {
    let tc = TinyCloud::new(Config::new(url)).unwrap();
    tc.sign_in(signer).await.unwrap();
    tc
}

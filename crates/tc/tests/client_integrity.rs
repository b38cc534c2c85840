//! End-to-end checks of what `tc` believes and writes: owner signatures whose proof is
//! revoked or expired, rolled-back secrets, downloads through planted symlinks, complete audit
//! trails, and machine-readable `secrets run` reports.

mod common;

use common::*;

#[test]
fn kv_get_to_a_file_never_follows_a_planted_symlink() {
    use std::os::unix::fs::PermissionsExt as _;
    let node = Node::start();
    let o = owner(&node);
    let value = o.file("value.bin");
    std::fs::write(&value, b"fresh bytes").unwrap();
    o.tc(&["kv", "put", "blob", "--file"])
        .arg(&value)
        .assert()
        .success();

    let out = o.file("out");
    std::fs::create_dir(&out).unwrap();
    let victim = o.file("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Links at every temporary name a writer might predict, and at the target itself.
    let target = out.join("copy.bin");
    for name in ["copy.tmp", "copy.bin.tmp", ".copy.bin.tmp", "copy.bin"] {
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
    }
    o.tc(&["kv", "get", "blob", "-o"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let meta = std::fs::symlink_metadata(&victim).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link at the target is replaced"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&target).unwrap(), b"fresh bytes");
    // Nothing else was created: the planted links stay links, no temporary file is left.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".copy.bin.tmp", "copy.bin", "copy.bin.tmp", "copy.tmp"]
    );
    for link in ["copy.tmp", "copy.bin.tmp", ".copy.bin.tmp"] {
        assert!(std::fs::symlink_metadata(out.join(link))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // A missing key leaves an existing file as it was.
    o.tc(&["kv", "get", "missing", "-o"])
        .arg(&target)
        .assert()
        .code(4);
    assert_eq!(std::fs::read(&target).unwrap(), b"fresh bytes");
}

//! A temporary directory for a test cluster, removed when dropped.

use std::path::PathBuf;

/// A fresh temp dir and the cluster directory inside it (not created yet).
/// Keep the `TempDir` alive for the test: dropping it removes everything.
pub fn temp_cluster_dir() -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::Builder::new()
        .prefix("pgrw-cli-test-")
        .tempdir()
        .expect("temp dir");
    // When tests run as root the servers run as `postgres`, which must get in.
    std::fs::set_permissions(
        parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let dir = parent.path().join("cluster");
    (parent, dir)
}

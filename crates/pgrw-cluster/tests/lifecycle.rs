//! Bringing clusters up and down: idempotence, refusals, purge.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, free_port_range};
use pgrw_cluster::{Cluster, ClusterError, ClusterSpec};

/// Pids of live processes whose command line mentions `dir` (servers run with `-D <dir>/…`).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| {
            let pid = entry.ok()?.file_name().into_string().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(pid)
        })
        .collect()
}

fn postmaster_pids(cluster: &Cluster) -> Vec<String> {
    cluster
        .nodes()
        .iter()
        .map(|node| {
            std::fs::read_to_string(node.pid_file())
                .expect("pid file")
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Runs `up` that must fail; a cluster that comes up anyway is torn down before the test fails.
async fn up_expecting_failure(spec: &ClusterSpec, unexpected: &str) -> ClusterError {
    match spec.up().await {
        Ok(cluster) => {
            let _ = cluster.down(true).await;
            panic!("{unexpected}");
        }
        Err(error) => error,
    }
}

fn spec_of(cluster: &TestCluster) -> ClusterSpec {
    let mut spec = ClusterSpec::new(cluster.dir());
    spec.base_port = cluster.port("primary");
    spec.replicas = cluster.nodes().len() - 1;
    spec.password = TEST_PASSWORD.to_string();
    spec
}

#[tokio::test]
async fn up_on_a_running_cluster_changes_nothing() {
    let cluster = TestCluster::start(1).await;
    let before = postmaster_pids(cluster.cluster());

    let again = spec_of(&cluster).up().await.expect("second up");

    assert_eq!(postmaster_pids(&again), before, "servers were restarted");
}

#[tokio::test]
async fn up_on_a_stopped_cluster_starts_every_node_streaming() {
    let cluster = TestCluster::start(1).await;
    cluster.cluster().down(false).await.expect("down");
    assert!(!cluster.status().await.nodes.iter().any(|node| node.up));

    spec_of(&cluster).up().await.expect("up again");

    let status = cluster.status().await;
    assert!(status.nodes.iter().all(|node| node.up));
    assert_eq!(
        status
            .node("replica1")
            .and_then(|node| node.replication.as_deref()),
        Some("streaming")
    );
}

#[tokio::test]
async fn down_with_purge_leaves_no_process_and_no_directory() {
    let cluster = TestCluster::start(1).await;
    let dir = cluster.dir().to_path_buf();
    assert!(
        !processes_using(&dir).is_empty(),
        "the servers run with -D under the cluster dir"
    );

    cluster.cluster().down(true).await.expect("down --purge");

    assert!(!dir.exists(), "{} still exists", dir.display());
    assert_eq!(processes_using(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn a_taken_port_is_named_and_nothing_is_started_or_created() {
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let taken = squatter.local_addr().expect("addr").port();
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("cluster");
    let mut spec = ClusterSpec::new(&dir);
    // The primary's and replica1's ports are free; replica2's is taken.
    spec.base_port = taken - 2;

    let error = up_expecting_failure(&spec, "up succeeded on a taken port").await;

    assert!(
        matches!(error, ClusterError::PortInUse { port, .. } if port == taken),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!("port {taken} ")),
        "{error}"
    );
    assert!(!dir.exists(), "a data dir was left behind");
    assert_eq!(processes_using(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn missing_binaries_are_reported_with_how_to_install_them() {
    let empty_bin = tempfile::tempdir().expect("temp dir");
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("cluster");
    let mut spec = ClusterSpec::new(&dir);
    spec.pg_bin = Some(empty_bin.path().to_path_buf());

    let error = up_expecting_failure(&spec, "up succeeded without binaries").await;

    let message = error.to_string();
    assert!(
        matches!(error, ClusterError::BinariesNotFound(_)),
        "{error:?}"
    );
    assert!(
        message.contains("initdb") && message.contains("apt-get install postgresql"),
        "{message}"
    );
    assert!(
        message.contains("--pg-bin") && message.contains("PGRW_PG_BIN"),
        "{message}"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn an_unknown_node_name_lists_the_nodes() {
    let cluster = TestCluster::start(1).await;

    let error = cluster
        .cluster()
        .stop("replica9")
        .await
        .expect_err("stopped a node that does not exist");

    assert_eq!(
        error.to_string(),
        "no node named \"replica9\" in this cluster (nodes: primary, replica1)"
    );
}

#[tokio::test]
async fn as_root_an_unreachable_directory_is_refused_and_what_up_created_is_removed() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: only root hands the servers to the `postgres` user");
        return;
    }
    let private = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 0700");
    let dir = private.path().join("created").join("by").join("up");
    let mut spec = ClusterSpec::new(&dir);
    spec.base_port = free_port_range(3);

    let error = up_expecting_failure(&spec, "up succeeded in an unreachable directory").await;

    let message = error.to_string();
    assert!(
        message.contains(&format!("{} is not traversable", private.path().display())),
        "{message}"
    );
    assert!(message.contains("chmod o+x"), "{message}");
    assert!(
        !private.path().join("created").exists(),
        "up left the directories it created"
    );
}

#[tokio::test]
async fn up_refuses_a_directory_that_holds_something_else() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().to_path_buf();
    std::fs::create_dir(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data").join("precious.txt"), "keep me").expect("write");
    let mut spec = ClusterSpec::new(&dir);
    spec.base_port = free_port_range(3);

    let error = up_expecting_failure(&spec, "up took over a directory in use").await;

    assert!(
        error
            .to_string()
            .contains("is not empty and holds no pgrw cluster"),
        "{error}"
    );
    assert!(
        dir.join("data").join("precious.txt").exists(),
        "up deleted a file it did not create"
    );
}

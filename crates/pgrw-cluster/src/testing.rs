//! A throw-away cluster per test: free ports, a temp dir, teardown on drop.
//!
//! ```no_run
//! # async fn example() {
//! use pgrw_cluster::testing::TestCluster;
//! let cluster = TestCluster::start(2).await;
//! let primary = cluster.connect("primary").await;
//! primary.batch_execute("CREATE TABLE t (id int)").await.unwrap();
//! # }
//! ```
//!
//! Every test gets its own cluster on its own random loopback ports, so tests
//! run in parallel, also across test binaries. The harness panics with a clear
//! message instead of returning errors: it is meant for test code.

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::layout::NodeLayout;
use crate::status::ClusterStatus;
use crate::{Cluster, ClusterSpec, process, programs};

/// The password of `postgres` in test clusters.
pub const TEST_PASSWORD: &str = "pgrw-test";
// Below Linux's ephemeral range (32768 and up), so that client sockets never hold them.
const LOWEST_BASE_PORT: u16 = 20_000;
const HIGHEST_BASE_PORT: u16 = 32_000;
const ATTEMPTS: usize = 8;

/// One node of a test cluster, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNode {
    /// `primary`, `replica1`, ….
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A libpq connection string for it.
    pub dsn: String,
}

/// A running cluster in a temp dir, stopped and deleted when dropped.
pub struct TestCluster {
    cluster: Cluster,
    nodes: Vec<NodeLayout>,
    // Deleted by `Drop::drop` once the servers are stopped.
    temp_dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a primary and `replicas` streaming replicas on free loopback ports.
    ///
    /// Retries on other ports when another test takes one first.
    pub async fn start(replicas: usize) -> TestCluster {
        let temp_dir = tempfile::Builder::new()
            .prefix("pgrw-test-")
            .tempdir()
            .unwrap_or_else(|error| panic!("creating a temp dir for a test cluster: {error}"));
        // The servers may run as another user (when tests run as root): let it in.
        std::fs::set_permissions(temp_dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|error| {
                panic!(
                    "opening {} to the server user: {error}",
                    temp_dir.path().display()
                )
            });
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            let mut spec = ClusterSpec::new(temp_dir.path().join(format!("cluster{attempt}")));
            spec.base_port = free_port_range(replicas as u16 + 1);
            spec.replicas = replicas;
            spec.password = TEST_PASSWORD.to_string();
            match spec.up().await {
                Ok(cluster) => {
                    let nodes = cluster.nodes();
                    return TestCluster {
                        cluster,
                        nodes,
                        temp_dir,
                    };
                }
                Err(error) if error.is_port_conflict() => last_error = Some(error),
                Err(error) => panic!("starting a test cluster with {replicas} replicas: {error}"),
            }
        }
        panic!(
            "starting a test cluster: no free ports after {ATTEMPTS} attempts (last: {})",
            last_error
                .map(|error| error.to_string())
                .unwrap_or_default()
        )
    }

    /// The underlying cluster, for operations the harness does not wrap.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        self.cluster.dir()
    }

    /// Every node, primary first.
    pub fn nodes(&self) -> Vec<TestNode> {
        self.nodes
            .iter()
            .map(|node| TestNode {
                name: node.name.clone(),
                port: node.port,
                dsn: crate::dsn(node.port, TEST_PASSWORD),
            })
            .collect()
    }

    /// The port of the node called `name`.
    pub fn port(&self, name: &str) -> u16 {
        self.node(name).port
    }

    /// The connection string of the node called `name`.
    pub fn dsn(&self, name: &str) -> String {
        crate::dsn(self.node(name).port, TEST_PASSWORD)
    }

    /// The primary's connection string.
    pub fn primary_dsn(&self) -> String {
        self.dsn(crate::PRIMARY_NAME)
    }

    /// The connection string of replica `index` (1-based, as in `replica1`).
    pub fn replica_dsn(&self, index: usize) -> String {
        self.dsn(&format!("replica{index}"))
    }

    /// Connects to the node called `name`.
    pub async fn connect(&self, name: &str) -> Client {
        self.cluster
            .connect(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Connects to the primary.
    pub async fn connect_primary(&self) -> Client {
        self.connect(crate::PRIMARY_NAME).await
    }

    /// Connects to replica `index` (1-based, as in `replica1`).
    pub async fn connect_replica(&self, index: usize) -> Client {
        self.connect(&format!("replica{index}")).await
    }

    /// The status of every node.
    pub async fn status(&self) -> ClusterStatus {
        self.cluster.status().await
    }

    /// Stops the node (fast shutdown).
    pub async fn stop(&self, name: &str) {
        self.cluster
            .stop(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Starts the node and waits until it accepts connections.
    pub async fn start_node(&self, name: &str) {
        self.cluster
            .start(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Kills the node's postmaster (SIGKILL) and waits for its children to exit.
    pub async fn kill(&self, name: &str) {
        self.cluster
            .kill(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Freezes the node (SIGSTOP to all its processes): it stops answering
    /// but keeps its connections. Dropping the cluster thaws it first.
    pub async fn freeze(&self, name: &str) {
        self.cluster
            .freeze(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Lets a frozen node run again.
    pub async fn thaw(&self, name: &str) {
        self.cluster
            .thaw(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Pauses WAL replay on a replica.
    pub async fn pause_replay(&self, name: &str) {
        self.cluster
            .pause_replay(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Resumes WAL replay on a replica.
    pub async fn resume_replay(&self, name: &str) {
        self.cluster
            .resume_replay(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Promotes a replica and waits until it is out of recovery.
    pub async fn promote(&self, name: &str) {
        self.cluster
            .promote(name)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Waits (up to 30 s) until every replica has replayed the primary's
    /// WAL as it stands now: what was committed before is on every node.
    pub async fn wait_for_replicas_to_catch_up(&self) {
        let replicas: Vec<String> = self
            .nodes()
            .into_iter()
            .filter(|node| node.name != "primary")
            .map(|node| node.name)
            .collect();
        for replica in replicas {
            self.wait_for_replay_on(&replica).await;
        }
    }

    /// Waits (up to 30 s) until `replica` has replayed the primary's WAL as
    /// it stands now.
    pub async fn wait_for_replay_on(&self, replica: &str) {
        let primary = self.connect_primary().await;
        let target: String = primary
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap_or_else(|error| panic!("reading the primary's WAL position: {error}"))
            .get(0);
        let client = self.connect(replica).await;
        let description = format!("{replica} replays {target}");
        wait_until(Duration::from_secs(30), &description, async || {
            client
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&target],
                )
                .await
                .is_ok_and(|row| row.get::<_, Option<bool>>(0) == Some(true))
        })
        .await;
    }

    /// Turns TLS on for the node called `name` (`ssl = on`, reloaded, no
    /// restart) with `cert_pem` (its certificate chain) and `key_pem` (the
    /// key), written into its data directory; returns once it serves TLS.
    pub async fn enable_tls(&self, name: &str, cert_pem: &str, key_pem: &str) {
        let node = self.node(name);
        for (file, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            self.write_server_file(node, file, text);
        }
        self.append_setting(node, "ssl = on\n");
        let client = self.connect(name).await;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap_or_else(|error| panic!("reloading {name}: {error}"));
        let description = format!("{name} serves TLS");
        wait_until(Duration::from_secs(30), &description, async || {
            let client = self.connect(name).await;
            client
                .query_one("SHOW ssl", &[])
                .await
                .is_ok_and(|row| row.get::<_, String>(0) == "on")
        })
        .await;
    }

    /// Makes the node called `name` listen on a Unix socket too, in its data
    /// directory, with password logins (a restart); returns the socket
    /// directory, the `host` a client gives.
    pub async fn enable_unix_socket(&self, name: &str) -> std::path::PathBuf {
        let node = self.node(name);
        let directory = node.data_dir.clone();
        self.append_setting(
            node,
            &format!("unix_socket_directories = '{}'\n", directory.display()),
        );
        let hba = node.data_dir.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba)
            .unwrap_or_else(|error| panic!("reading {}: {error}", hba.display()));
        rules.push_str("local   all          all                 scram-sha-256\n");
        std::fs::write(&hba, rules)
            .unwrap_or_else(|error| panic!("writing {}: {error}", hba.display()));
        self.stop(name).await;
        self.start_node(name).await;
        directory
    }

    fn append_setting(&self, node: &NodeLayout, line: &str) {
        let path = node.data_dir.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .unwrap_or_else(|error| panic!("appending to {}: {error}", path.display()));
    }

    /// Writes a file the server reads (mode 0600, owned by the server user).
    fn write_server_file(&self, node: &NodeLayout, file: &str, text: &str) {
        let path = node.data_dir.join(file);
        std::fs::write(&path, text)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)))
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        self.cluster
            .programs
            .user()
            .own(&path)
            .unwrap_or_else(|error| panic!("{error}"));
    }

    fn node(&self, name: &str) -> &NodeLayout {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("the test cluster has no node named {name:?}"))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for node in &self.nodes {
            // A node a test froze must run to hear the shutdown.
            process::thaw(node);
            process::stop_immediately(node, Duration::from_secs(10));
            if panicking && let Some(tail) = programs::log_tail(&node.log_file, 15) {
                // Not eprintln!: it panics when stderr is closed, and this is `drop`.
                let _ = writeln!(
                    std::io::stderr(),
                    "--- last lines of {} ({}):\n{tail}",
                    node.name,
                    node.log_file.display()
                );
            }
        }
        // Servers that run as another user leave files the TempDir cannot always
        // delete on its own: remove the tree now, ignoring what is already gone.
        let _ = std::fs::remove_dir_all(self.temp_dir.path());
    }
}

/// Polls `check` every 20 ms until it returns true; panics naming `description`
/// when `timeout` passes first.
pub async fn wait_until(
    timeout: Duration,
    description: &str,
    mut check: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {description}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A random base port with `count` consecutive ports free at 127.0.0.1, for
/// tests that start servers themselves (e.g. through the `pgrw` binary).
///
/// Another process may still take them before they are bound: callers that can
/// retry should (see [`crate::ClusterError::is_port_conflict`]).
pub fn free_port_range(count: u16) -> u16 {
    (0..1000)
        .map(|_| random_base_port(count))
        .find(|&base| (base..base + count).all(crate::is_port_free))
        .unwrap_or_else(|| panic!("no {count} consecutive free ports between {LOWEST_BASE_PORT} and {HIGHEST_BASE_PORT}"))
}

/// A random base port whose whole range of `count` ports fits in the window.
fn random_base_port(count: u16) -> u16 {
    let span = u64::from(HIGHEST_BASE_PORT - LOWEST_BASE_PORT - count);
    let noise = RandomState::new().hash_one((std::process::id(), Instant::now()));
    LOWEST_BASE_PORT + (noise % span) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting until the impossible happens")]
    async fn wait_until_fails_with_the_description_at_the_deadline() {
        wait_until(
            Duration::from_millis(50),
            "the impossible happens",
            async || false,
        )
        .await;
    }

    #[tokio::test]
    async fn wait_until_returns_once_the_condition_holds() {
        let mut polls = 0;
        wait_until(Duration::from_secs(5), "the third poll", async || {
            polls += 1;
            polls == 3
        })
        .await;
        assert_eq!(polls, 3);
    }

    #[test]
    fn free_port_ranges_stay_below_the_ephemeral_ports() {
        let base = free_port_range(3);
        assert!(
            (LOWEST_BASE_PORT..HIGHEST_BASE_PORT - 3).contains(&base),
            "{base}"
        );
    }
}

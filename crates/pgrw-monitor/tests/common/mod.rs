//! A monitored test cluster, and waiting on what the monitor publishes.

#![allow(dead_code)] // Each test binary uses its own share of these helpers.

use std::time::Duration;

use pgrw_cluster::testing::{TestCluster, wait_until};
use pgrw_core::Lsn;
use pgrw_core::route::{HealthPolicy, Node, Topology};
use pgrw_monitor::{Monitor, MonitorConfig, NodeAddress};

/// Long enough for a loaded 2-core machine; tests that pass wait far less.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long a probe may take here: a loaded machine running many clusters
/// can take over a second to fork and log in a backend, and a probe that
/// times out looks like a node that is down. A killed or stopped node
/// refuses connections at once, whatever this is.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Short bans, so that a node comes back within a test's patience.
pub fn quick_bans() -> HealthPolicy {
    HealthPolicy {
        ban_for: Duration::from_millis(200),
        max_ban_for: Duration::from_secs(1),
        ..HealthPolicy::default()
    }
}

/// The default configuration with [`quick_bans`] and [`PROBE_TIMEOUT`].
pub fn config() -> MonitorConfig {
    MonitorConfig {
        health: quick_bans(),
        probe_timeout: PROBE_TIMEOUT,
        ..MonitorConfig::default()
    }
}

/// A monitor of every node of `cluster`, ready.
pub async fn monitor(cluster: &TestCluster, config: MonitorConfig) -> Monitor {
    let nodes = cluster
        .nodes()
        .iter()
        .map(|node| {
            NodeAddress::from_dsn(&node.name, &node.dsn).expect("the harness prints valid DSNs")
        })
        .collect();
    let monitor = Monitor::start(nodes, config);
    monitor
        .ready(PATIENCE)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    monitor
}

/// The node called `name` in `topology`.
pub fn node<'a>(topology: &'a Topology, name: &str) -> &'a Node {
    let id = topology
        .find(name)
        .unwrap_or_else(|| panic!("no node {name} in {topology:?}"));
    &topology.nodes[id.index()]
}

/// Waits until the monitor's topology satisfies `check`.
pub async fn wait_for_topology(
    monitor: &Monitor,
    timeout: Duration,
    description: &str,
    check: impl Fn(&Topology) -> bool,
) {
    wait_until(timeout, description, async || check(&monitor.topology())).await;
}

/// Inserts `rows` rows on the primary (creating the table first if needed)
/// and returns the primary's WAL position after the insert.
pub async fn write_rows(cluster: &TestCluster, rows: i32) -> Lsn {
    let primary = cluster.connect_primary().await;
    primary
        .batch_execute("CREATE TABLE IF NOT EXISTS filler (id serial, payload text)")
        .await
        .expect("creating the filler table");
    primary
        .execute(
            "INSERT INTO filler (payload) SELECT repeat('x', 50) FROM generate_series(1, $1)",
            &[&rows],
        )
        .await
        .expect("inserting filler rows");
    let row = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("reading the primary's WAL position");
    row.get::<_, String>(0)
        .parse()
        .expect("PostgreSQL prints valid LSNs")
}

//! What the library's integration tests share: a real cluster and an
//! `RwPool` over it, and asking a node who it is.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use pgrw::{MonitorConfig, RwPool, RwPoolBuilder};
use pgrw_cluster::testing::{TestCluster, wait_until};
use pgrw_core::route::Role;

/// Probes often, and may take up to 5 s: test machines run many clusters at
/// once, and a slow probe must not make a node look down (a killed or stopped
/// node refuses connections at once, whatever the timeout).
pub fn monitor_config() -> MonitorConfig {
    MonitorConfig {
        interval: Duration::from_millis(50),
        probe_timeout: Duration::from_secs(5),
        ..MonitorConfig::default()
    }
}

/// A primary, two streaming replicas, and a pool builder over them.
pub struct Fixture {
    pub cluster: TestCluster,
    /// Node name by port (`primary`, `replica1`, `replica2`).
    pub names: HashMap<u16, String>,
}

impl Fixture {
    /// Starts a cluster with two replicas.
    pub async fn start() -> Fixture {
        let cluster = TestCluster::start(2).await;
        let names = cluster
            .nodes()
            .into_iter()
            .map(|node| (node.port, node.name))
            .collect();
        Fixture { cluster, names }
    }

    /// A builder over the cluster's primary and replicas, probing as
    /// [`monitor_config`] says.
    pub fn builder(&self) -> RwPoolBuilder {
        RwPool::builder(&self.cluster.primary_dsn())
            .replica(&self.cluster.replica_dsn(1))
            .replica(&self.cluster.replica_dsn(2))
            .monitor_config(monitor_config())
    }

    /// Waits until every replica `pool` knows is up, follows the primary and
    /// has replayed the primary's last probed position: from then on a read
    /// has a replica to go to (a pool's first probes may not have answered
    /// yet on a loaded machine).
    pub async fn wait_for_replicas(&self, pool: &RwPool) {
        wait_until(
            Duration::from_secs(60),
            "both replicas serve reads",
            async || {
                let topology = pool.topology();
                let replicas: Vec<_> = topology
                    .nodes
                    .iter()
                    .filter(|node| node.role == Role::Replica)
                    .collect();
                replicas.len() == 2
                    && replicas.iter().all(|node| {
                        node.is_up()
                            && node.follows_primary()
                            && node.replay_lsn >= topology.primary_lsn
                    })
            },
        )
        .await;
    }

    /// A pool with the default policy.
    pub async fn pool(&self) -> RwPool {
        self.builder().connect().await.expect("pool connects")
    }

    /// The node whose port the server reported.
    pub fn name_of(&self, port: i32) -> &str {
        let port = u16::try_from(port).expect("a port");
        self.names.get(&port).map_or("unknown", String::as_str)
    }
}

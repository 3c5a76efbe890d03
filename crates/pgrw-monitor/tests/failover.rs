//! Failover as the monitor sees it: a replica left following the dead old
//! primary is an orphan whose lag grows, and a restarted old primary is a
//! split brain from its first answer.

mod common;

use std::time::{Duration, Instant};

use pgrw_cluster::testing::TestCluster;
use pgrw_core::route::{HealthPolicy, NoPrimary, Role};
use pgrw_monitor::MonitorConfig;

use common::{PATIENCE, PROBE_TIMEOUT, monitor, node, quick_bans, wait_for_topology};

/// The default bans and lag limits (the failover guarantees rest on them),
/// with the tests' [`PROBE_TIMEOUT`].
fn default_config() -> MonitorConfig {
    MonitorConfig {
        probe_timeout: PROBE_TIMEOUT,
        ..MonitorConfig::default()
    }
}

#[tokio::test]
async fn after_a_promotion_the_replica_left_on_the_old_primary_is_an_orphan_whose_lag_grows() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, default_config()).await;
    wait_for_topology(&monitor, PATIENCE, "both replicas follow", |topology| {
        ["replica1", "replica2"].iter().all(|name| {
            let replica = node(topology, name);
            replica.is_up() && replica.follows_primary()
        })
    })
    .await;

    cluster.stop("primary").await;
    cluster.promote("replica1").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 is the primary and replica2 an orphan",
        |topology| {
            topology.writable_primary()
                == topology.find("replica1").ok_or(NoPrimary::NoneConfigured)
                && !node(topology, "replica2").follows_primary()
        },
    )
    .await;
    let orphan = node(&monitor.topology(), "replica2").clone();
    assert_eq!(orphan.role, Role::Replica);
    eprintln!("replica2: {:?}", orphan.orphan);

    // The new primary writes; the orphan never gets it, and its lag grows.
    let new_primary = cluster.connect("replica1").await;
    new_primary
        .batch_execute("CREATE TABLE after_failover (x int); INSERT INTO after_failover VALUES (1)")
        .await
        .expect("writing on the promoted replica1");
    wait_for_topology(
        &monitor,
        PATIENCE,
        "the orphan's time lag grows past a second",
        |topology| {
            node(topology, "replica2")
                .lag
                .millis
                .is_some_and(|ms| ms > 1_000)
        },
    )
    .await;
}

#[tokio::test]
async fn a_restarted_old_primary_is_a_split_brain_from_its_first_answer_until_it_is_stopped() {
    let cluster = TestCluster::start(1).await;
    // Long bans: the old primary is still banned from its outage when it is back.
    let config = MonitorConfig {
        health: HealthPolicy {
            ban_for: Duration::from_secs(30),
            max_ban_for: Duration::from_secs(30),
            ..quick_bans()
        },
        ..MonitorConfig::default()
    };
    let monitor = monitor(&cluster, config).await;
    cluster.stop("primary").await;
    cluster.promote("replica1").await;
    wait_for_topology(&monitor, PATIENCE, "replica1 is the primary", |topology| {
        topology.writable_primary().ok() == topology.find("replica1")
    })
    .await;

    cluster.start_node("primary").await;
    let started = Instant::now();
    wait_for_topology(&monitor, PATIENCE, "two primaries are seen", |topology| {
        matches!(topology.writable_primary(), Err(NoPrimary::Ambiguous(..)))
    })
    .await;
    eprintln!(
        "split brain seen {:?} after the old primary accepted connections",
        started.elapsed()
    );

    cluster.stop("primary").await;
    wait_for_topology(&monitor, PATIENCE, "one primary again", |topology| {
        topology.writable_primary().ok() == topology.find("replica1")
    })
    .await;
}

#[tokio::test]
async fn a_login_without_pg_read_all_stats_sees_replicas_follow_and_an_orphan_without_upstream() {
    let cluster = TestCluster::start(2).await;
    let primary = cluster.connect_primary().await;
    primary
        .batch_execute("CREATE ROLE plain_app LOGIN PASSWORD 'plain-app-pw'")
        .await
        .expect("creating an unprivileged role");
    let nodes = cluster
        .nodes()
        .iter()
        .map(|node| {
            let mut address = pgrw_monitor::NodeAddress::from_dsn(&node.name, &node.dsn)
                .expect("the harness prints valid DSNs");
            address.user = "plain_app".to_string();
            address.password = "plain-app-pw".to_string();
            address
        })
        .collect();
    // The role reaches the replicas by replication; until then their login fails.
    let monitor = pgrw_monitor::Monitor::start(nodes, default_config());
    wait_for_topology(
        &monitor,
        PATIENCE,
        "both replicas are up and follow, their receivers' details hidden",
        |topology| {
            ["replica1", "replica2"].iter().all(|name| {
                let replica = node(topology, name);
                replica.is_up() && replica.role == Role::Replica && replica.follows_primary()
            })
        },
    )
    .await;

    // A receiver that is gone shows no row, whatever the login may read.
    cluster.stop("primary").await;
    cluster.promote("replica1").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 is the primary and replica2 an orphan",
        |topology| {
            topology.writable_primary().ok() == topology.find("replica1")
                && !node(topology, "replica2").follows_primary()
        },
    )
    .await;
}

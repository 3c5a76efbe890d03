//! Nodes failing and coming back: bans, unbans, reported failures.

mod common;

use std::time::Duration;

use pgrw_cluster::testing::TestCluster;
use pgrw_core::route::{Health, NoPrimary, Role};

use pgrw_monitor::{Monitor, NodeAddress};

use common::{PATIENCE, config, monitor, node, wait_for_topology};

#[tokio::test]
async fn a_killed_replica_stops_being_routable_and_is_up_again_once_restarted() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    wait_for_topology(&monitor, PATIENCE, "replica2 is up", |topology| {
        node(topology, "replica2").is_up()
    })
    .await;

    cluster.kill("replica2").await;
    wait_for_topology(
        &monitor,
        Duration::from_secs(2),
        "the killed replica2 is not routable",
        |topology| !node(topology, "replica2").is_up(),
    )
    .await;
    assert!(
        node(&monitor.topology(), "replica1").is_up(),
        "the other replica stays up"
    );

    cluster.start_node("replica2").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "the restarted replica2 is up",
        |topology| {
            let replica = node(topology, "replica2");
            replica.is_up() && replica.role == Role::Replica
        },
    )
    .await;
}

#[tokio::test]
async fn a_reported_failure_bans_the_node_at_once_and_it_comes_back_when_healthy() {
    let cluster = TestCluster::start(1).await;
    let monitor = monitor(&cluster, config()).await;
    wait_for_topology(&monitor, PATIENCE, "replica1 is up", |topology| {
        node(topology, "replica1").is_up()
    })
    .await;
    let replica = monitor.topology().find("replica1").unwrap();

    monitor.report_failure(replica, "connection refused (test)");
    assert!(
        matches!(
            monitor.topology().nodes[replica.index()].health,
            Health::Banned { .. }
        ),
        "banned in the very next snapshot"
    );

    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 is let back after its ban",
        |topology| topology.nodes[replica.index()].is_up(),
    )
    .await;
}

#[tokio::test]
async fn a_stopped_primary_leaves_no_writable_primary_until_it_is_back() {
    let cluster = TestCluster::start(1).await;
    let monitor = monitor(&cluster, config()).await;
    cluster.stop("primary").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "the stopped primary is not writable",
        |topology| matches!(topology.writable_primary(), Err(NoPrimary::NotUp(..))),
    )
    .await;

    cluster.start_node("primary").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "the primary is writable again",
        |topology| topology.writable_primary() == Ok(topology.find("primary").unwrap()),
    )
    .await;
}

#[tokio::test]
async fn ready_fails_saying_no_primary_is_up_when_the_login_is_refused() {
    let cluster = TestCluster::start(0).await;
    let primary = &cluster.nodes()[0];
    let mut wrong = NodeAddress::from_dsn("primary", &primary.dsn).unwrap();
    wrong.password = "not-the-password".to_string();
    let monitor = Monitor::start(vec![wrong], config());

    let error = monitor.ready(Duration::from_secs(2)).await.unwrap_err();
    assert!(error.unprobed.is_empty(), "the node was probed: {error}");
    assert!(!error.primary_found, "{error}");
    assert!(error.to_string().contains("no primary is up"), "{error}");
    assert!(
        matches!(monitor.topology().nodes[0].health, Health::Banned { .. }),
        "a refused login bans the node"
    );
}

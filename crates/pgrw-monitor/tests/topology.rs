//! The monitor finds the cluster as it is: roles, LSNs, promotions.

mod common;

use pgrw_cluster::testing::TestCluster;
use pgrw_core::route::{Health, NoPrimary, Role};

use common::{PATIENCE, config, monitor, node, wait_for_topology, write_rows};

#[tokio::test]
async fn finds_the_primary_and_both_replicas_with_their_roles_and_lsns() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    wait_for_topology(&monitor, PATIENCE, "every node is up", |topology| {
        topology.nodes.iter().all(|node| node.health == Health::Up)
    })
    .await;

    let topology = monitor.topology();
    let names: Vec<&str> = topology.nodes.iter().map(|node| &*node.name).collect();
    assert_eq!(
        names,
        ["primary", "replica1", "replica2"],
        "nodes keep their order"
    );
    assert_eq!(node(&topology, "primary").role, Role::Primary);
    assert_eq!(node(&topology, "replica1").role, Role::Replica);
    assert_eq!(node(&topology, "replica2").role, Role::Replica);
    assert_eq!(
        topology.writable_primary(),
        Ok(topology.find("primary").unwrap())
    );
    assert!(topology.primary_lsn.is_valid(), "{topology:?}");
    assert_eq!(node(&topology, "primary").replay_lsn, topology.primary_lsn);
    for replica in ["replica1", "replica2"] {
        assert!(
            node(&topology, replica).replay_lsn.is_valid(),
            "{topology:?}"
        );
        assert!(node(&topology, replica).lag.bytes.is_some(), "{topology:?}");
    }
}

#[tokio::test]
async fn replicas_are_seen_replaying_a_write_and_catching_up() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    let written = write_rows(&cluster, 100).await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "both replicas replayed the write with no lag",
        |topology| {
            topology.primary_lsn >= written
                && ["replica1", "replica2"].iter().all(|name| {
                    let replica = node(topology, name);
                    replica.replay_lsn >= written
                        && replica.lag.bytes == Some(0)
                        && replica.lag.millis == Some(0)
                })
        },
    )
    .await;
}

#[tokio::test]
async fn a_write_reaches_subscribers_as_a_new_topology() {
    let cluster = TestCluster::start(1).await;
    let monitor = monitor(&cluster, config()).await;
    let mut updates = monitor.subscribe();
    updates.mark_unchanged();
    let written = write_rows(&cluster, 10).await;
    let seen = tokio::time::timeout(
        PATIENCE,
        updates.wait_for(|topology| topology.primary_lsn >= written),
    )
    .await
    .expect("a new topology within the patience")
    .expect("the monitor is running")
    .primary_lsn;
    assert!(seen >= written);
}

#[tokio::test]
async fn a_promoted_replica_shows_as_primary_and_two_primaries_refuse_writes() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    cluster.promote("replica1").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 shows as primary",
        |topology| {
            let promoted = node(topology, "replica1");
            promoted.role == Role::Primary && promoted.health == Health::Up
        },
    )
    .await;

    let topology = monitor.topology();
    assert_eq!(
        node(&topology, "primary").role,
        Role::Primary,
        "the old primary still runs"
    );
    let (primary, promoted) = (
        topology.find("primary").unwrap(),
        topology.find("replica1").unwrap(),
    );
    assert_eq!(
        topology.writable_primary(),
        Err(NoPrimary::Ambiguous(primary, promoted))
    );
}

#[tokio::test]
async fn after_a_failover_the_promoted_replica_is_the_writable_primary() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    cluster.stop("primary").await;
    cluster.promote("replica2").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica2 is the only writable primary",
        |topology| topology.writable_primary() == Ok(topology.find("replica2").unwrap()),
    )
    .await;
    assert!(!node(&monitor.topology(), "primary").is_up());
}

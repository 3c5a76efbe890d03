//! Replication lag: measured, banned over the limit, waited for.

mod common;

use std::time::Duration;

use pgrw_cluster::testing::TestCluster;
use pgrw_core::route::{Health, HealthPolicy, Role};
use pgrw_monitor::MonitorConfig;

use common::{PATIENCE, config, monitor, node, quick_bans, wait_for_topology, write_rows};

/// Enough WAL to be well over [`LAG_LIMIT_BYTES`].
const ROWS: i32 = 5_000;
const LAG_LIMIT_BYTES: u64 = 64 * 1024;

#[tokio::test]
async fn a_paused_replica_falls_behind_in_bytes_and_time_while_the_primary_writes() {
    let cluster = TestCluster::start(2).await;
    let no_lag_limit = MonitorConfig {
        health: HealthPolicy {
            max_lag: None,
            ..quick_bans()
        },
        ..MonitorConfig::default()
    };
    let monitor = monitor(&cluster, no_lag_limit).await;
    // A replica knows how old its replay is once it has replayed a transaction.
    let first = write_rows(&cluster, 1).await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 replayed a first write",
        |topology| node(topology, "replica1").replay_lsn >= first,
    )
    .await;
    cluster.pause_replay("replica1").await;
    let written = write_rows(&cluster, ROWS).await;

    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 lags by the written WAL, and in time",
        |topology| {
            // The time lag is whole milliseconds since the last replayed
            // commit: a probe right after the burst may still read 0.
            let lag = node(topology, "replica1").lag;
            topology.primary_lsn >= written
                && lag.bytes.is_some_and(|bytes| bytes > LAG_LIMIT_BYTES)
                && lag.millis.is_some_and(|ms| ms > 0)
        },
    )
    .await;
    let topology = monitor.topology();
    let paused = node(&topology, "replica1");
    assert!(paused.is_up(), "no lag limit, no ban: {paused:?}");
    assert!(paused.replay_lsn < written, "{paused:?}");
    wait_for_topology(&monitor, PATIENCE, "replica2 caught up", |topology| {
        node(topology, "replica2").replay_lsn >= written
    })
    .await;
}

#[tokio::test]
async fn a_replica_over_the_lag_limit_is_banned_and_let_back_once_it_catches_up() {
    let cluster = TestCluster::start(2).await;
    let config = MonitorConfig {
        health: HealthPolicy {
            max_lag_bytes: Some(LAG_LIMIT_BYTES),
            ..quick_bans()
        },
        ..MonitorConfig::default()
    };
    let monitor = monitor(&cluster, config).await;
    cluster.pause_replay("replica1").await;
    let written = write_rows(&cluster, ROWS).await;

    wait_for_topology(
        &monitor,
        PATIENCE,
        "the lagging replica1 is banned",
        |topology| matches!(node(topology, "replica1").health, Health::Banned { .. }),
    )
    .await;
    // During the burst of writes replica2 may be over the limit for a moment
    // too; once it has replayed them it serves, while replica1 stays banned.
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica2, caught up, is up while the paused replica1 stays banned",
        |topology| {
            let keeping_up = node(topology, "replica2");
            keeping_up.is_up()
                && keeping_up.replay_lsn >= written
                && matches!(node(topology, "replica1").health, Health::Banned { .. })
        },
    )
    .await;

    cluster.resume_replay("replica1").await;
    wait_for_topology(
        &monitor,
        PATIENCE,
        "replica1 is let back once caught up",
        |topology| {
            let replica = node(topology, "replica1");
            replica.is_up()
                && replica
                    .lag
                    .bytes
                    .is_some_and(|bytes| bytes <= LAG_LIMIT_BYTES)
        },
    )
    .await;
}

#[tokio::test]
async fn waiting_for_replay_succeeds_soon_after_a_write_on_a_healthy_cluster() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    let written = write_rows(&cluster, 10).await;

    let started = monitor.now();
    let deadline = started + Duration::from_secs(5);
    assert!(monitor.wait_for_replay(written, deadline, None).await);
    let waited = monitor.now() - started;
    assert!(waited < Duration::from_secs(2), "took {waited:?}");
    assert!(
        monitor
            .topology()
            .nodes
            .iter()
            .any(|node| node.role == Role::Replica && node.replay_lsn >= written)
    );
}

#[tokio::test]
async fn waiting_for_replay_gives_up_at_the_deadline_while_every_replica_is_paused() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    cluster.pause_replay("replica1").await;
    cluster.pause_replay("replica2").await;
    let written = write_rows(&cluster, 10).await;

    let deadline = monitor.now() + Duration::from_millis(500);
    assert!(!monitor.wait_for_replay(written, deadline, None).await);
    assert!(monitor.now() >= deadline, "not before the deadline");

    cluster.resume_replay("replica2").await;
    let deadline = monitor.now() + PATIENCE;
    assert!(
        monitor.wait_for_replay(written, deadline, None).await,
        "true once a replica replays it"
    );
}

#[tokio::test]
async fn waiting_for_one_replica_ignores_another_that_has_replayed() {
    let cluster = TestCluster::start(2).await;
    let monitor = monitor(&cluster, config()).await;
    cluster.pause_replay("replica1").await;
    let written = write_rows(&cluster, 10).await;
    let replica1 = monitor
        .topology()
        .iter()
        .find(|(_, node)| &*node.name == "replica1")
        .map(|(id, _)| id)
        .expect("replica1 is in the topology");

    // replica2 replays the write; replica1 cannot.
    assert!(
        monitor
            .wait_for_replay(written, monitor.now() + PATIENCE, None)
            .await
    );
    let deadline = monitor.now() + Duration::from_millis(500);
    assert!(
        !monitor
            .wait_for_replay(written, deadline, Some(replica1))
            .await
    );
    assert!(monitor.now() >= deadline, "not before the deadline");

    cluster.resume_replay("replica1").await;
    assert!(
        monitor
            .wait_for_replay(written, monitor.now() + PATIENCE, Some(replica1))
            .await,
        "true once replica1 replays it"
    );
}

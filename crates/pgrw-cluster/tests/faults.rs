//! Fault controls: kill and restart, paused replay, promotion, freeze and thaw.

use std::time::Duration;

use pgrw_cluster::Role;
use pgrw_cluster::testing::{TestCluster, wait_until};

const DEADLINE: Duration = Duration::from_secs(10);

async fn replication_state(cluster: &TestCluster, name: &str) -> Option<String> {
    cluster
        .status()
        .await
        .node(name)
        .and_then(|node| node.replication.clone())
}

async fn lag_bytes(cluster: &TestCluster, name: &str) -> Option<u64> {
    cluster
        .status()
        .await
        .node(name)
        .and_then(|node| node.lag_bytes)
}

#[tokio::test]
async fn a_killed_replica_starts_again_and_streams() {
    let cluster = TestCluster::start(1).await;

    cluster.kill("replica1").await;
    let status = cluster.status().await;
    let replica = status.node("replica1").expect("replica listed");
    assert!(
        !replica.up && !replica.running,
        "a killed replica is down: {replica:?}"
    );

    cluster.start_node("replica1").await;
    wait_until(DEADLINE, "replica1 streams again", async || {
        replication_state(&cluster, "replica1").await.as_deref() == Some("streaming")
    })
    .await;
}

#[tokio::test]
async fn a_killed_primary_recovers_on_start_and_its_replicas_stream_again() {
    let cluster = TestCluster::start(1).await;
    let primary = cluster.connect("primary").await;
    primary
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("create table");

    cluster.kill("primary").await;
    assert!(
        primary.batch_execute("SELECT 1").await.is_err(),
        "the killed primary still answers"
    );
    cluster.start_node("primary").await;

    let primary = cluster.connect("primary").await;
    primary
        .batch_execute("INSERT INTO t VALUES (7)")
        .await
        .expect("write after restart");
    let replica = cluster.connect("replica1").await;
    wait_until(
        DEADLINE,
        "replica1 replays the write made after the restart",
        async || {
            matches!(
                replica.query_opt("SELECT 1 FROM t WHERE id = 7", &[]).await,
                Ok(Some(_))
            )
        },
    )
    .await;
}

#[tokio::test]
async fn paused_replay_lets_lag_grow_until_resumed() {
    let cluster = TestCluster::start(1).await;
    let primary = cluster.connect("primary").await;
    primary
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("create table");
    let replica = cluster.connect("replica1").await;
    wait_until(DEADLINE, "replica1 has the table", async || {
        replica.query("SELECT 1 FROM t", &[]).await.is_ok()
    })
    .await;

    cluster.pause_replay("replica1").await;
    assert_eq!(
        cluster
            .status()
            .await
            .node("replica1")
            .and_then(|node| node.replay_paused),
        Some(true)
    );
    primary
        .batch_execute("INSERT INTO t SELECT generate_series(1, 1000)")
        .await
        .expect("write while paused");
    let lag_while_paused = lag_bytes(&cluster, "replica1").await.expect("lag reported");
    assert!(lag_while_paused > 0, "no lag while replay is paused");
    primary
        .batch_execute("INSERT INTO t SELECT generate_series(1, 1000)")
        .await
        .expect("second write while paused");
    let lag_after_more_writes = lag_bytes(&cluster, "replica1").await.expect("lag reported");
    assert!(
        lag_after_more_writes > lag_while_paused,
        "lag did not grow: {lag_while_paused} then {lag_after_more_writes}"
    );
    let count = replica
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("read on replica");
    assert_eq!(
        count.get::<_, i64>(0),
        0,
        "a paused replica replayed writes"
    );

    cluster.resume_replay("replica1").await;
    wait_until(DEADLINE, "replica1 catches up after resume", async || {
        lag_bytes(&cluster, "replica1").await == Some(0)
    })
    .await;
    let count = replica
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("read on replica");
    assert_eq!(count.get::<_, i64>(0), 2000);
}

#[tokio::test]
async fn a_promoted_replica_leaves_recovery_and_accepts_writes() {
    let cluster = TestCluster::start(1).await;

    cluster.promote("replica1").await;

    let status = cluster.status().await;
    assert_eq!(
        status.node("replica1").and_then(|node| node.role),
        Some(Role::Primary)
    );
    let promoted = cluster.connect("replica1").await;
    let in_recovery = promoted
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("query");
    assert!(!in_recovery.get::<_, bool>(0));
    promoted
        .batch_execute(
            "CREATE TABLE after_promotion (id int); INSERT INTO after_promotion VALUES (1)",
        )
        .await
        .expect("write on the promoted node");
}

#[tokio::test]
async fn a_frozen_node_answers_nothing_until_thawed() {
    let cluster = TestCluster::start(1).await;
    let replica = cluster.connect("replica1").await;
    replica
        .batch_execute("SELECT 1")
        .await
        .expect("query before freezing");

    cluster.freeze("replica1").await;
    let frozen =
        tokio::time::timeout(Duration::from_secs(2), replica.batch_execute("SELECT 1")).await;
    assert!(frozen.is_err(), "a frozen replica answered: {frozen:?}");

    cluster.thaw("replica1").await;
    let thawed = tokio::time::timeout(DEADLINE, replica.batch_execute("SELECT 1")).await;
    assert!(
        matches!(thawed, Ok(Ok(()))),
        "the thawed replica did not answer within {DEADLINE:?}: {thawed:?}"
    );
}

#[tokio::test]
async fn a_frozen_node_stops_when_asked() {
    let cluster = TestCluster::start(1).await;
    cluster.freeze("replica1").await;

    let stopped = tokio::time::timeout(DEADLINE, cluster.cluster().stop("replica1")).await;

    assert!(
        matches!(stopped, Ok(Ok(()))),
        "stopping a frozen replica: {stopped:?}"
    );
    let status = cluster.status().await;
    let replica = status.node("replica1").expect("replica listed");
    assert!(
        !replica.running,
        "a stopped replica still runs: {replica:?}"
    );
}

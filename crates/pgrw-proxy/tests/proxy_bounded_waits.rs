//! Bounded waits: a statement on a node that hangs gets an error instead of
//! waiting for ever, and a statement whose client left is cancelled on its
//! node, its pool slot freed for the next client.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use pgrw_cluster::testing::wait_until;
use proxy_cluster::ProxiedCluster;

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Whether `node` runs a statement whose text contains `marker`.
async fn runs(node: &tokio_postgres::Client, marker: &str) -> bool {
    let pattern = format!("%{marker}%");
    node.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE state = 'active' AND query LIKE $1 AND query NOT LIKE '%pg_stat_activity%'",
        &[&pattern],
    )
    .await
    .map(|row| row.get::<_, i64>(0) > 0)
    .unwrap_or(false)
}

#[tokio::test]
async fn a_statement_on_a_frozen_replica_fails_after_the_stall_timeout_and_others_carry_on() {
    let proxied = ProxiedCluster::start(1, "[pool]\nstall_timeout_ms = 1000\n").await;
    let replica = proxied.cluster.connect_replica(1).await;
    let client = proxied.connect().await;
    let sleeper = tokio::spawn(async move {
        client
            .simple_query("SELECT pg_sleep(30) AS frozen_read")
            .await
    });
    wait_until(DEADLINE, "replica1 runs the read", async || {
        runs(&replica, "frozen_read").await
    })
    .await;

    proxied.cluster.freeze("replica1").await;

    let answered = tokio::time::timeout(DEADLINE, sleeper)
        .await
        .expect("the read on the frozen replica ends with an error, not a wait")
        .expect("the client task");
    let error = answered.expect_err("a frozen replica cannot have answered");
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("08006"),
        "{error}"
    );
    let message = error
        .as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_default();
    assert!(
        message.contains("replica1") && message.contains("stall_timeout_ms"),
        "the error names the node and the setting: {message}"
    );
    assert_eq!(proxied.proxy.state().stats().stalled[1], 1);

    let other = proxied.connect().await;
    let row = tokio::time::timeout(DEADLINE, other.query_one("SELECT 7", &[]))
        .await
        .expect("another client's read is answered")
        .expect("another client's read succeeds");
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_query_has_it_cancelled_and_its_pool_slot_freed() {
    let proxied = ProxiedCluster::start(0, "[pool]\nsize = 1\n").await;
    let primary = proxied.cluster.connect_primary().await;
    let (client, connection) = tokio_postgres::connect(&proxied.dsn(), tokio_postgres::NoTls)
        .await
        .expect("logging in through the proxy");
    let abandoned = tokio::spawn(async move {
        tokio::select! {
            _ = connection => {}
            _ = client.simple_query("SELECT pg_sleep(30) AS abandoned_read") => {}
        }
    });
    wait_until(DEADLINE, "the primary runs the read", async || {
        runs(&primary, "abandoned_read").await
    })
    .await;

    // Dropping the client and its connection closes the socket mid-query.
    abandoned.abort();

    wait_until(
        DEADLINE,
        "the abandoned read is gone from pg_stat_activity",
        async || !runs(&primary, "abandoned_read").await,
    )
    .await;
    let next = proxied.connect().await;
    let row = tokio::time::timeout(DEADLINE, next.query_one("SELECT 7", &[]))
        .await
        .expect("the next client is answered")
        .expect("the next client gets the pool's only connection");
    assert_eq!(row.get::<_, i32>(0), 7);
    assert_eq!(proxied.proxy.state().stats().abandoned, 1);
}

/// The other side of the stall timeout: silence alone is no fault. (A guard
/// for the design, not for a bug: a plain query timeout would fail it.)
#[tokio::test]
async fn a_long_query_on_a_healthy_node_outlives_the_stall_timeout() {
    let proxied = ProxiedCluster::start(0, "[pool]\nstall_timeout_ms = 200\n").await;
    let client = proxied.connect().await;

    let row = tokio::time::timeout(
        DEADLINE,
        client.query_one("SELECT pg_sleep(1.5)::text AS slept", &[]),
    )
    .await
    .expect("the long query is answered")
    .expect("a long query on a node that answers liveness checks is not cut short");

    assert_eq!(row.get::<_, String>(0), "");
    assert_eq!(proxied.proxy.state().stats().stalled[0], 0);
}

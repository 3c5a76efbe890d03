//! Graceful shutdown: new clients are refused, idle clients are told 57P01,
//! running transactions finish (and their clients get their results) until
//! `shutdown_timeout_ms`, then the rest are told 57P01 too.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use pgrw_cluster::testing::wait_until;
use proxy_cluster::{ProxiedCluster, closed_with};

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn an_idle_client_is_told_57p01_and_closed() {
    let mut proxied = ProxiedCluster::start(0, "").await;
    let (client, connection) = proxied.connect_watched().await;
    client.simple_query("SELECT 1").await.expect("a query");

    proxied.proxy.shutdown();

    assert_eq!(closed_with(connection, DEADLINE).await, "57P01");
}

#[tokio::test]
async fn a_running_write_transaction_commits_and_gets_its_results_before_57p01() {
    let mut proxied =
        ProxiedCluster::start_with_top_level(0, "shutdown_timeout_ms = 20000", "").await;
    let primary = proxied.cluster.connect_primary().await;
    primary
        .batch_execute("CREATE TABLE drained (id int)")
        .await
        .expect("create table");
    let (client, connection) = proxied.connect_watched().await;
    client
        .batch_execute("BEGIN; INSERT INTO drained VALUES (1)")
        .await
        .expect("the transaction starts");
    let running =
        tokio::spawn(async move { (client.simple_query("SELECT pg_sleep(1)").await, client) });
    wait_until(DEADLINE, "the primary runs pg_sleep", async || {
        primary
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(1)'",
                &[],
            )
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) > 0)
    })
    .await;

    proxied.proxy.shutdown();

    let (slept, client) = running.await.expect("the client task");
    slept.expect("the statement running at shutdown gets its result");
    client
        .batch_execute("COMMIT")
        .await
        .expect("the transaction open at shutdown commits");
    assert_eq!(closed_with(connection, DEADLINE).await, "57P01");
    let committed = primary
        .query_one("SELECT count(*) FROM drained", &[])
        .await
        .expect("count");
    assert_eq!(committed.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn an_autocommit_write_in_flight_commits_and_its_client_gets_the_result_before_57p01() {
    let mut proxied =
        ProxiedCluster::start_with_top_level(0, "shutdown_timeout_ms = 20000", "").await;
    let primary = proxied.cluster.connect_primary().await;
    primary
        .batch_execute("CREATE TABLE drained_write (id int)")
        .await
        .expect("create table");
    let (client, connection) = proxied.connect_watched().await;
    let writing = tokio::spawn(async move {
        client
            .execute(
                "INSERT INTO drained_write SELECT 1 FROM pg_sleep(1) AS in_flight_write",
                &[],
            )
            .await
    });
    wait_until(DEADLINE, "the primary runs the write", async || {
        primary
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE state = 'active' AND query LIKE '%AS in_flight_write'",
                &[],
            )
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) > 0)
    })
    .await;

    proxied.proxy.shutdown();

    let inserted = writing
        .await
        .expect("the client task")
        .expect("the write in flight at shutdown gets its result");
    assert_eq!(inserted, 1);
    assert_eq!(closed_with(connection, DEADLINE).await, "57P01");
    let committed = primary
        .query_one("SELECT count(*) FROM drained_write", &[])
        .await
        .expect("count");
    assert_eq!(committed.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn new_connections_are_refused_once_shutdown_starts() {
    let mut proxied =
        ProxiedCluster::start_with_top_level(0, "shutdown_timeout_ms = 20000", "").await;
    // A transaction left open keeps the proxy draining.
    let (client, _connection) = proxied.connect_watched().await;
    client.batch_execute("BEGIN").await.expect("begin");

    proxied.proxy.shutdown();

    let dsn = proxied.dsn();
    wait_until(DEADLINE, "a new login is refused", async || {
        tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .is_err()
    })
    .await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", proxied.port())).await;
    assert!(
        refused.is_err(),
        "the proxy still accepts TCP connections while draining"
    );
    client
        .simple_query("SELECT 1")
        .await
        .expect("the open transaction still runs statements while draining");
}

#[tokio::test]
async fn a_transaction_still_open_at_the_deadline_is_told_57p01_and_rolled_back() {
    let mut proxied =
        ProxiedCluster::start_with_top_level(0, "shutdown_timeout_ms = 500", "").await;
    let primary = proxied.cluster.connect_primary().await;
    primary
        .batch_execute("CREATE TABLE abandoned (id int)")
        .await
        .expect("create table");
    let (client, connection) = proxied.connect_watched().await;
    client
        .batch_execute("BEGIN; INSERT INTO abandoned VALUES (1)")
        .await
        .expect("the transaction starts");

    proxied.proxy.shutdown();

    assert_eq!(closed_with(connection, DEADLINE).await, "57P01");
    wait_until(
        DEADLINE,
        "the node rolls the transaction back",
        async || {
            primary
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                 WHERE state LIKE 'idle in transaction%' AND application_name = 'pgrw'",
                    &[],
                )
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 0)
        },
    )
    .await;
    let count = primary
        .query_one("SELECT count(*) FROM abandoned", &[])
        .await
        .expect("count");
    assert_eq!(count.get::<_, i64>(0), 0);
}

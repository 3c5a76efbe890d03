//! Failover through the proxy, driven with the cluster tool: a replica left
//! following the dead old primary gets no reads, writes resume on the
//! promoted node, a node back from an outage serves again at once, and a
//! restarted old primary stops every write (57P03) until it is stopped.
//! Nodes are told apart by the port they report, never by the proxy's word.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::{Duration, Instant};

use pgrw_cluster::testing::wait_until;
use proxy_cluster::ProxiedCluster;

/// Long enough for a loaded 2-core machine; passing tests wait far less.
const PATIENCE: Duration = Duration::from_secs(20);

/// Generous against the promise (a node healthy again is used within 2 s;
/// a split brain is seen within one 100 ms probe interval), and far shorter
/// than the code before it took (bans that doubled up to 60 s).
const PROMPTLY: Duration = Duration::from_secs(5);

const READ: &str = "SELECT current_setting('port')::int AS port";

/// Where a read ran, or the error it got.
async fn read_on(
    proxied: &ProxiedCluster,
    client: &tokio_postgres::Client,
) -> Result<String, String> {
    let row = client
        .query_one(READ, &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(proxied.node_at(row.get("port")))
}

/// Inserts a row and says where it was written, or the SQLSTATE it failed with.
async fn write_on(
    proxied: &ProxiedCluster,
    client: &tokio_postgres::Client,
) -> Result<String, String> {
    let written = client
        .query_one(
            "INSERT INTO failover_log VALUES (1) RETURNING current_setting('port')::int AS port",
            &[],
        )
        .await;
    match written {
        Ok(row) => Ok(proxied.node_at(row.get("port"))),
        Err(error) => Err(error
            .code()
            .map_or_else(|| error.to_string(), |code| code.code().to_string())),
    }
}

/// Whether a write was refused with 57P03 (no node can take it now).
fn refused(written: &Result<String, String>) -> bool {
    matches!(written, Err(code) if code == "57P03")
}

/// A client through the proxy; the table writes go to is created first.
async fn client_with_table(proxied: &ProxiedCluster) -> tokio_postgres::Client {
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE failover_log (x int)")
        .await
        .expect("creating the table on the primary");
    client
}

/// Stops the primary, promotes replica1, and waits until writes through the
/// proxy land on it (after the monitor has seen the promotion).
async fn fail_over_to_replica1(proxied: &ProxiedCluster, client: &tokio_postgres::Client) {
    proxied.cluster.stop("primary").await;
    proxied.cluster.promote("replica1").await;
    wait_until(
        PATIENCE,
        "a write lands on the promoted replica1",
        async || write_on(proxied, client).await.as_deref() == Ok("replica1"),
    )
    .await;
}

#[tokio::test]
async fn after_a_promotion_the_replica_left_on_the_dead_primary_gets_no_reads() {
    // No read-your-writes (as after a proxy restart, which forgets the last
    // write) and no lag limit: only the orphan check keeps replica2 out.
    let proxied =
        ProxiedCluster::start(2, "[policy]\nread_your_writes = false\nmax_lag_ms = 0\n").await;
    let client = client_with_table(&proxied).await;
    wait_until(PATIENCE, "replica2 serves reads", async || {
        read_on(&proxied, &client).await.as_deref() == Ok("replica2")
    })
    .await;

    fail_over_to_replica1(&proxied, &client).await;
    for _ in 0..200 {
        let node = read_on(&proxied, &client).await.expect("reads run");
        assert_eq!(
            node, "replica1",
            "a read ran on {node}, which follows the dead primary"
        );
    }
    // Writes go on on the promoted node.
    assert_eq!(write_on(&proxied, &client).await.as_deref(), Ok("replica1"));
}

#[tokio::test]
async fn a_replica_back_from_a_long_outage_serves_reads_again_at_once() {
    let proxied = ProxiedCluster::start(2, "").await;
    let client = proxied.connect().await;
    wait_until(PATIENCE, "replica1 serves reads", async || {
        read_on(&proxied, &client).await.as_deref() == Ok("replica1")
    })
    .await;

    proxied.cluster.stop("replica1").await;
    // A 16 s outage: long enough that bans doubling from 2 s were 16 s long
    // by its end. Reads go on meanwhile, never on the stopped replica1.
    let outage = Instant::now() + Duration::from_secs(16);
    let mut failed = 0;
    while Instant::now() < outage {
        match read_on(&proxied, &client).await {
            Ok(node) => assert_ne!(node, "replica1"),
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxied.cluster.start_node("replica1").await;
    let back = Instant::now();
    wait_until(
        PROMPTLY,
        "the restarted replica1 serves reads",
        async || read_on(&proxied, &client).await.as_deref() == Ok("replica1"),
    )
    .await;
    eprintln!(
        "replica1 served a read {:?} after accepting connections again ({failed} reads failed during the outage)",
        back.elapsed()
    );
}

#[tokio::test]
async fn a_restarted_old_primary_refuses_writes_with_57p03_until_it_is_stopped() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = client_with_table(&proxied).await;
    fail_over_to_replica1(&proxied, &client).await;
    // Writes go on on the promoted replica1 while the old primary stays down
    // (15 s: bans doubling from 2 s were long by then).
    let down_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < down_until {
        assert_eq!(write_on(&proxied, &client).await.as_deref(), Ok("replica1"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxied.cluster.start_node("primary").await;
    let back = Instant::now();
    wait_until(PROMPTLY, "writes are refused with 57P03", async || {
        refused(&write_on(&proxied, &client).await)
    })
    .await;
    eprintln!(
        "writes refused {:?} after the old primary accepted connections",
        back.elapsed()
    );
    for _ in 0..20 {
        let written = write_on(&proxied, &client).await;
        assert!(
            refused(&written),
            "no write while two nodes are primary: {written:?}"
        );
    }

    proxied.cluster.stop("primary").await;
    wait_until(PATIENCE, "writes land on replica1 again", async || {
        write_on(&proxied, &client).await.as_deref() == Ok("replica1")
    })
    .await;
}

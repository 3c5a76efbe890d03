//! Read-your-writes across connections: a row written through the proxy on
//! one connection is seen by a read on another, even with replay paused on
//! every replica (the read then goes to the primary).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use proxy_cluster::ProxiedCluster;

#[tokio::test]
async fn a_write_on_one_connection_is_read_on_another_with_replay_paused() {
    let proxied = ProxiedCluster::start(2, "").await;
    let writer = proxied.connect().await;
    let reader = proxied.connect().await;
    writer
        .batch_execute("CREATE TABLE account (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    proxied.cluster.pause_replay("replica1").await;
    proxied.cluster.pause_replay("replica2").await;

    writer
        .execute("INSERT INTO account VALUES (1, 'alice')", &[])
        .await
        .unwrap();
    let row = reader
        .query_opt(
            "SELECT name, current_setting('port')::int AS port FROM account WHERE id = 1",
            &[],
        )
        .await
        .unwrap()
        .expect("the reader sees the row written on the other connection");
    assert_eq!(row.get::<_, &str>("name"), "alice");
    assert_eq!(proxied.node_at(row.get("port")), "primary");

    // The check above can fail: a replica read right now does not see the row.
    let direct = proxied.cluster.connect("replica1").await;
    let on_replica = direct
        .query_opt("SELECT 1 FROM account WHERE id = 1", &[])
        .await
        .unwrap();
    assert!(
        on_replica.is_none(),
        "replay is paused: the replica lacks the row"
    );
}

#[tokio::test]
async fn reads_return_to_the_replicas_once_they_replay_the_write() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let row = client
            .query_one(
                "SELECT count(*) AS n, current_setting('port')::int AS port FROM t",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>("n"), 1, "every read sees the write");
        if proxied.node_at(row.get("port")) == "replica1" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reads never went back to the replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_read_your_writes_off_a_read_on_a_paused_replica_misses_the_write() {
    let proxied = ProxiedCluster::start(1, "[policy]\nread_your_writes = false\n").await;
    let writer = proxied.connect().await;
    let reader = proxied.connect().await;
    writer
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    proxied.cluster.pause_replay("replica1").await;
    writer
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap();
    let row = reader
        .query_one(
            "SELECT count(*) AS n, current_setting('port')::int AS port FROM t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(proxied.node_at(row.get("port")), "replica1");
    assert_eq!(
        row.get::<_, i64>("n"),
        0,
        "the stale read the policy allowed"
    );
}

#[tokio::test]
async fn a_session_pinned_to_a_replica_never_reads_there_before_its_write_is_replayed() {
    let proxied = ProxiedCluster::start(1, "[policy]\nread_your_writes_wait_ms = 300\n").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    // A hold cursor declared in a read-only transaction lives on the replica
    // and pins the session there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        client.batch_execute("BEGIN READ ONLY").await.unwrap();
        client
            .batch_execute("DECLARE c CURSOR WITH HOLD FOR SELECT count(*) FROM t")
            .await
            .unwrap();
        let row = client
            .query_one("SELECT current_setting('port')::int", &[])
            .await
            .unwrap();
        client.batch_execute("COMMIT").await.unwrap();
        if proxied.node_at(row.get(0)) == "replica1" {
            break;
        }
        // Read-your-writes kept it on the primary while the replica caught up.
        client.batch_execute("CLOSE c").await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "the read-only transaction never ran on the replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    proxied.cluster.pause_replay("replica1").await;
    client
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("the write goes to the primary, pin or not");
    let error = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect_err("a read on the paused replica would miss the write: refused instead");
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("57P03"),
        "{error}"
    );

    proxied.cluster.resume_replay("replica1").await;
    let row = client
        .query_one(
            "SELECT count(*) AS n, current_setting('port')::int AS port FROM t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("n"), 1, "the read sees the write");
    assert_eq!(proxied.node_at(row.get("port")), "replica1", "still pinned");
    let fetched = client.query("FETCH ALL FROM c", &[]).await.unwrap();
    assert_eq!(fetched.len(), 1, "the cursor is still there");
}

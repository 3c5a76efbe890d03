//! Through the proxy, with tokio-postgres (extended protocol, prepared
//! statements) and psql (simple protocol): reads land on replicas, writes and
//! transactions on the primary, checked by the port of the node that ran them
//! (`current_setting('port')`; `inet_server_port()` would do too: both stay reads,
//! answered by the node that ran them, docs/proxy.md).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::collections::HashSet;
use tokio::process::Command;

use proxy_cluster::ProxiedCluster;

async fn server_port(client: &tokio_postgres::Client, sql: &str) -> String {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get::<_, i32>("port").to_string()
}

#[tokio::test]
async fn reads_with_prepared_statements_land_on_replicas() {
    let proxied = ProxiedCluster::start(2, "").await;
    let mut nodes = HashSet::new();
    // One connection's back-to-back reads stay on one replica (monotonic
    // reads): the spread shows across connections, each picked at random
    // among idle replicas.
    for _ in 0..20 {
        let client = proxied.connect().await;
        let statement = client
            .prepare("SELECT current_setting('port')::int AS port")
            .await
            .unwrap();
        for _ in 0..3 {
            let row = client.query_one(&statement, &[]).await.unwrap();
            nodes.insert(proxied.node_at(row.get("port")));
        }
    }
    assert_eq!(
        nodes,
        HashSet::from(["replica1".to_string(), "replica2".to_string()]),
        "every read ran on a replica, and both served some"
    );
}

#[tokio::test]
async fn writes_sequences_and_locking_reads_land_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute(
            "CREATE TABLE item (id serial PRIMARY KEY, name text); CREATE SEQUENCE counter",
        )
        .await
        .unwrap();
    let primary = proxied.cluster.port("primary").to_string();
    for sql in [
        "INSERT INTO item (name) VALUES ('a') RETURNING current_setting('port')::int AS port",
        "SELECT nextval('counter'), current_setting('port')::int AS port",
        "SELECT current_setting('port')::int AS port FROM item FOR UPDATE",
        "UPDATE item SET name = 'b' RETURNING current_setting('port')::int AS port",
    ] {
        let port = server_port(&client, sql).await;
        assert_eq!(port, primary, "{sql}");
    }
}

#[tokio::test]
async fn a_transaction_runs_wholly_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let mut client = proxied.connect().await;
    let primary = proxied.cluster.port("primary").to_string();
    let transaction = client.transaction().await.unwrap();
    for _ in 0..5 {
        let row = transaction
            .query_one("SELECT current_setting('port')::int AS port", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>("port").to_string(), primary);
    }
    transaction.commit().await.unwrap();
}

#[tokio::test]
async fn a_read_only_transaction_runs_on_a_replica() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let port = server_port(&client, "SELECT current_setting('port')::int AS port").await;
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(proxied.node_at(port.parse().unwrap()), "replica1");
    assert!(in_recovery);
}

#[tokio::test]
async fn a_named_statement_keeps_working_on_every_backend() {
    let proxied = ProxiedCluster::start(2, "[pool]\nsize = 2\n").await;
    let clients = [proxied.connect().await, proxied.connect().await];
    let statements = [
        clients[0].prepare("SELECT $1::int + 1 AS n").await.unwrap(),
        clients[1].prepare("SELECT $1::int + 1 AS n").await.unwrap(),
    ];
    for round in 0..30 {
        let which = round % 2;
        let row = clients[which]
            .query_one(&statements[which], &[&(round as i32)])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>("n"), round as i32 + 1);
    }
}

#[tokio::test]
async fn psql_reads_on_a_replica_and_writes_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let psql = async |sql: &str| {
        let output = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &proxied.dsn(),
                "-c",
                sql,
            ])
            .output()
            .await
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql -c {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let read = psql("SELECT current_setting('port')::int").await;
    assert_eq!(proxied.node_at(read.parse().unwrap()), "replica1");
    psql("CREATE TABLE t AS SELECT current_setting('port')::int AS port").await;
    let written = psql("SELECT port FROM t").await;
    assert_eq!(proxied.node_at(written.parse().unwrap()), "primary");
}

#[tokio::test]
async fn show_pgrw_route_tells_where_the_last_statement_ran() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    let route = show_route(&client).await;
    assert!(route.starts_with("replica1: read"), "{route}");
}

#[tokio::test]
async fn show_pgrw_route_reports_a_prepared_statement_not_the_close_that_drops_it() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    {
        // tokio-postgres prepares, executes, then closes the statement when it is dropped.
        let statement = client.prepare("SELECT 1").await.unwrap();
        client.query(&statement, &[]).await.unwrap();
    }
    let route = show_route(&client).await;
    assert!(route.starts_with("replica1: read"), "{route}");
}

#[tokio::test]
async fn reads_keep_working_when_a_replica_is_killed() {
    let proxied = ProxiedCluster::start(2, "").await;
    let client = proxied.connect().await;
    let read = "SELECT current_setting('port')::int AS port";
    // Both replicas now have idle pooled connections.
    for _ in 0..20 {
        server_port(&client, read).await;
    }
    proxied.cluster.kill("replica1").await;
    for _ in 0..20 {
        let port = server_port(&client, read).await;
        assert_ne!(proxied.node_at(port.parse().unwrap()), "replica1");
    }
}

/// The one row `SHOW pgrw.route` answers: where the last statement ran and why.
async fn show_route(client: &tokio_postgres::Client) -> String {
    let rows = client.simple_query("SHOW pgrw.route").await.unwrap();
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .expect("one row")
}

#[tokio::test]
async fn reads_go_to_the_replica_with_fewer_connections_in_use() {
    let proxied = ProxiedCluster::start(2, "").await;
    // A read-only transaction holds one backend on one replica while open.
    let holder = proxied.connect().await;
    holder.batch_execute("BEGIN READ ONLY").await.unwrap();
    let busy = proxied.node_at(
        holder
            .query_one("SELECT current_setting('port')::int AS port", &[])
            .await
            .unwrap()
            .get("port"),
    );
    let reader = proxied.connect().await;
    for _ in 0..30 {
        let port = server_port(&reader, "SELECT current_setting('port')::int AS port").await;
        let node = proxied.node_at(port.parse().unwrap());
        assert_ne!(
            node, busy,
            "a read went to {busy}, which a transaction keeps busy, while the other replica was idle"
        );
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let mut nodes = HashSet::new();
    for _ in 0..20 {
        let reader = proxied.connect().await;
        let port = server_port(&reader, "SELECT current_setting('port')::int AS port").await;
        nodes.insert(proxied.node_at(port.parse().unwrap()));
    }
    assert_eq!(
        nodes.len(),
        2,
        "with both replicas idle again, reads spread over both: {nodes:?}"
    );
}

//! A prepared statement whose result columns change under DDL is answered as
//! PostgreSQL answers it (`0A000` "cached plan must not change result type"),
//! also on a backend that never had it; one whose columns did not change runs.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use proxy_cluster::ProxiedCluster;

#[tokio::test]
async fn a_statement_whose_columns_changed_is_refused_on_a_backend_that_never_had_it() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE shape (a int); INSERT INTO shape VALUES (1)")
        .await
        .unwrap();
    // Prepared and run on the primary only: the replica's backends never see it.
    client
        .batch_execute("SET pgrw.route = primary")
        .await
        .unwrap();
    let statement = client.prepare("SELECT * FROM shape").await.unwrap();
    assert_eq!(client.query(&statement, &[]).await.unwrap().len(), 1);
    client
        .batch_execute("ALTER TABLE shape ADD COLUMN b int DEFAULT 2")
        .await
        .unwrap();
    client.batch_execute("RESET pgrw.route").await.unwrap();
    let error = client.query(&statement, &[]).await.unwrap_err();
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("0A000"),
        "{error}"
    );
    // Prepared again, it sees the new column.
    let statement = client.prepare("SELECT * FROM shape").await.unwrap();
    let rows = client.query(&statement, &[]).await.unwrap();
    assert_eq!(rows[0].columns().len(), 2);
}

#[tokio::test]
async fn a_statement_whose_columns_did_not_change_runs_after_ddl() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE shape (a int); INSERT INTO shape VALUES (1)")
        .await
        .unwrap();
    client
        .batch_execute("SET pgrw.route = primary")
        .await
        .unwrap();
    let statement = client.prepare("SELECT a FROM shape").await.unwrap();
    assert_eq!(client.query(&statement, &[]).await.unwrap().len(), 1);
    client
        .batch_execute("CREATE INDEX shape_a ON shape (a)")
        .await
        .unwrap();
    client.batch_execute("RESET pgrw.route").await.unwrap();
    let rows = client.query(&statement, &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 1);
}

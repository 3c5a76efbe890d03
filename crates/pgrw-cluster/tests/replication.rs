//! A fresh cluster replicates: writes on the primary reach every replica.

use std::time::Duration;

use pgrw_cluster::Role;
use pgrw_cluster::testing::{TestCluster, wait_until};

#[tokio::test]
async fn a_row_inserted_on_the_primary_is_read_on_every_replica() {
    let cluster = TestCluster::start(2).await;
    let primary = cluster.connect("primary").await;
    primary
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')")
        .await
        .expect("write on the primary");

    for replica in ["replica1", "replica2"] {
        let client = cluster.connect(replica).await;
        wait_until(
            Duration::from_secs(5),
            &format!("{replica} shows the row"),
            async || match client
                .query_opt("SELECT name FROM users WHERE id = 1", &[])
                .await
            {
                Ok(Some(row)) => row.get::<_, String>(0) == "ada",
                _ => false,
            },
        )
        .await;
    }
}

#[tokio::test]
async fn status_shows_every_replica_streaming_with_lag_fields() {
    let cluster = TestCluster::start(2).await;

    let status = cluster.status().await;

    let primary = status.node("primary").expect("primary listed");
    assert!(primary.up);
    assert_eq!(primary.role, Some(Role::Primary));
    assert!(primary.current_lsn.is_some());
    for name in ["replica1", "replica2"] {
        let replica = status.node(name).expect("replica listed");
        assert!(replica.up, "{name} is up");
        assert_eq!(replica.role, Some(Role::Replica));
        assert_eq!(replica.replication.as_deref(), Some("streaming"), "{name}");
        assert!(
            replica.replay_lsn.is_some() && replica.receive_lsn.is_some(),
            "{name} LSNs"
        );
        assert!(
            replica.lag_bytes.is_some() && replica.lag_seconds.is_some(),
            "{name} lag"
        );
        assert_eq!(replica.replay_paused, Some(false));
    }
}

#[tokio::test]
async fn every_node_dsn_logs_in_with_the_password() {
    let cluster = TestCluster::start(1).await;

    for node in cluster.nodes() {
        let (client, connection) = tokio_postgres::connect(&node.dsn, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|error| panic!("{} ({}): {error}", node.name, node.dsn));
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "postgres");
    }
    assert_eq!(cluster.replica_dsn(1), cluster.nodes()[1].dsn);
    assert_eq!(cluster.primary_dsn(), cluster.nodes()[0].dsn);
}

//! Each statement through `&RwPool` lands where it may run, checked by asking
//! the node that ran it (its `port` setting, or `inet_server_port()` in
//! writes), never by the library's report.

mod common;

use std::collections::HashMap;

use common::Fixture;
use sqlx::Row;

#[tokio::test]
async fn reads_land_on_replicas_spread_over_both() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    let mut served: HashMap<String, u32> = HashMap::new();
    for _ in 0..400 {
        let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
            .fetch_one(&pool)
            .await
            .expect("read runs");
        *served.entry(fixture.name_of(port).to_owned()).or_default() += 1;
    }
    assert_eq!(served.get("primary"), None, "served: {served:?}");
    for replica in ["replica1", "replica2"] {
        let count = served.get(replica).copied().unwrap_or(0);
        assert!(
            (140..=260).contains(&count),
            "{replica} served {count} of 400: {served:?}"
        );
    }
}

#[tokio::test]
async fn writes_land_on_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query("CREATE TABLE served (port int)")
        .execute(&pool)
        .await
        .expect("DDL runs");
    for _ in 0..20 {
        sqlx::query("INSERT INTO served VALUES (inet_server_port())")
            .execute(&pool)
            .await
            .expect("insert runs");
    }
    let primary = fixture.cluster.connect_primary().await;
    let ports: Vec<i32> = primary
        .query("SELECT port FROM served", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ports.len(), 20);
    assert!(
        ports.iter().all(|&port| fixture.name_of(port) == "primary"),
        "{ports:?}"
    );
}

#[tokio::test]
async fn a_writable_cte_lands_on_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&pool)
        .await
        .expect("DDL runs");
    for _ in 0..20 {
        let port: i32 = sqlx::query_scalar(
            "WITH moved AS (INSERT INTO t VALUES (1) RETURNING x) SELECT inet_server_port() FROM moved",
        )
        .fetch_one(&pool)
        .await
        .expect("CTE runs");
        assert_eq!(fixture.name_of(port), "primary");
    }
}

#[tokio::test]
async fn nextval_lands_on_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query("CREATE SEQUENCE s")
        .execute(&pool)
        .await
        .expect("DDL runs");
    for _ in 0..20 {
        let row = sqlx::query("SELECT nextval('s'), inet_server_port()")
            .fetch_one(&pool)
            .await
            .expect("nextval runs");
        assert_eq!(fixture.name_of(row.get(1)), "primary");
    }
}

#[tokio::test]
async fn select_for_update_lands_on_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query("CREATE TABLE t AS SELECT 1 AS x")
        .execute(&pool)
        .await
        .expect("DDL runs");
    for _ in 0..20 {
        let port: i32 = sqlx::query_scalar("SELECT inet_server_port() FROM t FOR UPDATE")
            .fetch_one(&pool)
            .await
            .expect("locking read runs");
        assert_eq!(fixture.name_of(port), "primary");
    }
}

#[tokio::test]
async fn a_transaction_runs_wholly_on_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    let mut transaction = pool.begin().await.expect("begins");
    for _ in 0..10 {
        let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
            .fetch_one(&mut *transaction)
            .await
            .expect("read in transaction runs");
        assert_eq!(fixture.name_of(port), "primary");
    }
    transaction.commit().await.expect("commits");
}

#[tokio::test]
async fn a_read_only_transaction_runs_on_a_replica() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    let mut transaction = pool.begin_read_only().await.expect("begins");
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut *transaction)
        .await
        .expect("read runs");
    assert!(
        in_recovery,
        "a read-only transaction should run on a replica"
    );
    transaction.rollback().await.expect("ends");
}

#[tokio::test]
async fn explicit_node_pools_reach_the_named_role() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    let primary = pool.primary().expect("a primary");
    let replica = pool.replica().expect("a replica");
    let on_primary: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&primary)
        .await
        .expect("runs");
    let on_replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&replica)
        .await
        .expect("runs");
    assert!(!on_primary);
    assert!(on_replica);
}

#[tokio::test]
async fn fetch_all_streams_a_read_from_a_replica() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    let rows = sqlx::query("SELECT current_setting('port')::int FROM generate_series(1, 100)")
        .fetch_all(&pool)
        .await
        .expect("read runs");
    assert_eq!(rows.len(), 100);
    let port: i32 = rows[0].get(0);
    assert!(fixture.name_of(port).starts_with("replica"));
}

#[tokio::test]
async fn round_robin_alternates_between_the_replicas() {
    let fixture = Fixture::start().await;
    let pool = fixture
        .builder()
        .balancing(pgrw::Balancing::RoundRobin)
        .connect()
        .await
        .expect("connects");
    let mut served = Vec::new();
    for _ in 0..20 {
        let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
            .fetch_one(&pool)
            .await
            .expect("read runs");
        served.push(fixture.name_of(port).to_owned());
    }
    let replica1 = served.iter().filter(|node| *node == "replica1").count();
    let replica2 = served.iter().filter(|node| *node == "replica2").count();
    // One balancer per thread: a single-threaded test sees strict turns.
    assert_eq!((replica1, replica2), (10, 10), "{served:?}");
}

#[tokio::test]
async fn a_primary_hint_sends_a_read_to_the_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    for _ in 0..10 {
        let port: i32 =
            sqlx::query_scalar("/* pgrw:primary */ SELECT current_setting('port')::int")
                .fetch_one(&pool)
                .await
                .expect("read runs");
        assert_eq!(fixture.name_of(port), "primary");
    }
}

#[tokio::test]
async fn a_multi_host_url_routes_reads_to_the_replicas_and_writes_to_the_primary() {
    let fixture = Fixture::start().await;
    let [primary, replica1, replica2] =
        ["primary", "replica1", "replica2"].map(|node| fixture.cluster.port(node));
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{primary},127.0.0.1:{replica1},127.0.0.1:{replica2}/postgres",
        pgrw_cluster::testing::TEST_PASSWORD
    );
    let pool = pgrw::RwPool::builder_from_url(&url)
        .expect("a multi-host URL")
        .monitor_config(common::monitor_config())
        .connect()
        .await
        .expect("connects");
    fixture.wait_for_replicas(&pool).await;
    let read: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
        .fetch_one(&pool)
        .await
        .expect("read runs");
    assert!(fixture.name_of(read).starts_with("replica"));
    // A multi-statement string (simple query protocol) with a write in it.
    let written = sqlx::Executor::fetch_one(&pool, "CREATE SEQUENCE s; SELECT inet_server_port()")
        .await
        .expect("write runs");
    assert_eq!(fixture.name_of(written.get(0)), "primary");
}

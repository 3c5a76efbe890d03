//! Node failures: a killed replica stops serving reads without an error
//! reaching the caller, and serves again once it is back.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Fixture;
use pgrw::RwPool;
use pgrw_cluster::testing::wait_until;

async fn serving_node(fixture: &Fixture, pool: &RwPool) -> Result<String, sqlx::Error> {
    let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
        .fetch_one(pool)
        .await?;
    Ok(fixture.name_of(port).to_owned())
}

#[tokio::test]
async fn reads_go_on_without_error_when_a_replica_is_killed_and_it_rejoins_after_restart() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    // Warm both replicas' pools, so the kill breaks live connections.
    let mut seen = HashSet::new();
    wait_until(
        Duration::from_secs(30),
        "both replicas serve reads",
        async || {
            seen.insert(serving_node(&fixture, &pool).await.expect("read runs"));
            seen.contains("replica1") && seen.contains("replica2")
        },
    )
    .await;

    let reader = {
        let pool = pool.clone();
        let names = fixture.names.clone();
        tokio::spawn(async move {
            let mut served = Vec::new();
            for _ in 0..300 {
                let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
                    .fetch_one(&pool)
                    .await
                    .expect("no read fails while a replica is killed");
                served.push(names[&(port as u16)].clone());
            }
            served
        })
    };
    fixture.cluster.kill("replica1").await;
    let served = reader.await.expect("reader finishes");
    assert!(served.iter().all(|node| node != "primary"), "{served:?}");
    for _ in 0..50 {
        let node = serving_node(&fixture, &pool)
            .await
            .expect("read runs after the kill");
        assert_eq!(node, "replica2");
    }

    fixture.cluster.start_node("replica1").await;
    wait_until(
        Duration::from_secs(60),
        "replica1 serves reads again",
        async || {
            serving_node(&fixture, &pool)
                .await
                .is_ok_and(|node| node == "replica1")
        },
    )
    .await;
}

#[tokio::test]
async fn reads_go_to_the_primary_when_every_replica_is_down() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    fixture.cluster.kill("replica1").await;
    fixture.cluster.kill("replica2").await;
    for _ in 0..20 {
        let node = serving_node(&fixture, &pool).await.expect("read runs");
        assert_eq!(node, "primary");
    }
}

fn unroutable(error: &sqlx::Error) -> Option<&pgrw::Unroutable> {
    match error {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<pgrw::Unroutable>(),
        _ => None,
    }
}

#[tokio::test]
async fn with_the_primary_down_writes_fail_with_the_reason_and_reads_go_on() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    fixture.cluster.stop("primary").await;
    let mut last_error = None;
    wait_until(
        Duration::from_secs(30),
        "writes fail as unroutable",
        async || {
            let result = sqlx::query("CREATE TABLE t (x int)").execute(&pool).await;
            let failed = result.as_ref().err().and_then(unroutable).is_some();
            last_error = result.err().map(|error| error.to_string());
            failed
        },
    )
    .await;
    let message = last_error.unwrap_or_default();
    assert!(message.contains("no primary available"), "{message}");
    for _ in 0..20 {
        let node = serving_node(&fixture, &pool).await.expect("reads go on");
        assert!(node.starts_with("replica"), "{node}");
    }
}

#[tokio::test]
async fn after_a_promotion_writes_go_to_the_new_primary() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    fixture.cluster.stop("primary").await;
    fixture.cluster.promote("replica1").await;
    let mut written_on = String::new();
    wait_until(Duration::from_secs(30), "a write succeeds", async || {
        let port = sqlx::query_scalar::<_, i32>(
            "WITH w AS (INSERT INTO promoted SELECT 1 RETURNING 1) SELECT inet_server_port() FROM w",
        )
        .fetch_one(&pool)
        .await;
        if let Err(sqlx::Error::Database(error)) = &port
            && error.code().as_deref() == Some("42P01")
        {
            // The table does not exist yet: create it where writes go.
            let _ = sqlx::query("CREATE TABLE promoted (x int)").execute(&pool).await;
        }
        match port {
            Ok(port) => {
                written_on = fixture.name_of(port).to_owned();
                true
            }
            Err(_) => false,
        }
    })
    .await;
    assert_eq!(written_on, "replica1");
}

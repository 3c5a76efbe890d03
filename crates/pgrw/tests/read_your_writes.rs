//! Sessions read their own writes by WAL position, whatever the replicas' lag:
//! with replay paused on every replica, a session's reads must not see the
//! state before its writes. Checked against the rows the node returns.

mod common;

use std::time::Duration;

use common::Fixture;
use pgrw::RwPool;
use sqlx::Row;

const CYCLES: i32 = 1_000;

async fn pause_every_replica(fixture: &Fixture) {
    for replica in ["replica1", "replica2"] {
        fixture.cluster.pause_replay(replica).await;
    }
}

async fn create_counter(pool: &RwPool) {
    sqlx::query("CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL)")
        .execute(pool)
        .await
        .expect("DDL runs");
    sqlx::query("INSERT INTO counter VALUES (1, 0)")
        .execute(pool)
        .await
        .expect("insert runs");
}

/// Write-then-read cycles, each through a fresh session; how many reads did
/// not see the value just written.
async fn stale_reads_in_write_then_read_cycles(pool: &RwPool) -> u32 {
    let mut stale = 0;
    for value in 1..=CYCLES {
        let session = pool.session();
        sqlx::query("UPDATE counter SET value = $1 WHERE id = 1")
            .bind(value)
            .execute(&session)
            .await
            .expect("update runs");
        let seen: i32 = sqlx::query_scalar("SELECT value FROM counter WHERE id = 1")
            .fetch_one(&session)
            .await
            .expect("read runs");
        if seen != value {
            stale += 1;
        }
    }
    stale
}

async fn wait_until_replicas_have_the_counter(fixture: &Fixture) {
    for index in [1, 2] {
        let replica = fixture.cluster.connect_replica(index).await;
        pgrw_cluster::testing::wait_until(
            Duration::from_secs(30),
            "replicas have the table",
            async || replica.query("SELECT 1 FROM counter", &[]).await.is_ok(),
        )
        .await;
    }
}

#[tokio::test]
async fn sessions_see_their_writes_with_replay_paused_everywhere() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    create_counter(&pool).await;
    wait_until_replicas_have_the_counter(&fixture).await;
    pause_every_replica(&fixture).await;
    assert_eq!(stale_reads_in_write_then_read_cycles(&pool).await, 0);
}

#[tokio::test]
async fn without_read_your_writes_the_same_cycles_read_stale_values() {
    let fixture = Fixture::start().await;
    let pool = fixture
        .builder()
        .read_your_writes(false)
        .connect()
        .await
        .expect("connects");
    create_counter(&pool).await;
    wait_until_replicas_have_the_counter(&fixture).await;
    pause_every_replica(&fixture).await;
    let stale = stale_reads_in_write_then_read_cycles(&pool).await;
    assert!(
        stale > 0,
        "with replay paused and read-your-writes off, reads should be stale"
    );
}

#[tokio::test]
async fn a_token_carries_the_position_to_another_session() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    create_counter(&pool).await;
    wait_until_replicas_have_the_counter(&fixture).await;
    pause_every_replica(&fixture).await;
    let writer = pool.session();
    sqlx::query("UPDATE counter SET value = 42 WHERE id = 1")
        .execute(&writer)
        .await
        .expect("update runs");
    let token: pgrw::ConsistencyToken = writer.token().to_string().parse().expect("token parses");
    let reader = pool.session_with_min_lsn(token);
    let seen: i32 = sqlx::query_scalar("SELECT value FROM counter WHERE id = 1")
        .fetch_one(&reader)
        .await
        .expect("read runs");
    assert_eq!(seen, 42);
}

#[tokio::test]
async fn a_waiting_session_reads_from_a_replica_once_it_replays_the_write() {
    let fixture = Fixture::start().await;
    let pool = fixture
        .builder()
        .read_your_writes_wait(Duration::from_secs(20))
        .connect()
        .await
        .expect("connects");
    create_counter(&pool).await;
    wait_until_replicas_have_the_counter(&fixture).await;
    pause_every_replica(&fixture).await;
    let session = pool.session();
    sqlx::query("UPDATE counter SET value = 7 WHERE id = 1")
        .execute(&session)
        .await
        .expect("update runs");
    fixture.cluster.resume_replay("replica2").await;
    let row = sqlx::query("SELECT value, current_setting('port')::int FROM counter WHERE id = 1")
        .fetch_one(&session)
        .await
        .expect("read runs");
    assert_eq!(row.get::<i32, _>(0), 7);
    assert_eq!(fixture.name_of(row.get(1)), "replica2");
}

#[tokio::test]
async fn a_committed_session_transaction_is_seen_by_the_sessions_reads() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    create_counter(&pool).await;
    wait_until_replicas_have_the_counter(&fixture).await;
    pause_every_replica(&fixture).await;
    let session = pool.session();
    let mut transaction = session.begin().await.expect("begins");
    sqlx::query("UPDATE counter SET value = 9 WHERE id = 1")
        .execute(&mut *transaction)
        .await
        .expect("update runs");
    transaction.commit().await.expect("commits");
    let seen: i32 = sqlx::query_scalar("SELECT value FROM counter WHERE id = 1")
        .fetch_one(&session)
        .await
        .expect("read runs");
    assert_eq!(seen, 9);
}

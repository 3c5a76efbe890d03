//! 64 tasks share one pool, mixing reads and writes: every statement lands
//! where it should (the origin swapped its model's database in shared class
//! state; here routing holds no shared mutable choice).

mod common;

use std::time::Duration;

use common::Fixture;
use sqlx::Row;

const TASKS: usize = 64;
const ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_mixing_reads_and_writes_each_land_where_they_should() {
    let fixture = Fixture::start().await;
    // Opening 20 connections per node at once on a busy machine takes time;
    // here a read must wait for its replica rather than go elsewhere.
    let pool = fixture
        .builder()
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("pool connects");
    sqlx::query("CREATE TABLE written (task int, in_recovery bool)")
        .execute(&pool)
        .await
        .expect("DDL runs");
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            let primary_port = i32::from(fixture.cluster.port("primary"));
            tokio::spawn(async move {
                let mut misplaced = Vec::new();
                for round in 0..ROUNDS {
                    if (task + round) % 2 == 0 {
                        let port: i32 =
                            sqlx::query_scalar("SELECT current_setting('port')::int")
                                .fetch_one(&pool)
                                .await
                                .expect("read runs");
                        if port == primary_port {
                            misplaced.push(format!("task {task} round {round}: read on primary"));
                        }
                    } else {
                        let row = sqlx::query(
                            "INSERT INTO written VALUES ($1, pg_is_in_recovery()) RETURNING in_recovery",
                        )
                        .bind(task as i32)
                        .fetch_one(&pool)
                        .await
                        .expect("write runs");
                        if row.get::<bool, _>(0) {
                            misplaced.push(format!("task {task} round {round}: write on replica"));
                        }
                    }
                }
                misplaced
            })
        })
        .collect();
    let mut misplaced = Vec::new();
    for task in tasks {
        misplaced.extend(task.await.expect("task finishes"));
    }
    assert!(
        misplaced.is_empty(),
        "{} misplaced, first: {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(5)]
    );
    let writes: i64 = sqlx::query_scalar("SELECT count(*) FROM written")
        .fetch_one(&pool.primary().expect("primary"))
        .await
        .expect("count runs");
    assert_eq!(writes, (TASKS * ROUNDS / 2) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_each_read_their_own_writes_with_replay_paused() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query("CREATE TABLE latest (task int PRIMARY KEY, value int NOT NULL)")
        .execute(&pool)
        .await
        .expect("DDL runs");
    for index in [1, 2] {
        let replica = fixture.cluster.connect_replica(index).await;
        pgrw_cluster::testing::wait_until(
            Duration::from_secs(30),
            "replicas have the table",
            async || replica.query("SELECT 1 FROM latest", &[]).await.is_ok(),
        )
        .await;
    }
    for replica in ["replica1", "replica2"] {
        fixture.cluster.pause_replay(replica).await;
    }
    let tasks: Vec<_> = (0..TASKS as i32)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let session = pool.session();
                let mut stale = 0;
                for value in 0..ROUNDS as i32 {
                    sqlx::query(
                        "INSERT INTO latest VALUES ($1, $2)
                         ON CONFLICT (task) DO UPDATE SET value = excluded.value",
                    )
                    .bind(task)
                    .bind(value)
                    .execute(&session)
                    .await
                    .expect("upsert runs");
                    let seen: Option<i32> =
                        sqlx::query_scalar("SELECT value FROM latest WHERE task = $1")
                            .bind(task)
                            .fetch_optional(&session)
                            .await
                            .expect("read runs");
                    if seen != Some(value) {
                        stale += 1;
                    }
                }
                stale
            })
        })
        .collect();
    let mut stale = 0;
    for task in tasks {
        stale += task.await.expect("task finishes");
    }
    assert_eq!(stale, 0);
}

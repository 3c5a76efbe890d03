//! The origin's demo flow: `get_or_create` (a read, then a write when the row
//! is missing) followed by `get`. The origin read from a replica after writing
//! and could miss its own row; through a session it never does, however far
//! behind the replicas are.

mod common;

use std::time::Duration;

use common::Fixture;
use pgrw::Session;
use pgrw_cluster::testing::wait_until;

const SELECT_BY_EMAIL: &str = r#"SELECT id FROM "user" WHERE email = $1"#;

async fn get_or_create(session: &Session, name: &str, email: &str) -> Result<i32, sqlx::Error> {
    if let Some(id) = sqlx::query_scalar(SELECT_BY_EMAIL)
        .bind(email)
        .fetch_optional(session)
        .await?
    {
        return Ok(id);
    }
    sqlx::query_scalar(r#"INSERT INTO "user" (name, email) VALUES ($1, $2) RETURNING id"#)
        .bind(name)
        .bind(email)
        .fetch_one(session)
        .await
}

#[tokio::test]
async fn get_after_get_or_create_never_misses_the_row_with_replay_paused() {
    let fixture = Fixture::start().await;
    let pool = fixture.pool().await;
    sqlx::query(
        r#"CREATE TABLE "user" (id serial PRIMARY KEY, name varchar(255), email varchar(255) UNIQUE)"#,
    )
    .execute(&pool)
    .await
    .expect("DDL runs");
    for index in [1, 2] {
        let replica = fixture.cluster.connect_replica(index).await;
        wait_until(
            Duration::from_secs(30),
            "replicas have the table",
            async || replica.query(r#"SELECT 1 FROM "user""#, &[]).await.is_ok(),
        )
        .await;
    }
    for replica in ["replica1", "replica2"] {
        fixture.cluster.pause_replay(replica).await;
    }
    for user in 0..100 {
        let session = pool.session();
        let email = format!("user{user}@example.com");
        let created = get_or_create(&session, "张三", &email)
            .await
            .expect("get_or_create runs");
        let got: Option<i32> = sqlx::query_scalar(SELECT_BY_EMAIL)
            .bind(&email)
            .fetch_optional(&session)
            .await
            .expect("get runs");
        assert_eq!(
            got,
            Some(created),
            "get missed {email} right after creating it"
        );
    }
}

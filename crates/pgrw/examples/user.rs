//! The origin's demo in Rust: a `user` table, `get_or_create`, `get`, and a
//! listing, over a primary and two replicas, printing which node served each
//! step (asked of the node itself, not of the library).
//!
//! Run it against `pgrw cluster up` (primary 127.0.0.1:5432, replicas 5433
//! and 5434, postgres/postgres):
//!
//! ```text
//! cargo run -p pgrw --example user
//! ```
//!
//! Override the nodes with `PGRW_PRIMARY` and `PGRW_REPLICAS` (connection
//! strings, the replicas comma-separated).

use std::time::Duration;

use pgrw::{RwPool, Session};
use sqlx::Row;

const PRIMARY: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";
const REPLICAS: &str = "postgres://postgres:postgres@127.0.0.1:5433/postgres,postgres://postgres:postgres@127.0.0.1:5434/postgres";

/// A row of the origin's `User` model, and the port of the node that returned it.
#[derive(Debug)]
struct User {
    id: i32,
    name: String,
    email: String,
    served_by: i32,
}

impl User {
    fn from_row(row: &sqlx::postgres::PgRow) -> User {
        User {
            id: row.get("id"),
            name: row.get("name"),
            email: row.get("email"),
            served_by: row.get("served_by"),
        }
    }
}

// `current_setting('port')` names the node and is read-only, so it does not
// change where a read goes (`inet_server_port()` is not in the classifier's
// read-only catalog: a read calling it goes to the primary).
const SELECT_BY_EMAIL: &str = r#"SELECT id, name, email, current_setting('port')::int AS served_by
    FROM "user" WHERE email = $1"#;

/// The origin's `User.get_or_create(name=…, email=…)`: a read, then a write
/// when the row is missing. Through a session, the read after the write can
/// never miss it (the origin read from a replica and could).
async fn get_or_create(session: &Session, name: &str, email: &str) -> Result<User, sqlx::Error> {
    if let Some(row) = sqlx::query(SELECT_BY_EMAIL)
        .bind(email)
        .fetch_optional(session)
        .await?
    {
        return Ok(User::from_row(&row));
    }
    let inserted = sqlx::query(
        r#"INSERT INTO "user" (name, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING
           RETURNING id, name, email, current_setting('port')::int AS served_by"#,
    )
    .bind(name)
    .bind(email)
    .fetch_optional(session)
    .await?;
    match inserted {
        Some(row) => Ok(User::from_row(&row)),
        // Another client created it in between: read it (the session's
        // position now includes that commit's, so any node it reads from has it).
        None => get(session, email).await,
    }
}

/// The origin's `User.get(User.email == email)`.
async fn get(session: &Session, email: &str) -> Result<User, sqlx::Error> {
    let row = sqlx::query(SELECT_BY_EMAIL)
        .bind(email)
        .fetch_one(session)
        .await?;
    Ok(User::from_row(&row))
}

/// The origin's `User.select().order_by(User.id).get_or_none()`.
async fn first(session: &Session) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        r#"SELECT id, name, email, current_setting('port')::int AS served_by
           FROM "user" ORDER BY id LIMIT 1"#,
    )
    .fetch_optional(session)
    .await?;
    Ok(row.as_ref().map(User::from_row))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let primary = std::env::var("PGRW_PRIMARY").unwrap_or_else(|_| PRIMARY.to_owned());
    let replicas = std::env::var("PGRW_REPLICAS").unwrap_or_else(|_| REPLICAS.to_owned());
    let pool = RwPool::builder(&primary)
        .replicas(
            replicas
                .split(',')
                .map(str::trim)
                .filter(|dsn| !dsn.is_empty()),
        )
        // After a write, a session's read waits up to this long for a replica
        // to replay it, then goes to the primary.
        .read_your_writes_wait(Duration::from_millis(500))
        .connect()
        .await?;

    // The origin's `master_db.create_tables([User])`: DDL goes to the primary.
    let created = sqlx::query(
        r#"CREATE TABLE IF NOT EXISTS "user" (
               id serial PRIMARY KEY,
               name varchar(255) NOT NULL,
               email varchar(255) NOT NULL UNIQUE)"#,
    )
    .execute(&pool);
    created.await?;
    let port: i32 = sqlx::query_scalar("SELECT current_setting('port')::int")
        .fetch_one(&pool.primary()?)
        .await?;
    println!("create table \"user\"       served by port {port} (the primary)");

    let session = pool.session();
    let user = get_or_create(&session, "张三", "zhangsan@example.com").await?;
    println!(
        "get_or_create: {} <{}>  served by port {}",
        user.name, user.email, user.served_by
    );
    let user = get(&session, "zhangsan@example.com").await?;
    println!(
        "get:           {} <{}>  served by port {}",
        user.name, user.email, user.served_by
    );
    if let Some(user) = first(&session).await? {
        println!(
            "first by id:   {} {} {}  served by port {}",
            user.id, user.name, user.email, user.served_by
        );
    }
    println!(
        "session token: {} (its reads must see this WAL position)",
        session.token()
    );
    pool.close().await;
    Ok(())
}

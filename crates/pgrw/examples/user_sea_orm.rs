//! The origin's demo with a SeaORM entity: `ActiveModel::insert` writes on the
//! primary, `Entity::find()` reads from a replica, through one session so that
//! reads see its writes. Each read also asks the node which port it is.
//!
//! ```text
//! cargo run -p pgrw --features sea-orm --example user_sea_orm
//! ```
//!
//! Runs against `pgrw cluster up` defaults; override with `PGRW_PRIMARY` and
//! `PGRW_REPLICAS` (connection strings, the replicas comma-separated).

use std::time::Duration;

use pgrw::RwPool;
use pgrw::sea_orm::{RwDatabase, RwSession};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

const PRIMARY: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";
const REPLICAS: &str = "postgres://postgres:postgres@127.0.0.1:5433/postgres,postgres://postgres:postgres@127.0.0.1:5434/postgres";

/// The origin's `User` model.
mod user {
    use sea_orm::entity::prelude::*;

    /// A row of `"user"`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user")]
    pub struct Model {
        /// `serial` key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The user's name.
        pub name: String,
        /// Unique.
        #[sea_orm(unique)]
        pub email: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A user as read, with the port of the node that returned it.
#[derive(Debug, FromQueryResult)]
struct ServedUser {
    id: i32,
    name: String,
    email: String,
    served_by: i32,
}

/// `User.select()…` with the serving node's port as one more column.
fn select_users() -> sea_orm::Select<user::Entity> {
    user::Entity::find().column_as(Expr::cust("current_setting('port')::int"), "served_by")
}

async fn get(session: &RwSession, email: &str) -> Result<Option<ServedUser>, DbErr> {
    select_users()
        .filter(user::Column::Email.eq(email))
        .into_model::<ServedUser>()
        .one(session)
        .await
}

/// The origin's `User.get_or_create(name=…, email=…)`.
async fn get_or_create(session: &RwSession, name: &str, email: &str) -> Result<ServedUser, DbErr> {
    if let Some(user) = get(session, email).await? {
        println!("get_or_create: found it");
        return Ok(user);
    }
    let created = user::ActiveModel {
        name: Set(name.to_owned()),
        email: Set(email.to_owned()),
        ..Default::default()
    }
    .insert(session)
    .await?;
    println!(
        "get_or_create: inserted id {} (INSERT … RETURNING: a write, the primary)",
        created.id
    );
    get(session, email)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(email.to_owned()))
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
        .read_your_writes_wait(Duration::from_millis(500))
        .connect()
        .await?;
    let db = RwDatabase::new(pool);
    db.execute_unprepared(
        r#"CREATE TABLE IF NOT EXISTS "user" (
               id serial PRIMARY KEY,
               name varchar(255) NOT NULL,
               email varchar(255) NOT NULL UNIQUE)"#,
    )
    .await?;
    println!("create table \"user\" (DDL: the primary)");

    let session = db.session();
    let user = get_or_create(&session, "张三", "zhangsan@example.com").await?;
    println!(
        "  -> {} <{}>  read from port {}",
        user.name, user.email, user.served_by
    );
    if let Some(user) = get(&session, "zhangsan@example.com").await? {
        println!(
            "get:         {} <{}>  served by port {}",
            user.name, user.email, user.served_by
        );
    }
    let first = select_users()
        .order_by_asc(user::Column::Id)
        .into_model::<ServedUser>()
        .one(&session)
        .await?;
    if let Some(user) = first {
        println!(
            "first by id: {} {} {}  served by port {}",
            user.id, user.name, user.email, user.served_by
        );
    }
    Ok(())
}

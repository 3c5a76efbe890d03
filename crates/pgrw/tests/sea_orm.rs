//! SeaORM through pgrw (feature `sea-orm`): entity reads land on replicas,
//! `ActiveModel::insert` on the primary, and a session's finds see its
//! inserts with replay paused everywhere. Nodes are asked who they are.

#![cfg(feature = "sea-orm")]

mod common;

use std::time::Duration;

use common::Fixture;
use pgrw::sea_orm::RwDatabase;
use pgrw_cluster::testing::wait_until;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};

mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "note")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub body: String,
        /// Filled by the node the insert ran on.
        pub written_on: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, FromQueryResult)]
struct ServedNote {
    id: i32,
    served_by: i32,
}

fn find_served() -> sea_orm::Selector<sea_orm::SelectModel<ServedNote>> {
    note::Entity::find()
        .select_only()
        .column(note::Column::Id)
        .column_as(Expr::cust("current_setting('port')::int"), "served_by")
        .into_model::<ServedNote>()
}

async fn database_with_notes(fixture: &Fixture) -> RwDatabase {
    let db = RwDatabase::new(fixture.pool().await);
    db.execute_unprepared(
        "CREATE TABLE note (id serial PRIMARY KEY, body text NOT NULL,
                            written_on int NOT NULL DEFAULT inet_server_port())",
    )
    .await
    .expect("DDL runs");
    for index in [1, 2] {
        let replica = fixture.cluster.connect_replica(index).await;
        wait_until(
            Duration::from_secs(30),
            "replicas have the table",
            async || replica.query("SELECT 1 FROM note", &[]).await.is_ok(),
        )
        .await;
    }
    db
}

fn new_note(body: &str) -> note::ActiveModel {
    note::ActiveModel {
        body: Set(body.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn inserts_land_on_the_primary_and_finds_on_replicas() {
    let fixture = Fixture::start().await;
    let db = database_with_notes(&fixture).await;
    let written = new_note("hello").insert(&db).await.expect("insert runs");
    assert_eq!(fixture.name_of(written.written_on), "primary");
    let replica = fixture.cluster.connect_replica(1).await;
    let replica2 = fixture.cluster.connect_replica(2).await;
    wait_until(
        Duration::from_secs(30),
        "replicas replay the insert",
        async || {
            let one = replica
                .query("SELECT 1 FROM note", &[])
                .await
                .is_ok_and(|rows| !rows.is_empty());
            let two = replica2
                .query("SELECT 1 FROM note", &[])
                .await
                .is_ok_and(|rows| !rows.is_empty());
            one && two
        },
    )
    .await;
    for _ in 0..20 {
        let found = find_served()
            .one(&db)
            .await
            .expect("find runs")
            .expect("a note");
        assert_eq!(found.id, written.id);
        assert!(fixture.name_of(found.served_by).starts_with("replica"));
    }
}

#[tokio::test]
async fn a_sessions_finds_see_its_inserts_with_replay_paused() {
    let fixture = Fixture::start().await;
    let db = database_with_notes(&fixture).await;
    for replica in ["replica1", "replica2"] {
        fixture.cluster.pause_replay(replica).await;
    }
    for index in 0..50 {
        let session = db.session();
        let written = new_note(&format!("note {index}"))
            .insert(&session)
            .await
            .expect("insert runs");
        let found = note::Entity::find()
            .filter(note::Column::Id.eq(written.id))
            .one(&session)
            .await
            .expect("find runs");
        assert_eq!(found, Some(written));
    }
}

#[tokio::test]
async fn a_committed_session_transaction_is_seen_by_its_finds() {
    let fixture = Fixture::start().await;
    let db = database_with_notes(&fixture).await;
    for replica in ["replica1", "replica2"] {
        fixture.cluster.pause_replay(replica).await;
    }
    let session = db.session();
    let written = session
        .transaction::<_, note::Model, sea_orm::DbErr>(|transaction| {
            Box::pin(async move { new_note("in a transaction").insert(transaction).await })
        })
        .await
        .expect("transaction commits");
    let found = note::Entity::find_by_id(written.id)
        .one(&session)
        .await
        .expect("find runs");
    assert_eq!(found, Some(written));
}

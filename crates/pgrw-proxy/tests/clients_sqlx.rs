//! sqlx through the proxy, with only the port changed: a `PgPool` of several
//! connections, each preparing and caching its own named statements, while the
//! proxy has fewer backends than the pool has connections — so a statement one
//! connection prepared on one backend is executed on others. Routing is checked
//! by the node that ran each statement (`inet_server_port()`), and every test
//! has a deadline: a proxy that stalls fails it instead of hanging it.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use futures_util::TryStreamExt;
use futures_util::future::try_join_all;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use proxy_cluster::ProxiedCluster;

/// How long one test may take once its cluster is up.
const TEST_DEADLINE: Duration = Duration::from_secs(60);
/// Connections in the client's pool: more than the proxy's backends per node.
const CLIENT_POOL_SIZE: u32 = 4;
/// Backends per node in the proxy: fewer than the client's connections.
const PROXY_POOL: &str = "[pool]\nsize = 2\n";

/// The proxy over a primary and two replicas, and a sqlx pool of
/// [`CLIENT_POOL_SIZE`] connections through it.
async fn proxied_pool() -> (ProxiedCluster, PgPool) {
    let proxied = ProxiedCluster::start(2, PROXY_POOL).await;
    let pool = PgPoolOptions::new()
        .max_connections(CLIENT_POOL_SIZE)
        .min_connections(CLIENT_POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&proxied.dsn())
        .await
        .expect("sqlx logs in through the proxy");
    (proxied, pool)
}

/// Runs `test` with [`TEST_DEADLINE`].
async fn within_deadline<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_DEADLINE:?}"))
}

/// Creates table `item (id int PRIMARY KEY, name text)` through the pool.
async fn create_item_table(pool: &PgPool) {
    sqlx::query("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        .execute(pool)
        .await
        .expect("CREATE TABLE item");
}

/// How many statements each node served, by node name, from the ports they reported.
fn served_by(proxied: &ProxiedCluster, ports: &[i32]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for &port in ports {
        *counts.entry(proxied.node_at(port)).or_insert(0) += 1;
    }
    counts
}

fn node_names(counts: &BTreeMap<String, usize>) -> HashSet<&str> {
    counts.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn cached_prepared_reads_from_every_pooled_connection_run_on_both_replicas() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        // Many at once, so every pooled connection runs its own cached copy of the statement.
        let reads = (0..120).map(|n| {
            let pool = pool.clone();
            async move {
                let row = sqlx::query("SELECT inet_server_port() AS port, $1::int4 * 2 AS doubled")
                    .bind(n)
                    .fetch_one(&pool)
                    .await?;
                assert_eq!(row.get::<i32, _>("doubled"), n * 2, "the bound value");
                Ok::<i32, sqlx::Error>(row.get("port"))
            }
        });
        let ports = try_join_all(reads).await.expect("every prepared read runs");

        let served = served_by(&proxied, &ports);
        assert_eq!(
            node_names(&served),
            HashSet::from(["replica1", "replica2"]),
            "every read ran on a replica, and both served some: {served:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_prepared_statement_that_fails_leaves_its_connection_usable() {
    let (_proxied, pool) = proxied_pool().await;
    within_deadline(async {
        let mut connection = pool.acquire().await.unwrap();
        for divisor in [0, 2, 0, 4] {
            let outcome = sqlx::query("SELECT 8 / $1::int4 AS quotient")
                .bind(divisor)
                .fetch_one(&mut *connection)
                .await;
            match (divisor, outcome) {
                (0, Err(sqlx::Error::Database(error))) => {
                    assert_eq!(error.code().as_deref(), Some("22012"), "division_by_zero")
                }
                (0, other) => panic!("8 / 0 should fail with 22012, got {other:?}"),
                (_, outcome) => assert_eq!(
                    outcome
                        .expect("the statement runs after an error")
                        .get::<i32, _>(0),
                    8 / divisor
                ),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn writes_from_any_pooled_connection_run_on_the_primary() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let writes = (0..40).map(|id| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO item (id, name) VALUES ($1, 'w') RETURNING inet_server_port()",
                )
                .bind(id)
                .fetch_one(&pool)
                .await
                .map(|row| row.get::<i32, _>(0))
            }
        });
        let ports = try_join_all(writes).await.expect("every insert runs");

        let served = served_by(&proxied, &ports);
        assert_eq!(
            node_names(&served),
            HashSet::from(["primary"]),
            "{served:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_transaction_runs_wholly_on_the_primary() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut transaction = pool.begin().await.unwrap();
        let mut ports = Vec::new();
        for id in 0..5 {
            let row = sqlx::query("SELECT inet_server_port() AS port, count(*) AS n FROM item")
                .fetch_one(&mut *transaction)
                .await
                .unwrap();
            assert_eq!(
                row.get::<i64, _>("n"),
                i64::from(id),
                "the transaction sees its rows"
            );
            ports.push(row.get("port"));
            sqlx::query("INSERT INTO item (id, name) VALUES ($1, 't')")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .unwrap();
        }
        transaction.commit().await.unwrap();

        let served = served_by(&proxied, &ports);
        assert_eq!(
            node_names(&served),
            HashSet::from(["primary"]),
            "{served:?}"
        );
        let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM item")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(committed, 5, "the committed rows are read back at once");
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing_behind() {
    let (_proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut transaction = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO item (id, name) VALUES (1, 'gone')")
            .execute(&mut *transaction)
            .await
            .unwrap();
        transaction.rollback().await.unwrap();

        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM item")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0);
    })
    .await;
}

#[tokio::test]
async fn a_read_only_transaction_runs_on_a_replica() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        let mut transaction = pool.begin_with("BEGIN READ ONLY").await.unwrap();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let row = sqlx::query("SELECT inet_server_port() AS port, pg_is_in_recovery() AS r")
                .fetch_one(&mut *transaction)
                .await
                .unwrap();
            assert!(row.get::<bool, _>("r"), "the node is in recovery");
            ports.push(row.get("port"));
        }
        transaction.commit().await.unwrap();

        let served = served_by(&proxied, &ports);
        assert_eq!(
            served.len(),
            1,
            "one node ran the whole transaction: {served:?}"
        );
        assert!(
            served.keys().all(|node| node.starts_with("replica")),
            "{served:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn copy_in_writes_rows_on_the_primary() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut connection = pool.acquire().await.unwrap();
        let mut copy = connection
            .copy_in_raw("COPY item (id, name) FROM STDIN")
            .await
            .expect("COPY FROM STDIN starts");
        copy.send(b"1\tone\n2\ttwo\n".as_slice()).await.unwrap();
        copy.send(b"3\tthree\n".as_slice()).await.unwrap();
        assert_eq!(copy.finish().await.expect("COPY completes"), 3);

        let primary = proxied.cluster.connect("primary").await;
        let on_primary: i64 = primary
            .query_one("SELECT count(*) FROM item", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(on_primary, 3, "the rows are on the primary");
        // The connection is usable after COPY.
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM item ORDER BY id")
            .fetch_all(&mut *connection)
            .await
            .unwrap();
        assert_eq!(names, ["one", "two", "three"]);
    })
    .await;
}

#[tokio::test]
async fn copy_in_that_fails_is_reported_and_writes_nothing() {
    let (_proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut connection = pool.acquire().await.unwrap();
        let mut copy = connection
            .copy_in_raw("COPY item (id, name) FROM STDIN")
            .await
            .unwrap();
        copy.send(b"1\tone\n1\tduplicate\n".as_slice())
            .await
            .unwrap();
        let error = copy
            .finish()
            .await
            .expect_err("a duplicate key fails the COPY");
        let code = error.as_database_error().and_then(|error| error.code());
        assert_eq!(code.as_deref(), Some("23505"), "unique_violation: {error}");

        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM item")
            .fetch_one(&mut *connection)
            .await
            .expect("the connection is usable after a failed COPY");
        assert_eq!(rows, 0);
    })
    .await;
}

#[tokio::test]
async fn copy_out_of_a_read_runs_on_a_replica() {
    let (proxied, pool) = proxied_pool().await;
    within_deadline(async {
        let mut connection = pool.acquire().await.unwrap();
        let mut ports = Vec::new();
        for _ in 0..10 {
            let chunks: Vec<_> = connection
                .copy_out_raw("COPY (SELECT inet_server_port()) TO STDOUT")
                .await
                .expect("COPY TO STDOUT starts")
                .try_collect()
                .await
                .expect("COPY TO STDOUT completes");
            let text = String::from_utf8(chunks.concat()).unwrap();
            ports.push(text.trim().parse().expect("a port number"));
        }

        let served = served_by(&proxied, &ports);
        assert!(
            served.keys().all(|node| node.starts_with("replica")),
            "COPY TO ran on replicas only: {served:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn copy_out_right_after_a_write_returns_every_row() {
    let (_proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut writer = pool.acquire().await.unwrap();
        let mut reader = pool.acquire().await.unwrap();
        for id in 1..=20 {
            sqlx::query("INSERT INTO item (id, name) VALUES ($1, 'r')")
                .bind(id)
                .execute(&mut *writer)
                .await
                .unwrap();
            let chunks: Vec<_> = reader
                .copy_out_raw("COPY item (id) TO STDOUT")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let copied = String::from_utf8(chunks.concat()).unwrap();
            assert_eq!(
                copied.lines().count(),
                id as usize,
                "COPY sees every row:\n{copied}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_row_inserted_on_one_pooled_connection_is_read_at_once_on_another() {
    let (_proxied, pool) = proxied_pool().await;
    within_deadline(async {
        create_item_table(&pool).await;
        let mut connections = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
        for id in 0..60 {
            let (writer, reader) = match &mut connections {
                [a, b] if id % 2 == 0 => (a, b),
                [a, b] => (b, a),
            };
            sqlx::query("INSERT INTO item (id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(format!("row {id}"))
                .execute(&mut **writer)
                .await
                .unwrap();
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM item WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **reader)
                .await
                .unwrap();
            assert_eq!(name, Some(format!("row {id}")), "row {id} is read at once");
        }
    })
    .await;
}

#[tokio::test]
async fn one_connection_reuses_its_cached_statement_and_closes_cleanly() {
    let proxied = ProxiedCluster::start(2, PROXY_POOL).await;
    within_deadline(async {
        let mut connection = sqlx::PgConnection::connect(&proxied.dsn()).await.unwrap();
        for n in 0..50 {
            let row = sqlx::query("SELECT $1::text || '!' AS shout")
                .bind(format!("hey {n}"))
                .fetch_one(&mut connection)
                .await
                .unwrap();
            assert_eq!(row.get::<String, _>("shout"), format!("hey {n}!"));
        }
        connection.close().await.expect("a clean Terminate");
    })
    .await;
}

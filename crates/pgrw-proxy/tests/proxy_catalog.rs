//! The proxy learns each database's functions and unlogged tables from its
//! catalog (issue 12): a user function that shadows a built-in name and
//! writes runs on the primary at once (not refused by a replica and rerun),
//! a user STABLE function is read on a replica, an unlogged table is read on
//! the primary up front, and a function created through the proxy is known
//! right after. Where each statement ran is checked by node identity
//! (`inet_server_port()`); "at once" by the proxy's count of reruns.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use pgrw_cluster::testing::wait_until;
use pgrw_core::StatementClass;
use pgrw_core::sql::classify::classify;
use proxy_cluster::ProxiedCluster;
use tokio_postgres::Client;

/// A volatile SQL function named `lower(int)` in `schema` that records its
/// argument in `calls`: a writer with a built-in's name.
fn writing_lower(schema: &str, name: &str, argument: &str) -> String {
    format!(
        "CREATE FUNCTION {schema}.{name}({argument}) RETURNS text LANGUAGE sql VOLATILE \
         AS $$ INSERT INTO public.calls VALUES ($1::text) RETURNING 'called'::text $$"
    )
}

/// A cluster with one replica where `setup` ran on the primary (not through
/// the proxy) and the replica replayed it, and a client through the proxy
/// once the proxy has loaded the database's catalog.
async fn with_catalog(setup: &str) -> (ProxiedCluster, Client) {
    let proxied = ProxiedCluster::start(1, "").await;
    let direct = proxied.cluster.connect("primary").await;
    direct
        .batch_execute("CREATE TABLE public.calls (argument text)")
        .await
        .unwrap();
    direct.batch_execute(setup).await.unwrap();
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    let client = proxied.connect().await;
    catalog_loaded(&proxied).await;
    (proxied, client)
}

/// Waits until the proxy has loaded the `postgres` database's catalog once.
async fn catalog_loaded(proxied: &ProxiedCluster) {
    let state = proxied.proxy.state();
    wait_until(
        Duration::from_secs(30),
        "the catalog is loaded",
        async || {
            state
                .catalog_of("postgres")
                .is_some_and(|(_, loads)| loads > 0)
        },
    )
    .await;
}

/// The node that ran `sql`, whose last column is `inet_server_port()`.
async fn node_of(proxied: &ProxiedCluster, client: &Client, sql: &str) -> String {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    proxied.node_at(row.get(row.len() - 1))
}

fn reruns(proxied: &ProxiedCluster) -> u64 {
    proxied.proxy.state().stats().reruns.total()
}

async fn calls_recorded(proxied: &ProxiedCluster) -> i64 {
    let direct = proxied.cluster.connect("primary").await;
    direct
        .query_one("SELECT count(*) FROM public.calls", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_overload_of_a_builtin_name_that_writes_runs_on_the_primary_at_once() {
    let (proxied, client) = with_catalog(&writing_lower("public", "lower", "int")).await;
    let node = node_of(&proxied, &client, "SELECT lower(5), inet_server_port()").await;
    assert_eq!(node, "primary");
    assert_eq!(reruns(&proxied), 0, "not refused by a replica first");
    assert_eq!(calls_recorded(&proxied).await, 1);
    // The built-in `lower(text)` stays a read when called as such (once the
    // replica has replayed the write above: read-your-writes).
    let sql = "SELECT pg_catalog.lower('A'), inet_server_port()";
    wait_until(
        Duration::from_secs(30),
        "pg_catalog.lower is read on a replica",
        async || node_of(&proxied, &client, sql).await == "replica1",
    )
    .await;
}

#[tokio::test]
async fn a_writing_shadow_reached_through_search_path_runs_on_the_primary() {
    let setup = format!(
        "CREATE SCHEMA shadow; {}",
        writing_lower("shadow", "upper", "text")
    );
    let (proxied, client) = with_catalog(&setup).await;
    client
        .batch_execute("SET search_path = shadow, pg_catalog, public")
        .await
        .unwrap();
    let node = node_of(&proxied, &client, "SELECT upper('x'), inet_server_port()").await;
    assert_eq!(node, "primary");
    assert_eq!(reruns(&proxied), 0, "not refused by a replica first");
    assert_eq!(calls_recorded(&proxied).await, 1);
}

#[tokio::test]
async fn a_user_stable_function_is_read_on_a_replica() {
    let setup = "CREATE FUNCTION public.price_of(int) RETURNS int LANGUAGE sql STABLE \
                 AS $$ SELECT $1 * 2 $$";
    let (proxied, client) = with_catalog(setup).await;
    let row = client
        .query_one("SELECT price_of(21), inet_server_port()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(proxied.node_at(row.get(1)), "replica1");
}

#[tokio::test]
async fn an_unlogged_table_is_read_on_the_primary_without_a_rerun() {
    let setup = "CREATE UNLOGGED TABLE scratch (id int); INSERT INTO scratch VALUES (1), (2)";
    let (proxied, client) = with_catalog(setup).await;
    let row = client
        .query_one("SELECT count(*)::int, inet_server_port() FROM scratch", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(proxied.node_at(row.get(1)), "primary");
    assert_eq!(reruns(&proxied), 0, "not refused by a replica first");
}

#[tokio::test]
async fn a_function_created_through_the_proxy_is_known_right_after() {
    let (proxied, client) = with_catalog("SELECT 1").await;
    client
        .batch_execute(&writing_lower("public", "lower", "int"))
        .await
        .unwrap();
    // Right after the DDL, before any reload could be published.
    let node = node_of(&proxied, &client, "SELECT lower(7), inet_server_port()").await;
    assert_eq!(node, "primary");
    assert_eq!(reruns(&proxied), 0, "not refused by a replica first");
    assert_eq!(calls_recorded(&proxied).await, 1);
    // Once reloaded, the catalog names it as the writer.
    let state = proxied.proxy.state();
    wait_until(
        Duration::from_secs(30),
        "the reload knows lower(int)",
        async || {
            state.catalog_of("postgres").is_some_and(|(catalog, _)| {
                classify(b"SELECT lower(7)", &catalog).class == StatementClass::Write
            })
        },
    )
    .await;
    let node = node_of(&proxied, &client, "SELECT lower(8), inet_server_port()").await;
    assert_eq!(node, "primary");

    // A STABLE one created through the proxy is read on a replica once
    // the reload is published (and the replica has replayed it).
    client
        .batch_execute(
            "CREATE FUNCTION public.price_of(int) RETURNS int LANGUAGE sql STABLE \
             AS $$ SELECT $1 * 2 $$",
        )
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "price_of is read on a replica",
        async || {
            node_of(&proxied, &client, "SELECT price_of(1), inet_server_port()").await == "replica1"
        },
    )
    .await;
    assert_eq!(reruns(&proxied), 0);
}

#[tokio::test]
async fn an_unlogged_table_made_by_a_query_is_known_right_after() {
    // No periodic load: only what the proxy sees pass can make it known.
    let proxied = ProxiedCluster::start_with_top_level(1, "catalog_refresh_ms = 0", "").await;
    let client = proxied.connect().await;
    let state = proxied.proxy.state();
    let knows = |sql: &'static [u8]| {
        let state = state.clone();
        async move || {
            state
                .catalog_of("postgres")
                .is_some_and(|(catalog, _)| classify(sql, &catalog).class == StatementClass::Write)
        }
    };
    catalog_loaded(&proxied).await;
    // Their command tag is `SELECT 1`, not a CREATE.
    client
        .batch_execute("CREATE UNLOGGED TABLE made_as AS SELECT 1 AS a")
        .await
        .unwrap();
    client
        .batch_execute("SELECT 2 AS b INTO UNLOGGED made_into")
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the catalog knows made_as",
        knows(b"SELECT a FROM made_as"),
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "the catalog knows made_into",
        knows(b"SELECT b FROM made_into"),
    )
    .await;
    let node = node_of(
        &proxied,
        &client,
        "SELECT a, inet_server_port() FROM made_as",
    )
    .await;
    assert_eq!(node, "primary");
    assert_eq!(reruns(&proxied), 0, "not refused by a replica first");
}

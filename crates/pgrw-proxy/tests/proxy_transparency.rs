//! An application cannot tell pgrw from a direct connection to the primary
//! (issue 12): serializable transactions and sessions, questions about the
//! server, function names written in Unicode escapes. Where each statement
//! ran is checked by `inet_server_port()`, which stays a read on purpose.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use pgrw_cluster::testing::TEST_PASSWORD;
use proxy_cluster::ProxiedCluster;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The node that ran `sql` (its first column is `inet_server_port()`).
async fn node_of(proxied: &ProxiedCluster, client: &Client, sql: &str) -> String {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    proxied.node_at(row.get(0))
}

/// Whether a read reaches a replica again within 3 s (a setting change
/// counts as a write for read-your-writes: the replica must replay it first).
async fn reads_on_a_replica_again(proxied: &ProxiedCluster, client: &Client) -> bool {
    for _ in 0..30 {
        if node_of(proxied, client, "SELECT inet_server_port()").await != "primary" {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Asserts that three reads in a row run on the primary, for `why`.
async fn reads_stay_on_the_primary(proxied: &ProxiedCluster, client: &Client, why: &str) {
    for _ in 0..3 {
        let node = node_of(proxied, client, "SELECT inet_server_port()").await;
        assert_eq!(node, "primary", "{why}");
    }
}

/// A client straight to the primary, not through the proxy.
async fn direct_to_primary(proxied: &ProxiedCluster) -> Client {
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/postgres",
        proxied.cluster.port("primary")
    );
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("logging in to the primary");
    tokio::spawn(connection);
    client
}

/// The first column of each row a simple query returned.
fn first_column(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_serializable_read_only_transaction_runs_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    // What psycopg2 sends for set_session(readonly=True, isolation_level=SERIALIZABLE);
    // a hot standby answers "cannot use serializable mode in a hot standby".
    client
        .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE")
        .await
        .expect("BEGIN … SERIALIZABLE READ ONLY through the proxy");
    let node = node_of(&proxied, &client, "SELECT inet_server_port()").await;
    assert_eq!(node, "primary");
    client.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn a_session_whose_default_isolation_is_serializable_reads_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("SET default_transaction_isolation = 'serializable'")
        .await
        .unwrap();
    reads_stay_on_the_primary(&proxied, &client, "a standby refuses a serializable read").await;
    client
        .batch_execute("RESET default_transaction_isolation")
        .await
        .unwrap();
    assert!(
        reads_on_a_replica_again(&proxied, &client).await,
        "back at read committed, reads go to replicas"
    );
}

#[tokio::test]
async fn a_serializable_default_in_the_startup_options_keeps_reads_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let dsn = format!(
        "{}?options=-c%20default_transaction_isolation%3Dserializable",
        proxied.dsn()
    );
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("logging in with options");
    tokio::spawn(connection);
    let node = node_of(&proxied, &client, "SELECT inet_server_port()").await;
    assert_eq!(node, "primary");
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    assert!(reads_on_a_replica_again(&proxied, &client).await);
    // RESET ALL goes back to what the login asked for.
    client.batch_execute("RESET ALL").await.unwrap();
    let node = node_of(&proxied, &client, "SELECT inet_server_port()").await;
    assert_eq!(node, "primary");
}

#[tokio::test]
async fn a_serializable_default_set_by_alter_database_keeps_reads_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let direct = direct_to_primary(&proxied).await;
    direct
        .batch_execute("CREATE DATABASE serial")
        .await
        .unwrap();
    direct
        .batch_execute("ALTER DATABASE serial SET default_transaction_isolation = 'serializable'")
        .await
        .unwrap();
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/serial",
        proxied.port()
    );
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("logging in to the serializable database");
    tokio::spawn(connection);
    reads_stay_on_the_primary(&proxied, &client, "a standby refuses a serializable read").await;
    client
        .batch_execute("SET default_transaction_isolation = 'read committed'")
        .await
        .unwrap();
    assert!(reads_on_a_replica_again(&proxied, &client).await);
    client.batch_execute("DISCARD ALL").await.unwrap();
    let node = node_of(&proxied, &client, "SELECT inet_server_port()").await;
    assert_eq!(
        node, "primary",
        "DISCARD ALL is back at the database's default"
    );
}

#[tokio::test]
async fn an_alter_database_set_through_the_proxy_reaches_the_next_login() {
    let proxied = ProxiedCluster::start(1, "").await;
    direct_to_primary(&proxied)
        .await
        .batch_execute("CREATE DATABASE later_serial")
        .await
        .unwrap();
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/later_serial",
        proxied.port()
    );
    let log_in = async || {
        let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .expect("logging in to later_serial");
        tokio::spawn(connection);
        client
    };
    // The pair's first login found read committed.
    let first = log_in().await;
    assert!(reads_on_a_replica_again(&proxied, &first).await);
    first
        .batch_execute(
            "ALTER DATABASE later_serial SET default_transaction_isolation = 'serializable'",
        )
        .await
        .unwrap();
    let next = log_in().await;
    for _ in 0..3 {
        let node = node_of(&proxied, &next, "SELECT inet_server_port()").await;
        assert_eq!(node, "primary", "a standby refuses a serializable read");
    }
}

#[tokio::test]
async fn locks_held_on_the_primary_are_seen_through_the_proxy() {
    let proxied = ProxiedCluster::start(1, "").await;
    let holder = direct_to_primary(&proxied).await;
    holder
        .batch_execute("SELECT pg_advisory_lock(4242)")
        .await
        .unwrap();
    let client = proxied.connect().await;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the primary's advisory lock");
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_advisory_lock(4242)'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the primary's sessions");
}

#[tokio::test]
async fn the_server_answers_as_the_primary_about_itself() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "pg_is_in_recovery()");
    assert_eq!(row.get::<_, String>(1), "off");
    let shown = client
        .simple_query("SHOW transaction_read_only")
        .await
        .unwrap();
    assert_eq!(first_column(&shown), ["off"]);
    // The pid a client reads is one pg_terminate_backend (on the primary) can name.
    let direct = direct_to_primary(&proxied).await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let on_primary: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_primary, 1, "pid {pid} is a backend of the primary");
}

#[tokio::test]
async fn a_sequence_named_in_unicode_escapes_is_advanced_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE SEQUENCE rt_seq")
        .await
        .unwrap();
    let rows = client
        .simple_query(r#"SELECT U&"!006eextval" UESCAPE '!' ('rt_seq')"#)
        .await
        .expect("nextval in Unicode escapes runs on the primary (25006 on a replica)");
    assert_eq!(first_column(&rows), ["1"]);
}

#[tokio::test]
async fn a_whole_read_only_transaction_in_one_query_runs_on_a_replica() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    let rows = client
        .simple_query("BEGIN READ ONLY; SELECT inet_server_port(); COMMIT")
        .await
        .unwrap();
    let port: i32 = first_column(&rows)[0].parse().unwrap();
    assert_eq!(proxied.node_at(port), "replica1");
    // The session is idle after it: a write goes to the primary.
    client
        .batch_execute("CREATE TABLE after_it (id int)")
        .await
        .unwrap();
}

#[tokio::test]
async fn set_config_of_the_default_isolation_is_followed_as_its_set() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("SELECT set_config('default_transaction_isolation', 'serializable', false)")
        .await
        .unwrap();
    reads_stay_on_the_primary(&proxied, &client, "a standby refuses a serializable read").await;
    client
        .batch_execute(
            "SELECT set_config('default_transaction_isolation', 'read committed', false)",
        )
        .await
        .unwrap();
    assert!(
        reads_on_a_replica_again(&proxied, &client).await,
        "back at read committed, reads go to replicas"
    );
    // With bound parameters the proxy cannot read the text: it asks the backend.
    client
        .query(
            "SELECT set_config($1, $2, false)",
            &[&"default_transaction_isolation", &"serializable"],
        )
        .await
        .unwrap();
    reads_stay_on_the_primary(&proxied, &client, "serializable, set with parameters").await;
}

#[tokio::test]
async fn a_database_used_through_the_proxy_can_be_dropped_through_it() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE DATABASE dropme")
        .await
        .unwrap();
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/dropme",
        proxied.port()
    );
    let (other, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("logging in to dropme through the proxy");
    let connection = tokio::spawn(connection);
    other
        .batch_execute("CREATE TABLE kept (a int); INSERT INTO kept VALUES (1)")
        .await
        .unwrap();
    other.query("SELECT count(*) FROM kept", &[]).await.unwrap();
    drop(other);
    connection.await.unwrap().unwrap();
    // The proxy's connections to dropme are idle in its pools now.
    let state = proxied.proxy.state();
    pgrw_cluster::testing::wait_until(
        std::time::Duration::from_secs(30),
        "the proxy's connections to dropme are back in their pools",
        async || {
            let pools = state.pools.all();
            let dropme = pools
                .iter()
                .filter(|pool| pool.login().database == "dropme");
            let idle: usize = dropme.clone().map(|pool| pool.usage().idle).sum();
            idle > 0 && dropme.map(|pool| pool.usage().checked_out).sum::<usize>() == 0
        },
    )
    .await;
    client
        .batch_execute("DROP DATABASE dropme")
        .await
        .expect("no connection of the proxy's keeps the database from being dropped");
}

#[tokio::test]
async fn serializable_set_right_after_begin_read_only_runs_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    assert!(
        reads_on_a_replica_again(&proxied, &client).await,
        "reads go to the replica"
    );
    // A standby refuses SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; the
    // primary takes it, as the first statement of a read-only transaction.
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    client
        .batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        .await
        .expect("the primary takes SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    let row = client
        .query_one(
            "SELECT inet_server_port(), current_setting('transaction_isolation'), \
             current_setting('transaction_read_only')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(proxied.node_at(row.get(0)), "primary");
    assert_eq!(row.get::<_, String>(1), "serializable");
    assert_eq!(
        row.get::<_, String>(2),
        "on",
        "still the client's READ ONLY"
    );
    let refused = client
        .batch_execute("CREATE TABLE written_in_read_only (a int)")
        .await
        .expect_err("a read-only transaction refuses a write");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    // Once a statement took a snapshot, PostgreSQL refuses it anywhere.
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let node = node_of(&proxied, &client, "SELECT inet_server_port()").await;
    assert_eq!(
        node, "replica1",
        "a read-only transaction reads on a replica"
    );
    client
        .batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        .await
        .expect_err("too late for the isolation level");
    client.batch_execute("ROLLBACK").await.unwrap();
}

//! Session state under pooling, as a client sees it on a direct connection:
//! the settings of its StartupMessage hold on every backend (and are refused
//! as PostgreSQL refuses them), a SET inside a transaction lasts only if the
//! transaction commits, and a pin ends when the state that made it is gone.
//! Where a statement ran is read from the node itself (`current_setting('port')`).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proxy_cluster::{ProxiedCluster, first_value as value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend per node, so that a client's statements meet backends other
/// clients used, and a backend held by a pin is the only one on its node.
const ONE_BACKEND: &str = "[pool]\nsize = 1\n";

/// The node that runs `sql`, which must return `current_setting('port')` first.
async fn node_running(
    proxied: &ProxiedCluster,
    client: &tokio_postgres::Client,
    sql: &str,
) -> String {
    let port: i32 = value(client, sql).await.parse().expect("a port");
    proxied.node_at(port)
}

/// A client through the proxy with `options` and `application_name` in its
/// StartupMessage.
async fn connect_with(
    proxied: &ProxiedCluster,
    options: &str,
    application_name: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = proxied.dsn().parse().expect("a valid dsn");
    config.options(options).application_name(application_name);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The error of a login that must be refused.
fn refused<T>(login: Result<T, tokio_postgres::Error>) -> tokio_postgres::Error {
    match login {
        Ok(_) => panic!("the login is refused"),
        Err(error) => error,
    }
}

/// The SQLSTATE a refused login got.
fn code(error: tokio_postgres::Error) -> String {
    error
        .code()
        .map(|code| code.code().to_string())
        .unwrap_or_else(|| error.to_string())
}

/// Where the session's reads go: polls a read until a replica serves it
/// (read-your-writes may keep it on the primary while the replica catches
/// up) or the deadline passes, and returns the last node and route.
async fn read_node(proxied: &ProxiedCluster, client: &tokio_postgres::Client) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let node = node_running(proxied, client, "SELECT current_setting('port')").await;
        let route = value(client, "SHOW pgrw.route").await;
        if node.starts_with("replica") || Instant::now() > deadline {
            return (node, route);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_pinned(proxied: &ProxiedCluster, client: &tokio_postgres::Client, why: &str) {
    let node = node_running(proxied, client, "SELECT current_setting('port')").await;
    let route = value(client, "SHOW pgrw.route").await;
    assert_eq!(node, "primary", "a pinned session reads on its backend");
    assert!(route.contains(&format!("pinned ({why})")), "{route}");
}

async fn assert_unpinned(proxied: &ProxiedCluster, client: &tokio_postgres::Client) {
    let (node, route) = read_node(proxied, client).await;
    assert!(
        node.starts_with("replica"),
        "the read ran on {node}: {route}"
    );
    assert!(!route.contains("pinned"), "{route}");
}

// --- Settings in the StartupMessage -------------------------------------

#[tokio::test]
async fn startup_options_and_application_name_hold_on_every_backend() {
    let proxied = ProxiedCluster::start(2, ONE_BACKEND).await;
    let client = connect_with(
        &proxied,
        "-c search_path=app,public --statement-timeout=4321 -c lock_timeout=1\\ s",
        "state-test",
    )
    .await
    .unwrap();
    let sql = "SELECT current_setting('port') || ' ' || current_setting('search_path') || ' ' \
               || current_setting('application_name') || ' ' \
               || current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')";
    let mut nodes = HashSet::new();
    for hint in ["", "/* pgrw:primary */ "] {
        for _ in 0..6 {
            let row = value(&client, &format!("{hint}{sql}")).await;
            let (port, settings) = row.split_once(' ').unwrap();
            nodes.insert(proxied.node_at(port.parse().unwrap()));
            assert_eq!(
                settings, "app,public state-test 4321ms 1s",
                "on port {port}"
            );
        }
    }
    assert!(nodes.contains("primary") && nodes.len() > 1, "{nodes:?}");
}

#[tokio::test]
async fn startup_settings_are_not_inherited_by_the_next_client() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND).await;
    let first = connect_with(&proxied, "-c statement_timeout=4321", "first")
        .await
        .unwrap();
    assert_eq!(value(&first, "SHOW statement_timeout").await, "4321ms");
    drop(first);
    let next = proxied.connect().await;
    assert_eq!(value(&next, "SHOW statement_timeout").await, "0");
    assert_eq!(value(&next, "SHOW application_name").await, "pgrw");
}

#[tokio::test]
async fn a_backend_from_the_pool_gets_the_startup_settings_of_its_new_client() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND).await;
    let first = proxied.connect().await;
    assert_eq!(value(&first, "SHOW statement_timeout").await, "0");
    drop(first);
    let next = connect_with(&proxied, "-c statement_timeout=4321", "next")
        .await
        .unwrap();
    assert_eq!(value(&next, "SHOW statement_timeout").await, "4321ms");
}

#[tokio::test]
async fn a_reset_of_a_startup_setting_goes_back_to_the_startup_value() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND).await;
    let client = connect_with(&proxied, "-c statement_timeout=4321", "app")
        .await
        .unwrap();
    client
        .batch_execute("SET statement_timeout = 99")
        .await
        .unwrap();
    assert_eq!(value(&client, "SHOW statement_timeout").await, "99ms");
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    for _ in 0..4 {
        assert_eq!(value(&client, "SHOW statement_timeout").await, "4321ms");
    }
    client.batch_execute("RESET ALL").await.unwrap();
    for _ in 0..4 {
        assert_eq!(value(&client, "SHOW statement_timeout").await, "4321ms");
        assert_eq!(value(&client, "SHOW application_name").await, "app");
    }
    // PostgreSQL documents `SET … TO DEFAULT` as `RESET …`.
    let set_then_default = "SET statement_timeout = 99; SET statement_timeout TO DEFAULT";
    client.batch_execute(set_then_default).await.unwrap();
    for _ in 0..4 {
        assert_eq!(value(&client, "SHOW statement_timeout").await, "4321ms");
    }
}

#[tokio::test]
async fn an_unknown_setting_in_the_startup_packet_refuses_the_login_with_42704() {
    let proxied = ProxiedCluster::start(0, "").await;
    let error = connect_with(&proxied, "-c no_such_setting=1", "app").await;
    let error = refused(error);
    assert_eq!(code(error), "42704");
    let client = proxied.connect().await;
    assert_eq!(value(&client, "SELECT 1").await, "1", "others still log in");
}

#[tokio::test]
async fn an_invalid_startup_value_refuses_the_login_with_the_nodes_error() {
    let proxied = ProxiedCluster::start(0, "").await;
    let error = connect_with(&proxied, "-c statement_timeout=soon", "app").await;
    let error = refused(error);
    assert_eq!(code(error), "22023");
}

#[tokio::test]
async fn a_server_switch_other_than_dash_c_in_options_is_refused_with_42601() {
    let proxied = ProxiedCluster::start(0, "").await;
    let error = connect_with(&proxied, "-B 100", "app").await;
    let error = refused(error);
    assert_eq!(code(error), "42601");
}

/// Logs in with `params` (trust authentication) and returns every message
/// the proxy sent, as (tag, body), until ReadyForQuery or the connection ends.
async fn raw_login(proxied: &ProxiedCluster, params: &[(&str, &str)]) -> Vec<(u8, Vec<u8>)> {
    let mut raw = TcpStream::connect(("127.0.0.1", proxied.port()))
        .await
        .unwrap();
    let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
    for (name, value) in params {
        startup.extend_from_slice(name.as_bytes());
        startup.push(0);
        startup.extend_from_slice(value.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let length = (startup.len() as i32).to_be_bytes();
    startup[..4].copy_from_slice(&length);
    raw.write_all(&startup).await.unwrap();
    let mut bytes = Vec::new();
    let mut messages = Vec::new();
    loop {
        while bytes.len() >= 5 {
            let length = i32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
            if bytes.len() < 1 + length {
                break;
            }
            let message: Vec<u8> = bytes.drain(..1 + length).collect();
            messages.push((message[0], message[5..].to_vec()));
            if message[0] == b'Z' {
                return messages;
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(20), raw.read(&mut chunk))
            .await
            .expect("the proxy answers the login")
            .unwrap();
        if read == 0 {
            return messages;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// The ParameterStatus values among `messages`.
fn parameter_status(messages: &[(u8, Vec<u8>)]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'S')
        .map(|(_, body)| {
            let mut parts = body.split(|byte| *byte == 0);
            let name = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
            let value = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn parameter_status_reports_the_clients_startup_values_as_postgresql_does() {
    let proxied = ProxiedCluster::start(0, "auth = \"trust\"").await;
    let messages = raw_login(
        &proxied,
        &[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "raw-app"),
            ("datestyle", "german"),
            ("TimeZone", "UTC"),
            ("client_encoding", "utf-8"),
        ],
    )
    .await;
    let reported = parameter_status(&messages);
    let value_of = |name: &str| {
        reported
            .iter()
            .find(|(reported, _)| reported == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(value_of("application_name"), Some("raw-app"));
    assert_eq!(value_of("DateStyle"), Some("German, DMY"));
    assert_eq!(value_of("TimeZone"), Some("UTC"));
    assert_eq!(value_of("client_encoding"), Some("UTF8"));
    assert_eq!(messages.last().map(|(tag, _)| *tag), Some(b'Z'));
}

#[tokio::test]
async fn a_replication_connection_is_refused_with_0a000() {
    let proxied = ProxiedCluster::start(0, "auth = \"trust\"").await;
    let messages = raw_login(
        &proxied,
        &[("user", "postgres"), ("replication", "database")],
    )
    .await;
    let (tag, body) = messages.last().expect("an answer");
    assert_eq!(*tag, b'E');
    assert!(
        body.windows(6).any(|window| window == b"C0A000"),
        "{}",
        String::from_utf8_lossy(body)
    );
}

// --- SET inside a transaction ------------------------------------------------

#[tokio::test]
async fn a_set_in_a_committed_transaction_holds_on_every_backend() {
    let proxied = ProxiedCluster::start(2, ONE_BACKEND).await;
    let client = proxied.connect().await;
    client
        .batch_execute("BEGIN; SET search_path = x, public; SET LOCAL lock_timeout = 77")
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    for _ in 0..6 {
        assert_eq!(value(&client, "SHOW search_path").await, "x, public");
        assert_eq!(
            value(&client, "SHOW lock_timeout").await,
            "0",
            "SET LOCAL ended"
        );
    }
}

#[tokio::test]
async fn a_set_in_a_rolled_back_or_failed_transaction_does_not_last() {
    let proxied = ProxiedCluster::start(2, ONE_BACKEND).await;
    let client = proxied.connect().await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("SET search_path = gone")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("SET statement_timeout = 55")
        .await
        .unwrap();
    assert!(client.batch_execute("SELECT 1/0").await.is_err());
    client.batch_execute("COMMIT").await.unwrap();
    for _ in 0..6 {
        assert_eq!(
            value(&client, "SHOW search_path").await,
            "\"$user\", public"
        );
        assert_eq!(value(&client, "SHOW statement_timeout").await, "0");
    }
}

#[tokio::test]
async fn a_savepoint_rollback_keeps_the_sets_before_it_and_drops_those_after() {
    let proxied = ProxiedCluster::start(2, ONE_BACKEND).await;
    let client = proxied.connect().await;
    client
        .batch_execute(
            "BEGIN; SET statement_timeout = 1000; SAVEPOINT s; SET lock_timeout = 2000; \
             ROLLBACK TO SAVEPOINT s",
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    for _ in 0..6 {
        assert_eq!(value(&client, "SHOW statement_timeout").await, "1s");
        assert_eq!(value(&client, "SHOW lock_timeout").await, "0");
    }
}

// --- Pins end when their state does ---------------------------------------------

#[tokio::test]
async fn dropping_the_last_temp_table_ends_the_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TEMP TABLE a (id int); CREATE TEMP TABLE b (id int)")
        .await
        .unwrap();
    client.batch_execute("DROP TABLE a").await.unwrap();
    assert_pinned(&proxied, &client, "temp table").await;
    client.batch_execute("DROP TABLE b").await.unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn a_temp_table_of_a_rolled_back_transaction_does_not_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("BEGIN; CREATE TEMP TABLE a (id int)")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn unlisten_all_ends_the_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client.batch_execute("LISTEN a; LISTEN b").await.unwrap();
    client.batch_execute("UNLISTEN a").await.unwrap();
    assert_pinned(&proxied, &client, "LISTEN").await;
    client.batch_execute("UNLISTEN *").await.unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn unlocking_every_advisory_lock_ends_the_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("SELECT pg_advisory_lock(1); SELECT pg_advisory_lock(2)")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pg_advisory_unlock(1)")
        .await
        .unwrap();
    assert_pinned(&proxied, &client, "advisory lock").await;
    client
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn closing_the_last_hold_cursor_ends_the_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")
        .await
        .unwrap();
    assert_pinned(&proxied, &client, "WITH HOLD cursor").await;
    client.batch_execute("CLOSE ALL").await.unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn deallocate_all_ends_a_prepare_pin() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client.batch_execute("PREPARE q AS SELECT 1").await.unwrap();
    assert_pinned(&proxied, &client, "prepared statement").await;
    client.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_unpinned(&proxied, &client).await;
}

#[tokio::test]
async fn after_discard_all_the_backend_serves_the_next_client() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND).await;
    let client = proxied.connect().await;
    client.batch_execute("LISTEN a").await.unwrap();
    let pid = value(&client, "SELECT pg_backend_pid()").await;
    client.batch_execute("DISCARD ALL").await.unwrap();
    value(&client, "SELECT 1").await;
    let route = value(&client, "SHOW pgrw.route").await;
    assert!(!route.contains("pinned"), "{route}");
    let next = proxied.connect().await;
    assert_eq!(
        value(&next, "SELECT pg_backend_pid()").await,
        pid,
        "the one backend went back to the pool, not closed"
    );
    assert_eq!(
        value(&next, "SELECT count(*) FROM pg_listening_channels()").await,
        "0"
    );
    drop(client);
}

#[tokio::test]
async fn after_unlisten_the_backend_goes_back_to_the_pool() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND).await;
    let client = proxied.connect().await;
    client.batch_execute("LISTEN a").await.unwrap();
    let pid = value(&client, "SELECT pg_backend_pid()").await;
    client.batch_execute("UNLISTEN *").await.unwrap();
    let next = proxied.connect().await;
    assert_eq!(value(&next, "SELECT pg_backend_pid()").await, pid);
    drop(client);
}

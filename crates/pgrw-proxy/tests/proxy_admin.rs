//! The admin console (`psql -d pgrw`): every command over the simple
//! protocol, refusals (a user not marked admin, the extended protocol, an
//! unknown command), and what BAN, PAUSE and SHUTDOWN do to real traffic.

#[path = "support/admin_console.rs"]
mod admin_console;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use admin_console::{cell, console, error_code, rows};
use pgrw_cluster::testing::wait_until;
use proxy_cluster::ProxiedCluster;

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The user `postgres` may use the console.
const ADMIN: &str = "admin = true";

/// The node a read through `client` ran on.
async fn read_node(proxied: &ProxiedCluster, client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one("SELECT current_setting('port')::int", &[])
        .await
        .expect("a read");
    proxied.node_at(row.get(0))
}

#[tokio::test]
async fn every_show_command_answers_with_its_columns() {
    let proxied = ProxiedCluster::start(1, ADMIN).await;
    let app = proxied.connect().await;
    app.simple_query("SELECT 1").await.expect("a read");
    app.simple_query("SELECT 1/0")
        .await
        .expect_err("a read that fails");
    let admin = console(proxied.port()).await.expect("an admin logs in");

    let nodes = rows(&admin, "SHOW NODES").await;
    assert_eq!(nodes.len(), 2);
    assert_eq!(cell(&nodes, "name", "primary", "role"), Some("primary"));
    assert_eq!(cell(&nodes, "name", "primary", "health"), Some("up"));
    assert_eq!(cell(&nodes, "name", "replica1", "role"), Some("replica"));
    assert_eq!(
        cell(&nodes, "name", "replica1", "follows_primary"),
        Some("yes")
    );
    for column in [
        "address",
        "banned_until",
        "replay_lsn",
        "lag_bytes",
        "lag_ms",
        "reads",
        "writes",
        "errors",
    ] {
        assert!(nodes[0].contains_key(column), "SHOW NODES has {column}");
    }

    let pools = rows(&admin, "show pools;").await;
    assert!(!pools.is_empty(), "the application's pool is listed");
    for column in [
        "database",
        "user",
        "node",
        "cl_active",
        "cl_waiting",
        "sv_active",
        "sv_idle",
        "pool_size",
        "pool_mode",
    ] {
        assert!(pools[0].contains_key(column), "SHOW POOLS has {column}");
    }
    assert_eq!(
        cell(&pools, "database", "postgres", "user"),
        Some("postgres")
    );

    let clients = rows(&admin, "SHOW CLIENTS").await;
    assert_eq!(
        clients.len(),
        1,
        "the application (not the console) is a client"
    );
    assert_eq!(clients[0]["database"].as_deref(), Some("postgres"));
    assert_eq!(clients[0]["state"].as_deref(), Some("idle"));

    let servers = rows(&admin, "SHOW SERVERS").await;
    assert!(
        servers
            .iter()
            .any(|row| row["state"].as_deref() == Some("idle")),
        "the application's backend waits idle in its pool: {servers:?}"
    );

    let stats = rows(&admin, "SHOW STATS").await;
    assert!(cell(&stats, "name", "primary", "statements").is_some());
    let count = |name: &str, column: &str| -> u64 {
        cell(&stats, "name", name, column)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("SHOW STATS: {name} {column}"))
    };
    assert!(count("read", "statements") >= 2);
    assert_eq!(count("read", "errors"), 1, "the division by zero");
    let node_errors: u64 = nodes
        .iter()
        .filter_map(|row| row["errors"].as_deref()?.parse::<u64>().ok())
        .sum();
    assert_eq!(node_errors, 1, "counted on the node that ran it");

    let config = rows(&admin, "SHOW CONFIG").await;
    assert_eq!(
        cell(&config, "key", "users[0].admin", "value"),
        Some("true")
    );
    assert!(
        config
            .iter()
            .all(|row| !row["key"].as_deref().unwrap_or("").contains("password")),
        "no password in SHOW CONFIG"
    );

    let version = rows(&admin, "SHOW VERSION").await;
    assert!(
        version[0]["version"]
            .as_deref()
            .unwrap_or("")
            .starts_with("pgrw ")
    );
    let help = rows(&admin, "SHOW HELP").await;
    assert!(
        help.iter()
            .any(|row| row["command"].as_deref() == Some("BAN node"))
    );
}

#[tokio::test]
async fn a_user_not_marked_admin_is_refused_with_42501() {
    let proxied = ProxiedCluster::start(0, "").await;
    let refused = console(proxied.port()).await.expect_err("not an admin");
    assert_eq!(
        refused.code().map(|code| code.code()),
        Some("42501"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_extended_protocol_is_refused_with_0a000_and_the_console_goes_on() {
    let proxied = ProxiedCluster::start(0, ADMIN).await;
    let admin = console(proxied.port()).await.expect("an admin logs in");
    let refused = admin
        .query("SHOW NODES", &[])
        .await
        .expect_err("extended protocol");
    assert_eq!(
        refused.code().map(|code| code.code()),
        Some("0A000"),
        "{refused}"
    );
    assert_eq!(rows(&admin, "SHOW NODES").await.len(), 1);
}

#[tokio::test]
async fn an_unknown_command_is_42601_and_a_ban_of_an_unknown_node_42704() {
    let proxied = ProxiedCluster::start(0, ADMIN).await;
    let admin = console(proxied.port()).await.expect("an admin logs in");
    assert_eq!(error_code(&admin, "SELECT 1").await, "42601");
    assert_eq!(error_code(&admin, "BAN nowhere").await, "42704");
    assert_eq!(rows(&admin, "SHOW VERSION").await.len(), 1);
}

#[tokio::test]
async fn a_banned_replica_gets_no_reads_until_it_is_unbanned() {
    let proxied = ProxiedCluster::start(2, ADMIN).await;
    let admin = console(proxied.port()).await.expect("an admin logs in");
    let app = proxied.connect().await;

    admin.simple_query("BAN replica1").await.expect("BAN");
    let nodes = rows(&admin, "SHOW NODES").await;
    assert_eq!(
        cell(&nodes, "name", "replica1", "health"),
        Some("banned by operator")
    );
    assert_eq!(
        cell(&nodes, "name", "replica1", "banned_until"),
        Some("until UNBAN")
    );
    // Healthy probes of replica1 go on all along: the ban holds over them.
    for _ in 0..40 {
        assert_ne!(read_node(&proxied, &app).await, "replica1");
    }

    admin.simple_query("UNBAN replica1").await.expect("UNBAN");
    wait_until(DEADLINE, "a read lands on replica1 again", async || {
        read_node(&proxied, &app).await == "replica1"
    })
    .await;
}

#[tokio::test]
async fn pause_holds_a_new_transaction_until_resume_and_lets_one_in_progress_finish() {
    let proxied = ProxiedCluster::start(0, ADMIN).await;
    let primary = proxied.cluster.connect_primary().await;
    primary
        .batch_execute("CREATE TABLE paused (id int)")
        .await
        .expect("create table");
    let admin = console(proxied.port()).await.expect("an admin logs in");
    let in_progress = proxied.connect().await;
    in_progress
        .batch_execute("BEGIN; INSERT INTO paused VALUES (1)")
        .await
        .expect("a transaction begins before PAUSE");

    admin.simple_query("PAUSE").await.expect("PAUSE");
    let newcomer = proxied.connect().await;
    let held = tokio::spawn(async move {
        newcomer
            .simple_query("INSERT INTO paused VALUES (2)")
            .await
            .map(|_| ())
    });
    wait_until(
        DEADLINE,
        "SHOW CLIENTS shows a client waiting",
        async || {
            rows(&admin, "SHOW CLIENTS")
                .await
                .iter()
                .any(|row| row["state"].as_deref() == Some("waiting"))
        },
    )
    .await;
    in_progress
        .batch_execute("INSERT INTO paused VALUES (3); COMMIT")
        .await
        .expect("the transaction in progress finishes while paused");
    assert!(!held.is_finished(), "the new transaction is still held");

    admin.simple_query("RESUME").await.expect("RESUME");
    tokio::time::timeout(DEADLINE, held)
        .await
        .expect("the held statement runs after RESUME")
        .expect("its task")
        .expect("it succeeds");
    let count: i64 = primary
        .query_one("SELECT count(*) FROM paused", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 3);
}

#[tokio::test]
async fn shutdown_on_the_console_stops_the_proxy() {
    let ProxiedCluster { cluster, proxy } = ProxiedCluster::start(0, ADMIN).await;
    let port = proxy.local_addr().port();
    let admin = console(port).await.expect("an admin logs in");
    admin.simple_query("SHUTDOWN").await.expect("SHUTDOWN");
    tokio::time::timeout(DEADLINE, proxy.stopped())
        .await
        .expect("the proxy stops on its own");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the listener is closed"
    );
    drop(cluster);
}

#[tokio::test]
async fn psql_prints_the_console_plainly_and_expanded() {
    let proxied = ProxiedCluster::start(1, ADMIN).await;
    let app = proxied.connect().await;
    app.simple_query("SELECT 1")
        .await
        .expect("a read makes a pool");
    let dsn = format!(
        "postgres://postgres:{}@127.0.0.1:{}/pgrw",
        pgrw_cluster::testing::TEST_PASSWORD,
        proxied.port()
    );
    let psql = |args: &'static [&'static str]| {
        let dsn = dsn.clone();
        async move {
            let output = tokio::process::Command::new("psql")
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &dsn])
                .args(args)
                .output()
                .await
                .expect("run psql");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(output.status.success(), "psql failed: {stderr}");
            assert!(!stderr.contains("WARNING"), "psql warns: {stderr}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };

    let table = psql(&["-c", "SHOW NODES"]).await;
    let header = table.lines().next().expect("a header line");
    for column in ["name", "role", "health", "lag_bytes", "reads"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("(2 rows)"), "{table}");

    let expanded = psql(&["-x", "-c", "show pools"]).await;
    assert!(expanded.contains("-[ RECORD 1 ]"), "{expanded}");
    assert!(
        expanded.lines().any(|line| line.starts_with("cl_waiting ")),
        "{expanded}"
    );
    let help = psql(&["-c", "SHOW HELP;"]).await;
    assert!(help.contains("SHUTDOWN"), "{help}");
}

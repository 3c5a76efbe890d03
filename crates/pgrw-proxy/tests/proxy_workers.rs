//! `workers = 2`: clients spread over both workers' listeners, and what the
//! workers share holds across them — read-your-writes, the admin console's
//! totals, a reload, a shutdown.

#[path = "support/admin_console.rs"]
mod admin_console;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use admin_console::{cell, console, rows};
use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, wait_until};
use pgrw_proxy::ProxyHandle;
use proxy_cluster::{closed_with, first_value, wait_for_replicas};

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(30);

/// How many connections a test opens at most to find one on each worker:
/// the kernel spreads them by a hash of the client's port, so the chance
/// that this many all land on one worker is 2^-63.
const MOST_CONNECTIONS: usize = 64;

/// A config for `cluster` with two workers: user `postgres` (an admin) with
/// `user_extra` keys, then `tail`.
fn config_text(cluster: &TestCluster, user_extra: &str, tail: &str) -> String {
    proxy_cluster::config_text(
        cluster,
        "workers = 2",
        &format!("admin = true\n{user_extra}\n{tail}"),
    )
}

/// A client with its connection task, and the worker that accepted it
/// (told by which worker's count of accepted connections rose).
async fn connect_on_a_worker(
    proxy: &ProxyHandle,
    dsn: &str,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    usize,
) {
    let before = proxy.state().connections_by_worker();
    let (client, connection) = tokio::time::timeout(
        DEADLINE,
        tokio_postgres::connect(dsn, tokio_postgres::NoTls),
    )
    .await
    .expect("a worker answers the login in time")
    .expect("logging in through the proxy");
    let connection = tokio::spawn(connection);
    let after = proxy.state().connections_by_worker();
    let worker = (0..after.len())
        .find(|&worker| after[worker] > before[worker])
        .expect("a worker accepted the connection");
    (client, connection, worker)
}

/// One client on each worker (opening up to [`MOST_CONNECTIONS`]); the
/// others are closed.
async fn one_on_each_worker(
    proxy: &ProxyHandle,
    database: &str,
) -> Vec<(
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
)> {
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/{database}",
        proxy.local_addr().port()
    );
    let mut found: Vec<Option<_>> = vec![None, None];
    for _ in 0..MOST_CONNECTIONS {
        let (client, connection, worker) = connect_on_a_worker(proxy, &dsn).await;
        if found[worker].is_none() {
            found[worker] = Some((client, connection));
        }
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
    }
    panic!(
        "{MOST_CONNECTIONS} connections all landed on one worker: {:?}",
        proxy.state().connections_by_worker()
    );
}

#[tokio::test]
async fn clients_on_two_workers_share_writes_totals_and_reloads() {
    let cluster = TestCluster::start(1).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pgrw.toml");
    std::fs::write(&path, config_text(&cluster, "", "")).expect("write");
    let proxy = proxy_cluster::proxy_from_file(&path).await;
    wait_for_replicas(&proxy).await;

    let clients = one_on_each_worker(&proxy, "postgres").await;
    let (writer, reader) = (&clients[0].0, &clients[1].0);

    // Read-your-writes across workers: the default scope (`proxy`) holds a
    // read to every write committed through the proxy, whichever worker
    // served either.
    writer
        .batch_execute("CREATE TABLE workers_seen (n int); INSERT INTO workers_seen VALUES (0)")
        .await
        .expect("create");
    for n in 1..=20 {
        writer
            .batch_execute(&format!("UPDATE workers_seen SET n = {n}"))
            .await
            .expect("update");
        let seen = first_value(reader, "SELECT n FROM workers_seen").await;
        assert_eq!(
            seen,
            n.to_string(),
            "a read on the other worker sees write {n}"
        );
    }

    // The admin console (on either worker) counts both workers' clients
    // and statements.
    let admin = console(proxy.local_addr().port()).await.expect("an admin");
    let listed = rows(&admin, "SHOW CLIENTS").await;
    assert!(
        listed.len() >= 2,
        "SHOW CLIENTS lists the clients of both workers: {listed:?}"
    );
    let stats = rows(&admin, "SHOW STATS").await;
    let routed: u64 = stats
        .iter()
        .filter(|row| row["kind"].as_deref() == Some("node"))
        .filter_map(|row| row["statements"].as_deref()?.parse::<u64>().ok())
        .sum();
    assert!(
        routed >= 41,
        "SHOW STATS counts the statements of both workers' clients: {stats:?}"
    );
    let config = rows(&admin, "SHOW CONFIG").await;
    assert_eq!(cell(&config, "key", "workers", "value"), Some("2"));

    // A reload reaches both workers: a new password applies to logins on
    // either.
    std::fs::write(
        &path,
        config_text(&cluster, "", "").replace(
            &format!("password = \"{TEST_PASSWORD}\""),
            "password = \"reloaded\"",
        ),
    )
    .expect("write");
    admin.simple_query("RELOAD").await.expect("a valid file");
    let old_dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/postgres",
        proxy.local_addr().port()
    );
    let mut refused = [false, false];
    for _ in 0..MOST_CONNECTIONS {
        let before = proxy.state().connections_by_worker();
        let login = tokio::time::timeout(
            DEADLINE,
            tokio_postgres::connect(&old_dsn, tokio_postgres::NoTls),
        )
        .await
        .expect("a worker answers the login in time");
        assert!(
            login.is_err(),
            "the old password is refused after the reload"
        );
        let after = proxy.state().connections_by_worker();
        if let Some(worker) = (0..2).find(|&worker| after[worker] > before[worker]) {
            refused[worker] = true;
        }
        if refused == [true, true] {
            break;
        }
    }
    assert_eq!(
        refused,
        [true, true],
        "both workers refused the old password"
    );
}

#[tokio::test]
async fn each_worker_has_its_share_of_a_pool_and_a_shutdown_closes_all() {
    let cluster = TestCluster::start(0).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pgrw.toml");
    std::fs::write(&path, config_text(&cluster, "", "[pool]\nsize = 2")).expect("write");
    let mut proxy = proxy_cluster::proxy_from_file(&path).await;
    let address = proxy.local_addr();
    let clients = one_on_each_worker(&proxy, "postgres").await;
    let admin = console(address.port()).await.expect("an admin");
    let held = async || -> (u64, u64) {
        let pools = rows(&admin, "SHOW POOLS").await;
        let sum = |column: &str| -> u64 {
            pools
                .iter()
                .filter(|row| row["database"].as_deref() == Some("postgres"))
                .filter_map(|row| row[column].as_deref()?.parse::<u64>().ok())
                .sum()
        };
        (sum("sv_active") + sum("sv_idle"), sum("cl_waiting"))
    };
    for _ in 0..3 {
        for (client, _) in &clients {
            assert_eq!(first_value(client, "SELECT 1").await, "1");
            let (connections, _) = held().await;
            assert!(
                connections <= 2,
                "pool size 2 over two workers: {connections}"
            );
        }
    }

    // Size 2 over two workers is one connection each: a second transaction
    // on worker 0 waits for the first, though worker 1's slot is free.
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/postgres",
        address.port()
    );
    let mut on_first = Vec::new();
    for _ in 0..MOST_CONNECTIONS {
        let (client, connection, worker) = connect_on_a_worker(&proxy, &dsn).await;
        if worker == 0 {
            on_first.push((client, connection));
            if on_first.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(on_first.len(), 2, "two connections on worker 0");
    let (first, second) = (&on_first[0].0, &on_first[1].0);
    first.batch_execute("BEGIN; SELECT 1").await.expect("begin");
    let commit_once_waiting = async {
        wait_until(
            DEADLINE,
            "the second transaction waits for worker 0's one connection",
            async || held().await.1 >= 1,
        )
        .await;
        first.batch_execute("COMMIT").await.expect("commit");
    };
    let (ran, ()) = tokio::join!(
        second.batch_execute("BEGIN; SELECT 1; COMMIT"),
        commit_once_waiting
    );
    ran.expect("the second transaction runs once the first commits");
    drop(on_first);

    proxy.shutdown();
    for (_, connection) in clients {
        assert_eq!(closed_with(connection, DEADLINE).await, "57P01");
    }
    tokio::time::timeout(DEADLINE, proxy.stopped())
        .await
        .expect("the proxy and both workers stop");
    wait_until(DEADLINE, "no listener is left on the address", async || {
        tokio::net::TcpStream::connect(address).await.is_err()
    })
    .await;
}

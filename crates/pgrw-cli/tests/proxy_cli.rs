//! `pgrw proxy --config FILE` as a service manager runs it: it serves, and
//! SIGTERM (what systemd and container runtimes stop a process with) stops it
//! cleanly, as Ctrl-C does; a second SIGTERM stops it at once; SIGHUP
//! reloads the file, refusing an invalid one with the reason logged.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::time::Duration;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster};
use pgrw_process::{Pgrw, connect, proxy_config};

const DEADLINE: Duration = Duration::from_secs(30);

/// `pgrw proxy` in front of `cluster`, with `top_level` keys in its config,
/// once it listens; its config's directory (keep it) and its port.
fn start_proxy(cluster: &TestCluster, top_level: &str) -> (Pgrw, tempfile::TempDir, u16) {
    let (dir, config, port) = proxy_config(cluster, top_level);
    let config = config.to_str().expect("a UTF-8 temp path");
    let proxy = Pgrw::spawn(&["proxy", "--config", config]);
    proxy
        .stdout
        .wait_for_line(DEADLINE, "pgrw proxy listening on");
    (proxy, dir, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_proxy_cleanly() {
    let cluster = TestCluster::start(0).await;
    let (mut proxy, _config, port) = start_proxy(&cluster, "");
    let client = connect(port).await;
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);

    proxy.terminate();

    let status = proxy.wait_for_exit(DEADLINE, "SIGTERM");
    assert!(
        status.success(),
        "pgrw proxy exited with {status} on SIGTERM"
    );
    proxy.stdout.wait_for_line(DEADLINE, "pgrw proxy stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_stops_the_proxy_without_waiting_for_open_transactions() {
    let cluster = TestCluster::start(0).await;
    // Far longer than the test's deadline: only the second signal can end it in time.
    let (mut proxy, _config, port) = start_proxy(&cluster, "shutdown_timeout_ms = 600000");
    let client = connect(port).await;
    client.batch_execute("BEGIN").await.expect("begin");

    proxy.terminate();
    proxy
        .stdout
        .wait_for_line(DEADLINE, "pgrw proxy shutting down");
    client
        .simple_query("SELECT 1")
        .await
        .expect("the open transaction runs on while the proxy drains");
    assert!(
        proxy.child.try_wait().expect("check pgrw proxy").is_none(),
        "the first SIGTERM did not wait for the open transaction"
    );

    proxy.terminate();

    let status = proxy.wait_for_exit(DEADLINE, "a second SIGTERM");
    assert!(
        status.success(),
        "pgrw proxy exited with {status} on a second SIGTERM"
    );
    proxy.stdout.wait_for_line(DEADLINE, "pgrw proxy stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_changed_config_and_logs_why_it_refuses_an_invalid_one() {
    let cluster = TestCluster::start(0).await;
    let (proxy, dir, port) = start_proxy(&cluster, "");
    let config = dir.path().join("pgrw.toml");
    let client = connect(port).await;
    let console = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/pgrw");
    assert!(
        tokio_postgres::connect(&console, tokio_postgres::NoTls)
            .await
            .is_err(),
        "postgres is not an admin yet"
    );

    // The users table is last in the file: the key lands on postgres.
    let original = std::fs::read_to_string(&config).expect("read the config");
    std::fs::write(&config, format!("{original}admin = true\n")).expect("write");
    proxy.hangup();
    proxy
        .stderr
        .wait_for_line_containing(DEADLINE, "configuration reloaded");
    let (admin, connection) = tokio_postgres::connect(&console, tokio_postgres::NoTls)
        .await
        .expect("an admin after the reload");
    tokio::spawn(connection);
    admin.simple_query("SHOW NODES").await.expect("SHOW NODES");

    std::fs::write(&config, format!("{original}[pool]\nsize = 0\n")).expect("write");
    proxy.hangup();
    proxy
        .stderr
        .wait_for_line_containing(DEADLINE, "configuration reload refused");
    let refused = proxy.stderr.all().join("\n");
    assert!(
        refused.contains("pool.size"),
        "the reason names the key: {refused}"
    );
    let row = client
        .query_one("SELECT 8", &[])
        .await
        .expect("the client goes on");
    assert_eq!(row.get::<_, i32>(0), 8);
}

//! `pgrw proxy --config FILE` as a service manager runs it: it serves, and
//! SIGTERM (what systemd and container runtimes stop a process with) stops it
//! cleanly, as Ctrl-C does; a second SIGTERM stops it at once.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::time::Duration;

use pgrw_cluster::testing::TestCluster;
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

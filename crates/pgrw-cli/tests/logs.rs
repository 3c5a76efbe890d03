//! The log `pgrw proxy` writes to stderr, as an operator reads it: at debug,
//! every routing decision with its reason; a node going away as a warning
//! naming it; JSON lines when asked; never a password.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::time::Duration;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster};
use pgrw_process::{Pgrw, connect, proxy_config};

const DEADLINE: Duration = Duration::from_secs(30);

/// `pgrw proxy` in front of `cluster` with extra `flags`, once it listens.
fn start_proxy(cluster: &TestCluster, flags: &[&str]) -> (Pgrw, tempfile::TempDir, u16) {
    start_proxy_with(cluster, "", flags)
}

/// The same, with `top_level` keys in its configuration.
fn start_proxy_with(
    cluster: &TestCluster,
    top_level: &str,
    flags: &[&str],
) -> (Pgrw, tempfile::TempDir, u16) {
    let (dir, config, port) = proxy_config(cluster, top_level);
    let mut args = vec!["proxy", "--config", config.to_str().expect("UTF-8 path")];
    args.extend_from_slice(flags);
    let proxy = Pgrw::spawn(&args);
    proxy
        .stdout
        .wait_for_line(DEADLINE, "pgrw proxy listening on");
    (proxy, dir, port)
}

/// Runs `sql` through the proxy on `port` over the simple protocol.
async fn run_through_proxy(port: u16, sql: &str) {
    let client = connect(port).await;
    client.simple_query(sql).await.expect("the statement runs");
}

fn assert_no_password(lines: &[String]) {
    for line in lines {
        assert!(
            !line.contains(TEST_PASSWORD),
            "a log line holds the password: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_debug_each_route_is_logged_with_its_reason_and_a_stopped_replica_is_a_warning() {
    let cluster = TestCluster::start(1).await;
    let (mut proxy, _config, port) = start_proxy(&cluster, &["--log-level", "debug"]);
    proxy.stderr.wait_for(DEADLINE, "start line", |lines| {
        lines
            .iter()
            .find(|line| line.contains("pgrw proxy started"))
            .cloned()
    });

    run_through_proxy(port, "SELECT 1 AS logged_read").await;

    let routed = proxy
        .stderr
        .wait_for(DEADLINE, "a routing decision", |lines| {
            lines
                .iter()
                .find(|line| line.contains("statement routed") && line.contains("class=Read"))
                .cloned()
        });
    assert!(routed.contains("DEBUG"), "{routed}");
    assert!(
        routed.contains("node=") && routed.contains("route="),
        "{routed}"
    );
    assert!(
        !routed.contains("logged_read"),
        "statement text is for trace only: {routed}"
    );

    cluster.stop("replica1").await;

    let warning = proxy
        .stderr
        .wait_for(DEADLINE, "a warning about replica1", |lines| {
            lines
                .iter()
                .find(|line| {
                    line.contains("WARN")
                        && line.contains("replica1")
                        && (line.contains("node banned") || line.contains("node down"))
                })
                .cloned()
        });
    assert!(warning.contains("reason="), "{warning}");

    proxy.terminate();
    assert!(proxy.wait_for_exit(DEADLINE, "SIGTERM").success());
    proxy
        .stderr
        .wait_for_line_containing(DEADLINE, "pgrw proxy stopped");
    assert_no_password(&proxy.stderr.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_carry_level_message_and_fields() {
    let cluster = TestCluster::start(1).await;
    let (mut proxy, _config, port) =
        start_proxy(&cluster, &["--log-format", "json", "--log-level", "debug"]);

    run_through_proxy(port, "SELECT 2").await;
    proxy
        .stderr
        .wait_for_line_containing(DEADLINE, "statement routed");
    proxy.terminate();
    assert!(proxy.wait_for_exit(DEADLINE, "SIGTERM").success());
    proxy
        .stderr
        .wait_for_line_containing(DEADLINE, "pgrw proxy stopped");

    let lines = proxy.stderr.all();
    assert_no_password(&lines);
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect();
    for event in &events {
        assert!(event["level"].is_string(), "{event}");
        assert!(event["message"].is_string(), "{event}");
    }
    let message = |wanted: &str| {
        events
            .iter()
            .find(|event| event["message"] == wanted)
            .unwrap_or_else(|| panic!("no {wanted:?} event in:\n{}", lines.join("\n")))
    };
    let started = message("pgrw proxy started");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["listen"], format!("127.0.0.1:{port}"));
    let nodes = started["nodes"].as_str().expect("nodes");
    assert!(
        nodes.contains("primary=") && nodes.contains("replica1="),
        "{nodes}"
    );
    assert_eq!(started["pool_size"], 20);
    assert!(started["consistency"].is_string(), "{started}");
    let routed = message("statement routed");
    assert_eq!(routed["level"], "DEBUG");
    assert_eq!(routed["class"], "Read");
    assert!(
        routed["route"].as_str().expect("route").contains(": read"),
        "{routed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_with_no_free_connection_is_a_warning_naming_node_and_size() {
    let cluster = TestCluster::start(0).await;
    let pool = "[pool]\nsize = 1\ncheckout_timeout_ms = 100";
    let (proxy, _config, port) = start_proxy_with(&cluster, pool, &[]);
    let holder = connect(port).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .simple_query("SELECT 1")
        .await
        .expect("the transaction holds the only connection");

    let waiter = connect(port).await;
    let refused = waiter.simple_query("SELECT 2").await;

    assert!(refused.is_err(), "the second client got a connection");
    let warning = proxy
        .stderr
        .wait_for(DEADLINE, "a pool exhausted warning", |lines| {
            lines
                .iter()
                .find(|line| line.contains("WARN") && line.contains("pool exhausted"))
                .cloned()
        });
    assert!(warning.contains("node=primary"), "{warning}");
    assert!(warning.contains("pool_size=1"), "{warning}");
}

/// Tries to log in through the proxy on `port`; the login must fail.
async fn failed_login(port: u16, user: &str, password: &str) {
    let dsn = format!("postgres://{user}:{password}@127.0.0.1:{port}/postgres");
    assert!(
        tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .is_err(),
        "{user} is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_is_a_warning_with_user_and_address_that_never_says_which_part_failed() {
    let cluster = TestCluster::start(0).await;
    let (proxy, _config, port) = start_proxy(&cluster, &[]);
    failed_login(port, "postgres", "wrong-guess").await;
    failed_login(port, "mallory", "other-guess").await;
    let failures = proxy
        .stderr
        .wait_for(DEADLINE, "two failed logins", |lines| {
            let failures: Vec<String> = lines
                .iter()
                .filter(|line| line.contains("password authentication failed"))
                .cloned()
                .collect();
            (failures.len() == 2).then_some(failures)
        });
    for line in &failures {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("address=127.0.0.1"), "{line}");
        assert!(
            !line.contains("guess"),
            "a log line holds a password: {line}"
        );
    }
    // Shaped alike: only the user name (and the growing delay) differs.
    assert!(failures[0].contains("user=\"postgres\""), "{}", failures[0]);
    assert!(failures[1].contains("user=\"mallory\""), "{}", failures[1]);
    let shape = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .filter(|word| !word.starts_with("user=") && !word.starts_with("delay_ms="))
            .skip(1) // the timestamp
            .map(str::to_string)
            .collect()
    };
    assert_eq!(shape(&failures[0]), shape(&failures[1]));
    assert_no_password(&proxy.stderr.all());
}

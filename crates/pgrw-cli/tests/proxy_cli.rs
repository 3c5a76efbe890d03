//! `pgrw proxy --config FILE` as a service manager runs it: it serves, and
//! SIGTERM (what systemd and container runtimes stop a process with) stops it
//! cleanly, as Ctrl-C does; a second SIGTERM stops it at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, free_port_range};

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `lines` until one equals `wanted`, or panics at the deadline.
fn wait_for_line(lines: &Mutex<Vec<String>>, wanted: &str) {
    let start = Instant::now();
    loop {
        let seen = lines.lock().expect("lines").clone();
        if seen.iter().any(|line| line.starts_with(wanted)) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no line {wanted:?} within {DEADLINE:?}; output:\n{}",
            seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pgrw proxy` in front of `cluster`, with `top_level` keys in its config;
/// its stdout lines, and its port, once it listens.
fn start_proxy(cluster: &TestCluster, top_level: &str) -> (Child, Arc<Mutex<Vec<String>>>, u16) {
    let port = free_port_range(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("pgrw.toml");
    let mut text = format!("listen = \"127.0.0.1:{port}\"\n{top_level}\n");
    for node in cluster.nodes() {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\nport = {}\n",
            node.name, node.port
        ));
    }
    text.push_str(&format!(
        "[[users]]\nname = \"postgres\"\npassword = \"{TEST_PASSWORD}\"\n"
    ));
    std::fs::write(&config, text).expect("write the config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_pgrw"))
        .args(["proxy", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pgrw proxy");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines").push(line);
        }
    });
    wait_for_line(&lines, "pgrw proxy listening on");
    (child, lines, port)
}

/// A client logged in through the proxy on `port`.
async fn connect(port: u16) -> tokio_postgres::Client {
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client logs in through the proxy");
    tokio::spawn(connection);
    client
}

fn send_sigterm(child: &Child) {
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(terminated.success());
}

/// Waits for `child` to exit, or kills it and panics at the deadline.
fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for pgrw proxy") {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("pgrw proxy still running {DEADLINE:?} after {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_proxy_cleanly() {
    let cluster = TestCluster::start(0).await;
    let (mut child, lines, port) = start_proxy(&cluster, "");
    let client = connect(port).await;
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);

    send_sigterm(&child);

    let status = wait_for_exit(&mut child, "SIGTERM");
    assert!(
        status.success(),
        "pgrw proxy exited with {status} on SIGTERM"
    );
    wait_for_line(&lines, "pgrw proxy stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_stops_the_proxy_without_waiting_for_open_transactions() {
    let cluster = TestCluster::start(0).await;
    // Far longer than the test's deadline: only the second signal can end it in time.
    let (mut child, lines, port) = start_proxy(&cluster, "shutdown_timeout_ms = 600000");
    let client = connect(port).await;
    client.batch_execute("BEGIN").await.expect("begin");

    send_sigterm(&child);
    wait_for_line(&lines, "pgrw proxy shutting down");
    client
        .simple_query("SELECT 1")
        .await
        .expect("the open transaction runs on while the proxy drains");
    assert!(
        child.try_wait().expect("check pgrw proxy").is_none(),
        "the first SIGTERM did not wait for the open transaction"
    );

    send_sigterm(&child);

    let status = wait_for_exit(&mut child, "a second SIGTERM");
    assert!(
        status.success(),
        "pgrw proxy exited with {status} on a second SIGTERM"
    );
    wait_for_line(&lines, "pgrw proxy stopped");
}

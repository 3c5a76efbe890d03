//! `pgrw proxy --config FILE` as a service manager runs it: it serves, and
//! SIGTERM (what systemd and container runtimes stop a process with) stops it
//! cleanly, as Ctrl-C does.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_proxy_cleanly() {
    let cluster = TestCluster::start(0).await;
    let port = free_port_range(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("pgrw.toml");
    let mut text = format!("listen = \"127.0.0.1:{port}\"\n");
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

    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client logs in through the proxy");
    tokio::spawn(connection);
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);

    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(terminated.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pgrw proxy") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("pgrw proxy still running {DEADLINE:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "pgrw proxy exited with {status} on SIGTERM"
    );
    wait_for_line(&lines, "pgrw proxy stopped");
}

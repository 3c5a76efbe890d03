//! The origin — the blog post's Python peewee program (`tests/origin/origin_peewee.py`,
//! verbatim) — run through the proxy with only its ports and password changed:
//! its primary and both "slave" databases all point at the proxy. It prints
//! what it printed against its own three nodes, every row it creates is read
//! back at once, and its reads do reach replicas (by the replicas' own
//! statistics, not the proxy's report).
//!
//! Needs `python3` with peewee 3.x and psycopg2; `./dev test` installs them.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgrw_cluster::testing::TEST_PASSWORD;
use tokio::process::Command;

use proxy_cluster::ProxiedCluster;

/// The origin program, as the blog post wrote it.
const ORIGIN_PROGRAM: &str = include_str!("origin/origin_peewee.py");
/// Creates rows with the origin's pools and reads each back at once.
const READ_BACK_PROGRAM: &str = include_str!("origin/read_back.py");
/// How many rows `read_back.py` creates.
const READ_BACK_ROWS: usize = 50;
/// How long a replica may take to publish its statistics (idle backends flush every 10 s).
const STATISTICS_DEADLINE: Duration = Duration::from_secs(30);

/// Fails the test, with the way out, when python3, peewee or psycopg2 is missing.
async fn require_python_with_peewee() {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import peewee, psycopg2; assert peewee.__version__.startswith('3.')",
        ])
        .output()
        .await;
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "python3 lacks peewee 3.x or psycopg2 ({}); run ./dev test, which installs them \
             (python3 -m pip install 'peewee>=3,<4' psycopg2-binary)",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!("python3 is not runnable ({error}); run ./dev test"),
    }
}

/// The origin program with its three ports set to `proxy_port` and its password to the test cluster's.
fn origin_pointed_at(proxy_port: u16) -> String {
    let mut program = ORIGIN_PROGRAM.to_string();
    for origin_port in ["5432", "5433", "5434"] {
        program = replace_exactly(
            &program,
            &format!("'port': {origin_port},"),
            &format!("'port': {proxy_port},"),
            1,
        );
    }
    replace_exactly(
        &program,
        "'password': 'meiyoumima',",
        &format!("'password': '{TEST_PASSWORD}',"),
        3,
    )
}

/// `text` with `from` replaced by `to`, which must occur exactly `count` times.
fn replace_exactly(text: &str, from: &str, to: &str, count: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        count,
        "the origin program should contain {from:?} {count} time(s)"
    );
    text.replace(from, to)
}

/// A fresh directory holding `origin.py` (pointed at the proxy) and `read_back.py`.
fn program_directory(proxy_port: u16) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("origin-{proxy_port}"));
    std::fs::create_dir_all(&directory).expect("creating the program directory");
    std::fs::write(directory.join("origin.py"), origin_pointed_at(proxy_port))
        .expect("writing origin.py");
    std::fs::write(directory.join("read_back.py"), READ_BACK_PROGRAM)
        .expect("writing read_back.py");
    directory
}

/// Runs `python3 script args…` in `directory`; its stdout, after asserting it exited 0.
async fn run_python(directory: &Path, script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .current_dir(directory)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .await
        .unwrap_or_else(|error| panic!("running python3 {script}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python3 {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Index and sequential scans of table `user` counted by the node at `port` itself.
async fn user_table_scans(port: u16) -> i64 {
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("connecting to the node on {port}: {error}"));
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::int8 \
             FROM pg_stat_user_tables WHERE relname = 'user'",
            &[],
        )
        .await
        .expect("reading pg_stat_user_tables");
    row.get(0)
}

#[tokio::test]
async fn the_origin_program_prints_what_it_printed_against_its_own_nodes() {
    require_python_with_peewee().await;
    let proxied = ProxiedCluster::start(2, "").await;
    let directory = program_directory(proxied.port());

    let stdout = run_python(&directory, "origin.py", &[]).await;

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "创建用户：张三",
            "获取用户：张三",
            "1 张三 zhangsan@example.com"
        ],
        "the origin's output"
    );
}

/// Runs `read_back.py` through a proxy with `extra` policy TOML, asserts every
/// row was found, and returns the proxied cluster for node-side checks.
async fn read_back_through_proxy(extra: &str) -> ProxiedCluster {
    require_python_with_peewee().await;
    let proxied = ProxiedCluster::start(2, extra).await;
    let directory = program_directory(proxied.port());
    let rows = READ_BACK_ROWS.to_string();
    let stdout = run_python(&directory, "read_back.py", &[&rows]).await;
    assert!(
        stdout.contains(&format!("found {READ_BACK_ROWS} of {READ_BACK_ROWS}")),
        "every created row is read back at once:\n{stdout}"
    );
    proxied
}

#[tokio::test]
async fn rows_created_through_the_origin_pools_are_read_back_at_once() {
    read_back_through_proxy("").await;
}

#[tokio::test]
async fn with_a_replay_wait_the_origin_reads_back_its_rows_from_replicas() {
    let proxied = read_back_through_proxy("[policy]\nread_your_writes_wait_ms = 1000").await;
    let replica_ports: Vec<u16> = proxied
        .cluster
        .nodes()
        .iter()
        .filter(|node| node.name.starts_with("replica"))
        .map(|node| node.port)
        .collect();
    assert_eq!(replica_ports.len(), 2);

    // The replicas' own statistics, not the proxy's report, show the reads ran there.
    let deadline = Instant::now() + STATISTICS_DEADLINE;
    loop {
        let mut replica_scans = 0;
        for &port in &replica_ports {
            replica_scans += user_table_scans(port).await;
        }
        if replica_scans > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no replica counted a scan of table user within {STATISTICS_DEADLINE:?}: \
             every read ran on the primary"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

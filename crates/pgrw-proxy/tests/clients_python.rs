//! psycopg 3 and asyncpg through the proxy, with only the port changed. The
//! programs (`tests/python/*.py`) run one scenario each — server-side prepared
//! statements, transactions, psycopg's pipeline mode, asyncpg's pool — check
//! their own data, and report the port of the node that served each statement
//! (`inet_server_port()`); this file checks where each kind of statement ran
//! and that every row written was read back at once.
//!
//! The proxy has 2 backends per node, fewer than the programs' connections, so
//! a statement prepared on one backend is executed on others.
//!
//! psycopg2 with its defaults and a SQLAlchemy `Session` read, with
//! `transaction_reads = "replica"`, inside the transactions they open
//! themselves, on replicas and never stale (`tests/python/psycopg2_transactions.py`).
//!
//! Needs `python3` with `psycopg[binary]` (3.x), asyncpg, psycopg2 and sqlalchemy;
//! `./dev test` installs them.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use proxy_cluster::ProxiedCluster;

/// Backends per node in the proxy: fewer than the programs' connections.
const PROXY_POOL: &str = "[pool]\nsize = 2\n";
/// `transaction_reads = "replica"`, with reads waiting up to 1 s for a
/// replica to replay the writes they must see (under a concurrent write load
/// on a loaded machine replay can take longer than the default 50 ms; the
/// tests count where reads ran, not how fast replay is).
const TRANSACTION_READS_UNDER_WRITES: &str =
    "[policy]\ntransaction_reads = \"replica\"\nread_your_writes_wait_ms = 1000\n";
/// How long one scenario may run.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(120);

/// A Python driver and the program that exercises it.
#[derive(Clone, Copy)]
enum Driver {
    Psycopg3,
    Asyncpg,
}

impl Driver {
    fn program(self) -> &'static str {
        match self {
            Driver::Psycopg3 => "psycopg3_client.py",
            Driver::Asyncpg => "asyncpg_client.py",
        }
    }

    /// A Python check that the driver is importable, in the version the programs need.
    fn probe(self) -> &'static str {
        match self {
            Driver::Psycopg3 => "import psycopg; assert psycopg.__version__.startswith('3.')",
            Driver::Asyncpg => "import asyncpg",
        }
    }
}

/// What one scenario reported, with the cluster it ran against.
struct Report {
    proxied: ProxiedCluster,
    json: Value,
}

impl Report {
    /// How many statements of `kind` (`read_ports`, `write_ports`,
    /// `transaction_ports`) each node served, by node name.
    fn served(&self, kind: &str) -> BTreeMap<String, usize> {
        let ports = self.json[kind]
            .as_array()
            .unwrap_or_else(|| panic!("the report has no {kind}: {}", self.json));
        assert!(!ports.is_empty(), "no statements of kind {kind}");
        let mut served = BTreeMap::new();
        for port in ports {
            let port = port
                .as_i64()
                .and_then(|port| i32::try_from(port).ok())
                .unwrap_or_else(|| panic!("{kind} holds a non-port {port}"));
            *served.entry(self.proxied.node_at(port)).or_insert(0) += 1;
        }
        served
    }

    fn assert_only_on_primary(&self, kind: &str) {
        let served = self.served(kind);
        assert!(
            served.keys().all(|node| node == "primary"),
            "every statement of kind {kind} ran on the primary: {served:?}"
        );
    }

    fn assert_on_both_replicas_only(&self, kind: &str) {
        let served = self.served(kind);
        assert_eq!(
            served.keys().map(String::as_str).collect::<Vec<_>>(),
            ["replica1", "replica2"],
            "every statement of kind {kind} ran on a replica, and both served some"
        );
    }

    fn assert_only_on_replicas(&self, kind: &str) {
        let served = self.served(kind);
        assert!(
            served.keys().all(|node| node.starts_with("replica")),
            "every statement of kind {kind} ran on a replica: {served:?}"
        );
    }

    fn assert_on_one_replica(&self, kind: &str) {
        let served = self.served(kind);
        assert!(
            served.len() == 1 && served.keys().all(|node| node.starts_with("replica")),
            "one replica ran every statement of kind {kind}: {served:?}"
        );
    }

    fn assert_every_row_read_back(&self) {
        let written = self.json["written"].as_i64();
        assert!(written.is_some_and(|written| written > 0), "{}", self.json);
        assert_eq!(
            self.json["found"].as_i64(),
            written,
            "every row written is read back at once"
        );
    }
}

/// Fails the test, with the way out, when python3 or `driver` is missing.
async fn require(driver: Driver) {
    let probe = Command::new("python3")
        .args(["-c", driver.probe()])
        .output()
        .await;
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "python3 cannot run {}: {}; run ./dev test, which installs the drivers \
             (python3 -m pip install 'psycopg[binary]' asyncpg)",
            driver.program(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!("python3 is not runnable ({error}); run ./dev test"),
    }
}

/// Runs `scenario` of `driver`'s program against a fresh proxied cluster; its
/// report, after asserting the program exited 0 within [`SCENARIO_DEADLINE`].
async fn run(driver: Driver, scenario: &str) -> Report {
    require(driver).await;
    let proxied = ProxiedCluster::start(2, PROXY_POOL).await;
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(driver.program());
    let run = Command::new("python3")
        .arg(&program)
        .args([scenario, &proxied.dsn()])
        .env("PYTHONIOENCODING", "utf-8")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCENARIO_DEADLINE, run)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {scenario} did not finish within {SCENARIO_DEADLINE:?}",
                driver.program()
            )
        })
        .unwrap_or_else(|error| panic!("running python3 {}: {error}", driver.program()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} {scenario} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        driver.program(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "{} {scenario} printed no JSON report ({error}):\n{stdout}",
            driver.program()
        )
    });
    Report { proxied, json }
}

#[tokio::test]
async fn psycopg_prepared_reads_run_on_replicas() {
    // One connection's back-to-back reads stay on one replica (monotonic
    // reads); pools spread theirs (asyncpg's pool test below, sqlx's).
    run(Driver::Psycopg3, "prepared-reads")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn psycopg_prepared_writes_run_on_the_primary_and_are_read_back_at_once() {
    let report = run(Driver::Psycopg3, "prepared-writes-read-back").await;
    report.assert_only_on_primary("write_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn psycopg_transaction_runs_wholly_on_the_primary() {
    let report = run(Driver::Psycopg3, "transaction").await;
    report.assert_only_on_primary("transaction_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn psycopg_read_only_transaction_runs_on_one_replica() {
    run(Driver::Psycopg3, "read-only-transaction")
        .await
        .assert_on_one_replica("transaction_ports");
}

#[tokio::test]
async fn psycopg_pipeline_reads_the_rows_it_wrote_before_the_same_sync() {
    let report = run(Driver::Psycopg3, "pipeline-writes-and-reads").await;
    report.assert_only_on_primary("write_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn psycopg_pipeline_of_prepared_reads_runs_on_replicas() {
    run(Driver::Psycopg3, "pipeline-reads")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn psycopg_pipeline_error_is_reported_and_the_connection_stays_usable() {
    run(Driver::Psycopg3, "pipeline-error")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn psycopg_executemany_writes_run_on_the_primary_and_are_read_back_at_once() {
    let report = run(Driver::Psycopg3, "executemany-read-back").await;
    report.assert_only_on_primary("write_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn psycopg_copy_out_of_a_read_runs_on_replicas_and_copied_in_rows_are_read_back() {
    let report = run(Driver::Psycopg3, "copy").await;
    report.assert_only_on_replicas("read_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn psycopg_with_hold_cursor_is_fetched_inside_a_later_read_write_transaction() {
    run(Driver::Psycopg3, "with-hold-cursor")
        .await
        .assert_only_on_primary("cursor_ports");
}

#[tokio::test]
async fn psycopg_startup_options_and_application_name_hold_on_every_backend() {
    run(Driver::Psycopg3, "startup-settings").await;
}

#[tokio::test]
async fn psycopg_cancel_stops_the_running_query_and_the_connection_stays_usable() {
    run(Driver::Psycopg3, "cancel")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn psycopg_libpq_reset_logs_in_again_with_a_fresh_session() {
    // The question reads `pg_prepared_statements`, about this node: the primary answers.
    run(Driver::Psycopg3, "reset")
        .await
        .assert_only_on_primary("transaction_ports");
}

#[tokio::test]
async fn asyncpg_prepared_reads_run_on_replicas() {
    // One connection's back-to-back reads stay on one replica (monotonic
    // reads); pools spread theirs (the pool test below, sqlx's).
    run(Driver::Asyncpg, "prepared-reads")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn asyncpg_writes_run_on_the_primary_and_are_read_back_at_once() {
    let report = run(Driver::Asyncpg, "writes-read-back").await;
    report.assert_only_on_primary("write_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_transaction_runs_wholly_on_the_primary() {
    let report = run(Driver::Asyncpg, "transaction").await;
    report.assert_only_on_primary("transaction_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_read_only_transaction_runs_on_one_replica() {
    run(Driver::Asyncpg, "read-only-transaction")
        .await
        .assert_on_one_replica("transaction_ports");
}

#[tokio::test]
async fn asyncpg_prepared_statement_error_leaves_the_connection_usable() {
    run(Driver::Asyncpg, "prepared-error")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn asyncpg_pool_reads_run_on_both_replicas() {
    run(Driver::Asyncpg, "pool-reads")
        .await
        .assert_on_both_replicas_only("read_ports");
}

#[tokio::test]
async fn asyncpg_pool_writes_run_on_the_primary_and_are_read_back_at_once() {
    let report = run(Driver::Asyncpg, "pool-writes-read-back").await;
    report.assert_only_on_primary("write_ports");
    report.assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_cursors_in_a_transaction_run_on_the_primary() {
    run(Driver::Asyncpg, "cursor")
        .await
        .assert_only_on_primary("transaction_ports");
}

#[tokio::test]
async fn asyncpg_copies_out_at_once_the_rows_another_connection_wrote() {
    run(Driver::Asyncpg, "copy-out")
        .await
        .assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_copy_records_to_table_completes_and_is_read_back_at_once() {
    run(Driver::Asyncpg, "copy-records")
        .await
        .assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_idle_listener_receives_a_notify_from_another_connection() {
    run(Driver::Asyncpg, "listen-notify")
        .await
        .assert_only_on_primary("listen_ports");
}

#[tokio::test]
async fn asyncpg_timeout_cancels_the_query_and_the_connection_stays_usable() {
    run(Driver::Asyncpg, "cancel-on-timeout")
        .await
        .assert_only_on_replicas("read_ports");
}

#[tokio::test]
async fn asyncpg_introspects_a_type_created_on_another_connection_at_once() {
    run(Driver::Asyncpg, "new-type")
        .await
        .assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_prepares_again_after_ddl_changes_a_cached_statement_result() {
    run(Driver::Asyncpg, "schema-change")
        .await
        .assert_every_row_read_back();
}

#[tokio::test]
async fn asyncpg_server_settings_hold_on_every_backend() {
    run(Driver::Asyncpg, "startup-settings").await;
}

/// psycopg2 with its default settings (autocommit off) reads, in the
/// transactions it opens itself, rows a writer commits through the proxy,
/// with replay paused on one replica (`tests/python/psycopg2_transactions.py`).
/// Needs python3 with psycopg2; `./dev test` installs it.
#[tokio::test]
async fn psycopg2_with_its_defaults_reads_on_replicas_and_never_stale() {
    python_reads_in_transactions("psycopg2", "import psycopg2").await;
}

/// The same through a SQLAlchemy `Session` (over psycopg2). Needs
/// sqlalchemy; `./dev test` installs it.
#[tokio::test]
async fn a_sqlalchemy_session_reads_on_replicas_and_never_stale() {
    python_reads_in_transactions("sqlalchemy", "import sqlalchemy, psycopg2").await;
}

/// Runs `tests/python/psycopg2_transactions.py` with `client` for 4 s with
/// replay paused on one replica: no stale read, at most 5% on the primary.
async fn python_reads_in_transactions(client: &str, probe: &str) {
    let probed = Command::new("python3").args(["-c", probe]).output().await;
    assert!(
        probed.is_ok_and(|output| output.status.success()),
        "python3 with {client} is needed; run ./dev test, which installs it"
    );
    let proxied = ProxiedCluster::start(2, TRANSACTION_READS_UNDER_WRITES).await;
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    proxied.cluster.pause_replay("replica2").await;
    let program =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/psycopg2_transactions.py");
    let run = Command::new("python3")
        .arg(&program)
        .args([proxied.dsn().as_str(), "4", client])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the program finishes within 120 s")
        .expect("python3 runs");
    proxied.cluster.resume_replay("replica2").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the program failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    let reads = report["reads"].as_u64().expect("reads");
    let primary_port = i64::from(proxied.cluster.port("primary"));
    let on_primary = report["read_ports"]
        .as_array()
        .expect("read_ports")
        .iter()
        .filter(|port| port.as_i64() == Some(primary_port))
        .count() as u64;
    assert!(reads > 20, "only {reads} reads");
    assert_eq!(report["stale"].as_u64(), Some(0), "stale reads: {report}");
    assert!(
        on_primary * 100 <= reads * 5,
        "{on_primary} of {reads} reads on the primary"
    );
}

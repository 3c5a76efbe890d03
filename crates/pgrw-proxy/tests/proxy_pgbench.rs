//! pgbench through the proxy: initialisation (COPY FROM STDIN, DDL, VACUUM),
//! then bounded select-only runs in the simple, extended and prepared
//! protocols, each with no failed transaction.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use pgrw_cluster::testing::TEST_PASSWORD;
use proxy_cluster::ProxiedCluster;
use tokio::process::Command;

async fn pgbench(proxied: &ProxiedCluster, args: &[&str]) -> String {
    let port = proxied.port().to_string();
    let output = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .env("PGPASSWORD", TEST_PASSWORD)
        .output()
        .await
        .expect("running pgbench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pgbench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_no_failures(report: &str) {
    let processed = report
        .lines()
        .find(|line| line.starts_with("number of transactions actually processed"))
        .unwrap_or_else(|| panic!("no transaction count in:\n{report}"));
    assert!(!processed.contains(": 0/"), "{processed}");
    if let Some(failed) = report
        .lines()
        .find(|line| line.starts_with("number of failed"))
    {
        assert!(failed.contains(": 0 ("), "{failed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_select_only_runs_without_failures_in_every_protocol() {
    let proxied = ProxiedCluster::start(2, "").await;
    pgbench(&proxied, &["-i", "-s", "1", "-q"]).await;
    for mode in ["simple", "extended", "prepared"] {
        let report = pgbench(
            &proxied,
            &["-S", "-T", "3", "-c", "4", "-j", "2", "-M", mode],
        )
        .await;
        assert_no_failures(&report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_read_write_transactions_run_without_failures() {
    let proxied = ProxiedCluster::start(1, "").await;
    pgbench(&proxied, &["-i", "-s", "1", "-q"]).await;
    let report = pgbench(
        &proxied,
        &["-T", "3", "-c", "4", "-j", "2", "-M", "prepared"],
    )
    .await;
    assert_no_failures(&report);
}

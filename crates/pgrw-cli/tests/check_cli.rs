//! `pgrw check --config FILE` against real clusters: a healthy one passes and
//! shows roles, who follows whom and where reads and writes would go; a file
//! with a mistake, a node down, no primary, two primaries and a replica that
//! follows nothing each fail it, with the reason.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pgrw_cluster::testing::{TestCluster, wait_until};
use pgrw_process::proxy_config;

async fn check(config: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pgrw"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .await
        .expect("pgrw check runs")
}

/// Everything `pgrw check` printed, also echoed (shown with `--nocapture`).
fn text(output: &Output) -> String {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{printed}");
    printed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_cluster_passes_with_roles_topology_and_routes() {
    let cluster = TestCluster::start(1).await;
    let (_dir, config, _) = proxy_config(&cluster, "");
    let output = check(&config).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let line_with = |needle: &str| {
        printed
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{printed}"))
            .to_string()
    };
    assert!(
        line_with("primary ").contains(" primary  lsn "),
        "{printed}"
    );
    assert!(
        line_with("replica1 ").contains(" replica  replay "),
        "{printed}"
    );
    assert!(
        line_with("replica1 follows").contains("follows primary"),
        "{printed}"
    );
    assert!(line_with("primary → ").contains("streaming"), "{printed}");
    assert!(
        line_with("a read ").contains("→ replica1: read"),
        "{printed}"
    );
    assert!(
        line_with("a write").contains("→ primary: write"),
        "{printed}"
    );
}

#[tokio::test]
async fn a_file_with_a_mistake_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgrw.toml");
    std::fs::write(
        &config,
        "[[nodes]]\nname = \"a\"\nport = 5432\n[[nodes]]\nname = \"b\"\nport = 0\n\
         [[users]]\nname = \"u\"\npassword = \"p\"\n",
    )
    .unwrap();
    let output = check(&config).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("`nodes[1].port`") && printed.contains("fix:"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_down_and_a_replica_following_nothing_fail_the_check() {
    let cluster = TestCluster::start(2).await;
    let (_dir, config, _) = proxy_config(&cluster, "");
    cluster.stop("replica2").await;
    // replica1 now streams from a port where nothing listens.
    let replica = cluster.connect("replica1").await;
    for sql in [
        "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1 user=postgres'",
        "SELECT pg_reload_conf()",
    ] {
        replica.batch_execute(sql).await.unwrap();
    }
    wait_until(
        Duration::from_secs(30),
        "replica1 stops streaming",
        async || {
            replica
                .query_one(
                    "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                    &[],
                )
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 0)
        },
    )
    .await;
    let output = check(&config).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    let down = printed
        .lines()
        .find(|line| line.contains("- node replica2 (127.0.0.1:"))
        .unwrap_or_else(|| panic!("replica2 is not reported down:\n{printed}"));
    assert!(
        down.contains("is down") && down.contains("refused"),
        "{down}"
    );
    assert!(
        printed.contains("replica replica1 (node 1) does not follow primary, the primary"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_without_a_primary_fails_the_check() {
    let cluster = TestCluster::start(0).await;
    let (_dir, config, _) = proxy_config(&cluster, "");
    cluster.stop("primary").await;
    let output = check(&config).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("no primary"), "{printed}");
    assert!(printed.contains("node primary (127.0.0.1:"), "{printed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_primaries_fail_the_check_as_a_split_brain() {
    let cluster = TestCluster::start(1).await;
    let (_dir, config, _) = proxy_config(&cluster, "");
    cluster.promote("replica1").await;
    let output = check(&config).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("2 nodes are primaries (primary, replica1)")
            && printed.contains("split brain"),
        "{printed}"
    );
}

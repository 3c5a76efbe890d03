//! `pgrw up --write-config FILE`: the configuration `pgrw up` serves with is
//! written out, and `pgrw proxy --config FILE` serves the same cluster from it
//! — the step from trying pgrw to running it.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, free_port_range};
use pgrw_process::Pgrw;
use pgrw_proxy::ProxyConfig;

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn the_written_configuration_serves_the_same_cluster_through_pgrw_proxy() {
    let cluster = TestCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgrw.toml");
    let port = free_port_range(1);
    let file_arg = file.to_str().unwrap();
    let cluster_dir = cluster.dir().to_str().unwrap().to_string();

    // `pgrw up` over the running cluster: it leaves it running when it stops.
    let mut up = Pgrw::spawn(&[
        "up",
        "--dir",
        &cluster_dir,
        "--port",
        &port.to_string(),
        "--write-config",
        file_arg,
    ]);
    up.stdout
        .wait_for_line(DEADLINE, &format!("configuration written to {file_arg}"));
    up.terminate();
    assert!(up.wait_for_exit(DEADLINE, "SIGTERM").success());

    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file holds a password");
    let config = ProxyConfig::load(&file).unwrap_or_else(|error| panic!("{error}"));
    let ports: Vec<u16> = config.nodes.iter().map(|node| node.port).collect();
    assert_eq!(
        ports,
        [cluster.port("primary"), cluster.port("replica1")],
        "every node of the cluster"
    );
    assert_eq!(config.listen_addr().unwrap().port(), port);

    let proxy = Pgrw::spawn(&["proxy", "--config", file_arg]);
    proxy
        .stdout
        .wait_for_line(DEADLINE, "pgrw proxy listening on");
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client logs in through the proxy serving the written file");
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE written (id int); INSERT INTO written VALUES (42)")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT id FROM written", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

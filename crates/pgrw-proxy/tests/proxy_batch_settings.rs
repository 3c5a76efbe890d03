//! Settings changed through the extended protocol last exactly as they would
//! on one direct connection: a SET run from a statement prepared earlier, a
//! SET between BEGIN and ROLLBACK (or COMMIT) pipelined under one Sync, and a
//! SET after a Flush. Each test reads the setting back on several backends
//! (one per node, reads spread over two replicas).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use bytes::BytesMut;
use pgrw_proxy::protocol::frontend;
use proxy_cluster::ProxiedCluster;
use raw_client::{RawClient, encode_unnamed_execute, error_fields};

/// Trust logins for the raw client; one backend per node, so that every
/// statement meets a backend that other statements used.
const TRUST_ONE_BACKEND: &str = "auth = \"trust\"\n[pool]\nsize = 1\n";

const DEFAULT_PATH: &str = "\"$user\", public";

/// Parse, Bind and Execute of `sql` as the unnamed statement and portal.
fn execute(out: &mut BytesMut, sql: &str) {
    encode_unnamed_execute(out, sql.as_bytes(), false);
}

/// Sends `out` and reads every answer up to ReadyForQuery; panics on an error.
async fn run(client: &mut RawClient, out: &BytesMut) {
    client.send(out).await;
    loop {
        let message = client.receive().await.expect("the proxy answers");
        match message.tag() {
            b'E' => panic!("{:?}", error_fields(&message)),
            b'Z' => return,
            _ => {}
        }
    }
}

/// `SHOW search_path`, six times: the same answer on every backend.
async fn search_paths(client: &mut RawClient) -> Vec<String> {
    let mut paths = Vec::new();
    for _ in 0..6 {
        paths.push(client.query_value("SHOW search_path").await.unwrap());
    }
    paths
}

#[tokio::test]
async fn a_set_rolled_back_in_the_same_pipeline_does_not_last() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let mut client = RawClient::log_in(proxied.port()).await;
    let mut out = BytesMut::new();
    execute(&mut out, "BEGIN");
    execute(&mut out, "SET search_path = gone");
    execute(&mut out, "ROLLBACK");
    frontend::encode_sync(&mut out);
    run(&mut client, &out).await;
    assert_eq!(search_paths(&mut client).await, vec![DEFAULT_PATH; 6]);
}

#[tokio::test]
async fn a_set_committed_in_the_same_pipeline_lasts() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let mut client = RawClient::log_in(proxied.port()).await;
    let mut out = BytesMut::new();
    execute(&mut out, "BEGIN");
    execute(&mut out, "SET search_path = kept, public");
    execute(&mut out, "COMMIT");
    execute(&mut out, "BEGIN");
    execute(&mut out, "SET statement_timeout = 4321");
    execute(&mut out, "ROLLBACK");
    frontend::encode_sync(&mut out);
    run(&mut client, &out).await;
    assert_eq!(search_paths(&mut client).await, vec!["kept, public"; 6]);
    for _ in 0..4 {
        assert_eq!(
            client.query_value("SHOW statement_timeout").await.unwrap(),
            "0"
        );
    }
}

#[tokio::test]
async fn a_set_after_a_flush_lasts() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let mut client = RawClient::log_in(proxied.port()).await;
    let mut out = BytesMut::new();
    execute(&mut out, "SELECT 1");
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'C').await, "12DC");
    let mut out = BytesMut::new();
    execute(&mut out, "SET search_path = flushed, public");
    frontend::encode_sync(&mut out);
    run(&mut client, &out).await;
    assert_eq!(search_paths(&mut client).await, vec!["flushed, public"; 6]);
}

#[tokio::test]
async fn a_set_run_from_a_statement_prepared_earlier_lasts() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let client = proxied.connect().await;
    let set = client
        .prepare("SET search_path = prepared, public")
        .await
        .unwrap();
    client.execute(&set, &[]).await.unwrap();
    for _ in 0..6 {
        let row = client
            .query_one("SELECT current_setting('search_path')", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "prepared, public");
    }
    // Not inherited by the next client of the same backends.
    let other = proxied.connect().await;
    for _ in 0..4 {
        let row = other
            .query_one("SELECT current_setting('search_path')", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), DEFAULT_PATH);
    }
}

#[tokio::test]
async fn a_set_prepared_and_never_executed_changes_nothing() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let client = proxied.connect().await;
    client
        .prepare("SET search_path = never_run, public")
        .await
        .unwrap();
    for _ in 0..6 {
        let row = client
            .query_one("SELECT current_setting('search_path')", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), DEFAULT_PATH);
    }
}

#[tokio::test]
async fn set_config_with_bound_parameters_lasts_as_the_backend_has_it() {
    let proxied = ProxiedCluster::start(2, TRUST_ONE_BACKEND).await;
    let client = proxied.connect().await;
    let set = "SELECT set_config($1, $2, false)";
    client
        .execute(set, &[&"search_path", &"bound, public"])
        .await
        .unwrap();
    // In a transaction rolled back: does not last.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(set, &[&"statement_timeout", &"4321"])
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    for _ in 0..6 {
        let row = client
            .query_one(
                "SELECT current_setting('search_path'), current_setting('statement_timeout')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1)),
            ("bound, public".to_string(), "0".to_string())
        );
    }
}

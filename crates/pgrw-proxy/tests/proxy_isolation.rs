//! Clients sharing backends never see each other (docs/security.md): with a
//! pool of one connection per node every client runs on the same backend,
//! interleaved, and one client's settings, prepared statements, errors,
//! cancel requests, failed COPY and protocol violations never reach another's
//! results.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use proxy_cluster::ProxiedCluster;
use raw_client::{RawClient, error_fields};

/// One backend per node, and clients that wait for it as long as needed;
/// trust, so that a raw client can log in too.
const SHARED: &str = "auth = \"trust\"\n[pool]\nsize = 1\ncheckout_timeout_ms = 60000\n";

async fn text(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = client.simple_query(sql).await.expect(sql);
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn one_clients_set_never_reaches_another_on_the_same_backend() {
    let proxied = ProxiedCluster::start(0, SHARED).await;
    let a = proxied.connect().await;
    let b = proxied.connect().await;
    let default_timeout = text(&b, "SHOW statement_timeout").await;
    let default_path = text(&b, "SHOW search_path").await;
    a.batch_execute("SET statement_timeout = '4321ms'; SET search_path = a_schema")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(text(&b, "SHOW statement_timeout").await, default_timeout);
        assert_eq!(text(&b, "SHOW search_path").await, default_path);
        assert_eq!(text(&a, "SHOW statement_timeout").await, "4321ms");
        assert_eq!(text(&a, "SHOW search_path").await, "a_schema");
    }
}

#[tokio::test]
async fn prepared_statements_of_the_same_name_stay_each_clients_own() {
    let proxied = ProxiedCluster::start(0, SHARED).await;
    let a = proxied.connect().await;
    let b = proxied.connect().await;
    // tokio-postgres names its first statement s0 on both connections.
    let add = a.prepare("SELECT $1::int + 1").await.unwrap();
    let concat = b.prepare("SELECT $1::text || '!'").await.unwrap();
    for round in 0..5 {
        let sum: i32 = a.query_one(&add, &[&round]).await.unwrap().get(0);
        assert_eq!(sum, round + 1);
        let shout: String = b
            .query_one(&concat, &[&round.to_string()])
            .await
            .unwrap()
            .get(0);
        assert_eq!(shout, format!("{round}!"));
    }
}

#[tokio::test]
async fn one_clients_errors_never_reach_another() {
    let proxied = ProxiedCluster::start(0, SHARED).await;
    let a = proxied.connect().await;
    let b = proxied.connect().await;
    for _ in 0..3 {
        assert!(a.simple_query("SELECT 1/0").await.is_err());
        assert_eq!(text(&b, "SELECT 'b fine'").await, "b fine");
        a.batch_execute("BEGIN").await.unwrap();
        assert!(a.simple_query("SELECT no_such_column").await.is_err());
        a.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(text(&b, "SELECT 'b still fine'").await, "b still fine");
    }
}

#[tokio::test]
async fn a_cancel_request_stops_only_its_own_clients_query() {
    let proxied = ProxiedCluster::start(0, SHARED).await;
    let a = std::sync::Arc::new(proxied.connect().await);
    let b = proxied.connect().await;
    let cancel = a.cancel_token();
    let sleeper = a.clone();
    let sleeping = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(30)").await });
    // Wait until A's sleep holds the only backend, then queue B behind it.
    let watcher = proxied.cluster.connect_primary().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "A's sleep starts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = tokio::spawn(async move { text(&b, "SELECT 'b answered'").await });
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let error = sleeping.await.unwrap().expect_err("A's query is cancelled");
    assert_eq!(error.code().map(|code| code.code()), Some("57014"));
    assert_eq!(waiting.await.unwrap(), "b answered", "B's query is not");
}

#[tokio::test]
async fn a_failed_copy_and_a_protocol_violation_leave_other_clients_results_intact() {
    let proxied = ProxiedCluster::start(0, SHARED).await;
    let a = proxied.connect().await;
    let b = proxied.connect().await;
    b.batch_execute("CREATE TABLE copy_victim (n int)")
        .await
        .unwrap();

    // A's COPY sends a row and then fails: nothing lands, B's reads are exact.
    let sink = a
        .copy_in::<_, Bytes>("COPY copy_victim FROM STDIN")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"1\n")).await.unwrap();
    drop(sink);
    assert_eq!(text(&b, "SELECT count(*) FROM copy_victim").await, "0");
    assert_eq!(text(&a, "SELECT 'a recovered'").await, "a recovered");

    // A raw client logs in and breaks the protocol: only it is told and closed.
    let mut raw = RawClient::log_in(proxied.port()).await;
    raw.send(b"!\0\0\0\x04").await;
    let message = raw.receive().await.expect("an ErrorResponse");
    assert_eq!(error_fields(&message).code, "08P01");
    assert!(raw.receive().await.is_none(), "the violator is closed");
    b.batch_execute("INSERT INTO copy_victim VALUES (7)")
        .await
        .unwrap();
    assert_eq!(text(&b, "SELECT sum(n) FROM copy_victim").await, "7");
    assert_eq!(text(&a, "SELECT count(*) FROM copy_victim").await, "1");
}

//! A batch whose reads are flushed before its write (issue 12): the reads may
//! run on a replica, but the write, after the Flush, runs on the primary, and
//! the client sees what a direct connection to the primary sends. Where each
//! statement ran is checked by `inet_server_port()`.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use std::time::Instant;

use bytes::BytesMut;
use pgrw_proxy::protocol::frontend::{self, Bind};
use proxy_cluster::ProxiedCluster;
use raw_client::{DEADLINE, RawClient, encode_unnamed_execute, error_fields, first_column};

/// What the proxy answered to one part of a batch.
#[derive(Debug, Default)]
struct Answer {
    tags: String,
    /// The first column of each DataRow.
    values: Vec<String>,
    /// The SQLSTATE of an ErrorResponse.
    error: Option<String>,
    /// The transaction status of a ReadyForQuery.
    status: Option<char>,
}

/// Reads messages up to and including one tagged `last`.
async fn answer_until(client: &mut RawClient, last: u8) -> Answer {
    let mut answer = Answer::default();
    loop {
        let message = client.receive().await.expect("the proxy answers");
        answer.tags.push(char::from(message.tag()));
        match message.tag() {
            b'D' => answer.values.extend(first_column(message.body())),
            b'E' => answer.error = Some(error_fields(&message).code),
            b'Z' => answer.status = message.body().first().copied().map(char::from),
            _ => {}
        }
        if message.tag() == last {
            return answer;
        }
    }
}

/// Sends `SELECT inet_server_port()` and a Flush; the node that answered.
async fn flushed_read(proxied: &ProxiedCluster, client: &mut RawClient) -> String {
    let mut out = BytesMut::new();
    encode_unnamed_execute(&mut out, b"SELECT inet_server_port()", true);
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    let answer = answer_until(client, b'C').await;
    assert_eq!(answer.tags, "12TDC", "the read is answered at the Flush");
    let port = answer.values.first().and_then(|port| port.parse().ok());
    proxied.node_at(port.expect("a port"))
}

/// Sends `write` (unnamed, described) and a Sync.
async fn write_and_sync(client: &mut RawClient, write: &[u8]) -> Answer {
    let mut out = BytesMut::new();
    encode_unnamed_execute(&mut out, write, true);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    answer_until(client, b'Z').await
}

/// A client whose next flushed read ran on a replica (reads go to the
/// primary until the replica has replayed the setup): that batch's read is
/// answered and still open when this returns.
async fn reading_on_a_replica(proxied: &ProxiedCluster) -> RawClient {
    let began = Instant::now();
    loop {
        let mut client = RawClient::log_in(proxied.port()).await;
        if flushed_read(proxied, &mut client).await != "primary" {
            return client;
        }
        assert!(began.elapsed() < DEADLINE, "no read reached a replica");
        let answer = write_and_sync(&mut client, b"SELECT 1").await;
        assert_eq!(answer.error, None);
    }
}

/// Appends a Bind of `statement` to `portal`, without parameters.
fn encode_plain_bind(out: &mut BytesMut, portal: &[u8], statement: &[u8]) {
    let parameters = frontend::bind_parameters(&[], &[], &[]);
    let bind = Bind {
        portal,
        statement,
        parameters: &parameters,
    };
    frontend::encode_bind(out, &bind);
}

async fn set_up(sql: &str) -> ProxiedCluster {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;
    client.query_value(sql).await;
    proxied
}

#[tokio::test]
async fn an_insert_flushed_after_a_read_on_a_replica_runs_on_the_primary() {
    let proxied = set_up("CREATE TABLE split_insert (port int)").await;
    let mut client = reading_on_a_replica(&proxied).await;
    let answer = write_and_sync(
        &mut client,
        b"INSERT INTO split_insert VALUES (inet_server_port()) RETURNING port",
    )
    .await;
    assert_eq!(answer.error, None, "a replica refused the write");
    assert_eq!(answer.tags, "12TDCZ", "no extra ReadyForQuery");
    let port = answer.values.first().and_then(|port| port.parse().ok());
    assert_eq!(proxied.node_at(port.expect("a port")), "primary");
}

#[tokio::test]
async fn nextval_flushed_after_a_read_on_a_replica_runs_on_the_primary() {
    let proxied = set_up("CREATE SEQUENCE split_seq").await;
    let mut client = reading_on_a_replica(&proxied).await;
    let answer = write_and_sync(
        &mut client,
        b"SELECT inet_server_port() FROM (SELECT nextval('split_seq')) AS s",
    )
    .await;
    assert_eq!(answer.error, None, "a replica refused nextval");
    assert_eq!(answer.tags, "12TDCZ");
    let port = answer.values.first().and_then(|port| port.parse().ok());
    assert_eq!(proxied.node_at(port.expect("a port")), "primary");
}

#[tokio::test]
async fn create_table_flushed_after_a_read_on_a_replica_runs_on_the_primary() {
    let proxied = set_up("SELECT 1").await;
    let mut client = reading_on_a_replica(&proxied).await;
    let answer = write_and_sync(&mut client, b"CREATE TABLE split_created (a int)").await;
    assert_eq!(answer.error, None, "a replica refused the DDL");
    assert_eq!(answer.tags, "12nCZ");
    let mut client = RawClient::log_in(proxied.port()).await;
    let found = client
        .query_value("SELECT count(*) FROM split_created /* pgrw:primary */")
        .await;
    assert_eq!(
        found.as_deref(),
        Some("0"),
        "the table exists on the primary"
    );
}

#[tokio::test]
async fn the_unnamed_statement_of_the_reads_follows_the_write_to_the_primary() {
    let proxied = set_up("CREATE TABLE split_unnamed (a int)").await;
    let mut client = reading_on_a_replica(&proxied).await;
    // The write is named; the reads' unnamed statement is bound again after it.
    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"w", b"INSERT INTO split_unnamed VALUES (1)", &[]);
    for statement in [&b"w"[..], b""] {
        encode_plain_bind(&mut out, b"", statement);
        frontend::encode_execute(&mut out, b"", 0);
    }
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    let answer = answer_until(&mut client, b'Z').await;
    assert_eq!(answer.error, None);
    assert_eq!(answer.tags, "12C2DCZ");
    let port = answer.values.first().and_then(|port| port.parse().ok());
    assert_eq!(proxied.node_at(port.expect("a port")), "primary");
}

#[tokio::test]
async fn inside_a_read_only_transaction_the_write_is_refused_as_postgresql_refuses_it() {
    let proxied = set_up("CREATE TABLE split_read_only (a int)").await;
    let mut client = RawClient::log_in(proxied.port()).await;
    client.query_value("BEGIN READ ONLY").await;
    flushed_read(&proxied, &mut client).await;
    let answer = write_and_sync(&mut client, b"INSERT INTO split_read_only VALUES (1)").await;
    assert_eq!(answer.error.as_deref(), Some("25006"));
    assert_eq!(answer.tags, "12nEZ");
    client.query_value("ROLLBACK").await;
}

#[tokio::test]
async fn a_portal_bound_before_the_flush_follows_the_write_to_the_primary() {
    let proxied = set_up("CREATE TABLE split_portal (port int)").await;
    let mut client = reading_on_a_replica(&proxied).await;
    // Still before the Flush: a portal bound on the replica, not run yet.
    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"", b"SELECT inet_server_port()", &[]);
    encode_plain_bind(&mut out, b"p", b"");
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(answer_until(&mut client, b'2').await.tags, "12");
    // After it: a write, then the portal.
    let mut out = BytesMut::new();
    frontend::encode_parse(
        &mut out,
        b"w",
        b"INSERT INTO split_portal VALUES (inet_server_port()) RETURNING port",
        &[],
    );
    encode_plain_bind(&mut out, b"", b"w");
    frontend::encode_execute(&mut out, b"", 0);
    frontend::encode_execute(&mut out, b"p", 0);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    let answer = answer_until(&mut client, b'Z').await;
    assert_eq!(answer.error, None, "a replica refused the write");
    assert_eq!(
        answer.tags, "12DCDCZ",
        "the portal's second Bind is not seen"
    );
    let nodes: Vec<String> = answer
        .values
        .iter()
        .map(|port| proxied.node_at(port.parse().expect("a port")))
        .collect();
    assert_eq!(nodes, ["primary", "primary"], "the write and the portal");
}

/// With `transaction_reads = "replica"`: a `BEGIN` the proxy answered, and
/// reads that ran on the replica's read-only transaction (its read leg).
#[tokio::test]
async fn in_a_deferred_transaction_a_write_flushed_after_its_reads_opens_it_on_the_primary() {
    let proxied = ProxiedCluster::start(
        1,
        "auth = \"trust\"\n[policy]\ntransaction_reads = \"replica\"\n",
    )
    .await;
    let mut client = RawClient::log_in(proxied.port()).await;
    client
        .query_value("CREATE TABLE split_deferred (port int)")
        .await;
    let began = Instant::now();
    loop {
        client.query_value("BEGIN").await;
        if flushed_read(&proxied, &mut client).await != "primary" {
            break;
        }
        // The replica had not replayed the CREATE yet: the read opened the
        // transaction on the primary. Again.
        assert!(began.elapsed() < DEADLINE, "no read reached a replica");
        assert_eq!(write_and_sync(&mut client, b"SELECT 1").await.error, None);
        client.query_value("ROLLBACK").await;
    }
    let answer = write_and_sync(
        &mut client,
        b"INSERT INTO split_deferred VALUES (inet_server_port()) RETURNING port",
    )
    .await;
    assert_eq!(answer.error, None, "the replica refused the write");
    assert_eq!(answer.tags, "12TDCZ", "no extra ReadyForQuery");
    assert_eq!(answer.status, Some('T'), "still in the transaction");
    let port = answer.values.first().and_then(|port| port.parse().ok());
    assert_eq!(proxied.node_at(port.expect("a port")), "primary");
    assert_eq!(
        client
            .query_value("SELECT count(*) FROM split_deferred")
            .await
            .as_deref(),
        Some("1"),
        "the transaction sees its write"
    );
    client.query_value("ROLLBACK").await;
    assert_eq!(
        client
            .query_value("SELECT count(*) FROM split_deferred /* pgrw:primary */")
            .await
            .as_deref(),
        Some("0"),
        "the write was in the client's transaction, rolled back"
    );
}

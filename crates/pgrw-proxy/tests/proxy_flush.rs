//! Extended-protocol batches that a client flushes before its Sync (as
//! asyncpg and JDBC do): the answers come at the Flush, and the rest of the
//! batch runs on the same backend.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use bytes::BytesMut;
use pgrw_proxy::protocol::frontend::{self, Bind, Target};
use proxy_cluster::ProxiedCluster;
use raw_client::{RawClient, encode_unnamed_execute};

#[tokio::test]
async fn a_flushed_parse_and_describe_are_answered_before_the_sync() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;

    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"s1", b"SELECT $1::int + 1", &[]);
    frontend::encode_describe(&mut out, Target::Statement, b"s1");
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'T').await, "1tT");

    let parameters = frontend::bind_parameters(&[0], &[Some(b"41")], &[0]);
    let mut out = BytesMut::new();
    frontend::encode_bind(
        &mut out,
        &Bind {
            portal: b"",
            statement: b"s1",
            parameters: &parameters,
        },
    );
    frontend::encode_execute(&mut out, b"", 0);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    let (tags, _, value) = answer(&mut client).await;
    assert_eq!(tags, "2DCZ");
    assert_eq!(value.as_deref(), Some("42"));
}

#[tokio::test]
async fn an_error_before_a_flush_skips_the_batch_until_sync() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;

    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"bad", b"SELEC nonsense", &[]);
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'E').await, "E");

    let mut out = BytesMut::new();
    frontend::encode_describe(&mut out, Target::Statement, b"bad");
    frontend::encode_sync(&mut out);
    frontend::encode_query(&mut out, b"SELECT 1");
    client.send(&out).await;
    assert_eq!(client.tags_until(b'Z').await, "Z", "skipped to Sync");
    assert_eq!(client.tags_until(b'Z').await, "TDCZ", "the session goes on");
}

/// Parse, Bind, Describe and Execute of `sql` (unnamed), as psycopg's pipeline mode sends.
fn execute(out: &mut BytesMut, sql: &[u8]) {
    encode_unnamed_execute(out, sql, true);
}

#[tokio::test]
async fn statements_flushed_after_an_error_are_skipped_until_sync_as_postgresql_does() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;

    let mut out = BytesMut::new();
    execute(&mut out, b"SELECT 1");
    execute(&mut out, b"SELECT * FROM does_not_exist");
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'E').await, "12TDCE");

    // More statements and a Flush: the node skips them, answering nothing.
    let mut out = BytesMut::new();
    execute(&mut out, b"SELECT 'aborted'");
    frontend::encode_flush(&mut out);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'Z').await, "Z", "skipped to Sync");

    let mut out = BytesMut::new();
    execute(&mut out, b"SELECT 2");
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    assert_eq!(
        client.tags_until(b'Z').await,
        "12TDCZ",
        "the session goes on"
    );
}

/// The tags of the messages up to ReadyForQuery, its status, and the first
/// column of the first DataRow.
async fn answer(client: &mut RawClient) -> (String, u8, Option<String>) {
    let mut tags = String::new();
    let mut value = None;
    loop {
        let message = client.receive().await.expect("the proxy answers");
        tags.push(char::from(message.tag()));
        match message.tag() {
            b'D' if value.is_none() => value = raw_client::first_column(message.body()),
            b'Z' => return (tags, message.body()[0], value),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_query_after_a_flushed_prepare_runs_the_transaction_where_it_began() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;

    // asyncpg prepares so: Parse, Describe, Flush, and no Sync (a read: a replica).
    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"s1", b"SELECT inet_server_port()", &[]);
    frontend::encode_describe(&mut out, Target::Statement, b"s1");
    frontend::encode_flush(&mut out);
    client.send(&out).await;
    assert_eq!(client.tags_until(b'T').await, "1tT");

    // Then BEGIN as a Query, which ends the prepare's implicit transaction.
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"BEGIN");
    client.send(&out).await;
    assert_eq!(answer(&mut client).await, ("CZ".to_owned(), b'T', None));

    // A cursor's Bind and Sync, then its Execute: inside the transaction.
    let parameters = frontend::bind_parameters(&[], &[], &[]);
    let bind = Bind {
        portal: b"c1",
        statement: b"s1",
        parameters: &parameters,
    };
    let mut out = BytesMut::new();
    frontend::encode_bind(&mut out, &bind);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    assert_eq!(
        answer(&mut client).await,
        ("2Z".to_owned(), b'T', None),
        "the client is told it is in its transaction"
    );
    let mut out = BytesMut::new();
    frontend::encode_execute(&mut out, b"c1", 0);
    frontend::encode_sync(&mut out);
    client.send(&out).await;
    let (tags, status, port) = answer(&mut client).await;
    assert_eq!((tags.as_str(), status), ("DCZ", b'T'));
    let port: i32 = port.expect("a row").parse().expect("a port");
    assert_eq!(proxied.node_at(port), "primary", "the transaction's node");

    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"ROLLBACK");
    client.send(&out).await;
    assert_eq!(answer(&mut client).await, ("CZ".to_owned(), b'I', None));
}

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
    let mut tags = String::new();
    let mut value = None;
    loop {
        let message = client.receive().await.expect("the proxy answers");
        tags.push(char::from(message.tag()));
        if message.tag() == b'D' {
            value = Some(message.body()[6..].to_vec());
        }
        if message.tag() == b'Z' {
            break;
        }
    }
    assert_eq!(tags, "2DCZ");
    assert_eq!(value.as_deref(), Some(&b"42"[..]));
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

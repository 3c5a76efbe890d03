//! COPY FROM STDIN whose data arrives together with the statement, as asyncpg
//! sends it (PostgreSQL does not require a client to wait for
//! CopyInResponse): every byte sequence here is also sent to the primary
//! directly, and the proxy must answer it message for message as the node does.

#[allow(dead_code)]
#[path = "support/node_connection.rs"]
mod node_connection;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use node_connection::NodeConnection;
use pgrw_cluster::testing::TEST_PASSWORD;
use pgrw_proxy::protocol::Message;
use pgrw_proxy::protocol::backend::{BackendMessage, TransactionStatus};
use pgrw_proxy::protocol::frontend::{self, Bind};
use proxy_cluster::ProxiedCluster;

/// A client logged in (SCRAM) at `port`: the proxy or a node.
async fn logged_in(port: u16) -> NodeConnection {
    let mut connection = NodeConnection::connect(port).await;
    connection
        .login_with_scram("postgres", TEST_PASSWORD)
        .await
        .unwrap_or_else(|error| panic!("logging in at port {port}: {error:?}"));
    connection
}

/// Sends `bytes` in one write and reads the answers up to the
/// `ready_count`-th ReadyForQuery (each read fails after a deadline).
async fn answers(
    connection: &mut NodeConnection,
    bytes: &[u8],
    ready_count: usize,
) -> Vec<Message> {
    connection.send(bytes).await;
    let mut messages = Vec::new();
    for _ in 0..ready_count {
        messages.extend(connection.receive_until_ready().await);
    }
    messages
}

fn tags(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|message| char::from(message.tag()))
        .collect()
}

/// The CommandComplete tags, in order.
fn command_tags(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| match BackendMessage::decode(message.view()) {
            Ok(BackendMessage::CommandComplete { tag }) => {
                Some(String::from_utf8_lossy(tag).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// The transaction status of the last ReadyForQuery.
fn last_status(messages: &[Message]) -> Option<TransactionStatus> {
    messages
        .iter()
        .rev()
        .find_map(|message| match BackendMessage::decode(message.view()) {
            Ok(BackendMessage::ReadyForQuery(status)) => Some(status),
            _ => None,
        })
}

/// A cluster and a table `numbers(n int)` created on the primary.
async fn cluster_with_numbers_table() -> ProxiedCluster {
    let proxied = ProxiedCluster::start(0, "").await;
    proxied
        .cluster
        .connect_primary()
        .await
        .batch_execute("CREATE TABLE numbers (n int)")
        .await
        .expect("creating the table");
    proxied
}

async fn numbers_on_primary(proxied: &ProxiedCluster) -> Vec<i32> {
    let rows = proxied
        .cluster
        .connect_primary()
        .await
        .query("SELECT n FROM numbers ORDER BY n", &[])
        .await
        .expect("reading the table");
    rows.iter().map(|row| row.get(0)).collect()
}

fn simple_copy(data: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"COPY numbers FROM STDIN");
    frontend::encode_copy_data(&mut out, data);
    frontend::encode_copy_done(&mut out);
    out
}

/// Parse/Bind/Execute/Sync of the COPY, its data, CopyDone and the Sync a
/// client sends after it (libpq and tokio-postgres do this).
fn extended_copy(data: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"", b"COPY numbers FROM STDIN", &[]);
    let parameters = frontend::bind_parameters(&[], &[], &[]);
    frontend::encode_bind(
        &mut out,
        &Bind {
            portal: b"",
            statement: b"",
            parameters: &parameters,
        },
    );
    frontend::encode_execute(&mut out, b"", 0);
    frontend::encode_sync(&mut out);
    frontend::encode_copy_data(&mut out, data);
    frontend::encode_copy_done(&mut out);
    frontend::encode_sync(&mut out);
    out
}

#[tokio::test]
async fn a_copy_whose_data_comes_in_the_same_write_as_the_query_completes() {
    let proxied = cluster_with_numbers_table().await;
    let mut client = logged_in(proxied.port()).await;

    let answered = answers(&mut client, &simple_copy(b"1\n2\n3\n"), 1).await;

    assert_eq!(tags(&answered), "GCZ");
    assert_eq!(command_tags(&answered), ["COPY 3"]);
    assert_eq!(numbers_on_primary(&proxied).await, [1, 2, 3]);
}

#[tokio::test]
async fn an_extended_copy_sent_whole_in_one_write_is_answered_as_the_node_answers() {
    let proxied = cluster_with_numbers_table().await;
    let mut client = logged_in(proxied.port()).await;
    let mut node = logged_in(proxied.cluster.port("primary")).await;
    let bytes = extended_copy(b"4\n5\n");

    let direct = answers(&mut node, &bytes, 1).await;
    let through_proxy = answers(&mut client, &bytes, 1).await;

    // The node ignores the Sync it reads during the copy: one ReadyForQuery.
    assert_eq!(tags(&direct), "12GCZ");
    assert_eq!(tags(&through_proxy), tags(&direct));
    assert_eq!(command_tags(&through_proxy), ["COPY 2"]);
    assert_eq!(last_status(&through_proxy), Some(TransactionStatus::Idle));
    assert_eq!(numbers_on_primary(&proxied).await, [4, 4, 5, 5]);
}

#[tokio::test]
async fn a_copy_failing_on_data_sent_with_it_is_answered_as_the_node_answers_and_the_session_goes_on()
 {
    let proxied = cluster_with_numbers_table().await;
    let mut client = logged_in(proxied.port()).await;
    let mut node = logged_in(proxied.cluster.port("primary")).await;
    let mut bytes = simple_copy(b"1\nnot a number\n");
    frontend::encode_query(&mut bytes, b"SELECT 1");

    let direct = answers(&mut node, &bytes, 2).await;
    let through_proxy = answers(&mut client, &bytes, 2).await;

    assert_eq!(tags(&direct), "GEZTDCZ");
    assert_eq!(tags(&through_proxy), tags(&direct));
    assert_eq!(numbers_on_primary(&proxied).await, Vec::<i32>::new());
}

#[tokio::test]
async fn an_extended_copy_failing_on_its_data_is_answered_as_the_node_answers() {
    let proxied = cluster_with_numbers_table().await;
    let mut client = logged_in(proxied.port()).await;
    let mut node = logged_in(proxied.cluster.port("primary")).await;
    let mut bytes = extended_copy(b"not a number\n");
    frontend::encode_query(&mut bytes, b"SELECT 1");

    let direct = answers(&mut node, &bytes, 2).await;
    let through_proxy = answers(&mut client, &bytes, 2).await;

    // The error skips to the client's Sync; the Sync read during the copy is ignored.
    assert_eq!(tags(&direct), "12GEZTDCZ");
    assert_eq!(tags(&through_proxy), tags(&direct));
    assert_eq!(last_status(&through_proxy), Some(TransactionStatus::Idle));
}

#[tokio::test]
async fn a_query_sent_in_the_same_write_after_a_copy_sees_its_rows() {
    let proxied = cluster_with_numbers_table().await;
    let mut client = logged_in(proxied.port()).await;
    let mut bytes = simple_copy(b"7\n8\n");
    frontend::encode_query(&mut bytes, b"SELECT count(*) FROM numbers");

    let answered = answers(&mut client, &bytes, 2).await;

    assert_eq!(tags(&answered), "GCZTDCZ");
    let row = answered
        .iter()
        .find(|message| message.tag() == b'D')
        .expect("a DataRow");
    assert_eq!(
        node_connection::first_column(row.body()).as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn a_tokio_postgres_copy_in_that_waits_for_the_copy_to_start_completes() {
    let proxied = cluster_with_numbers_table().await;
    let client = proxied.connect().await;

    // Bind/Execute/Sync, then (after CopyInResponse) CopyData, CopyDone, Sync.
    let sink = client
        .copy_in::<_, Bytes>("COPY numbers FROM STDIN")
        .await
        .expect("the copy starts");
    let mut sink = std::pin::pin!(sink);
    sink.send(Bytes::from_static(b"10\n11\n")).await.unwrap();
    let copied = tokio::time::timeout(std::time::Duration::from_secs(10), sink.finish())
        .await
        .expect("the copy completes within the deadline")
        .expect("the copy succeeds");

    assert_eq!(copied, 2);
    assert_eq!(numbers_on_primary(&proxied).await, [10, 11]);
}

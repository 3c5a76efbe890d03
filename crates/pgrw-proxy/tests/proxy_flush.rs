//! Extended-protocol batches that a client flushes before its Sync (as
//! asyncpg and JDBC do): the answers come at the Flush, and the rest of the
//! batch runs on the same backend.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use bytes::BytesMut;
use pgrw_proxy::protocol::frontend::{self, Bind, Target};
use pgrw_proxy::protocol::{FrameLimits, Message};
use proxy_cluster::ProxiedCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw protocol client logged in with trust authentication.
struct RawClient {
    stream: TcpStream,
    buffer: BytesMut,
}

impl RawClient {
    async fn log_in(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = RawClient {
            stream,
            buffer: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        frontend::encode_startup_3_0(&mut out, &[("user", "postgres"), ("database", "postgres")]);
        client.send(&out).await;
        client.tags_until(b'Z').await;
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn receive(&mut self) -> Message {
        loop {
            if let Some(message) =
                Message::split_from(&mut self.buffer, &FrameLimits::default()).unwrap()
            {
                return message;
            }
            let read = tokio::time::timeout(
                Duration::from_secs(10),
                self.stream.read_buf(&mut self.buffer),
            )
            .await
            .expect("the proxy answers")
            .unwrap();
            assert_ne!(read, 0, "the proxy closed the connection");
        }
    }

    /// The tags of the messages up to and including one tagged `last`.
    async fn tags_until(&mut self, last: u8) -> String {
        let mut tags = String::new();
        loop {
            let message = self.receive().await;
            tags.push(char::from(message.tag()));
            if message.tag() == last {
                return tags;
            }
        }
    }
}

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
        let message = client.receive().await;
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

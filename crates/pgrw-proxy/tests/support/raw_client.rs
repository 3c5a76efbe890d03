//! A raw protocol client for tests that check exact message sequences:
//! logs in with trust authentication, sends bytes, reads whole messages.

#![allow(dead_code)]

use std::time::Duration;

use bytes::BytesMut;
use pgrw_proxy::protocol::backend::{BackendMessage, NoticeFields};
use pgrw_proxy::protocol::frontend;
use pgrw_proxy::protocol::{FrameLimits, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long anything asynchronous may take to arrive.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A raw protocol client logged in with trust authentication.
pub struct RawClient {
    /// The socket, for writing raw bytes.
    pub stream: TcpStream,
    buffer: BytesMut,
}

impl RawClient {
    /// Logs in as `postgres` to database `postgres` (trust).
    pub async fn log_in(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = RawClient {
            stream,
            buffer: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        frontend::encode_startup_3_0(&mut out, &[("user", "postgres"), ("database", "postgres")]);
        client.stream.write_all(&out).await.unwrap();
        while client.receive().await.expect("logged in").tag() != b'Z' {}
        client
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The tags of the messages up to and including one tagged `last`.
    pub async fn tags_until(&mut self, last: u8) -> String {
        let mut tags = String::new();
        loop {
            let message = self.receive().await.expect("the proxy answers");
            tags.push(char::from(message.tag()));
            if message.tag() == last {
                return tags;
            }
        }
    }

    /// The next message; `None` when the proxy closed the connection.
    pub async fn receive(&mut self) -> Option<Message> {
        loop {
            if let Some(message) =
                Message::split_from(&mut self.buffer, &FrameLimits::default()).unwrap()
            {
                return Some(message);
            }
            let read = tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buffer))
                .await
                .expect("the proxy speaks or closes within the deadline")
                .unwrap();
            if read == 0 {
                return None;
            }
        }
    }

    /// Runs `sql` and returns the first column of its first row.
    pub async fn query_value(&mut self, sql: &str) -> Option<String> {
        let mut out = BytesMut::new();
        frontend::encode_query(&mut out, sql.as_bytes());
        self.stream.write_all(&out).await.unwrap();
        let mut value = None;
        loop {
            let message = self.receive().await.expect("an answer");
            match message.tag() {
                b'D' if value.is_none() => value = first_column(message.body()),
                b'E' => panic!("{sql} failed: {:?}", error_fields(&message)),
                b'Z' => return value,
                _ => {}
            }
        }
    }
}

/// Parse, Bind, (with `describe`, Describe of the portal) and Execute of
/// `sql` as the unnamed statement and portal, with no parameters.
pub fn encode_unnamed_execute(out: &mut BytesMut, sql: &[u8], describe: bool) {
    frontend::encode_parse(out, b"", sql, &[]);
    let parameters = frontend::bind_parameters(&[], &[], &[]);
    frontend::encode_bind(
        out,
        &frontend::Bind {
            portal: b"",
            statement: b"",
            parameters: &parameters,
        },
    );
    if describe {
        frontend::encode_describe(out, frontend::Target::Portal, b"");
    }
    frontend::encode_execute(out, b"", 0);
}

/// The first column of a DataRow as text.
pub fn first_column(body: &[u8]) -> Option<String> {
    let length = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let value = body.get(6..6 + usize::try_from(length).ok()?)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// The fields of an ErrorResponse.
pub fn error_fields(message: &Message) -> NoticeFields {
    match BackendMessage::decode(message.view()) {
        Ok(BackendMessage::ErrorResponse(fields)) => fields,
        other => panic!("expected an ErrorResponse, got {other:?}"),
    }
}

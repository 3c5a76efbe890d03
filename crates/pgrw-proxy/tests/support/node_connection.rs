//! A minimal tokio driver for the sans-I/O protocol layer, for tests against a
//! real PostgreSQL: a TCP stream, a read buffer, the frame splitter, and a
//! SCRAM client login.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use bytes::BytesMut;
use pgrw_proxy::auth::scram::{self, ScramClient, ScramClientFinal};
use pgrw_proxy::protocol::backend::{
    Authentication, BackendMessage, NoticeFields, TransactionStatus,
};
use pgrw_proxy::protocol::frontend;
use pgrw_proxy::protocol::{FrameLimits, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One connection to a node, speaking through `pgrw_proxy::protocol`.
pub struct NodeConnection {
    stream: TcpStream,
    read_buffer: BytesMut,
}

/// What a successful login showed.
#[derive(Debug)]
pub struct LoggedIn {
    /// Whether AuthenticationOk arrived.
    pub authentication_ok: bool,
    /// ParameterStatus messages, in order.
    pub parameters: Vec<(String, String)>,
    /// BackendKeyData's process id, if it arrived.
    pub process_id: Option<i32>,
    /// The status of the first ReadyForQuery.
    pub status: TransactionStatus,
}

impl NodeConnection {
    /// Connects to 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> NodeConnection {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|error| panic!("connecting to 127.0.0.1:{port}: {error}"));
        NodeConnection {
            stream,
            read_buffer: BytesMut::with_capacity(8192),
        }
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("writing to the node");
    }

    /// The next whole message, reading from the socket as needed.
    pub async fn receive(&mut self) -> Message {
        loop {
            if let Some(message) =
                Message::split_from(&mut self.read_buffer, &FrameLimits::default())
                    .expect("the node sends well-framed messages")
            {
                return message;
            }
            let read =
                tokio::time::timeout(READ_TIMEOUT, self.stream.read_buf(&mut self.read_buffer))
                    .await
                    .expect("the node answers within the timeout")
                    .expect("reading from the node");
            assert_ne!(read, 0, "the node closed the connection mid-conversation");
        }
    }

    /// Messages up to and including the next ReadyForQuery.
    pub async fn receive_until_ready(&mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        loop {
            let message = self.receive().await;
            let done = message.tag() == b'Z';
            messages.push(message);
            if done {
                return messages;
            }
        }
    }

    /// Logs in as `user` to database `postgres` with SCRAM-SHA-256; the node's
    /// ErrorResponse when it refuses.
    pub async fn login_with_scram(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<LoggedIn, NoticeFields> {
        let mut out = BytesMut::new();
        frontend::encode_startup_3_0(&mut out, &[("user", user), ("database", "postgres")]);
        self.send(&out).await;

        let mut logged_in = LoggedIn {
            authentication_ok: false,
            parameters: Vec::new(),
            process_id: None,
            status: TransactionStatus::Failed,
        };
        let mut scram_start = None;
        let mut scram_final: Option<ScramClientFinal> = None;
        loop {
            let message = self.receive().await;
            let mut out = BytesMut::new();
            match BackendMessage::decode(message.view()).expect("a well-formed backend message") {
                BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
                    assert!(mechanisms.contains(&scram::MECHANISM), "{mechanisms:?}");
                    let client = ScramClient::new(password.as_bytes(), &random_nonce()).unwrap();
                    let first = client.client_first_message();
                    frontend::encode_sasl_initial_response(
                        &mut out,
                        scram::MECHANISM,
                        first.as_bytes(),
                    );
                    scram_start = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslContinue { data }) => {
                    let client = scram_start.take().expect("SASLContinue after SASL");
                    let client = client
                        .receive_server_first(data)
                        .expect("a valid server-first-message");
                    frontend::encode_sasl_response(
                        &mut out,
                        client.client_final_message().as_bytes(),
                    );
                    scram_final = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslFinal { data }) => {
                    let client = scram_final.take().expect("SASLFinal after SASLContinue");
                    client
                        .receive_server_final(data)
                        .expect("the node proves it knows the password");
                }
                BackendMessage::Authentication(Authentication::Ok) => {
                    logged_in.authentication_ok = true
                }
                BackendMessage::Authentication(other) => {
                    panic!("unexpected authentication request {other:?}")
                }
                BackendMessage::ParameterStatus { name, value } => logged_in.parameters.push((
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )),
                BackendMessage::BackendKeyData { process_id, .. } => {
                    logged_in.process_id = Some(process_id)
                }
                BackendMessage::ReadyForQuery(status) => {
                    logged_in.status = status;
                    return Ok(logged_in);
                }
                BackendMessage::ErrorResponse(fields) => return Err(fields),
                BackendMessage::NoticeResponse(_) => {}
                other => panic!("unexpected message during login: {other:?}"),
            }
            if !out.is_empty() {
                self.send(&out).await;
            }
        }
    }

    /// Connects to 127.0.0.1:`port` (a node, or the proxy) and logs in as
    /// `user` with SCRAM-SHA-256, which must succeed.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub async fn logged_in(port: u16, user: &str, password: &str) -> NodeConnection {
        let mut connection = NodeConnection::connect(port).await;
        connection
            .login_with_scram(user, password)
            .await
            .expect("the login succeeds");
        connection
    }

    /// Runs `sql` with the simple protocol and returns the first column of every
    /// row as text (`None` for NULL), panicking on an ErrorResponse.
    pub async fn query_first_column(&mut self, sql: &str) -> Vec<Option<String>> {
        let mut out = BytesMut::new();
        frontend::encode_query(&mut out, sql.as_bytes());
        self.send(&out).await;
        let mut values = Vec::new();
        for message in self.receive_until_ready().await {
            match message.tag() {
                b'D' => values.push(first_column(message.body())),
                b'E' => panic!("{sql}: {:?}", BackendMessage::decode(message.view())),
                _ => {}
            }
        }
        values
    }
}

/// The first column of a DataRow body: i16 column count, then i32 length + bytes.
pub fn first_column(body: &[u8]) -> Option<String> {
    let length = i32::from_be_bytes(body[2..6].try_into().unwrap());
    let length = usize::try_from(length).ok()?;
    Some(String::from_utf8_lossy(&body[6..6 + length]).into_owned())
}

/// A fresh nonce; the protocol layer takes randomness from its driver.
pub fn random_nonce() -> String {
    let random: Vec<u8> = (0..3u64)
        .flat_map(|index| RandomState::new().hash_one(index).to_be_bytes())
        .take(18)
        .collect();
    scram::nonce_from_random(&random)
}

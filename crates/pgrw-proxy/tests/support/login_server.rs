//! A one-connection PostgreSQL server built from the protocol layer's server
//! side, so real clients (tokio-postgres, psql) can log in to it: startup,
//! SSLRequest refused, SCRAM-SHA-256 or md5 against a [`StoredPassword`], then
//! `CommandComplete` for every simple query until Terminate.

use std::time::Duration;

use bytes::BytesMut;
use pgrw_proxy::auth::StoredPassword;
use pgrw_proxy::auth::scram::{self, ScramServer};
use pgrw_proxy::protocol::backend::{self, NoticeFields, Severity, TransactionStatus};
use pgrw_proxy::protocol::frontend::{FrontendMessage, StartupRequest};
use pgrw_proxy::protocol::{FrameLimits, Message, StartupPacket, sqlstate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(20);

/// How the server asks for the password.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    /// SCRAM-SHA-256.
    Scram,
    /// md5.
    Md5,
}

/// How a login ended, from the server's side.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in; these simple queries were received before Terminate.
    LoggedIn {
        /// The user the client named.
        user: String,
        /// Query texts, in order.
        queries: Vec<String>,
    },
    /// The password check failed and ErrorResponse 28P01 was sent.
    Refused,
}

/// A listener on a free loopback port.
pub async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Serves one client connection with `password` as the only user's secret.
pub async fn serve_one(listener: TcpListener, method: Method, password: StoredPassword) -> Verdict {
    let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
        .await
        .expect("a client connects")
        .expect("accepting");
    let mut connection = ClientConnection {
        stream,
        read_buffer: BytesMut::new(),
    };
    let user = connection.startup().await;
    let mut out = BytesMut::new();
    let accepted = match method {
        Method::Scram => connection.scram(&password).await,
        Method::Md5 => connection.md5(&user, &password).await,
    };
    if !accepted {
        let fields = NoticeFields::new(
            Severity::Fatal,
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        );
        backend::encode_error_response(&mut out, &fields);
        connection.send(&out).await;
        return Verdict::Refused;
    }
    backend::encode_authentication_ok(&mut out);
    for (name, value) in [
        ("server_version", "15.0"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("standard_conforming_strings", "on"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
    ] {
        backend::encode_parameter_status(&mut out, name.as_bytes(), value.as_bytes());
    }
    backend::encode_backend_key_data(&mut out, 4242, &[1, 2, 3, 4]);
    backend::encode_ready_for_query(&mut out, TransactionStatus::Idle);
    connection.send(&out).await;

    let mut queries = Vec::new();
    loop {
        let message = connection.receive().await;
        match FrontendMessage::decode(message.view()).expect("a well-formed message") {
            FrontendMessage::Query { sql } => {
                queries.push(String::from_utf8_lossy(sql).into_owned());
                let mut out = BytesMut::new();
                backend::encode_command_complete(&mut out, b"SET");
                backend::encode_ready_for_query(&mut out, TransactionStatus::Idle);
                connection.send(&out).await;
            }
            FrontendMessage::Terminate => return Verdict::LoggedIn { user, queries },
            other => panic!("unexpected message {other:?}"),
        }
    }
}

struct ClientConnection {
    stream: TcpStream,
    read_buffer: BytesMut,
}

impl ClientConnection {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("writing to the client");
    }

    async fn fill(&mut self) {
        let read = tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.read_buffer))
            .await
            .expect("the client sends within the timeout")
            .expect("reading from the client");
        assert_ne!(read, 0, "the client closed the connection");
    }

    async fn receive(&mut self) -> Message {
        loop {
            if let Some(message) =
                Message::split_from(&mut self.read_buffer, &FrameLimits::default()).unwrap()
            {
                return message;
            }
            self.fill().await;
        }
    }

    /// Answers SSLRequest with `N` until a StartupMessage arrives; its user.
    async fn startup(&mut self) -> String {
        loop {
            let Some(packet) =
                StartupPacket::split_from(&mut self.read_buffer, &FrameLimits::default()).unwrap()
            else {
                self.fill().await;
                continue;
            };
            match StartupRequest::decode(&packet).expect("a well-formed startup packet") {
                StartupRequest::SslRequest | StartupRequest::GssEncRequest => self.send(b"N").await,
                StartupRequest::Startup(startup) => {
                    return startup.user().expect("a user").to_string();
                }
                StartupRequest::Cancel(_) => panic!("unexpected CancelRequest"),
            }
        }
    }

    async fn authentication_response(&mut self) -> Message {
        let message = self.receive().await;
        assert_eq!(message.tag(), b'p', "an authentication response");
        message
    }

    async fn scram(&mut self, password: &StoredPassword) -> bool {
        let verifier = password
            .scram_verifier(b"fixed test salt!", scram::DEFAULT_ITERATIONS)
            .expect("a secret SCRAM can use");
        let mut out = BytesMut::new();
        backend::encode_authentication_sasl(&mut out, &[scram::MECHANISM]);
        self.send(&out).await;

        let initial = self.authentication_response().await;
        let FrontendMessage::AuthenticationResponse(initial) =
            FrontendMessage::decode(initial.view()).unwrap()
        else {
            unreachable!()
        };
        let initial = initial.sasl_initial().expect("a SASLInitialResponse");
        assert_eq!(initial.mechanism, scram::MECHANISM);
        let challenge = ScramServer::new(verifier)
            .receive_client_first(
                initial.data.expect("client-first data"),
                "server-nonce-for-tests",
            )
            .expect("a valid client-first-message");
        let mut out = BytesMut::new();
        backend::encode_authentication_sasl_continue(
            &mut out,
            challenge.server_first_message().as_bytes(),
        );
        self.send(&out).await;

        let last = self.authentication_response().await;
        let FrontendMessage::AuthenticationResponse(last) =
            FrontendMessage::decode(last.view()).unwrap()
        else {
            unreachable!()
        };
        match challenge.receive_client_final(last.sasl()) {
            Ok(server_final) => {
                let mut out = BytesMut::new();
                backend::encode_authentication_sasl_final(&mut out, server_final.as_bytes());
                self.send(&out).await;
                true
            }
            Err(error) => {
                assert_eq!(error.sqlstate(), sqlstate::INVALID_PASSWORD, "{error}");
                false
            }
        }
    }

    async fn md5(&mut self, user: &str, password: &StoredPassword) -> bool {
        let salt = [0x0f, 0xf1, 0xce, 0x00];
        let mut out = BytesMut::new();
        backend::encode_authentication_md5_password(&mut out, salt);
        self.send(&out).await;
        let answer = self.authentication_response().await;
        let FrontendMessage::AuthenticationResponse(answer) =
            FrontendMessage::decode(answer.view()).unwrap()
        else {
            unreachable!()
        };
        password.verify_md5(
            user.as_bytes(),
            salt,
            answer.password().expect("a PasswordMessage"),
        )
    }
}

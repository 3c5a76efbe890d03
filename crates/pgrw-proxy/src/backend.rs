//! One connection from the proxy to a node: connect, log in (SCRAM-SHA-256,
//! md5 or cleartext, whichever the node asks for), then exchange whole
//! messages as bytes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use pgrw_core::Lsn;
use pgrw_monitor::NodeTlsClient;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::md5;
use crate::auth::scram::{self, ScramClient, ScramClientFinal};
use crate::cancel::CancelTarget;
use crate::node_stream::NodeStream;
use crate::protocol::backend::{Authentication, BackendMessage, TransactionStatus};
use crate::protocol::frontend;
use crate::protocol::{FrameLimits, Message, ProtocolError};

/// Where and as whom to log in to a node.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendLogin {
    /// The node's name, for errors.
    pub node_name: String,
    /// Host name, IP address, or Unix socket directory (starting with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Database.
    pub database: String,
    /// TLS to the node (`sslmode`), its CA file already read.
    pub tls: NodeTlsClient,
}

/// Why a node connection failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The TCP connection or a read or write failed.
    #[error("node {node}: {source}")]
    Io {
        /// The node.
        node: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node closed the connection.
    #[error("node {node} closed the connection")]
    Closed {
        /// The node.
        node: String,
    },
    /// The node refused the login or failed a query the proxy runs itself.
    #[error("node {node}: {message} (SQLSTATE {code})")]
    Refused {
        /// The node.
        node: String,
        /// Its SQLSTATE.
        code: String,
        /// Its message.
        message: String,
    },
    /// The node sent nothing while a statement ran, and did not answer a new
    /// connection either: it hangs, and the proxy gave up on it.
    #[error(
        "node {node} sent nothing for {millis} ms and did not answer a new connection either \
         (pool.stall_timeout_ms): pgrw cancelled the statement and closed its connection; \
         a write in it may or may not have committed"
    )]
    Hung {
        /// The node.
        node: String,
        /// The stall timeout.
        millis: u64,
    },
    /// The node ended the connection with a FATAL (or PANIC) mid-statement:
    /// `pg_terminate_backend`, a shutdown, a crash of another backend.
    #[error("node {node} ended the connection mid-statement: {message} (SQLSTATE {code})")]
    Ended {
        /// The node.
        node: String,
        /// Its SQLSTATE.
        code: String,
        /// Its message.
        message: String,
    },
    /// The node sent bytes the proxy cannot understand, or the login went wrong.
    #[error("node {node}: {message}")]
    Protocol {
        /// The node.
        node: String,
        /// What went wrong.
        message: String,
    },
}

/// A logged-in connection to one node, idle or in use.
pub struct BackendConnection {
    stream: NodeStream,
    read_buffer: BytesMut,
    node_name: String,
    /// The node's `ParameterStatus` values at login.
    pub parameters: Vec<(String, String)>,
    /// Where a CancelRequest for this connection goes: the node's address
    /// and its BackendKeyData.
    pub cancel_target: Arc<CancelTarget>,
    /// The backend-side names of the statements prepared on this connection.
    pub prepared: HashSet<String>,
    /// The transaction status of the last ReadyForQuery.
    pub status: TransactionStatus,
    /// When it was opened.
    pub opened_at: Instant,
    /// When it was last given back to its pool.
    pub idle_since: Instant,
    /// Whether it ran something that changed its session state beyond
    /// settings (LISTEN, temp tables, DISCARD, …): such a connection is closed
    /// rather than reused by another client.
    pub tainted: bool,
    /// Whether it ran `SET`, `RESET` or `set_config`: it goes back to the
    /// pool only after `RESET ALL`.
    pub has_settings: bool,
    /// How many of its current client's recorded settings it has run (see
    /// `session::settings`); 0 for a connection fresh from the pool.
    pub settings_applied: usize,
    /// The startup settings (a client's StartupMessage parameters, as one
    /// statement) it carries over its login defaults. Unlike a client's
    /// `SET`s they stay when it goes back to the pool, as pgbouncer keeps
    /// its server parameters: the next client with the same startup settings
    /// (every pgbench or JDBC connection of an application) pays nothing,
    /// another one a reset first. `None`: the login defaults.
    pub baseline: Option<bytes::Bytes>,
}

impl BackendConnection {
    /// Connects to the node and logs in.
    pub async fn connect(login: &BackendLogin) -> Result<BackendConnection, BackendError> {
        let node = login.node_name.clone();
        let io = |source| BackendError::Io {
            node: node.clone(),
            source,
        };
        let stream = NodeStream::connect(&login.host, login.port, &login.tls)
            .await
            .map_err(io)?;
        let now = Instant::now();
        let mut connection = BackendConnection {
            stream,
            read_buffer: BytesMut::with_capacity(16 * 1024),
            node_name: login.node_name.clone(),
            parameters: Vec::new(),
            cancel_target: Arc::new(CancelTarget {
                host: login.host.clone(),
                port: login.port,
                process_id: 0,
                secret_key: Vec::new(),
            }),
            prepared: HashSet::new(),
            status: TransactionStatus::Idle,
            opened_at: now,
            idle_since: now,
            tainted: false,
            has_settings: false,
            settings_applied: 0,
            baseline: None,
        };
        connection.log_in(login).await?;
        Ok(connection)
    }

    async fn log_in(&mut self, login: &BackendLogin) -> Result<(), BackendError> {
        let mut out = BytesMut::new();
        frontend::encode_startup_3_0(
            &mut out,
            &[
                ("user", &login.user),
                ("database", &login.database),
                ("application_name", "pgrw"),
            ],
        );
        self.send(&out).await?;
        let password = login.password.as_bytes();
        let mut scram_first: Option<ScramClient> = None;
        let mut scram_final: Option<ScramClientFinal> = None;
        loop {
            let message = self.receive().await?;
            let mut out = BytesMut::new();
            let decoded = BackendMessage::decode(message.view()).map_err(|e| self.protocol(e))?;
            match decoded {
                BackendMessage::Authentication(Authentication::Ok) => {}
                BackendMessage::Authentication(Authentication::CleartextPassword) => {
                    frontend::encode_password(&mut out, password);
                }
                BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                    let response = md5::response(password, login.user.as_bytes(), salt);
                    frontend::encode_password(&mut out, response.as_bytes());
                }
                BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
                    if !mechanisms.contains(&scram::MECHANISM) {
                        return Err(self.failed(format!(
                            "offers SASL mechanisms {mechanisms:?}, not SCRAM-SHA-256"
                        )));
                    }
                    let client = ScramClient::new(password, &random_nonce())
                        .map_err(|e| self.failed(e.to_string()))?;
                    let first = client.client_first_message();
                    frontend::encode_sasl_initial_response(
                        &mut out,
                        scram::MECHANISM,
                        first.as_bytes(),
                    );
                    scram_first = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslContinue { data }) => {
                    let client = scram_first
                        .take()
                        .ok_or_else(|| self.failed("SASLContinue before SASL".to_string()))?;
                    let client = client
                        .receive_server_first(data)
                        .map_err(|e| self.failed(e.to_string()))?;
                    frontend::encode_sasl_response(
                        &mut out,
                        client.client_final_message().as_bytes(),
                    );
                    scram_final = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslFinal { data }) => {
                    let client = scram_final
                        .take()
                        .ok_or_else(|| self.failed("SASLFinal before SASLContinue".to_string()))?;
                    client
                        .receive_server_final(data)
                        .map_err(|e| self.failed(e.to_string()))?;
                }
                BackendMessage::Authentication(other) => {
                    return Err(self.failed(format!("asks for unsupported login {other:?}")));
                }
                BackendMessage::ParameterStatus { name, value } => self.parameters.push((
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )),
                BackendMessage::BackendKeyData {
                    process_id,
                    secret_key,
                } => {
                    self.cancel_target = Arc::new(CancelTarget {
                        host: login.host.clone(),
                        port: login.port,
                        process_id,
                        secret_key: secret_key.to_vec(),
                    })
                }
                BackendMessage::ReadyForQuery(status) => {
                    self.status = status;
                    return Ok(());
                }
                BackendMessage::ErrorResponse(fields) => {
                    return Err(BackendError::Refused {
                        node: self.node_name.clone(),
                        code: fields.code,
                        message: fields.message,
                    });
                }
                _ => {}
            }
            if !out.is_empty() {
                self.send(&out).await?;
            }
        }
    }

    /// Whether an idle connection still looks usable: the node has neither
    /// closed it nor sent anything unasked (a FATAL on shutdown). Never blocks.
    pub fn looks_alive(&self) -> bool {
        self.stream.looks_alive()
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|source| BackendError::Io {
                node: self.node_name.clone(),
                source,
            })
    }

    /// The next whole message, when one is already buffered.
    pub fn buffered(&mut self) -> Result<Option<Message>, BackendError> {
        Message::split_from(&mut self.read_buffer, &FrameLimits::default())
            .map_err(|e| self.protocol(e))
    }

    /// Reads more bytes from the node into the buffer (cancel-safe).
    pub async fn fill(&mut self) -> Result<(), BackendError> {
        crate::protocol::frame::shrink_if_idle(&mut self.read_buffer);
        let read = self
            .stream
            .read_buf(&mut self.read_buffer)
            .await
            .map_err(|source| BackendError::Io {
                node: self.node_name.clone(),
                source,
            })?;
        if read == 0 {
            return Err(BackendError::Closed {
                node: self.node_name.clone(),
            });
        }
        Ok(())
    }

    /// The next whole message, reading as needed.
    pub async fn receive(&mut self) -> Result<Message, BackendError> {
        loop {
            if let Some(message) = self.buffered()? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// Asks the node for `pg_current_wal_lsn()` (on an idle connection to the
    /// primary, after a write committed).
    pub async fn current_wal_lsn(&mut self) -> Result<Lsn, BackendError> {
        let mut out = BytesMut::new();
        frontend::encode_query(&mut out, b"SELECT pg_current_wal_lsn()");
        self.send(&out).await?;
        let mut lsn = None;
        loop {
            let message = self.receive().await?;
            match message.tag() {
                b'D' => lsn = first_column_text(message.body()),
                b'E' => {
                    let decoded = BackendMessage::decode(message.view());
                    let message = match decoded {
                        Ok(BackendMessage::ErrorResponse(fields)) => fields.message,
                        _ => "malformed error".to_string(),
                    };
                    return Err(self.failed(format!("reading pg_current_wal_lsn(): {message}")));
                }
                b'Z' => break,
                _ => {}
            }
        }
        lsn.and_then(|text| text.parse::<Lsn>().ok())
            .ok_or_else(|| self.failed("pg_current_wal_lsn() returned no LSN".to_string()))
    }

    fn protocol(&self, error: ProtocolError) -> BackendError {
        self.failed(error.to_string())
    }

    fn failed(&self, message: String) -> BackendError {
        BackendError::Protocol {
            node: self.node_name.clone(),
            message,
        }
    }
}

/// The first column of a DataRow as text, if not NULL.
pub(crate) fn first_column_text(body: &[u8]) -> Option<String> {
    let length = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let length = usize::try_from(length).ok()?;
    let value = body.get(6..6 + length)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// A fresh SCRAM nonce from the OS-seeded CSPRNG.
pub(crate) fn random_nonce() -> String {
    let mut random = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut random);
    scram::nonce_from_random(&random)
}

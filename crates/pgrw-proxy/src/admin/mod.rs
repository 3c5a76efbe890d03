//! The admin console: the virtual database `pgrw` on the SQL port, as
//! PgBouncer's `pgbouncer` database. A user marked `admin = true` logs in
//! with the proxy's own password check, like any client, and gets a
//! session that never touches a node: `SHOW NODES`, `SHOW POOLS`, …,
//! `RELOAD`, `PAUSE`/`RESUME`, `BAN`/`UNBAN`, `SHUTDOWN`, answered over the
//! simple protocol (the extended protocol gets 0A000 and the session goes on).
//!
//! - [`command`]: parsing a command (sans I/O).
//! - [`show`]: the tables; [`report`]: what a node's row (and `/metrics`) says.
//! - [`table`]: a result set's messages.
//! - [`clients`]: the registry of logged-in clients; [`pause`]: held transactions.

pub(crate) mod clients;
pub(crate) mod command;
pub(crate) mod pause;
pub(crate) mod report;
mod show;
mod table;

use std::sync::Arc;

use pgrw_core::route::NodeId;

use crate::config::UserConfig;
use crate::protocol::backend::{
    NoticeFields, Severity, TransactionStatus, encode_backend_key_data, encode_command_complete,
    encode_empty_query_response, encode_error_response, encode_parameter_status,
    encode_ready_for_query,
};
use crate::protocol::frontend::{FrontendMessage, tag};
use crate::protocol::sqlstate;
use crate::server::ProxyState;
use crate::session::client::{ClientConnection, SessionEnd};
use crate::shutdown::Phase;
use command::{Command, NotACommand};

/// The database name that reaches the console.
pub const DATABASE: &str = "pgrw";

/// Serves an admin console session until the client leaves (or the proxy
/// stops). A user not marked `admin = true` is refused with FATAL 42501.
pub(crate) async fn serve(client: &mut ClientConnection, state: Arc<ProxyState>, user: UserConfig) {
    if !user.admin {
        let fields = NoticeFields::new(
            Severity::Fatal,
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("not allowed: user \"{}\" is not a pgrw admin", user.name),
        )
        .with_hint("set admin = true on the user in pgrw.toml to reach the admin console");
        encode_error_response(&mut client.out, &fields);
        client.close().await;
        return;
    }
    tracing::info!(user = %user.name, "admin console login");
    let mut console = Console {
        client,
        state,
        skip_until_sync: false,
    };
    if console.run().await.is_ok() {
        console.client.close().await;
    }
}

struct Console<'a> {
    client: &'a mut ClientConnection,
    state: Arc<ProxyState>,
    /// After an extended-protocol message was refused: ignore until Sync.
    skip_until_sync: bool,
}

impl Console<'_> {
    async fn run(&mut self) -> Result<(), SessionEnd> {
        self.announce();
        let mut shutdown = self.state.shutdown.watch();
        'session: loop {
            if shutdown.phase() != Phase::Serving {
                let fields = NoticeFields::new(
                    Severity::Fatal,
                    sqlstate::ADMIN_SHUTDOWN,
                    crate::shutdown::TERMINATING,
                );
                encode_error_response(&mut self.client.out, &fields);
                return Ok(());
            }
            let message = loop {
                if let Some(message) = self.client.buffered()? {
                    break message;
                }
                self.client.flush().await?;
                tokio::select! {
                    read = self.client.fill() => {
                        if read? == 0 {
                            return Err(SessionEnd::ClientGone);
                        }
                    }
                    _ = shutdown.changed() => continue 'session,
                }
            };
            match message.tag() {
                tag::QUERY => {
                    let FrontendMessage::Query { sql } = FrontendMessage::decode(message.view())?
                    else {
                        unreachable!("a Query message decodes as one");
                    };
                    let sql = String::from_utf8_lossy(sql).into_owned();
                    self.query(&sql).await;
                    encode_ready_for_query(&mut self.client.out, TransactionStatus::Idle);
                }
                tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH => {
                    if !self.skip_until_sync {
                        self.skip_until_sync = true;
                        self.error(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            "the pgrw admin console speaks only the simple query protocol"
                                .to_string(),
                        );
                    }
                }
                tag::SYNC => {
                    self.skip_until_sync = false;
                    encode_ready_for_query(&mut self.client.out, TransactionStatus::Idle);
                }
                tag::TERMINATE => return Ok(()),
                other => {
                    return Err(SessionEnd::Protocol(
                        crate::protocol::ProtocolError::UnexpectedTag {
                            message: "a frontend message",
                            tag: char::from(other),
                        },
                    ));
                }
            }
        }
    }

    /// ParameterStatus (a node's, when one was reached, so that psql sees a
    /// server version it knows), BackendKeyData, ReadyForQuery.
    fn announce(&mut self) {
        let known = self.state.server_parameters().unwrap_or_default();
        let mut parameters: Vec<(String, String)> = known
            .into_iter()
            .filter(|(name, _)| name != "is_superuser" && name != "session_authorization")
            .collect();
        for (name, value) in [
            ("server_version", "16.0"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
        ] {
            if !parameters.iter().any(|(known, _)| known == name) {
                parameters.push((name.to_string(), value.to_string()));
            }
        }
        for (name, value) in &parameters {
            encode_parameter_status(&mut self.client.out, name.as_bytes(), value.as_bytes());
        }
        // A key no CancelRequest will match: nothing here can be cancelled.
        encode_backend_key_data(&mut self.client.out, 0, &[0; 4]);
        encode_ready_for_query(&mut self.client.out, TransactionStatus::Idle);
    }

    /// Answers one Query (ReadyForQuery is the caller's).
    async fn query(&mut self, sql: &str) {
        let command = match command::parse(sql) {
            Ok(command) => command,
            Err(NotACommand::Unknown) => {
                let fields = NoticeFields::new(
                    Severity::Error,
                    sqlstate::SYNTAX_ERROR,
                    format!("not a pgrw admin command: {:?}", sql.trim()),
                )
                .with_hint(format!("the commands are: {}", command::command_list()));
                encode_error_response(&mut self.client.out, &fields);
                return;
            }
            Err(NotACommand::NodeNameMissing(verb)) => {
                self.error(
                    sqlstate::SYNTAX_ERROR,
                    format!("{verb} takes one node name, as pgrw.toml names it: {verb} replica1"),
                );
                return;
            }
        };
        match command {
            Command::Empty => encode_empty_query_response(&mut self.client.out),
            Command::Show(what) => show::show(&self.state, what).encode(&mut self.client.out),
            Command::Reload => match crate::reload::reload(&self.state) {
                Ok(()) => encode_command_complete(&mut self.client.out, b"RELOAD"),
                Err(why) => self.error(sqlstate::CONFIG_FILE_ERROR, why),
            },
            Command::Pause => {
                if self.state.pause.pause() {
                    tracing::warn!("paused by an operator: new transactions wait for RESUME");
                }
                encode_command_complete(&mut self.client.out, b"PAUSE");
            }
            Command::Resume => {
                if self.state.pause.resume() {
                    tracing::warn!("resumed by an operator: held transactions start");
                }
                encode_command_complete(&mut self.client.out, b"RESUME");
            }
            Command::Ban(name) | Command::Unban(name) if self.node(&name).is_none() => {
                let names: Vec<&str> = self
                    .state
                    .config
                    .nodes
                    .iter()
                    .map(|node| node.name.as_str())
                    .collect();
                self.error(
                    sqlstate::UNDEFINED_OBJECT,
                    format!(
                        "no node {name:?} in pgrw.toml; the nodes are: {}",
                        names.join(", ")
                    ),
                );
            }
            Command::Ban(name) => {
                if let Some(node) = self.node(&name) {
                    self.state.monitor.operator_ban(node);
                }
                encode_command_complete(&mut self.client.out, b"BAN");
            }
            Command::Unban(name) => {
                if let Some(node) = self.node(&name) {
                    self.state.monitor.operator_unban(node);
                }
                encode_command_complete(&mut self.client.out, b"UNBAN");
            }
            Command::Shutdown => {
                tracing::warn!("shutdown asked on the admin console");
                self.state.shutdown.request();
                encode_command_complete(&mut self.client.out, b"SHUTDOWN");
            }
        }
    }

    /// The node called `name`.
    fn node(&self, name: &str) -> Option<NodeId> {
        self.state.nodes.id_of(name)
    }

    /// Appends an ErrorResponse.
    fn error(&mut self, code: &str, message: String) {
        let fields = NoticeFields::new(Severity::Error, code, message);
        encode_error_response(&mut self.client.out, &fields);
    }
}

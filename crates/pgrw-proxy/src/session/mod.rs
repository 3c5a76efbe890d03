//! One client session, from startup to Terminate: a module per protocol phase.
//!
//! - [`client`]: the client's socket and buffers.
//! - [`startup`]: SSL/GSS negotiation (TLS when configured), cancel requests,
//!   the proxy's password check.
//! - [`dispatch`]: routing a unit of work and getting a backend for it.
//! - [`relay`]: forwarding a backend's answer to the client as bytes.
//! - [`simple`]: the simple query protocol.
//! - [`pgrw_commands`]: the proxy's own settings (`SHOW pgrw.route`,
//!   `SHOW pgrw.lsn`, `SET pgrw.min_lsn`, `SET pgrw.route`).
//! - [`extended`]: Parse/Bind/Describe/Execute/Close batches and prepared
//!   statements that follow the client from backend to backend.
//! - [`catalog`]: each database's catalog kept loaded from its primary,
//!   and reloaded after DDL.
//! - [`reroute`]: a read a replica refused because only the primary can run
//!   it, run again there unseen, and its shape remembered.
//!
//! A malformed message ends this session only (08P01); no other client notices.

mod catalog;
pub(crate) mod client;
mod dispatch;
mod extended;
mod in_flight;
mod login;
mod pgrw_commands;
mod pins;
mod relay;
mod reroute;
mod settings;
mod settle;
mod simple;
mod startup;
mod transaction_reads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use pgrw_core::route::{Balancer, Route, SessionState, Topology};
use rand::RngCore;
use tokio::net::TcpStream;

use crate::admission::{Admitted, PendingLogin};
use crate::cancel::IssuedKey;
use crate::config::UserConfig;
use crate::pool::PooledBackend;
use crate::protocol::backend::{
    NoticeFields, Severity, TransactionStatus, encode_error_response, encode_ready_for_query,
};
use crate::protocol::frontend::tag;
use crate::protocol::sqlstate;
use crate::protocol::{Message, ProtocolError};
use crate::server::ProxyState;
use crate::shutdown::{Phase, ShutdownWatch, TERMINATING};
use crate::stats::OpenConnection;
use client::{ClientConnection, SessionEnd};
use extended::PreparedStatement;

/// Serves one client until it leaves. Errors end this session only. `_open`
/// counts it as an open client connection while it lives.
/// `pending` counts it against `limits.max_pending_logins` until it has
/// logged in.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ProxyState>,
    _open: OpenConnection,
    pending: PendingLogin,
) {
    let mut client = ClientConnection::new(stream);
    // A client that stalls anywhere before it is logged in (TLS handshake,
    // startup packet, password) is dropped, so it cannot hold a socket forever.
    let login_timeout = state.config.login_timeout();
    let login =
        tokio::time::timeout(login_timeout, startup::start(&mut client, peer, &state)).await;
    drop(pending);
    let logged_in = match login {
        Ok(Ok(Some(logged_in))) => logged_in,
        Ok(Ok(None) | Err(SessionEnd::ClientGone | SessionEnd::Terminated)) => return,
        Ok(Err(SessionEnd::Protocol(error))) => {
            protocol_violation(&mut client, &error).await;
            return;
        }
        Err(_elapsed) => {
            let message = format!(
                "canceling authentication due to timeout: not logged in within {} ms \
                 (login_timeout_ms)",
                login_timeout.as_millis()
            );
            fatal(&mut client, sqlstate::QUERY_CANCELED, &message).await;
            return;
        }
    };
    if logged_in.database == crate::admin::DATABASE {
        crate::admin::serve(&mut client, state, logged_in.user).await;
        return;
    }
    let cancel = state.cancels.issue();
    let registered = state.clients.register(crate::admin::clients::ClientEntry {
        process_id: cancel.process_id,
        user: logged_in.user.name.clone(),
        database: logged_in.database.clone(),
        peer: Some(peer),
        connected_at: std::time::SystemTime::now(),
        tls: client.is_tls(),
        slot: cancel.slot.clone(),
        held: Default::default(),
    });
    let mut session = Session {
        _admitted: logged_in.admitted,
        config: state.config_now(),
        config_generation: state.live.generation(),
        unit_timer: None,
        registered,
        cancel,
        client,
        user: logged_in.user,
        database: logged_in.database,
        routing: SessionState::new(),
        balancer: Balancer::with_seed(rand::thread_rng().next_u64()),
        held: Vec::new(),
        batch: Vec::new(),
        open_batch: None,
        fresh_read_only: None,
        flushed: Vec::new(),
        rebinds: Vec::new(),
        statements: HashMap::new(),
        pending_write: false,
        unknown_write: crate::unknown_writes::UnknownWrites::none(),
        last_route: None,
        skip_until_sync: false,
        settings: Vec::new(),
        startup: settings::startup::StartupSettings::new(logged_in.settings),
        transaction_settings: settings::transaction::TransactionSettings::default(),
        pin_check: pins::PinCheck::default(),
        unit_settings: Vec::new(),
        exchange_errored: false,
        transaction_lost: None,
        deferred_begin: None,
        pools: Vec::new(),
        must_end: false,
        shutdown: state.shutdown.watch(),
        catalog: state.catalogs.base_view(),
        catalog_changed: false,
        state,
    };
    session.settings.extend(session.startup.statement());
    if session.announce().await.is_err() {
        return;
    }
    match session.run().await {
        Ok(()) | Err(SessionEnd::ClientGone | SessionEnd::Terminated) => {}
        Err(SessionEnd::Protocol(error)) => protocol_violation(&mut session.client, &error).await,
    }
    if session.catalog_changed {
        session.catalog.request_reload();
    }
    // Idle backends go back to their pools with this client's settings undone;
    // one left mid-transaction (or holding session state) is closed, and its
    // node rolls back.
    for mut backend in std::mem::take(&mut session.held) {
        if backend.connection().status == TransactionStatus::Idle {
            settings::undo_settings_and_release(backend).await;
        }
    }
    // For TLS, a close_notify before the FIN.
    session.client.close().await;
}

/// Why a new connection is turned away before it logs in.
pub(crate) enum Refusal {
    /// Over `max_client_connections`.
    TooManyClients,
    /// Over `limits.max_pending_logins`.
    TooManyPendingLogins,
}

/// Turns away a client over `max_client_connections` (or
/// `limits.max_pending_logins`), as PostgreSQL does one over
/// `max_connections`: its SSLRequest (and TLS) and StartupMessage are
/// answered first, so that the client reports the reason, and a
/// CancelRequest is still delivered. Bounded by [`REFUSAL_GRACE`], so that
/// connections over the limit cannot pile up.
pub(crate) async fn refuse(
    stream: TcpStream,
    state: Arc<ProxyState>,
    _open: OpenConnection,
    refusal: Refusal,
) {
    let mut client = ClientConnection::new(stream);
    let grace = state.config.login_timeout().min(REFUSAL_GRACE);
    let negotiated = tokio::time::timeout(grace, startup::negotiate(&mut client, &state)).await;
    if let Ok(Ok(Some(_startup))) = negotiated {
        let message = match refusal {
            Refusal::TooManyClients => format!(
                "sorry, too many clients already: pgrw serves at most {} client connections \
                 (max_client_connections)",
                state.config.max_client_connections
            ),
            Refusal::TooManyPendingLogins => format!(
                "sorry, too many clients are logging in at once: pgrw allows at most {} \
                 connections that have not logged in yet (limits.max_pending_logins)",
                state.config.limits.max_pending_logins
            ),
        };
        fatal(&mut client, sqlstate::TOO_MANY_CONNECTIONS, &message).await;
    }
}

/// How long a client over `max_client_connections` may take to say who it is.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A message over the size limit is 54000 (its bytes cannot be skipped
/// unread, so the connection ends all the same); anything else 08P01.
async fn protocol_violation(client: &mut ClientConnection, error: &ProtocolError) {
    match error {
        ProtocolError::LengthTooLong {
            what,
            length,
            maximum,
        } if client.logged_in() => {
            let message = format!(
                "message too long: {what} of {length} bytes is over the limit of {} bytes \
                 (limits.max_message_bytes)",
                maximum.saturating_add(1)
            );
            fatal(client, sqlstate::PROGRAM_LIMIT_EXCEEDED, &message).await;
        }
        error => fatal(client, sqlstate::PROTOCOL_VIOLATION, &error.to_string()).await,
    }
}

/// Sends a FATAL error and closes the connection.
async fn fatal(client: &mut ClientConnection, code: &str, message: &str) {
    let fields = NoticeFields::new(Severity::Fatal, code, message);
    encode_error_response(&mut client.out, &fields);
    client.close().await;
}

/// One logged-in client.
pub(crate) struct Session {
    /// Counts it against its user's and database's limits.
    _admitted: Admitted,
    client: ClientConnection,
    state: Arc<ProxyState>,
    user: UserConfig,
    database: String,
    /// What routing knows of this session.
    routing: SessionState,
    balancer: Balancer,
    /// Backends this client keeps between statements: its open transaction's,
    /// a pinned one, or all of them in session pooling.
    held: Vec<PooledBackend>,
    /// Extended-protocol messages waiting for Sync or Flush.
    batch: Vec<Message>,
    /// The backend an extended batch runs on after a Flush, until its Sync.
    open_batch: Option<(PooledBackend, dispatch::Unit)>,
    /// The `BEGIN READ ONLY` of the transaction open on a replica, while no
    /// statement there took a snapshot: `SET TRANSACTION ISOLATION LEVEL
    /// SERIALIZABLE`, which a standby refuses, then moves it to the primary.
    fresh_read_only: Option<Bytes>,
    /// The messages of the open batch already sent (before its Flushes), and
    /// the Binds of them to send again ahead of its rest (`flush_split`).
    flushed: Vec<Message>,
    rebinds: Vec<Message>,
    /// The client's prepared statements by client-side name (`""` unnamed).
    statements: HashMap<Bytes, Arc<PreparedStatement>>,
    /// Whether the current transaction wrote on the primary.
    pending_write: bool,
    /// Writes this session was told committed whose position could not be
    /// read, until the primary's position after them is known.
    unknown_write: crate::unknown_writes::UnknownWrites,
    /// Where the last statement ran and why, for `SHOW pgrw.route`.
    last_route: Option<(Route, Arc<Topology>)>,
    /// After an error in an extended batch: ignore messages until Sync.
    skip_until_sync: bool,
    cancel: IssuedKey,
    /// Settings statements that completed, replayed on every other backend.
    settings: Vec<Bytes>,
    /// The settings of the client's StartupMessage (`settings[0]` when any).
    startup: settings::startup::StartupSettings,
    /// The settings statements of the open transaction, recorded if it commits.
    transaction_settings: settings::transaction::TransactionSettings,
    /// When to ask the pinned backend whether its pinning state is gone.
    pin_check: pins::PinCheck,
    /// The settings statements of the unit being relayed.
    unit_settings: Vec<Bytes>,
    /// Whether the exchange being relayed got an ErrorResponse.
    exchange_errored: bool,
    /// Why the open transaction was lost while the client was idle (its
    /// backend ended), for the client's next statement to fail with.
    transaction_lost: Option<String>,
    /// The client's `BEGIN` of a deferred transaction (`transaction_reads`).
    deferred_begin: Option<transaction_reads::DeferredBegin>,
    /// This client's pool on each node (by node index), looked up once.
    pools: Vec<Option<Arc<crate::pool::Pool>>>,
    /// The session lost state it cannot rebuild (a FATAL is written): the
    /// connection ends after the current message.
    must_end: bool,
    /// The proxy's phase: serving, draining (end when between
    /// transactions) or closing (end now).
    shutdown: ShutdownWatch,
    /// This database's catalog (functions, unlogged relations), refreshed
    /// before each client message.
    catalog: crate::catalogs::CatalogView,
    /// DDL completed in the current transaction: the catalog is reloaded
    /// when it ends.
    catalog_changed: bool,
    /// The configuration in force when this session last looked (see
    /// [`Session::live_config`]).
    config: Arc<crate::config::ProxyConfig>,
    /// The reload generation `config` is from.
    config_generation: u64,
    /// The unit running now: where, why, since when (for `SHOW STATS`).
    unit_timer: Option<dispatch::UnitTimer>,
    /// This client in the admin console's registry, while the session lives.
    registered: crate::admin::clients::Registered,
}

impl Session {
    /// The message loop.
    async fn run(&mut self) -> Result<(), SessionEnd> {
        let mut shutdown = self.shutdown.clone();
        loop {
            self.heed_shutdown(shutdown.phase())?;
            // Held backends are watched while the client is idle; without
            // any, the read is the plain one (the common, fast path).
            let next = self.read_next(&mut shutdown).await?;
            let Some(message) = next else {
                return Ok(());
            };
            self.catalog.refresh();
            match message.tag() {
                tag::QUERY => self.simple_query(message).await?,
                tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE => {
                    self.extended_message(message).await?
                }
                tag::SYNC => self.sync().await?,
                tag::FLUSH => self.flush_batch().await?,
                tag::TERMINATE => return Ok(()),
                // Leftovers of a COPY FROM STDIN that failed: PostgreSQL ignores them too.
                tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {}
                tag::FUNCTION_CALL => self.function_call(message).await?,
                other => {
                    return Err(SessionEnd::Protocol(
                        crate::protocol::ProtocolError::UnexpectedTag {
                            message: "a frontend message",
                            tag: char::from(other),
                        },
                    ));
                }
            }
            if self.must_end {
                return Ok(());
            }
        }
    }

    /// The client's next message, within the idle timeout that applies
    /// (`limits.idle_client_timeout_ms` between transactions,
    /// `limits.idle_in_transaction_timeout_ms` inside one): past it the
    /// session ends with PostgreSQL's FATAL for the same timeout.
    async fn read_next(
        &mut self,
        shutdown: &mut ShutdownWatch,
    ) -> Result<Option<Message>, SessionEnd> {
        let limits = &self.state.config.limits;
        let in_transaction = !self.between_transactions();
        let timeout = if in_transaction {
            limits.idle_in_transaction_timeout()
        } else {
            limits.idle_client_timeout()
        };
        let Some(timeout) = timeout else {
            return self.read_any(shutdown).await;
        };
        // Written out before the clock starts: a timeout never cuts a write short.
        self.client.flush().await?;
        match tokio::time::timeout(timeout, self.read_any(shutdown)).await {
            Ok(next) => next,
            Err(_elapsed) => {
                let (code, message) = if in_transaction {
                    (
                        sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                        "terminating connection due to idle-in-transaction timeout \
                         (limits.idle_in_transaction_timeout_ms)",
                    )
                } else {
                    (
                        sqlstate::IDLE_SESSION_TIMEOUT,
                        "terminating connection due to idle-session timeout \
                         (limits.idle_client_timeout_ms)",
                    )
                };
                let fields = NoticeFields::new(Severity::Fatal, code, message);
                encode_error_response(&mut self.client.out, &fields);
                Err(SessionEnd::Terminated)
            }
        }
    }

    /// The client's next message, watching held backends if any.
    async fn read_any(
        &mut self,
        shutdown: &mut ShutdownWatch,
    ) -> Result<Option<Message>, SessionEnd> {
        if self.held.is_empty() {
            self.read_message(shutdown).await
        } else {
            self.read_message_holding(shutdown).await
        }
    }

    /// The client's next message, when the session holds no backend;
    /// `None` when the client closed. Ends the session if the proxy starts
    /// shutting down meanwhile (see [`Session::heed_shutdown`]).
    async fn read_message(
        &mut self,
        shutdown: &mut ShutdownWatch,
    ) -> Result<Option<Message>, SessionEnd> {
        loop {
            if let Some(message) = self.client.buffered()? {
                return Ok(Some(message));
            }
            // About to wait for the client: everything owed to it goes out
            // first (not inside the select: a write cut short would be
            // written again).
            self.client.flush().await?;
            tokio::select! {
                read = self.client.fill() => {
                    if read? == 0 {
                        return Ok(None);
                    }
                }
                phase = shutdown.changed() => self.heed_shutdown(phase)?,
            }
        }
    }

    /// Ends the session, with FATAL 57P01 as PostgreSQL's fast shutdown
    /// sends, when the proxy is shutting down and the session may end now:
    /// while draining, once it is between transactions (no transaction, no
    /// unfinished extended batch), so that nothing the client started is cut
    /// short; once closing, whatever it is doing.
    fn heed_shutdown(&mut self, phase: Phase) -> Result<(), SessionEnd> {
        let end = match phase {
            Phase::Serving => false,
            Phase::Draining => self.between_transactions(),
            Phase::Closing => true,
        };
        if end {
            return Err(self.terminate());
        }
        Ok(())
    }

    /// Writes the FATAL 57P01 of a shutdown; the session ends with what
    /// this returns.
    fn terminate(&mut self) -> SessionEnd {
        let fields = NoticeFields::new(Severity::Fatal, sqlstate::ADMIN_SHUTDOWN, TERMINATING);
        encode_error_response(&mut self.client.out, &fields);
        SessionEnd::Terminated
    }

    /// Whether nothing the client started is unfinished: no transaction and
    /// no extended batch waiting for its Sync.
    fn between_transactions(&self) -> bool {
        self.routing.transaction.is_none()
            && self.routing.deferred.is_none()
            && self.open_batch.is_none()
            && self.batch.is_empty()
            && !self.skip_until_sync
    }

    /// The configuration in force: the session's copy, taken again after a
    /// reload (one atomic load when there was none).
    fn live_config(&mut self) -> Arc<crate::config::ProxyConfig> {
        let generation = self.state.live.generation();
        if generation != self.config_generation {
            self.config = self.state.config_now();
            self.config_generation = generation;
        }
        self.config.clone()
    }

    /// Appends an ErrorResponse the proxy itself raises.
    fn error(&mut self, code: &str, message: impl Into<String>) {
        let fields = NoticeFields::new(Severity::Error, code, message);
        encode_error_response(&mut self.client.out, &fields);
    }

    /// Appends ReadyForQuery with the session's transaction status.
    fn ready(&mut self) {
        let status = match self.routing.transaction {
            Some(transaction) => self
                .held
                .iter_mut()
                .find(|backend| backend.node() == transaction.node)
                .map(|backend| backend.connection().status)
                .unwrap_or(TransactionStatus::Idle),
            // A deferred transaction that has run nothing yet.
            None if self.routing.deferred.is_some() => TransactionStatus::InTransaction,
            None => TransactionStatus::Idle,
        };
        encode_ready_for_query(&mut self.client.out, status);
    }
}

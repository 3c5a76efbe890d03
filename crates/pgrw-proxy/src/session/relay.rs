//! Forwarding a backend's answer to the client, as bytes, until the unit of
//! work is done.
//!
//! An extended batch is tracked as [`Step`]s, one per message sent, so that
//! answers the proxy must hide (the ParseComplete of a Parse it injected) or
//! supply (a ParseComplete for a Parse the backend already had, a
//! CloseComplete for a client-side Close) land in exactly the position the
//! client expects. An ErrorResponse skips the steps up to the next Sync, as
//! PostgreSQL skips the messages.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;

use super::Session;
use super::client::SessionEnd;
use super::extended::PreparedStatement;
use super::in_flight::{Stall, Waited};
use super::reroute::{self, Held};
use crate::backend::BackendError;
use crate::cancel::spawn_cancel;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{
    BackendMessage, NoticeFields, Severity, TransactionStatus, encode_error_response, tag,
};
use crate::protocol::frontend::{encode_flush, tag as frontend_tag};
use crate::protocol::sqlstate;
use crate::shutdown::ShutdownWatch;
use crate::stats::RerunReason;

/// One message sent to the backend (or answered by the proxy) whose answer
/// the relay waits for.
#[derive(Debug)]
pub(super) enum Step {
    /// Parse: answered by ParseComplete. `prepares` names the backend-side
    /// statement it creates; `hidden` when the proxy injected it.
    Parse {
        /// The backend-side name of a named statement.
        prepares: Option<String>,
        /// Whether the client must not see its ParseComplete.
        hidden: bool,
    },
    /// Bind: BindComplete.
    Bind,
    /// A Bind the proxy sent again (a portal moved with a split batch): its
    /// BindComplete is not the client's.
    Rebind,
    /// Describe: RowDescription or NoData (after ParameterDescription for a
    /// statement), which a client statement's description records.
    Describe(Option<Arc<PreparedStatement>>),
    /// Execute: CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// Close: CloseComplete.
    Close,
    /// Sync: ReadyForQuery.
    Sync,
    /// An answer the proxy gives itself, when its turn comes.
    Answer(Bytes),
}

/// The steps of one exchange, and how many ReadyForQuery end it.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    /// What is outstanding, in order.
    pub(super) steps: VecDeque<Step>,
    /// ReadyForQuery messages still to come (a simple Query or a Sync each).
    pub(super) ready_left: usize,
    /// Whether the replica's answer is held back until it is more than
    /// preliminary, so that a refusal can be rerun on the primary unseen
    /// (`super::reroute`).
    pub(super) rerunnable: bool,
}

/// How an exchange ended.
pub(super) enum Relayed {
    /// The last ReadyForQuery arrived (not yet forwarded).
    Ready(PooledBackend, Message),
    /// Every step of a Flush-ended batch is answered; the backend stays with it.
    Flushed(PooledBackend),
    /// The backend failed; it is returned for the caller to discard.
    Failed(PooledBackend, BackendError),
    /// A rerunnable exchange was refused for `RerunReason` before the client
    /// saw any of it: nothing of it was forwarded, and the backend is idle
    /// again (its ReadyForQuery was read).
    Rerun(PooledBackend, RerunReason),
}

impl Session {
    /// Forwards the backend's messages to the client until `exchange` is done.
    /// During COPY FROM STDIN the client's CopyData goes the other way.
    pub(super) async fn relay(
        &mut self,
        mut backend: PooledBackend,
        mut exchange: Exchange,
    ) -> Result<Relayed, SessionEnd> {
        let mut copy_in = CopyIn::Off;
        self.exchange_errored = false;
        let timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut stall = Stall::new(self.state.config.pool.stall_timeout(), timer);
        // While the answer is held: where it starts in the client's buffer
        // (what was owed to the client before goes out first).
        let mut hold = None;
        if exchange.rerunnable {
            self.client.flush().await?;
            hold = Some(self.client.out.len());
        }
        let mut rerun = None;
        loop {
            self.answer_due_steps(&mut exchange);
            if exchange.ready_left == 0 && exchange.steps.is_empty() {
                return Ok(Relayed::Flushed(backend));
            }
            let message = match backend.connection().buffered() {
                Ok(Some(message)) => message,
                Ok(None) => {
                    if copy_in != CopyIn::Off {
                        // COPY data the client sent with its statement (or in
                        // one read since) is already here: no new byte would
                        // come to wake a wait on the client for it.
                        match self.forward_copy_data(&mut backend, copy_in).await? {
                            Ok(next) => copy_in = next,
                            Err(error) => return Ok(Relayed::Failed(backend, error)),
                        }
                    }
                    if hold.is_none() {
                        self.client.flush().await?;
                    }
                    let copying = copy_in != CopyIn::Off;
                    match self
                        .wait_for_backend(&mut backend, &mut stall, copying)
                        .await
                    {
                        Waited::Filled | Waited::ClientSent => {}
                        Waited::Failed(error) | Waited::Hung(error) => {
                            return Ok(Relayed::Failed(backend, error));
                        }
                        Waited::ClientGone => {
                            self.abandon(backend, &exchange, copying).await;
                            return Err(SessionEnd::ClientGone);
                        }
                        Waited::Closing => {
                            spawn_cancel(backend.connection().cancel_target.clone());
                            return Err(self.terminate());
                        }
                    }
                    continue;
                }
                Err(error) => return Ok(Relayed::Failed(backend, error)),
            };
            self.observe_backend_message(&message, &exchange);
            self.observe_catalog_change(&message);
            if let Some(from) = hold {
                match reroute::held(&message, self.client.out.len() - from) {
                    Held::Keep => {}
                    Held::Release => hold = None,
                    Held::Rerun(reason) => {
                        self.client.out.truncate(from);
                        hold = None;
                        rerun = Some(reason);
                    }
                }
            }
            match message.tag() {
                tag::READY_FOR_QUERY => {
                    let status = match BackendMessage::decode(message.view()) {
                        Ok(BackendMessage::ReadyForQuery(status)) => status,
                        _ => TransactionStatus::Failed,
                    };
                    backend.connection().status = status;
                    while let Some(step) = exchange.steps.pop_front() {
                        if matches!(step, Step::Sync) {
                            break;
                        }
                    }
                    exchange.ready_left = exchange.ready_left.saturating_sub(1);
                    if exchange.ready_left == 0 {
                        if let Some(reason) = rerun {
                            return Ok(Relayed::Rerun(backend, reason));
                        }
                        return Ok(Relayed::Ready(backend, message));
                    }
                }
                tag::ERROR_RESPONSE => {
                    if let Some(ended) = self.ended_mid_statement(&mut backend, &message) {
                        return Ok(Relayed::Failed(backend, ended));
                    }
                    self.exchange_errored = true;
                    // The copy failed: the client's remaining COPY messages are
                    // ignored by the session loop, as the node ignores them.
                    copy_in = CopyIn::Off;
                    while exchange
                        .steps
                        .front()
                        .is_some_and(|step| !matches!(step, Step::Sync))
                    {
                        exchange.steps.pop_front();
                    }
                }
                tag::PARSE_COMPLETE => {
                    if let Some(Step::Parse { prepares, hidden }) = exchange.steps.front() {
                        let hidden = *hidden;
                        if let Some(name) = prepares.clone() {
                            backend.connection().prepared.insert(name);
                        }
                        exchange.steps.pop_front();
                        if hidden {
                            continue;
                        }
                    }
                }
                tag::BIND_COMPLETE => {
                    if matches!(exchange.steps.front(), Some(Step::Rebind)) {
                        exchange.steps.pop_front();
                        continue;
                    }
                    pop_if(&mut exchange, |step| matches!(step, Step::Bind))
                }
                tag::CLOSE_COMPLETE => pop_if(&mut exchange, |step| matches!(step, Step::Close)),
                tag::ROW_DESCRIPTION | tag::NO_DATA => {
                    if let Some(Step::Describe(Some(statement))) = exchange.steps.front() {
                        statement.shape.record(message.as_bytes());
                    }
                    pop_if(&mut exchange, |step| matches!(step, Step::Describe(_)))
                }
                tag::COMMAND_COMPLETE | tag::EMPTY_QUERY_RESPONSE | tag::PORTAL_SUSPENDED => {
                    pop_if(&mut exchange, |step| matches!(step, Step::Execute))
                }
                tag::COPY_IN_RESPONSE => {
                    copy_in = if matches!(exchange.steps.front(), Some(Step::Execute)) {
                        skip_sync_read_in_copy(&mut exchange);
                        CopyIn::FromExecute
                    } else {
                        CopyIn::FromQuery
                    };
                }
                _ => {}
            }
            if rerun.is_some() {
                // The refused answer is dropped: the primary's replaces it.
                continue;
            }
            self.client.out.extend_from_slice(message.as_bytes());
            if hold.is_none() {
                self.client.flush_if_full().await?;
            }
        }
    }

    /// Writes the proxy's own answers that have reached the head of the queue.
    fn answer_due_steps(&mut self, exchange: &mut Exchange) {
        while let Some(Step::Answer(bytes)) = exchange.steps.front() {
            self.client.out.extend_from_slice(bytes);
            exchange.steps.pop_front();
        }
    }

    /// Passes the client's buffered COPY messages to the backend, in one
    /// write, and returns the copy state after them.
    ///
    /// CopyDone and CopyFail end the copy. Sync and Flush go along (the node
    /// ignores them during a copy). Any other message goes too, and also ends
    /// the copy: the node consumes it and fails the copy with 08P01, exactly
    /// as it would on a direct connection.
    async fn forward_copy_data(
        &mut self,
        backend: &mut PooledBackend,
        copy_in: CopyIn,
    ) -> Result<Result<CopyIn, BackendError>, SessionEnd> {
        let Some((mut run, last)) = self.client.split_run_through(ends_copy_in)? else {
            return Ok(Ok(copy_in));
        };
        let ended = ends_copy_in(last);
        if ended && copy_in == CopyIn::FromExecute {
            // In the extended protocol the node keeps the COPY's
            // CommandComplete in its output buffer until a Sync or Flush.
            // The client's Sync may come only with its next batch: a Flush,
            // which answers nothing, brings the CommandComplete now.
            encode_flush(&mut run);
        }
        if let Err(error) = backend.connection().send(&run).await {
            return Ok(Err(error));
        }
        Ok(Ok(if ended { CopyIn::Off } else { copy_in }))
    }
}

/// Whether the client is sending COPY FROM STDIN data, and what started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyIn {
    /// No copy in progress.
    Off,
    /// A simple Query: the node answers the copy's end at once.
    FromQuery,
    /// An Execute: the node holds its answer until a Sync or Flush.
    FromExecute,
}

/// Whether a client message ends COPY FROM STDIN on the client's side.
fn ends_copy_in(tag: u8) -> bool {
    !matches!(
        tag,
        frontend_tag::COPY_DATA | frontend_tag::SYNC | frontend_tag::FLUSH
    )
}

/// A COPY FROM STDIN started by an Execute: the node reads the batch's Sync,
/// if it comes right after the Execute, as part of the copy and ignores it.
/// No ReadyForQuery answers it: the exchange now ends with the COPY's
/// CommandComplete (or ErrorResponse), and the batch stays open on this
/// backend (`Relayed::Flushed`) for the Sync the client sends after
/// CopyDone, as PostgreSQL's protocol asks.
fn skip_sync_read_in_copy(exchange: &mut Exchange) {
    if matches!(exchange.steps.get(1), Some(Step::Sync)) {
        exchange.steps.remove(1);
        exchange.ready_left = exchange.ready_left.saturating_sub(1);
    }
}

fn pop_if(exchange: &mut Exchange, matches: impl Fn(&Step) -> bool) {
    if exchange.steps.front().is_some_and(matches) {
        exchange.steps.pop_front();
    }
}

/// How a held backend ended while its client was idle.
enum Farewell {
    /// It sent an ErrorResponse (a FATAL on shutdown, on
    /// `pg_terminate_backend`, on an idle timeout) and is closing.
    Error(Message, NoticeFields),
    /// It closed, failed, or broke the protocol without a word.
    Failed(BackendError),
    /// It sent a message only an answer to a query may carry.
    Unexpected(u8),
}

impl Farewell {
    /// The farewell of a backend that sent `message` (tagged ErrorResponse).
    fn error(message: Message) -> Farewell {
        match BackendMessage::decode(message.view()) {
            Ok(BackendMessage::ErrorResponse(fields)) => Farewell::Error(message, fields),
            _ => Farewell::Unexpected(message.tag()),
        }
    }

    /// The node's reason, for the client and the log.
    fn describe(&self, node: &str) -> String {
        match self {
            Farewell::Error(_, fields) => format!(
                "node {node} ended the connection: {} (SQLSTATE {})",
                fields.message, fields.code
            ),
            Farewell::Failed(error) => error.to_string(),
            Farewell::Unexpected(tag) => format!(
                "node {node} sent an unexpected {:?} message to an idle connection",
                char::from(*tag)
            ),
        }
    }

    /// Whether it says the node itself is in trouble, so that the monitor
    /// should ban it and look at it now: a crash (57P02), a node refusing
    /// connections (57P03), a connection lost without a word. Not 57P01:
    /// `pg_terminate_backend` of one session says the same as a shutdown, and
    /// must not ban a healthy primary; the monitor's probes find a shutdown.
    fn node_in_trouble(&self) -> bool {
        match self {
            Farewell::Error(_, fields) => matches!(fields.code.as_str(), "57P02" | "57P03"),
            Farewell::Failed(_) => true,
            Farewell::Unexpected(_) => false,
        }
    }

    /// The node's own FATAL, as it sent it, when it sent one.
    fn fatal(&self) -> Option<&Message> {
        match self {
            Farewell::Error(message, fields)
                if fields.severity == "FATAL" || fields.severity == "PANIC" =>
            {
                Some(message)
            }
            _ => None,
        }
    }
}

impl Session {
    /// The client's next message while the session holds backends (a pin,
    /// an open transaction, session pooling); `None` when the client closed
    /// or the session is over.
    ///
    /// PostgreSQL speaks to an idle client on its own: a NOTIFY from another
    /// connection, a notice, a changed parameter, and the FATAL of a backend
    /// that is terminated. So while waiting for the client this also watches
    /// the held backends, and forwards NotificationResponse, NoticeResponse
    /// and ParameterStatus at once. A session with no held backend never
    /// comes here: it waits on the client alone.
    pub(super) async fn read_message_holding(
        &mut self,
        shutdown: &mut ShutdownWatch,
    ) -> Result<Option<Message>, SessionEnd> {
        loop {
            if let Some(message) = self.client.buffered()? {
                match self.transaction_lost.take() {
                    None => return Ok(Some(message)),
                    Some(reason) => match self.answer_lost_transaction(message, reason) {
                        Some(message) => return Ok(Some(message)),
                        None => continue,
                    },
                }
            }
            if !self.hear_held_backends() {
                return Ok(None);
            }
            self.client.flush().await?;
            if self.held.is_empty() {
                tokio::select! {
                    read = self.client.fill() => {
                        if read? == 0 {
                            return Ok(None);
                        }
                    }
                    phase = shutdown.changed() => self.heed_shutdown(phase)?,
                }
                continue;
            }
            tokio::select! {
                biased;
                read = self.client.fill() => {
                    if read? == 0 {
                        return Ok(None);
                    }
                }
                (index, filled) = any_backend_filled(&mut self.held) => {
                    if let Err(error) = filled
                        && !self.held_backend_ended(index, Farewell::Failed(error))
                    {
                        return Ok(None);
                    }
                }
                phase = shutdown.changed() => self.heed_shutdown(phase)?,
            }
        }
    }

    /// Forwards what the held backends said on their own, and settles any
    /// that ended. False when the session must end (see
    /// [`Session::held_backend_ended`]).
    fn hear_held_backends(&mut self) -> bool {
        let mut index = 0;
        while index < self.held.len() {
            let farewell = match self.held[index].connection().buffered() {
                Ok(None) => {
                    index += 1;
                    continue;
                }
                Ok(Some(message)) => match message.tag() {
                    tag::NOTIFICATION_RESPONSE | tag::NOTICE_RESPONSE | tag::PARAMETER_STATUS => {
                        self.client.out.extend_from_slice(message.as_bytes());
                        continue;
                    }
                    tag::ERROR_RESPONSE => Farewell::error(message),
                    other => Farewell::Unexpected(other),
                },
                Err(error) => Farewell::Failed(error),
            };
            if !self.held_backend_ended(index, farewell) {
                return false;
            }
        }
        true
    }

    /// A held backend ended while its client was idle: it is closed, and
    /// what the client lost decides what it hears. False when the session
    /// must end.
    ///
    /// - Pinned to it (LISTEN, temp tables, advisory locks, WITH HOLD
    ///   cursors, SQL prepared statements): that state is gone and cannot be
    ///   rebuilt elsewhere; carrying on would, say, leave a listener that
    ///   silently never hears again. So the client gets what PostgreSQL
    ///   sends a direct client — the node's FATAL as it came (or a FATAL
    ///   08006 from pgrw if the node closed without one) — and the
    ///   connection closes; drivers and pools reconnect on that.
    /// - Its transaction there: the transaction was rolled back (the client
    ///   had not asked to commit). The connection stays, and the client's
    ///   next statement fails with 08006 saying so, instead of running
    ///   outside the transaction the client believes it is in; its
    ///   ReadyForQuery then reports no transaction. (A backend failing
    ///   mid-statement is reported the same way.)
    /// - Only kept by session pooling: nothing is lost that pgrw does not
    ///   replay on a fresh backend (settings, prepared statements), so the
    ///   client notices nothing.
    fn held_backend_ended(&mut self, index: usize, farewell: Farewell) -> bool {
        let mut backend = self.held.swap_remove(index);
        let node = backend.node();
        let reason = farewell.describe(backend.connection().node_name());
        drop(backend);
        if farewell.node_in_trouble() {
            self.state.monitor.report_failure(node, &reason);
        }
        if let Some(pin) = self.routing.pin.filter(|pin| pin.node == node) {
            match farewell.fatal() {
                Some(fatal) => self.client.out.extend_from_slice(fatal.as_bytes()),
                None => {
                    let message = format!("pgrw: this session's {} is lost: {reason}", pin.reason);
                    let fields =
                        NoticeFields::new(Severity::Fatal, sqlstate::CONNECTION_FAILURE, message);
                    encode_error_response(&mut self.client.out, &fields);
                }
            }
            return false;
        }
        if self.routing.transaction.is_some_and(|t| t.node == node) {
            self.routing.end_transaction();
            self.pending_write = false;
            self.transaction_lost = Some(reason);
        }
        true
    }

    /// The client's first message after its transaction was lost: a
    /// statement gets the error in its place. Returns the message when the
    /// session loop should still handle it.
    fn answer_lost_transaction(&mut self, message: Message, reason: String) -> Option<Message> {
        let error = |session: &mut Session| {
            let fields = NoticeFields::new(
                Severity::Error,
                sqlstate::CONNECTION_FAILURE,
                format!("pgrw: the transaction was rolled back: {reason}"),
            )
            .with_hint("run the transaction again; this connection can be used");
            encode_error_response(&mut session.client.out, &fields);
        };
        match message.tag() {
            frontend_tag::QUERY => {
                error(self);
                self.ready();
                None
            }
            frontend_tag::PARSE
            | frontend_tag::BIND
            | frontend_tag::DESCRIBE
            | frontend_tag::EXECUTE
            | frontend_tag::CLOSE
            | frontend_tag::SYNC
            | frontend_tag::FLUSH => {
                // As after any error in a batch: the rest is skipped up to Sync.
                error(self);
                self.batch.clear();
                self.skip_until_sync = true;
                Some(message)
            }
            // Leftovers of a failed COPY are no statement: the error waits.
            frontend_tag::COPY_DATA | frontend_tag::COPY_DONE | frontend_tag::COPY_FAIL => {
                self.transaction_lost = Some(reason);
                None
            }
            _ => Some(message),
        }
    }
}

/// Waits until one of `backends` has read bytes or failed; its index.
///
/// Cancel-safe and allocation-free for any number of backends: each
/// `fill()` future is made and dropped within one poll. That loses nothing:
/// `fill` is cancel-safe, and tokio keeps the socket's read waker registered
/// after a pending read is dropped.
async fn any_backend_filled(backends: &mut [PooledBackend]) -> (usize, Result<(), BackendError>) {
    std::future::poll_fn(|cx| {
        for (index, backend) in backends.iter_mut().enumerate() {
            let filled = std::pin::pin!(backend.connection().fill());
            if let Poll::Ready(result) = filled.poll(cx) {
                return Poll::Ready((index, result));
            }
        }
        Poll::Pending
    })
    .await
}

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

use bytes::Bytes;

use super::Session;
use super::client::SessionEnd;
use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{BackendMessage, TransactionStatus, tag};
use crate::protocol::frontend::tag as frontend_tag;

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
    /// Describe: RowDescription or NoData (after ParameterDescription for a statement).
    Describe,
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
}

/// How an exchange ended.
pub(super) enum Relayed {
    /// The last ReadyForQuery arrived (not yet forwarded).
    Ready(PooledBackend, Message),
    /// Every step of a Flush-ended batch is answered; the backend stays with it.
    Flushed(PooledBackend),
    /// The backend failed; it is returned for the caller to discard.
    Failed(PooledBackend, BackendError),
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
        loop {
            self.answer_due_steps(&mut exchange);
            if exchange.ready_left == 0 && exchange.steps.is_empty() {
                return Ok(Relayed::Flushed(backend));
            }
            let message = match backend.connection().buffered() {
                Ok(Some(message)) => message,
                Ok(None) => {
                    self.client.flush().await?;
                    if copy_in != CopyIn::Off {
                        tokio::select! {
                            filled = backend.connection().fill() => {
                                if let Err(error) = filled {
                                    return Ok(Relayed::Failed(backend, error));
                                }
                            }
                            read = self.client.fill() => {
                                if read? == 0 {
                                    return Err(SessionEnd::ClientGone);
                                }
                                match self.forward_copy_data(&mut backend, copy_in).await? {
                                    Ok(next) => copy_in = next,
                                    Err(error) => return Ok(Relayed::Failed(backend, error)),
                                }
                            }
                        }
                    } else if let Err(error) = backend.connection().fill().await {
                        return Ok(Relayed::Failed(backend, error));
                    }
                    continue;
                }
                Err(error) => return Ok(Relayed::Failed(backend, error)),
            };
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
                        return Ok(Relayed::Ready(backend, message));
                    }
                }
                tag::ERROR_RESPONSE => {
                    self.exchange_errored = true;
                    copy_in = match copy_in {
                        // The node now discards messages until the client's Sync.
                        CopyIn::Extended { .. } => CopyIn::Extended { done: true },
                        _ => CopyIn::Off,
                    };
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
                tag::BIND_COMPLETE => pop_if(&mut exchange, |step| matches!(step, Step::Bind)),
                tag::CLOSE_COMPLETE => pop_if(&mut exchange, |step| matches!(step, Step::Close)),
                tag::ROW_DESCRIPTION | tag::NO_DATA => {
                    pop_if(&mut exchange, |step| matches!(step, Step::Describe))
                }
                tag::COMMAND_COMPLETE | tag::EMPTY_QUERY_RESPONSE | tag::PORTAL_SUSPENDED => {
                    pop_if(&mut exchange, |step| matches!(step, Step::Execute))
                }
                tag::COPY_IN_RESPONSE => {
                    // In an extended batch the node ignored the Sync already
                    // sent: the one the client sends after CopyDone ends it.
                    let extended = exchange.steps.iter().any(|step| matches!(step, Step::Sync));
                    copy_in = if extended {
                        CopyIn::Extended { done: false }
                    } else {
                        CopyIn::Simple
                    };
                }
                _ => {}
            }
            self.client.out.extend_from_slice(message.as_bytes());
            self.client.flush_if_full().await?;
        }
    }

    /// Writes the proxy's own answers that have reached the head of the queue.
    fn answer_due_steps(&mut self, exchange: &mut Exchange) {
        while let Some(Step::Answer(bytes)) = exchange.steps.front() {
            self.client.out.extend_from_slice(bytes);
            exchange.steps.pop_front();
        }
    }

    /// Passes the client's buffered COPY messages to the backend, and returns
    /// the copy state after them.
    async fn forward_copy_data(
        &mut self,
        backend: &mut PooledBackend,
        mut copy_in: CopyIn,
    ) -> Result<Result<CopyIn, BackendError>, SessionEnd> {
        while let Some(tag) = self.client.peek_tag()? {
            let copy_message = matches!(
                tag,
                frontend_tag::COPY_DATA
                    | frontend_tag::COPY_DONE
                    | frontend_tag::COPY_FAIL
                    | frontend_tag::SYNC
                    | frontend_tag::FLUSH
            );
            if !copy_message {
                // Not part of the copy: left for the session's message loop.
                return Ok(Ok(CopyIn::Off));
            }
            let Some(message) = self.client.buffered()? else {
                break;
            };
            if let Err(error) = backend.connection().send(message.as_bytes()).await {
                return Ok(Err(error));
            }
            copy_in = match (copy_in, tag) {
                (CopyIn::Simple, frontend_tag::COPY_DONE | frontend_tag::COPY_FAIL) => CopyIn::Off,
                (CopyIn::Extended { .. }, frontend_tag::COPY_DONE | frontend_tag::COPY_FAIL) => {
                    CopyIn::Extended { done: true }
                }
                (CopyIn::Extended { done: true }, frontend_tag::SYNC) => CopyIn::Off,
                (state, _) => state,
            };
            if copy_in == CopyIn::Off {
                break;
            }
        }
        Ok(Ok(copy_in))
    }
}

/// Whether the client is sending COPY data, and how the copy ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyIn {
    /// No copy in progress.
    Off,
    /// COPY from a simple Query: ends with CopyDone or CopyFail.
    Simple,
    /// COPY from an extended batch: ends with the client's Sync after
    /// CopyDone or CopyFail (`done`).
    Extended {
        /// CopyDone or CopyFail went (or the node failed the copy).
        done: bool,
    },
}

fn pop_if(exchange: &mut Exchange, matches: impl Fn(&Step) -> bool) {
    if exchange.steps.front().is_some_and(matches) {
        exchange.steps.pop_front();
    }
}
